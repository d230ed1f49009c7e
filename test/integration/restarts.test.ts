/**
 * Restarts are waited out, within the deadline (issue 19): the broker application of a private
 * node is stopped and started again (`rabbitmqctl stop_app` / `start_app`) under `fibrpc bench`,
 * open loop (--rate) and closed loop (-c) side by side, and under `fibrpc call --retry`, with a
 * serve that reconnects by itself. bench reconnects and goes on to its duration, counts what
 * failed, prints the gap and exits non-zero; the call is answered once the broker is back, within
 * its one --timeout. Every step waits for what it needs (a progress line, a log line, a held
 * computation, rabbitmqctl's return), never for a time.
 */
import { afterEach, beforeAll, expect, test } from "bun:test";
import { fibDecimal } from "../../src/fib.ts";
import { startPrivateNode, type PrivateNode } from "../broker.ts";
import { Hold } from "../hold.ts";
import { BIN, cleanupAfterFile, eventually, startServe, tracked, type Server } from "../helpers.ts";

cleanupAfterFile();

let node: PrivateNode;

beforeAll(async () => {
  node = await startPrivateNode("fibrpc-restarts"); // stopped by the file's cleanup
}, 300_000);

let appStopped = false;
/** rabbitmqctl stop_app on the node: its broker application stops, the node stays up. */
async function stopApp(): Promise<void> {
  expect((await node.ctl(["stop_app"])).code).toBe(0);
  appStopped = true;
}
async function startApp(): Promise<void> {
  expect((await node.ctl(["start_app"])).code).toBe(0);
  appStopped = false;
}
/** The test's serve (each test stops its own; afterEach, one a failed test left). */
const servers: { current?: Server } = {};
// A test that failed half-way leaves the node's application running for the next, and no serve
// of its own consuming the node's queue.
afterEach(async () => {
  if (servers.current && servers.current.proc.exitCode === null) await servers.current.stop();
  servers.current = undefined;
  if (appStopped) await startApp();
}, 120_000);

/** A fibrpc command started now, its stderr readable as it comes (the test's own environment, no FIBRPC_*). */
function start(args: string[]) {
  const env: Record<string, string> = { NO_COLOR: "1" };
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("FIBRPC_") && v !== undefined) env[k] ??= v;
  const proc = tracked(
    Bun.spawn([BIN, ...args, "--url", node.url], { cwd: "/", env, stdin: "ignore", stdout: "pipe", stderr: "pipe" }),
  );
  let stderr = "";
  const reading = (async () => {
    const decoder = new TextDecoder();
    for await (const chunk of proc.stderr) stderr += decoder.decode(chunk, { stream: true });
  })();
  const stdout = new Response(proc.stdout).text();
  return {
    what: args.slice(0, 3).join(" "),
    stderr: () => stderr,
    /** Resolves once stderr (from `from` on) matches; fails if the process exits first, or after `ms`. */
    waitFor: (pattern: RegExp, ms: number, from = 0) =>
      eventually(
        async () => ({ seen: pattern.test(stderr.slice(from)), exited: proc.exitCode !== null }),
        (s) => s.seen || s.exited,
        ms,
        `${args.slice(0, 3).join(" ")}: ${pattern}`,
      ).then((s) => {
        if (!s.seen)
          throw new Error(
            `${args.slice(0, 3).join(" ")} exited (${proc.exitCode}) without printing ${pattern}; its stderr:\n${stderr}`,
          );
      }),
    done: async () => {
      const [out, code] = await Promise.all([stdout, proc.exited, reading]);
      return { code, stdout: out, stderr };
    },
  };
}

/** Progress lines, as bench writes them off a terminal ("1.0s: 123 calls, 120 calls/s, 0 errors"); calls/s counts answered calls. */
const PROGRESS = /^(\d+\.\d)s: (\d+) calls, (\d+) calls\/s, (\d+) errors$/gm;
const progress = (text: string) =>
  [...text.matchAll(PROGRESS)].map((m) => ({
    at: Number(m[1]),
    calls: Number(m[2]),
    answeredPerSecond: Number(m[3]),
    errors: Number(m[4]),
  }));

/** The summary's outage line: from, when the queue had no server yet (reconnected before a server), to, calls failed. */
function outages(stdout: string) {
  const line =
    /^ {2}outage {4}no connection to the broker from t=(\d+\.\d) s(?:, no server on queue "[^"]+" from t=(\d+\.\d) s,)? to t=(\d+\.\d) s \((\d+\.\d s|\d+ ms)\): (\d+) calls? failed; last error: (.*)$/gm;
  return [...stdout.matchAll(line)].map((m) => ({
    from: Number(m[1]),
    noServerFrom: m[2] === undefined ? undefined : Number(m[2]),
    to: Number(m[3]),
    failed: Number(m[5]),
    lastError: m[6]!,
  }));
}

/** The summary's errors line as counts by code ({} for "none …"). */
function errorCounts(stdout: string): Record<string, number> {
  const errors = /^ {2}errors {4}(.*)$/m.exec(stdout)![1]!;
  if (errors.startsWith("none")) return {};
  return Object.fromEntries(errors.split(", ").map((part) => [part.split(" ")[0]!, Number(part.split(" ")[1])]));
}

const DURATION_S = 20;
const RATE = 20;

test("bench across a broker restart, open loop (--rate) and closed loop (-c): reconnected, on to the end of its duration, the failures counted and the gap shown, exit 75", async () => {
  const server = await startServe(["--workers", "2", "--url", node.url]);
  servers.current = server;
  const open = start(["bench", "--rate", String(RATE), "--duration", `${DURATION_S}s`]);
  const closed = start(["bench", "-c", "2", "--duration", `${DURATION_S}s`]);
  const benches = [open, closed];
  // Both are under way: a progress line with answers in it.
  for (const bench of benches) {
    await eventually(
      async () => progress(bench.stderr()).some((p) => p.answeredPerSecond > 0),
      Boolean,
      20_000,
      `${bench.what}: answers`,
    );
  }

  await stopApp();
  // With the broker's reason: stop_app closes connections with 320 CONNECTION_FORCED. A caller writing at
  // that moment gets the socket reset instead, which discards the close frame unread: ECONNRESET then.
  const lost =
    /WARN {2}lost the connection to the broker at amqp:\/\/guest:\*\*\*@127\.0\.0\.1:\d+ \((closed by the broker: .*\(320 CONNECTION_FORCED\)|(read|write) ECONNRESET)\); reconnecting$/m;
  for (const bench of benches) await bench.waitFor(lost, 20_000);
  await startApp();
  const reconnected =
    /INFO {2}reconnected to amqp:\/\/guest:\*\*\*@127\.0\.0\.1:\d+ after \d+\.\d s \(\d+ failed attempts?\)$/m;
  const reconnectedAt: number[] = [];
  for (const bench of benches) {
    await bench.waitFor(reconnected, DURATION_S * 1000);
    reconnectedAt.push(bench.stderr().length);
  }
  await server.waitForLog(/lost[\s\S]*reconnected[^\n]*2\/2 workers serving/, 30_000);
  // serve words the loss as bench does: the broker's reason and code, not amqplib's raw "Connection closed: …".
  await server.waitForLog(
    / lost \((closed by the broker: .*\(320 CONNECTION_FORCED\)|(read|write) ECONNRESET)\); reconnecting$/m,
    1_000,
  );
  expect(server.log).not.toMatch(/Connection closed: 320/);

  const [openResult, closedResult] = await Promise.all(benches.map((b) => b.done()));
  for (const [i, r] of [openResult!, closedResult!].entries()) {
    const what = benches[i]!.what;
    console.log(`[restarts] ${what}: exit ${r.code}\n${r.stdout}`);
    // The connection dropped (and calls failed): never 0; 75, as `fibrpc call` exits for it.
    expect(r.code, `${what}\n${r.stdout}\n${r.stderr}`).toBe(75);
    // On to the end of its duration (the open loop: to its last call's intended start).
    const seconds = Number(/, in ([\d.]+) s$/m.exec(r.stdout)![1]);
    expect(seconds, what).toBeGreaterThanOrEqual(DURATION_S - 1 / RATE);
    expect(r.stdout, what).not.toMatch(/cut short/);
    // One gap, over before the end, holding every failure; its reason the broker's refusal.
    const gaps = outages(r.stdout);
    expect(gaps, `${what}\n${r.stdout}`).toHaveLength(1);
    const [gap] = gaps;
    expect(gap!.to).toBeGreaterThan(gap!.from);
    expect(gap!.to).toBeLessThan(seconds);
    expect(gap!.lastError, what).toStartWith(`cannot reach the broker at amqp://guest:***@127.0.0.1:${node.port}`);
    // Every failure a lost connection (or, reconnected before serve was, no server yet), all in the gap, said apart
    // from the rate of answers.
    const errors = errorCounts(r.stdout);
    const { CONNECTION_LOST = 0, NO_CONSUMER = 0, ...others } = errors;
    expect(others, what).toEqual({});
    const failed = CONNECTION_LOST + NO_CONSUMER;
    expect(gap!.failed, `${what}: ${JSON.stringify(errors)}`).toBe(failed);
    if (failed > 0) expect(r.stdout, what).toContain(`; ${failed} failed call${failed === 1 ? "" : "s"} not counted)`);
    // Answers came again after the reconnection.
    expect(
      progress(r.stderr.slice(reconnectedAt[i])).some((p) => p.answeredPerSecond > 0),
      `${what}\n${r.stderr}`,
    ).toBe(true);
  }
  // The open loop kept its schedule through the restart: every call due in the 20 s was made
  // (none missed); those due while the broker was away failed at once.
  expect(openResult!.stdout).toMatch(
    new RegExp(
      `^fibrpc bench: ${RATE * DURATION_S} calls of fib\\(1\\) on queue "rpc_queue", open-loop at ${RATE} calls/s`,
      "m",
    ),
  );
  expect(openResult!.stdout).not.toMatch(/missed/);
  expect(outages(openResult!.stdout)[0]!.failed).toBeGreaterThan(0);
  // The closed loop's failures are the calls in flight when the connection went (none, if its
  // close came with their answers): it waited for the new one instead of failing calls while the
  // broker was away.
  expect(outages(closedResult!.stdout)[0]!.failed).toBeLessThanOrEqual(2);
  expect(await server.stop()).toBe(0);
}, 120_000);

test("bench across a restart the servers come back from later than bench: the wait for them is in the outage, its calls NO_CONSUMER, exit 75", async () => {
  const first = await startServe(["--workers", "1", "--url", node.url]);
  servers.current = first;
  const bench = start(["bench", "--rate", String(RATE), "--duration", `${DURATION_S}s`]);
  await eventually(
    async () => progress(bench.stderr()).some((p) => p.answeredPerSecond > 0),
    Boolean,
    20_000,
    "bench: answers",
  );
  // The broker goes, and its server with it; bench reconnects to a broker with no server.
  await stopApp();
  await first.stop();
  await startApp();
  const waiting = /INFO {2}reconnected to \S+, where queue "rpc_queue" has no server yet; waiting for one$/m;
  await bench.waitFor(waiting, 30_000);
  // A progress line after that one: calls were due (and failed) while there was no server.
  const from = bench.stderr().search(waiting);
  await bench.waitFor(/^\d+\.\ds: \d+ calls/m, 10_000, from);
  servers.current = await startServe(["--workers", "1", "--url", node.url]);
  await bench.waitFor(/INFO {2}reconnected to \S+ after \d+\.\d s/, 30_000);
  const r = await bench.done();
  console.log(`[restarts] bench, servers back later: exit ${r.code}\n${r.stdout}`);
  // Recovered: 75, not NO_CONSUMER's 69.
  expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(75);
  const gaps = outages(r.stdout);
  expect(gaps, r.stdout).toHaveLength(1);
  const [gap] = gaps;
  expect(gap!.noServerFrom, r.stdout).toBeGreaterThan(gap!.from);
  expect(gap!.to).toBeGreaterThan(gap!.noServerFrom!);
  const { CONNECTION_LOST = 0, NO_CONSUMER = 0 } = errorCounts(r.stdout);
  expect(NO_CONSUMER, r.stdout).toBeGreaterThan(0);
  expect(gap!.failed).toBe(CONNECTION_LOST + NO_CONSUMER);
  expect(await servers.current.stop()).toBe(0);
}, 120_000);

test("call --retry 3 -t 20s across a broker restart: the request in flight lost, reconnecting retried, the call answered once the broker is back", async () => {
  // The request is held in serve's worker while the broker goes: surely in flight then.
  const N = 30;
  const hold = new Hold(N);
  const server = await startServe(["--workers", "2", "--url", node.url], { FIBRPC_TEST_FAULTS: hold.faults() });
  servers.current = server;
  const call = start(["call", "--retry", "3", "-t", "20s", String(N)]);
  await hold.next();
  await stopApp();
  await call.waitFor(
    new RegExp(`INFO {2}fib\\(${N}\\): CONNECTION_LOST; retrying in \\d+ ms \\(retry [12]/3\\)$`, "m"),
    20_000,
  );
  hold.releaseAll();
  await startApp();
  const r = await call.done();
  console.log(`[restarts] call --retry 3 -t 20s ${N}: exit ${r.code}, stdout ${JSON.stringify(r.stdout)}\n${r.stderr}`);
  expect(r, r.stderr).toMatchObject({ code: 0, stdout: `${fibDecimal(N)}\n` });
  // Only the retries' lines on stderr, and maybe the wait for serve to reconnect too: no failure reported,
  // however long the broker was away.
  const waited = /^\S+ INFO {2}reconnected to \S+, where queue "rpc_queue" has no server yet; the calls wait for one/;
  const lines = r.stderr
    .trimEnd()
    .split("\n")
    .filter((line) => !waited.test(line));
  expect(lines.length).toBeLessThanOrEqual(3);
  for (const line of lines)
    expect(line).toMatch(
      new RegExp(
        `^\\S+ INFO {2}fib\\(${N}\\): (TIMEOUT|CONNECTION_LOST|BROKER_UNREACHABLE|QUEUE_NOT_FOUND|NO_CONSUMER); retrying in \\d+ ms \\(retry [123]/3\\)$`,
      ),
    );
  expect(await server.stop()).toBe(0);
}, 120_000);

test("call --retry started while the broker is down: once it is back, waits for a server to reconnect instead of failing NO_CONSUMER", async () => {
  // The request queue exists (durable, declared by a serve), and no serve runs until the call waits for one: a
  // server that reconnects after the broker is back (serve's back-off) is then sure to come after the call.
  const first = await startServe(["--workers", "1", "--url", node.url]);
  expect(await first.stop()).toBe(0);
  await stopApp();
  const call = start(["call", "--retry", "3", "-t", "60s", "25"]);
  await call.waitFor(/trying again until the timeout \(--retry\)$/m, 20_000);
  await startApp();
  await call.waitFor(/no server on queue "rpc_queue" yet; waiting for one \(the broker is back/, 30_000);
  servers.current = await startServe(["--workers", "1", "--url", node.url]);
  const r = await call.done();
  expect(r, r.stderr).toMatchObject({ code: 0, stdout: `${fibDecimal(25)}\n` });
  expect(await servers.current.stop()).toBe(0);
}, 120_000);

test("call - --retry failing over to a broker where serve has not declared the queue yet: the calls wait for a server there, none fails QUEUE_NOT_FOUND", async () => {
  // Two brokers, not clustered: the second has the request queue only once serve, failing over, declares it. serve
  // is stopped (SIGSTOP) while the first broker goes, so the call surely reaches the second before it.
  const second = await startPrivateNode("fibrpc-failover-b"); // stopped by the file's cleanup
  const urls = `${node.url},${second.url}`;
  const queue = `failover-${process.pid}`;
  const server = await startServe(["--workers", "1", "--queue", queue, "--url", urls]);
  servers.current = server;
  const env: Record<string, string> = { NO_COLOR: "1" };
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("FIBRPC_") && v !== undefined) env[k] ??= v;
  const call = tracked(
    Bun.spawn([BIN, "call", "-", "--retry", "3", "-t", "60s", "--queue", queue, "--url", urls], {
      ...{ cwd: "/", env, stdin: "pipe", stdout: "pipe", stderr: "pipe" },
    }),
  );
  let stdout = "";
  let stderr = "";
  const reading = Promise.all([
    (async () => {
      for await (const chunk of call.stdout) stdout += new TextDecoder().decode(chunk);
    })(),
    (async () => {
      for await (const chunk of call.stderr) stderr += new TextDecoder().decode(chunk);
    })(),
  ]);
  const lines = (text: string) => text.split("\n").filter(Boolean);
  call.stdin.write("1\n2\n3\n");
  await call.stdin.flush();
  await eventually(
    async () => lines(stdout).length,
    (count) => count === 3,
    20_000,
    "the first 3 results",
  );
  server.proc.kill("SIGSTOP");
  try {
    await stopApp();
    call.stdin.write("4\n5\n6\n");
    await call.stdin.flush();
    await eventually(
      async () => stderr,
      (text) =>
        /where queue "[^"]+" has no server yet; the calls wait for one$/m.test(text) || /QUEUE_NOT_FOUND/.test(text),
      30_000,
      "call waiting for a server on the second broker",
    );
  } finally {
    server.proc.kill("SIGCONT");
  }
  call.stdin.end();
  const code = await call.exited;
  await reading;
  expect({ code, stdout, stderr }).toMatchObject({ code: 0, stdout: "1\n1\n2\n3\n5\n8\n" });
  expect(stderr).not.toContain("QUEUE_NOT_FOUND");
  await startApp();
  expect(await server.stop()).toBe(0);
}, 180_000);

test("bench failing over to a broker where serve has not declared the queue yet: the outage lasts until a server is there, no call fails QUEUE_NOT_FOUND", async () => {
  const second = await startPrivateNode("fibrpc-failover-c"); // stopped by the file's cleanup
  const urls = `${node.url},${second.url}`;
  const queue = `failover-bench-${process.pid}`;
  const server = await startServe(["--workers", "1", "--queue", queue, "--url", urls]);
  servers.current = server;
  const env: Record<string, string> = { NO_COLOR: "1" };
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("FIBRPC_") && v !== undefined) env[k] ??= v;
  // Long enough for the failover (a few seconds here) to end well before the run does, on a slow machine too.
  const args = ["bench", "-c", "4", "--duration", "25s", "--queue", queue, "--url", urls];
  const bench = tracked(Bun.spawn([BIN, ...args], { cwd: "/", env, stdin: "ignore", stdout: "pipe", stderr: "pipe" }));
  let stderr = "";
  const stdout = new Response(bench.stdout).text();
  const reading = (async () => {
    for await (const chunk of bench.stderr) stderr += new TextDecoder().decode(chunk);
  })();
  const seen = (pattern: RegExp, what: string) =>
    eventually(
      async () => ({ seen: pattern.test(stderr), exited: bench.exitCode !== null }),
      (s) => s.seen || s.exited,
      30_000,
      what,
    );
  await seen(/^1\.\ds: [1-9]\d* calls/m, "bench's first progress line");
  server.proc.kill("SIGSTOP");
  try {
    await stopApp();
    await seen(
      /where queue "[^"]+" has no server yet; waiting for one$/m,
      "bench waiting for a server on the second broker",
    );
  } finally {
    server.proc.kill("SIGCONT");
  }
  const [code, out] = await Promise.all([bench.exited, stdout, reading]);
  // Calls in flight when the first broker went failed (CONNECTION_LOST): not exit 0, and not 69 either.
  expect({ code, out, stderr }).toMatchObject({ code: 75 });
  expect(out).not.toContain("QUEUE_NOT_FOUND");
  expect(out).toMatch(/^ {2}outage {4}no connection to the broker from t=/m);
  await startApp();
  expect(await server.stop()).toBe(0);
}, 180_000);

test("call - --reply-to --no-wait across a broker restart: the n read after it are sent on a new connection, not failed as lost", async () => {
  const queue = `pipeline-restart-${process.pid}`;
  const replies = `${queue}.replies`;
  const server = await startServe(["--workers", "1", "--queue", queue, "--url", node.url]);
  servers.current = server;
  const env: Record<string, string> = { NO_COLOR: "1" };
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("FIBRPC_") && v !== undefined) env[k] ??= v;
  const args = ["call", "-", "--reply-to", replies, "--no-wait", "--json", "--queue", queue, "--url", node.url];
  const call = tracked(Bun.spawn([BIN, ...args], { cwd: "/", env, stdin: "pipe", stdout: "pipe", stderr: "pipe" }));
  let stdout = "";
  const reading = (async () => {
    for await (const chunk of call.stdout) stdout += new TextDecoder().decode(chunk);
  })();
  const stderr = new Response(call.stderr).text();
  const results = () =>
    stdout
      .split("\n")
      .filter(Boolean)
      .map((line) => JSON.parse(line) as { n: number; error?: unknown });
  call.stdin.write("1\n2\n3\n");
  await call.stdin.flush();
  await eventually(
    async () => results().length,
    (count) => count === 3,
    20_000,
    "the first 3 requests confirmed",
  );
  await stopApp();
  await startApp();
  call.stdin.write("4\n5\n6\n");
  call.stdin.end();
  const [code] = await Promise.all([call.exited, reading]);
  const text = await stderr;
  expect({ code, stdout, stderr: text }).toMatchObject({ code: 0 });
  expect(results().map((r) => [r.n, r.error])).toEqual([1, 2, 3, 4, 5, 6].map((n) => [n, undefined]));
  expect(text).toMatch(/INFO {2}6 of 6 requests taken by the broker \(confirmed\)/);
  expect(await server.stop()).toBe(0);
  expect((await node.ctl(["delete_queue", replies])).code).toBe(0);
}, 180_000);
