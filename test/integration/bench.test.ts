/**
 * `fibrpc bench` against a real serve, against a responder that holds its answers until released
 * (progress lines), and against one that answers wrongly; and its memory, in process, over
 * counted spans of calls. Nothing here depends on how fast this machine is: latencies and rates are
 * checked against each other (Little's law, the schedule), progress is awaited while the calls
 * are held, and memory is judged against a leak put in on purpose and measured the same way.
 */
import { expect, test } from "bun:test";
import type { ConsumeMessage } from "amqplib";
import { heapStats } from "bun:jsc";
import { createConsola } from "consola";
import { parseBrokerUrl } from "../../src/broker-url.ts";
import { runBench, type BenchOptions, type Caller } from "../../src/bench/run.ts";
import { RpcClient, type CallOutcome } from "../../src/rpc/client.ts";
import {
  BIN,
  cleanupAfterFile,
  eventually,
  pastEchoWindow,
  rawChannel,
  run,
  silentPort,
  startServe,
  tracked,
  uniqueQueue,
  URL,
} from "../helpers.ts";

cleanupAfterFile();

/** Progress lines, as bench writes them off a terminal ("1.0s: 123 calls, 120 calls/s, 0 errors"). */
const PROGRESS = /^\d+\.\ds: \d+ calls, \d+ calls\/s, \d+ errors$/m;
/** The summaries' percentiles are within 0.1% of the exact ones (src/bench/histogram.ts), to 0.1 µs. */
const HISTOGRAM_ERROR = 0.001;

test("bench reports calls/s, percentiles and no errors; every answer checked", async () => {
  const queue = uniqueQueue();
  const server = await startServe(["--workers", "2", "--queue", queue]);
  const { code, stdout, stderr } = await run([
    "bench",
    "--queue",
    queue,
    "--requests",
    "2000",
    "--concurrency",
    "20",
    "--n",
    "0-300",
    "--json",
  ]);
  expect(code).toBe(0);
  const result = JSON.parse(stdout);
  expect(result).toMatchObject({
    mode: "closed-loop",
    concurrency: 20,
    latencyFrom: "send",
    calls: 2000,
    ok: 2000,
    errors: {},
  });
  // The rate is the calls over the run's seconds.
  expect(result.callsPerSecond * result.seconds).toBeCloseTo(2000, 6);
  // Each call's latency lies within the run (a latency measured from the wrong start would not).
  expect(result.latencyMs.p50).toBeGreaterThan(0);
  expect(result.latencyMs.max).toBeLessThanOrEqual(result.seconds * 1000);
  // Little's law, as a bound that holds on any machine: each of the 20 loops has one call in
  // flight at a time, all within the run, so the latencies add up to at most 20 × the run's
  // length; at least half of the 2000 are at least the median; so the median is at most twice
  // 20 / (calls/s). A latency measured from the wrong start, or a rate too high, fails here.
  const littleMs = (1000 * 20) / result.callsPerSecond;
  expect(result.latencyMs.p50).toBeLessThanOrEqual(2 * littleMs * (1 + HISTOGRAM_ERROR) + 0.0001);
  expect(stderr).toBe("");
  const human = await run(["bench", "--queue", queue, "--requests", "200", "--concurrency", "5"]);
  expect(human.code).toBe(0);
  expect(human.stdout).toMatch(
    /^fibrpc bench: 200 calls of fib\(1\) on queue "[^"]+", closed-loop, 5 in flight, in [\d.]+ s$/m,
  );
  expect(human.stdout).toMatch(/calls\/s\s+\d+/);
  expect(human.stdout).toMatch(
    /p50 [\d.]+ ms {2}p90 [\d.]+ ms {2}p99 [\d.]+ ms {2}p99\.9 [\d.]+ ms {2}max [\d.]+ ms {2}\(from each send\)/,
  );
  expect(await server.stop()).toBe(0);
});

test("--rate: open loop at a fixed rate, latency from each intended start, the achieved rate reported", async () => {
  const queue = uniqueQueue();
  const server = await startServe(["--workers", "2", "--queue", queue]);
  const json = await run(["bench", "--queue", queue, "--rate", "400", "--requests", "400", "--json"]);
  expect(json.code).toBe(0);
  const result = JSON.parse(json.stdout);
  expect(result).toMatchObject({
    mode: "open-loop",
    rate: 400,
    maxOutstanding: 10000,
    missed: 0,
    latencyFrom: "intended-start",
    calls: 400,
    ok: 400,
    errors: {},
  });
  // The schedule: call i is due i/400 s after the start and none is sent before it is due, so the
  // run lasts at least until the last one is due, however fast this machine is.
  expect(result.seconds).toBeGreaterThanOrEqual(399 / 400);
  // As the schedule ends before the run does, the achieved rate is at least the answers per
  // second over the whole run (to the one call interval by which the schedule's length may
  // exceed the last call's due time). (Its upper bound, the rate asked for, holds by the
  // definition of the divisor and could not fail: not asserted.)
  expect(result.achievedRate).toBeGreaterThanOrEqual((result.callsPerSecond * 399) / 400 - 1e-9);
  // Latency runs from each intended start, send lag from it to the send: each call's latency
  // includes its send lag, so every percentile of one is at least the other's.
  expect(result.latencyMs.p50).toBeGreaterThan(0);
  for (const p of ["p50", "p90", "p99", "p999", "max"])
    expect(result.latencyMs[p], p).toBeGreaterThanOrEqual(result.sendLagMs[p]);
  expect(json.stderr).toBe("");

  // Text summary, with --duration and JSON logs.
  const human = await run([
    "bench",
    "--queue",
    queue,
    "--rate",
    "300.5",
    "--duration",
    "1s",
    "--log-format",
    "json",
    "--concurrency",
    "50",
  ]);
  expect(human.code).toBe(0);
  expect(human.stdout).toMatch(
    /^fibrpc bench: \d+ calls of fib\(1\) on queue "[^"]+", open-loop at 300\.5 calls\/s \(achieved: \d+ sent\/s\), in [\d.]+ s$/m,
  );
  // The answers per second over the whole run (drain included) are labelled apart from the rate sent.
  const seconds = /, in ([\d.]+) s$/m.exec(human.stdout)![1];
  expect(human.stdout).toMatch(
    new RegExp(
      `^ {2}answered/s \\d+ {2}\\(over all ${seconds!.replace(".", "\\.")} s, incl\\. the drain of the calls in flight at the end\\)$`,
      "m",
    ),
  );
  expect(human.stdout).not.toMatch(/^ {2}calls\/s/m);
  expect(human.stdout).toMatch(/\(from each intended start\)/);
  expect(human.stdout).toMatch(/^ {2}send lag {2}p50 [\d.]+ ms/m);
  expect(await server.stop()).toBe(0);
});

/** `fibrpc bench ARGS` started now, its stderr readable as it comes. */
function startBench(args: string[]) {
  const env: Record<string, string> = { NO_COLOR: "1" };
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("FIBRPC_") && v !== undefined) env[k] ??= v;
  const proc = tracked(
    Bun.spawn([BIN, "bench", "--url", URL, ...args], {
      cwd: "/",
      env,
      stdin: "ignore",
      stdout: "pipe",
      stderr: "pipe",
    }),
  );
  let stderr = "";
  const reading = (async () => {
    const decoder = new TextDecoder();
    for await (const chunk of proc.stderr) stderr += decoder.decode(chunk, { stream: true });
  })();
  return {
    args,
    stderr: () => stderr,
    kill: (signal: "SIGINT" | "SIGTERM") => proc.kill(signal),
    done: async () => {
      const [stdout, code] = await Promise.all([new Response(proc.stdout).text(), proc.exited, reading]);
      return { code, stdout, stderr };
    },
  };
}

test("off a terminal, progress is a plain line every second while calls are in flight; none with --json, --log-format json or --log-level warn", async () => {
  // A responder that holds every request until released: the calls stay in flight, however fast
  // or slow this machine is, until each bench has printed what the test waits for.
  const queue = uniqueQueue();
  const { ch } = await rawChannel();
  await ch.assertQueue(queue, { durable: true });
  const held: ConsumeMessage[] = [];
  let released = false;
  const answer = (msg: ConsumeMessage) => {
    ch.sendToQueue(msg.properties.replyTo, Buffer.from("1"), { correlationId: msg.properties.correlationId });
    ch.ack(msg);
  };
  await ch.consume(queue, (msg) => msg && (released ? answer(msg) : held.push(msg)));
  const callers = () => new Set(held.map((m) => m.properties.replyTo)).size;

  // The quiet ones first: once they have sent their calls, each is running.
  const quiet = [
    startBench(["--queue", queue, "--requests", "5", "--concurrency", "5", "--json"]),
    startBench(["--queue", queue, "--rate", "300", "--requests", "5", "--log-format", "json"]),
    startBench(["--queue", queue, "--requests", "5", "--concurrency", "5", "--log-level", "warn"]),
  ];
  await eventually(
    async () => callers(),
    (n) => n === 3,
    15_000,
    "the calls of the three quiet benches held",
  );
  // Then the ones that show progress, closed and open loop. Each prints its first line a second
  // after it started, later than the quiet ones started: by then they would have printed theirs.
  const shown = [
    startBench(["--queue", queue, "--requests", "5", "--concurrency", "5"]),
    startBench(["--queue", queue, "--rate", "300", "--requests", "5"]),
  ];
  const progress = (text: string) => text.split("\n").filter((line) => PROGRESS.test(line));
  await eventually(
    async () => shown.map((b) => progress(b.stderr()).length),
    (counts) => counts.every((n) => n >= 2),
    20_000,
    "two progress lines from each bench",
  );
  expect(callers()).toBe(5);
  released = true;
  for (const msg of held.splice(0)) answer(msg);

  for (const bench of shown) {
    const { code, stderr } = await bench.done();
    expect(code, bench.args.join(" ")).toBe(0);
    // Nothing was answered yet when they printed: the lines say so, in order of time.
    const lines = progress(stderr);
    expect(
      lines.slice(0, 2).map((line) => line.replace(/^\d+\.\ds: /, "")),
      bench.args.join(" "),
    ).toEqual(["0 calls, 0 calls/s, 0 errors", "0 calls, 0 calls/s, 0 errors"]);
    const elapsed = lines.map((line) => Number(line.split("s:")[0]));
    for (let i = 1; i < elapsed.length; i++) expect(elapsed[i]).toBeGreaterThan(elapsed[i - 1]!);
  }
  const [json, jsonLogs, warnOnly] = await Promise.all(quiet.map((b) => b.done()));
  expect(json!.code).toBe(0);
  expect(JSON.parse(json!.stdout)).toMatchObject({ calls: 5, ok: 5 });
  expect(json!.stderr).toBe("");
  expect(jsonLogs!.code).toBe(0);
  expect(jsonLogs!.stderr).not.toMatch(PROGRESS);
  expect(jsonLogs!.stderr).not.toMatch(/calls\/s/);
  expect(warnOnly!.code).toBe(0);
  expect(warnOnly!.stderr).toBe("");
});

test("--reply-queue exclusive: the replies come back to a queue of bench's own, not Direct Reply-to", async () => {
  // A hand-made responder that answers every request and notes where its reply goes.
  const queue = uniqueQueue();
  const { ch } = await rawChannel();
  await ch.assertQueue(queue, { durable: true });
  const replyTo = new Set<string>();
  await ch.consume(queue, (msg) => {
    if (!msg) return;
    replyTo.add(msg.properties.replyTo);
    ch.sendToQueue(msg.properties.replyTo, Buffer.from("1"), { correlationId: msg.properties.correlationId });
    ch.ack(msg);
  });
  const r = await run(["bench", "--queue", queue, "--reply-queue", "exclusive", "-r", "200", "-c", "10", "--json"]);
  expect(r.code, r.stderr).toBe(0);
  expect(JSON.parse(r.stdout)).toMatchObject({ calls: 200, ok: 200 });
  expect([...replyTo].map((to) => to.replace(/^(amq\.gen-).*$/, "$1…"))).toEqual(["amq.gen-…"]);
});

test("--rate must be a positive number: one line, exit 64", async () => {
  for (const bad of ["0", "-5", "abc", "1e3", "2000000"]) {
    const r = await run(["bench", "--rate", bad, "--requests", "1"]);
    expect(r.code, bad).toBe(64);
    expect(r.stderr.trim().split("\n"), bad).toHaveLength(1);
    expect(r.stderr).toContain("--rate must be a number of calls per second");
  }
  const env = await run(["bench", "--requests", "1"], { FIBRPC_RATE: "fast" });
  expect(env.code).toBe(64);
  expect(env.stderr).toContain("--rate must be a number of calls per second");
});

test("a wrong answer is an error, never a fast result", async () => {
  const queue = uniqueQueue();
  const { ch } = await rawChannel();
  await ch.assertQueue(queue, { durable: true });
  await ch.consume(queue, (msg) => {
    if (!msg) return;
    ch.sendToQueue(msg.properties.replyTo, Buffer.from("42"), { correlationId: msg.properties.correlationId });
    ch.ack(msg);
  });
  // Above EXACT_BELOW (bench/answers.ts) an answer is checked by its digits and last digits: "42" fails too.
  const large = await run(["bench", "--queue", queue, "--requests", "10", "--n", "200000-300000", "--json"]);
  expect(large.code).toBe(76);
  expect(JSON.parse(large.stdout)).toMatchObject({ ok: 0, errors: { WRONG_ANSWER: 10 } });
  const { code, stdout } = await run(["bench", "--queue", queue, "--requests", "100", "--n", "30", "--json"]);
  expect(code).toBe(76); // REMOTE_ERROR, the exit code of a wrong reply
  // Nothing answered right: no rate of answers, no percentiles (not zeros that read as measured).
  expect(JSON.parse(stdout)).toMatchObject({
    calls: 100,
    ok: 0,
    failed: 100,
    callsPerSecond: 0,
    latencyMs: null,
    errors: { WRONG_ANSWER: 100 },
  });
  const human = await run(["bench", "--queue", queue, "--requests", "100", "--n", "30"]);
  expect(human.code).toBe(76);
  expect(human.stdout).toMatch(/^ {2}calls\/s {3}0 {2}\(answered calls only; 100 failed calls not counted\)$/m);
  expect(human.stdout).toMatch(/^ {2}latency {3}none: no answered calls$/m);
  expect(human.stdout).not.toMatch(/p50/);
});

/**
 * JavaScriptCore's cells of compiled code. Their number drops when it throws away code it has not
 * run for a while (after ~15 s, by its clock: about 1 MiB at once), which a heap reading would
 * otherwise take for the bench's own memory going down.
 */
function codeCells(): number {
  const counts = heapStats().objectTypeCounts as Record<string, number>;
  return Object.entries(counts).reduce(
    (sum, [type, n]) => (/CodeBlock|Executable|SourceCode/.test(type) ? sum + n : sum),
    0,
  );
}

/**
 * A Caller around the client that reads the heap at fixed call counts, in a state that is the
 * same at every reading: every `every` calls it lets no call through until none is left in the
 * client and `cap` (all the bench's calls in flight) wait at its door; then, after one call of
 * its own, it reads the heap after a full collection, and lets them all go. Once `spans` spans
 * between readings are counted (those in which JavaScriptCore threw compiled code away are not:
 * see growthPerCall), or another span would pass `maxCalls`, it says it is no longer usable,
 * which ends the run. With `leak`, it keeps 8 bytes per call, as the bench's sample array once
 * did (in chunks of 4 KiB, so that the heap grows evenly with the calls and not by the doublings
 * of one array).
 */
class HeapCheckpoints implements Caller {
  readonly readings: { calls: number; bytes: number; code: number }[] = [];
  /** Its own calls, one before each reading, that were not answered right: their outcomes. */
  readonly ownCallsFailed: string[] = [];
  private calls = 0;
  private inClient = 0;
  private pausing = false;
  private reading = false;
  private done = false;
  private readonly waiting: (() => void)[] = [];
  private readonly kept: Float64Array[] = [];

  constructor(
    private readonly client: RpcClient,
    private readonly o: { every: number; cap: number; spans: number; maxCalls: number; leak: boolean },
  ) {}

  get usable(): boolean {
    // The bench asks before each call it starts; without a connection it starts no more, and with
    // none of its calls in the client nothing else calls check(): the reading starts here.
    if (!this.client.usable) this.check();
    return this.client.usable && !this.done;
  }

  async call(n: number, deadline: number): Promise<CallOutcome> {
    if (this.pausing)
      await new Promise<void>((resolve) => {
        this.waiting.push(resolve);
        this.check();
      });
    this.calls++;
    if (this.o.leak) {
      const slot = (this.calls - 1) % 512;
      if (slot === 0) this.kept.push(new Float64Array(512));
      this.kept.at(-1)![slot] = this.calls;
    }
    // The run ends only right after a reading (below), so the bench's calls still come to the door.
    if (this.calls % this.o.every === 0 && !this.done) this.pausing = true;
    this.inClient++;
    try {
      return await this.client.call(n, deadline);
    } finally {
      this.inClient--;
      this.check();
    }
  }

  private check(): void {
    // Without a connection the bench sends no more, so fewer than `cap` may ever come: read and let
    // them go (their calls fail, and so does the test), rather than wait for the test's timeout.
    const allAtTheDoor = this.waiting.length >= this.o.cap || !this.client.usable;
    if (!this.pausing || this.reading || this.inClient > 0 || !allAtTheDoor) return;
    this.reading = true;
    // First one call of its own, alone (not counted): amqplib keeps alive, through a zero-length
    // view, the buffer of the last bytes it read from the socket until it reads again, and after a
    // burst of replies that buffer's size differs at every reading (spans of the clean closed loop
    // swung by up to 28 KiB either way with it; after this call, mostly under 3.5 KiB). After it,
    // what was last read is small: that call's reply (perhaps with its publisher confirm).
    // Then read from the event loop, not from deep in the stack of the call that got here last:
    // JavaScriptCore scans the stack conservatively, and whatever a deep stack happens to point at
    // would be read as kept.
    void this.client.call(1, Date.now() + 10_000).then((outcome) => {
      setImmediate(() => this.read());
      if (!outcome.ok || outcome.result !== "1") this.ownCallsFailed.push(JSON.stringify(outcome));
    });
  }

  private read(): void {
    // The lowest of three (a collection can still keep a few KiB that the next one frees).
    const bytes = Math.min(
      ...[0, 1, 2].map(() => {
        Bun.gc(true);
        return process.memoryUsage().heapUsed;
      }),
    );
    this.readings.push({ calls: this.calls, bytes, code: codeCells() });
    this.done = this.growthPerCall().spans >= this.o.spans || this.calls + this.o.every > this.o.maxCalls;
    this.reading = false;
    this.pausing = false;
    for (const go of this.waiting.splice(0)) go();
  }

  /**
   * Bytes kept per call: what the heap grew by over the spans between readings, added up, over the
   * calls made in them; leaving out the spans in which JavaScriptCore threw compiled code away
   * (about 1 MiB at once; more often when the process holds other tests' code). Added up, not a
   * median of spans: a leak can grow the heap in a few steps (an array's storage is reallocated as
   * it grows), which a median of spans does not see. The sum sees the steps that land in counted
   * spans; one in a span left out is lost, so a stepping leak reads more or less than its true
   * rate depending on where its steps fall (the sample array put back read 11.3-12.4 B/call
   * closed loop, where it keeps one number per call).
   */
  growthPerCall(): { perCall: number; spans: number; calls: number; kib: string[] } {
    let bytes = 0;
    let calls = 0;
    let spans = 0;
    // Each span's growth in KiB, a span left out in brackets: the figures a failure is judged by.
    const kib: string[] = [];
    for (let i = 1; i < this.readings.length; i++) {
      const [a, b] = [this.readings[i - 1]!, this.readings[i]!];
      const grew = ((b.bytes - a.bytes) / 1024).toFixed(1);
      if (b.code < a.code) kib.push(`[${grew}]`);
      else {
        kib.push(grew);
        bytes += b.bytes - a.bytes;
        calls += b.calls - a.calls;
        spans++;
      }
    }
    return { perCall: bytes / calls, spans, calls, kib };
  }
}

test("memory is flat over counted calls, closed and open loop: latencies go into a fixed histogram, not one sample per call", async () => {
  // In process, so the heap can be read right after a full collection: live bytes, to a few KiB.
  // RSS cannot show it: it saws by 10-15 MiB between collections. The long version, 60 s per
  // mode, is a benchmark: bun run bench:memory (docs/benchmarks.md).
  const queue = uniqueQueue();
  const server = await startServe(["--workers", "2", "--queue", queue]);
  const client = await RpcClient.connect({
    broker: { urls: [parseBrokerUrl(URL)], tls: {} },
    queue,
    replyQueue: "direct",
    timeoutMs: 10_000,
    log: createConsola({ level: 1 }),
  });
  // The bench's calls in flight, in both modes (concurrency, and maxOutstanding in the open loop):
  // a reading waits for this many at the door.
  const CAP = 100;
  const EVERY = 2000;
  // 20 spans of 2,000 calls counted per run: what one span's noise or one-off growth (tens of KiB)
  // adds is a fraction of a byte per call. JavaScriptCore drops code in 1-5 of 15 spans of most
  // runs of this file alone, and in many when the process holds the other files' code (in two
  // runs of the integration tier, the open loop left out 7 of 15 spans and 14 of 34), hence a
  // bound of 200,000 calls a run (99 spans).
  const SPANS = 20;
  const MAX_CALLS = 100 * EVERY;
  const common = { n: { min: 1, max: 1 }, timeoutMs: 10_000 };
  const figures: string[] = [];
  try {
    // Warm up (the heap grows for a few tens of thousands of calls before it settles), and
    // measure the rate the open loop runs at: half of what this machine sustains.
    const warm = await runBench(client, { ...common, concurrency: CAP, requests: 30_000 });
    expect(warm.ok).toBe(warm.calls);
    const modes: Record<string, Omit<BenchOptions, keyof typeof common>> = {
      "closed loop": { concurrency: CAP },
      "open loop": { concurrency: CAP, rate: Math.max(1, Math.round(warm.callsPerSecond / 2)), maxOutstanding: CAP },
    };
    const measure = async (mode: string, leak: boolean) => {
      // Each mode once unmeasured first, readings and all: its code paths warmed up, its fixed
      // state allocated.
      const warmUp = { every: EVERY, cap: CAP, spans: 4, maxCalls: 5 * EVERY, leak: false };
      await runBench(new HeapCheckpoints(client, warmUp), { ...common, ...modes[mode]! });
      const checkpoints = new HeapCheckpoints(client, {
        every: EVERY,
        cap: CAP,
        spans: SPANS,
        maxCalls: MAX_CALLS,
        leak,
      });
      const result = await runBench(checkpoints, { ...common, ...modes[mode]! });
      expect(result.ok).toBe(result.calls);
      expect(checkpoints.ownCallsFailed).toEqual([]);
      const growth = checkpoints.growthPerCall();
      figures.push(
        `${mode}${leak ? " with 8 bytes kept per call" : ""}: ${growth.perCall.toFixed(2)} B/call over ${growth.calls} calls` +
          ` (KiB per ${EVERY} calls: ${growth.kib.join(" ")}; in brackets, left out: JavaScriptCore dropping compiled code)`,
      );
      // Every span wanted counted before the bound (code is dropped now and then, not all the time).
      expect(growth.spans, figures.join("; ")).toBe(SPANS);
      return growth.perCall;
    };
    const clean = {
      "closed loop": await measure("closed loop", false),
      "open loop": await measure("open loop", false),
    };
    // The yardstick, measured the same way: what 8 bytes kept per call (what the old sample
    // array kept, put back on purpose) add to the same run. The measurement must see them.
    const yardstick = (await measure("closed loop", true)) - clean["closed loop"];
    figures.push(`8 bytes kept per call measure ${yardstick.toFixed(2)} B/call`);
    expect(yardstick, figures.join("; ")).toBeGreaterThanOrEqual(6);
    // The bench itself keeps less than half of that per call, in both modes.
    for (const [mode, perCall] of Object.entries(clean))
      expect(perCall, `${mode}: ${figures.join("; ")}`).toBeLessThan(yardstick / 2);
  } finally {
    console.log(`bench memory: ${figures.join("; ")}`);
    await client.close();
  }
  expect(await server.stop()).toBe(0);
  // A bound on waiting for at most 660,000 calls (at least 186,000 are made), far above what this
  // takes here (19-35 s in the runs of 2026-12-06): the test counts calls, it does not time them.
}, 600_000);

test("a range of heavy n: every answer checked right, none computed in full by bench (bench/answers.ts)", async () => {
  const queue = uniqueQueue();
  const server = await startServe(["--workers", "2", "--queue", queue]);
  try {
    const { code, stdout, stderr } = await run([
      "bench",
      "--queue",
      queue,
      "--requests",
      "20",
      "--concurrency",
      "2",
      "--n",
      "100000-400000",
      "--json",
    ]);
    expect(code, stderr).toBe(0);
    expect(JSON.parse(stdout)).toMatchObject({ calls: 20, ok: 20, failed: 0, errors: {} });
  } finally {
    await server.stop();
  }
});

test("SIGINT or SIGTERM ends a run early: no call started after it, those in flight finished, the summary printed", async () => {
  // A responder that holds every request until released: the calls in flight when the signal comes stay so.
  const queue = uniqueQueue();
  const { ch } = await rawChannel();
  await ch.assertQueue(queue, { durable: true });
  const held: ConsumeMessage[] = [];
  let received = 0;
  await ch.consume(queue, (msg) => {
    if (!msg) return;
    received++;
    held.push(msg);
  });
  const release = () => {
    for (const msg of held.splice(0)) {
      ch.sendToQueue(msg.properties.replyTo, Buffer.from("1"), { correlationId: msg.properties.correlationId });
      ch.ack(msg);
    }
  };
  for (const [signal, code, loop] of [
    ["SIGINT", 130, ["--concurrency", "3"]],
    ["SIGTERM", 143, ["--rate", "50", "--concurrency", "3"]],
  ] as const) {
    const before = received;
    const bench = startBench(["--queue", queue, "--duration", "120s", "--json", "--n", "1", ...loop]);
    await eventually(
      async () => held.length,
      (n) => n === 3,
      15_000,
      `${signal}: three calls held`,
    );
    bench.kill(signal);
    await eventually(
      async () => bench.stderr(),
      (text) => text.includes(`${signal}: no new calls`),
      15_000,
      signal,
    );
    release();
    const done = await bench.done();
    expect(done.code, done.stderr).toBe(code);
    const summary = JSON.parse(done.stdout);
    expect(summary).toMatchObject({ calls: 3, ok: 3, failed: 0, cutShort: { code: signal } });
    expect(received - before).toBe(3);
  }
  // A second signal ends it at once, its calls still held.
  const bench = startBench(["--queue", queue, "--duration", "120s", "--json", "--concurrency", "2"]);
  await eventually(
    async () => held.length,
    (n) => n === 2,
    15_000,
    "two calls held",
  );
  bench.kill("SIGINT");
  await eventually(
    async () => bench.stderr(),
    (text) => text.includes("SIGINT: no new calls"),
    15_000,
    "SIGINT",
  );
  await pastEchoWindow();
  bench.kill("SIGINT");
  const again = await bench.done();
  expect(again.code).toBe(130);
  // --json: stdout still holds one object, though there is no summary to print.
  expect(JSON.parse(again.stdout)).toEqual({
    error: { code: "INTERRUPTED", message: "a second SIGINT ended the run before its summary" },
  });
  release();
});

test("a signal while connecting (a broker that never answers its handshake): at once, --json's error object", async () => {
  for (const [signal, code] of [
    ["SIGINT", 130],
    ["SIGTERM", 143],
  ] as const) {
    const broker = silentPort();
    const proc = tracked(
      Bun.spawn([BIN, "bench", "--json", "-t", "60s", "--url", `amqp://127.0.0.1:${broker.port}`], {
        cwd: "/",
        env: { ...process.env, NO_COLOR: "1" },
        stdin: "ignore",
        stdout: "pipe",
        stderr: "pipe",
      }),
    );
    await broker.connected;
    proc.kill(signal);
    const [stdout, stderr, exited] = await Promise.all([
      new Response(proc.stdout).text(),
      new Response(proc.stderr).text(),
      proc.exited,
    ]);
    expect(exited, signal).toBe(code);
    const message = `${signal} before the run started: no call was made`;
    expect(JSON.parse(stdout)).toEqual({ error: { code: "INTERRUPTED", message } });
    expect(stderr).toBe(`fibrpc: ${message}\n`);
  }
});

test("--json: an object on stdout when the run cannot start, the error's code and message", async () => {
  const { code, stdout } = await run(["bench", "--queue", uniqueQueue("bench_missing"), "--requests", "3", "--json"]);
  expect(code).toBe(69);
  expect(JSON.parse(stdout)).toEqual({
    error: { code: "QUEUE_NOT_FOUND", message: expect.stringContaining("does not exist") },
  });
});

test("--duration on the command line wins over FIBRPC_REQUESTS (from a profile or a shared config file)", async () => {
  const queue = uniqueQueue();
  const server = await startServe(["--workers", "1", "--queue", queue]);
  const r = await run(["bench", "--queue", queue, "-c", "2", "--duration", "1s", "--json"], { FIBRPC_REQUESTS: "3" });
  expect(r, r.stderr).toMatchObject({ code: 0 });
  const result = JSON.parse(r.stdout);
  // Run for its second, not stopped after 3 calls.
  expect(result.seconds).toBeGreaterThanOrEqual(1);
  expect(result.calls).toBeGreaterThan(3);
  expect(await server.stop()).toBe(0);
});
