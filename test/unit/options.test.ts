/**
 * options.ts: one record per option. --help agrees with it; and a command's options resolve
 * flag > environment > config file > default, strictly, as a table of
 * { command, argv, env, file } → options | error. (The README's table and the image's defaults
 * are checked against it in test/repo/options-docs.test.ts: the image's build runs these unit
 * tests without the README or the Dockerfile.)
 */
import { describe, expect, test } from "bun:test";
import { availableParallelism } from "node:os";
import { DEFAULT_PREFETCH, envNameOf } from "../../src/config.ts";
import { FibrpcError } from "../../src/errors.ts";
import { resolveOptions, unusedVariables } from "../../src/options-resolve.ts";
import { scanCommandLine } from "../../src/options-scan.ts";
import {
  COMMAND_OPTIONS,
  COMMANDS,
  helpOf,
  shortOf,
  OPTIONS,
  type CommandName,
  type OptionName,
  type Options,
} from "../../src/options.ts";
import { HEAVY_N } from "../../src/rpc/delivery.ts";
import { DEFAULT_MAX_N } from "../../src/rpc/protocol.ts";

const NAMES = Object.keys(OPTIONS) as OptionName[];
const commandsOf = (name: OptionName) =>
  COMMANDS.filter((c) => (COMMAND_OPTIONS[c] as readonly string[]).includes(name));

describe("every option", () => {
  test("is taken by some command, and named --flag ↔ FIBRPC_FLAG", () => {
    for (const name of NAMES) {
      expect(commandsOf(name).length, name).toBeGreaterThan(0);
      expect(OPTIONS[name].env).toBe(envNameOf(name));
    }
  });

  test("--help shows its variable and its default, from the record", () => {
    for (const command of COMMANDS) {
      for (const name of COMMAND_OPTIONS[command]) {
        const description = helpOf(name, command);
        expect(description).toContain(`[env ${OPTIONS[name].env}] (default: `);
        expect(description).not.toMatch(/guest:guest@/); // help never prints a password
      }
    }
    expect(helpOf("prefetch", "serve")).toContain(`n ≥ ${HEAVY_N}`);
    expect(helpOf("prefetch", "serve")).toContain(`(default: ${DEFAULT_PREFETCH})`);
    expect(helpOf("max-n", "serve")).toContain(`(default: ${DEFAULT_MAX_N})`);
    expect(helpOf("timeout", "call")).toContain("(default: 30s)");
    expect(helpOf("http-host", "serve")).toContain("(default: 127.0.0.1; 0.0.0.0 in the container image)");
    expect(helpOf("url", "call")).toContain("(default: amqp://guest:***@127.0.0.1:5672)");
  });

  test("short flags: one letter, never -h or -v, unique within each command, on the common options", () => {
    for (const command of COMMANDS) {
      const shorts = COMMAND_OPTIONS[command]
        .map((name) => OPTIONS[name as OptionName])
        .flatMap((o) => ("short" in o && o.short ? [o.short] : []));
      expect(new Set(shorts).size, command).toBe(shorts.length);
      for (const short of shorts) expect(short).toMatch(/^[a-gi-uw-z]$/i);
    }
    const withShort = Object.fromEntries(
      NAMES.filter((n) => "short" in OPTIONS[n]).map((n) => [n, (OPTIONS[n] as { short: string }).short]),
    );
    expect(withShort).toMatchObject({ workers: "w", timeout: "t", json: "j", concurrency: "c", requests: "r", n: "n" });
    expect(shortOf("workers")).toBe("-w");
  });

  test("no short flag's letter is the name of another option (bench -n was --requests while --n was fib's n)", () => {
    for (const command of COMMANDS) {
      for (const name of COMMAND_OPTIONS[command] as readonly OptionName[]) {
        const short = (OPTIONS[name] as { short?: string }).short;
        if (short !== undefined)
          expect(
            (COMMAND_OPTIONS[command] as readonly string[]).filter((other) => other === short && other !== name),
            `${command} -${short}`,
          ).toEqual([]);
      }
    }
  });

  test("the default is what the code gets when nothing is given", () => {
    const o = resolveOptions("serve", { rawArgs: [], env: {} });
    expect(o.prefetch).toBe(DEFAULT_PREFETCH);
    expect(o.maxN).toBe(DEFAULT_MAX_N);
    expect(o.drainTimeout).toBe(10_000);
    expect(o.workers).toBe(availableParallelism());
    expect(Object.values(o.from).every((source) => source === "default")).toBe(true);
  });
});

type Case = {
  name: string;
  command: CommandName;
  argv?: string[];
  env?: Record<string, string>;
  file?: Record<string, string>;
} & ({ options: Record<string, unknown> } | { error: RegExp });

const cases: Case[] = [
  // Precedence: flag > environment > config file > default.
  {
    name: "defaults",
    command: "call",
    options: {
      timeout: 30_000,
      json: false,
      replyQueue: "direct",
      retry: 0,
      waitForServer: false,
      queue: "rpc_queue",
      logLevel: "info",
      logFormat: "pretty",
      tlsCa: undefined,
      config: undefined,
    },
  },
  {
    name: "file over default",
    command: "call",
    file: { FIBRPC_QUEUE: "from_file", FIBRPC_TIMEOUT: "2s" },
    options: {
      queue: "from_file",
      timeout: 2000,
      from: expect.objectContaining({ queue: "file", timeout: "file", retry: "default" }),
    },
  },
  {
    name: "env over file",
    command: "call",
    env: { FIBRPC_QUEUE: "from_env" },
    file: { FIBRPC_QUEUE: "from_file" },
    options: { queue: "from_env", from: expect.objectContaining({ queue: "env" }) },
  },
  {
    name: "flag over env",
    command: "call",
    argv: ["--queue", "from_flag"],
    env: { FIBRPC_QUEUE: "from_env" },
    options: { queue: "from_flag", from: expect.objectContaining({ queue: "flag" }) },
  },
  {
    name: "an empty variable counts as unset",
    command: "call",
    env: { FIBRPC_QUEUE: "" },
    file: { FIBRPC_QUEUE: "from_file" },
    options: { queue: "from_file" },
  },
  {
    name: "--config is not read from a config file",
    command: "call",
    file: { FIBRPC_CONFIG: "/elsewhere" },
    options: { config: undefined },
  },
  {
    name: "camelCase and --name=value",
    command: "serve",
    argv: ["--maxN=5", "--queue-type", "quorum"],
    options: { maxN: 5, queueType: "quorum" },
  },
  // On/off options.
  {
    name: "--json",
    command: "call",
    argv: ["--json"],
    options: { json: true, from: expect.objectContaining({ json: "flag" }) },
  },
  {
    name: "--no-json over the environment",
    command: "call",
    argv: ["--no-json"],
    env: { FIBRPC_JSON: "yes" },
    options: { json: false },
  },
  {
    name: "on/off from the environment",
    command: "call",
    env: { FIBRPC_JSON: "on", FIBRPC_WAIT_FOR_SERVER: "1" },
    options: { json: true, waitForServer: true },
  },
  { name: "on/off from the file", command: "bench", file: { FIBRPC_JSON: "false" }, options: { json: false } },
  {
    name: "an on/off value that is neither",
    command: "call",
    env: { FIBRPC_JSON: "maybe" },
    error: /^FIBRPC_JSON must be true or false, got "maybe"$/,
  },
  {
    name: "a bad on/off value from the file names the file",
    command: "call",
    file: { FIBRPC_JSON: "maybe" },
    error: /^FIBRPC_JSON in the --config file must be true or false, got "maybe"$/,
  },
  {
    name: "a count out of range is quoted as given",
    command: "call",
    argv: ["--retry", "99999999999999999999"],
    error: /^--retry must be between 0 and 100, got 99999999999999999999$/,
  },
  // Broker URLs: every --url, in order; else one source.
  {
    name: "--url repeated and comma-separated",
    command: "call",
    argv: ["--url", "amqp://a,amqp://b", "--url", "amqp://c"],
    options: {
      url: [
        expect.objectContaining({ hostname: "a" }),
        expect.objectContaining({ hostname: "b" }),
        expect.objectContaining({ hostname: "c" }),
      ],
    },
  },
  {
    name: "the default URL",
    command: "bench",
    options: { url: [expect.objectContaining({ hostname: "127.0.0.1", port: 5672, username: "guest" })] },
  },
  {
    name: "a bad URL from the file names its source",
    command: "call",
    file: { FIBRPC_URL: "amqp://u:s3cret%@h" },
    error: /^the 1st broker URL \(FIBRPC_URL in the --config file\) has a "%"/,
  },
  {
    name: "a bad 2nd URL given as a flag",
    command: "serve",
    argv: ["--url", "amqp://h1", "--url", "http://h2"],
    error: /^the 2nd broker URL \(--url\) must start with amqp:\/\//,
  },
  {
    name: "one connection_timeout for serve",
    command: "serve",
    argv: ["--url", "amqp://h1?connection_timeout=100,amqp://h2"],
    error: /serve uses one connection_timeout for all its broker URLs; the 1st gives 100, the 2nd none \(10000\)/,
  },
  {
    name: "a connection_timeout equal to the default is the same as none",
    command: "serve",
    argv: ["--url", "amqp://h1?connection_timeout=10000,amqp://h2"],
    options: {},
  },
  // Values.
  { name: "durations", command: "call", argv: ["--timeout", "1.5s"], options: { timeout: 1500 } },
  {
    name: "a duration beyond the timers",
    command: "call",
    env: { FIBRPC_TIMEOUT: "597h" },
    error: /^--timeout must be at most 2147483647ms/,
  },
  {
    name: "a whole number out of range",
    command: "serve",
    argv: ["--workers", "0"],
    error: /^--workers must be between 1 and 256, got 0$/,
  },
  {
    name: "not a whole number",
    command: "call",
    file: { FIBRPC_RETRY: "2.5" },
    error: /^--retry must be a whole number, got "2.5" \(from FIBRPC_RETRY in the --config file\)$/,
  },
  {
    name: "an unknown value",
    command: "call",
    env: { FIBRPC_REPLY_QUEUE: "shared" },
    error: /^--reply-queue must be direct or exclusive, got "shared" \(from FIBRPC_REPLY_QUEUE\)$/,
  },
  {
    name: "an unknown log level",
    command: "call",
    env: { FIBRPC_LOG_LEVEL: "loud" },
    error: /^--log-level must be one of silent, error, warn, info, debug, trace, got "loud" \(from FIBRPC_LOG_LEVEL\)$/,
  },
  {
    name: "variables of options the command does not take are ignored",
    command: "health",
    argv: ["--status-file", "/x"],
    env: { FIBRPC_LOG_LEVEL: "loud" },
    options: { statusFile: "/x" },
  },
  {
    name: "a queue name too long",
    command: "call",
    argv: ["--queue", "q".repeat(256)],
    error: /^--queue must be at most 255 bytes long/,
  },
  {
    name: "bench --n range",
    command: "bench",
    argv: ["--n", "10-20"],
    options: { n: { min: 10, max: 20, text: "10-20" } },
  },
  // The server says which n it computes (N_TOO_LARGE above its --max-n); bench checks every
  // answer against fib(n) it computes itself, so its bound is the largest --max-n serve takes.
  {
    name: "bench --n above the default --max-n",
    command: "bench",
    argv: ["--n", "1000001-10000000"],
    options: { n: { min: 1_000_001, max: 10_000_000, text: "1000001-10000000" } },
  },
  {
    name: "bench --n above the largest --max-n",
    command: "bench",
    argv: ["--n", "1-10000001"],
    error: /^--n must be at most 10000000 \(the largest serve --max-n\), got 10000001$/,
  },
  // Rules between options.
  {
    name: "--requests and --duration, both flags",
    command: "bench",
    argv: ["--duration", "1s", "--requests", "5"],
    error: /^give --requests or --duration, not both$/,
  },
  {
    name: "FIBRPC_REQUESTS and FIBRPC_DURATION, both variables",
    command: "bench",
    argv: [],
    env: { FIBRPC_REQUESTS: "5", FIBRPC_DURATION: "1s" },
    error: /^give FIBRPC_REQUESTS or FIBRPC_DURATION, not both$/,
  },
  {
    // A config file or profile shared by every command sets one, the command line the other: the flag wins
    // (commands/bench.ts), not a usage error.
    name: "--duration given, FIBRPC_REQUESTS set",
    command: "bench",
    argv: ["--duration", "1s"],
    env: { FIBRPC_REQUESTS: "5" },
    options: { duration: 1000, requests: 5, from: expect.objectContaining({ requests: "env", duration: "flag" }) },
  },
  {
    name: "--duration alone",
    command: "bench",
    argv: ["--duration", "1s"],
    options: { duration: 1000, from: expect.objectContaining({ requests: "default" }) },
  },
  {
    name: "--tls-cert without --tls-key",
    command: "call",
    argv: ["--tls-cert", "/c.pem"],
    error: /^--tls-cert and --tls-key go together$/,
  },
  {
    name: "--http-host without --http-port",
    command: "serve",
    argv: ["--http-host", "0.0.0.0"],
    error: /^--http-host has no effect without --http-port/,
  },
  {
    name: "FIBRPC_HTTP_HOST without a port (the image's)",
    command: "serve",
    env: { FIBRPC_HTTP_HOST: "0.0.0.0" },
    options: { httpHost: "0.0.0.0", httpPort: undefined },
  },
  { name: "health needs a status file", command: "health", error: /^give --status-file \(or FIBRPC_STATUS_FILE\)/ },
  {
    name: "health's status file from the environment",
    command: "health",
    env: { FIBRPC_STATUS_FILE: "/s.json" },
    options: { statusFile: "/s.json", maxAge: 15_000 },
  },
  // The strict scan of the command line.
  {
    name: "an unknown option: the closest one",
    command: "call",
    argv: ["--timout", "1s"],
    error: /^unknown option --timout; did you mean --timeout\? see fibrpc call --help$/,
  },
  {
    name: "an unknown switch: the closest one",
    command: "call",
    argv: ["--jsn", "5"],
    error: /^unknown option --jsn; did you mean --json\? see fibrpc call --help$/,
  },
  {
    name: "--no- of a switch, mistyped",
    command: "bench",
    argv: ["--no-jsn"],
    error: /^unknown option --no-jsn; did you mean --no-json\? see fibrpc bench --help$/,
  },
  {
    name: "a long flag with one dash",
    command: "serve",
    argv: ["-workers", "2"],
    error: /^unknown option -workers; did you mean --workers\? see fibrpc serve --help$/,
  },
  {
    name: "nothing close",
    command: "call",
    argv: ["--frobnicate"],
    error: /^unknown option --frobnicate; see fibrpc call --help$/,
  },
  {
    name: "an option of another command",
    command: "call",
    argv: ["--workers", "2"],
    error: /^unknown option --workers: it is an option of serve, not of call; see fibrpc call --help$/,
  },
  {
    name: "an option of another command, near one of this one's (--queue-type, --queue): the other command's",
    command: "call",
    argv: ["--queue-type", "quorum", "5"],
    error: /^unknown option --queue-type: it is an option of serve, not of call; see fibrpc call --help$/,
  },
  // Short flags: the same scan as the long ones.
  {
    name: "short flags",
    command: "call",
    argv: ["-t", "2s", "-j", "10"],
    options: { timeout: 2000, json: true, from: expect.objectContaining({ timeout: "flag", json: "flag" }) },
  },
  {
    name: "short flags of bench: -r is --requests, -n is --n",
    command: "bench",
    argv: ["-r", "500", "-c", "7", "-n", "30"],
    options: { requests: 500, concurrency: 7, n: expect.objectContaining({ min: 30, max: 30, text: "30" }) },
  },
  {
    name: "bench -n is --n (fib's n), never the number of calls",
    command: "bench",
    argv: ["-n", "1000-2000"],
    options: { requests: 10_000, n: { min: 1000, max: 2000, text: "1000-2000" } },
  },
  {
    name: "-n and --n are the same option",
    command: "bench",
    argv: ["-n", "3", "--n", "4"],
    error: /^--n given twice \(3, 4\); give it once$/,
  },
  { name: "-w", command: "serve", argv: ["-w", "3"], options: { workers: 3 } },
  { name: "-t=value", command: "call", argv: ["-t=2s"], options: { timeout: 2000 } },
  {
    name: "a short flag without its value",
    command: "call",
    argv: ["30", "-t"],
    error: /^--timeout needs a value \(duration\)$/,
  },
  {
    name: "a short flag before another flag",
    command: "bench",
    argv: ["-r", "-j"],
    error: /^--requests needs a value \(count\) before -j$/,
  },
  {
    name: "short and long given both",
    command: "call",
    argv: ["-t", "1s", "--timeout", "2s"],
    error: /^--timeout given twice \(1s, 2s\); give it once$/,
  },
  {
    name: "a short switch twice",
    command: "bench",
    argv: ["-j", "--no-json"],
    error: /^--json given twice; give it once$/,
  },
  {
    name: "a value for a short switch",
    command: "call",
    argv: ["-j=yes"],
    error: /^--json takes no value \(got -j=yes\)/,
  },
  {
    name: "short flags bundled",
    command: "bench",
    argv: ["-jt", "1s"],
    error:
      /^unknown option -jt; did you mean -j -t\? short flags go one at a time, a value after a space; see fibrpc bench --help$/,
  },
  {
    name: "a short flag glued to its value",
    command: "call",
    argv: ["-t2s"],
    error: /^unknown option -t2s; did you mean -t 2s\? short flags go one at a time/,
  },
  {
    name: "a short flag of another command",
    command: "call",
    argv: ["-w", "2"],
    error: /^unknown option -w; the short flags of call are -t, -j; see fibrpc call --help$/,
  },
  {
    name: "a value missing at the end",
    command: "call",
    argv: ["30", "--timeout"],
    error: /^--timeout needs a value \(duration\)$/,
  },
  {
    name: "a value missing before a flag",
    command: "bench",
    argv: ["--n", "--json"],
    error: /^--n needs a value \(n\|min-max\) before --json$/,
  },
  {
    name: "an empty value",
    command: "call",
    argv: ["--timeout="],
    error: /^--timeout needs a value \(duration\), got an empty one$/,
  },
  {
    name: "a flag given twice",
    command: "call",
    argv: ["--timeout", "1s", "--timeout", "2s"],
    error: /^--timeout given twice \(1s, 2s\); give it once$/,
  },
  {
    name: "--json and --no-json",
    command: "call",
    argv: ["--json", "--no-json"],
    error: /^--json given twice; give it once$/,
  },
  {
    name: "a value for an on/off flag",
    command: "call",
    argv: ["--json=yes"],
    error: /^--json takes no value \(got --json=yes\); give --json, or leave it out$/,
  },
  {
    name: "a value for the off form of an on/off flag: named as given",
    command: "call",
    argv: ["--no-json=false", "5"],
    error: /^--no-json takes no value \(got --no-json=false\); give --no-json, or leave it out$/,
  },
  {
    name: "a value that starts with a dash and a digit",
    command: "call",
    argv: ["--timeout", "-1s"],
    error: /^--timeout must be a duration/,
  },
  { name: "nothing after --", command: "call", argv: ["--", "--bogus"], options: { timeout: 30_000 } },
  { name: "help and version pass", command: "serve", argv: ["--help", "-h"], options: { queue: "rpc_queue" } },
  {
    name: "a short flag written with two dashes: its one-dash form",
    command: "bench",
    argv: ["--c", "5"],
    error: /^unknown option --c; did you mean -c \(--concurrency\)\? see fibrpc bench --help$/,
  },
  {
    name: "-v written with two dashes",
    command: "call",
    argv: ["--v"],
    error: /^unknown option --v; did you mean -v \(--version\)\? see fibrpc call --help$/,
  },
  {
    name: "a value for --help",
    command: "call",
    argv: ["--help=yes"],
    error: /^--help takes no value \(got --help=yes\); give --help$/,
  },
  {
    name: "a value for -h or -v: said as such, not an unknown option",
    command: "call",
    argv: ["-v=1"],
    error: /^-v takes no value \(got -v=1\); give -v$/,
  },
];

describe("resolveOptions: { command, argv, env, file } → options | error", () => {
  for (const c of cases) {
    test(c.name, () => {
      const input = { rawArgs: c.argv ?? [], env: c.env ?? {}, file: c.file ?? {} };
      if ("error" in c) {
        let error: unknown;
        try {
          resolveOptions(c.command, input);
        } catch (err) {
          error = err;
        }
        expect(error).toBeInstanceOf(FibrpcError);
        expect((error as FibrpcError).code).toBe("USAGE");
        expect((error as FibrpcError).message).toMatch(c.error);
      } else {
        const options = resolveOptions(c.command, input);
        expect(Object.isFrozen(options)).toBe(true);
        expect(Object.isFrozen(options.from)).toBe(true);
        expect(options).toMatchObject(c.options);
      }
    });
  }

  test("a token like -5 goes to the command (call: an invalid n)", () => {
    const onNegativeNumber = (token: string): never => {
      throw new FibrpcError("USAGE", `invalid n ${JSON.stringify(token)}`);
    };
    expect(() => resolveOptions("call", { rawArgs: ["--json", "-5"], env: {}, onNegativeNumber })).toThrow(
      'invalid n "-5"',
    );
    expect(() => resolveOptions("call", { rawArgs: ["-5"], env: {} })).toThrow("unknown option -5");
  });

  test("typed: each option's value has its own type", () => {
    const o: Options<"call"> = resolveOptions("call", { rawArgs: [], env: {} });
    const timeout: number = o.timeout;
    const json: boolean = o.json;
    const mode: "direct" | "exclusive" = o.replyQueue;
    const tlsCa: string | undefined = o.tlsCa;
    expect([timeout, json, mode, tlsCa]).toEqual([30_000, false, "direct", undefined]);
  });
});

describe("--help and --version after the command", () => {
  test("are seen anywhere before --, in their four spellings only", () => {
    expect(scanCommandLine("serve", ["--queue", "q", "-v"])).toMatchObject({ version: true, help: false });
    expect(scanCommandLine("call", ["30", "--version"])).toMatchObject({ version: true, operands: ["30"] });
    expect(scanCommandLine("call", ["-h"])).toMatchObject({ help: true, version: false });
    expect(scanCommandLine("call", ["--", "-v"])).toMatchObject({ version: false, operands: ["-v"] });
    expect(scanCommandLine("call", ["--h"]).problem?.message).toStartWith("unknown option --h; did you mean -h");
  });
});

describe("a switch whose own name starts with no- (--no-wait)", () => {
  test("is on as given, off as --no-no-wait, off by default; its variable is FIBRPC_NO_WAIT", () => {
    const on = resolveOptions("call", { rawArgs: ["--reply-to", "results", "--no-wait"], env: {} });
    expect([on.noWait, on.replyTo]).toEqual([true, "results"]);
    expect(resolveOptions("call", { rawArgs: ["--no-no-wait"], env: {} }).noWait).toBe(false);
    expect(resolveOptions("call", { rawArgs: [], env: {} }).noWait).toBe(false);
    expect(resolveOptions("call", { rawArgs: [], env: { FIBRPC_NO_WAIT: "true" } }).noWait).toBe(true);
  });
});

describe("unusedVariables: FIBRPC_* variables that set nothing", () => {
  test("each named, with the closest variable; options, measuring switches and the test build's are not", () => {
    const env = {
      FIBRPC_TIMOUT: "5s",
      FIBRPC_TIMEOUT: "5s",
      FIBRPC_OUTLET: "amqplib",
      FIBRPC_PUBLISHER_CONFIRMS: "off",
      FIBRPC_TEST_FAULTS: "crash=3",
      FIBRPC_CONFIG: "/x",
      FIBRPC_ZZZZZZZZZZ: "1",
      OTHER: "1",
    };
    expect(unusedVariables(env)).toEqual([
      "FIBRPC_TIMOUT is set, but fibrpc has no such variable (did you mean FIBRPC_TIMEOUT?); it is ignored",
      "FIBRPC_ZZZZZZZZZZ is set, but fibrpc has no such variable; it is ignored",
    ]);
    expect(unusedVariables({})).toEqual([]);
  });
});
