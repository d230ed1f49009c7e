/**
 * What serve declares and does, as the broker reports it (rabbitmqctl), on the release the suite
 * runs against (FIBRPC_TEST_BROKER: 3.10, 4.0, 4.3); expectations that differ by release are
 * stated per release. RabbitMQ 4.3 refuses by default what older brokers allowed (non-durable
 * non-exclusive queues — denied on this suite's 4.3 nodes —, basic.qos with global=true); a
 * broker's refusal is one line and exit 78. Also: heavy requests never starve a worker's event
 * loop (drain under a flood).
 */
import { describe, expect, test } from "bun:test";
import { deadLetterQueueName } from "../../src/rpc/queue.ts";
import { BROKER_RELEASE, rabbitmqctlJson, releaseAtLeast, TRANSIENT_QUEUES_DENIED } from "../broker.ts";
import {
  URL,
  alsoDelete,
  eventually,
  queueStats,
  rawChannel,
  startServe,
  uniqueQueue,
  cleanupAfterFile,
} from "../helpers.ts";
import { connect } from "amqplib";

cleanupAfterFile();

/** rabbitmqctl's JSON output (one object per row). */
const rabbitmqctl = (...args: string[]) => rabbitmqctlJson(args);

async function queueRow(queue: string): Promise<Record<string, unknown> | undefined> {
  const rows = await rabbitmqctl("list_queues", "name", "durable", "exclusive", "auto_delete", "arguments");
  return rows.find((row) => row.name === queue);
}

/**
 * The arguments a classic request queue has, as rabbitmqctl lists them, per release: serve asks
 * for storage version 2 only before 3.12 (wantsClassicStorageV2); from 4.0 on the broker records
 * the queue type itself. Never x-queue-mode, x-queue-master-locator or x-queue-version 1 (denied
 * by 4.3).
 */
const CLASSIC_ARGUMENTS: Record<typeof BROKER_RELEASE, unknown[][]> = {
  "3.10": [["x-queue-version", 2]],
  "4.0": [["x-queue-type", "classic"]],
  "4.3": [["x-queue-type", "classic"]],
};

describe("what serve declares", () => {
  test(`classic: a durable, non-exclusive queue with RabbitMQ ${BROKER_RELEASE}'s arguments ${JSON.stringify(CLASSIC_ARGUMENTS[BROKER_RELEASE])}`, async () => {
    const queue = uniqueQueue();
    const server = await startServe(["--workers", "1", "--queue", queue]);
    const row = await queueRow(queue);
    expect(row).toMatchObject({ name: queue, durable: true, exclusive: false, auto_delete: false });
    expect((row!.arguments as unknown[][]).map((a) => [a[0], a[2]])).toEqual(CLASSIC_ARGUMENTS[BROKER_RELEASE]);
    expect(await server.stop()).toBe(0);
  });

  test("quorum: durable, with its dead-letter queue, both quorum", async () => {
    const queue = uniqueQueue();
    alsoDelete(deadLetterQueueName(queue));
    const server = await startServe(["--workers", "1", "--queue", queue, "--queue-type", "quorum"]);
    const row = await queueRow(queue);
    // rabbitmqctl shows "" for the exclusive flag of quorum queues, which cannot be exclusive.
    expect(row).toMatchObject({ durable: true, exclusive: "", auto_delete: false });
    expect(JSON.stringify(row?.arguments)).toContain('["x-queue-type","longstr","quorum"]');
    const dlq = await queueRow(deadLetterQueueName(queue));
    expect(dlq).toMatchObject({ durable: true, exclusive: "" });
    // Bounded: requests that expire in the request queue are dead-lettered there too.
    const dlqArguments = Object.fromEntries((dlq!.arguments as unknown[][]).map((a) => [a[0], a[2]]));
    expect(dlqArguments).toEqual({
      "x-queue-type": "quorum",
      "x-max-length": 10_000,
      "x-overflow": "drop-head",
      "x-message-ttl": 604_800_000,
    });
    expect(await server.stop()).toBe(0);
  });

  test("quorum: a dead-letter queue an older fibrpc declared without bounds is kept, and serve says how to bound it", async () => {
    const queue = uniqueQueue();
    const dlq = deadLetterQueueName(queue);
    alsoDelete(dlq);
    const { ch } = await rawChannel();
    await ch.assertQueue(dlq, { durable: true, arguments: { "x-queue-type": "quorum" } });
    const server = await startServe(["--workers", "1", "--queue", queue, "--queue-type", "quorum"]);
    expect(server.log).toMatch(
      new RegExp(`WARN .*the dead-letter queue "${dlq}" has no length limit \\(declared by an older fibrpc\\)`),
    );
    expect(JSON.stringify((await queueRow(dlq))?.arguments)).not.toContain("x-max-length");
    expect(await server.stop()).toBe(0);
  });

  test(
    TRANSIENT_QUEUES_DENIED
      ? `the tutorial's queue (not durable) cannot exist on RabbitMQ ${BROKER_RELEASE}: its declaration closes the connection (541, transient_nonexcl_queues); serve declares it durable`
      : `a queue that exists with other settings (the tutorial's: not durable, permitted by RabbitMQ ${BROKER_RELEASE}) is joined as it is`,
    async () => {
      if (TRANSIENT_QUEUES_DENIED) return transientQueueRefused();
      await joinedAsItIs();
    },
  );
  test("the broker refusing the set-up is one line and exit 78", async () => {
    const queue = uniqueQueue();
    const dlq = deadLetterQueueName(queue);
    alsoDelete(dlq);
    const { ch } = await rawChannel();
    await ch.assertQueue(dlq, { durable: true }); // classic, where serve needs a quorum queue
    const server = await startServe(["--workers", "2", "--queue", queue, "--queue-type", "quorum"], {}, null);
    expect(await server.proc.exited).toBe(78);
    const lines = server.log.split("\n").filter((line) => line.includes("exists with other settings"));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(
      `the dead-letter queue "${dlq}" exists with other settings (inequivalent arg 'x-queue-type'`,
    );
    expect(lines[0]).toContain(`rabbitmqctl delete_queue ${dlq}`);
    expect(server.log).not.toMatch(/\n\s+at |\.js:\d+/); // no stack, no source
  });
});

describe("heavy requests", () => {
  test("no channel ever uses a global (channel-wide) prefetch, even while heavy requests are computed", async () => {
    const queue = uniqueQueue();
    const server = await startServe([
      "--workers",
      "2",
      "--queue",
      queue,
      "--max-n",
      "10000000",
      "--log-level",
      "debug",
    ]);
    const { ch } = await rawChannel();
    const { queue: callback } = await ch.assertQueue("", { exclusive: true });
    let answered = 0;
    let allAnswered: () => void = () => {};
    const done = new Promise<void>((resolve) => (allAnswered = resolve));
    await ch.consume(callback, (msg) => msg && ++answered === 12 && allAnswered(), { noAck: true });
    for (let i = 0; i < 12; i++)
      ch.sendToQueue(queue, Buffer.from("5000000"), { replyTo: callback, correlationId: `h${i}` });
    await server.waitForLog(/computing heavy fib\(5000000\)/);
    const samples: Record<string, unknown>[][] = [];
    // rabbitmqctl lists global_prefetch_count up to 3.x only: there it must read 0. RabbitMQ 4.3
    // denies global QoS by default: a channel-wide limit would close the channel (serve would
    // exit 78), so the 12 answers and a serve still running are the check. 4.0 shows neither
    // (it permits global QoS and lists no column): there only the answers are checked.
    const globalQosListed = !releaseAtLeast(4, 0);
    const columns = ["list_channels", "name", "prefetch_count", ...(globalQosListed ? ["global_prefetch_count"] : [])];
    while (answered < 12 && samples.length < 3) samples.push(await rabbitmqctl(...columns));
    await done;
    expect(samples.length).toBeGreaterThan(0);
    const channels = samples.flat();
    expect(channels.length).toBeGreaterThan(0);
    if (globalQosListed) expect(channels.filter((c) => c.global_prefetch_count !== 0)).toEqual([]);
    expect(channels.filter((c) => typeof c.prefetch_count !== "number")).toEqual([]);
    expect(server.proc.exitCode).toBeNull();
    expect(server.log).not.toMatch(/global_qos|refused/);
    expect(await server.stop()).toBe(0);
  });

  test("between heavy computations the worker does its I/O: replies go out one by one, and SIGTERM drains after the computation in progress, not the backlog", async () => {
    const queue = uniqueQueue();
    // One worker, 20 heavy requests. The drain timeout is far above one computation on any
    // machine: the test checks that the drain ends after the computation in progress, with the
    // other requests back in the queue, not how fast that is.
    const server = await startServe([
      "--workers",
      "1",
      "--queue",
      queue,
      "--max-n",
      "10000000",
      "--drain-timeout",
      "100s",
      "--log-level",
      "debug",
    ]);
    const { ch } = await rawChannel();
    const { queue: callback } = await ch.assertQueue("", { exclusive: true });
    const arrivals: number[] = [];
    await ch.consume(callback, (msg) => msg && arrivals.push(performance.now()), { noAck: true });
    const sent = 20;
    for (let i = 0; i < sent; i++)
      ch.sendToQueue(queue, Buffer.from("10000000"), { replyTo: callback, correlationId: `h${i}` });
    // Two replies arrive while the other requests are still waiting: each is written out
    // between computations, not all at the end.
    const started = performance.now();
    while (arrivals.length < 2) {
      if (performance.now() - started > 60_000) throw new Error("no two replies within 60 s");
      await server.waitForLog(/fib\(10000000\) → /, 60_000, server.log.length);
    }
    // (That they came one by one, not all at the end, shows below: requests are left over.)
    const beforeDrain = arrivals.length;
    const signalledAt = performance.now();
    const code = await server.stop();
    const drainMs = performance.now() - signalledAt;
    expect(code).toBe(0);
    expect(server.log).not.toContain("drain timed out");
    // Nothing lost: answered + back in the queue = sent.
    const { messageCount } = await eventually(
      () => queueStats(queue),
      (s) => arrivals.length + s.messageCount === sent,
      5_000,
      "answered + left in the queue = sent",
    );
    expect(arrivals.length + messageCount).toBe(sent);
    // The drain waited for the computation in progress only: at most the replies already on
    // their way when the signal went plus that one came after it; the backlog went back.
    expect(messageCount).toBeGreaterThan(0);
    console.log(
      `heavy flood: ${beforeDrain} replies before SIGTERM, drained in ${Math.round(drainMs)} ms, ${arrivals.length} answered + ${messageCount} back in the queue = ${sent}`,
    );
  });
});

/** Where transient non-exclusive queues are permitted: the tutorial's queue is served as it is. */
async function joinedAsItIs(): Promise<void> {
  const queue = uniqueQueue();
  const { ch } = await rawChannel();
  // Exactly what the tutorial's server does: queue_declare(queue='rpc_queue').
  await ch.assertQueue(queue, { durable: false });
  const server = await startServe(["--workers", "2", "--queue", queue]);
  expect(server.log).toMatch(
    /queue "fibrpc_test_\w+" already exists with other settings \(inequivalent arg 'durable'.*\); serving it as it is/,
  );
  expect(server.log.match(/already exists with other settings/g)).toHaveLength(1); // said once, not per worker
  expect(await queueRow(queue)).toMatchObject({ durable: false });
  const { queue: callback } = await ch.assertQueue("", { exclusive: true });
  const reply = new Promise<string>(
    (resolve) => void ch.consume(callback, (msg) => msg && resolve(msg.content.toString()), { noAck: true }),
  );
  ch.sendToQueue(queue, Buffer.from("30"), { replyTo: callback, correlationId: "1" });
  expect(await reply).toBe("832040");
  expect(await server.stop()).toBe(0);
}

/**
 * Where they are denied: the broker closes the declaring connection (not just the channel) with
 * 541 naming the feature, no queue is made, and serve then declares the name durable and serves.
 */
async function transientQueueRefused(): Promise<void> {
  const queue = uniqueQueue();
  const conn = await connect(URL);
  const closed = new Promise<Error>((resolve) => conn.on("error", resolve));
  const ch = await conn.createChannel();
  ch.on("error", () => {}); // the connection's error below says it
  await expect(ch.assertQueue(queue, { durable: false })).rejects.toThrow();
  const error = await closed;
  expect(error.message).toContain("541");
  expect(error.message).toContain("transient_nonexcl_queues");
  expect(await queueRow(queue)).toBeUndefined();
  const server = await startServe(["--workers", "1", "--queue", queue]);
  expect(server.log).not.toContain("already exists with other settings");
  expect(await queueRow(queue)).toMatchObject({ durable: true, exclusive: false });
  const { ch: caller } = await rawChannel();
  const { queue: callback } = await caller.assertQueue("", { exclusive: true });
  const reply = new Promise<string>(
    (resolve) => void caller.consume(callback, (msg) => msg && resolve(msg.content.toString()), { noAck: true }),
  );
  caller.sendToQueue(queue, Buffer.from("30"), { replyTo: callback, correlationId: "1" });
  expect(await reply).toBe("832040");
  expect(await server.stop()).toBe(0);
}
