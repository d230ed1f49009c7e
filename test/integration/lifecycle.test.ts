/**
 * serve's life cycle at its edges, against the real broker and the compiled binaries: what
 * `fibrpc health` says of a serve that is stuck, dead or has left an unreadable file; the
 * supervisor giving up on a worker that keeps dying; a drain that cannot finish within
 * --drain-timeout; a second signal during a drain; and `call --retry` seen from the request queue.
 */
import { describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { connect as tcpConnect, createServer, type Socket } from "node:net";
import { join } from "node:path";
import type { Options } from "amqplib";
import { requestQueueOptions, type QueueType } from "../../src/rpc/queue.ts";
import { rabbitmqctlJson } from "../broker.ts";
import { Hold } from "../hold.ts";
import { startProxy } from "../proxy.ts";
import {
  alsoDelete,
  BROKER_PORT,
  cleanupAfterFile,
  eventually,
  pastEchoWindow,
  queueStats,
  rawChannel,
  run,
  type Server,
  startServe,
  tempFolder,
  uniqueQueue,
  URL,
} from "../helpers.ts";

cleanupAfterFile();

/**
 * A TCP proxy to the broker whose client-to-broker direction can be frozen: from freeze() on,
 * what serve sends (acks, replies, basic.cancel, channel and connection close) is held and never
 * reaches the broker, while deliveries still reach serve. A drain behind it can never finish:
 * the broker never hears the cancel, so never answers it. When serve's side closes (its process
 * exits), the broker's side is closed too, as a dead client's connection would be, and the
 * broker requeues what serve had not acked.
 */
async function startFreezableProxy(targetPort = BROKER_PORT) {
  const sockets = new Set<Socket>();
  let frozen = false;
  let held = 0;
  const server = createServer((client) => {
    const upstream = tcpConnect(targetPort, "127.0.0.1");
    sockets.add(client).add(upstream);
    const teardown = () => {
      sockets.delete(client);
      sockets.delete(upstream);
      client.destroy();
      upstream.destroy();
    };
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    upstream.pipe(client);
    client.on("data", (chunk: Buffer) => {
      if (frozen) held += chunk.length;
      else upstream.write(chunk);
    });
    for (const socket of [client, upstream]) {
      socket.on("error", teardown);
      socket.on("close", teardown);
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("proxy has no port");
  return {
    url: `amqp://guest:guest@127.0.0.1:${address.port}`,
    freeze() {
      frozen = true;
    },
    /** Bytes serve sent since freeze(), none of which reached the broker. */
    get held() {
      return held;
    },
    close() {
      for (const socket of sockets) socket.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** An exclusive reply queue on the real broker, and every reply it got, by correlation id. */
async function replyQueue() {
  const { conn, ch } = await rawChannel();
  const { queue } = await ch.assertQueue("", { exclusive: true });
  const replies = new Map<string, { type: string | undefined; body: string }[]>();
  await ch.consume(
    queue,
    (msg) => {
      if (!msg) return;
      const id = String(msg.properties.correlationId);
      replies.set(id, [...(replies.get(id) ?? []), { type: msg.properties.type, body: msg.content.toString() }]);
    },
    { noAck: true },
  );
  /** Sends requests (n by correlation id) with publisher confirms: once it resolves, they are in the queue. */
  const send = async (to: string, requests: Record<string, string>) => {
    const confirm = await conn.createConfirmChannel();
    for (const [correlationId, n] of Object.entries(requests))
      confirm.sendToQueue(to, Buffer.from(n), { replyTo: queue, correlationId });
    await confirm.waitForConfirms();
    await confirm.close();
  };
  const answered = () => [...replies.values()].reduce((sum, list) => sum + list.length, 0);
  return { replies, send, answered };
}

/** A process's state letter from /proc (Linux): "T" once SIGSTOP has stopped it. */
async function processState(pid: number): Promise<string> {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // pid (comm) state ...: the name may hold ") ", so look after the last one.
  return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[0]!;
}

/** Lines of serve's log (from offset `from`) that match `pattern`. */
const linesOf = (server: Server, pattern: RegExp, from = 0) =>
  server.log
    .slice(from)
    .split("\n")
    .filter((line) => pattern.test(line));

describe("fibrpc health against a real serve", () => {
  test("serve stopped (SIGSTOP): once its status is older than --max-age, unhealthy, stuck, exit 69; healthy again after SIGCONT", async () => {
    const statusFile = join(tempFolder("fibrpc-lifecycle-"), "status.json");
    const queue = uniqueQueue();
    const server = await startServe(["--workers", "1", "--queue", queue, "--status-file", statusFile]);
    // --max-age 7s: longer than serve's heartbeat (5 s), so a running serve is never stale.
    const health = () => run(["health", "--status-file", statusFile, "--max-age", "7s"]);
    expect(await health()).toMatchObject({ code: 0, stdout: `healthy: 1/1 workers consuming queue "${queue}"\n` });

    server.proc.kill("SIGSTOP");
    await eventually(
      async () => processState(server.proc.pid),
      (state) => state === "T",
      5_000,
      "serve stopped",
    );
    // Stopped, serve cannot rewrite its status: the file turns stale when the clock passes its
    // updatedAt + --max-age. Wait for that moment, then ask once.
    const { updatedAt } = JSON.parse(readFileSync(statusFile, "utf8")) as { updatedAt: number };
    await Bun.sleep(Math.max(0, updatedAt + 7_000 - Date.now()) + 50);
    const stuck = await health();
    expect(stuck.code).toBe(69);
    expect(stuck.stdout).toBe("");
    expect(stuck.stderr).toMatch(/^fibrpc: unhealthy: serve's status is \d+ s old: the process is stuck\n$/);
    expect(Number(/is (\d+) s old/.exec(stuck.stderr)![1])).toBeGreaterThanOrEqual(7);

    server.proc.kill("SIGCONT");
    await eventually(health, (r) => r.code === 0, 20_000, "health passing again after SIGCONT");
    expect(await server.stop()).toBe(0);
  });

  test("serve killed (SIGKILL) leaves its status file behind: its pid is not running any more, exit 69", async () => {
    const statusFile = join(tempFolder("fibrpc-lifecycle-"), "status.json");
    const server = await startServe(["--workers", "1", "--queue", uniqueQueue(), "--status-file", statusFile]);
    expect((await run(["health", "--status-file", statusFile])).code).toBe(0);
    const pid = server.proc.pid;
    server.proc.kill("SIGKILL");
    await server.proc.exited;
    expect(existsSync(statusFile)).toBe(true);
    const dead = await run(["health", "--status-file", statusFile]);
    expect(dead).toMatchObject({
      code: 69,
      stdout: "",
      stderr: `fibrpc: unhealthy: serve (pid ${pid}) is not running any more\n`,
    });
  });

  const notStatus = "is not a status file serve wrote";
  const unreadable: { name: string; make: (path: string) => void; says: string }[] = [
    { name: "not JSON", make: (path) => writeFileSync(path, "not json\n"), says: `${notStatus} (it is not JSON)` },
    {
      name: "JSON null (was an internal error, exit 70)",
      make: (path) => writeFileSync(path, "null"),
      says: `${notStatus} (not an object of pid, queue, workers, serving, updatedAt)`,
    },
    {
      name: "a status without its time (was healthy)",
      make: (path) => writeFileSync(path, JSON.stringify({ pid: process.pid, queue: "q", workers: 1, serving: 1 })),
      says: `${notStatus} (not an object of pid, queue, workers, serving, updatedAt)`,
    },
    {
      name: "a folder",
      make: (path) => mkdirSync(path),
      says: "is a directory; give the file serve's --status-file names",
    },
  ];
  for (const c of unreadable) {
    test(`an unreadable status file (${c.name}): unhealthy, exit 69, one line saying what it is`, async () => {
      const statusFile = join(tempFolder("fibrpc-lifecycle-"), "status.json");
      c.make(statusFile);
      const result = await run(["health", "--status-file", statusFile]);
      expect(result).toMatchObject({ code: 69, stdout: "", stderr: `fibrpc: unhealthy: ${statusFile} ${c.says}\n` });
    });
  }

  test("a status file given as /dev/zero: an answer at once (not a regular file), not a hang filling memory", async () => {
    const result = await run(["health", "--status-file", "/dev/zero"]);
    expect(result).toMatchObject({
      code: 69,
      stdout: "",
      stderr: `fibrpc: unhealthy: /dev/zero ${notStatus} (it is not a regular file)\n`,
    });
  });
});

describe("the supervisor gives up on a crash loop", () => {
  test("a worker that dies 5 times within 60 s: serve exits 70 with one error line; every request is answered or back in the queue", async () => {
    const queue = uniqueQueue();
    // crash=14: computing fib(14) ends the worker, on every delivery. One request is refused as
    // poison after 3 crashes pinned on it, so two requests are needed for 5 crashes.
    const server = await startServe(["--workers", "1", "--queue", queue], { FIBRPC_TEST_FAULTS: "crash=14" });
    const { replies, send, answered } = await replyQueue();
    await send(queue, { a: "14", b: "14" });
    await server.waitForLog(/giving up/, 60_000);
    expect(await server.proc.exited).toBe(70);

    expect(linesOf(server, /died unexpectedly; restarting it in \d+ ms/)).toHaveLength(4);
    const givingUp = linesOf(server, /giving up/);
    expect(givingUp).toHaveLength(1);
    expect(givingUp[0]).toMatch(/^\S+ ERROR worker 1 died 5 times within 60s; giving up \(see the errors above\)$/);
    // It is the last word: nothing restarted or logged after it.
    expect(server.log.trimEnd().split("\n").at(-1)).toBe(givingUp[0]);

    // Nothing lost: each request was either refused as poison (after 3 crashes pinned on it) or
    // is back in the queue, unacked when serve exited.
    const { messageCount } = await eventually(
      () => queueStats(queue),
      (s) => s.consumerCount === 0 && s.messageCount + answered() >= 2,
      10_000,
      "requests answered or requeued",
    );
    for (const list of replies.values())
      for (const reply of list)
        expect(reply).toMatchObject({
          type: "error",
          body: expect.stringMatching(/^POISON_REQUEST: the request crashed a server 3 times/),
        });
    expect(messageCount + answered()).toBe(2);
    const left = new Set<string>();
    const { ch } = await rawChannel();
    for (let msg = await ch.get(queue, { noAck: true }); msg; msg = await ch.get(queue, { noAck: true }))
      left.add(String(msg.properties.correlationId));
    expect(new Set([...replies.keys(), ...left])).toEqual(new Set(["a", "b"]));
  });
});

describe("drain", () => {
  test("a clean drain ends with one line: the workers stopped and the requests answered; exit 0", async () => {
    const queue = uniqueQueue();
    const server = await startServe(["--workers", "2", "--queue", queue]);
    expect(await run(["call", "--queue", queue, "1", "2", "3", "4", "5"])).toMatchObject({
      code: 0,
      stdout: "1\n1\n2\n3\n5\n",
    });
    expect(await server.stop()).toBe(0);
    const lines = server.log.trimEnd().split("\n");
    expect(linesOf(server, /drained/)).toEqual([
      expect.stringMatching(/ INFO {2}drained: 2 workers stopped, 5 requests answered$/),
    ]);
    // The last word.
    expect(lines.at(-1)).toMatch(/drained: 2 workers stopped/);
  });

  test("SIGHUP (a terminal closed) drains as SIGTERM does: exit 0, the status file removed", async () => {
    const queue = uniqueQueue();
    const statusFile = join(tempFolder("fibrpc-lifecycle-"), "status.json");
    const server = await startServe(["--workers", "1", "--queue", queue, "--status-file", statusFile]);
    expect(await run(["call", "--queue", queue, "10"])).toMatchObject({ code: 0, stdout: "55\n" });
    server.proc.kill("SIGHUP");
    expect(await server.proc.exited).toBe(0);
    expect(linesOf(server, /draining|drained/)).toEqual([
      expect.stringMatching(/ INFO {2}SIGHUP: draining \(no new requests/),
      expect.stringMatching(/ INFO {2}drained: 1 worker stopped, 1 request answered$/),
    ]);
    expect(existsSync(statusFile)).toBe(false);
  });

  test("a second SIGHUP (a closed terminal's shell passing it on) does not cut the drain short", async () => {
    // The request is held in serve's worker: the drain cannot end before the test releases it.
    const hold = new Hold(26);
    const queue = uniqueQueue();
    const server = await startServe(["--workers", "1", "--queue", queue], { FIBRPC_TEST_FAULTS: hold.faults() });
    const call = run(["call", "--queue", queue, "26"]);
    await hold.next();
    server.proc.kill("SIGHUP");
    await server.waitForLog(/SIGHUP: draining/);
    server.proc.kill("SIGHUP");
    // Still draining: the held computation is released, answered, and serve exits 0 (143 had it been cut).
    hold.releaseAll();
    expect(await call).toMatchObject({ code: 0, stdout: "121393\n" });
    expect(await server.proc.exited).toBe(0);
    expect(server.log).not.toMatch(/again: exiting now/);
  });

  test("SIGTERM twice at once (GNU timeout signals serve and then its process group) is one stop: a drain, exit 0", async () => {
    const hold = new Hold(26);
    const queue = uniqueQueue();
    const server = await startServe(["--workers", "1", "--queue", queue], { FIBRPC_TEST_FAULTS: hold.faults() });
    const call = run(["call", "--queue", queue, "26"]);
    await hold.next();
    server.proc.kill("SIGTERM");
    server.proc.kill("SIGTERM");
    await server.waitForLog(/SIGTERM: draining/);
    hold.releaseAll();
    expect(await call).toMatchObject({ code: 0, stdout: "121393\n" });
    expect(await server.proc.exited).toBe(0);
    expect(server.log).not.toMatch(/exiting now/);
  });

  test("the connection lost during a drain: said once, exit 75 (not a clean drain); the request goes back to the queue", async () => {
    const proxy = await startProxy(BROKER_PORT);
    try {
      const hold = new Hold(26);
      const queue = uniqueQueue();
      const url = `amqp://guest:guest@127.0.0.1:${proxy.port}`;
      const server = await startServe(["--workers", "1", "--queue", queue, "--url", url], {
        FIBRPC_TEST_FAULTS: hold.faults(),
      });
      const call = run(["call", "--queue", queue, "--timeout", "60s", "26"]);
      await hold.next();
      server.proc.kill("SIGTERM");
      await server.waitForLog(/SIGTERM: draining/);
      // The broker goes away and stays away for the rest of the drain; the held computation then ends (the
      // worker notices the lost connection once its thread is free again).
      proxy.refuse(true);
      proxy.cut();
      hold.releaseAll();
      expect(await server.proc.exited).toBe(75);
      expect(linesOf(server, /during the drain/)).toEqual([
        expect.stringMatching(
          / WARN {2}lost the connection to the broker at amqp:\/\/guest:\*\*\*@127\.0\.0\.1:\d+ during the drain \(.+\): the requests in progress go back to the queue, for another server$/,
        ),
      ]);
      // Back in the queue, not lost: another serve answers it.
      const other = await startServe(["--workers", "1", "--queue", queue]);
      expect(await call).toMatchObject({ code: 0, stdout: "121393\n" });
      expect(await other.stop()).toBe(0);
    } finally {
      await proxy.close();
    }
  });

  test("--drain-timeout expires: one warning, exit 75, the status file removed; requests in flight go back to the queue and another server answers them", async () => {
    const proxy = await startFreezableProxy();
    try {
      const queue = uniqueQueue();
      const statusFile = join(tempFolder("fibrpc-lifecycle-"), "status.json");
      const server = await startServe([
        "--workers",
        "1",
        "--queue",
        queue,
        "--url",
        proxy.url,
        "--drain-timeout",
        "500ms",
        "--status-file",
        statusFile,
      ]);
      const { replies, send, answered } = await replyQueue();
      // From here on nothing serve sends reaches the broker: its worker gets the requests but
      // cannot ack them, nor (once asked to drain) cancel its consumer and close: it cannot finish.
      proxy.freeze();
      const requests = { r1: "10", r2: "11", r3: "12", r4: "13", r5: "100000" };
      await send(queue, requests);
      await eventually(
        () => queueStats(queue),
        (s) => s.messageCount === 0,
        10_000,
        "every request delivered to serve",
      );

      const from = server.log.length;
      server.proc.kill("SIGTERM");
      await server.waitForLog(/drain timed out/, 15_000, from);
      expect(await server.proc.exited).toBe(75);
      expect(linesOf(server, /SIGTERM: draining/, from)).toEqual([
        expect.stringMatching(
          / INFO {2}SIGTERM: draining \(no new requests; finishing those in progress; up to 500 ms\)$/,
        ),
      ]);
      expect(linesOf(server, /drain timed out|drained/, from)).toEqual([
        expect.stringMatching(
          / WARN {2}drain timed out after 500 ms: 1 worker stopped abruptly; its unacked requests go back to the queue$/,
        ),
      ]);
      // The last word: no "drained" line after it.
      expect(server.log.trimEnd().split("\n").at(-1)).toMatch(/drain timed out/);
      expect(existsSync(statusFile)).toBe(false);
      // The premise held: serve did write (acks, replies, the cancel) and none of it got through.
      expect(proxy.held).toBeGreaterThan(0);
      expect(answered()).toBe(0);

      // The requests it held unacked are back in the queue, all of them...
      await eventually(
        () => queueStats(queue),
        (s) => s.consumerCount === 0 && s.messageCount === 5,
        10_000,
        "the 5 requests back in the queue",
      );
      // ...and another server answers each, once.
      const second = await startServe(["--workers", "1", "--queue", queue]);
      await eventually(
        async () => answered(),
        (count) => count >= 5,
        20_000,
        "the 5 requests answered by another server",
      );
      expect(Object.fromEntries([...replies].map(([id, list]) => [id, list.map((r) => r.body.length)]))).toEqual({
        r1: [2],
        r2: [2],
        r3: [3],
        r4: [3],
        r5: [20899],
      });
      expect(replies.get("r1")![0]!.body).toBe("55");
      expect(await second.stop()).toBe(0);
    } finally {
      await proxy.close();
    }
  });

  const twice: { first: "SIGTERM" | "SIGINT"; second: "SIGTERM" | "SIGINT"; code: number }[] = [
    { first: "SIGTERM", second: "SIGINT", code: 130 },
    { first: "SIGTERM", second: "SIGTERM", code: 143 },
    { first: "SIGINT", second: "SIGINT", code: 130 },
  ];
  for (const { first, second, code } of twice) {
    test(`${first} then ${second} during the drain: exits at once with ${code}, not waiting for --drain-timeout; requests in flight go back to the queue`, async () => {
      const proxy = await startFreezableProxy();
      try {
        const queue = uniqueQueue();
        const statusFile = join(tempFolder("fibrpc-lifecycle-"), "status.json");
        // A drain that cannot end (frozen link) and a drain timeout far away: only the second
        // signal can end serve.
        const server = await startServe([
          "--workers",
          "2",
          "--queue",
          queue,
          "--url",
          proxy.url,
          "--drain-timeout",
          "10m",
          "--status-file",
          statusFile,
        ]);
        const { send, answered } = await replyQueue();
        proxy.freeze();
        await send(queue, { a: "20", b: "21", c: "22" });
        await eventually(
          () => queueStats(queue),
          (s) => s.messageCount === 0,
          10_000,
          "every request delivered to serve",
        );

        server.proc.kill(first);
        await server.waitForLog(new RegExp(`${first}: draining`), 15_000);
        await pastEchoWindow();
        server.proc.kill(second);
        const named = second === first ? `${second} again` : `${second} after ${first}`;
        await server.waitForLog(new RegExp(`${named}: exiting now`), 15_000);
        expect(await server.proc.exited).toBe(code);
        expect(linesOf(server, /draining/)).toEqual([
          expect.stringMatching(
            new RegExp(
              ` INFO  ${first}: draining \\(no new requests; finishing those in progress; up to 600000 ms\\)$`,
            ),
          ),
        ]);
        expect(linesOf(server, /: exiting now/)).toEqual([
          expect.stringMatching(new RegExp(` WARN  ${named}: exiting now$`)),
        ]);
        expect(server.log).not.toMatch(/drain timed out|drained/);
        // Gone with serve, as after a drain (it was left behind, reading "draining").
        expect(existsSync(statusFile)).toBe(false);

        expect(answered()).toBe(0);
        await eventually(
          () => queueStats(queue),
          (s) => s.consumerCount === 0 && s.messageCount === 3,
          10_000,
          "the 3 requests back in the queue",
        );
      } finally {
        await proxy.close();
      }
    });
  }
});

describe("a drain that puts back hundreds of heavy requests", () => {
  const cases = [
    { type: "quorum", oneChannel: false },
    { type: "classic", oneChannel: false },
    // No second channel for the copies: they go back on the serving one, with a warning.
    { type: "quorum", oneChannel: true },
  ] as const;
  for (const { type, oneChannel } of cases) {
    const on = oneChannel ? " (a connection of one channel: channel_max=1)" : "";
    test(`${type} queue${on}: each request ends answered once or back in the queue once, never both`, async () => {
      // A quorum queue lost the acks of the originals when the channel closed right after their copies (RabbitMQ
      // holds back a channel's settles past 32 enqueues in flight): each came back beside its copy, or was lost.
      const queue = uniqueQueue(`drain_copies_${type}`);
      const results = uniqueQueue(`drain_copies_${type}_results`);
      const hold = new Hold(100_000);
      const url = oneChannel ? ["--url", `${URL}?channel_max=1`] : [];
      const args = ["--workers", "1", "--prefetch", "400", "--queue", queue, "--queue-type", type, ...url];
      const server = await startServe(args, { FIBRPC_TEST_FAULTS: hold.faults() });
      alsoDelete(`${queue}.dead-letter`);
      // 100000 first: its computation holds the worker while the broker delivers it the others (prefetch 400).
      const ns = Array.from({ length: 401 }, (_, i) => String(100_000 + i));
      const sent = await run(["call", "--queue", queue, "--reply-to", results, "--no-wait", "--json", ...ns]);
      expect(sent.code, sent.stderr).toBe(0);
      const ids = sent.stdout
        .trimEnd()
        .split("\n")
        .map((line) => (JSON.parse(line) as { correlation_id: string }).correlation_id);
      const held = await hold.next();
      // As many as the socket's buffers take while the worker's thread is held: 400 on 3.10, from 250 on 4.3 (its
      // deliveries are larger); well past the 32 settles in flight the quorum queue holds back.
      await eventually(
        () => queueStats(queue),
        (s) => s.messageCount <= ns.length - 100,
        15_000,
        "at least 100 requests delivered to the held worker",
      );
      server.proc.kill("SIGTERM");
      await server.waitForLog(/SIGTERM: draining/);
      hold.release(held);
      hold.releaseAll();
      expect(await server.proc.exited).toBe(0);
      const { ch } = await rawChannel();
      const idsIn = async (name: string) => {
        const found: string[] = [];
        for (let m = await ch.get(name, { noAck: true }); m !== false; m = await ch.get(name, { noAck: true }))
          found.push(m.properties.correlationId as string);
        return found;
      };
      const answered = await idsIn(results);
      const left = await idsIn(queue);
      expect(answered.length).toBeGreaterThan(0);
      expect([...answered, ...left].sort()).toEqual([...ids].sort());
      expect(server.log.includes("no channel to put requests back on")).toBe(oneChannel);
    });
  }
});

describe("an existing queue of another type than --queue-type", () => {
  const cases: { existing: QueueType; asked: QueueType; declare: (queue: string) => Options.AssertQueue }[] = [
    // What the issue met: a plain durable classic queue, serve asked for quorum.
    { existing: "classic", asked: "quorum", declare: () => ({ durable: true }) },
    // A quorum queue as `serve --queue-type quorum` declares it, then a serve without the flag.
    { existing: "quorum", asked: "classic", declare: (queue) => requestQueueOptions(queue, "quorum") },
  ];
  for (const { existing, asked, declare } of cases) {
    test(`${existing} queue, --queue-type ${asked}: one warning naming the existing queue's type; it is served as it is`, async () => {
      const queue = uniqueQueue();
      alsoDelete(`${queue}.dead-letter`);
      const { ch } = await rawChannel();
      await ch.assertQueue(queue, declare(queue));
      const server = await startServe(["--workers", "2", "--queue", queue, "--queue-type", asked]);
      const notices = linesOf(server, /already exists/);
      expect(notices).toEqual([
        expect.stringMatching(
          new RegExp(
            ` WARN  queue "${queue}" already exists as a ${existing} queue, not the ${asked} queue asked for \\(inequivalent arg '[\\w-]+' for queue '${queue}'.*\\); serving it as it is$`,
          ),
        ),
      ]);
      expect(await run(["call", "--queue", queue, "30"])).toMatchObject({ code: 0, stdout: "832040\n" });
      expect(await server.stop()).toBe(0);
      // Joined, not redeclared: still the operator's queue, and no dead-letter queue made for it.
      const rows = await rabbitmqctlJson(["list_queues", "name", "type"]);
      expect(rows.filter((r) => String(r.name).startsWith(queue))).toEqual([{ name: queue, type: existing }]);
    });
  }
});

describe("call --retry, seen from the request queue", () => {
  /** A queue with no server: a raw consumer takes each request, notes it and acks it; `answer` says which attempt it replies to. */
  async function fakeServer(answer: (attempt: number) => boolean) {
    const queue = uniqueQueue();
    const { ch } = await rawChannel();
    await ch.assertQueue(queue, { durable: true });
    const seen: { correlationId: unknown; replyTo: unknown; body: string; deadline: unknown }[] = [];
    await ch.consume(queue, (msg) => {
      if (!msg) return;
      const { correlationId, replyTo, headers } = msg.properties;
      seen.push({ correlationId, replyTo, body: msg.content.toString(), deadline: headers?.["x-fibrpc-deadline"] });
      if (answer(seen.length)) ch.sendToQueue(replyTo, Buffer.from("5"), { correlationId });
      ch.ack(msg);
    });
    return { queue, seen };
  }

  test("--retry 2, no reply ever: sent 3 times with one correlation id and the call's deadline, each over a new connection; then TIMEOUT, exit 75", async () => {
    const { queue, seen } = await fakeServer(() => false);
    const result = await run(["call", "--retry", "2", "--timeout", "300ms", "--queue", queue, "5"]);
    expect(result.code).toBe(75);
    expect(result.stdout).toBe("");
    const lines = result.stderr.trimEnd().split("\n");
    expect(lines).toHaveLength(3);
    expect(lines[0]).toMatch(/ INFO {2}fib\(5\): TIMEOUT; retrying in \d+ ms \(retry 1\/2\)$/);
    expect(lines[1]).toMatch(/ INFO {2}fib\(5\): TIMEOUT; retrying in \d+ ms \(retry 2\/2\)$/);
    expect(lines[2]).toStartWith(`fib(5): TIMEOUT: no reply within the timeout from a server on queue "${queue}"`);

    // call has exited after the last attempt's timeout: every attempt reached the queue long ago.
    await eventually(
      async () => seen.length,
      (count) => count >= 3,
      5_000,
      "3 attempts seen",
    );
    expect(seen).toHaveLength(3);
    expect(seen.map((s) => s.body)).toEqual(["5", "5", "5"]);
    const [id] = seen.map((s) => s.correlationId);
    expect(typeof id).toBe("string");
    expect(seen.map((s) => s.correlationId)).toEqual([id, id, id]);
    // A timed-out attempt's connection is retired: each retry comes over a new one.
    expect(new Set(seen.map((s) => s.replyTo)).size).toBe(3);
    // Each attempt carries the whole call's deadline: a server that takes an earlier one late still answers it.
    const deadlines = seen.map((s) => Number(s.deadline));
    expect(deadlines[1]).toBe(deadlines[0]!);
    expect(deadlines[2]).toBe(deadlines[0]!);
  });

  /**
   * A server that answers one request at a time, one every `paceMs`, in the order they come (a batch
   * larger than it clears in one of --retry's windows); `answer` says whether to answer a request
   * (by its n and how many copies of it came before), else it is acked and left unanswered. It answers n with n.
   */
  async function pacedServer(paceMs: number, answer: (n: string, copy: number) => boolean = () => true) {
    const queue = uniqueQueue();
    const { ch } = await rawChannel();
    await ch.assertQueue(queue, { durable: true });
    await ch.prefetch(1);
    const seen: string[] = [];
    await ch.consume(queue, (msg) => {
      if (!msg) return;
      const { correlationId, replyTo } = msg.properties;
      const n = msg.content.toString();
      const copy = seen.filter((m) => m === n).length;
      seen.push(n);
      // The pace is the work being modelled (a server busy for paceMs a request), not a wait for an event.
      setTimeout(() => {
        if (answer(n, copy)) ch.sendToQueue(replyTo, Buffer.from(n), { correlationId });
        ch.ack(msg);
      }, paceMs);
    });
    return { queue, seen };
  }

  test("--retry 3, a batch queued behind itself (answered one by one, slower than the first window): no request sent twice, every call answered", async () => {
    // 12 requests answered 150 ms apart (1.8 s) against a first window of about 1 s (MIN_FIRST_WINDOW_MS): before, the
    // requests still queued timed out and were sent again, each copy joining the back of the queue.
    const { queue, seen } = await pacedServer(150);
    const ns = Array.from({ length: 12 }, (_, i) => String(i + 1));
    const result = await run(["call", "--retry", "3", "--timeout", "6s", "--queue", queue, ...ns]);
    expect(result).toMatchObject({ code: 0, stderr: "" });
    expect(result.stdout).toBe(ns.map((n) => `${n}\n`).join(""));
    expect(seen).toEqual(ns);
  });

  test("--retry 1, a request later ones overtook (held by a server that stopped answering): sent again, and answered", async () => {
    // fib(1)'s first copy is never answered; the requests sent after it are: it is not waiting its turn.
    const { queue, seen } = await pacedServer(10, (n, copy) => n !== "1" || copy > 0);
    const result = await run(["call", "--retry", "1", "--timeout", "3s", "--queue", queue, "1", "2", "3"]);
    expect(result).toMatchObject({ code: 0, stdout: "1\n2\n3\n" });
    expect(result.stderr).toMatch(/^\S+ INFO {2}fib\(1\): TIMEOUT; retrying in \d+ ms \(retry 1\/1\)\n$/);
    expect(seen).toEqual(["1", "2", "3", "1"]);
  });

  test("--retry 1, the retry answered: the result once, exit 0", async () => {
    const { queue, seen } = await fakeServer((attempt) => attempt === 2);
    const result = await run(["call", "--retry", "1", "--timeout", "300ms", "--queue", queue, "5"]);
    expect(result).toMatchObject({ code: 0, stdout: "5\n" });
    expect(result.stderr).toMatch(/^\S+ INFO {2}fib\(5\): TIMEOUT; retrying in \d+ ms \(retry 1\/1\)\n$/);
    expect(seen).toHaveLength(2);
    expect(seen[1]!.correlationId).toBe(seen[0]!.correlationId);
  });
});
