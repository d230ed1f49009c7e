/**
 * Spans worth reading (issue 21, point 2): serve's process span says where a request's time went —
 * the queue wait before it (fibrpc.queue.wait_ms, from the AMQP timestamp call sets), a heavy
 * request's wait for its turn and fib(n)'s computation (INTERNAL child spans, in that order, within
 * the process span), the result's digits (fibrpc.result.digits) and the fate. The compiled binary
 * runs from `/`; its export is received and decoded by the tests' OTLP receiver.
 */
import { afterAll, expect, test } from "bun:test";
import { HEAVY_N } from "../../src/rpc/delivery.ts";
import { cleanupAfterFile, rawChannel, respondOnRetry, run, startServe, uniqueQueue } from "../helpers.ts";
import { describeSpans, type OtlpSpan, startOtlpReceiver, unreachableEndpoint } from "../otlp-receiver.ts";

cleanupAfterFile();

const receiver = startOtlpReceiver();
afterAll(() => receiver.stop());

/** Span names of the process span's children (src/tracing/sdk.ts, PHASE_SPAN_NAMES). */
const WAIT = "wait for turn";
const COMPUTE = "compute fib";

/** A call as the user runs it (no tracing of its own), and the wall-clock window around it. */
async function call(queue: string, n: number) {
  const before = Date.now();
  const called = await run(["call", "--queue", queue, String(n)]);
  const after = Date.now();
  expect(called.code, called.stderr).toBe(0);
  return { result: called.stdout.trim(), before, after };
}

test("the process span: queue wait, a heavy request's wait for its turn, compute, digits and fate", async () => {
  const queue = uniqueQueue("fibrpc_spans");
  const service = `fibrpc-serve-${crypto.randomUUID().slice(0, 8)}`;
  // prefetch > 1: a heavy request waits its turn in the scheduler (scheduler.ts), with one worker.
  const server = await startServe(["--queue", queue, "--workers", "1", "--prefetch", "4"], {
    ...receiver.env("http/protobuf"),
    OTEL_SERVICE_NAME: service,
  });
  const light = await call(queue, 30);
  const heavy = await call(queue, HEAVY_N);
  expect(light.result).toBe("832040");
  expect(heavy.result).toMatch(/^[1-9]\d+$/);
  expect(await server.stop()).toBe(0); // serve flushes its spans on drain

  const ours = (spans: readonly OtlpSpan[]) => spans.filter((s) => s.resource["service.name"] === service);
  const processOf = (spans: readonly OtlpSpan[], n: number) =>
    ours(spans).find((s) => s.kind === "CONSUMER" && s.attributes["fibrpc.n"] === n);
  const childrenOf = (spans: readonly OtlpSpan[], parent: OtlpSpan) =>
    ours(spans)
      .filter((s) => s.parentSpanId === parent.spanId && s.traceId === parent.traceId)
      .sort((a, b) => (a.startTimeUnixNano < b.startTimeUnixNano ? -1 : 1));
  const complete = (spans: readonly OtlpSpan[]) => {
    const [l, h] = [processOf(spans, 30), processOf(spans, HEAVY_N)];
    return !!l && !!h && childrenOf(spans, l).length >= 1 && childrenOf(spans, h).length >= 2;
  };
  const spans = await receiver.waitForSpans(complete, 10_000).catch(() => receiver.spans);
  const context = describeSpans(ours(spans));

  for (const [n, { result, before, after }] of [
    [30, light],
    [HEAVY_N, heavy],
  ] as const) {
    const span = processOf(spans, n);
    expect(span, context).toBeDefined();
    expect(span!.attributes["fibrpc.fate"]).toBe("computed");
    expect(span!.attributes["fibrpc.result.digits"]).toBe(result.length);
    // From the request's timestamp (whole seconds): at most the call's whole run, plus the second truncated.
    const wait = span!.attributes["fibrpc.queue.wait_ms"] as number;
    expect(typeof wait, context).toBe("number");
    expect(wait).toBeGreaterThanOrEqual(0);
    expect(wait).toBeLessThanOrEqual(after - before + 1000);

    const children = childrenOf(spans, span!);
    expect(
      children.map((c) => c.name),
      context,
    ).toEqual(n >= HEAVY_N ? [WAIT, COMPUTE] : [COMPUTE]);
    let previousEnd = span!.startTimeUnixNano;
    for (const child of children) {
      expect(child.kind).toBe("INTERNAL");
      // In order and within the process span: each starts after the previous ended, ends before its parent.
      expect(child.startTimeUnixNano >= previousEnd, context).toBe(true);
      expect(child.endTimeUnixNano >= child.startTimeUnixNano, context).toBe(true);
      expect(child.endTimeUnixNano <= span!.endTimeUnixNano, context).toBe(true);
      previousEnd = child.endTimeUnixNano;
    }
    expect(children.at(-1)!.attributes["fibrpc.result.digits"]).toBe(result.length);
  }
});

test("a refused request's process span names its n when the body held one, and the fate and error", async () => {
  const queue = uniqueQueue("fibrpc_spans");
  const service = `fibrpc-serve-${crypto.randomUUID().slice(0, 8)}`;
  const server = await startServe(["--queue", queue, "--workers", "1"], {
    ...receiver.env("http/json"),
    OTEL_SERVICE_NAME: service,
  });
  // A deadline header that is not a number: INVALID_PROPERTY, though the body is a fine n.
  const { conn, ch } = await rawChannel();
  const { queue: replyTo } = await ch.assertQueue("", { exclusive: true });
  const replied = new Promise<string>((resolve) => {
    void ch.consume(replyTo, (msg) => msg && resolve(msg.content.toString()), { noAck: true });
  });
  ch.sendToQueue(queue, Buffer.from("7"), { replyTo, headers: { "x-fibrpc-deadline": "soon" } });
  expect(await replied).toStartWith("INVALID_PROPERTY: ");
  await conn.close();
  expect(await server.stop()).toBe(0);
  const isRefused = (s: OtlpSpan) => s.resource["service.name"] === service && s.kind === "CONSUMER";
  const spans = await receiver.waitForSpans((all) => all.some(isRefused), 10_000);
  expect(spans.find(isRefused)!.attributes).toMatchObject({
    "fibrpc.fate": "refused",
    "error.type": "INVALID_PROPERTY",
    "fibrpc.n": 7,
  });
});

test("--otlp-endpoint: traces go there, ahead of the OTEL_* endpoint variables", async () => {
  const queue = uniqueQueue("fibrpc_spans");
  const service = `fibrpc-${crypto.randomUUID().slice(0, 8)}`;
  // The variables name a port where nothing listens: the flag wins over them.
  const env = {
    OTEL_EXPORTER_OTLP_ENDPOINT: unreachableEndpoint(),
    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `${unreachableEndpoint()}/v1/traces`,
    OTEL_SERVICE_NAME: service,
  };
  const flag = ["--otlp-endpoint", receiver.endpoint];
  const server = await startServe(["--queue", queue, "--workers", "1", ...flag], env);
  const called = await run(["call", "--queue", queue, "--json", ...flag, "12"], env);
  expect(called.code, called.stderr).toBe(0);
  expect(called.stderr).not.toContain("could not export");
  const { trace_id } = JSON.parse(called.stdout);
  expect(await server.stop()).toBe(0);
  const spans = await receiver.waitForSpans((all) => all.filter((s) => s.traceId === trace_id).length >= 2, 10_000);
  const kinds = spans
    .filter((s) => s.traceId === trace_id && s.resource["service.name"] === service)
    .map((s) => s.kind);
  expect(kinds).toContain("PRODUCER");
  expect(kinds).toContain("CONSUMER");
});

test("--retry: an attempt answered late names the call's trace; the attempt it ended says ANSWERED_EARLIER", async () => {
  // As in call.test.ts: a hand-made responder answers the first attempt, to its own address, once the retry came.
  const queue = uniqueQueue("fibrpc_spans_late");
  await respondOnRetry(queue, (ch, [first]) => {
    const { replyTo, correlationId } = first.properties;
    ch.sendToQueue(replyTo, Buffer.from("832040"), { correlationId });
  });
  const flag = ["--otlp-endpoint", receiver.endpoint];
  const called = await run(["call", "--queue", queue, "--retry", "2", "-t", "20s", "--json", ...flag, "30"]);
  expect(called.code, called.stderr).toBe(0);
  const { result, trace_id } = JSON.parse(called.stdout);
  expect(result).toBe("832040");
  // The first attempt's trace: its send span ended at its window (TIMEOUT); the retry's is a trace of its own.
  const spans = await receiver.waitForSpans(
    (all) => all.filter((s) => s.attributes["messaging.destination.name"] === queue).length >= 2,
    10_000,
  );
  const sends = spans
    .filter((s) => s.attributes["messaging.destination.name"] === queue && s.kind === "PRODUCER")
    .sort((a, b) => Number(a.startTimeUnixNano - b.startTimeUnixNano));
  expect(sends.map((s) => [s.traceId === trace_id, s.attributes["error.type"]])).toEqual([
    [true, "TIMEOUT"],
    [false, "ANSWERED_EARLIER"],
  ]);
});
