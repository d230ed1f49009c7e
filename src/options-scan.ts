/**
 * The one reading of a command's command line (what follows the command's name), against the command's
 * options in the table: the flags given with their text, the operands (words that are neither a flag nor its
 * value), whether help was asked for, and the first problem. A problem is kept, not thrown, so that --help
 * anywhere on the line still wins (`fibrpc call --timeout --help` shows help). Each problem is one line:
 * - an unknown flag (a typo such as `--worker 3` must not be ignored), with the closest one;
 * - a flag that needs a value without one: last on the line, followed by another flag (`--timeout --json`),
 *   or empty (`--timeout=`);
 * - a flag given twice (`--timeout 1s --timeout 2s`); only --url may repeat, its values kept in order;
 * - a value for an on/off flag (`--json=yes`);
 * - a word given to a command that takes none (`serve 4`: a value whose flag was left out).
 * A token such as "-5" is handed to `onNegativeNumber` if given (call: an invalid n), else is an unknown
 * flag. Everything after "--" is an operand.
 */
import { FibrpcError, usageError } from "./errors.ts";
import { camelName, COMMANDS, optionOf, optionsOf, shortOf, takes } from "./options.ts";
import type { CommandName, OptionName } from "./options.ts";
import { closest } from "./suggest.ts";

/** The values given on the command line: text, on/off, or every --url in order. */
export type GivenFlags = Partial<Record<OptionName, string | boolean | readonly string[]>>;

export interface Scanned {
  flags: GivenFlags;
  operands: readonly string[];
  /** --help or -h was given (anywhere before "--"). */
  help: boolean;
  /** --version or -v was given (anywhere before "--"): the version line, not the command, as for --help. */
  version: boolean;
  problem?: FibrpcError;
}

/** How a token like "-5" is reported (call: an invalid n); without it, it is an unknown option. */
export type OnNegativeNumber = (token: string) => never;

/** The commands that take operands (call: the n; completion: the shell); the others take none. */
const TAKE_OPERANDS: ReadonlySet<CommandName> = new Set(["call", "completion"]);
/** The next token is a flag's value unless it is another flag ("-5" and "-" are values). */
const isFlag = (token: string) => token.startsWith("-") && token !== "-" && !/^-\d/.test(token);

export function scanCommandLine(command: CommandName, args: readonly string[], negative?: OnNegativeNumber): Scanned {
  const known = new Map<string, OptionName>();
  for (const name of optionsOf(command)) {
    const no = optionOf(name).kind === "switch" ? `--no-${name}` : undefined;
    for (const spelling of [`--${name}`, `--${camelName(name)}`, shortOf(name), no]) {
      if (spelling !== undefined) known.set(spelling, name);
    }
  }
  const flags: Record<string, string | boolean | string[]> = {};
  const operands: string[] = [];
  let help = false;
  let version = false;
  let problem: FibrpcError | undefined;
  const fail = (error: unknown) => {
    if (!(error instanceof FibrpcError)) throw error;
    problem ??= error;
  };
  for (let i = 0; i < args.length; i++) {
    const token = args[i]!;
    if (token === "--") {
      operands.push(...args.slice(i + 1));
      break;
    }
    if (!token.startsWith("-") || token === "-") {
      operands.push(token);
      continue;
    }
    if (/^-\d/.test(token) && negative) {
      try {
        negative(token);
      } catch (error) {
        fail(error);
      }
      continue;
    }
    // Every command takes these spellings (not --h, -help, --help=…), before its options: no option's
    // short form may be h or v.
    if (token === "--help" || token === "-h") {
      help = true;
      continue;
    }
    if (token === "--version" || token === "-v") {
      version = true;
      continue;
    }
    const eq = token.indexOf("=");
    const flag = eq === -1 ? token : token.slice(0, eq);
    const bare = flag.replace(/^--?/, "");
    if (["--help", "-h", "--version", "-v"].includes(flag)) {
      fail(usageError(`${flag} takes no value (got ${token}); give ${flag}`));
      continue;
    }
    // -w is --workers: one letter after one dash, its value next or after "=" (never -w3, -jt).
    const name = known.get(flag);
    if (name === undefined) {
      fail(unknownFlag(command, flag));
      continue;
    }
    const option = optionOf(name);
    const display = `--${name}`;
    const before = Object.hasOwn(flags, name) ? flags[name] : undefined;
    if (option.kind === "switch") {
      // `--no-json=false` is told to give --no-json, not --json.
      const named = bare === `no-${name}` ? `--no-${name}` : display;
      if (eq !== -1) fail(usageError(`${named} takes no value (got ${token}); give ${named}, or leave it out`));
      else if (before !== undefined) fail(usageError(`${display} given twice; give it once`));
      // --json is on, --no-json off; an option named no-… (--no-wait) is on as given, off as --no-no-wait.
      flags[name] = bare !== `no-${name}`;
      continue;
    }
    const needs = `${display} needs a value${option.valueHint ? ` (${option.valueHint})` : ""}`;
    let value: string | undefined;
    const next = args[i + 1];
    if (eq !== -1) value = token.slice(eq + 1);
    else if (next !== undefined && !isFlag(next)) value = args[++i];
    if (value === undefined || value === "") {
      const after = value === "" ? ", got an empty one" : next !== undefined ? ` before ${next.split("=", 1)[0]}` : "";
      fail(usageError(`${needs}${after}`));
    } else if (option.repeatable) {
      flags[name] ??= [];
      (flags[name] as string[]).push(value);
    } else if (before !== undefined) {
      fail(usageError(`${display} given twice (${before}, ${value}); give it once`));
    } else {
      flags[name] = value;
    }
  }
  if (operands.length > 0 && !TAKE_OPERANDS.has(command)) {
    fail(
      usageError(
        `unexpected argument ${JSON.stringify(operands[0])}: fibrpc ${command} takes options only, ` +
          `each value right after its flag; see fibrpc ${command} --help`,
      ),
    );
  }
  return { flags: flags as GivenFlags, operands, help, version, problem };
}

/**
 * The usage error for a flag `command` does not take, with the closest one it does
 * ("--jsn": did you mean --json?), or the command that takes it ("call --workers").
 */
function unknownFlag(command: CommandName, flag: string): FibrpcError {
  const see = `see fibrpc ${command} --help`;
  const names = optionsOf(command);
  const long = flag.startsWith("--");
  const bare = flag.replace(/^--?/, "");
  // A short flag written with two dashes (--c 5): its one-dash form, not the long name closest to "c".
  const byShort = (letter: string) =>
    letter === "h" ? "help" : letter === "v" ? "version" : names.find((n) => shortOf(n) === `-${letter}`);
  const meant = long && bare.length === 1 ? byShort(bare) : undefined;
  if (meant !== undefined) return usageError(`unknown option ${flag}; did you mean -${bare} (--${meant})? ${see}`);
  if (long || bare.length > 1) {
    // Another command's option, as written (`call --queue-type`): said so, not taken for a typo of a near one.
    const others = COMMANDS.filter((c) => c !== command && takes(c, bare));
    if (others.length > 0)
      return usageError(`unknown option ${flag}: it is an option of ${others.join(", ")}, not of ${command}; ${see}`);
    const longs = names.flatMap((n) => (optionOf(n).kind === "switch" ? [n, `no-${n}`] : [n]));
    const guess = closest(bare, [...longs, "help", "version"]);
    if (guess !== undefined) return usageError(`unknown option ${flag}; did you mean --${guess}? ${see}`);
  }
  if (!long) {
    const shorts = names.map(shortOf).filter((s) => s !== undefined);
    if (bare.length > 1 && shorts.includes(`-${bare[0]}`)) {
      // Short flags are never bundled (-jt) nor glued to their value (-t2s): say how to write them.
      const split = [...bare].every((c) => shorts.includes(`-${c}`))
        ? [...bare].map((c) => `-${c}`).join(" ")
        : `-${bare[0]} ${bare.slice(1)}`;
      return usageError(
        `unknown option ${flag}; did you mean ${split}? short flags go one at a time, a value after a space; ${see}`,
      );
    }
    if (bare.length === 1 && shorts.length > 0)
      return usageError(`unknown option ${flag}; the short flags of ${command} are ${shorts.join(", ")}; ${see}`);
  }
  return usageError(`unknown option ${flag}; ${see}`);
}
