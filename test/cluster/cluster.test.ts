/**
 * Scale out on a RabbitMQ cluster: a 3-node cluster of the test's own (scripts/cluster.sh), of the
 * release the suite runs against (FIBRPC_TEST_BROKER), a quorum request queue, three serve
 * processes spread over the nodes, a caller with --retry running many calls, and one node
 * stopped and started again during the run. Every call is answered exactly once or fails with a
 * retryable error that the retry completes; nothing lost. Then the cluster loses its majority:
 * on Khepri (RabbitMQ 4.3) the remaining node cannot declare queues, on Mnesia (3.10, 4.0) it can.
 */
import { beforeAll, expect, test } from "bun:test";
import { longestGap, record, runLoad } from "../load.ts";
import { BROKER_RELEASE, releaseAtLeast, startPrivateCluster, type PrivateCluster } from "../broker.ts";
import { run, startServe, type Server, cleanupAfterFile } from "../helpers.ts";

cleanupAfterFile();

let cluster: PrivateCluster;
let urls: string[];
/** Node i's URL first, then the others: each server starts on its own node, fails over to the rest. */
const rotated = (i: number) => [...urls.slice(i), ...urls.slice(0, i)].join(",");

beforeAll(async () => {
  cluster = await startPrivateCluster("fibrpc-t");
  urls = cluster.urls;
}, 300_000);

// The cluster is stopped (and its data deleted) by the file's cleanup (test/broker.ts).

test("a node stopped and started under load: with --retry, zero calls lost", async () => {
  const queue = "rpc_queue";
  const servers: Server[] = [];
  for (const i of [0, 1, 2])
    servers.push(await startServe(["--workers", "1", "--queue", queue, "--queue-type", "quorum", "--url", rotated(i)]));

  let answered = 0; // answers so far, as the load generator counts them
  let outage: Promise<void> | undefined;
  let back = false;
  let answeredWhenBack = 0;
  // Node 1: the node the queue was declared on, and the callers' first choice.
  const timings: Record<string, number> = {};
  const t0 = performance.now();
  const report = await runLoad({
    url: urls.join(","),
    queue,
    requests: 1_000_000,
    concurrency: 10,
    n: (i) => i % 1000,
    timeoutMs: 5_000,
    retries: 10,
    // As docs/operations.md advises on a cluster: with Direct Reply-to, RabbitMQ 3.10 closes a
    // server's connection (541 INTERNAL_ERROR) when it replies to a caller whose node has died.
    replyQueue: "exclusive",
    onAnswer: (count) => {
      answered = count;
      if (count === 1000 && !outage) {
        outage = (async () => {
          timings.stopAt = performance.now() - t0;
          await cluster.halt(0);
          timings.stoppedAt = performance.now() - t0;
          // Serve on two nodes for a while before the node comes back.
          const until = answered + 1500;
          while (answered < until && performance.now() - t0 < timings.stoppedAt + 20_000) await Bun.sleep(50);
          await cluster.start(0);
          timings.restartedAt = performance.now() - t0;
          answeredWhenBack = answered;
          back = true;
        })();
      }
    },
    stopWhen: () => back && answered > answeredWhenBack + 1000,
  });
  await outage;
  const gap = longestGap(report.answerTimes);
  record("cluster node stopped and restarted (quorum queue, 3 servers, exclusive reply queues, --retry 10)", {
    sent: report.sent,
    answered: report.answered,
    failed: report.failed,
    retried: report.retried,
    duplicatesIgnored: report.ignoredReplies,
    nodeDownMs: Math.round(timings.restartedAt! - timings.stopAt!),
    longestGapMs: gap,
  });
  if (gap > 5000) {
    for (const [i, server] of servers.entries()) console.log(`--- server ${i + 1} ---\n${server.log}`);
    console.log(
      `--- client (stop at ${Math.round(timings.stopAt!)} ms) ---\n${report.clientLog
        .filter((l) => !l.includes("ignored a reply"))
        .slice(0, 60)
        .join("\n")}`,
    );
  }
  expect(report.wrong).toBe(0);
  expect(report.failed).toEqual({}); // with --retry, zero calls lost
  expect(report.answered).toBe(report.sent);
  expect(report.outcomes).toHaveLength(report.sent); // one answer per call
  expect(report.retried).toBeGreaterThan(0); // the outage was felt, and retried
  // The longest gap is reported (record above, docs/benchmarks.md), not a target: it measures
  // the machine and the broker's failover, not fibrpc's behaviour.
  for (const server of servers) {
    expect(server.log).not.toMatch(/died/);
    expect(await server.stop()).toBe(0);
  }
}, 180_000);

/**
 * A caller on Direct Reply-to whose node dies with its requests in the queue (docs/operations.md, "Callers on a
 * cluster"). RabbitMQ 3.10 closes the connection of a server that replies to such a caller (541). A reply to a
 * request seen before goes on a connection of the server's own (src/rpc/isolated-replies.ts), so each of the
 * dead caller's requests closes a serving connection once at most, where on a quorum queue it used to come back
 * and close one after another until the poison backstop refused it.
 */
test("a Direct Reply-to caller's node killed under load: its requests close a serving connection once each at most", async () => {
  const queue = "rpc_direct_reply_to";
  const servers: Server[] = [];
  for (const i of [0, 1, 2])
    servers.push(await startServe(["--workers", "1", "--queue", queue, "--queue-type", "quorum", "--url", rotated(i)]));
  let answered = 0;
  let outage: Promise<void> | undefined;
  let back = false;
  let answeredWhenBack = 0;
  const concurrency = 10;
  const t0 = performance.now();
  const report = await runLoad({
    url: urls.join(","), // node 1 first: the node killed below (the queue's leader and a server's node too)
    queue,
    requests: 1_000_000,
    concurrency,
    n: (i) => i % 1000,
    timeoutMs: 5_000,
    retries: 10,
    replyQueue: "direct",
    onAnswer: (count) => {
      answered = count;
      if (count === 500 && !outage) {
        outage = (async () => {
          try {
            // As when its machine dies (after a clean stop, halt, no reply met the crash in five runs).
            await cluster.kill(0);
            const until = answered + 1000;
            const stoppedAt = performance.now();
            while (answered < until && performance.now() - stoppedAt < 30_000) await Bun.sleep(50);
            await cluster.start(0);
          } finally {
            // Even if the node did not start: the load stops, and the test says why below.
            answeredWhenBack = answered;
            back = true;
          }
        })();
      }
    },
    stopWhen: () => (back && answered > answeredWhenBack + 500) || performance.now() - t0 > 120_000,
  });
  await outage;
  // Each close of a serving connection by a reply to the dead caller: one per request at most, and it had
  // `concurrency` requests in flight.
  const closes = servers.map(
    (s) => s.log.match(/ lost \(closed by the broker: [^\n]*541 INTERNAL_ERROR/g)?.length ?? 0,
  );
  record("a Direct Reply-to caller's node killed (quorum queue, 3 servers, --retry 10)", {
    sent: report.sent,
    answered: report.answered,
    failed: report.failed,
    retried: report.retried,
    serveConnectionsClosedBy541: closes,
  });
  expect(report.wrong).toBe(0);
  expect(report.failed).toEqual({}); // none refused POISON_REQUEST, none lost
  expect(report.answered).toBe(report.sent);
  expect(report.retried).toBeGreaterThan(0); // the caller's node did go
  expect(closes.reduce((a, b) => a + b)).toBeLessThanOrEqual(concurrency);
  for (const server of servers) {
    expect(server.log).not.toMatch(/died|refused a request/);
    expect(await server.stop()).toBe(0);
  }
}, 180_000);

/**
 * Whether the cluster's metadata store is Khepri (a Raft store: changes need a majority of the
 * nodes) or Mnesia (no majority needed). Per release, as the nodes of scripts/broker-node.sh run
 * them: RabbitMQ 4.3 enables khepri_db by default, 3.10 and 4.0 run Mnesia.
 */
const KHEPRI = releaseAtLeast(4, 3);

test(KHEPRI
  ? `RabbitMQ ${BROKER_RELEASE} (Khepri) cut to 1 of 3 nodes: serve says in one line that the node cannot declare the queue, waits, and serves once the majority is back`
  : `RabbitMQ ${BROKER_RELEASE} (Mnesia) cut to 1 of 3 nodes: the remaining node still declares queues, and serve serves on it`, async () => {
  const flags = await cluster.ctl(0, ["list_feature_flags", "name", "state", "--formatter", "json", "-q"]);
  expect(flags.code).toBe(0);
  const khepri = (JSON.parse(flags.stdout) as { name: string; state: string }[]).find((f) => f.name === "khepri_db");
  expect(khepri?.state ?? "absent").toBe(KHEPRI ? "enabled" : releaseAtLeast(4, 0) ? "disabled" : "absent");

  await cluster.halt(1);
  await cluster.halt(2);
  const queue = `fibrpc_majority_${crypto.randomUUID().slice(0, 8)}`; // on the cluster, which goes with the test
  const server = await startServe(["--workers", "1", "--queue", queue, "--url", urls[0]!], {}, null);
  try {
    if (!KHEPRI) {
      await server.waitForLog(/1\/1 workers serving/, 60_000);
      const call = await run(["call", "--queue", queue, "--url", urls[0]!, "30"]);
      expect(call.stdout).toBe("832040\n");
      expect(call.code).toBe(0);
      // A quorum queue needs its majority even on Mnesia: its declaration goes unanswered, and serve says so.
      const quorum = `${queue}_quorum`;
      const waiting = await startServe(
        ["--workers", "1", "--queue", quorum, "--queue-type", "quorum", "--url", urls[0]!],
        {},
        null,
      );
      try {
        await waiting.waitForLog(
          new RegExp(
            `has not answered the declaration of queue "${quorum}" for 10 s: a node cut off from its cluster's majority cannot declare a quorum queue`,
          ),
          60_000,
        );
        expect(waiting.proc.exitCode).toBeNull(); // waiting, not dead
        expect(await waiting.stop()).toBe(0); // and a stop meanwhile is a clean one
      } finally {
        if (waiting.proc.exitCode === null) waiting.proc.kill("SIGKILL");
      }
    } else {
      // The broker's own timeout (about 30 s) passes before it closes the connection.
      await server.waitForLog(
        /could not declare the queue: .*metadata store operation timed out.*; bring the cluster's other nodes back/,
        120_000,
      );
      // Said first, while the declaration was unanswered (10 s of the broker's 30).
      expect(server.log.indexOf("has not answered the declaration of queue")).toBeGreaterThan(-1);
      expect(server.log.indexOf("has not answered the declaration of queue")).toBeLessThan(
        server.log.indexOf("metadata store operation timed out"),
      );
      const line = server.log.split("\n").find((l) => l.includes("metadata store operation timed out"))!;
      expect(line).toContain(
        `the broker at amqp://guest:***@127.0.0.1:${cluster.ports[0]} could not declare the queue`,
      );
      expect(server.proc.exitCode).toBeNull(); // waiting, not dead
      expect(server.log).not.toMatch(/died|\n\s+at |\.js:\d+/); // no crash, no stack, no source
      const call = await run(["call", "--queue", queue, "--url", urls[0]!, "--timeout", "5s", "30"]);
      expect(call.stdout).toBe("");
      expect(call.code).toBe(69);
      expect(call.stderr).toContain(`queue "${queue}" does not exist`);
    }
    const before = server.log.length;
    await cluster.start(1);
    await cluster.start(2);
    if (KHEPRI) {
      // The declaration in flight when the majority came back may be committed while its
      // queue never starts: RabbitMQ 4.3.6 then answers every declaration of that name with
      // 404 "… due to timeout" until the queue is deleted. serve says so, with the remedy,
      // and keeps trying; the operator's delete_queue lets it declare the queue afresh.
      await server.waitForLog(/1\/1 workers serving|does not answer/, 180_000, before);
      if (!/1\/1 workers serving/.test(server.log.slice(before))) {
        expect(server.log.slice(before)).toContain(
          `could not declare queue "${queue}": it has a record of the queue, but the queue does not answer`,
        );
        expect(server.log.slice(before)).toContain(`if it lasts, delete it (rabbitmqctl delete_queue ${queue})`);
        expect((await cluster.ctl(0, ["delete_queue", queue])).code).toBe(0);
      }
    }
    // On Khepri serve was waiting and now serves; on Mnesia it served all along.
    if (KHEPRI) await server.waitForLog(/1\/1 workers serving/, 180_000, before);
    const after = await run(["call", "--queue", queue, "--url", urls[0]!, "30"]);
    expect(after.stdout).toBe("832040\n");
    expect(after.code).toBe(0);
    expect(server.log).not.toMatch(/died/);
    expect(await server.stop()).toBe(0);
  } finally {
    // The next file's cluster is its own; this one must be whole again for afterAll's stop.
    for (const i of [1, 2]) await cluster.start(i).catch(() => {});
  }
}, 400_000);
