/**
 * `fibrpc call` on its own: argument checks, pipelining, duplicate replies, and the failures a
 * caller can meet before any server answers.
 */
import { describe, expect, test } from "bun:test";
import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import type { ConsumeMessage } from "amqplib";
import { encodeError } from "../../src/rpc/protocol.ts";
import { rabbitmqctlOk } from "../broker.ts";
import {
  BIN,
  BROKER_PORT,
  cleanupAfterFile,
  pastEchoWindow,
  rawChannel,
  respondOnRetry,
  run,
  silentPort,
  startServe,
  stderrOf,
  tracked,
  uniqueQueue,
  URL,
} from "../helpers.ts";

cleanupAfterFile();

/** One clear line on stderr: no stack trace, no source excerpt from the binary. */
function expectOneLine(stderr: string) {
  const lines = stderr.trim().split("\n");
  expect(lines, stderr).toHaveLength(1);
  expect(stderr).not.toMatch(/\n\s+at |\bat <anonymous>|\^$/m);
}

describe("arguments are checked before connecting", () => {
  const cases: { args: string[]; message: RegExp }[] = [
    { args: ["call"], message: /give at least one n/ },
    { args: ["call", "abc"], message: /invalid n "abc": n must be a decimal integer/ },
    { args: ["call", "-5"], message: /invalid n "-5": n must not be negative/ },
    { args: ["call", "3.5"], message: /invalid n "3.5"/ },
    // What would not show is escaped: a no-break space, a byte-order mark.
    { args: ["call", "5\u00a06"], message: /invalid n "5\\u00a06": n must be a decimal integer, got "5\\u00a06"/ },
    { args: ["call", "\ufeffz"], message: /invalid n "\\ufeffz"/ },
    // The protocol's bound; below it, how large an n may be is the server's to say (max-n.test.ts).
    {
      args: ["call", "9007199254740992"],
      message: /^fibrpc: invalid n "9007199254740992": n must be at most 9007199254740991, got "9007199254740992"\n$/,
    },
    // With --json too: a usage error prints nothing on stdout (checked below for every case).
    { args: ["call", "--json", "5", "abc"], message: /^fibrpc: invalid n "abc"/ },
    {
      args: ["call", "--json", "5", "--tls-ca", "/nonexistent/ca.pem"],
      message: /^fibrpc: cannot read --tls-ca "\/nonexistent\/ca.pem"/,
    },
    { args: ["call", "5", "--worker", "3"], message: /unknown option --worker/ },
    { args: ["call", "5", "--timeout", "soon"], message: /--timeout must be a duration/ },
    { args: ["call", "5", "--reply-queue", "shared"], message: /--reply-queue must be direct or exclusive/ },
    { args: ["call", "5", "--url", "http://x"], message: /the 1st broker URL \(--url\) must start with amqp:\/\// },
    { args: ["serve", "--workers", "many"], message: /--workers must be a whole number/ },
    { args: ["serve", "--queue-type", "stream"], message: /--queue-type must be one of classic, quorum/ },
    {
      args: ["nosuch"],
      message:
        /^fibrpc: unknown command "nosuch"; the commands are serve, call, bench, health, completion; see fibrpc --help\n$/,
    },
  ];
  for (const c of cases) {
    test(c.args.join(" "), async () => {
      // A broker URL nobody listens on: if the check ran after connecting, the error would differ.
      const { code, stdout, stderr } = await run(c.args, { FIBRPC_URL: "amqp://guest:guest@127.0.0.1:1" });
      expect(code).toBe(64);
      expect(stdout).toBe("");
      expect(stderr).toMatch(c.message);
      expectOneLine(stderr);
    });
  }

  test("--no-unordered (off, as it is by default) is not refused without -: the call goes on to connect", async () => {
    const r = await run(["call", "--no-unordered", "5"], { FIBRPC_URL: "amqp://guest:guest@127.0.0.1:1" });
    expect(r.code, r.stderr).toBe(68);
    expect((await run(["call", "--unordered", "5"])).stderr).toBe(
      "fibrpc: --unordered applies to `fibrpc call -` only\n",
    );
  });
});

describe("failures before any server answers", () => {
  test("broker unreachable: one line naming the broker, password masked, exit 68", async () => {
    const { code, stderr } = await run(["call", "5", "--url", "amqp://guest:s3cret@127.0.0.1:1"]);
    expect(code).toBe(68);
    expect(stderr).toContain("amqp://guest:***@127.0.0.1:1");
    expect(stderr).toContain("connection refused");
    expect(stderr).not.toContain("s3cret");
    expectOneLine(stderr);
    // A URL without a port or a password is shown with its port, once (it read amqp://127.0.0.2:5672:5672).
    // (.invalid never resolves, RFC 6761.)
    const portless = await run(["call", "5", "--url", "amqp://nowhere.invalid"]);
    expect(portless.stderr).toStartWith("fibrpc: cannot reach the broker at amqp://nowhere.invalid:5672: host name");
  });

  test("amqps:// to the plain AMQP port: says the port is not TLS, not OpenSSL's code; exit 68", async () => {
    const { code, stderr } = await run(["call", "5", "--url", `amqps://guest:s3cret@127.0.0.1:${BROKER_PORT}`]);
    expect(code).toBe(68);
    expect(stderr).toMatch(/did not answer in TLS: the port speaks plain AMQP \(amqp:\/\/\), not amqps:\/\//);
    expect(stderr).not.toMatch(/OPENSSL|s3cret/);
    expectOneLine(stderr);
  });

  test("amqps:// to the plain AMQP port: serve stops at start-up (68) instead of retrying forever; call --retry does not retry it", async () => {
    const url = `amqps://guest:s3cret@127.0.0.1:${BROKER_PORT}`;
    const server = await startServe(["--workers", "1", "--url", url], {}, null);
    expect(await server.proc.exited).toBe(68);
    expect(server.log).toMatch(/did not answer in TLS: the port speaks plain AMQP/);
    expect(server.log).not.toContain("s3cret");
    const retried = await run(["call", "5", "--retry", "3", "-t", "20s", "--url", url]);
    // Not retried: no "trying again until the timeout (--retry)" line (a retry would spend the 20 s).
    expect(retried.code).toBe(68);
    expect(retried.stderr).not.toContain("trying again");
  });

  test("a port of another protocol (an HTTP server answering first): says so, not amqplib's frame size; exit 68", async () => {
    const http = Bun.listen({
      hostname: "127.0.0.1",
      port: 0,
      socket: { data: (socket) => void socket.end("HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n") },
    });
    try {
      const { code, stderr } = await run(["call", "5", "--url", `amqp://127.0.0.1:${http.port}`]);
      expect([code, stderr]).toEqual([
        68,
        `fibrpc: the server at amqp://127.0.0.1:${http.port} did not answer in AMQP 0-9-1: another service listens ` +
          "on that port; is it an AMQP 0-9-1 port (5672, or 5671 for amqps)?\n",
      ]);
    } finally {
      http.stop(true);
    }
  });

  test("a connection of one channel (channel_max=1): the limit said as such, exit 78, not an internal error", async () => {
    const queue = uniqueQueue("call_channel_max");
    const { ch } = await rawChannel();
    await ch.assertQueue(queue, { durable: true });
    for (const args of [
      ["call", "5"],
      ["bench", "-r", "5"],
    ]) {
      const { code, stderr } = await run([...args, "--queue", queue, "--url", `${URL}?channel_max=1`]);
      expect(code, args[0]).toBe(78);
      expect(stderr).toMatch(
        /^fibrpc: the connection to the broker at .* has no channel left to open \(channel_max\), /,
      );
      expectOneLine(stderr);
    }
  });

  test("wrong password: access refused, exit 77", async () => {
    const { code, stderr } = await run(["call", "5", "--url", `amqp://guest:wrong@127.0.0.1:${BROKER_PORT}`]);
    expect(code).toBe(77);
    expect(stderr).toMatch(/refused the login/);
    expect(stderr).not.toContain("wrong@");
    expectOneLine(stderr);
  });

  test("queue does not exist: exit 69", async () => {
    const queue = uniqueQueue();
    const { code, stderr } = await run(["call", "5", "--queue", queue]);
    expect(code).toBe(69);
    expect(stderr).toContain(`queue "${queue}" does not exist`);
    expectOneLine(stderr);
  });

  test("queue without consumer: exit 69", async () => {
    const queue = uniqueQueue();
    const { ch } = await rawChannel();
    await ch.assertQueue(queue, { durable: true });
    const { code, stderr } = await run(["call", "5", "--queue", queue]);
    expect(code).toBe(69);
    expect(stderr).toMatch(/has no consumer/);
    expectOneLine(stderr);
  });
});

describe("--json: one line per n on stdout, in order, whatever the outcome", () => {
  /**
   * The JSON lines of a failure that struck every call at once: one per n, in order, each the
   * error the one line on stderr tells (its text without "fibrpc: ").
   */
  function expectOneErrorPerN(r: { stdout: string; stderr: string }, ns: number[], code: string) {
    expectOneLine(r.stderr);
    const message = r.stderr.trim().replace(/^fibrpc: /, "");
    const lines = r.stdout
      .trimEnd()
      .split("\n")
      .map((line) => JSON.parse(line));
    expect(lines).toEqual(ns.map((n) => ({ n, error: { code, message }, ms: expect.any(Number) })));
    for (const line of lines) expect(line.ms).toBeGreaterThanOrEqual(0);
  }
  const ns = [7, 3, 7, 0];
  const args = ns.map(String);

  test("broker unreachable: exit 68", async () => {
    const r = await run(["call", "-j", ...args, "--url", "amqp://guest:s3cret@127.0.0.1:1"]);
    expect(r.code).toBe(68);
    expectOneErrorPerN(r, ns, "BROKER_UNREACHABLE");
    expect(r.stdout).toContain("amqp://guest:***@127.0.0.1:1");
    expect(r.stdout).not.toContain("s3cret");
  });

  test("login refused: exit 77", async () => {
    const r = await run(["call", "-j", ...args, "--url", `amqp://guest:not-the-password@127.0.0.1:${BROKER_PORT}`]);
    expect(r.code).toBe(77);
    expectOneErrorPerN(r, ns, "ACCESS_REFUSED");
    expect(r.stdout).not.toContain("not-the-password");
  });

  test("queue without consumer: exit 69", async () => {
    const queue = uniqueQueue();
    const { ch } = await rawChannel();
    await ch.assertQueue(queue, { durable: true });
    const r = await run(["call", "-j", "--queue", queue, ...args]);
    expect(r.code).toBe(69);
    expectOneErrorPerN(r, ns, "NO_CONSUMER");
  });

  test("no server within the timeout (--wait-for-server): exit 75", async () => {
    const queue = uniqueQueue();
    const r = await run([
      "call",
      "-j",
      "--queue",
      queue,
      "--wait-for-server",
      "--timeout",
      "300ms",
      "--log-level",
      "warn",
      ...args,
    ]);
    expect(r.code).toBe(75);
    expectOneErrorPerN(r, ns, "TIMEOUT");
    expect(r.stderr).toContain(`no server started consuming queue "${queue}"`);
  });

  test("queue does not exist: exit 69", async () => {
    const queue = uniqueQueue();
    const r = await run(["call", "-j", "--queue", queue, ...args]);
    expect(r.code).toBe(69);
    const lines = r.stdout
      .trimEnd()
      .split("\n")
      .map((line) => JSON.parse(line));
    expect(lines.map((l) => [l.n, l.error?.code])).toEqual(ns.map((n) => [n, "QUEUE_NOT_FOUND"]));
    // Said once for all the n, as for a queue with no consumer, though the broker returns each request (no
    // queue) as soon as the look at the queue says it is missing (it once was a line per n).
    expect(r.stderr).toStartWith(`fibrpc: queue "${queue}" does not exist`);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
  });

  test("a queue name with a line separator (U+2028) is quoted with it escaped, on one line", async () => {
    const queue = `${uniqueQueue()}\u2028x`;
    const r = await run(["call", "--queue", queue, "5"]);
    expect(r.code).toBe(69);
    expect(r.stderr).not.toContain("\u2028");
    expect(r.stderr).toContain(`queue ${JSON.stringify(queue).replace("\u2028", "\\u2028")} does not exist`);
  });
});

/** `fibrpc call ARGS` on the suite's broker, started now and left running, its output piped. */
function startCall(args: string[]) {
  const env = { ...process.env, NO_COLOR: "1", FIBRPC_URL: URL };
  return tracked(Bun.spawn([BIN, "call", ...args], { cwd: "/", env, stdout: "pipe", stderr: "pipe" }));
}

describe("signals", () => {
  test("SIGINT lets the calls sent finish; a second one ends them at once: --json's line per n, INTERRUPTED, exit 130", async () => {
    // A consumer that takes requests and never answers: the calls stay in flight until a signal ends them.
    const queue = uniqueQueue("call_signals");
    const { ch } = await rawChannel();
    await ch.assertQueue(queue, { durable: true });
    let taken = 0;
    const allTaken = Promise.withResolvers<void>();
    await ch.consume(queue, () => ++taken === 3 && allTaken.resolve(), { noAck: true });
    const proc = startCall(["-j", "-t", "60s", "--queue", queue, "1", "2", "3"]);
    await allTaken.promise;
    proc.kill("SIGINT");
    const errors = stderrOf(proc);
    await errors.until(/the calls in flight finish/);
    // Still running after the first: it waits for the calls (up to their 60 s).
    expect(proc.exitCode).toBeNull();
    await pastEchoWindow();
    proc.kill("SIGINT");
    const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), errors.all(), proc.exited]);
    expect(code).toBe(130);
    const lines = stdout
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line));
    expect(lines.map((l) => [l.n, l.error?.code])).toEqual([
      [1, "INTERRUPTED"],
      [2, "INTERRUPTED"],
      [3, "INTERRUPTED"],
    ]);
    expect(lines[0].error.message).toBe("ended by a second SIGINT before its reply came");
    expect(stderr).not.toMatch(/\n\s+at /);
  });
});

describe("signals, the calls answered after the first", () => {
  test("SIGINT: the calls sent finish, their results print, exit 130", async () => {
    // A hand-made responder that answers only once the test says so: after the signal.
    const queue = uniqueQueue("call_signals_answer");
    const { ch } = await rawChannel();
    await ch.assertQueue(queue, { durable: true });
    const taken: ConsumeMessage[] = [];
    const allTaken = Promise.withResolvers<void>();
    await ch.consume(queue, (msg) => msg && taken.push(msg) === 2 && allTaken.resolve(), { noAck: true });
    const proc = startCall(["-t", "60s", "--queue", queue, "10", "11"]);
    await allTaken.promise;
    proc.kill("SIGINT");
    const errors = stderrOf(proc);
    await errors.until(/the calls in flight finish/);
    for (const msg of taken) {
      const n = Number(msg.content.toString());
      const answer = n === 10 ? "55" : "89";
      ch.sendToQueue(msg.properties.replyTo, Buffer.from(answer), { correlationId: msg.properties.correlationId });
    }
    const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), errors.all(), proc.exited]);
    expect(code).toBe(130);
    expect(stdout).toBe("55\n89\n");
    expect(stderr).not.toMatch(/fib\(/);
  });
});

describe("signals before the calls are sent", () => {
  test("SIGTERM while waiting for a server: at once, --json's line per n (INTERRUPTED), exit 143", async () => {
    const queue = uniqueQueue("call_signals_wait");
    const { ch } = await rawChannel();
    await ch.assertQueue(queue, { durable: true }); // and no consumer: --wait-for-server waits
    const proc = startCall(["-j", "-t", "60s", "--wait-for-server", "--queue", queue, "1", "2"]);
    const errors = stderrOf(proc);
    await errors.until(/waiting for one/);
    proc.kill("SIGTERM");
    const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), errors.all(), proc.exited]);
    expect(code).toBe(143);
    const lines = stdout
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line));
    expect(lines.map((l) => [l.n, l.error?.code, l.error?.message])).toEqual([
      [1, "INTERRUPTED", "SIGTERM before the calls were sent"],
      [2, "INTERRUPTED", "SIGTERM before the calls were sent"],
    ]);
    expect(stderr.trimEnd().split("\n").at(-1)).toBe("fibrpc: SIGTERM before the calls were sent; nothing was sent");
    // Nothing was sent: the queue holds no request.
    expect((await ch.checkQueue(queue)).messageCount).toBe(0);
  });

  test("SIGINT while connecting (a broker that never answers its handshake): at once, exit 130", async () => {
    const broker = silentPort();
    const proc = startCall(["-j", "-t", "60s", "--url", `amqp://127.0.0.1:${broker.port}`, "7"]);
    await broker.connected;
    proc.kill("SIGINT");
    const [stdout, stderr, code] = await Promise.all([
      new Response(proc.stdout).text(),
      new Response(proc.stderr).text(),
      proc.exited,
    ]);
    expect(code).toBe(130);
    expect(JSON.parse(stdout)).toMatchObject({ n: 7, error: { code: "INTERRUPTED" } });
    expect(stderr).toBe("fibrpc: SIGINT before the calls were sent; nothing was sent\n");
  });
});

describe("a hand-made responder on the real broker", () => {
  test("calls are pipelined, matched by correlation id, printed in argument order; duplicates ignored", async () => {
    const queue = uniqueQueue();
    const ns = [5, 10, 20, 30];
    const expected = ["5", "55", "6765", "832040"];
    const { ch } = await rawChannel();
    await ch.assertQueue(queue, { durable: true });
    const received: { n: number; replyTo: string; correlationId: string }[] = [];
    await ch.consume(
      queue,
      (msg) => {
        if (!msg) return;
        received.push({
          n: Number(msg.content.toString()),
          replyTo: msg.properties.replyTo,
          correlationId: msg.properties.correlationId,
        });
        ch.ack(msg);
        // Reply only once every request is in: this only completes if call sent them all at once.
        if (received.length < ns.length) return;
        ch.sendToQueue(received[0]!.replyTo, Buffer.from("999"), { correlationId: "not-one-of-ours" });
        for (const r of [...received].reverse()) {
          const value = expected[ns.indexOf(r.n)]!;
          ch.sendToQueue(r.replyTo, Buffer.from(value), { correlationId: r.correlationId });
          ch.sendToQueue(r.replyTo, Buffer.from("0"), { correlationId: r.correlationId }); // a duplicate, wrong on purpose
        }
      },
      { noAck: false },
    );
    const { code, stdout, stderr } = await run([
      "call",
      "--queue",
      queue,
      "--log-level",
      "debug",
      "--timeout",
      "10s",
      ...ns.map(String),
    ]);
    expect(code).toBe(0);
    expect(stdout).toBe(`${expected.join("\n")}\n`);
    expect(stderr).toContain('ignored a reply with unknown or already answered correlation id "not-one-of-ours"');
  });
});

test("--retry: an attempt answered after its window (a slow server) is the call's answer, sent to that attempt's address", async () => {
  // A timeout retires the connection, so the retry comes with another reply address. A hand-made responder
  // holds the first attempt until the retry comes, then answers the first to its own address, never the retry:
  // --retry once made such a call fail (TIMEOUT) though a server had answered it in time.
  const queue = uniqueQueue("call_late_answer");
  const taken = await respondOnRetry(queue, (ch, [first]) => {
    const { replyTo, correlationId } = first.properties;
    ch.sendToQueue(replyTo, Buffer.from("832040"), { correlationId });
  });
  const { code, stdout, stderr } = await run(["call", "--queue", queue, "--retry", "2", "-t", "20s", "30"]);
  expect([code, stdout], stderr).toEqual([0, "832040\n"]);
  expect(stderr).toContain("fib(30): TIMEOUT; retrying in 0 ms (retry 1/2)");
  expect(taken).toHaveLength(2);
  expect(taken[1]!.properties.correlationId).toBe(taken[0]!.properties.correlationId);
  expect(taken[1]!.properties.replyTo).not.toBe(taken[0]!.properties.replyTo);
});

describe("a DEADLINE_EXCEEDED reply", () => {
  const late = encodeError("text", "DEADLINE_EXCEEDED", "the caller's deadline passed before a server picked it up");

  test("to a retry, while it still has time: an earlier attempt's (same correlation id), not its answer", async () => {
    // After a resource alarm, a server picks up a call's earlier attempts past their deadlines and answers each
    // with DEADLINE_EXCEEDED, under the correlation id the retry shares. Here a hand-made responder holds the
    // first attempt and, once the retry comes, sends that late answer to the retry's address, then the result.
    const queue = uniqueQueue("call_late_attempt");
    const taken = await respondOnRetry(queue, (ch, [, retry]) => {
      const { replyTo, correlationId } = retry.properties;
      ch.sendToQueue(replyTo, late.body, { correlationId, type: late.type });
      ch.sendToQueue(replyTo, Buffer.from("832040"), { correlationId });
    });
    const args = ["call", "--queue", queue, "--retry", "1", "-t", "6s", "--log-level", "debug", "30"];
    const { code, stdout, stderr } = await run(args);
    expect([code, stdout]).toEqual([0, "832040\n"]);
    expect(taken[1]!.properties.correlationId).toBe(taken[0]!.properties.correlationId);
    expect(stderr).toContain("ignored DEADLINE_EXCEEDED for fib(30): an earlier attempt's, this one has time");
  });

  test("to a first attempt: its own (a server's clock ahead of the caller's), taken at once, exit 76", async () => {
    const queue = uniqueQueue("call_deadline_first");
    const { ch } = await rawChannel();
    await ch.assertQueue(queue, { durable: true });
    await ch.consume(
      queue,
      (msg) =>
        msg &&
        ch.sendToQueue(msg.properties.replyTo, late.body, {
          correlationId: msg.properties.correlationId,
          type: late.type,
        }),
      { noAck: true },
    );
    const { code, stderr } = await run(["call", "--queue", queue, "-t", "30s", "30"]);
    expect(code).toBe(76);
    expect(stderr).toStartWith("fib(30): DEADLINE_EXCEEDED: ");
  });
});

describe("serve refuses what it cannot fix by waiting", () => {
  test("a queue an operator declared with other arguments is joined as it is: one warning, and it serves", async () => {
    const queue = uniqueQueue();
    const { ch } = await rawChannel();
    await ch.assertQueue(queue, { durable: true, arguments: { "x-max-length": 1000 } });
    const server = await startServe(["--workers", "2", "--queue", queue]);
    expect(server.log).toMatch(
      new RegExp(
        `queue "${queue}" already exists with other settings \\(inequivalent arg 'x-max-length'.*\\); serving it as it is`,
      ),
    );
    expect(server.log.match(/already exists/g)).toHaveLength(1);
    expect(await run(["call", "--queue", queue, "30"])).toMatchObject({ code: 0, stdout: "832040\n" });
    expect(await server.stop()).toBe(0);
  });

  test("wrong password: serve exits 77 instead of retrying forever", async () => {
    const server = await startServe(
      ["--workers", "1", "--queue", uniqueQueue(), "--url", `amqp://guest:nope@127.0.0.1:${BROKER_PORT}`],
      {},
      null,
    );
    expect(await server.proc.exited).toBe(77);
    expect(server.log).toMatch(/refused the login/);
    expect(server.log).not.toContain("nope@");
  });

  test("a broker URL that refuses the login: serve tries the next one, and stops (77) only once every one has refused", async () => {
    const refusing = `amqp://guest:nope@127.0.0.1:${BROKER_PORT}`;
    const queue = uniqueQueue();
    // A node of a cluster with stale definitions (mid rolling upgrade) must not stop every server.
    const server = await startServe(["--workers", "2", "--queue", queue, "--url", `${refusing},${URL}`]);
    expect(await run(["call", "--queue", queue, "30"])).toMatchObject({ code: 0, stdout: "832040\n" });
    expect(await server.stop()).toBe(0);
    const tried = server.log.split("\n").filter((line) => line.includes("trying the next broker URL"));
    // Said once for the process, though both workers met it.
    expect(tried).toEqual([
      expect.stringMatching(/ WARN {2}the broker at amqp:\/\/guest:\*\*\*@127\.0\.0\.1:\d+ refused the login/),
    ]);
    expect(server.log).not.toContain("nope@");

    // Every URL refused, or refused and unreachable: nothing left to try, so no endless wait either.
    for (const urls of [`${refusing},${refusing}`, `${refusing},amqp://guest:guest@127.0.0.1:1`]) {
      const stopped = await startServe(["--workers", "1", "--queue", queue, "--url", urls], {}, null);
      expect(await stopped.proc.exited).toBe(77);
      expect(stopped.log).toMatch(/ ERROR .*refused the login/);
    }
  });

  test("--log-level silent: no log line but the one saying why serve stopped", async () => {
    const server = await startServe(
      ["--workers", "1", "--queue", uniqueQueue(), "--log-level", "silent"],
      { FIBRPC_URL: `amqp://guest:nope@127.0.0.1:${BROKER_PORT}` },
      null,
    );
    expect(await server.proc.exited).toBe(77);
    const lines = server.log.trimEnd().split("\n");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/ ERROR .*refused the login/);
  });
});

/** The local ports of a process's TCP sockets: its descriptors' socket inodes, looked up in /proc/net/tcp. */
function localPortsOf(pid: number): number[] {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const inode = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`))?.[1];
      if (inode) inodes.add(inode);
    } catch {} // closed meanwhile
  }
  const rows = readFileSync(`/proc/${pid}/net/tcp`, "utf8").trim().split("\n").slice(1);
  return rows
    .map((row) => row.trim().split(/\s+/))
    .filter((fields) => inodes.has(fields[9]!))
    .map((fields) => Number.parseInt(fields[1]!.split(":")[1]!, 16));
}

describe("the broker closes a call's connection", () => {
  test("the calls in flight fail with CONNECTION_LOST and the broker's reason, exit 75", async () => {
    const queue = uniqueQueue("call_closed");
    const { ch } = await rawChannel();
    await ch.assertQueue(queue, { durable: true });
    // A consumer that takes the request and never answers: the call waits for its reply.
    const taken = new Promise<void>((resolve) => {
      void ch.consume(queue, (msg) => msg && resolve(), { noAck: false });
    });
    const call = startCall(["--queue", queue, "--timeout", "60s", "30"]);
    const stderr = stderrOf(call);
    await taken;
    const ports = localPortsOf(call.pid);
    // Tab-separated rows: close_connection takes the pid as written there (<rabbit@host.1.2.3>), not as JSON has it.
    const rows = (await rabbitmqctlOk(["-q", "list_connections", "pid", "peer_port"])).trim().split("\n");
    const ours = rows.map((row) => row.split("\t")).filter(([, port]) => ports.includes(Number(port)));
    expect(ours).toHaveLength(1);
    await rabbitmqctlOk(["close_connection", ours[0]![0]!, "closed by the test"]);
    expect(await call.exited).toBe(75);
    const text = await stderr.all();
    expectOneLine(text);
    expect(text).toMatch(
      /^fib\(30\): CONNECTION_LOST: the connection to the broker at amqp:\/\/guest:\*\*\*@127\.0\.0\.1:\d+ was lost while the call was in flight \(closed by the broker: .*closed by the test \(320 CONNECTION_FORCED\)\)/,
    );
  });
});
