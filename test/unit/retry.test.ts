/**
 * rpc/retry.ts, `fibrpc call --retry N`'s policy, against fake clients whose calls end as a script
 * says (the same calls over the real broker: test/integration/lifecycle.test.ts): which outcomes
 * are sent again, with which correlation id, deadline and client, and what is left when the
 * retries run out.
 */
import { describe, expect, test } from "bun:test";
import { createConsola } from "consola/core";
import { FibrpcError, type ClientErrorCode } from "../../src/errors.ts";
import type { CallOutcome, RpcClient } from "../../src/rpc/client.ts";
import { RetryingCaller } from "../../src/rpc/retry.ts";

type Step = "ok" | "remote" | ClientErrorCode;

interface Attempt {
  client: number;
  n: number;
  deadline: number;
  correlationId: string;
}

/** Fake clients numbered from 1, sharing one script of outcomes, in order of attempt. */
function fakes(script: Step[]) {
  const attempts: Attempt[] = [];
  const retired: number[] = [];
  const closed: number[] = [];
  let made = 0;
  let ids = 0;
  const make = () => {
    const id = ++made;
    let usable = true;
    const client = {
      get usable() {
        return usable;
      },
      newCorrelationId: () => `id-${++ids}`,
      retire: () => {
        usable = false;
        retired.push(id);
      },
      close: async () => {
        closed.push(id);
      },
      call: async (n: number, deadline: number, correlationId: string): Promise<CallOutcome> => {
        attempts.push({ client: id, n, deadline, correlationId });
        const step = script[attempts.length - 1] ?? "ok";
        if (step === "ok") return { n, ok: true, result: `fib-${n}`, ms: 1 };
        if (step === "remote") return { n, ok: false, code: "N_TOO_LARGE", message: "too large", remote: true, ms: 1 };
        // A lost connection leaves the client unusable, as RpcClient does.
        if (step === "CONNECTION_LOST") usable = false;
        const error = new FibrpcError(step, `${step} (scripted)`);
        return { n, ok: false, code: error.code, message: error.message, remote: false, error, ms: 1 };
      },
    };
    return client as unknown as RpcClient;
  };
  return { make, attempts, retired, closed, made: () => made };
}

function logLines() {
  const lines: string[] = [];
  const log = createConsola({ level: 3, reporters: [{ log: (o) => lines.push(o.args.join(" ")) }] });
  return { log, lines };
}

const HOUR = 3_600_000;

describe("RetryingCaller", () => {
  test("a call that keeps timing out: sent retries+1 times with one correlation id, each retry on a new client, then TIMEOUT", async () => {
    const f = fakes(["TIMEOUT", "TIMEOUT", "TIMEOUT"]);
    const { log, lines } = logLines();
    const caller = new RetryingCaller(f.make(), async () => f.make(), 2, HOUR, log);
    const firstDeadline = 12_345; // any value: only the first attempt gets it
    const outcome = await caller.call(7, firstDeadline);
    expect(outcome).toMatchObject({ n: 7, ok: false, code: "TIMEOUT", remote: false, attempts: 3 });
    expect(f.attempts.map((a) => a.correlationId)).toEqual(["id-1", "id-1", "id-1"]);
    // A timeout may be the connection's fault: the client it happened on is retired, the retry
    // goes over a new one. The last timeout (no retry left) retires nothing.
    expect(f.attempts.map((a) => a.client)).toEqual([1, 2, 3]);
    expect(f.retired).toEqual([1, 2]);
    // The replaced clients are let go.
    expect(f.closed).toEqual([1, 2]);
    // Each retry gets the full timeout again, from when it is sent.
    expect(f.attempts[0]!.deadline).toBe(firstDeadline);
    for (const retry of f.attempts.slice(1)) {
      expect(retry.deadline).toBeGreaterThan(Date.now());
      expect(retry.deadline).toBeLessThanOrEqual(Date.now() + HOUR);
    }
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/^fib\(7\): TIMEOUT; retrying in \d+ ms \(retry 1\/2\)$/);
    expect(lines[1]).toMatch(/^fib\(7\): TIMEOUT; retrying in \d+ ms \(retry 2\/2\)$/);
  });

  test("the retry's answer is the outcome, with the number of attempts", async () => {
    const f = fakes(["TIMEOUT", "ok"]);
    const { log } = logLines();
    const caller = new RetryingCaller(f.make(), async () => f.make(), 3, HOUR, log);
    expect(await caller.call(9, Date.now() + HOUR)).toEqual({ n: 9, ok: true, result: "fib-9", ms: 1, attempts: 2 });
    expect(f.attempts.map((a) => a.correlationId)).toEqual(["id-1", "id-1"]);
  });

  test("--retry 0: one attempt, its outcome as it is", async () => {
    const f = fakes(["TIMEOUT"]);
    const caller = new RetryingCaller(f.make(), async () => f.make(), 0, HOUR, logLines().log);
    expect(await caller.call(1, Date.now() + HOUR)).toMatchObject({ code: "TIMEOUT", attempts: 1 });
    expect(f.attempts).toHaveLength(1);
    expect(f.retired).toEqual([]);
  });

  const notRetried: { name: string; step: Step; code: string }[] = [
    { name: "an error reply (the server answered)", step: "remote", code: "N_TOO_LARGE" },
    { name: "no queue, on the first attempt (no server: not a fault a retry fixes)", step: "QUEUE_NOT_FOUND", code: "QUEUE_NOT_FOUND" },
    { name: "no consumer, on the first attempt", step: "NO_CONSUMER", code: "NO_CONSUMER" },
    { name: "login refused", step: "ACCESS_REFUSED", code: "ACCESS_REFUSED" },
    { name: "an internal error", step: "INTERNAL", code: "INTERNAL" },
  ];
  for (const c of notRetried) {
    test(`not retried: ${c.name}`, async () => {
      const f = fakes([c.step]);
      const { log, lines } = logLines();
      const caller = new RetryingCaller(f.make(), async () => f.make(), 3, HOUR, log);
      expect(await caller.call(4, Date.now() + HOUR)).toMatchObject({ ok: false, code: c.code, attempts: 1 });
      expect(f.attempts).toHaveLength(1);
      expect(f.made()).toBe(1);
      expect(lines).toEqual([]);
    });
  }

  test("after a fault, a missing queue or consumer is worth another attempt (servers may not be back yet)", async () => {
    const f = fakes(["CONNECTION_LOST", "QUEUE_NOT_FOUND", "NO_CONSUMER", "ok"]);
    const { log, lines } = logLines();
    const caller = new RetryingCaller(f.make(), async () => f.make(), 3, HOUR, log);
    expect(await caller.call(5, Date.now() + HOUR)).toMatchObject({ ok: true, attempts: 4 });
    expect(f.attempts.map((a) => a.correlationId)).toEqual(["id-1", "id-1", "id-1", "id-1"]);
    expect(lines.map((l) => l.replace(/in \d+ ms/, "in _ ms"))).toEqual([
      "fib(5): CONNECTION_LOST; retrying in _ ms (retry 1/3)",
      "fib(5): QUEUE_NOT_FOUND; retrying in _ ms (retry 2/3)",
      "fib(5): NO_CONSUMER; retrying in _ ms (retry 3/3)",
    ]);
  });

  test("a lost connection is replaced once for all the calls that need it", async () => {
    const f = fakes(["CONNECTION_LOST", "CONNECTION_LOST", "CONNECTION_LOST", "ok", "ok", "ok"]);
    let reconnects = 0;
    const caller = new RetryingCaller(
      f.make(),
      async () => {
        reconnects++;
        return f.make();
      },
      1,
      HOUR,
      logLines().log,
    );
    const outcomes = await Promise.all([caller.call(1, Date.now() + HOUR), caller.call(2, Date.now() + HOUR), caller.call(3, Date.now() + HOUR)]);
    expect(outcomes.map((o) => [o.ok, o.attempts])).toEqual([
      [true, 2],
      [true, 2],
      [true, 2],
    ]);
    expect(reconnects).toBe(1);
    // Each call kept its own id across its attempts; the retries all went over client 2.
    const byN = (n: number) => f.attempts.filter((a) => a.n === n);
    for (const n of [1, 2, 3]) expect(new Set(byN(n).map((a) => a.correlationId)).size).toBe(1);
    expect(new Set([1, 2, 3].map((n) => byN(n)[0]!.correlationId)).size).toBe(3);
    expect(f.attempts.slice(3).map((a) => a.client)).toEqual([2, 2, 2]);
  });

  test("reconnecting fails (broker unreachable): retried like a timeout, the last failure returned", async () => {
    const f = fakes(["CONNECTION_LOST"]);
    let reconnects = 0;
    const caller = new RetryingCaller(
      f.make(),
      async () => {
        reconnects++;
        throw new FibrpcError("BROKER_UNREACHABLE", "connection refused (scripted)");
      },
      2,
      HOUR,
      logLines().log,
    );
    const outcome = await caller.call(6, Date.now() + HOUR);
    expect(outcome).toMatchObject({ ok: false, code: "BROKER_UNREACHABLE", message: "connection refused (scripted)", attempts: 3 });
    expect(outcome.ok === false && outcome.error?.exitCode).toBe(68);
    expect(reconnects).toBe(2);
    expect(f.attempts).toHaveLength(1);
  });
});
