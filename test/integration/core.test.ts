/**
 * The compiled binary, started from `/` as a user would, against the real broker.
 */
import { beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, copyFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  URL,
  tracked,
  BIN,
  queueStats,
  rawChannel,
  run,
  startServe,
  uniqueQueue,
  type Server,
  cleanupAfterFile,
} from "../helpers.ts";

cleanupAfterFile();

const queue = uniqueQueue();
let server: Server;

beforeAll(async () => {
  server = await startServe(["--workers", "3", "--queue", queue, "--log-level", "debug"]);
});

describe("binary", () => {
  test("--version and -v print the version, the commit, the Bun version and the platform", async () => {
    const pkg = await Bun.file(`${import.meta.dir}/../../package.json`).json();
    for (const flag of ["--version", "-v"]) {
      const { code, stdout } = await run([flag]);
      expect(code).toBe(0);
      // The build defines the commit from git (this is a checkout), so not "unknown".
      expect(stdout).toMatch(/^fibrpc \S+ \(commit [0-9a-f]{12}(-dirty)?, bun \S+, \S+-\S+\)\n$/);
      const [, ver, , , , bun, platform] = stdout.trim().split(" ");
      expect(ver).toBe(pkg.version);
      expect(bun).toBe(`${pkg.devDependencies.bun},`);
      expect(platform).toBe(`${process.platform}-${process.arch})`);
    }
  });
  for (const args of [["--help"], ["serve", "--help"], ["call", "--help"]]) {
    test(`${args.join(" ")} explains`, async () => {
      const { code, stdout } = await run(args);
      expect(code).toBe(0);
      expect(stdout).toContain("USAGE");
      expect(stdout).toContain(args.length > 1 ? "--url" : "call");
    });
  }
  test("the binary embeds its worker: a copy alone in an empty folder serves, run from /", async () => {
    const folder = mkdtempSync(join(tmpdir(), "fibrpc-alone-"));
    try {
      const alone = join(folder, "fibrpc");
      copyFileSync(BIN, alone);
      chmodSync(alone, 0o755);
      const proc = tracked(
        Bun.spawn([alone, "serve", "--url", URL, "--workers", "2", "--queue", queue], {
          cwd: "/",
          stdout: "ignore",
          stderr: "pipe",
          stdin: "ignore",
        }),
      );
      let log = "";
      const decoder = new TextDecoder();
      const reader = proc.stderr.getReader(); // kept open: serve logs again when it drains
      const deadline = setTimeout(() => proc.kill("SIGKILL"), 15_000);
      while (!/2\/2 workers serving|died|failed/.test(log)) {
        const chunk = await reader.read();
        if (chunk.done) break;
        log += decoder.decode(chunk.value);
      }
      clearTimeout(deadline);
      proc.kill("SIGTERM");
      expect(await proc.exited).toBe(0);
      expect(log).toContain("2/2 workers serving");
    } finally {
      rmSync(folder, { recursive: true, force: true });
    }
  });
});

test("serve keeps serving when the reader of its log goes away (`serve 2>&1 | head -1`)", async () => {
  const own = uniqueQueue(); // answered by this serve alone, so it has logged after the pipe closed
  const proc = tracked(
    Bun.spawn([BIN, "serve", "--url", URL, "--workers", "1", "--queue", own, "--log-level", "debug"], {
      cwd: "/",
      stdout: "ignore",
      stderr: "pipe",
      stdin: "ignore",
    }),
  );
  const reader = proc.stderr.getReader();
  await reader.read(); // the first line, as head -1 would
  await reader.cancel(); // ...and the pipe closes: every later log line meets EPIPE
  const answered = await run(["call", "--wait-for-server", "--queue", own, "--timeout", "10s", "1", "2", "3"]);
  expect(answered).toMatchObject({ code: 0, stdout: "1\n1\n2\n" });
  expect(proc.exitCode).toBeNull();
  proc.kill("SIGTERM");
  expect(await proc.exited).toBe(0);
});

describe("serve + call", () => {
  test("call 0 1 2 100 prints four lines", async () => {
    const { code, stdout, stderr } = await run(["call", "--queue", queue, "0", "1", "2", "100"]);
    expect(stderr).toBe("");
    expect(code).toBe(0);
    expect(stdout).toBe("0\n1\n1\n354224848179261915075\n");
  });

  test("call 1000000 prints 208,988 digits", async () => {
    const { code, stdout } = await run(["call", "--queue", queue, "1000000"]);
    expect(code).toBe(0);
    expect(stdout.trimEnd()).toMatch(/^\d{208988}$/);
  });

  test("--json prints n, result as a string, latency", async () => {
    const { code, stdout } = await run(["call", "--queue", queue, "--json", "30", "10"]);
    expect(code).toBe(0);
    const lines = stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(lines).toMatchObject([
      { n: 30, result: "832040" },
      { n: 10, result: "55" },
    ]);
    for (const line of lines) expect(typeof line.ms).toBe("number");
  });

  test("--reply-queue exclusive (the tutorial's callback queue) works too", async () => {
    const { code, stdout } = await run(["call", "--queue", queue, "--reply-queue", "exclusive", "30", "31"]);
    expect(code).toBe(0);
    expect(stdout).toBe("832040\n1346269\n");
  });

  test("all three workers serve", async () => {
    const before = server.log.length;
    const ns = Array.from({ length: 60 }, (_, i) => String(i));
    const { code, stdout } = await run(["call", "--queue", queue, ...ns]);
    expect(code).toBe(0);
    expect(stdout.trim().split("\n")).toHaveLength(60);
    for (const id of [1, 2, 3]) await server.waitForLog(new RegExp(`\\[worker-${id}\\] fib\\(`), 5000, before);
  });
});

describe("a raw amqplib client, sending exactly as the tutorial's clients do", () => {
  async function request(body: Buffer, properties: Record<string, unknown> = {}) {
    const { ch } = await rawChannel();
    const { queue: callback } = await ch.assertQueue("", { exclusive: true });
    const correlationId = crypto.randomUUID();
    const reply = new Promise<{ body: string; properties: Record<string, unknown> }>((resolve) => {
      ch.consume(
        callback,
        (msg) => {
          if (msg && msg.properties.correlationId === correlationId)
            resolve({ body: msg.content.toString(), properties: { ...msg.properties } });
        },
        { noAck: true },
      );
    });
    ch.sendToQueue(queue, body, { replyTo: callback, correlationId, ...properties });
    return reply;
  }

  test("text request: decimal body, no content type → decimal reply, same correlation id", async () => {
    const reply = await request(Buffer.from("30"));
    expect(reply.body).toBe("832040");
    expect(reply.properties.type).toBeUndefined();
    expect(reply.properties.contentType).toBeUndefined();
  });

  test("JSON request → JSON reply", async () => {
    const reply = await request(Buffer.from(JSON.stringify({ n: 30 })), { contentType: "application/json" });
    expect(reply.properties.contentType).toBe("application/json");
    expect(JSON.parse(reply.body)).toEqual({ n: 30, result: "832040" });
  });
});

describe("bad input never crashes a worker nor loops", () => {
  const cases: { name: string; body: Buffer; contentType?: string; code: string }[] = [
    { name: "not an integer", body: Buffer.from("abc"), code: "NOT_AN_INTEGER" },
    { name: "fraction", body: Buffer.from("3.5"), code: "NOT_AN_INTEGER" },
    { name: "negative", body: Buffer.from("-5"), code: "NEGATIVE_N" },
    { name: "above max-n", body: Buffer.from("1000001"), code: "N_TOO_LARGE" },
    { name: "empty", body: Buffer.alloc(0), code: "EMPTY_REQUEST" },
    { name: "oversized (1 MiB)", body: Buffer.alloc(1 << 20, 0x31), code: "REQUEST_TOO_LARGE" },
    { name: "non-UTF-8", body: Buffer.from([0xc3, 0x28, 0xff]), code: "INVALID_UTF8" },
    { name: "invalid JSON", body: Buffer.from("{"), contentType: "application/json", code: "INVALID_JSON" },
    {
      name: "JSON of the wrong shape",
      body: Buffer.from('{"number": 3}'),
      contentType: "application/json",
      code: "INVALID_JSON_SHAPE",
    },
    {
      name: "JSON n as a string",
      body: Buffer.from('{"n": "3"}'),
      contentType: "application/json",
      code: "INVALID_JSON_SHAPE",
    },
    { name: "JSON array", body: Buffer.from("[3]"), contentType: "application/json", code: "INVALID_JSON_SHAPE" },
    {
      name: "unsupported content type",
      body: Buffer.from("3"),
      contentType: "application/x-protobuf",
      code: "UNSUPPORTED_CONTENT_TYPE",
    },
  ];

  test("each gets an error reply with its code, marked as an error", async () => {
    const { ch } = await rawChannel();
    const { queue: callback } = await ch.assertQueue("", { exclusive: true });
    const replies = new Map<string, { body: string; type?: string; contentType?: string }>();
    let notify = () => {};
    await ch.consume(
      callback,
      (msg) => {
        if (!msg) return;
        replies.set(msg.properties.correlationId, {
          body: msg.content.toString(),
          type: msg.properties.type,
          contentType: msg.properties.contentType,
        });
        notify();
      },
      { noAck: true },
    );
    const all = new Promise<void>((resolve) => {
      notify = () => replies.size === cases.length && resolve();
    });
    cases.forEach((c, i) => {
      ch.sendToQueue(queue, c.body, { replyTo: callback, correlationId: String(i), contentType: c.contentType });
    });
    await Promise.race([
      all,
      Bun.sleep(10_000).then(() => Promise.reject(new Error(`only ${replies.size}/${cases.length} replies`))),
    ]);
    cases.forEach((c, i) => {
      const reply = replies.get(String(i))!;
      expect(reply.type, c.name).toBe("error");
      if (reply.contentType === "application/json") expect(JSON.parse(reply.body).error.code, c.name).toBe(c.code);
      else expect(reply.body.startsWith(`${c.code}: `), `${c.name}: ${reply.body}`).toBe(true);
    });
  });

  test("a request without reply_to is acked and logged, never requeued", async () => {
    const { ch } = await rawChannel();
    const before = server.log.length;
    ch.sendToQueue(queue, Buffer.from("30"), { correlationId: "no-reply-to" });
    await server.waitForLog(/dropped a request: it has no reply_to \(correlation id "no-reply-to"\)/);
    expect(server.log.slice(before).match(/no reply_to/g)).toHaveLength(1);
  });

  test("afterwards the queue is empty and every worker still serves", async () => {
    const stats = await queueStats(queue);
    // A consumer per worker, and the first worker's lead consumer (rpc/scheduler.ts).
    expect(stats).toEqual({ messageCount: 0, consumerCount: 4 });
    const before = server.log.length;
    const ns = Array.from({ length: 60 }, (_, i) => String(i));
    const { code } = await run(["call", "--queue", queue, ...ns]);
    expect(code).toBe(0);
    for (const id of [1, 2, 3]) await server.waitForLog(new RegExp(`\\[worker-${id}\\] fib\\(`), 5000, before);
    expect(server.log).not.toMatch(/died|worker \d failed/);
  });
});

test("serve drains on SIGTERM and exits 0", async () => {
  expect(await server.stop()).toBe(0);
  expect(server.log).toContain("SIGTERM: draining");
});
