/**
 * A run of fibrpc, from argv to an exit code. The first word names the command (cli.ts's map of citty
 * records); the rest is scanned once (options-scan.ts) into flags, operands and whether help was asked
 * for; then the options are resolved (config file read once), with the rest of what a run reads from the
 * environment (env-settings.ts), and the command's body runs. Whatever fails is one line on stderr
 * (report.ts), masked by shape until the options are resolved, then with the secrets of their broker URLs.
 */
import type { BrokerUrl } from "../broker-url.ts";
import { envSettings, type EnvSettings } from "../env-settings.ts";
import { ExitCode } from "../errors.ts";
import { showsDebug } from "../log.ts";
import { Masker, maskSecrets } from "../mask.ts";
import { writeResults } from "../output.ts";
import { loadOptions, unusedVariables } from "../options-resolve.ts";
import { scanCommandLine, type OnNegativeNumber } from "../options-scan.ts";
import type { CommandName, Options } from "../options.ts";
import { installCrashHandlers, reportError } from "../report.ts";
import { closest } from "../suggest.ts";
import { versionLine } from "../version.ts";
import { commandsOf, helpText, printHelp, renderCommandHelp, type AnyCommand } from "./_help.ts";

/**
 * `fibrpc ARGS`: the command named first runs with the rest. Otherwise help (`fibrpc`, `fibrpc --help`,
 * `fibrpc help [command]`), the version line, or a usage error. citty's runMain and runCommand are not
 * used: they parse argv again at each level, leniently, and print citty's own usage.
 */
export async function runMain(main: AnyCommand, rawArgs: readonly string[]): Promise<void> {
  try {
    await dispatch(main, rawArgs);
  } catch (err) {
    // Loading a command or printing help failed: one line and exit 70, as any unexpected error
    // (a rejection of the top-level await would otherwise be Bun's to report).
    process.exit(reportError(err));
  }
}

async function dispatch(main: AnyCommand, rawArgs: readonly string[]): Promise<void> {
  const commands = await commandsOf(main);
  const [first, ...rest] = rawArgs;
  if (first !== undefined && Object.hasOwn(commands, first)) {
    const command = commands[first]!;
    const cmd = typeof command === "function" ? await command() : command;
    // Not citty's context: its parsed args are never made (the command's runAction scans rawArgs itself).
    await (cmd.run as (context: CommandContext) => Promise<unknown>)({ rawArgs: rest, cmd });
    return;
  }
  const problem = await commandLineProblem(main, rawArgs);
  if (problem !== undefined) {
    process.stderr.write(`fibrpc: ${maskSecrets(problem)}\n`);
    process.exit(ExitCode.USAGE);
  }
  // The version line (version, commit, bun, platform), not citty's bare meta.version.
  if (rawArgs.length === 1 && (first === "--version" || first === "-v")) await writeResults(`${versionLine}\n`);
  else await printHelp((style) => helpText(main, first === "help" ? rest : rawArgs, style));
}

/** What a command's body is given besides its options, all resolved once by runAction. */
export interface RunContext {
  /** The secrets of the broker URLs of the options: whatever the command prints goes through it. */
  masker: Masker;
  /** What the run reads from the environment that is not an option. */
  env: EnvSettings;
  /** FIBRPC_* variables that set nothing (a misspelt name): the run's logger warns of each (_shared.ts loggerOf). */
  unusedVariables: readonly string[];
}

/**
 * What is wrong with the start of the command line, if anything: an unknown command (with the
 * closest one), or a flag before any command. One line, for exit 64.
 */
export async function commandLineProblem(main: AnyCommand, rawArgs: readonly string[]): Promise<string | undefined> {
  const names = Object.keys(await commandsOf(main));
  const first = rawArgs[0];
  if (first === undefined || names.includes(first)) return undefined;
  const wantsHelp = rawArgs.includes("--help") || rawArgs.includes("-h");
  if (first.startsWith("-")) {
    if (["--help", "-h"].includes(first) || wantsHelp) return undefined;
    if (["--version", "-v"].includes(first)) {
      return rawArgs.length === 1 ? undefined : `give ${first} alone; see fibrpc --help`;
    }
    const flag = first.split("=", 1)[0]!;
    if (["--help", "-h", "--version", "-v"].includes(flag))
      return `${flag} takes no value (got ${first}); give ${flag}`;
    const guess = closest(flag.replace(/^--?/, ""), ["help", "version"]);
    if (guess !== undefined) return `unknown option ${flag}; did you mean --${guess}? see fibrpc --help`;
    const command = rawArgs.find((a) => names.includes(a));
    const there = command ? `fibrpc ${command} ${flag}` : `fibrpc <command> ${flag}`;
    return `unknown option ${flag} before the command: options go after it (${there}); see fibrpc --help`;
  }
  if (first === "help") {
    // `fibrpc help` and `fibrpc help call`; `fibrpc help cal` is a mistyped command like any other.
    const rest = rawArgs.slice(1);
    const flag = rest.find((a) => a.startsWith("-") && a !== "--help" && a !== "-h");
    if (flag !== undefined) return `help takes no option (got ${flag}); give fibrpc help [command]`;
    const topics = rest.filter((a) => !a.startsWith("-"));
    if (topics.length > 1) return `help takes one command, got ${topics.join(" ")}; give fibrpc help [command]`;
    return topics[0] === undefined ? undefined : commandLineProblem(main, [topics[0]]);
  }
  const guess = closest(first, [...names, "help"]);
  const say = guess === undefined ? `the commands are ${names.join(", ")};` : `did you mean ${JSON.stringify(guess)}?`;
  return `unknown command ${JSON.stringify(first)}; ${say} see fibrpc --help`;
}

/** What runMain hands a command's `run` (a subset of citty's context): the words after its name, its record. */
export interface CommandContext {
  rawArgs: readonly string[];
  cmd: AnyCommand;
}

/**
 * Reads `command`'s command line once (the words after its name, or runMain's context); --help there shows
 * its page. Otherwise resolves its options from it, the environment and the config file, runs `body` with
 * them and the operands, and exits with its code, or with the code of the error it threw. A token like "-5"
 * is reported by `onNegativeNumber` if given (see scanCommandLine).
 */
export async function runAction<C extends CommandName>(
  command: C,
  from: readonly string[] | CommandContext,
  body: (options: Options<C>, run: RunContext, operands: readonly string[]) => Promise<ExitCode>,
  onNegativeNumber?: OnNegativeNumber,
): Promise<never> {
  const { rawArgs, cmd } = "rawArgs" in from ? from : { rawArgs: from, cmd: undefined };
  let debug: boolean | undefined;
  let json = false;
  let masker = new Masker();
  let code: ExitCode;
  try {
    const line = scanCommandLine(command, rawArgs, onNegativeNumber);
    if (line.help && cmd !== undefined) {
      await printHelp((style) => renderCommandHelp(command, cmd, style));
      process.exit(ExitCode.OK);
    }
    // `fibrpc serve -v` asks what version this is: never a reason to start serving (nor to ignore the flag).
    if (line.version) {
      await writeResults(`${versionLine}\n`);
      process.exit(ExitCode.OK);
    }
    if (line.problem) throw line.problem;
    const options = await loadOptions(command, { flags: line.flags, env: process.env });
    masker = new Masker((options as { url?: readonly BrokerUrl[] }).url);
    const level = (options as { logLevel?: string }).logLevel;
    if (level !== undefined) debug = showsDebug(level);
    // serve's stderr is a log: with JSON logs, what stops it is a JSON entry too. call's and bench's error line
    // is their answer, for the person or script that ran them (docs/operations.md).
    json = command === "serve" && (options as { logFormat?: string }).logFormat === "json";
    // Crashes from here on follow the level resolved (it may come from the config file), and
    // mask the URLs the options hold.
    installCrashHandlers(debug, masker, json);
    code = await body(
      options,
      {
        masker,
        env: envSettings(process.env, (options as { otlpEndpoint?: string }).otlpEndpoint),
        unusedVariables: unusedVariables(process.env),
      },
      line.operands,
    );
  } catch (err) {
    code = reportError(err, { command, debug, masker, json });
  }
  process.exit(code);
}
