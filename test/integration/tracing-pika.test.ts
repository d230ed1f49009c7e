/**
 * Trace context from a client in another language (issue 21, point 1): a tutorial-style pika client
 * (Debian's python3-pika) that sets `traceparent`/`tracestate` itself. `fibrpc serve`'s process span
 * is in that caller's trace, its parent the caller's span; the reply carries serve's own context in
 * the same trace (flags 00 when the caller's decision was not to sample). A traceparent pika sends as bytes (a field type fibrpc does not take for it) is
 * ignored: the request is answered as any other, in a trace of its own.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { cleanupAfterFile, ROOT, startServe, uniqueQueue, URL, type Server } from "../helpers.ts";
import { startOtlpReceiver, type OtlpReceiver } from "../otlp-receiver.ts";

cleanupAfterFile();

const PYTHON = "/usr/bin/python3"; // Debian's, where python3-pika is installed
const CLIENT = join(ROOT, "test/interop/otel-pika/rpc_client.py");
const TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736";
const SPAN_ID = "00f067aa0ba902b7";

let receiver: OtlpReceiver;
let serve: Server;
const queue = uniqueQueue("fibrpc_trace_pika");

beforeAll(async () => {
  receiver = startOtlpReceiver();
  serve = await startServe(["--queue", queue, "--workers", "1"], receiver.env("http/json"));
});

afterAll(async () => {
  await serve?.stop();
  await receiver?.stop();
});

async function pikaCall(n: number, ...trace: string[]): Promise<{ body: string; headers: Record<string, string> }> {
  const proc = Bun.spawn([PYTHON, CLIENT, URL, queue, String(n), ...trace], { stdout: "pipe", stderr: "pipe" });
  const [stdout, stderr, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  expect(code, stderr).toBe(0);
  return JSON.parse(stdout);
}

describe("a pika client that sets the W3C headers", () => {
  test("serve's process span is in the caller's trace, and the reply carries serve's context", async () => {
    const reply = await pikaCall(30, `00-${TRACE_ID}-${SPAN_ID}-01`, "vendor=pika");
    expect(reply.body).toBe("832040");
    const [span] = await receiver.waitForSpans((spans) => spans.some((s) => s.traceId === TRACE_ID), 20_000);
    const process = receiver.trace(TRACE_ID).find((s) => s.kind === "CONSUMER")!;
    expect(process.parentSpanId).toBe(SPAN_ID);
    expect(process.traceState).toBe("vendor=pika");
    expect(process.attributes["messaging.system"]).toBe("rabbitmq");
    expect(process.attributes["messaging.destination.name"]).toBe(queue);
    expect(span).toBeDefined();
    // The reply: serve's process span, in the caller's trace, with the caller's tracestate.
    expect(reply.headers.traceparent).toBe(`00-${TRACE_ID}-${process.spanId}-01`);
    expect(reply.headers.tracestate).toBe("vendor=pika");
  });

  test("a caller not sampled (flags 00): answered, nothing exported, and the reply says not sampled", async () => {
    const unsampledTrace = "5bf92f3577b34da6a3ce929d0e0e4737";
    const reply = await pikaCall(20, `00-${unsampledTrace}-${SPAN_ID}-00`, "vendor=pika");
    expect(reply.body).toBe("6765");
    // The reply still carries serve's context, flags 00: a caller under OpenTelemetry's amqplib
    // instrumentation extracts it when it consumes the reply, and without it would start a trace of its
    // own there, sampled by its root sampler (docs/benchmarks.md, "A reply without headers": not kept).
    expect(reply.headers.traceparent).toMatch(new RegExp(`^00-${unsampledTrace}-[0-9a-f]{16}-00$`));
    expect(reply.headers.traceparent).not.toContain(SPAN_ID);
    expect(reply.headers.tracestate).toBe("vendor=pika");
    // A sampled call after it: exported in order (one worker, one batch processor), so once its span is
    // here an exported span of the unsampled call would be too.
    const sampledTrace = "6bf92f3577b34da6a3ce929d0e0e4738";
    await pikaCall(21, `00-${sampledTrace}-${SPAN_ID}-01`);
    await receiver.waitForSpans((spans) => spans.some((s) => s.traceId === sampledTrace), 20_000);
    expect(receiver.trace(unsampledTrace)).toEqual([]);
  });

  test("a traceparent sent as bytes is ignored: answered all the same, in a trace of its own", async () => {
    const before = receiver.spans.length;
    const reply = await pikaCall(10, `bytes:00-${TRACE_ID}-${SPAN_ID}-01`);
    expect(reply.body).toBe("55");
    const spans = await receiver.waitForSpans(
      (all) => all.slice(before).some((s) => s.kind === "CONSUMER" && s.attributes["fibrpc.n"] === 10),
      20_000,
    );
    const process = spans.slice(before).find((s) => s.kind === "CONSUMER" && s.attributes["fibrpc.n"] === 10)!;
    expect(process.traceId).not.toBe(TRACE_ID);
    expect(process.parentSpanId).toBeUndefined();
    expect(reply.headers.traceparent).toBe(`00-${process.traceId}-${process.spanId}-01`);
  });
});
