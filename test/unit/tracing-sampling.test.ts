/**
 * tracing/sdk.ts asks the configured sampler before the SDK starts a span, and a span it would not
 * record is its context only (traceparent written directly, flags 00): the decision is the one the
 * SDK would make on the same trace id, the context the W3C propagator would write, and a caller's
 * trace id and tracestate are kept. No export reaches anything here (an endpoint nothing listens on).
 */
import { afterEach, expect, test } from "bun:test";
import { ROOT_CONTEXT, SamplingDecision } from "@opentelemetry/api";
import { TraceIdRatioBasedSampler } from "@opentelemetry/sdk-trace";
import { createTracer } from "../../src/tracing/sdk.ts";
import type { SamplerName } from "../../src/tracing/settings.ts";
import type { ProcessRequest, Tracer } from "../../src/tracing/tracer.ts";

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-(0[01])$/;
const peer = { address: "127.0.0.1", port: 5672 };
const tracers: Tracer[] = [];
afterEach(async () => {
  for (const t of tracers.splice(0)) await t.shutdown(200);
});

async function tracerWith(sampler: SamplerName, ratio = 1): Promise<Tracer> {
  const settings = { url: "http://127.0.0.1:9/v1/traces", protocol: "http/protobuf" as const, sampler, ratio };
  const tracer = await createTracer({ ...settings, resource: { "service.name": "t" } }, () => {}, 200);
  tracers.push(tracer);
  return tracer;
}

const send = (tracer: Tracer, i = 0) => tracer.send({ queue: "q", correlationId: `c${i}`, n: 1, peer });
const parts = (traceparent: string | undefined) => {
  const m = TRACEPARENT.exec(traceparent ?? "");
  expect(m, String(traceparent)).not.toBeNull();
  return { traceId: m![1]!, spanId: m![2]!, flags: m![3]! };
};
const processOf = (tracer: Tracer, traceparent?: string, tracestate?: string) => {
  const request: ProcessRequest = {
    queue: "q",
    correlationId: "c",
    deliveryTag: 1,
    redelivered: false,
    traceparent,
    tracestate,
    peer,
  };
  return tracer.process(request);
};

test("a call not sampled: a context with flags 00, a new trace each time, nothing to end", async () => {
  const tracer = await tracerWith("always_off");
  const spans = [send(tracer, 1), send(tracer, 2)];
  const [a, b] = spans.map((s) => parts(s.headers.traceparent));
  expect(a!.flags).toBe("00");
  expect(b!.traceId).not.toBe(a!.traceId);
  for (const s of spans) expect(() => s.end({ ok: true })).not.toThrow();
});

test("a ratio: each call's decision is the SDK sampler's on the trace id it carries", async () => {
  const tracer = await tracerWith("parentbased_traceidratio", 0.5);
  const reference = new TraceIdRatioBasedSampler(0.5);
  let sampled = 0;
  for (let i = 0; i < 400; i++) {
    const span = send(tracer, i);
    const { traceId, flags } = parts(span.headers.traceparent);
    const expected = reference.shouldSample(ROOT_CONTEXT, traceId).decision;
    expect(flags).toBe(expected === SamplingDecision.RECORD_AND_SAMPLED ? "01" : "00");
    if (flags === "01") sampled++;
    span.end({ ok: true });
  }
  expect(sampled).toBeGreaterThan(100);
  expect(sampled).toBeLessThan(300);
});

test("a caller not sampled: serve's context keeps its trace and tracestate, a span id of its own, flags 00", async () => {
  const tracer = await tracerWith("parentbased_always_on");
  const caller = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00";
  const span = processOf(tracer, caller, "vendor=a1");
  const own = parts(span.headers.traceparent);
  expect(own).toMatchObject({ traceId: "0af7651916cd43dd8448eb211c80319c", flags: "00" });
  expect(own.spanId).not.toBe("b7ad6b7169203331");
  expect(span.headers.tracestate).toBe("vendor=a1");
  expect(() => span.end({ fate: "computed", n: 1 })).not.toThrow();
});

test("a caller sampled, or none: serve's span records (flags 01), in the caller's trace or a new one", async () => {
  const tracer = await tracerWith("parentbased_always_on");
  const caller = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
  const followed = processOf(tracer, caller);
  expect(parts(followed.headers.traceparent)).toMatchObject({
    traceId: "0af7651916cd43dd8448eb211c80319c",
    flags: "01",
  });
  const root = processOf(tracer);
  const own = parts(root.headers.traceparent);
  expect(own.flags).toBe("01");
  expect(own.traceId).not.toBe("0af7651916cd43dd8448eb211c80319c");
  followed.end({ fate: "computed", n: 1 });
  root.end({ fate: "computed", n: 1 });
});
