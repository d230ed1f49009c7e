/**
 * The tutorial's open questions, answered against the real broker: no server, timeouts and
 * deadlines, remote errors, poison requests, and the input contract on both sides.
 */
import { describe, expect, test } from "bun:test";
import type { ConsumeMessage } from "amqplib";
import { createConsola } from "consola";
import { parseBrokerUrl } from "../../src/broker-url.ts";
import { RpcClient } from "../../src/rpc/client.ts";
import { deadLetterQueueName } from "../../src/rpc/queue.ts";
import { Hold } from "../hold.ts";
import { startProxy } from "../proxy.ts";
import {
  tracked,
  alsoDelete,
  BIN,
  TEST_BIN,
  eventually,
  queueStats,
  rawChannel,
  run,
  silentPort,
  startServe,
  uniqueQueue,
  URL,
  cleanupAfterFile,
  BROKER_PORT,
} from "../helpers.ts";

cleanupAfterFile();

/**
 * `fibrpc call ARGS` with `--timeout 20s`, started now and left running: a call given a shorter
 * --timeout must exit while this one still waits. That it gives up at its own timeout, and not at
 * the default (30 s), is then an order of events, not a duration measured on this machine.
 */
function twinCall(args: string[]) {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("FIBRPC_") && v !== undefined) env[k] = v;
  return tracked(
    Bun.spawn([BIN, "call", "--url", URL, "--timeout", "20s", ...args], {
      cwd: "/",
      env,
      stdout: "ignore",
      stderr: "ignore",
      stdin: "ignore",
    }),
  );
}

describe("no server", () => {
  test("--wait-for-server succeeds when a server starts during the wait", async () => {
    const queue = uniqueQueue();
    const call = tracked(
      Bun.spawn([BIN, "call", "--url", URL, "--wait-for-server", "--timeout", "20s", "--queue", queue, "30"], {
        cwd: "/",
        stdout: "pipe",
        stderr: "pipe",
      }),
    );
    // Wait until call says it is waiting, then start the server.
    let stderr = "";
    const decoder = new TextDecoder();
    for await (const chunk of call.stderr) {
      stderr += decoder.decode(chunk);
      if (stderr.includes("waiting for one")) break;
    }
    expect(stderr).toContain(`no server on queue "${queue}" yet`);
    const server = await startServe(["--workers", "1", "--queue", queue]);
    expect(await call.exited).toBe(0);
    expect(await new Response(call.stdout).text()).toBe("832040\n");
    expect(await server.stop()).toBe(0);
  });

  test("--wait-for-server gives up at --timeout with exit 75", async () => {
    const queue = uniqueQueue();
    const twin = twinCall(["--wait-for-server", "--queue", queue, "5"]);
    const { code, stderr } = await run(["call", "--wait-for-server", "--timeout", "400ms", "--queue", queue, "5"]);
    expect(code).toBe(75);
    expect(stderr).toContain(`no server started consuming queue "${queue}"`);
    // Started first with --timeout 20s, the twin is still waiting: this call gave up at its 400ms.
    expect(twin.exitCode).toBeNull();
    twin.kill();
  });
});

describe("timeouts and deadlines", () => {
  test("a server that never replies: exit 75 after --timeout, one line per n", async () => {
    const queue = uniqueQueue();
    const { ch } = await rawChannel();
    await ch.assertQueue(queue, { durable: true });
    await ch.consume(queue, (msg) => msg && ch.ack(msg)); // takes requests, never answers
    const twin = twinCall(["--queue", queue, "7"]);
    const { code, stdout, stderr, ms } = await run(["call", "--timeout", "300ms", "--queue", queue, "5", "6"]);
    expect(code).toBe(75);
    expect(stdout).toBe("");
    expect(stderr).toMatch(/^fib\(5\): TIMEOUT: no reply within the timeout.*\nfib\(6\): TIMEOUT: /);
    // Never before its timeout (no machine is fast enough to make this fail; an early timer is)...
    expect(ms).toBeGreaterThanOrEqual(300);
    // ...and at it, not at a longer one: the twin, started first with --timeout 20s, still waits.
    expect(twin.exitCode).toBeNull();
    twin.kill();
  });

  test("a broker that does not answer the handshake within --timeout: TIMEOUT (75), not 'cannot reach' (68)", async () => {
    // A listener that takes the connection and says nothing: the call's deadline ends the attempt.
    const silent = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    try {
      const url = `amqp://guest:guest@127.0.0.1:${silent.port}`;
      const r = await run(["call", "--timeout", "300ms", "--url", url, "5"]);
      expect([r.code, r.stdout]).toEqual([75, ""]);
      expect(r.stderr).toBe(
        `fibrpc: the timeout ran out while connecting to the broker at amqp://guest:***@127.0.0.1:${silent.port}; ` +
          "raise --timeout (connecting is part of it), or check that the broker can be reached\n",
      );
      // The URL's own connection_timeout, shorter than --timeout, is the broker's to answer within: unreachable.
      const own = await run(["call", "--timeout", "20s", "--url", `${url}?connection_timeout=200`, "5"]);
      expect(own.code, own.stderr).toBe(68);
    } finally {
      silent.stop(true);
    }
  });

  test("a first URL that takes the connection and never answers: given up after 10 s by default, the next used", async () => {
    const silent = silentPort();
    const queue = uniqueQueue("failover_silent");
    const urls = ["--url", `amqp://guest:guest@127.0.0.1:${silent.port}`, "--url", URL];
    // serve warns once it gives the first up, and serves from the second.
    const server = await startServe(["--workers", "1", "--queue", queue, ...urls], {}, null);
    await server.waitForLog(/1\/1 workers serving/, 30_000);
    expect(server.log).toContain(
      `the broker at amqp://guest:***@127.0.0.1:${silent.port} did not answer within 10000 ms (connection_timeout)`,
    );
    // call, its --timeout longer than the default bound: the second URL answers within it.
    const started = Date.now();
    const call = await run(["call", "--timeout", "30s", "--queue", queue, ...urls, "30"]);
    expect([call.code, call.stdout], call.stderr).toEqual([0, "832040\n"]);
    expect(Date.now() - started).toBeGreaterThanOrEqual(10_000);
    expect(await server.stop()).toBe(0);
  });

  test("a request nobody picked up in time is dropped by the broker, never computed", async () => {
    const queue = uniqueQueue();
    // A consumer that holds the first request and takes no more (prefetch 1, never acks), so
    // the second request waits in the queue until its expiration.
    const stalled = await rawChannel();
    await stalled.ch.assertQueue(queue, { durable: true });
    await stalled.ch.prefetch(1);
    let held = 0;
    await stalled.ch.consume(queue, () => held++);
    const { code } = await run(["call", "--timeout", "300ms", "--queue", queue, "101", "102"]);
    expect(code).toBe(75);
    expect(held).toBe(1);
    // The waiting request expires in the queue...
    await eventually(
      () => queueStats(queue),
      (s) => s.messageCount === 0,
      10_000,
      "expired request dropped",
    );
    // ...and the held one, requeued when its consumer goes, is expired too.
    await stalled.conn.close();
    const server = await startServe(["--workers", "2", "--queue", queue, "--log-level", "debug"]);
    const after = await run(["call", "--queue", queue, "103"]);
    expect(after.stdout.length).toBeGreaterThan(0);
    await server.waitForLog(/fib\(103\)/, 5000);
    expect(server.log).not.toMatch(/fib\(10[12]\)|skipped/);
    expect(await queueStats(queue)).toMatchObject({ messageCount: 0 });
    expect(await server.stop()).toBe(0);
  });

  test("the server skips work whose caller has given up", async () => {
    const queue = uniqueQueue();
    const server = await startServe(["--workers", "1", "--queue", queue, "--log-level", "debug"]);
    const { ch } = await rawChannel();
    const { queue: callback } = await ch.assertQueue("", { exclusive: true });
    const reply = new Promise<{ type?: string; body: string }>((resolve) => {
      ch.consume(callback, (msg) => msg && resolve({ type: msg.properties.type, body: msg.content.toString() }), {
        noAck: true,
      });
    });
    // No expiration, so the broker delivers it; only the deadline header says it is too late.
    ch.sendToQueue(queue, Buffer.from("104"), {
      replyTo: callback,
      correlationId: "late",
      headers: { "x-fibrpc-deadline": Date.now() - 5000 },
    });
    expect(await reply).toMatchObject({ type: "error", body: expect.stringMatching(/^DEADLINE_EXCEEDED: /) });
    await server.waitForLog(/skipped a request whose caller gave up \d+ ms ago/, 5000);
    expect(server.log).not.toContain("fib(104)");
    expect(await server.stop()).toBe(0);
  });

  test("a late reply, after its call timed out, is ignored", async () => {
    const queue = uniqueQueue();
    const responder = await rawChannel();
    await responder.ch.assertQueue(queue, { durable: true });
    // The request is taken and held; the reply is sent only once the call has timed out.
    let request: (msg: ConsumeMessage) => void = () => {};
    const received = new Promise<ConsumeMessage>((resolve) => (request = resolve));
    await responder.ch.consume(queue, (msg) => {
      if (!msg) return;
      responder.ch.ack(msg);
      request(msg);
    });
    const lines: string[] = [];
    const log = createConsola({ level: 4, reporters: [{ log: (o) => lines.push(o.args.join(" ")) }] });
    const client = await RpcClient.connect({
      broker: { urls: [parseBrokerUrl(URL)], tls: {} },
      queue,
      replyQueue: "direct",
      timeoutMs: 200,
      log,
    });
    try {
      const outcome = await client.call(6);
      expect(outcome).toMatchObject({ ok: false, code: "TIMEOUT" });
      const msg = await received;
      responder.ch.sendToQueue(msg.properties.replyTo, Buffer.from("8"), {
        correlationId: msg.properties.correlationId,
      });
      // The reply is on its way back; wait until the client has seen and ignored it.
      await eventually(
        async () => lines.join("\n"),
        (text) => text.includes("ignored a reply"),
        5000,
        "late reply ignored",
      );
    } finally {
      await client.close();
    }
  });
});

describe("remote errors", () => {
  test("a server-side exception comes back as INTERNAL for that n; the others print; the worker keeps serving", async () => {
    const queue = uniqueQueue();
    const server = await startServe(["--workers", "1", "--queue", queue], { FIBRPC_TEST_FAULTS: "throw=13" });
    const { code, stdout, stderr } = await run(["call", "--queue", queue, "12", "13", "14"]);
    expect(code).toBe(76);
    expect(stdout).toBe("144\n377\n");
    expect(stderr).toBe("fib(13): INTERNAL: computing fib(13) failed on the server\n");
    const again = await run(["call", "--queue", queue, "15"]);
    expect(again).toMatchObject({ code: 0, stdout: "610\n" });
    expect(server.log).not.toMatch(/died|restarting/);
    expect(await server.stop()).toBe(0);
  });

  test("the server enforces its own --max-n whatever the client did", async () => {
    const queue = uniqueQueue();
    const server = await startServe(["--workers", "1", "--queue", queue, "--max-n", "10"]);
    const { code, stdout, stderr } = await run(["call", "--queue", queue, "10", "11"]);
    expect(code).toBe(76);
    expect(stdout).toBe("55\n");
    expect(stderr).toBe("fib(11): N_TOO_LARGE: n must be at most 10, got 11\n");
    expect(await server.stop()).toBe(0);
  });
});

describe("poison requests are not redelivered forever", () => {
  for (const queueType of ["classic", "quorum"] as const) {
    test(`${queueType}: a request that crashes the worker gets POISON_REQUEST; serving goes on`, async () => {
      const queue = uniqueQueue();
      if (queueType === "quorum") alsoDelete(deadLetterQueueName(queue));
      const server = await startServe(["--workers", "1", "--queue", queue, "--queue-type", queueType], {
        FIBRPC_TEST_FAULTS: "crash=14",
      });
      // --wait-for-server: call looks for the server before it publishes, not alongside, when the
      // worker may already have crashed on the request and be restarting (no consumer for a moment).
      const { code, stdout, stderr } = await run([
        "call",
        "--queue",
        queue,
        "--wait-for-server",
        "--timeout",
        "30s",
        "14",
      ]);
      expect(stdout).toBe("");
      expect(stderr).toMatch(/^fib\(14\): POISON_REQUEST: the request crashed a server 3 times; it is not tried again/);
      expect(code).toBe(76);
      await server.waitForLog(/(worker 1 died unexpectedly[\s\S]*){3}/, 5000);
      expect(server.log.match(/worker 1 died unexpectedly/g)).toHaveLength(3);
      expect(server.log.match(/worker 1 died while computing a request \(crash \d pinned on it\)/g)).toHaveLength(3);
      // Redelivered requests that did not fail are served normally, and serving goes on.
      const next = await run(["call", "--queue", queue, "15"]);
      expect(next).toMatchObject({ code: 0, stdout: "610\n" });
      expect(await queueStats(queue)).toMatchObject({ messageCount: 0 });
      expect(await server.stop()).toBe(0);
    });
  }
});

test("the release binary cannot inject faults: it ignores FIBRPC_TEST_FAULTS and holds no fault code", async () => {
  const binary = await Bun.file(BIN).bytes();
  const holds = (text: string) => Buffer.from(binary.buffer, binary.byteOffset, binary.byteLength).includes(text);
  expect(holds("injected exception for n=")).toBe(false);
  expect(holds("FIBRPC_TEST_FAULTS")).toBe(false);
  expect(Buffer.from(await Bun.file(TEST_BIN).bytes()).includes("injected exception for n=")).toBe(true);
  const queue = uniqueQueue();
  const server = await startServe(
    ["--workers", "1", "--queue", queue],
    { FIBRPC_TEST_FAULTS: "crash=14,throw=13" },
    undefined,
    BIN,
  );
  const answered = await run(["call", "--queue", queue, "--timeout", "15s", "13", "14"]);
  expect(answered).toMatchObject({ code: 0, stdout: "233\n377\n" });
  expect(await server.stop()).toBe(0);
});

describe("poison accounting is fair", () => {
  test("requests delivered alongside a crashing one are answered, never refused with it", async () => {
    const queue = uniqueQueue();
    const server = await startServe(["--workers", "1", "--queue", queue, "--log-level", "debug"], {
      FIBRPC_TEST_FAULTS: "crash=14",
    });
    // The heavy ones wait their turn (unacked) while 14 crashes the worker: whether they are
    // redelivered depends on timing; either way they are answered, and only 14 is refused.
    const { code, stdout, stderr } = await run([
      "call",
      "--queue",
      queue,
      "--wait-for-server", // as above: the look for a server comes before the worker can crash
      "--timeout",
      "30s",
      "100000",
      "100001",
      "14",
    ]);
    expect(stderr).toMatch(/^fib\(14\): POISON_REQUEST: the request crashed a server 3 times/);
    expect(stderr.split("\n").filter(Boolean)).toHaveLength(1);
    expect(stdout.split("\n").map((line) => line.length)).toEqual([20899, 20899, 0]);
    expect(code).toBe(76);
    const redelivered = server.log.match(/computing heavy fib\(100000\)/g)?.length ?? 0;
    console.log(
      `alongside a poison request: fib(100000) was started ${redelivered} time(s), answered once, never refused`,
    );
    expect(await server.stop()).toBe(0);
  });

  for (const queueType of ["classic", "quorum"] as const) {
    test(`${queueType}: a request redelivered 4 times because its connection dropped is answered, not refused as poison`, async () => {
      const queue = uniqueQueue();
      if (queueType === "quorum") alsoDelete(deadLetterQueueName(queue));
      const proxy = await startProxy(BROKER_PORT);
      // Each computation of fib(100,000) is held until the test has cut the connection under it,
      // so the reply and ack are lost and the broker redelivers the request.
      const hold = new Hold(100_000);
      try {
        const server = await startServe(
          [
            "--workers",
            "1",
            "--queue",
            queue,
            "--queue-type",
            queueType,
            "--log-level",
            "debug",
            "--url",
            `amqp://guest:guest@127.0.0.1:${proxy.port}`,
          ],
          { FIBRPC_TEST_FAULTS: hold.faults() },
        );
        const { ch } = await rawChannel();
        const { queue: callback } = await ch.assertQueue("", { exclusive: true });
        const reply = new Promise<{ type?: string; length: number }>((resolve) => {
          void ch.consume(
            callback,
            (msg) => msg && resolve({ type: msg.properties.type, length: msg.content.length }),
            { noAck: true },
          );
        });
        ch.sendToQueue(queue, Buffer.from("100000"), { replyTo: callback, correlationId: "fair" });
        for (let cut = 1; cut <= 4; cut++) {
          const from = server.log.length;
          const held = await hold.next(20_000);
          expect(proxy.cut()).toBe(1);
          hold.release(held); // computed, and answered on a connection that is gone
          await server.waitForLog(/1\/1 workers serving/, 20_000, from);
        }
        // The fifth delivery is let through: answered with the result, not POISON_REQUEST.
        await hold.next(20_000);
        hold.releaseAll();
        const answer = await reply;
        expect(answer.type).toBeUndefined();
        expect(answer.length).toBe(20_899);
        expect(server.log).not.toMatch(/POISON|not tried again/);
        expect(await queueStats(queue)).toMatchObject({ messageCount: 0 });
        expect(await server.stop()).toBe(0);
      } finally {
        await proxy.close();
      }
    });
  }
});
