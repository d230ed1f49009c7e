/**
 * What the broker says to publishers, as `call` and `bench` report it, on a private node (alarms
 * and policies must not touch the machine's broker): a resource alarm blocks publishing
 * connections (connection.blocked), a full queue with `overflow: reject-publish` nacks requests
 * (publisher confirms). Each is a code and an exit code of its own; nothing in flight is lost.
 */
import { beforeAll, describe, expect, test } from "bun:test";
import { rabbitmqctlJson, startPrivateNode, type PrivateNode } from "../broker.ts";
import { cleanupAfterFile, eventually, run, startServe, UNMASKED_PASSWORD } from "../helpers.ts";
import { Hold } from "../hold.ts";

cleanupAfterFile();

let node: PrivateNode;

beforeAll(async () => {
  node = await startPrivateNode("fibrpc-flow"); // stopped by the file's cleanup
}, 180_000);

/** A memory alarm on the node for the time of `body`, lifted however `body` ends. */
async function withMemoryAlarm<T>(body: () => Promise<T>): Promise<T> {
  expect((await node.ctl(["set_vm_memory_high_watermark", "0.0000001"])).code).toBe(0);
  try {
    return await body();
  } finally {
    expect((await node.ctl(["set_vm_memory_high_watermark", "0.4"])).code).toBe(0);
  }
}

async function connectionStates(): Promise<string[]> {
  return (await rabbitmqctlJson(["list_connections", "state"], { node: node.name })).map((c) => String(c.state));
}

const fib = (n: number): bigint => {
  let [a, b] = [0n, 1n];
  for (let i = 0; i < n; i++) [a, b] = [b, a + b];
  return a;
};

describe("a resource alarm (connection.blocked)", () => {
  test("a call on a blocked connection says so once, keeps its deadline and fails with BROKER_BLOCKED, exit 75", async () => {
    const queue = "flow_blocked";
    const server = await startServe(["--workers", "1", "--queue", queue, "--url", node.url]);
    try {
      const result = await withMemoryAlarm(() =>
        run(["call", "--url", node.url, "--queue", queue, "--timeout", "3s", "30", "31"]),
      );
      expect(result.code).toBe(75);
      const lines = result.stderr.trim().split("\n");
      // One notice for the connection, whatever the number of calls waiting on it.
      expect(lines.filter((l) => /broker is blocking publishers: .*memory/.test(l))).toHaveLength(1);
      for (const n of [30, 31]) {
        expect(lines).toContainEqual(
          expect.stringMatching(
            new RegExp(
              `^fib\\(${n}\\): BROKER_BLOCKED: the broker at amqp://guest:\\*\\*\\*@127\\.0\\.0\\.1:${node.port} has been blocking publishers for [\\d.]+ s \\(.*memory.*\\), so the request to queue "${queue}" was not confirmed within the timeout \\(it may still reach the queue once the alarm clears\\); .*free memory or disk`,
            ),
          ),
        );
      }
      expect(lines).toHaveLength(3);
      expect(result.stdout).toBe("");
      // The deadline holds: the call ends at its timeout, not when the alarm lifts (withMemoryAlarm
      // lifts it only once the call has returned, so returning at all shows it did not wait).
      expect(result.ms).toBeGreaterThanOrEqual(2_900);
      expect(result.stderr).not.toMatch(UNMASKED_PASSWORD);
      expect(result.stderr).not.toMatch(/\n\s+at /);
      // Once the alarm is lifted the same call succeeds.
      expect((await run(["call", "--url", node.url, "--queue", queue, "30"])).stdout).toBe("832040\n");
    } finally {
      expect(await server.stop()).toBe(0);
    }
  }, 60_000);

  test("requests in flight when an alarm starts are all answered after it lifts", async () => {
    const queue = "flow_in_flight";
    // The worker holds on fib(7), so the other requests are surely queued when the alarm starts.
    const hold = new Hold(7);
    const server = await startServe(["--workers", "1", "--prefetch", "1", "--queue", queue, "--url", node.url], {
      FIBRPC_TEST_FAULTS: hold.faults(),
    });
    try {
      const ns = [7, ...Array.from({ length: 20 }, (_, i) => i + 1)];
      const call = run(["call", "--url", node.url, "--queue", queue, "--timeout", "60s", ...ns.map(String)]);
      const held = await hold.next();
      await withMemoryAlarm(async () => {
        hold.release(held);
        hold.releaseAll();
        // serve's reply to fib(7) is a publish: the broker blocks its connection.
        await eventually(
          connectionStates,
          (states) => states.includes("blocked"),
          20_000,
          "a connection blocked by the alarm",
        );
      });
      const result = await call;
      expect(result.code).toBe(0);
      expect(result.stdout).toBe(ns.map((n) => `${fib(n)}\n`).join(""));
    } finally {
      expect(await server.stop()).toBe(0);
    }
  }, 90_000);
});

describe("a full queue (publisher confirms)", () => {
  test("requests the broker refuses (max-length, overflow reject-publish) fail at once with REJECTED, exit 75; the others are answered", async () => {
    const queue = "flow_full";
    expect(
      (
        await node.ctl([
          "set_policy",
          "flow-full",
          `^${queue}$`,
          '{"max-length":10,"overflow":"reject-publish"}',
          "--apply-to",
          "queues",
        ])
      ).code,
    ).toBe(0);
    const hold = new Hold(7);
    const server = await startServe(["--workers", "1", "--prefetch", "1", "--queue", queue, "--url", node.url], {
      FIBRPC_TEST_FAULTS: hold.faults(),
    });
    try {
      // fib(7) is held by the worker; 10 requests fit in the queue; the other 19 do not.
      const ns = [7, ...Array.from({ length: 29 }, (_, i) => i + 1)];
      const startedAt = performance.now();
      const call = run(["call", "--json", "--url", node.url, "--queue", queue, "--timeout", "60s", ...ns.map(String)]);
      const held = await hold.next();
      // The queue took what it could (10 ready); the rest were nacked by then.
      await eventually(
        async () =>
          (await rabbitmqctlJson(["list_queues", "name", "messages_ready"], { node: node.name })).find(
            (q) => q.name === queue,
          )?.messages_ready,
        (ready) => ready === 10,
        20_000,
        "10 requests ready in the full queue",
      );
      const releasedAfterMs = performance.now() - startedAt;
      hold.releaseAll();
      hold.release(held);
      const result = await call;
      expect(result.code).toBe(75);
      const outcomes = result.stdout
        .trim()
        .split("\n")
        .map(
          (l) => JSON.parse(l) as { n: number; result?: string; error?: { code: string; message: string }; ms: number },
        );
      // Every n has exactly one outcome, in order: nothing lost.
      expect(outcomes.map((o) => o.n)).toEqual(ns);
      const rejected = outcomes.filter((o) => o.error);
      const answered = outcomes.filter((o) => o.result !== undefined);
      expect(answered.length).toBeGreaterThanOrEqual(11);
      expect(rejected.length).toBeGreaterThanOrEqual(1);
      expect(answered.length + rejected.length).toBe(ns.length);
      for (const o of answered) expect(o.result).toBe(String(fib(o.n)));
      for (const o of rejected) {
        expect(o.error!.code).toBe("REJECTED");
        expect(o.error!.message).toMatch(
          new RegExp(`rejected the request \\(basic\\.nack\\): queue "${queue}" is most likely full`),
        );
        // At once: before the held computation was let go, not at the 60 s timeout.
        expect(o.ms).toBeLessThan(releasedAfterMs);
      }
      expect(
        result.stderr
          .trim()
          .split("\n")
          .filter((l) => /: REJECTED: /.test(l)),
      ).toHaveLength(rejected.length);
    } finally {
      await server.stop();
      await node.ctl(["clear_policy", "flow-full"]);
    }
  }, 90_000);
});
