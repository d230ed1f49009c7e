/**
 * A command's options resolved into one frozen, typed object: each read flag > environment > config file >
 * default and parsed by its record in the table, then the rules between options. The config file is read
 * once (--config, else FIBRPC_CONFIG) and passed on as a value. Usage errors (exit 64) for anything wrong.
 */
import { readConfigFile, type ConfigKeys } from "./config.ts";
import { DEFAULT_CONNECTION_TIMEOUT_MS, ordinal } from "./broker-url.ts";
import { FibrpcError, usageError } from "./errors.ts";
import { scanCommandLine, type GivenFlags, type OnNegativeNumber } from "./options-scan.ts";
import { camelName, OPTIONS, optionOf, optionsOf, takes } from "./options.ts";
import { MAX_QUORUM_QUEUE_BYTES } from "./rpc/queue.ts";
import { closest } from "./suggest.ts";
import type { CommandName, OptionName, Options, Source } from "./options.ts";

type Env = Readonly<Record<string, string | undefined>>;
type File = Readonly<Record<string, string>>;
type Resolved = { value: unknown; source: Source };

/** The command line after the command's name, or its flags scanned already (options-scan.ts). */
type CommandLine = { rawArgs: readonly string[]; onNegativeNumber?: OnNegativeNumber } | { flags: GivenFlags };

/**
 * The environment (process.env), and the FIBRPC_* settings of the --config file, if any (readConfigFile), with
 * how messages name the file (--config, or FIBRPC_CONFIG).
 */
export type OptionInput = CommandLine & { env: Env; file?: File; fileNamed?: string };

/** A value and where it came from: flag > environment > config file > default. */
function resolveOne(
  name: OptionName,
  flag: GivenFlags[OptionName],
  env: Env,
  file: File,
  fileNamed = "--config",
): Resolved {
  const option = optionOf(name);
  const at = (where: string) => ({ flag: name, env: option.env, where });
  if (typeof flag === "boolean") return { value: flag, source: "flag" };
  if (typeof flag === "string") return { value: option.parse(flag, at(`--${name}`)), source: "flag" };
  if (flag !== undefined)
    return { value: option.parseAll!(flag.map((text) => ({ text, where: `--${name}` }))), source: "flag" };
  // A value from the environment or the file: its error says where it came from, as a flag's
  // names the flag (most parsers name the option by its flag only).
  const parseFrom = (text: string, where: string) => {
    try {
      return option.parse(text, at(where));
    } catch (err) {
      if (err instanceof FibrpcError && err.code === "USAGE" && !err.message.includes(option.env))
        throw usageError(`${err.message} (from ${where})`);
      throw err;
    }
  };
  const fromEnv = env[option.env];
  if (fromEnv !== undefined && fromEnv !== "") return { value: parseFrom(fromEnv, option.env), source: "env" };
  const fromFile = option.inFile === false ? undefined : file[option.env];
  if (fromFile !== undefined && fromFile !== "") {
    return { value: parseFrom(fromFile, `${option.env} in the ${fileNamed} file`), source: "file" };
  }
  const fallback = typeof option.default === "function" ? option.default() : option.default;
  return { value: fallback === undefined ? undefined : option.parse(fallback, at("default")), source: "default" };
}

/** Rules between options of a command, checked once all are read. */
const CHECKS: { readonly [C in CommandName]: (o: Options<C>) => void } = {
  serve: (o) => {
    tlsPair(o);
    // amqplib's recovering connection takes its socket options once, for every URL.
    // One not given is the default: the same as one that gives it.
    const given = o.url.map((u) => u.connectionTimeoutMs);
    const timeouts = given.map((t) => t ?? DEFAULT_CONNECTION_TIMEOUT_MS);
    const differs = timeouts.findIndex((t) => t !== timeouts[0]);
    if (differs !== -1) {
      const shown = (t: number | undefined) => (t === undefined ? `none (${DEFAULT_CONNECTION_TIMEOUT_MS})` : `${t}`);
      throw usageError(
        `serve uses one connection_timeout for all its broker URLs; ` +
          `the 1st gives ${shown(given[0])}, ` +
          `the ${ordinal(differs + 1)} ${shown(given[differs])}: give the same on each`,
      );
    }
    if (o.queueType === "quorum" && Buffer.byteLength(o.queue, "utf8") > MAX_QUORUM_QUEUE_BYTES)
      throw usageError(
        `${givenAs("queue", o.from.queue)} must be at most ${MAX_QUORUM_QUEUE_BYTES} bytes long (UTF-8) ` +
          "with --queue-type quorum: " +
          `serve also declares its dead-letter queue, named "<queue>.dead-letter"`,
      );
    // The image sets FIBRPC_HTTP_HOST for when a port is given; on the command line it is a mistake.
    if (o.from.httpHost === "flag" && o.httpPort === undefined)
      throw usageError("--http-host has no effect without --http-port (or FIBRPC_HTTP_PORT)");
  },
  call: (o) => tlsPair(o),
  bench: (o) => {
    tlsPair(o);
    // Given at one level (two flags, two variables): which was meant is not known. At two, the nearer wins
    // (commands/bench.ts): a --duration flag over FIBRPC_REQUESTS in a config file shared by every command.
    if (o.duration !== undefined && o.from.requests === o.from.duration)
      throw usageError(
        `give ${givenAs("requests", o.from.requests)} or ${givenAs("duration", o.from.duration)}, not both`,
      );
  },
  health: (o) => {
    if (o.statusFile === undefined)
      throw usageError("give --status-file (or FIBRPC_STATUS_FILE), the file serve was started with");
  },
  completion: () => {},
};

/**
 * An option as the user gave it, for a rule between options: FIBRPC_QUEUE set in a shell's profile is not
 * "--queue" on this command line.
 */
export function givenAs(flag: OptionName, source: Source): string {
  if (source === "flag" || source === "default") return `--${flag}`;
  return `${optionOf(flag).env}${source === "file" ? " in the config file" : ""}`;
}

function tlsPair(o: { tlsCert: string | undefined; tlsKey: string | undefined }): void {
  if ((o.tlsCert === undefined) !== (o.tlsKey === undefined)) throw usageError("--tls-cert and --tls-key go together");
}

/** The keys a --config file may hold: every option's variable, whichever command takes it. */
const ALL = Object.values(OPTIONS);
const CONFIG_KEYS: ConfigKeys = {
  known: ALL.flatMap((o) => (o.inFile === false ? [] : [o.env])),
  notInFile: ALL.flatMap((o) => (o.inFile === false ? [o.env] : [])),
};

/**
 * FIBRPC_* variables that are not options but are the project's: measuring switches (env-settings.ts), the
 * build's commit, and the settings of scripts/ (a developer may export them); by name, or by prefix for the
 * test build's and the broker scripts' families.
 */
const OTHER_VARIABLES: readonly string[] = [
  "FIBRPC_OUTLET",
  "FIBRPC_PUBLISHER_CONFIRMS",
  "FIBRPC_COMMIT",
  "FIBRPC_CLUSTER_PREFIX",
  "FIBRPC_DEBIAN_MIRROR",
  "FIBRPC_ROOTFS_CACHE",
];
const OTHER_PREFIXES: readonly string[] = ["FIBRPC_TEST_", "FIBRPC_BROKER_"];

/**
 * A warning for each FIBRPC_* variable that sets nothing (FIBRPC_TIMOUT), with the closest name. A flag or a
 * config-file key misspelled is an error; the environment is shared with other programs (and other versions of
 * this one), so it is a warning.
 */
export function unusedVariables(env: Env): string[] {
  const names = [...CONFIG_KEYS.known, ...CONFIG_KEYS.notInFile, ...OTHER_VARIABLES];
  const bare = (name: string) => name.slice("FIBRPC_".length);
  return Object.keys(env)
    .filter((name) => name.startsWith("FIBRPC_") && !names.includes(name))
    .filter((name) => !OTHER_PREFIXES.some((prefix) => name.startsWith(prefix)))
    .sort()
    .map((name) => {
      const guess = closest(bare(name), names.map(bare));
      const meant = guess === undefined ? "" : ` (did you mean FIBRPC_${guess}?)`;
      return `${name} is set, but fibrpc has no such variable${meant}; it is ignored`;
    });
}

/** The flags given, or those of the command line, scanned strictly: its first problem thrown. */
function flagsOf(command: CommandName, input: CommandLine): GivenFlags {
  if ("flags" in input) return input.flags;
  const line = scanCommandLine(command, input.rawArgs, input.onNegativeNumber);
  if (line.problem) throw line.problem;
  return line.flags;
}

/** A command's options from its command line, the environment and the config file's settings (given). */
export function resolveOptions<C extends CommandName>(command: C, input: OptionInput): Options<C> {
  const { env, file = {}, fileNamed } = input;
  const flags = flagsOf(command, input);
  const values: Record<string, unknown> = {};
  const from: Record<string, Source> = {};
  for (const name of optionsOf(command)) {
    const { value, source } = resolveOne(name, flags[name], env, file, fileNamed);
    values[camelName(name)] = value;
    from[camelName(name)] = source;
  }
  const options = Object.freeze({ ...values, from: Object.freeze(from) }) as unknown as Options<C>;
  (CHECKS[command] as (o: Options<C>) => void)(options);
  return options;
}

/** resolveOptions with the config file (--config, else FIBRPC_CONFIG) read first, once, after the command line. */
export async function loadOptions<C extends CommandName>(
  command: C,
  input: CommandLine & { env: Env },
): Promise<Options<C>> {
  const flags = flagsOf(command, input);
  const config = takes(command, "config") ? resolveOne("config", flags.config, input.env, {}) : undefined;
  const path = config?.value as string | undefined;
  const named = config?.source === "env" ? OPTIONS.config.env : "--config";
  const file = path === undefined ? {} : await readConfigFile(path, CONFIG_KEYS, named);
  return resolveOptions(command, { flags, env: input.env, file, fileNamed: named });
}
