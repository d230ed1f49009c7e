/**
 * What shell completion knows about fibrpc, read from the option table (options.ts) each time a script is
 * printed: the commands, their flags, what a flag's value completes to. Nothing here lists a command or a
 * flag by hand, so an option added to the table is completed by the next script printed.
 */
import { COMMANDS, optionOf, optionsOf, type CommandName, type OptionDef } from "../options.ts";

/** The shells `fibrpc completion` prints a script for. */
export const SHELLS = ["bash", "zsh", "fish"] as const;
export type Shell = (typeof SHELLS)[number];
export type CompletionModel = ReturnType<typeof completionModel>;
export type Flag = ReturnType<typeof flagOf>;
type Option = Pick<OptionDef<unknown>, "kind" | "short" | "choices" | "valueHint" | "repeatable" | "help">;

/**
 * A flag, and every way to write it (-s, --long, and --no-long if negatable). Its value completes to nothing
 * (an on/off flag), one of its choices (`words`: space-separated), a file name (the value hint says it names
 * one) or anything (`hint` says what).
 */
function flagOf(long: string, option: Option, command?: CommandName) {
  const { kind, short, choices, valueHint: hint = "value", repeatable = false, help } = option;
  const negatable = kind === "switch";
  const names = [short && `-${short}`, `--${long}`, negatable && `--no-${long}`];
  const spellings = names.filter((name) => typeof name === "string");
  const value = { kind: completionOf(option), choices: choices ?? [], words: choices?.join(" ") ?? "", hint };
  for (const word of [...spellings, ...value.choices]) checkWord(word);
  const text = typeof help === "string" ? help : (help[command!] ?? "");
  // Help that explains each choice in turn ("classic: …; quorum: …") would be cut to the first one's
  // explanation, which fish then shows beside every value: the choices themselves say more.
  const perChoice = choices?.some((choice) => text.startsWith(`${choice}: `));
  const description = perChoice ? `${choices!.join(" or ")}` : shortDescription(text);
  return { long, short, spellings, description, value, negatable, repeatable };
}

/** --help: on/off, but there is no --no-help. */
const HELP = {
  ...flagOf("help", { kind: "switch", short: "h", help: "Show help" }),
  spellings: ["-h", "--help"],
  negatable: false,
};

/** What a flag's value completes to: nothing (on/off), one of its choices, a file name, or anything. */
function completionOf({ kind, choices, valueHint = "" }: Option): "none" | "choice" | "file" | "any" {
  if (kind === "switch") return "none";
  if (choices) return "choice";
  return valueHint === "file" || valueHint === "path" ? "file" : "any";
}

/**
 * Every command: its flags (the table's, in its order, then --help), the words its operand completes to, and
 * what its operands are called when they complete to nothing but may come before flags (call's n: `call 5 --json`).
 */
export function completionModel() {
  return {
    commands: COMMANDS.map((command) => ({
      name: checkWord(command),
      flags: [...optionsOf(command).map((name) => flagOf(name, optionOf(name), command)), HELP],
      operand: command === "completion" ? { name: "shell", words: SHELLS.map(checkWord).join(" ") } : undefined,
      operands: command === "call" ? "n" : undefined,
    })),
  };
}

/** The help text's first clause, on one line: enough to tell flags apart in a menu (--help has it all). */
export function shortDescription(help: string): string {
  const [clause = ""] = help.split(/; |\. (?=[A-Z])/, 1).map((text) => text.replace(/\s+/g, " ").trim());
  return clause.length <= 80 ? clause : `${clause.slice(0, 79).trimEnd()}…`;
}

/** Every word a script embeds must need no quoting in any of the shells. */
export function checkWord<W extends string>(word: W): W {
  if (/^-{0,2}[A-Za-z0-9][A-Za-z0-9._+-]*$/.test(word)) return word;
  throw new Error(`shell completion: ${JSON.stringify(word)} is not a plain word; quote it in the script generator`);
}
