/**
 * rpc/await-server.ts, the one "is a server there?" of call and bench: against a fake client
 * whose request queue goes through given states, a table of { states, wait } → ok | error.
 */
import { describe, expect, test } from "bun:test";
import { FibrpcError } from "../../src/errors.ts";
import { awaitServer } from "../../src/rpc/await-server.ts";

type State = number | "missing" | "lost" | "silent";

function fakeClient(states: State[]) {
  let i = 0;
  return {
    queue: "q",
    broker: "amqp://guest:***@h:5672",
    looks: () => i,
    async consumerCount(): Promise<number> {
      const state = states[Math.min(i++, states.length - 1)]!;
      if (state === "missing")
        throw new FibrpcError("QUEUE_NOT_FOUND", 'queue "q" does not exist', { reason: "no-server", queue: "q" });
      if (state === "lost") throw new FibrpcError("CONNECTION_LOST", "lost", { reason: "connection-lost" });
      // A broker that never answers the look (a queue without its cluster's majority, a silent link).
      if (state === "silent") return new Promise<number>(() => {});
      return state;
    },
  };
}

const cases: {
  name: string;
  states: State[];
  wait: boolean;
  budgetMs?: number;
  result: "ok" | { code: string; message?: RegExp };
  looks?: number;
  waited?: boolean;
}[] = [
  { name: "a consumer: at once", states: [2], wait: false, result: "ok", looks: 1, waited: false },
  {
    name: "no consumer, no wait: NO_CONSUMER",
    states: [0],
    wait: false,
    result: {
      code: "NO_CONSUMER",
      message: /^queue "q" on amqp:\/\/guest:\*\*\*@h:5672 has no consumer: no server is running$/,
    },
    looks: 1,
  },
  {
    name: "no queue, no wait: QUEUE_NOT_FOUND",
    states: ["missing"],
    wait: false,
    result: { code: "QUEUE_NOT_FOUND" },
    looks: 1,
  },
  { name: "connection lost: passed on", states: ["lost"], wait: true, result: { code: "CONNECTION_LOST" }, looks: 1 },
  {
    name: "waiting: the queue appears, then its consumer",
    states: ["missing", 0, 0, 1],
    wait: true,
    result: "ok",
    looks: 4,
    waited: true,
  },
  // 60 ms at one look per 5 ms: at most 13 looks before the deadline (16 allowing for timers that
  // wake a little early). A consumer appears at the 17th: only a wait that ignored its deadline,
  // or polled faster than asked, would see it. So the deadline is checked by counting, not timed.
  {
    name: "waiting in vain: TIMEOUT by the deadline",
    states: [...Array<State>(16).fill(0), 1],
    wait: true,
    budgetMs: 60,
    result: {
      code: "TIMEOUT",
      message: /^no server started consuming queue "q" on amqp:\/\/guest:\*\*\*@h:5672 within the timeout$/,
    },
    waited: true,
  },
  // The broker answered the first look (no consumer), then the deadline came during the second: what ran
  // out is the wait for a server (a look slow under load, near the deadline, must not read as a silent broker).
  ...(["missing", 0] as const).map((first) => ({
    name: `waiting, the deadline during a later look (first look: ${first}): no server started in time`,
    states: [first, "silent"] as State[],
    wait: true,
    budgetMs: 30,
    result: {
      code: "TIMEOUT",
      message: /^no server started consuming queue "q" on amqp:\/\/guest:\*\*\*@h:5672 within the timeout$/,
    },
    looks: 2,
    waited: true,
  })),
  ...([false, true] as const).map((wait) => ({
    name: `a look the broker never answers, ${wait ? "waiting" : "one look"}: TIMEOUT by the deadline`,
    states: ["silent"] as State[],
    wait,
    budgetMs: 150,
    result: {
      code: "TIMEOUT",
      message:
        /^the broker at amqp:\/\/guest:\*\*\*@h:5672 did not say within the timeout whether queue "q" has a consumer$/,
    },
    looks: 1,
  })),
  {
    // call -t 10ms: connecting took the rest; the broker is not to blame for a look it had 10 ms to answer.
    name: "a look begun with under 100 ms left, unanswered: the timeout was too short",
    states: ["silent"] as State[],
    wait: false,
    budgetMs: 30,
    result: {
      code: "TIMEOUT",
      message:
        /^only \d+ ms of the timeout were left to look for a server on queue "q", too few for the broker at amqp:\/\/guest:\*\*\*@h:5672 to answer$/,
    },
    looks: 1,
  },
];

describe("awaitServer", () => {
  for (const c of cases) {
    test(c.name, async () => {
      const client = fakeClient(c.states);
      let waited = false;
      const started = Date.now();
      const outcome = await awaitServer(client, {
        deadline: started + (c.budgetMs ?? 5_000),
        wait: c.wait,
        pollMs: 5,
        onWaiting: () => (waited = true),
      }).then(
        () => "ok" as const,
        (err: unknown) => err,
      );
      if (c.result === "ok") expect(outcome).toBe("ok");
      else {
        expect(outcome).toBeInstanceOf(FibrpcError);
        const error = outcome as FibrpcError;
        expect(error.code).toBe(c.result.code as FibrpcError["code"]);
        if (c.result.message) expect(error.message).toMatch(c.result.message);
        if (error.code === "NO_CONSUMER" || error.code === "TIMEOUT")
          expect(error.details).toMatchObject({ queue: "q", broker: client.broker });
      }
      if (c.looks !== undefined) expect(client.looks()).toBe(c.looks);
      if (c.waited !== undefined) expect(waited).toBe(c.waited);
    });
  }
});
