/**
 * Logs name the trace (issue 21, point 4): with `--log-format json` and tracing on, every line
 * logged while a request is handled carries `trace_id`, `span_id` (and `trace_flags`: "01",
 * sampled) at its top level, as OpenTelemetry's spec for JSON logs puts them, those of the
 * span in effect: serve's process span for a delivery, call's send span for an attempt that is
 * retried. The ids are checked against the spans the tests' OTLP receiver got, decoded by
 * OpenTelemetry's own classes, so a line is shown to point at a span that exists. With tracing off,
 * no line has them.
 */
import { afterAll, expect, test } from "bun:test";
import { cleanupAfterFile, rawChannel, run, startServe, uniqueQueue } from "../helpers.ts";
import { describeSpans, type OtlpSpan, startOtlpReceiver } from "../otlp-receiver.ts";

cleanupAfterFile();

const receiver = startOtlpReceiver();
afterAll(() => receiver.stop());

/** A JSON log line, as a collector would parse it. */
interface Entry {
  level: string;
  message: string;
  worker?: string;
  trace_id?: string;
  span_id?: string;
  trace_flags?: string;
  fields?: Record<string, unknown>;
}

function entriesOf(stderr: string): Entry[] {
  return stderr
    .trim()
    .split("\n")
    .filter((line) => line !== "")
    .map((line) => JSON.parse(line) as Entry);
}

/** The one entry whose message starts with `start`. */
function entry(entries: Entry[], start: string): Entry {
  const found = entries.filter((e) => e.message.startsWith(start));
  expect(
    found.map((e) => e.message),
    `one line starting ${JSON.stringify(start)}`,
  ).toHaveLength(1);
  return found[0]!;
}

const serviceName = (what: string) => `fibrpc-${what}-${crypto.randomUUID().slice(0, 8)}`;

const SERVE_ARGS = ["--workers", "1", "--max-n", "100", "--log-format", "json", "--log-level", "debug"];

test("serve, tracing on: each line about a delivery names its process span; the others name none", async () => {
  const queue = uniqueQueue("fibrpc_trace_logs");
  const serve = serviceName("serve");
  const server = await startServe(["--queue", queue, ...SERVE_ARGS], {
    ...receiver.env("http/protobuf"),
    OTEL_SERVICE_NAME: serve,
  });

  // Computed, logged at debug (`fib(30) → …`); the call traced too, so the line's trace is the caller's.
  const called = await run(["call", "--queue", queue, "--json", "30"], receiver.env("http/json"));
  expect(called.code).toBe(0);
  const callTrace: string = JSON.parse(called.stdout).trace_id;
  expect(callTrace).toMatch(/^[0-9a-f]{32}$/);
  // Refused: n above --max-n (N_TOO_LARGE, exit 76), logged at debug; the caller not traced.
  expect((await run(["call", "--queue", queue, "1000"])).code).toBe(76);
  // Dropped: no reply_to, so nobody can be answered (a warning).
  const { ch } = await rawChannel();
  ch.sendToQueue(queue, Buffer.from("7"));
  await server.waitForLog(/"message":"dropped a request/);
  expect(await server.stop()).toBe(0); // serve flushes its spans on drain

  const processSpan = (spans: readonly OtlpSpan[], fate: string) =>
    spans.find((s) => s.resource["service.name"] === serve && s.attributes["fibrpc.fate"] === fate);
  const fates = ["computed", "refused", "dropped"];
  const spans = await receiver.waitForSpans((all) => fates.every((fate) => processSpan(all, fate)), 10_000);
  const [computed, refused, dropped] = fates.map((fate) => processSpan(spans, fate)!);
  expect(computed!.traceId, describeSpans(spans)).toBe(callTrace);

  const entries = entriesOf(server.log);
  const lines = [
    [entry(entries, "fib(30) → "), computed!],
    [entry(entries, "refused a request: "), refused!],
    [entry(entries, "dropped a request: "), dropped!],
  ] as const;
  for (const [line, span] of lines) {
    expect(line).toMatchObject({ worker: "worker-1", trace_id: span.traceId, span_id: span.spanId, trace_flags: "01" });
    // At the top level, where collectors look; not among the fields.
    expect(line.fields?.trace_id).toBe(undefined);
  }
  expect(lines.map(([line]) => line.level)).toEqual(["debug", "debug", "warn"]);
  // Lines about no request (start-up, serving, the drain) name no trace.
  const traced = entries.filter((e) => "trace_id" in e || "span_id" in e || "trace_flags" in e);
  expect(traced.map((e) => e.message)).toEqual(lines.map(([line]) => line.message));
  expect(entries[0]!.fields).toMatchObject({ queue });
});

test("serve, tracing off: the same lines, with no trace_id or span_id", async () => {
  const queue = uniqueQueue("fibrpc_trace_logs");
  const server = await startServe(["--queue", queue, ...SERVE_ARGS]);
  expect((await run(["call", "--queue", queue, "30"])).code).toBe(0);
  expect((await run(["call", "--queue", queue, "1000"])).code).toBe(76);
  await server.waitForLog(/"message":"refused a request/);
  expect(await server.stop()).toBe(0);
  const entries = entriesOf(server.log);
  for (const start of ["fib(30) → ", "refused a request: "]) {
    const line = entry(entries, start);
    expect(Object.keys(line).sort()).toEqual(["level", "message", "time", "worker"]);
    // Nothing added to the message either (the ids' place held by undefined).
    expect(line.message).toBe(line.message.trimEnd());
  }
  expect(entries.some((e) => "trace_id" in e || "span_id" in e || "trace_flags" in e)).toBe(false);
});

/**
 * A queue with a raw consumer in place of a server (as lifecycle.test.ts's): it acks every request,
 * answers only the second attempt, and keeps the traceparent each attempt came with.
 */
async function answersTheRetry() {
  const queue = uniqueQueue("fibrpc_trace_logs");
  const { ch } = await rawChannel();
  await ch.assertQueue(queue, { durable: true });
  const traceparents: unknown[] = [];
  await ch.consume(queue, (msg) => {
    if (!msg) return;
    const { correlationId, replyTo, headers } = msg.properties;
    traceparents.push(headers?.traceparent);
    if (traceparents.length === 2) ch.sendToQueue(replyTo, Buffer.from("5"), { correlationId });
    ch.ack(msg);
  });
  return { queue, traceparents };
}

// The attempts share --timeout (the first gets a third of it): long enough that no machine is too
// slow to answer the second attempt within it, and nothing waits for it but the first attempt.
const RETRY_ARGS = ["--retry", "1", "--timeout", "3s", "--log-format", "json", "--json", "5"];

test("call --retry, tracing on: the retrying line names the attempt that failed", async () => {
  const { queue, traceparents } = await answersTheRetry();
  const name = serviceName("call");
  const result = await run(["call", "--queue", queue, ...RETRY_ARGS], {
    ...receiver.env("http/json"),
    OTEL_SERVICE_NAME: name,
  });
  expect(result.code, result.stderr).toBe(0);
  const line = entry(entriesOf(result.stderr), "fib(5): TIMEOUT; retrying in ");
  // The first attempt's send span: its context went out in the request's headers.
  expect(traceparents).toHaveLength(2);
  expect(traceparents[0]).toBe(`00-${line.trace_id}-${line.span_id}-${line.trace_flags}`);
  expect(line.trace_flags).toBe("01");
  // call exits with its spans exported: the one the line names is there, and is the failed attempt.
  const failed = receiver.spans.find((s) => s.resource["service.name"] === name && s.spanId === line.span_id);
  expect(failed, describeSpans(receiver.spans)).toMatchObject({
    traceId: line.trace_id,
    kind: "PRODUCER",
    attributes: { "error.type": "TIMEOUT" },
  });
  // The answered retry is a trace of its own (linked to the first): --json prints that one.
  const printed = JSON.parse(result.stdout);
  expect(printed).toMatchObject({ n: 5, result: "5" });
  expect(printed.trace_id).not.toBe(line.trace_id);
  expect(traceparents[1]).toStartWith(`00-${printed.trace_id}-`);
});

test("call --retry, tracing off: the retrying line names no trace", async () => {
  const { queue } = await answersTheRetry();
  const result = await run(["call", "--queue", queue, ...RETRY_ARGS]);
  expect(result.code, result.stderr).toBe(0);
  const line = entry(entriesOf(result.stderr), "fib(5): TIMEOUT; retrying in ");
  expect(Object.keys(line).sort()).toEqual(["level", "message", "time"]);
  expect("trace_id" in JSON.parse(result.stdout)).toBe(false);
});
