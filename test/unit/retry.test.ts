/**
 * rpc/retry.ts, `fibrpc call --retry N`'s policy, on virtual time (the same calls over the real
 * broker: test/integration/lifecycle.test.ts and restarts.test.ts): how the attempts are spread
 * over the call's one budget, how reconnecting is retried within it, which outcomes are sent
 * again, with which correlation id, deadline and client, and what is left when the time runs out.
 */
import { describe, expect, test } from "bun:test";
import { createConsola } from "consola/core";
import { FibrpcError, type ClientErrorCode, type ErrorDetails } from "../../src/errors.ts";
import type { CallOutcome, RpcClient } from "../../src/rpc/client.ts";
import {
  attemptEnds,
  connectWithin,
  MIN_FIRST_WINDOW_MS,
  reconnectDelay,
  RetryingCaller,
  WINDOW_JITTER,
  windowRatio,
} from "../../src/rpc/retry.ts";
import { FakeClock } from "./fake-clock.ts";
import { prng } from "./prng.ts";

/** No jitter: every window at its nominal length. */
const MIDDLE = () => 0.5;
const windows = (start: number, ends: number[]) => ends.map((end, i) => end - (i === 0 ? start : ends[i - 1]!));

describe("attemptEnds: the attempts of one call spread over its one budget", () => {
  test("--retry 3 over 20 s (the issue's case): windows doubling, 1/15, 2/15, 4/15 and 8/15 of it, the last ending at the deadline", () => {
    const ends = attemptEnds(1_000, 21_000, 3, MIDDLE);
    // In whole ms: deadlines travel as integers (a header, the AMQP expiration).
    expect(ends).toEqual([1, 3, 7, 15].map((k) => 1_000 + Math.round((20_000 * k) / 15)));
  });

  test("with jitter: every window within ±20% of its share (before scaling back to the budget), in order, the last still ending at the deadline", () => {
    const seed = Number(process.env.RETRY_SEED ?? Math.floor(Math.random() * 2 ** 31));
    const random = prng(seed);
    const spread = (1 + WINDOW_JITTER) / (1 - WINDOW_JITTER);
    for (let run = 0; run < 1_000; run++) {
      const retries = 1 + Math.floor(random() * 6);
      const budget = Math.round(2_000 + random() * 60_000);
      const ends = attemptEnds(0, budget, retries, random);
      expect(ends.at(-1), `seed ${seed}`).toBe(budget);
      const w = windows(0, ends);
      // Nominally twice the one before (less when the budget is short); jitter moves each by at most ±20%.
      const ratio = windowRatio(budget, retries + 1);
      expect(ratio).toBeGreaterThanOrEqual(1);
      expect(ratio).toBeLessThanOrEqual(2);
      for (let i = 1; i < w.length; i++) {
        // To the millisecond each end is rounded to.
        expect(w[i]!, `seed ${seed}, run ${run}`).toBeGreaterThanOrEqual((w[i - 1]! * ratio) / spread - 2);
        expect(w[i]!, `seed ${seed}, run ${run}`).toBeLessThanOrEqual(w[i - 1]! * ratio * spread + 2);
      }
      expect(ends.every(Number.isInteger)).toBe(true);
    }
  });

  test("a budget too short to double from 1 s: the first window gets 1 s and the growth shrinks; at the least, equal windows", () => {
    // 5 s, 4 attempts: 1/15 would be 333 ms, less than a slow call (fib(1,000,000)) may take.
    const w = windows(0, attemptEnds(0, 5_000, 3, MIDDLE));
    expect(w[0]).toBe(MIN_FIRST_WINDOW_MS);
    for (let i = 1; i < w.length; i++) expect(w[i]!).toBeGreaterThan(w[i - 1]!);
    expect(w.reduce((a, b) => a + b)).toBe(5_000);
    // 300 ms, 3 attempts: not even 1 s each; equal shares.
    expect(windows(0, attemptEnds(0, 300, 2, MIDDLE))).toEqual([100, 100, 100]);
  });

  test("--retry 0: one attempt with the whole budget; --retry 10 over 30 s: 1 s first, growing; --retry 100: 101 equal shares", () => {
    expect(attemptEnds(5, 30_005, 0, MIDDLE)).toEqual([30_005]);
    const ten = windows(0, attemptEnds(0, 30_000, 10, MIDDLE));
    expect(ten[0]).toBe(MIN_FIRST_WINDOW_MS);
    for (let i = 1; i < ten.length; i++) expect(ten[i]!).toBeGreaterThan(ten[i - 1]!);
    expect(ten.at(-1)!).toBeGreaterThan(5 * ten[0]!);
    const hundred = windows(0, attemptEnds(0, 30_000, 100, MIDDLE));
    expect(hundred).toHaveLength(101);
    for (const w of hundred) expect(Math.abs(w - 30_000 / 101)).toBeLessThanOrEqual(1);
  });
});

test("reconnectDelay: 100 ms doubling to 1 s, each between half and one and a half times that", () => {
  expect([0, 1, 2, 3, 4, 5, 9].map((a) => reconnectDelay(a, MIDDLE))).toEqual([
    100, 200, 400, 800, 1_000, 1_000, 1_000,
  ]);
  expect(reconnectDelay(2, () => 0)).toBe(200);
  expect(reconnectDelay(2, () => 0.999)).toBeCloseTo(599.6, 6);
});

const refused = () =>
  new FibrpcError("BROKER_UNREACHABLE", "cannot reach the broker: connection refused (scripted)", {
    reason: "connection-refused",
  });

describe("connectWithin: reconnecting, retried within its time", () => {
  test("a refused connection is tried again after growing pauses until it succeeds; each try is given the time limit", async () => {
    const clock = new FakeClock(0, 1_000);
    const tries: { at: number; deadline: number }[] = [];
    const connect = async (deadline: number) => {
      tries.push({ at: clock.now(), deadline });
      if (clock.now() < 3_000) throw refused();
      return "connected";
    };
    expect(await clock.run(connectWithin(connect, () => 10_000, { time: clock, random: MIDDLE }))).toBe("connected");
    expect(tries.map((t) => t.at)).toEqual([1_000, 1_100, 1_300, 1_700, 2_500, 3_500]);
    expect(tries.every((t) => t.deadline === 10_000)).toBe(true);
  });

  test("an attempt its own deadline cut short (a broker that never answers the handshake) is tried again while time is left", async () => {
    // bench --duration reconnects with a deadline per attempt and no end: one hanging attempt must not end it.
    const clock = new FakeClock();
    let tries = 0;
    const connect = async () => {
      if (++tries < 3)
        throw new FibrpcError("TIMEOUT", "the timeout ran out while connecting (scripted)", {
          reason: "connect-timed-out",
        });
      return "connected";
    };
    expect(await clock.run(connectWithin(connect, () => 10_000, { time: clock, random: MIDDLE }))).toBe("connected");
    expect(tries).toBe(3);
  });

  test("still refused when the time is up: the last failure, at that time (not a back-off step before)", async () => {
    const clock = new FakeClock();
    let tries = 0;
    const failures: number[] = [];
    const connecting = connectWithin(
      async () => {
        tries++;
        throw refused();
      },
      () => 2_050,
      { time: clock, random: MIDDLE, onFailure: (_, attempt) => failures.push(attempt) },
    );
    const error = await clock.run(connecting).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(FibrpcError);
    expect(error).toMatchObject({
      code: "BROKER_UNREACHABLE",
      message: "cannot reach the broker: connection refused (scripted)",
    });
    expect(clock.now()).toBe(2_050);
    // At 0, 100, 300, 700, 1500 ms; the next pause is cut to end at 2050.
    expect(tries).toBe(5);
    expect(failures).toEqual([0, 1, 2, 3, 4]);
  });

  test("a refusal retrying cannot fix (the login) is thrown at once", async () => {
    const clock = new FakeClock();
    let tries = 0;
    const connecting = connectWithin(
      async () => {
        tries++;
        throw new FibrpcError("ACCESS_REFUSED", "the broker refused the login (scripted)");
      },
      () => 60_000,
      { time: clock },
    );
    expect(await clock.run(connecting).catch((err: unknown) => err)).toMatchObject({ code: "ACCESS_REFUSED" });
    expect(tries).toBe(1);
    expect(clock.now()).toBe(0);
  });

  test("a refusal while another broker of the list is down is tried again: that one may come back", async () => {
    const clock = new FakeClock();
    let tries = 0;
    const connect = async () => {
      if (++tries < 3)
        throw new FibrpcError("ACCESS_REFUSED", "the broker refused the login (scripted)", {
          anotherUnreachable: true,
        });
      return "connected";
    };
    expect(await clock.run(connectWithin(connect, () => 60_000, { time: clock, random: MIDDLE }))).toBe("connected");
    expect(tries).toBe(3);
  });

  test("what amqplib throws past the handshake (a channel that could not be opened) is a lost connection: tried again", async () => {
    const clock = new FakeClock();
    let tries = 0;
    const connect = async () => {
      if (++tries === 1) throw new Error("Connection closed (by the broker, scripted)");
      return "connected";
    };
    expect(await clock.run(connectWithin(connect, () => 60_000, { time: clock, random: MIDDLE }))).toBe("connected");
    expect(tries).toBe(2);
  });
});

/** An outcome: an answer, an error reply, or a failure (with the details the client would give it). */
type Step = "ok" | "remote" | ClientErrorCode | { code: ClientErrorCode; details: ErrorDetails; at?: number };

interface Attempt {
  client: number;
  n: number;
  at: number;
  deadline: number;
  correlationId: string;
}

/**
 * Fake clients numbered from 1, sharing one script of outcomes, in order of attempt. A TIMEOUT
 * comes at the attempt's deadline, other outcomes at once.
 */
function fakes(clock: FakeClock, script: Step[]) {
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
      awaitLate: () => {},
      forgetLate: () => {},
      cancel: () => {},
      call: (n: number, deadline: number, correlationId: string): Promise<CallOutcome> => {
        attempts.push({ client: id, n, at: clock.now(), deadline, correlationId });
        const scripted = script[attempts.length - 1] ?? "ok";
        const {
          code: step,
          details,
          at,
        } = typeof scripted === "string" ? { code: scripted, details: {}, at: undefined } : scripted;
        if (step === "ok") return Promise.resolve({ n, ok: true, result: `fib-${n}`, ms: 1 });
        if (step === "remote")
          return Promise.resolve({ n, ok: false, code: "N_TOO_LARGE", message: "too large", remote: true, ms: 1 });
        // A lost connection leaves the client unusable, as RpcClient does.
        if (step === "CONNECTION_LOST") usable = false;
        const error = new FibrpcError(step, `${step} (scripted)`, details);
        const outcome: CallOutcome = {
          n,
          ok: false,
          code: error.code,
          message: error.message,
          remote: false,
          error,
          ms: 1,
        };
        if (step !== "TIMEOUT") return Promise.resolve(outcome);
        // `at`: later than its window's end, as a request kept waiting behind answered ones (client.ts onWindowEnd).
        return new Promise((resolve) => clock.at(at ?? deadline, () => resolve(outcome)));
      },
    };
    return client as unknown as RpcClient;
  };
  return { make, attempts, retired, closed, made: () => made };
}

/** Each line's text, as log.ts writes it: its fields (a span's ids, or undefined with tracing off) left out. */
function logLines() {
  const lines: string[] = [];
  const text = (args: unknown[]) => args.filter((a) => typeof a === "string").join(" ");
  const log = createConsola({ level: 3, reporters: [{ log: (o) => lines.push(text(o.args)) }] });
  return { log, lines };
}

const HOUR = 3_600_000;

/** A call's outcome that failed locally with `error` (no reply). */
const failedOutcome = (n: number, error: FibrpcError): CallOutcome => ({
  n,
  ok: false,
  code: error.code,
  message: error.message,
  remote: false,
  error,
  ms: 0,
});

describe("RetryingCaller", () => {
  test("the issue's case, --retry 3 -t 20s across a broker restart (connection lost, then refused for 6 s): answered within the budget, reconnecting retried all along", async () => {
    const clock = new FakeClock();
    const f = fakes(clock, ["CONNECTION_LOST", "ok"]);
    const { log, lines } = logLines();
    const reconnects: number[] = [];
    const connect = async () => {
      reconnects.push(clock.now());
      if (clock.now() < 6_000) throw refused();
      return f.make();
    };
    const caller = new RetryingCaller(f.make(), connect, 3, 20_000, log, { random: MIDDLE, time: clock });
    const outcome = await clock.run(caller.call(30, 20_000));
    expect(outcome).toMatchObject({ n: 30, ok: true, result: "fib-30", attempts: 3 });
    // The whole call's time, from its first attempt to its answer (not the last attempt's 1 ms).
    expect(outcome.ms).toBe(f.attempts.at(-1)!.at);
    // Windows end at 1333, 4000, 9333 and 20000 ms. The first attempt lost its connection at
    // once and waited for the end of its window; the second spent its window reconnecting (refused
    // each time); the third got the connection, the same reconnection going on, once the broker
    // was back.
    expect(lines.map((l) => l.replace(/in \d+ ms/, "in _ ms"))).toEqual([
      "fib(30): CONNECTION_LOST; retrying in _ ms (retry 1/3)",
      "fib(30): BROKER_UNREACHABLE; retrying in _ ms (retry 2/3)",
    ]);
    expect(lines[0]).toBe("fib(30): CONNECTION_LOST; retrying in 1333 ms (retry 1/3)");
    expect(reconnects[0]).toBe(1_333);
    expect(reconnects.length).toBeGreaterThan(5);
    const answeredAt = f.attempts.at(-1)!.at;
    expect(answeredAt).toBeGreaterThanOrEqual(6_000);
    // Within a second of the broker's return, well inside the budget.
    expect(answeredAt).toBeLessThan(7_000);
    expect(f.attempts.map((a) => [a.client, a.correlationId])).toEqual([
      [1, "id-1"],
      [2, "id-1"],
    ]);
    expect(f.attempts[1]!.deadline).toBe(9_333);
  });

  test("a call that keeps timing out: sent retries+1 times with one correlation id, each attempt until the end of its window, each retry on a new client; TIMEOUT at the call's deadline", async () => {
    const clock = new FakeClock();
    const f = fakes(clock, ["TIMEOUT", "TIMEOUT", "TIMEOUT"]);
    const { log, lines } = logLines();
    const caller = new RetryingCaller(f.make(), async () => f.make(), 2, HOUR, log, { random: MIDDLE, time: clock });
    const outcome = await clock.run(caller.call(7, 7_000));
    expect(outcome).toMatchObject({ n: 7, ok: false, code: "TIMEOUT", remote: false, attempts: 3 });
    expect(clock.now()).toBe(7_000);
    expect(f.attempts.map((a) => a.correlationId)).toEqual(["id-1", "id-1", "id-1"]);
    // One budget: 1/7, 2/7 and 4/7 of it, each sent as its window opens.
    expect(f.attempts.map((a) => [Math.round(a.at), Math.round(a.deadline)])).toEqual([
      [0, 1_000],
      [1_000, 3_000],
      [3_000, 7_000],
    ]);
    // A timeout may be the connection's fault: the client it happened on is retired, the retry
    // goes over a new one. The last timeout (no retry left) retires nothing.
    expect(f.attempts.map((a) => a.client)).toEqual([1, 2, 3]);
    expect(f.retired).toEqual([1, 2]);
    // The replaced clients are let go.
    expect(f.closed).toEqual([1, 2]);
    expect(lines).toEqual([
      "fib(7): TIMEOUT; retrying in 0 ms (retry 1/2)",
      "fib(7): TIMEOUT; retrying in 0 ms (retry 2/2)",
    ]);
  });

  test("closed while a call waits to try again: it ends then, with close's reason, and is not sent again", async () => {
    const clock = new FakeClock();
    const f = fakes(clock, ["CONNECTION_LOST", "ok"]);
    const caller = new RetryingCaller(f.make(), async () => f.make(), 3, HOUR, logLines().log, { time: clock });
    const interrupted = new FibrpcError("INTERRUPTED", "ended by a second SIGINT before its reply came");
    clock.at(500, () => void caller.close({ waitForBroker: false, callsEndWith: interrupted }));
    const outcome = await clock.run(caller.call(9, 30_000));
    expect(outcome).toMatchObject({ n: 9, ok: false, code: "INTERRUPTED", attempts: 1 });
    expect(clock.now()).toBe(500);
    expect(f.attempts).toHaveLength(1);
  });

  test("the retry's answer is the outcome, with the number of attempts", async () => {
    const clock = new FakeClock();
    const f = fakes(clock, ["TIMEOUT", "ok"]);
    const caller = new RetryingCaller(f.make(), async () => f.make(), 3, HOUR, logLines().log, { time: clock });
    // ms: the whole call's, to the second attempt's answer (sent as its window opened), not that attempt's 1 ms.
    const outcome = await clock.run(caller.call(9, 30_000));
    expect(outcome).toEqual({ n: 9, ok: true, result: "fib-9", ms: f.attempts[1]!.at, attempts: 2 });
    expect(outcome.ms).toBeGreaterThan(1_000);
    expect(f.attempts.map((a) => a.correlationId)).toEqual(["id-1", "id-1"]);
  });

  test("--retry 0: one attempt with the whole budget, its outcome as it is", async () => {
    const clock = new FakeClock();
    const f = fakes(clock, ["TIMEOUT"]);
    const caller = new RetryingCaller(f.make(), async () => f.make(), 0, HOUR, logLines().log, { time: clock });
    expect(await clock.run(caller.call(1, 5_000))).toMatchObject({ code: "TIMEOUT", attempts: 1 });
    expect(f.attempts.map((a) => a.deadline)).toEqual([5_000]);
    expect(f.retired).toEqual([]);
  });

  test("a first attempt sent with too little time to be confirmed (`-t 30ms`), less than that left of the call: no retry, nor a new connection", async () => {
    const clock = new FakeClock();
    const f = fakes(clock, [{ code: "TIMEOUT", details: { reason: "too-short", timeoutMs: 1 } }]);
    const { log, lines } = logLines();
    const caller = new RetryingCaller(f.make(), async () => f.make(), 2, HOUR, log, { random: MIDDLE, time: clock });
    const outcome = await clock.run(caller.call(30, 70));
    expect(outcome).toMatchObject({ code: "TIMEOUT", attempts: 1, error: { details: { reason: "too-short" } } });
    expect(f.attempts.length).toBe(1);
    expect(f.retired).toEqual([]);
    expect(lines).toEqual([]);
  });

  test("a first attempt sent too late to be confirmed, time left for another: retried on the same client", async () => {
    const clock = new FakeClock();
    const f = fakes(clock, [{ code: "TIMEOUT", details: { reason: "too-short", timeoutMs: 1 } }, "ok"]);
    const caller = new RetryingCaller(f.make(), async () => f.make(), 1, HOUR, logLines().log, { time: clock });
    const outcome = await clock.run(caller.call(30, 3_000));
    expect(outcome).toMatchObject({ ok: true, attempts: 2 });
    expect(f.attempts.map((a) => a.client)).toEqual([1, 1]);
    expect(f.retired).toEqual([]);
  });

  test("an attempt kept waiting to the call's deadline (a request queued behind answered ones): no retry after it, no new connection", async () => {
    const clock = new FakeClock();
    const f = fakes(clock, [{ code: "TIMEOUT", details: { reason: "reply-timed-out" }, at: 6_000 }]);
    const { log, lines } = logLines();
    const caller = new RetryingCaller(f.make(), async () => f.make(), 3, HOUR, log, { random: MIDDLE, time: clock });
    const outcome = await clock.run(caller.call(5, 6_000));
    expect(outcome).toMatchObject({ code: "TIMEOUT", attempts: 1 });
    expect([f.attempts.length, f.made(), f.retired]).toEqual([1, 1, []]);
    expect(lines).toEqual([]);
  });

  test("an attempt kept waiting past a window: the next takes a window with room to be confirmed in, not its few ms", async () => {
    const clock = new FakeClock();
    const ends = attemptEnds(0, 6_000, 3, MIDDLE);
    // Back 20 ms before the second window's end: the retry takes the third.
    const f = fakes(clock, [{ code: "TIMEOUT", details: { reason: "reply-timed-out" }, at: ends[1]! - 20 }, "ok"]);
    const caller = new RetryingCaller(f.make(), async () => f.make(), 3, HOUR, logLines().log, {
      random: MIDDLE,
      time: clock,
    });
    expect(await clock.run(caller.call(5, 6_000))).toMatchObject({ ok: true, attempts: 2 });
    expect(f.attempts.map((a) => a.deadline)).toEqual([ends[0]!, ends[2]!]);
  });

  test("the last attempt's error says the call was retried (its hint then suggests no --retry); without --retry it does not", async () => {
    const clock = new FakeClock();
    const f = fakes(clock, ["CONNECTION_LOST", "CONNECTION_LOST"]);
    const caller = new RetryingCaller(f.make(), async () => f.make(), 1, HOUR, logLines().log, { time: clock });
    const retried = await clock.run(caller.call(3, 5_000));
    expect(retried).toMatchObject({ code: "CONNECTION_LOST", attempts: 2, error: { details: { retried: true } } });
    const once = fakes(clock, ["CONNECTION_LOST"]);
    const plain = new RetryingCaller(once.make(), async () => once.make(), 0, HOUR, logLines().log, { time: clock });
    const outcome = await clock.run(plain.call(3, clock.now() + 5_000));
    expect(outcome.ok ? undefined : outcome.error?.details.retried).toBeUndefined();
  });

  const notRetried: { name: string; step: Step; code: string }[] = [
    { name: "an error reply (the server answered)", step: "remote", code: "N_TOO_LARGE" },
    {
      name: "no queue, on the first attempt (no server: not a fault a retry fixes)",
      step: "QUEUE_NOT_FOUND",
      code: "QUEUE_NOT_FOUND",
    },
    { name: "no consumer, on the first attempt", step: "NO_CONSUMER", code: "NO_CONSUMER" },
    { name: "login refused", step: "ACCESS_REFUSED", code: "ACCESS_REFUSED" },
    { name: "the broker refused a set-up", step: "BROKER_REFUSED", code: "BROKER_REFUSED" },
    { name: "the broker's certificate", step: "TLS_REFUSED", code: "TLS_REFUSED" },
    { name: "a usage error", step: "USAGE", code: "USAGE" },
    { name: "an internal error", step: "INTERNAL", code: "INTERNAL" },
  ];
  for (const c of notRetried) {
    test(`not retried: ${c.name}`, async () => {
      const clock = new FakeClock();
      const f = fakes(clock, [c.step]);
      const { log, lines } = logLines();
      const caller = new RetryingCaller(f.make(), async () => f.make(), 3, HOUR, log, { time: clock });
      expect(await clock.run(caller.call(4, HOUR))).toMatchObject({ ok: false, code: c.code, attempts: 1 });
      expect(f.attempts).toHaveLength(1);
      expect(f.made()).toBe(1);
      expect(lines).toEqual([]);
      expect(clock.now()).toBe(0);
    });
  }

  test("reconnecting refused for a reason retrying cannot fix (the login): that failure at once, not retried", async () => {
    const clock = new FakeClock();
    const f = fakes(clock, ["CONNECTION_LOST"]);
    let reconnects = 0;
    const connect = async () => {
      reconnects++;
      throw new FibrpcError("ACCESS_REFUSED", "the broker refused the login (scripted)");
    };
    const caller = new RetryingCaller(f.make(), connect, 3, 20_000, logLines().log, { random: MIDDLE, time: clock });
    expect(await clock.run(caller.call(2, 20_000))).toMatchObject({ ok: false, code: "ACCESS_REFUSED", attempts: 2 });
    expect(reconnects).toBe(1);
  });

  test("after a fault, a missing queue or consumer is worth another attempt (servers may not be back yet)", async () => {
    const clock = new FakeClock();
    const f = fakes(clock, ["CONNECTION_LOST", "QUEUE_NOT_FOUND", "NO_CONSUMER", "ok"]);
    const { log, lines } = logLines();
    const caller = new RetryingCaller(f.make(), async () => f.make(), 3, HOUR, log, { time: clock });
    expect(await clock.run(caller.call(5, 30_000))).toMatchObject({ ok: true, attempts: 4 });
    expect(f.attempts.map((a) => a.correlationId)).toEqual(["id-1", "id-1", "id-1", "id-1"]);
    expect(lines.map((l) => l.replace(/in \d+ ms/, "in _ ms"))).toEqual([
      "fib(5): CONNECTION_LOST; retrying in _ ms (retry 1/3)",
      "fib(5): QUEUE_NOT_FOUND; retrying in _ ms (retry 2/3)",
      "fib(5): NO_CONSUMER; retrying in _ ms (retry 3/3)",
    ]);
  });

  test("a lost connection is replaced once for all the calls that need it", async () => {
    const clock = new FakeClock();
    const f = fakes(clock, ["CONNECTION_LOST", "CONNECTION_LOST", "CONNECTION_LOST", "ok", "ok", "ok"]);
    let reconnects = 0;
    const connect = async () => {
      reconnects++;
      return f.make();
    };
    const caller = new RetryingCaller(f.make(), connect, 1, HOUR, logLines().log, { time: clock });
    const outcomes = await clock.run(
      Promise.all([caller.call(1, 30_000), caller.call(2, 30_000), caller.call(3, 30_000)]),
    );
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

  test("an attempt whose window ran out, answered late (a slow server), is the call's answer though its retry went over a new client", async () => {
    const clock = new FakeClock();
    const cancelled: number[] = [];
    const closedAt: (number | undefined)[] = [];
    /** Client 1's request is answered at 1.5 s, after its 1 s window (to its reply address); later clients never. */
    const make = (): RpcClient => {
      const id = closedAt.push(undefined);
      let usable = true;
      let late: ((outcome: CallOutcome) => void) | undefined;
      let pending: ((outcome: CallOutcome) => void) | undefined;
      return {
        get usable() {
          return usable;
        },
        newCorrelationId: () => "id-1",
        retire: () => (usable = false),
        close: async () => {
          closedAt[id - 1] = clock.now();
        },
        awaitLate: (_: string, _n: number, _deadline: number, deliver: (outcome: CallOutcome) => void) => {
          late = deliver;
        },
        forgetLate: () => (late = undefined),
        cancel: (_: string, error: FibrpcError) => {
          cancelled.push(id);
          pending?.(failedOutcome(0, error));
        },
        call: (n: number, deadline: number): Promise<CallOutcome> =>
          new Promise((resolve) => {
            pending = resolve;
            if (id === 1) clock.at(1_500, () => late?.({ n, ok: true, result: `fib-${n}`, ms: 0 }));
            clock.at(deadline, () =>
              resolve(failedOutcome(n, new FibrpcError("TIMEOUT", "no reply within the timeout"))),
            );
          }),
      } as unknown as RpcClient;
    };
    const caller = new RetryingCaller(make(), async () => make(), 3, HOUR, logLines().log, {
      random: MIDDLE,
      time: clock,
    });
    // A 15 s budget: the first window ends at 1 s; the retry goes over client 2 (client 1 retired by its timeout).
    const outcome = await clock.run(caller.call(7, 15_000));
    expect(outcome).toMatchObject({ ok: true, result: "fib-7", attempts: 2, ms: 1_500 });
    // The retry under way ends; client 1, kept open for the late answer, is let go once it came.
    expect(cancelled).toEqual([2]);
    expect(closedAt).toEqual([1_500, undefined]);
  });

  test("the last attempt lost before the deadline: an earlier attempt's late answer is still the call's", async () => {
    /**
     * Client 1 times its request out, then answers it at `answerAt`, or loses its connection at `goneAt`; client 2
     * loses its connection at 6 s.
     */
    const trace = { trace_id: "1".repeat(32), span_id: "2".repeat(16), trace_flags: "01" };
    const caller = (clock: FakeClock, answerAt: number | undefined, goneAt?: number) => {
      let clients = 0;
      const make = (): RpcClient => {
        const id = ++clients;
        let usable = true;
        let late: ((outcome: CallOutcome) => void) | undefined;
        return {
          get usable() {
            return usable;
          },
          newCorrelationId: () => "id-1",
          retire: () => (usable = false),
          close: async () => {},
          awaitLate: (_: string, _n: number, _d: number, deliver: (o: CallOutcome) => void, gone: () => void) => {
            late = deliver;
            if (goneAt !== undefined) clock.at(goneAt, gone);
          },
          forgetLate: () => (late = undefined),
          cancel: () => {},
          call: (n: number, deadline: number): Promise<CallOutcome> =>
            new Promise((resolve) => {
              if (id === 1 && answerAt !== undefined)
                clock.at(answerAt, () => late?.({ n, ok: true, result: `fib-${n}`, ms: 0 }));
              const lost = new FibrpcError("CONNECTION_LOST", "the connection was lost", { reason: "connection-lost" });
              if (id === 2) clock.at(6_000, () => resolve(failedOutcome(n, lost)));
              else
                clock.at(deadline, () =>
                  resolve({ ...failedOutcome(n, new FibrpcError("TIMEOUT", "no reply")), trace }),
                );
            }),
        } as unknown as RpcClient;
      };
      return new RetryingCaller(make(), async () => make(), 1, HOUR, logLines().log, { random: MIDDLE, time: clock });
    };
    // A 15 s budget, one retry: the first window ends at 5 s, the retry's connection is lost at 6 s.
    expect(attemptEnds(0, 15_000, 1, MIDDLE)[0]).toBe(5_000);
    const clock = new FakeClock();
    const answered = await clock.run(caller(clock, 8_000).call(7, 15_000));
    // With tracing on, it names the trace of the attempt it answers (call --json's trace_id).
    expect(answered).toMatchObject({ ok: true, result: "fib-7", attempts: 2, ms: 8_000, trace });
    // Never answered: the last attempt's own failure, at the deadline (the earlier attempt could have been answered).
    const other = new FakeClock();
    const lost = await other.run(caller(other, undefined).call(7, 15_000));
    expect(lost).toMatchObject({ ok: false, code: "CONNECTION_LOST", attempts: 2, ms: 15_000 });
    // The earlier attempt's connection lost too (at 5.5 s): no answer can come, the failure is said at once (6 s).
    const third = new FakeClock();
    const bothLost = await third.run(caller(third, undefined, 5_500).call(7, 15_000));
    expect(bothLost).toMatchObject({ ok: false, code: "CONNECTION_LOST", attempts: 2, ms: 6_000 });
    // Closed while it waits (a second SIGINT): the call ends then, with close()'s reason.
    const fourth = new FakeClock();
    const closing = caller(fourth, undefined);
    const interrupted = new FibrpcError("INTERRUPTED", "ended by a second SIGINT before its reply came");
    fourth.at(9_000, () => void closing.close({ callsEndWith: interrupted }));
    expect(await fourth.run(closing.call(7, 15_000))).toMatchObject({ ok: false, code: "INTERRUPTED", ms: 9_000 });
  });

  test("a replaced client stays open for every call still listening on it for a late answer, not only the first", async () => {
    const clock = new FakeClock();
    const closedAt: (number | undefined)[] = [];
    const timeout = (n: number) => failedOutcome(n, new FibrpcError("TIMEOUT", "no reply within the timeout"));
    /** Client 1 answers fib(1) at 1.5 s and fib(2) at 2.5 s, each after its window; later clients never answer. */
    const make = (): RpcClient => {
      const id = closedAt.push(undefined);
      const late = new Map<string, (outcome: CallOutcome) => void>();
      let usable = true;
      let ids = 0;
      return {
        get usable() {
          return usable && closedAt[id - 1] === undefined;
        },
        newCorrelationId: () => `c${id}-${++ids}`,
        retire: () => (usable = false),
        close: async () => {
          closedAt[id - 1] ??= clock.now();
          late.clear();
        },
        awaitLate: (cid: string, _n: number, _deadline: number, deliver: (outcome: CallOutcome) => void) =>
          late.set(cid, deliver),
        forgetLate: (cid: string) => late.delete(cid),
        cancel: () => {},
        call: (n: number, deadline: number, cid: string): Promise<CallOutcome> =>
          new Promise((resolve) => {
            if (id === 1)
              clock.at(n === 1 ? 1_500 : 2_500, () => late.get(cid)?.({ n, ok: true, result: `fib-${n}`, ms: 0 }));
            clock.at(deadline, () => resolve(timeout(n)));
          }),
      } as unknown as RpcClient;
    };
    const caller = new RetryingCaller(make(), async () => make(), 3, HOUR, logLines().log, {
      random: MIDDLE,
      time: clock,
    });
    // First windows: fib(1)'s ends at 1 s (a 15 s budget), fib(2)'s at 2 s (30 s): both retried on client 2.
    const [one, two] = await clock.run(Promise.all([caller.call(1, 15_000), caller.call(2, 30_000)]));
    expect(one).toMatchObject({ ok: true, result: "fib-1", attempts: 2 });
    expect(two).toMatchObject({ ok: true, result: "fib-2", attempts: 2 });
    // Client 1 went once fib(2)'s late answer came, not when fib(2)'s own attempt on it ended (2 s).
    expect(closedAt[0]).toBe(2_500);
  });

  test("a timeout retires its client for new attempts, but the other calls waiting on it keep it until they are answered", async () => {
    const clock = new FakeClock();
    const made: { id: number; closedAt?: number; usable: boolean }[] = [];
    /** fib(1) never answered on client 1; fib(2) answered there after 1.5 s; everything at once on later clients. */
    const make = (): RpcClient => {
      const self = { id: made.length + 1, usable: true } as (typeof made)[number];
      made.push(self);
      return {
        get usable() {
          return self.usable && self.closedAt === undefined;
        },
        newCorrelationId: () => `id-${Math.random()}`,
        retire: () => (self.usable = false),
        close: async () => {
          self.closedAt = clock.now();
        },
        awaitLate: () => {},
        forgetLate: () => {},
        cancel: () => {},
        call: (n: number, deadline: number): Promise<CallOutcome> =>
          new Promise((resolve) => {
            const closed = () =>
              failedOutcome(n, new FibrpcError("CONNECTION_LOST", "the client was closed before the reply came"));
            const answerAt = self.id > 1 ? clock.now() : n === 2 ? clock.now() + 1_500 : Infinity;
            const timeout = new FibrpcError("TIMEOUT", "no reply within the timeout");
            clock.at(Math.min(answerAt, deadline), () => {
              if (self.closedAt !== undefined) return resolve(closed());
              if (answerAt <= deadline) return resolve({ n, ok: true, result: `fib-${n}`, ms: 1 });
              resolve({
                n,
                ok: false,
                code: "TIMEOUT",
                message: timeout.message,
                remote: false,
                error: timeout,
                ms: 0,
              });
            });
          }),
      } as unknown as RpcClient;
    };
    const caller = new RetryingCaller(make(), async () => make(), 3, HOUR, logLines().log, {
      random: MIDDLE,
      time: clock,
    });
    // fib(1)'s first window ends at 1 s (a 15 s budget); fib(2) has 30 s and is answered at 1.5 s.
    const [one, two] = await clock.run(Promise.all([caller.call(1, 15_000), caller.call(2, 30_000)]));
    expect(one).toMatchObject({ ok: true, attempts: 2 });
    expect(two).toMatchObject({ ok: true, result: "fib-2", attempts: 1 });
    // Client 1 was let go once fib(2)'s answer came, not when fib(1)'s retry replaced it.
    expect(made[0]!.closedAt).toBe(1_500);
  });

  test("the broker unreachable to the end: reconnecting tried all along, BROKER_UNREACHABLE (exit 68) at the call's deadline, not before", async () => {
    const clock = new FakeClock();
    const f = fakes(clock, ["CONNECTION_LOST"]);
    let reconnects = 0;
    const connect = async () => {
      reconnects++;
      throw refused();
    };
    const caller = new RetryingCaller(f.make(), connect, 2, HOUR, logLines().log, { random: MIDDLE, time: clock });
    const outcome = await clock.run(caller.call(6, 20_000));
    expect(outcome).toMatchObject({
      ok: false,
      code: "BROKER_UNREACHABLE",
      message: "cannot reach the broker: connection refused (scripted)",
      attempts: 3,
    });
    expect(outcome.ok === false && outcome.error?.exitCode).toBe(68);
    expect(clock.now()).toBe(20_000);
    // From the end of the first window (2.9 s) to 20 s, a try at least every second.
    expect(reconnects).toBeGreaterThanOrEqual(17);
    expect(f.attempts).toHaveLength(1);
  });
});
