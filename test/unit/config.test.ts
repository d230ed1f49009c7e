import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { formatDuration, parseDuration, parseHost, parseSwitch, parseWholeNumber } from "../../src/config.ts";
import { ExitCode, FibrpcError, mostSevere } from "../../src/errors.ts";
import { loadOptions } from "../../src/options-resolve.ts";

describe("parseDuration", () => {
  const cases: [string, number][] = [
    ["500ms", 500],
    ["5s", 5000],
    ["1.5s", 1500],
    ["2m", 120_000],
    ["1h", 3_600_000],
    ["3", 3000],
    ["0.5ms", 1],
    [" 2s ", 2000],
    ["596h", 2_145_600_000],
    ["2147483647ms", 2 ** 31 - 1],
  ];
  for (const [input, ms] of cases) test(input, () => expect(parseDuration("timeout", input)).toBe(ms));
  const bad: [string, RegExp][] = [
    ["", /must be a duration/],
    ["abc", /must be a duration/],
    ["5x", /must be a duration/],
    ["-1s", /must be a duration/],
    ["1e3", /must be a duration/],
    ["Infinity", /must be a duration/],
    ["0", /at least 1ms/],
    ["0s", /at least 1ms/],
    ["0.4ms", /at least 1ms/],
    // Beyond setTimeout's limit a timer fires at once: refused, saying the maximum.
    ["600h", /--timeout must be at most 2147483647ms \(about 24\.8 days/],
    ["2147483648ms", /at most 2147483647ms/],
    ["99999999999999999999999", /at most/],
    // A bare number is seconds: said, since a number this size looks like milliseconds.
    ["2147483647", /at most 2147483647ms .*, got "2147483647", seconds without a unit$/],
    ["0.0001", /at least 1ms, got "0.0001", seconds without a unit$/],
  ];
  for (const [input, message] of bad) {
    test(`refuses ${JSON.stringify(input)}`, () => expect(() => parseDuration("timeout", input)).toThrow(message));
  }
});

describe("options", () => {
  test("whole numbers within bounds", () => {
    expect(parseWholeNumber("workers", "3", 1, 10)).toBe(3);
    expect(parseWholeNumber("workers", " 10 ", 1, 10)).toBe(10);
    for (const bad of ["0", "11", "2.5", "x", "-1", ""])
      expect(() => parseWholeNumber("workers", bad, 1, 10)).toThrow(FibrpcError);
  });
  test("on/off values", () => {
    for (const on of ["1", "true", "YES", "on"]) expect(parseSwitch("FIBRPC_JSON", on)).toBe(true);
    for (const off of ["0", "false", "No", "off"]) expect(parseSwitch("FIBRPC_JSON", off)).toBe(false);
    expect(() => parseSwitch("FIBRPC_JSON", "maybe")).toThrow('FIBRPC_JSON must be true or false, got "maybe"');
  });
  test("durations shown as they are read back", () => {
    for (const ms of [1, 500, 1500, 10_000, 15_000, 30_000, 120_000, 3_600_000, 2 ** 31 - 1])
      expect(parseDuration("timeout", formatDuration(ms))).toBe(ms);
    expect(formatDuration(30_000)).toBe("30s");
    expect(formatDuration(120_000)).toBe("2m");
  });
  test("listen addresses", () => {
    for (const [input, host] of [
      ["127.0.0.1", "127.0.0.1"],
      ["0.0.0.0", "0.0.0.0"],
      ["::", "::"],
      ["[::1]", "::1"],
      ["metrics.local", "metrics.local"],
    ])
      expect(parseHost("http-host", input!)).toBe(host!);
    for (const bad of ["", "a b", "1.2.3.4:80", "http://x", "-x", "x_y", "999.1.1.1", "10.0.0", "1.2.3.4."])
      expect(() => parseHost("http-host", bad)).toThrow(/--http-host must be an IP address or a host name/);
  });
});

describe("exit codes", () => {
  test("the most severe wins", () => {
    expect(mostSevere([])).toBe(ExitCode.OK);
    expect(mostSevere([ExitCode.OK, ExitCode.REMOTE_ERROR])).toBe(ExitCode.REMOTE_ERROR);
    expect(mostSevere([ExitCode.REMOTE_ERROR, ExitCode.TEMPORARY, ExitCode.OK])).toBe(ExitCode.TEMPORARY);
    expect(mostSevere([ExitCode.TEMPORARY, ExitCode.NO_SERVER])).toBe(ExitCode.NO_SERVER);
  });
  test("codes follow sysexits", () => {
    expect(new FibrpcError("USAGE", "x").exitCode).toBe(64);
    expect(new FibrpcError("NO_CONSUMER", "x").exitCode).toBe(69);
    expect(new FibrpcError("TIMEOUT", "x").exitCode).toBe(75);
    expect(new FibrpcError("TIMEOUT", "x").retryable).toBe(true);
    expect(new FibrpcError("QUEUE_NOT_FOUND", "x").retryable).toBe(false);
  });
});

describe("a --config file: any command's keys, and nothing else", () => {
  const dir = mkdtempSync(join(tmpdir(), "fibrpc-config-unit-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  let files = 0;
  const fileWith = (text: string) => {
    const path = join(dir, `${++files}.env`);
    writeFileSync(path, text);
    return path;
  };
  const load = (command: "call" | "serve" | "bench" | "health", text: string) => {
    const path = fileWith(text);
    return { path, options: () => loadOptions(command, { rawArgs: ["--config", path], env: {} }) };
  };

  test("every form dotenv reads is a setting: export, quotes over lines, comments, blanks, ': '", async () => {
    const text = [
      "# fibrpc",
      "",
      "export FIBRPC_QUEUE='q#1' # the queue",
      '  FIBRPC_URL="amqp://guest:guest@127.0.0.1"',
      "FIBRPC_TIMEOUT: 2s",
      "FIBRPC_RETRY=",
      'FIBRPC_LOG_FORMAT="json"',
      "FIBRPC_REPLY_QUEUE=`direct`",
      "   ",
    ].join("\r\n");
    const { options } = load("call", `${text}\n`);
    expect(await options()).toMatchObject({ queue: "q#1", timeout: 2000, logFormat: "json", replyQueue: "direct" });
  });

  test("a quote closed before the value's end is no open quote (dotenv keeps the value as written)", async () => {
    expect(await load("call", "FIBRPC_QUEUE='a'b\n").options()).toMatchObject({ queue: "'a'b" });
    expect(await load("call", 'FIBRPC_QUEUE="x" y\n').options()).toMatchObject({ queue: '"x" y' });
  });

  test("keys of another command's options are accepted (one file for serve, call and bench)", async () => {
    const { options } = load(
      "call",
      "FIBRPC_WORKERS=3\nFIBRPC_MAX_N=2000000\nFIBRPC_CONCURRENCY=5\nFIBRPC_STATUS_FILE=/s.json\nFIBRPC_TIMEOUT=2s\n",
    );
    expect(await options()).toMatchObject({ timeout: 2000, from: expect.objectContaining({ timeout: "file" }) });
    const serve = load("serve", "FIBRPC_TIMEOUT=2s\nFIBRPC_RETRY=3\nexport FIBRPC_WORKERS=2\n");
    expect(await serve.options()).toMatchObject({ workers: 2 });
  });

  const refused: { name: string; text: string; error: (path: string) => string }[] = [
    {
      name: "a mistyped key: named with its line, and the closest known key",
      text: "# settings\nFIBRPC_QUEUE=q\n\nFIBRPC_TIMOUT=5s\n",
      error: (p) => `unknown key FIBRPC_TIMOUT in --config ${JSON.stringify(p)} (line 4); did you mean FIBRPC_TIMEOUT?`,
    },
    {
      name: "an unknown key with nothing close",
      text: "FIBRPC_FROBNICATE=1\n",
      error: (p) =>
        `unknown key FIBRPC_FROBNICATE in --config ${JSON.stringify(p)} (line 1); the keys are the variables listed in fibrpc --help`,
    },
    {
      name: "a key without the prefix: only FIBRPC_* belong there, and the one it may stand for",
      text: "FIBRPC_QUEUE=q\nTIMEOUT=5s\n",
      error: (p) =>
        `unknown key TIMEOUT in --config ${JSON.stringify(p)} (line 2): only FIBRPC_* settings belong there; did you mean FIBRPC_TIMEOUT?`,
    },
    {
      name: "a key in lower case",
      text: "fibrpc_workers=3\n",
      error: (p) =>
        `unknown key fibrpc_workers in --config ${JSON.stringify(p)} (line 1): only FIBRPC_* settings belong there; did you mean FIBRPC_WORKERS?`,
    },
    {
      name: "another program's variable",
      text: "PATH=/nowhere\n",
      error: (p) =>
        `unknown key PATH in --config ${JSON.stringify(p)} (line 1): only FIBRPC_* settings belong there; the keys are the variables listed in fibrpc --help`,
    },
    {
      name: "several: the first by line, the others counted",
      text: "FIBRPC_URL=amqp://h\nexport FIBRPC_RETRYS=2\nFOO=1\nFIBRPC_JSNO=1\n",
      error: (p) =>
        `unknown key FIBRPC_RETRYS in --config ${JSON.stringify(p)} (line 2); did you mean FIBRPC_RETRY? (2 more: FOO, FIBRPC_JSNO)`,
    },
    {
      name: "a line without '=': an error naming its line, never its text (it may hold a password)",
      text: "# broker\n\nFIBRPC_URL amqp://guest:secretpw@127.0.0.1\nFIBRPC_TIMEOUT=2s\n",
      error: (p) =>
        `line 3 of --config ${JSON.stringify(p)} is not a setting; each line is FIBRPC_NAME=value, a # comment or blank`,
    },
    {
      name: "a stray word, a key without a value's '=', a value without a key",
      text: "FIBRPC_QUEUE=q\ngarbage\nFIBRPC_TIMEOUT\n=5s\n",
      error: (p) =>
        `line 2 of --config ${JSON.stringify(p)} is not a setting; each line is FIBRPC_NAME=value, a # comment or blank`,
    },
    {
      name: "another kind of file (/etc/passwd's lines)",
      text: "root:x:0:0:root:/root:/bin/bash\n",
      error: (p) =>
        `line 1 of --config ${JSON.stringify(p)} is not a setting; each line is FIBRPC_NAME=value, a # comment or blank`,
    },
    {
      name: "a quote opened and never closed",
      text: 'FIBRPC_QUEUE="q"\r\nFIBRPC_URL="amqp://guest:secretpw@127.0.0.1\r\nFIBRPC_TIMEOUT=2s\r\n',
      error: (p) =>
        `line 2 of --config ${JSON.stringify(p)} opens a quote it never closes; each line is FIBRPC_NAME=value, a # comment or blank`,
    },
    {
      name: "a quote never closed after blank lines: its own line, not the first blank one",
      text: "# a\nFIBRPC_QUEUE=q\n\n\nFIBRPC_QUEUE_TYPE=\"classic'\n",
      error: (p) =>
        `line 5 of --config ${JSON.stringify(p)} opens a quote it never closes; each line is FIBRPC_NAME=value, a # comment or blank`,
    },
    {
      name: "a # right after an unquoted value: dotenv would cut the value there (serving queue jobs, not jobs#1)",
      text: "FIBRPC_TIMEOUT=2s # fine\nFIBRPC_QUEUE=jobs#1\n",
      error: (p) =>
        `line 2 of --config ${JSON.stringify(p)} has a # right after its value, which starts a comment in this ` +
        'format and would cut the value there: quote the value (FIBRPC_QUEUE="jobs#1"), or put a space before a ' +
        "comment; each line is FIBRPC_NAME=value, a # comment or blank",
    },
    {
      name: "the same after a value that opens and closes a quote and goes on (dotenv keeps it as written)",
      text: "FIBRPC_QUEUE='a'b#c\n",
      error: (p) =>
        `line 1 of --config ${JSON.stringify(p)} has a # right after its value, which starts a comment in this ` +
        'format and would cut the value there: quote the value (FIBRPC_QUEUE="jobs#1"), or put a space before a ' +
        "comment; each line is FIBRPC_NAME=value, a # comment or blank",
    },
    {
      name: "a key set twice, as a flag given twice: both lines named (blank lines and CRLF counted right)",
      text: "FIBRPC_URL=amqp://a\r\n\r\n# b\r\n  export FIBRPC_URL='amqp://b'\r\n",
      error: (p) =>
        `FIBRPC_URL is set twice in --config ${JSON.stringify(p)} (lines 1 and 4); ` +
        "keep one (several broker URLs go in one FIBRPC_URL, comma-separated)",
    },
    {
      name: "another key set twice: no word of URLs",
      text: "FIBRPC_TIMEOUT=1s\nFIBRPC_TIMEOUT=2s\n",
      error: (p) => `FIBRPC_TIMEOUT is set twice in --config ${JSON.stringify(p)} (lines 1 and 2); keep one`,
    },
    {
      name: "a mistyped key set twice: the unknown key is said first, with its closest",
      text: "FIBRPC_TIMOUT=1s\nFIBRPC_TIMOUT=2s\n",
      error: (p) => `unknown key FIBRPC_TIMOUT in --config ${JSON.stringify(p)} (line 1); did you mean FIBRPC_TIMEOUT?`,
    },
    {
      name: "FIBRPC_CONFIG: a file cannot name another one",
      text: "FIBRPC_QUEUE=q\nFIBRPC_CONFIG=/elsewhere.env\n",
      error: (p) =>
        `FIBRPC_CONFIG in --config ${JSON.stringify(p)} (line 2): a config file cannot name another one; remove the line`,
    },
  ];
  for (const c of refused) {
    test(c.name, async () => {
      for (const command of ["call", "serve", "health"] as const) {
        const { path, options } = load(command, c.text);
        const error = await options().then(
          () => undefined,
          (err: unknown) => err,
        );
        expect(error, command).toBeInstanceOf(FibrpcError);
        expect((error as FibrpcError).code).toBe("USAGE");
        expect((error as FibrpcError).message).toBe(c.error(path));
      }
    });
  }
});
