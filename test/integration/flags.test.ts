/**
 * Flags are never silently misread: a missing value, an unknown value, a repeated flag, a value
 * for a boolean flag and a duration beyond the runtime's timers are usage errors (64, one line,
 * nothing on stdout) from every command, whether given as a flag, in the environment or in a
 * config file. --url may repeat (or hold a comma-separated list): tried in order. --http-host
 * decides where the metrics listen.
 */
import { describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { run, startServe, uniqueQueue, cleanupAfterFile, freePort, tempFolder, BROKER_PORT } from "../helpers.ts";

cleanupAfterFile();

const dir = tempFolder("fibrpc-flags-");

function configFile(text: string): string {
  const file = join(dir, `${crypto.randomUUID()}.env`);
  writeFileSync(file, text);
  return file;
}

/** A file that is no PEM certificate or key: refused as such, not as a broker that cannot be reached. */
const NOT_PEM = join(dir, "not-a.pem");
writeFileSync(NOT_PEM, "garbage\n");

/** A broker nobody listens on: a check that ran after connecting would give another error. */
const NOWHERE = { FIBRPC_URL: "amqp://guest:guest@127.0.0.1:1" };

const cases: { args: string[]; env?: Record<string, string>; message: RegExp }[] = [
  // A flag missing its value: last, before another flag, or empty.
  { args: ["call", "30", "--timeout"], message: /^fibrpc: --timeout needs a value \(duration\)$/ },
  {
    args: ["call", "30", "--timeout", "--json"],
    message: /^fibrpc: --timeout needs a value \(duration\) before --json$/,
  },
  { args: ["call", "--timeout=", "30"], message: /^fibrpc: --timeout needs a value \(duration\), got an empty one$/ },
  { args: ["call", "30", "--url"], message: /--url needs a value/ },
  { args: ["serve", "--workers"], message: /--workers needs a value \(count\)/ },
  { args: ["bench", "--n", "--json"], message: /--n needs a value \(n\|min-max\) before --json/ },
  { args: ["health", "--status-file"], message: /--status-file needs a value/ },
  // A single-value flag given twice: citty would keep the last one.
  {
    args: ["call", "30", "--timeout", "1s", "--timeout", "2s"],
    message: /^fibrpc: --timeout given twice \(1s, 2s\); give it once$/,
  },
  { args: ["serve", "--workers", "1", "--workers=2"], message: /--workers given twice \(1, 2\)/ },
  { args: ["bench", "--json", "--json"], message: /--json given twice/ },
  { args: ["call", "30", "--json", "--no-json"], message: /--json given twice/ },
  // A value for a boolean flag.
  { args: ["call", "--json=yes", "30"], message: /^fibrpc: --json takes no value \(got --json=yes\)/ },
  { args: ["call", "--wait-for-server=false", "30"], message: /--wait-for-server takes no value/ },
  // Unknown flags and values, from flags, environment and config file alike.
  {
    args: ["call", "30", "--timout", "1s"],
    message: /^fibrpc: unknown option --timout; did you mean --timeout\? see fibrpc call --help$/,
  },
  {
    args: ["call", "--jsn", "5"],
    message: /^fibrpc: unknown option --jsn; did you mean --json\? see fibrpc call --help$/,
  },
  {
    args: ["call", "30", "-x", "1s"],
    message: /^fibrpc: unknown option -x; the short flags of call are -t, -j; see fibrpc call --help$/,
  },
  {
    args: ["serve", "-t", "1s"],
    message: /^fibrpc: unknown option -t; the short flags of serve are -w; see fibrpc serve --help$/,
  },
  {
    args: ["bench", "-jt", "1s"],
    message: /^fibrpc: unknown option -jt; did you mean -j -t\? short flags go one at a time/,
  },
  // Unknown commands: the closest one.
  { args: ["servee"], message: /^fibrpc: unknown command "servee"; did you mean "serve"\? see fibrpc --help$/ },
  { args: ["servee", "--help"], message: /^fibrpc: unknown command "servee"; did you mean "serve"\?/ },
  {
    args: ["--json", "call", "30"],
    message: /^fibrpc: unknown option --json before the command: options go after it \(fibrpc call --json\)/,
  },
  // Short flags go through the same strict scan.
  { args: ["call", "30", "-t"], message: /^fibrpc: --timeout needs a value \(duration\)$/ },
  { args: ["call", "30", "-t", "-j"], message: /^fibrpc: --timeout needs a value \(duration\) before -j$/ },
  { args: ["serve", "-w"], message: /^fibrpc: --workers needs a value \(count\)$/ },
  { args: ["bench", "-r", "--json"], message: /^fibrpc: --requests needs a value \(count\) before --json$/ },
  { args: ["bench", "-n", "--json"], message: /^fibrpc: --n needs a value \(n\|min-max\) before --json$/ },
  { args: ["bench", "-c", "-j"], message: /^fibrpc: --concurrency needs a value \(count\) before -j$/ },
  {
    args: ["call", "30", "-t", "1s", "--timeout", "2s"],
    message: /^fibrpc: --timeout given twice \(1s, 2s\); give it once$/,
  },
  { args: ["serve", "-w", "1", "-w", "2"], message: /^fibrpc: --workers given twice \(1, 2\); give it once$/ },
  { args: ["bench", "-j", "--json"], message: /^fibrpc: --json given twice; give it once$/ },
  { args: ["call", "-j=yes", "30"], message: /^fibrpc: --json takes no value \(got -j=yes\)/ },
  { args: ["call", "-h=x", "30"], message: /^fibrpc: -h takes no value \(got -h=x\); give -h$/ },
  { args: ["-h=x"], message: /^fibrpc: -h takes no value \(got -h=x\); give -h$/ },
  { args: ["--version=2", "call"], message: /^fibrpc: --version takes no value \(got --version=2\); give --version$/ },
  { args: ["bench", "-r", "0"], message: /--requests must be/ },
  // -n is --n (fib's n), as its letter says; not the number of calls (that is -r).
  // bench checks every answer against fib(n) it computes itself: n up to the largest --max-n.
  {
    args: ["bench", "-n", "10000001"],
    message: /^fibrpc: --n must be at most 10000000 \(the largest serve --max-n\), got 10000001$/,
  },
  { args: ["call", "30", "-t", "600h"], message: /^fibrpc: --timeout must be at most 2147483647ms/ },
  { args: ["call", "30", "--reply-queue", "shared"], message: /--reply-queue must be direct or exclusive/ },
  {
    args: ["call", "30"],
    env: { FIBRPC_REPLY_QUEUE: "shared" },
    message: /--reply-queue must be direct or exclusive, got "shared"/,
  },
  { args: ["call", "30"], env: { FIBRPC_LOG_LEVEL: "loud" }, message: /--log-level must be one of/ },
  { args: ["serve"], env: { FIBRPC_QUEUE_TYPE: "stream" }, message: /--queue-type must be one of classic, quorum/ },
  { args: ["serve", "--log-format", "xml"], message: /--log-format must be one of pretty, json/ },
  { args: ["call", "30"], env: { FIBRPC_JSON: "maybe" }, message: /FIBRPC_JSON must be true or false/ },
  // Durations: beyond 2^31 - 1 ms a timer fires at once (or never drains).
  {
    args: ["call", "30", "--timeout", "600h"],
    message:
      /^fibrpc: --timeout must be at most 2147483647ms \(about 24\.8 days, the longest timer the runtime holds\), got "600h"$/,
  },
  { args: ["call", "30"], env: { FIBRPC_TIMEOUT: "25d" }, message: /--timeout must be a duration/ },
  { args: ["call", "30"], env: { FIBRPC_TIMEOUT: "596h1" }, message: /--timeout must be a duration/ },
  { args: ["call", "30"], env: { FIBRPC_TIMEOUT: "597h" }, message: /--timeout must be at most 2147483647ms/ },
  { args: ["serve", "--drain-timeout", "600h"], message: /--drain-timeout must be at most 2147483647ms/ },
  { args: ["bench", "--duration", "600h"], message: /--duration must be at most 2147483647ms/ },
  {
    args: ["health", "--status-file", "/nonexistent", "--max-age", "600h"],
    message: /--max-age must be at most 2147483647ms/,
  },
  {
    args: ["health", "--status-file", "/nonexistent", "--max-age", "3s"],
    message:
      /^fibrpc: --max-age must be at least 6s, got "3s": serve rewrites its status every 5s, so a shorter one calls a healthy serve stuck$/m,
  },
  { args: ["call", "30", "--timeout", "0"], message: /--timeout must be at least 1ms/ },
  {
    args: ["health", "--status-file", "/nonexistent", "--max-age", "0"],
    message: /^fibrpc: --max-age must be at least 6s, got "0", seconds without a unit: serve rewrites/m,
  },
  {
    args: ["serve", "--queue-type", "quorum"],
    env: { FIBRPC_QUEUE: "q".repeat(244) },
    message: /^fibrpc: FIBRPC_QUEUE must be at most 243 bytes long \(UTF-8\) with --queue-type quorum/m,
  },
  { args: ["call", "30", "--timeout", "1e3"], message: /--timeout must be a duration like 500ms, 5s or 2m, got "1e3"/ },
  { args: ["call", "30", "--timeout", "Infinity"], message: /--timeout must be a duration/ },
  { args: ["call", "30", "--timeout", "-1s"], message: /--timeout must be a duration/ },
  // A negative n is an invalid n, wherever it stands.
  { args: ["call", "-5"], message: /^fibrpc: invalid n "-5": n must not be negative$/ },
  { args: ["call", "--timeout", "1s", "-5"], message: /invalid n "-5": n must not be negative/ },
  { args: ["call", "--json", "-5"], message: /invalid n "-5"/ },
  // serve's HTTP address.
  {
    args: ["serve", "--http-port", "9", "--http-host", "not a host"],
    message: /--http-host must be an IP address or a host name/,
  },
  { args: ["serve", "--http-host", "0.0.0.0"], message: /--http-host has no effect without --http-port/ },
  {
    args: ["serve", "--http-port", "19999", "--http-host", "203.0.113.7"],
    message: /--http-host 203\.0\.113\.7 is not an address of this machine/,
  },
  // A host name that does not resolve, or digits that are no IPv4 address.
  {
    args: ["serve", "--http-port", "19997", "--http-host", "nosuchhost.invalid"],
    message: /^fibrpc: --http-host nosuchhost\.invalid (does not resolve|is not an address of this machine)/,
  },
  { args: ["serve", "--http-port", "19997", "--http-host", "999.1.1.1"], message: /--http-host must be an IP address/ },
  // A word for a command that takes none: a value whose flag was left out is not ignored.
  { args: ["serve", "4"], message: /^fibrpc: unexpected argument "4": fibrpc serve takes options only/ },
  { args: ["bench", "extra", "-r", "10"], message: /^fibrpc: unexpected argument "extra": fibrpc bench takes/ },
  { args: ["health", "extra"], message: /^fibrpc: unexpected argument "extra": fibrpc health takes/ },
  // TLS files that hold no certificate or key: the user's to fix, before any connection.
  { args: ["call", "30", "--tls-ca", NOT_PEM], message: /^fibrpc: --tls-ca "[^"]+" is not a usable PEM certificate/ },
  { args: ["serve", "--tls-ca", NOT_PEM], message: /--tls-ca "[^"]+" is not a usable PEM certificate/ },
  {
    args: ["bench", "--tls-cert", NOT_PEM, "--tls-key", NOT_PEM],
    message: /--tls-cert "[^"]+" is not a usable PEM certificate/,
  },
  // A status file serve can never write: `fibrpc health` would say "not running" all along.
  { args: ["serve", "--status-file", "/nonexistent/dir/status.json"], message: /^fibrpc: cannot write --status-file/ },
  // Queue names the broker would not declare as given (a newline dropped), or whose dead-letter
  // queue's name would be too long: serve used to retry them as if the broker were down.
  { args: ["serve", "--queue", "jobs\nX"], message: /^fibrpc: --queue must not hold control characters/ },
  { args: ["call", "5", "--queue", "a\tb"], message: /^fibrpc: --queue must not hold control characters/ },
  {
    args: ["call", "5", "--no-wait", "--reply-to", "results\n"],
    message: /^fibrpc: --reply-to must not hold control characters/,
  },
  {
    args: ["serve", "--queue-type", "quorum", "--queue", "q".repeat(244)],
    message: /^fibrpc: --queue must be at most 243 bytes long \(UTF-8\) with --queue-type quorum: /,
  },
  // An option of the pipeline set in the environment is named as such, not as a flag nobody gave.
  { args: ["call", "30"], env: { FIBRPC_REPLY_TO: "jobs" }, message: /^fibrpc: FIBRPC_REPLY_TO needs --no-wait: / },
  { args: ["call", "30"], env: { FIBRPC_NO_WAIT: "1" }, message: /^fibrpc: FIBRPC_NO_WAIT needs --reply-to QUEUE: / },
  // Given as near as the pipeline: which was meant is not known (a farther one is ignored: pipeline.test.ts).
  {
    args: ["call", "30"],
    env: { FIBRPC_RETRY: "2", FIBRPC_REPLY_TO: "jobs", FIBRPC_NO_WAIT: "1" },
    message: /^fibrpc: FIBRPC_RETRY applies to calls that wait for their reply, not to --no-wait$/m,
  },
  {
    args: ["call", "30", "--retry", "2", "--reply-to", "jobs"],
    env: { FIBRPC_NO_WAIT: "1" },
    message: /^fibrpc: --retry applies to calls that wait for their reply, not to --no-wait$/m,
  },
  {
    args: ["call", "30", "--reply-queue", "exclusive", "--reply-to", "jobs", "--no-wait"],
    message: /^fibrpc: --reply-queue chooses where a waiting call's replies come back; with --no-wait they go to/,
  },
  // Turned off as near as it was set: still a --reply-to without --no-wait.
  {
    args: ["call", "30", "--reply-to", "jobs", "--no-no-wait"],
    message: /^fibrpc: --reply-to needs --no-wait: /,
  },
  // --reply-to queues whose replies would be lost.
  {
    args: ["call", "30", "--no-wait", "--reply-to", "amq.rabbitmq.reply-to"],
    message: /--reply-to "amq\.rabbitmq\.reply-to": names that begin with "amq\." are the broker's/,
  },
  {
    args: ["call", "30", "--no-wait", "--reply-to", "jobs", "--queue", "jobs"],
    message: /--reply-to "jobs" is the request queue/,
  },
  // connection_timeout is one socket option for all of serve's URLs.
  {
    args: ["serve", "--url", "amqp://h1?connection_timeout=100,amqp://h2"],
    message: /serve uses one connection_timeout for all its broker URLs; the 1st gives 100, the 2nd none/,
  },
];

describe("misread flags are usage errors: exit 64, one line, nothing on stdout", () => {
  for (const c of cases) {
    test(`${c.args.join(" ")}${c.env ? ` with ${JSON.stringify(c.env)}` : ""}`, async () => {
      // Refused before any connection: NOWHERE would have given another error (call), or had
      // serve retry forever (and this test never finish).
      const { code, stdout, stderr } = await run(c.args, { ...NOWHERE, ...c.env });
      expect(code, stderr).toBe(64);
      expect(stdout).toBe("");
      expect(stderr.trim().split("\n"), stderr).toHaveLength(1);
      expect(stderr.trim()).toMatch(c.message);
      expect(stderr).not.toMatch(/\[worker-|workers serving/); // serve started none
    });
  }

  test("config-file values get the same checks", async () => {
    for (const [line, message] of [
      ["FIBRPC_TIMEOUT=600h", /--timeout must be at most 2147483647ms/],
      ["FIBRPC_REPLY_QUEUE=shared", /--reply-queue must be direct or exclusive/],
      ["FIBRPC_LOG_FORMAT=xml", /--log-format must be one of/],
      ["FIBRPC_URL=amqp://u:s3cret%@h", /the 1st broker URL \(FIBRPC_URL in the --config file\) has a "%"/],
    ] as const) {
      const { code, stdout, stderr } = await run(["call", "30", "--config", configFile(`${line}\n`)]);
      expect(code, stderr).toBe(64);
      expect(stdout).toBe("");
      expect(stderr.trim().split("\n")).toHaveLength(1);
      expect(stderr).toMatch(message);
    }
  });

  test("a config file is named as it was given (--config or FIBRPC_CONFIG), and read only so far", async () => {
    const fromEnv = await run(["call", "30"], { FIBRPC_CONFIG: join(dir, "missing.env") });
    expect([fromEnv.code, fromEnv.stderr]).toEqual([64, expect.stringMatching(/^fibrpc: cannot read FIBRPC_CONFIG "/)]);
    const bad = await run(["call", "30", "--config", configFile("FIBRPC_JSON=maybe\n")]);
    expect(bad.stderr).toBe('fibrpc: FIBRPC_JSON in the --config file must be true or false, got "maybe"\n');
    const badFromEnv = await run(["call", "30"], { FIBRPC_CONFIG: configFile("FIBRPC_TIMEOUT=soon\n") });
    expect(badFromEnv.stderr).toBe(
      'fibrpc: --timeout must be a duration like 500ms, 5s or 2m, got "soon" (from FIBRPC_TIMEOUT in the FIBRPC_CONFIG file)\n',
    );
    // A PEM file too: /dev/zero is refused at 4 MiB.
    const pem = await run(["call", "30", "--tls-ca", "/dev/zero"], NOWHERE);
    expect([pem.code, pem.stderr]).toEqual([64, 'fibrpc: cannot read --tls-ca "/dev/zero": larger than 4 MiB\n']);
    // /dev/zero given by mistake: refused at its first MiB, not read until memory runs out.
    const endless = await run(["call", "30", "--config", "/dev/zero"]);
    expect([endless.code, endless.stderr]).toEqual([
      64,
      'fibrpc: cannot read --config "/dev/zero": larger than 1 MiB: a config file is a few FIBRPC_*=value lines\n',
    ]);
  });

  test("a config-file line that is not a setting is named by its line, and its text (a password) not shown", async () => {
    for (const text of [
      "FIBRPC_URL amqp://guest:s3cretpw@127.0.0.1\n",
      'FIBRPC_URL="amqp://guest:s3cretpw@127.0.0.1\n',
    ]) {
      const { code, stdout, stderr } = await run(["call", "30", "--config", configFile(text)]);
      expect(code, stderr).toBe(64);
      expect(stdout).toBe("");
      expect(stderr.trim()).toMatch(
        /^fibrpc: line 1 of --config "[^"]+" (is not a setting|opens a quote it never closes);/,
      );
      expect(stderr).not.toContain("s3cretpw");
    }
  });

  test("config-file keys are read as strictly as flags: an unknown one is named, with its line and the closest key", async () => {
    for (const [command, text, message] of [
      [
        "call",
        "FIBRPC_QUEUE=q\n# a comment\nFIBRPC_TIMOUT=5s\n",
        /^fibrpc: unknown key FIBRPC_TIMOUT in --config "[^"]+" \(line 3\); did you mean FIBRPC_TIMEOUT\?$/,
      ],
      [
        "serve",
        "FIBRPC_WORKER=2\n",
        /^fibrpc: unknown key FIBRPC_WORKER in --config "[^"]+" \(line 1\); did you mean FIBRPC_WORKERS\?$/,
      ],
      [
        "bench",
        "TIMEOUT=5s\n",
        /^fibrpc: unknown key TIMEOUT in --config "[^"]+" \(line 1\): only FIBRPC_\* settings belong there; did you mean FIBRPC_TIMEOUT\?$/,
      ],
      [
        "health",
        "FIBRPC_STATUS_FILE=/s.json\nFIBRPC_CONFIG=/other.env\n",
        /^fibrpc: FIBRPC_CONFIG in --config "[^"]+" \(line 2\): a config file cannot name another one; remove the line$/,
      ],
    ] as const) {
      const { code, stdout, stderr } = await run([command, "--config", configFile(text)], NOWHERE);
      expect(code, stderr).toBe(64);
      expect(stdout).toBe("");
      expect(stderr.trim()).toMatch(message);
      expect(stderr.trim().split("\n")).toHaveLength(1);
    }
  });

  test("one config file may serve every command: keys of another command's options are accepted", async () => {
    const file = configFile(
      "FIBRPC_WORKERS=2\nFIBRPC_MAX_N=2000000\nFIBRPC_CONCURRENCY=5\nFIBRPC_TIMEOUT=1s\nFIBRPC_STATUS_FILE=/nonexistent/status.json\n",
    );
    // call reads its own (FIBRPC_TIMEOUT) and goes on to connect: refused by the broker nobody listens on, not by the file.
    const call = await run(["call", "30", "--config", file], NOWHERE);
    expect(call.code, call.stderr).toBe(68);
    // health reads FIBRPC_STATUS_FILE from it and finds no status there.
    const health = await run(["health", "--config", file]);
    expect(health.stderr).toContain("/nonexistent/status.json");
    expect(health.code, health.stderr).toBe(69);
  });

  test("values that look like flags after --, and values starting with a digit after a dash, are not flags", async () => {
    // "--timeout -1s" takes "-1s" as the value (and refuses it as a duration, not as a missing value).
    const r = await run(["call", "30", "--timeout", "-1s"], NOWHERE);
    expect(r.stderr).toMatch(/--timeout must be a duration/);
  });
});

describe("a FIBRPC_* variable that sets nothing", () => {
  test("is a warning naming the closest variable, and the run goes on", async () => {
    const r = await run(["call", "30"], { ...NOWHERE, FIBRPC_TIMOUT: "5s" });
    expect(r.code).toBe(68);
    const lines = r.stderr.trimEnd().split("\n");
    expect(lines[0]).toMatch(
      / WARN {2}FIBRPC_TIMOUT is set, but fibrpc has no such variable \(did you mean FIBRPC_TIMEOUT\?\); it is ignored$/,
    );
    expect(lines.at(-1)).toMatch(/^fibrpc: cannot reach the broker/);
  });
});

describe("serve --log-format json", () => {
  test("what stops serve at start-up is a JSON log entry too, as its other errors are", async () => {
    const r = await run(["serve", "--log-format", "json", "--tls-ca", join(dir, "missing.pem")], NOWHERE);
    expect(r.code).toBe(64);
    const lines = r.stderr.trimEnd().split("\n");
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0]!)).toEqual({
      time: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
      level: "error",
      message: expect.stringMatching(/^cannot read --tls-ca ".*missing\.pem": ENOENT/),
    });
  });
});

describe("--version after a command", () => {
  test("prints the version line and runs nothing: serve -v neither connects nor serves", async () => {
    const root = await run(["--version"]);
    for (const args of [
      ["serve", "-v"],
      ["call", "30", "--version"],
      ["bench", "-r", "5", "-v"],
      ["health", "-v"],
    ]) {
      // A broker nobody listens on: serve would say it cannot reach it, call would fail with exit 68.
      const r = await run(args, NOWHERE);
      expect([r.code, r.stdout, r.stderr], args.join(" ")).toEqual([0, root.stdout, ""]);
    }
    expect(root.stdout).toMatch(/^fibrpc \d+\.\d+\.\d+ \(/);
  });
});

describe("several --url: tried in order", () => {
  for (const [name, urls] of [
    ["repeated", ["--url", "amqp://guest:guest@127.0.0.1:1", "--url", `amqp://guest:guest@127.0.0.1:${BROKER_PORT}`]],
    ["comma-separated", ["--url", `amqp://guest:guest@127.0.0.1:1,amqp://guest:guest@127.0.0.1:${BROKER_PORT}`]],
    [
      "both",
      [
        "--url",
        "amqp://guest:guest@127.0.0.1:1,amqp://guest:guest@127.0.0.1:2",
        "--url",
        `amqp://guest:guest@127.0.0.1:${BROKER_PORT}`,
      ],
    ],
  ] as const) {
    test(`${name}: the first is refused, the call is answered via the next`, async () => {
      const queue = uniqueQueue();
      const server = await startServe(["--workers", "1", "--queue", queue]);
      const { code, stdout, stderr } = await run(["call", "--queue", queue, "--log-level", "debug", ...urls, "30"]);
      expect(code, stderr).toBe(0);
      expect(stdout).toBe("832040\n");
      expect(stderr).toContain("cannot reach the broker at amqp://guest:***@127.0.0.1:1: connection refused");
      expect(await server.stop()).toBe(0);
    });
  }

  test("serve takes them in order too", async () => {
    const queue = uniqueQueue();
    const server = await startServe([
      "--workers",
      "1",
      "--queue",
      queue,
      "--log-level",
      "debug",
      "--url",
      "amqp://guest:guest@127.0.0.1:1",
      "--url",
      `amqp://guest:guest@127.0.0.1:${BROKER_PORT}`,
    ]);
    expect(server.log).toContain(
      `on amqp://guest:***@127.0.0.1:1, amqp://guest:***@127.0.0.1:${BROKER_PORT} with 1 worker,`,
    );
    expect(server.log).toContain(`connected to amqp://guest:***@127.0.0.1:${BROKER_PORT}`);
    expect(await server.stop()).toBe(0);
  });
});

/** The status of GET url, or the error's code if nothing answers (bounded). */
async function probe(url: string): Promise<number | string> {
  try {
    return (await fetch(url, { signal: AbortSignal.timeout(3_000) })).status;
  } catch (err) {
    return (err as { code?: string }).code ?? String(err);
  }
}

/**
 * An address of this machine other than 127.0.0.1, always there: Linux routes all of 127.0.0.0/8
 * to the loopback interface, so 127.0.0.2 answers a socket bound to it or to 0.0.0.0, and not one
 * bound to 127.0.0.1 (a machine without a network interface of its own has it too). The tests
 * below run everywhere rather than skip where no other interface is up.
 */
const otherAddress = "127.0.0.2";

describe("--http-host", () => {
  test("default: metrics on loopback only", async () => {
    const port = await freePort();
    const server = await startServe(["--workers", "1", "--queue", uniqueQueue(), "--http-port", String(port)]);
    expect(server.log).toContain(`HTTP on http://127.0.0.1:${port}: /metrics, /healthz, /readyz`);
    expect(await probe(`http://127.0.0.1:${port}/healthz`)).toBe(200);
    expect(await probe(`http://${otherAddress}:${port}/healthz`)).not.toBe(200);
    expect(await server.stop()).toBe(0);
  });

  test("0.0.0.0 (the image's setting, here from FIBRPC_HTTP_HOST): every interface", async () => {
    const port = await freePort();
    const server = await startServe(["--workers", "1", "--queue", uniqueQueue(), "--http-port", String(port)], {
      FIBRPC_HTTP_HOST: "0.0.0.0",
    });
    expect(await probe(`http://${otherAddress}:${port}/healthz`)).toBe(200);
    expect(await probe(`http://127.0.0.1:${port}/healthz`)).toBe(200);
    expect(await server.stop()).toBe(0);
  });

  test("one address: that one only", async () => {
    const port = await freePort();
    const server = await startServe([
      "--workers",
      "1",
      "--queue",
      uniqueQueue(),
      "--http-port",
      String(port),
      "--http-host",
      otherAddress,
    ]);
    expect(await probe(`http://${otherAddress}:${port}/metrics`)).toBe(200);
    expect(await probe(`http://127.0.0.1:${port}/metrics`)).not.toBe(200);
    expect(await server.stop()).toBe(0);
  });
});
