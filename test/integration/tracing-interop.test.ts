/**
 * Whole traces across processes (issue 21, point 5), received by the tests' OTLP receiver from the
 * compiled binary run from `/` and from the Node fixtures under @opentelemetry/instrumentation-amqplib,
 * asserted against what docs/operations.md "Tracing" says of the spans:
 *
 * - fibrpc call → fibrpc serve, in both OTLP encodings: one trace, `send {queue}` (PRODUCER) and
 *   `process {queue}` (CONSUMER) whose parent AND link is the send span, with the messaging
 *   attributes (system, operation, destination, the correlation id as conversation id, the
 *   broker) and fibrpc's own (n, fate); call exits with its spans delivered.
 * - a Node client under the instrumentation → fibrpc serve: serve's span is in that client's trace,
 *   under its publish span, and the client's reply continues serve's trace (serve injects its
 *   context into the reply).
 * - fibrpc call → a Node server under the instrumentation: its process span is in fibrpc's trace,
 *   under call's send span.
 * - a timeout, a retry and a remote error each show as such: the send span's status and
 *   error.type, the retry's link to the first attempt, the process span's fate.
 * - `call --json` prints, for each n, the trace id the receiver got.
 *
 * Each test has its own queue and its own service names (OTEL_SERVICE_NAME), so that it reads only
 * its own spans from the file's one receiver; it waits for spans with a bound (waitForSpans), never
 * for a time.
 */
import { afterAll, expect, test } from "bun:test";
import type { ConsumeMessage } from "amqplib";
import {
  BROKER_PORT,
  cleanupAfterFile,
  rawChannel,
  run,
  startServe,
  uniqueQueue,
  URL as BROKER_URL,
} from "../helpers.ts";
import { Hold } from "../hold.ts";
import { describeSpans, type OtlpProtocol, type OtlpSpan, startOtlpReceiver } from "../otlp-receiver.ts";
import { runNodeRpcClient, startNodeRpcServer } from "../otel-node.ts";

cleanupAfterFile();

const receiver = startOtlpReceiver();
afterAll(() => receiver.stop());

const PROTOCOLS: OtlpProtocol[] = ["http/protobuf", "http/json"];
/** The broker as fibrpc's spans name it (server.address, server.port). */
const BROKER_HOST = new globalThis.URL(BROKER_URL).hostname;

/** Service names of one test's processes, unique to the test. */
function services() {
  const run = crypto.randomUUID().slice(0, 8);
  return { call: `fibrpc-call-${run}`, serve: `fibrpc-serve-${run}`, node: `node-${run}` };
}
/** A service's messaging spans (send, process, publish), its internal steps (serve's "compute fib") aside. */
const of = (spans: readonly OtlpSpan[], service: string) =>
  spans.filter((s) => s.resource["service.name"] === service && s.kind !== "INTERNAL");

/** call --json's lines, each with its trace_id (issue 21, point 4). */
function jsonLines(stdout: string): { n: number; result?: string; error?: { code: string }; trace_id: string }[] {
  const lines = stdout
    .trim()
    .split("\n")
    .map((line) => JSON.parse(line));
  for (const line of lines) expect(line.trace_id).toMatch(/^[0-9a-f]{32}$/);
  return lines;
}
const traceIdOf = (stdout: string): string => jsonLines(stdout)[0]!.trace_id;

/** The attributes both of fibrpc's spans carry (docs/operations.md "Tracing"). */
function expectMessaging(span: OtlpSpan, queue: string, operation: "send" | "process") {
  expect(span.attributes, describeSpans([span])).toMatchObject({
    "messaging.system": "rabbitmq",
    "messaging.operation.name": operation,
    "messaging.operation.type": operation,
    "messaging.destination.name": queue,
    "messaging.rabbitmq.destination.routing_key": queue,
    "server.address": BROKER_HOST,
    "server.port": BROKER_PORT,
  });
  expect(span.attributes["messaging.message.conversation_id"]).toBeString();
  expect(span.scope.name).toBe("fibrpc");
}

/** fibrpc's send span of the trace `traceId`, as call delivered it. */
function sendSpan(spans: readonly OtlpSpan[], service: string, traceId: string): OtlpSpan {
  const sends = of(spans, service).filter((s) => s.traceId === traceId);
  expect(sends, describeSpans(spans)).toHaveLength(1);
  return sends[0]!;
}

/** A process span of `service` whose parent is `parent`. */
const childOf = (spans: readonly OtlpSpan[], service: string, parent: OtlpSpan) =>
  of(spans, service).find((s) => s.parentSpanId === parent.spanId && s.traceId === parent.traceId);

/** The first request a raw consumer of `queue` (declared as serve and the Node server do) receives; it holds it, unacked. */
async function firstRequestOn(queue: string) {
  const { ch } = await rawChannel();
  await ch.assertQueue(queue, { durable: true });
  // prefetch 1 and the request held unacked: no second delivery can reach this consumer.
  await ch.prefetch(1);
  let received: (msg: ConsumeMessage) => void = () => {};
  const first = new Promise<ConsumeMessage>((resolve) => {
    received = resolve;
  });
  const { consumerTag } = await ch.consume(queue, (msg) => msg && received(msg));
  return { ch, first, consumerTag };
}

/** `promise`, or a rejection saying `what` after `ms`. */
async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not happen within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

for (const protocol of PROTOCOLS) {
  test(`fibrpc call → fibrpc serve: one trace, the process span's parent and link is the send span (${protocol})`, async () => {
    const queue = uniqueQueue("fibrpc_trace");
    const name = services();
    const server = await startServe(["--queue", queue, "--workers", "1"], {
      ...receiver.env(protocol),
      OTEL_SERVICE_NAME: name.serve,
    });
    const called = await run(["call", "--queue", queue, "--json", "30"], {
      ...receiver.env(protocol),
      OTEL_SERVICE_NAME: name.call,
    });
    expect(called.code, called.stderr).toBe(0);
    expect(jsonLines(called.stdout)[0]).toMatchObject({ n: 30, result: "832040" });
    const traceId = traceIdOf(called.stdout);
    // call exits with its spans delivered: they are here already, not on their way.
    const send = sendSpan(receiver.spans, name.call, traceId);
    expect(send).toMatchObject({
      name: `send ${queue}`,
      kind: "PRODUCER",
      parentSpanId: undefined,
      links: [],
      status: { code: "UNSET" },
      protocol,
    });
    expectMessaging(send, queue, "send");
    expect(send.attributes["fibrpc.n"]).toBe(30);
    expect(send.attributes["error.type"]).toBeUndefined();

    expect(await server.stop()).toBe(0); // serve flushes on drain
    const spans = await receiver.waitForSpans((all) => !!childOf(all, name.serve, send), 10_000);
    const processed = childOf(spans, name.serve, send)!;
    expect(processed).toMatchObject({
      traceId,
      name: `process ${queue}`,
      kind: "CONSUMER",
      parentSpanId: send.spanId,
      // Parent AND link (tracing/tracer.ts says why).
      links: [{ traceId, spanId: send.spanId }],
      status: { code: "UNSET" },
      protocol,
    });
    expectMessaging(processed, queue, "process");
    expect(processed.attributes).toMatchObject({ "fibrpc.n": 30, "fibrpc.fate": "computed" });
    expect(processed.attributes["messaging.rabbitmq.message.delivery_tag"]).toBeNumber();
    // One correlation id, seen by both sides.
    expect(processed.attributes["messaging.message.conversation_id"]).toBe(
      send.attributes["messaging.message.conversation_id"]!,
    );
    // Delivered after it was sent (one clock: the same machine). Not "ends before the send span
    // ends": serve ends its span after writing the reply, which call may receive first.
    expect(processed.startTimeUnixNano).toBeGreaterThanOrEqual(send.startTimeUnixNano);
    // The whole trace is these two spans, and serve's compute step under its process span.
    const computed = receiver.trace(traceId).find((s) => s.name === "compute fib");
    expect(computed?.parentSpanId, describeSpans(receiver.trace(traceId))).toBe(processed.spanId);
    expect(
      receiver
        .trace(traceId)
        .map((s) => s.spanId)
        .sort(),
      describeSpans(receiver.trace(traceId)),
    ).toEqual([send.spanId, processed.spanId, computed!.spanId].sort());
    expect(receiver.requests.filter((r) => r.status !== 200)).toEqual([]);
  });
}

test("a Node client under instrumentation-amqplib → fibrpc serve: serve's span in that client's trace", async () => {
  const queue = uniqueQueue("fibrpc_trace");
  const name = services();
  const server = await startServe(["--queue", queue, "--workers", "1"], {
    ...receiver.env("http/protobuf"),
    OTEL_SERVICE_NAME: name.serve,
  });
  const client = await runNodeRpcClient(queue, [30], { ...receiver.env("http/json"), OTEL_SERVICE_NAME: name.node });
  expect(client).toMatchObject({ code: 0, results: ["832040"] });
  expect(await server.stop()).toBe(0);
  const spans = await receiver.waitForSpans((all) => {
    const publish = of(all, name.node).find((s) => s.kind === "PRODUCER");
    const served = publish && childOf(all, name.serve, publish);
    const reply = served && of(all, name.node).find((s) => s.kind === "CONSUMER" && s.traceId === publish.traceId);
    return !!reply;
  }, 10_000);
  const publish = of(spans, name.node).find((s) => s.kind === "PRODUCER")!;
  expect(publish.parentSpanId).toBeUndefined();
  const trace = receiver.trace(publish.traceId);
  const served = of(trace, name.serve);
  expect(served, describeSpans(spans)).toHaveLength(1);
  const processed = served[0]!;
  expect(processed).toMatchObject({
    traceId: publish.traceId,
    name: `process ${queue}`,
    kind: "CONSUMER",
    parentSpanId: publish.spanId,
    links: [{ traceId: publish.traceId, spanId: publish.spanId }],
    status: { code: "UNSET" },
    protocol: "http/protobuf",
  });
  expectMessaging(processed, queue, "process");
  expect(processed.attributes).toMatchObject({ "fibrpc.n": 30, "fibrpc.fate": "computed" });
  // The Node client's correlation id (the instrumentation's older attribute name) is serve's conversation id.
  expect(publish.attributes["messaging.conversation_id"]).toBeString();
  expect(processed.attributes["messaging.message.conversation_id"]).toBe(
    publish.attributes["messaging.conversation_id"]!,
  );
  // serve put its own context in the reply: the client's process span of it is under serve's.
  const replied = of(trace, name.node).find((s) => s.kind === "CONSUMER")!;
  expect(replied.parentSpanId, describeSpans(trace)).toBe(processed.spanId);
  // Nothing else of anybody's in that trace but serve's compute step, under its process span.
  const computed = trace.find((s) => s.name === "compute fib");
  expect(computed?.parentSpanId, describeSpans(trace)).toBe(processed.spanId);
  expect(trace.map((s) => s.spanId).sort(), describeSpans(trace)).toEqual(
    [publish.spanId, processed.spanId, replied.spanId, computed!.spanId].sort(),
  );
});

test("fibrpc call → a Node server under instrumentation-amqplib: its process span in fibrpc's trace", async () => {
  const queue = uniqueQueue("fibrpc_trace");
  const name = services();
  const server = await startNodeRpcServer(queue, { ...receiver.env("http/json"), OTEL_SERVICE_NAME: name.node });
  const called = await run(["call", "--queue", queue, "--json", "30"], {
    ...receiver.env("http/protobuf"),
    OTEL_SERVICE_NAME: name.call,
  });
  expect(called.code, called.stderr).toBe(0);
  expect(jsonLines(called.stdout)[0]!.result).toBe("832040");
  const traceId = traceIdOf(called.stdout);
  const send = sendSpan(receiver.spans, name.call, traceId);
  expect(send).toMatchObject({ name: `send ${queue}`, kind: "PRODUCER", status: { code: "UNSET" } });
  const spans = await receiver.waitForSpans((all) => {
    const processed = of(all, name.node).find((s) => s.kind === "CONSUMER" && s.traceId === traceId);
    // and the reply's publish, under it
    return !!processed && of(all, name.node).some((s) => s.parentSpanId === processed.spanId);
  }, 10_000);
  const processed = of(spans, name.node).find((s) => s.kind === "CONSUMER" && s.traceId === traceId)!;
  expect(processed.name).toBe(`${queue} process`);
  expect(processed.parentSpanId, describeSpans(receiver.trace(traceId))).toBe(send.spanId);
  // The correlation id fibrpc sent is the one the Node server saw and answered with.
  expect(processed.attributes["messaging.conversation_id"]).toBe(send.attributes["messaging.message.conversation_id"]!);
  const reply = of(spans, name.node).find((s) => s.parentSpanId === processed.spanId)!;
  expect(reply).toMatchObject({ traceId, kind: "PRODUCER" });
  expect(await server.stop()).toBe(0);
});

test("a timeout shows as such: the send span ends in error, error.type TIMEOUT, and is delivered as call exits", async () => {
  const queue = uniqueQueue("fibrpc_trace");
  const name = services();
  // A consumer that takes the request and never answers.
  const { ch, first } = await firstRequestOn(queue);
  const called = await run(["call", "--queue", queue, "--json", "--timeout", "300ms", "5"], {
    ...receiver.env("http/protobuf"),
    OTEL_SERVICE_NAME: name.call,
  });
  expect(called.code, called.stderr).toBe(75);
  const [line] = jsonLines(called.stdout);
  expect(line).toMatchObject({ n: 5, error: { code: "TIMEOUT" } });
  const traceId = line!.trace_id;
  const send = sendSpan(receiver.spans, name.call, traceId);
  expect(send).toMatchObject({
    name: `send ${queue}`,
    kind: "PRODUCER",
    status: { code: "ERROR", message: "TIMEOUT" },
  });
  expectMessaging(send, queue, "send");
  expect(send.attributes).toMatchObject({ "fibrpc.n": 5, "error.type": "TIMEOUT" });
  // The request carried the send span's context (what any server would have continued).
  const request = await within(first, 5_000, "the request's delivery");
  expect(request.properties.headers?.traceparent).toBe(`00-${traceId}-${send.spanId}-01`);
  ch.ack(request);
});

test("a timeout the server answers late: its process span is still in the caller's trace, under the send span", async () => {
  const queue = uniqueQueue("fibrpc_trace");
  const name = services();
  // The test build holds fib(25) until released: the call times out while serve is surely at it.
  const hold = new Hold(25);
  const server = await startServe(["--queue", queue, "--workers", "1"], {
    ...receiver.env("http/protobuf"),
    OTEL_SERVICE_NAME: name.serve,
    FIBRPC_TEST_FAULTS: hold.faults(),
  });
  const calling = run(["call", "--queue", queue, "--json", "--timeout", "500ms", "25"], {
    ...receiver.env("http/protobuf"),
    OTEL_SERVICE_NAME: name.call,
  });
  await hold.next();
  const heldFrom = performance.now();
  const called = await calling;
  const heldMs = performance.now() - heldFrom;
  hold.releaseAll();
  expect(called.code, called.stderr).toBe(75);
  const [line] = jsonLines(called.stdout);
  expect(line).toMatchObject({ n: 25, error: { code: "TIMEOUT" } });
  const send = sendSpan(receiver.spans, name.call, line!.trace_id);
  expect(send).toMatchObject({ status: { code: "ERROR", message: "TIMEOUT" } });
  expect(send.attributes).toMatchObject({ "fibrpc.n": 25, "error.type": "TIMEOUT" });

  expect(await server.stop()).toBe(0);
  const spans = await receiver.waitForSpans((all) => !!childOf(all, name.serve, send), 10_000);
  const processed = childOf(spans, name.serve, send)!;
  expect(processed).toMatchObject({ links: [{ traceId: send.traceId, spanId: send.spanId }] });
  expect(processed.attributes).toMatchObject({ "fibrpc.n": 25, "fibrpc.fate": "computed" });
  // Released only after call had given up: the span covers the whole hold (durations are measured
  // on each process's monotonic clock, so this holds across processes).
  expect(processed.durationMs).toBeGreaterThan(heldMs);
});

test("no queue at all: the send span ends in error, error.type QUEUE_NOT_FOUND, the trace id printed", async () => {
  const queue = uniqueQueue("fibrpc_trace"); // never declared
  const name = services();
  const called = await run(["call", "--queue", queue, "--json", "5"], {
    ...receiver.env("http/json"),
    OTEL_SERVICE_NAME: name.call,
  });
  expect(called.code, called.stderr).toBe(69);
  const [line] = jsonLines(called.stdout);
  expect(line).toMatchObject({ n: 5, error: { code: "QUEUE_NOT_FOUND" } });
  const send = sendSpan(receiver.spans, name.call, line!.trace_id);
  expect(send).toMatchObject({ name: `send ${queue}`, status: { code: "ERROR", message: "QUEUE_NOT_FOUND" } });
  expect(send.attributes).toMatchObject({ "fibrpc.n": 5, "error.type": "QUEUE_NOT_FOUND" });
});

/**
 * With a queue but no consumer, call exits 69 NO_CONSUMER, though the request was published already,
 * with its traceparent: its send span says NO_CONSUMER too (the calls still in flight end with call's
 * own error, not CONNECTION_LOST), and the --json line carries that span's trace id.
 */
test("no server on the queue: the send span says NO_CONSUMER, and call --json prints its trace id", async () => {
  const queue = uniqueQueue("fibrpc_trace");
  const name = services();
  const { ch } = await rawChannel();
  await ch.assertQueue(queue, { durable: true });
  const called = await run(["call", "--queue", queue, "--json", "5"], {
    ...receiver.env("http/json"),
    OTEL_SERVICE_NAME: name.call,
  });
  expect(called.code, called.stderr).toBe(69);
  const line = JSON.parse(called.stdout.trim());
  expect(line).toMatchObject({ n: 5, error: { code: "NO_CONSUMER" } });
  // The request went out (it waits in the queue until its expiration), with its span's context.
  const sent = of(receiver.spans, name.call);
  expect(sent, describeSpans(receiver.spans)).toHaveLength(1);
  expect(sent[0]!.attributes["fibrpc.n"]).toBe(5);
  expect(sent[0]!).toMatchObject({ status: { code: "ERROR", message: "NO_CONSUMER" } });
  expect(sent[0]!.attributes["error.type"]).toBe("NO_CONSUMER");
  expect(line.trace_id).toBe(sent[0]!.traceId);
});

test("a retry shows as such: a new trace whose send span links to the first attempt's, answered by a server started late", async () => {
  const queue = uniqueQueue("fibrpc_trace");
  const name = services();
  // The first attempt is taken by a consumer that never answers; then it leaves and serve starts:
  // the retry (sent once the first attempt's window is over, about a third of --timeout) is
  // answered by serve. serve has the rest of the 8 s to start in (the retry waits in the queue
  // until it expires), where it takes well under one.
  const { ch, first, consumerTag } = await firstRequestOn(queue);
  // --wait-for-server: call looks for a consumer before it publishes, not alongside (the raw
  // consumer leaves as soon as it has the first attempt: a look after that would find none).
  const calling = run(
    ["call", "--queue", queue, "--json", "--wait-for-server", "--retry", "1", "--timeout", "8s", "5"],
    {
      ...receiver.env("http/json"),
      OTEL_SERVICE_NAME: name.call,
    },
  );
  const request = await within(first, 10_000, "the first attempt's delivery");
  await ch.cancel(consumerTag);
  ch.ack(request);
  const server = await startServe(["--queue", queue, "--workers", "1"], {
    ...receiver.env("http/json"),
    OTEL_SERVICE_NAME: name.serve,
  });
  const called = await calling;
  expect(called.code, called.stderr).toBe(0);
  expect(called.stderr).toMatch(/ INFO {2}fib\(5\): TIMEOUT; retrying in \d+ ms \(retry 1\/1\)\n$/);
  const [line] = jsonLines(called.stdout);
  expect(line).toMatchObject({ n: 5, result: "5" });
  // --json's trace is the last attempt's.
  const retryTrace = line!.trace_id;
  const [, firstTrace, firstSpan] = String(request.properties.headers?.traceparent).split("-");
  expect(firstTrace).toMatch(/^[0-9a-f]{32}$/);
  expect(firstTrace).not.toBe(retryTrace);

  const attempt1 = sendSpan(receiver.spans, name.call, firstTrace!);
  expect(attempt1).toMatchObject({
    spanId: firstSpan,
    name: `send ${queue}`,
    links: [],
    status: { code: "ERROR", message: "TIMEOUT" },
  });
  expect(attempt1.attributes).toMatchObject({ "fibrpc.n": 5, "error.type": "TIMEOUT" });
  expect(attempt1.attributes["fibrpc.attempt"]).toBeUndefined();
  const attempt2 = sendSpan(receiver.spans, name.call, retryTrace);
  expect(attempt2).toMatchObject({
    name: `send ${queue}`,
    kind: "PRODUCER",
    parentSpanId: undefined,
    links: [{ traceId: firstTrace, spanId: attempt1.spanId, attributes: { "fibrpc.link": "retry-of" } }],
    status: { code: "UNSET" },
  });
  expectMessaging(attempt2, queue, "send");
  expect(attempt2.attributes).toMatchObject({ "fibrpc.n": 5, "fibrpc.attempt": 2 });
  // A retry repeats the call: the same correlation id.
  expect(attempt2.attributes["messaging.message.conversation_id"]).toBe(
    attempt1.attributes["messaging.message.conversation_id"]!,
  );
  expect(of(receiver.spans, name.call)).toHaveLength(2);

  expect(await server.stop()).toBe(0);
  const spans = await receiver.waitForSpans((all) => !!childOf(all, name.serve, attempt2), 10_000);
  expect(childOf(spans, name.serve, attempt2)!.attributes).toMatchObject({ "fibrpc.n": 5, "fibrpc.fate": "computed" });
  // serve never saw the first attempt.
  expect(of(spans, name.serve), describeSpans(of(spans, name.serve))).toHaveLength(1);
});

test("a remote error shows as such: N_TOO_LARGE, the send span in error, the process span's fate refused", async () => {
  const queue = uniqueQueue("fibrpc_trace");
  const name = services();
  const server = await startServe(["--queue", queue, "--workers", "1", "--max-n", "100"], {
    ...receiver.env("http/protobuf"),
    OTEL_SERVICE_NAME: name.serve,
  });
  const called = await run(["call", "--queue", queue, "--json", "1000"], {
    ...receiver.env("http/protobuf"),
    OTEL_SERVICE_NAME: name.call,
  });
  expect(called.code, called.stderr).toBe(76);
  const [line] = jsonLines(called.stdout);
  expect(line).toMatchObject({ n: 1000, error: { code: "N_TOO_LARGE" } });
  const send = sendSpan(receiver.spans, name.call, line!.trace_id);
  expect(send).toMatchObject({ name: `send ${queue}`, status: { code: "ERROR", message: "error reply" } });
  expect(send.attributes).toMatchObject({ "fibrpc.n": 1000, "error.type": "N_TOO_LARGE" });

  expect(await server.stop()).toBe(0);
  const spans = await receiver.waitForSpans((all) => !!childOf(all, name.serve, send), 10_000);
  const processed = childOf(spans, name.serve, send)!;
  expect(processed).toMatchObject({
    name: `process ${queue}`,
    kind: "CONSUMER",
    links: [{ traceId: send.traceId, spanId: send.spanId }],
    // A refused request is the caller's error, not the server's: no error status there.
    status: { code: "UNSET" },
  });
  expectMessaging(processed, queue, "process");
  expect(processed.attributes).toMatchObject({ "fibrpc.fate": "refused", "error.type": "N_TOO_LARGE" });
});

test("call --json prints, for each n, the trace id the receiver got with that n's spans", async () => {
  const queue = uniqueQueue("fibrpc_trace");
  const name = services();
  const server = await startServe(["--queue", queue, "--workers", "1", "--max-n", "100"], {
    ...receiver.env("http/json"),
    OTEL_SERVICE_NAME: name.serve,
  });
  const called = await run(["call", "--queue", queue, "--json", "10", "20", "1000", "30"], {
    ...receiver.env("http/json"),
    OTEL_SERVICE_NAME: name.call,
  });
  expect(called.code, called.stderr).toBe(76);
  const lines = jsonLines(called.stdout);
  expect(lines.map((l) => l.n)).toEqual([10, 20, 1000, 30]);
  expect(new Set(lines.map((l) => l.trace_id)).size).toBe(4);
  expect(await server.stop()).toBe(0);
  const spans = await receiver.waitForSpans((all) => of(all, name.serve).length === 4, 10_000);
  for (const line of lines) {
    const send = sendSpan(spans, name.call, line.trace_id);
    expect(send.attributes["fibrpc.n"]).toBe(line.n);
    const processed = childOf(spans, name.serve, send);
    expect(processed, describeSpans(spans)).toBeDefined();
    expect(processed!.attributes["fibrpc.fate"]).toBe(line.n === 1000 ? "refused" : "computed");
  }
});

test("a redelivered request stays in the caller's trace: the copy put back and the one computed are under its send span", async () => {
  const queue = uniqueQueue("fibrpc_trace");
  const name = services();
  const { ch, first } = await firstRequestOn(queue);
  // --wait-for-server: call looks for a consumer before it publishes, not alongside (this one leaves
  // as soon as it has the request: a look after that would find none).
  const calling = run(["call", "--queue", queue, "--json", "--wait-for-server", "--timeout", "15s", "9"], {
    ...receiver.env("http/json"),
    OTEL_SERVICE_NAME: name.call,
  });
  await within(first, 10_000, "the request's first delivery");
  // The consumer goes without acking: the broker puts the request back, marked redelivered.
  await ch.close();
  const serve = await startServe(["--queue", queue, "--workers", "1"], {
    ...receiver.env("http/json"),
    OTEL_SERVICE_NAME: name.serve,
  });
  const called = await calling;
  expect(called.code, called.stderr).toBe(0);
  const { trace_id } = JSON.parse(called.stdout);
  expect(await serve.stop()).toBe(0);
  const inTrace = (spans: readonly OtlpSpan[], service: string) =>
    of(spans, service).filter((s) => s.traceId === trace_id);
  const spans = await receiver.waitForSpans((all) => inTrace(all, name.serve).length >= 2, 10_000);
  const [send] = inTrace(spans, name.call);
  const served = inTrace(spans, name.serve);
  // A classic queue keeps no count: serve puts a copy back that carries one (and the caller's context), then computes it.
  expect(served.map((s) => s.attributes["fibrpc.fate"]).sort(), describeSpans(spans)).toEqual([
    "computed",
    "republished",
  ]);
  for (const span of served) expect(span.parentSpanId).toBe(send!.spanId);
  const republished = served.find((s) => s.attributes["fibrpc.fate"] === "republished")!;
  expect(republished.attributes["fibrpc.redelivered"]).toBe(true);
});
