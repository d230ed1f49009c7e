import { describe, expect, test } from "bun:test";
import { maskSecrets, parseBrokerUrl, parseDuration, parseIntOption } from "../../src/config.ts";
import { ExitCode, FibrpcError, mostSevere } from "../../src/errors.ts";

describe("maskSecrets", () => {
  const cases: [string, string][] = [
    ["amqp://guest:guest@127.0.0.1:5672", "amqp://guest:***@127.0.0.1:5672"],
    ["amqps://u:p%40ss@host/vh", "amqps://u:***@host/vh"],
    ["connect amqp://a:b@h:1 failed; amqp://c:d@h:2", "connect amqp://a:***@h:1 failed; amqp://c:***@h:2"],
    ["amqp://h:5672", "amqp://h:5672"],
    ["amqp://u:pa/ss?w#rd@h:5672/", "amqp://u:***@h:5672/"],
    ["no url here", "no url here"],
  ];
  for (const [input, output] of cases) test(input, () => expect(maskSecrets(input)).toBe(output));
});

describe("parseDuration", () => {
  const cases: [string, number][] = [
    ["500ms", 500],
    ["5s", 5000],
    ["1.5s", 1500],
    ["2m", 120_000],
    ["1h", 3_600_000],
    ["3", 3000],
  ];
  for (const [input, ms] of cases) test(input, () => expect(parseDuration("timeout", input)).toBe(ms));
  for (const bad of ["", "abc", "5x", "-1s", "0s"]) {
    test(`refuses ${JSON.stringify(bad)}`, () => expect(() => parseDuration("timeout", bad)).toThrow(FibrpcError));
  }
});

describe("options", () => {
  test("whole numbers within bounds", () => {
    expect(parseIntOption("workers", "3", 1, 1, 10)).toBe(3);
    expect(parseIntOption("workers", undefined, 7, 1, 10)).toBe(7);
    for (const bad of ["0", "11", "2.5", "x", "-1"]) expect(() => parseIntOption("workers", bad, 1, 1, 10)).toThrow(FibrpcError);
  });
  test("broker URL", () => {
    expect(parseBrokerUrl("amqp://h")).toBe("amqp://h");
    expect(() => parseBrokerUrl("http://h")).toThrow(FibrpcError);
    expect(() => parseBrokerUrl("nonsense")).toThrow(FibrpcError);
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
