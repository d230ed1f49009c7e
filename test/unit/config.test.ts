import { describe, expect, test } from "bun:test";
import { formatDuration, parseDuration, parseHost, parseSwitch, parseWholeNumber } from "../../src/config.ts";
import { ExitCode, FibrpcError, mostSevere } from "../../src/errors.ts";

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
  ];
  for (const [input, message] of bad) {
    test(`refuses ${JSON.stringify(input)}`, () => expect(() => parseDuration("timeout", input)).toThrow(message));
  }
});

describe("options", () => {
  test("whole numbers within bounds", () => {
    expect(parseWholeNumber("workers", "3", 1, 10)).toBe(3);
    expect(parseWholeNumber("workers", " 10 ", 1, 10)).toBe(10);
    for (const bad of ["0", "11", "2.5", "x", "-1", ""]) expect(() => parseWholeNumber("workers", bad, 1, 10)).toThrow(FibrpcError);
  });
  test("on/off values", () => {
    for (const on of ["1", "true", "YES", "on"]) expect(parseSwitch("FIBRPC_JSON", on)).toBe(true);
    for (const off of ["0", "false", "No", "off"]) expect(parseSwitch("FIBRPC_JSON", off)).toBe(false);
    expect(() => parseSwitch("FIBRPC_JSON", "maybe")).toThrow('FIBRPC_JSON must be true or false, got "maybe"');
  });
  test("durations shown as they are read back", () => {
    for (const ms of [1, 500, 1500, 10_000, 15_000, 30_000, 120_000, 3_600_000, 2 ** 31 - 1]) expect(parseDuration("timeout", formatDuration(ms))).toBe(ms);
    expect(formatDuration(30_000)).toBe("30s");
    expect(formatDuration(120_000)).toBe("2m");
  });
  test("listen addresses", () => {
    for (const [input, host] of [["127.0.0.1", "127.0.0.1"], ["0.0.0.0", "0.0.0.0"], ["::", "::"], ["[::1]", "::1"], ["metrics.local", "metrics.local"]]) expect(parseHost("http-host", input!)).toBe(host!);
    for (const bad of ["", "a b", "1.2.3.4:80", "http://x", "-x", "x_y"]) expect(() => parseHost("http-host", bad)).toThrow(/--http-host must be an IP address or a host name/);
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
