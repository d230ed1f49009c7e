/**
 * RabbitMQ 4.3 refuses by default what older brokers allowed: non-durable non-exclusive queues and
 * basic.qos with global=true. Only RabbitMQ 3.10 runs here, so these tests check what serve
 * declares and does, as the broker reports it (rabbitmqctl), and that a broker's refusal is one
 * line and exit 78. Also: heavy requests never starve a worker's event loop (drain under a flood).
 */
import { describe, expect, test } from "bun:test";
import { deadLetterQueueName } from "../../src/rpc/queue.ts";
import { alsoDelete, eventually, queueStats, rawChannel, startServe, uniqueQueue, cleanupAfterFile } from "../helpers.ts";

cleanupAfterFile();

/** rabbitmqctl's JSON output (one object per row). */
async function rabbitmqctl(...args: string[]): Promise<Record<string, unknown>[]> {
  const proc = Bun.spawn(["rabbitmqctl", "-q", ...args, "--formatter", "json"], { stdout: "pipe", stderr: "pipe" });
  const [out, code] = await Promise.all([new Response(proc.stdout).text(), proc.exited]);
  if (code !== 0) throw new Error(`rabbitmqctl ${args.join(" ")} exited ${code}: ${await new Response(proc.stderr).text()}`);
  return JSON.parse(out) as Record<string, unknown>[];
}

async function queueRow(queue: string): Promise<Record<string, unknown> | undefined> {
  const rows = await rabbitmqctl("list_queues", "name", "durable", "exclusive", "auto_delete", "arguments");
  return rows.find((row) => row.name === queue);
}

describe("what serve declares", () => {
  test("classic: a durable, non-exclusive queue, storage version 2 (allowed by RabbitMQ 4.3)", async () => {
    const queue = uniqueQueue();
    const server = await startServe(["--workers", "1", "--queue", queue]);
    const row = await queueRow(queue);
    expect(row).toMatchObject({ name: queue, durable: true, exclusive: false, auto_delete: false });
    // The only argument: no x-queue-mode, x-queue-master-locator or x-queue-version 1 (all denied by 4.3).
    expect((row?.arguments as unknown[][]).map((a) => [a[0], a[2]])).toEqual([["x-queue-version", 2]]);
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
    expect(JSON.stringify(dlq?.arguments)).toContain('["x-queue-type","longstr","quorum"]');
    expect(await server.stop()).toBe(0);
  });

  test("a queue that exists with other settings (the tutorial's: not durable) is joined as it is", async () => {
    const queue = uniqueQueue();
    const { ch } = await rawChannel();
    // Exactly what the tutorial's server does: queue_declare(queue='rpc_queue').
    await ch.assertQueue(queue, { durable: false });
    const server = await startServe(["--workers", "2", "--queue", queue]);
    expect(server.log).toMatch(/queue "fibrpc_test_\w+" already exists with other settings \(inequivalent arg 'durable'.*\); serving it as it is/);
    expect(server.log.match(/already exists with other settings/g)).toHaveLength(1); // said once, not per worker
    expect(await queueRow(queue)).toMatchObject({ durable: false });
    const { queue: callback } = await ch.assertQueue("", { exclusive: true });
    const reply = new Promise<string>((resolve) => void ch.consume(callback, (msg) => msg && resolve(msg.content.toString()), { noAck: true }));
    ch.sendToQueue(queue, Buffer.from("30"), { replyTo: callback, correlationId: "1" });
    expect(await reply).toBe("832040");
    expect(await server.stop()).toBe(0);
  });

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
    expect(lines[0]).toContain(`the dead-letter queue "${dlq}" exists with other settings (inequivalent arg 'x-queue-type'`);
    expect(lines[0]).toContain(`rabbitmqctl delete_queue ${dlq}`);
    expect(server.log).not.toMatch(/\n\s+at |\.js:\d+/); // no stack, no source
  });
});

describe("heavy requests", () => {
  test("no channel ever uses a global (channel-wide) prefetch, even while heavy requests are computed", async () => {
    const queue = uniqueQueue();
    const server = await startServe(["--workers", "2", "--queue", queue, "--max-n", "10000000", "--log-level", "debug"]);
    const { ch } = await rawChannel();
    const { queue: callback } = await ch.assertQueue("", { exclusive: true });
    let answered = 0;
    let allAnswered: () => void = () => {};
    const done = new Promise<void>((resolve) => (allAnswered = resolve));
    await ch.consume(callback, (msg) => msg && ++answered === 12 && allAnswered(), { noAck: true });
    for (let i = 0; i < 12; i++) ch.sendToQueue(queue, Buffer.from("5000000"), { replyTo: callback, correlationId: `h${i}` });
    await server.waitForLog(/computing heavy fib\(5000000\)/);
    const samples: Record<string, unknown>[][] = [];
    while (answered < 12 && samples.length < 3) samples.push(await rabbitmqctl("list_channels", "name", "global_prefetch_count", "prefetch_count"));
    await done;
    expect(samples.length).toBeGreaterThan(0);
    const channels = samples.flat();
    expect(channels.length).toBeGreaterThan(0);
    expect(channels.filter((c) => c.global_prefetch_count !== 0)).toEqual([]);
    expect(await server.stop()).toBe(0);
  });

  test("between heavy computations the worker does its I/O: replies go out one by one, and SIGTERM drains within --drain-timeout", async () => {
    const queue = uniqueQueue();
    // One worker, 20 requests of ~0.4 s each: 8 s of work, against a 3 s drain timeout.
    const server = await startServe(["--workers", "1", "--queue", queue, "--max-n", "10000000", "--drain-timeout", "3s", "--log-level", "debug"]);
    const { ch } = await rawChannel();
    const { queue: callback } = await ch.assertQueue("", { exclusive: true });
    const arrivals: number[] = [];
    await ch.consume(callback, (msg) => msg && arrivals.push(performance.now()), { noAck: true });
    const sent = 20;
    for (let i = 0; i < sent; i++) ch.sendToQueue(queue, Buffer.from("10000000"), { replyTo: callback, correlationId: `h${i}` });
    // Two replies arrive while the other requests are still waiting: each is written out
    // between computations, not all at the end.
    const started = performance.now();
    while (arrivals.length < 2) {
      if (performance.now() - started > 10_000) throw new Error("no two replies within 10 s");
      await server.waitForLog(/fib\(10000000\) → /, 10_000, server.log.length);
    }
    const beforeDrain = arrivals.length;
    expect(beforeDrain).toBeLessThan(sent / 2);
    const signalledAt = performance.now();
    const code = await server.stop();
    const drainMs = performance.now() - signalledAt;
    expect(code).toBe(0);
    expect(drainMs).toBeLessThan(3_000);
    expect(server.log).not.toContain("drain took longer");
    // Nothing lost: answered + back in the queue = sent.
    const { messageCount } = await eventually(() => queueStats(queue), (s) => arrivals.length + s.messageCount === sent, 5_000, "answered + left in the queue = sent");
    expect(arrivals.length + messageCount).toBe(sent);
    console.log(`heavy flood: ${beforeDrain} replies before SIGTERM, drained in ${Math.round(drainMs)} ms, ${arrivals.length} answered + ${messageCount} back in the queue = ${sent}`);
  });
});
