/**
 * What shell completion knows about fibrpc, read from the option table (options.ts) each time a
 * script is printed: the commands (COMMANDS), each command's flags with their short forms, and
 * which values a flag takes (a fixed set: its `choices`; a file: its value hint). Nothing here
 * lists a command or a flag by hand, so an option added to the table is completed by the next
 * script printed.
 */
import { COMMANDS, optionOf, optionsOf, type CommandName, type OptionName } from "../options.ts";

/** The shells `fibrpc completion` prints a script for. */
export const SHELLS = ["bash", "zsh", "fish"] as const;
export type Shell = (typeof SHELLS)[number];

/** What a flag's value completes to: nothing (an on/off flag), one of a set, a file name, or anything. */
export type FlagValue =
  | { kind: "none" }
  | { kind: "choice"; choices: readonly string[] }
  | { kind: "file" }
  | { kind: "any"; hint: string };

export interface FlagSpec {
  /** Without dashes, e.g. "log-level". */
  long: string;
  /** One-letter aliases, without the dash, e.g. ["w"]. */
  short: readonly string[];
  /** One line for shells that show descriptions (zsh, fish). */
  description: string;
  value: FlagValue;
  /** An on/off flag also taken as --no-<long>. */
  negatable: boolean;
  /** May be given several times (--url). */
  repeatable: boolean;
}

export interface CommandSpec {
  name: CommandName;
  flags: readonly FlagSpec[];
  /** What the words that are not flags complete to: a fixed set (completion's shells), or nothing offered. */
  positional: readonly string[];
}

export interface CompletionModel {
  program: string;
  commands: readonly CommandSpec[];
  /** Flags of `fibrpc` itself, before any command. */
  rootFlags: readonly FlagSpec[];
}

const HELP: FlagSpec = {
  long: "help",
  short: ["h"],
  description: "Show help",
  value: { kind: "none" },
  negatable: false,
  repeatable: false,
};
const VERSION: FlagSpec = {
  long: "version",
  short: ["v"],
  description: "Show the version",
  value: { kind: "none" },
  negatable: false,
  repeatable: false,
};

/** Value hints of options that name a file (file names are completed for them). */
const FILE_HINTS = new Set(["file", "path"]);

/** What each command's positional words complete to (only `completion` has a fixed set). */
const POSITIONAL: { readonly [C in CommandName]?: readonly string[] } = { completion: SHELLS };

/**
 * The help text's first clause, on one line: enough to tell flags apart in a menu. The full
 * text, with the variable and the default, is in --help.
 */
export function shortDescription(help: string): string {
  const clause = help
    .split(/; |\. (?=[A-Z])/, 1)[0]!
    .replace(/\s+/g, " ")
    .trim();
  return clause.length <= 80 ? clause : `${clause.slice(0, 79).trimEnd()}…`;
}

function flagOf(name: OptionName, command: CommandName): FlagSpec {
  const option = optionOf(name);
  const help = typeof option.help === "string" ? option.help : (option.help[command] ?? "");
  let value: FlagValue;
  if (option.kind === "switch") value = { kind: "none" };
  else if (option.choices !== undefined) value = { kind: "choice", choices: option.choices };
  else if (option.valueHint !== undefined && FILE_HINTS.has(option.valueHint)) value = { kind: "file" };
  else value = { kind: "any", hint: option.valueHint ?? "value" };
  const short = option.short === undefined ? [] : [option.short];
  const [negatable, repeatable] = [option.kind === "switch", option.repeatable === true];
  return { long: name, short, description: shortDescription(help), value, negatable, repeatable };
}

export function completionModel(program = "fibrpc"): CompletionModel {
  const commands = COMMANDS.map((name): CommandSpec => {
    const flags = optionsOf(name).map((option) => flagOf(option, name));
    return { name, flags: [...flags, HELP], positional: POSITIONAL[name] ?? [] };
  });
  return { program, commands, rootFlags: [HELP, VERSION] };
}

/** Every word a script embeds must need no quoting in any of the shells. */
const PLAIN = /^-{0,2}[A-Za-z0-9][A-Za-z0-9._+-]*$/;
export function checkWord(word: string): string {
  if (!PLAIN.test(word))
    throw new Error(`shell completion: ${JSON.stringify(word)} is not a plain word; quote it in the script generator`);
  return word;
}
