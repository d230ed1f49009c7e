/**
 * The tests' OTLP receiver (test/otlp-receiver.ts) against OpenTelemetry's own exporters: spans
 * made in-process by the SDK's TracerProvider (@opentelemetry/sdk-trace, the 3.x successor of
 * sdk-trace-base's BasicTracerProvider), exported over OTLP/HTTP in both encodings
 * (@opentelemetry/exporter-trace-otlp-proto and -http), come out of the receiver as they went in:
 * ids, parents, kinds, attributes of every type, events, links, status, resource and scope. And the
 * receiver's error paths: a failing collector (503), a closed port, a body that is not OTLP.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { context, SpanKind, SpanStatusCode, trace, type Span, type SpanContext, TraceFlags } from "@opentelemetry/api";
import { ExportResultCode, type ExportResult } from "@opentelemetry/core";
import { CompressionAlgorithm } from "@opentelemetry/otlp-exporter-base";
import { OTLPTraceExporter as HttpJsonExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { OTLPTraceExporter as HttpProtobufExporter } from "@opentelemetry/exporter-trace-otlp-proto";
import { defaultResource, resourceFromAttributes } from "@opentelemetry/resources";
import {
  InMemorySpanExporter,
  type ReadableSpan,
  SimpleSpanProcessor,
  type SpanExporter,
  TracerProvider,
} from "@opentelemetry/sdk-trace";
import {
  decodeExport,
  type OtlpProtocol,
  type OtlpSpan,
  startOtlpReceiver,
  unreachableEndpoint,
} from "../otlp-receiver.ts";

const receiver = startOtlpReceiver();
afterAll(() => receiver.stop());

const PROTOCOLS: OtlpProtocol[] = ["http/protobuf", "http/json"];

/** OpenTelemetry's OTLP/HTTP exporter for `protocol`, to `url`. */
function exporterFor(
  protocol: OtlpProtocol,
  url: string,
  options: { compression?: CompressionAlgorithm; timeoutMillis?: number } = {},
): SpanExporter {
  const config = { url, ...options };
  return protocol === "http/json" ? new HttpJsonExporter(config) : new HttpProtobufExporter(config);
}

function exportSpans(exporter: SpanExporter, spans: ReadableSpan[]): Promise<ExportResult> {
  return new Promise((resolve) => exporter.export(spans, resolve));
}

/** A span context of another trace, as a link would point to one. */
const LINKED: SpanContext = {
  traceId: "0af7651916cd43dd8448eb211c80319c",
  spanId: "b7ad6b7169203331",
  traceFlags: TraceFlags.SAMPLED,
  traceState: undefined,
};

/**
 * A small trace made by the SDK and kept in memory: a SERVER span with attributes of every type,
 * an event and an error status, and its CONSUMER child with a link to another trace.
 */
function makeTrace(service: string): ReadableSpan[] {
  const memory = new InMemorySpanExporter();
  const provider = new TracerProvider({
    resource: defaultResource().merge(
      resourceFromAttributes({ "service.name": service, "deployment.environment.name": "test" }),
    ),
    spanProcessors: [new SimpleSpanProcessor({ exporter: memory })],
  });
  const tracer = provider.getTracer("otlp-receiver-test", "1.2.3");
  const parent: Span = tracer.startSpan("parent", {
    kind: SpanKind.SERVER,
    attributes: {
      "text.value": "forty-two",
      "int.value": 42,
      "double.value": 4.5,
      "bool.value": true,
      "strings.value": ["a", "b"],
      "ints.value": [1, 2, 3],
    },
  });
  parent.addEvent("computed", { "fibrpc.n": 30 });
  parent.setStatus({ code: SpanStatusCode.ERROR, message: "it failed" });
  const child = tracer.startSpan(
    "child",
    { kind: SpanKind.CONSUMER, links: [{ context: LINKED, attributes: { "link.reason": "retry" } }] },
    trace.setSpan(context.active(), parent),
  );
  child.end();
  parent.end();
  return memory.getFinishedSpans();
}

/** The spans of one service, by name. */
function byName(spans: readonly OtlpSpan[], service: string): Map<string, OtlpSpan> {
  return new Map(spans.filter((s) => s.resource["service.name"] === service).map((s) => [s.name, s]));
}

describe("spans exported by OpenTelemetry's exporters come out as they went in", () => {
  const decoded = new Map<OtlpProtocol, OtlpSpan[]>();
  for (const protocol of PROTOCOLS) {
    test(protocol, async () => {
      const service = `receiver-${protocol.replace("/", "-")}`;
      const made = makeTrace(service);
      expect(made).toHaveLength(2);
      const result = await exportSpans(exporterFor(protocol, receiver.tracesUrl), made);
      expect(result.code).toBe(ExportResultCode.SUCCESS);
      const spans = await receiver.waitForSpans((all) => byName(all, service).size === 2, 5_000);
      const got = byName(spans, service);
      const parentMade = made.find((s) => s.name === "parent")!;
      const childMade = made.find((s) => s.name === "child")!;
      const parent = got.get("parent")!;
      const child = got.get("child")!;

      expect(parent).toMatchObject({
        traceId: parentMade.spanContext().traceId,
        spanId: parentMade.spanContext().spanId,
        parentSpanId: undefined,
        kind: "SERVER",
        attributes: {
          "text.value": "forty-two",
          "int.value": 42,
          "double.value": 4.5,
          "bool.value": true,
          "strings.value": ["a", "b"],
          "ints.value": [1, 2, 3],
        },
        status: { code: "ERROR", message: "it failed" },
        resource: { "service.name": service, "deployment.environment.name": "test" },
        scope: { name: "otlp-receiver-test", version: "1.2.3" },
        links: [],
        protocol,
      });
      expect(parent.resource["telemetry.sdk.language"]).toBe("nodejs");
      expect(parent.events).toHaveLength(1);
      expect(parent.events[0]).toMatchObject({ name: "computed", attributes: { "fibrpc.n": 30 } });
      expect(parent.events[0]!.timeUnixNano).toBeGreaterThanOrEqual(parent.startTimeUnixNano);
      // Nanoseconds since the epoch, not cut to a double's precision.
      const [seconds, nanos] = parentMade.startTime;
      expect(parent.startTimeUnixNano).toBe(BigInt(seconds) * 1_000_000_000n + BigInt(nanos));
      expect(parent.endTimeUnixNano).toBeGreaterThanOrEqual(parent.startTimeUnixNano);
      expect(parent.durationMs).toBeGreaterThanOrEqual(0);

      expect(child).toMatchObject({
        traceId: parent.traceId,
        spanId: childMade.spanContext().spanId,
        parentSpanId: parent.spanId,
        kind: "CONSUMER",
        attributes: {},
        events: [],
        links: [{ traceId: LINKED.traceId, spanId: LINKED.spanId, attributes: { "link.reason": "retry" } }],
        status: { code: "UNSET", message: "" },
      });
      expect(receiver.trace(parent.traceId).map((s) => s.name)).toEqual(["parent", "child"]);

      const request = receiver.requests.findLast((r) => r.protocol === protocol)!;
      expect(request).toMatchObject({ method: "POST", path: "/v1/traces", status: 200, spans: 2 });
      expect(request.contentType).toStartWith(protocol === "http/json" ? "application/json" : "application/x-protobuf");
      decoded.set(protocol, [parent, child]);
    });
  }

  test("both encodings decode to the same spans (but for the protocol and the ids)", () => {
    const [proto, json] = PROTOCOLS.map((p) => decoded.get(p)!);
    expect(proto && json).toBeTruthy();
    const comparable = (s: OtlpSpan) => ({
      name: s.name,
      kind: s.kind,
      attributes: s.attributes,
      events: s.events.map((e) => ({ name: e.name, attributes: e.attributes })),
      links: s.links,
      status: s.status,
      scope: s.scope,
      resource: { ...s.resource, "service.name": "" },
      parent: s.parentSpanId === undefined ? "root" : "child",
    });
    expect(json!.map(comparable)).toEqual(proto!.map(comparable));
  });

  for (const protocol of PROTOCOLS) {
    test(`${protocol}, gzip-compressed`, async () => {
      const service = `receiver-gzip-${protocol.replace("/", "-")}`;
      const exporter = exporterFor(protocol, receiver.tracesUrl, { compression: CompressionAlgorithm.GZIP });
      expect((await exportSpans(exporter, makeTrace(service))).code).toBe(ExportResultCode.SUCCESS);
      const spans = await receiver.waitForSpans((all) => byName(all, service).size === 2, 5_000);
      expect(byName(spans, service).get("child")!.links[0]!.spanId).toBe(LINKED.spanId);
      expect(receiver.requests.findLast((r) => r.protocol === protocol)!.contentEncoding).toBe("gzip");
    });
  }
});

describe("error paths", () => {
  test("failWith(503): every export is refused and none of it kept; failWith(null) accepts again", async () => {
    const service = "receiver-failing";
    receiver.failWith(503);
    try {
      const before = receiver.requests.length;
      // The exporter retries a 503 until its timeout: it gives up within 1.5 s.
      const exporter = exporterFor("http/protobuf", receiver.tracesUrl, { timeoutMillis: 1_500 });
      const result = await exportSpans(exporter, makeTrace(service));
      expect(result.code).toBe(ExportResultCode.FAILED);
      const refused = receiver.requests.slice(before);
      expect(refused.length).toBeGreaterThanOrEqual(1);
      expect(refused.every((r) => r.status === 503 && r.spans === 0)).toBe(true);
      expect(byName(receiver.spans, service).size).toBe(0);
    } finally {
      receiver.failWith(null);
    }
    const exporter = exporterFor("http/protobuf", receiver.tracesUrl);
    expect((await exportSpans(exporter, makeTrace(service))).code).toBe(ExportResultCode.SUCCESS);
    expect(byName(receiver.spans, service).size).toBe(2);
  });

  test("a stopped receiver is unreachable: the export fails", async () => {
    const other = startOtlpReceiver();
    const url = other.tracesUrl;
    await other.stop();
    const exporter = exporterFor("http/json", url, { timeoutMillis: 2_000 });
    expect((await exportSpans(exporter, makeTrace("receiver-stopped"))).code).toBe(ExportResultCode.FAILED);
    expect(other.requests).toHaveLength(0);
  });

  test("unreachableEndpoint() is one where nothing listens", async () => {
    const exporter = exporterFor("http/protobuf", `${unreachableEndpoint()}/v1/traces`, { timeoutMillis: 2_000 });
    expect((await exportSpans(exporter, makeTrace("receiver-unreachable"))).code).toBe(ExportResultCode.FAILED);
  });

  test("a body that is not OTLP is answered 400 and recorded; other paths and types are refused", async () => {
    const post = (path: string, type: string, body: string | Uint8Array) =>
      fetch(`${receiver.endpoint}${path}`, { method: "POST", headers: { "content-type": type }, body });
    expect((await post("/v1/traces", "application/x-protobuf", new Uint8Array([0xff, 0xff, 0xff]))).status).toBe(400);
    expect(receiver.requests.at(-1)!.error).toBeString();
    expect((await post("/v1/traces", "application/json", "{not json")).status).toBe(400);
    expect((await post("/v1/metrics", "application/json", "{}")).status).toBe(404);
    expect((await post("/v1/traces", "text/plain", "{}")).status).toBe(415);
    expect((await fetch(receiver.tracesUrl)).status).toBe(405);
  });

  test("waitForSpans rejects after its bound, saying what it received", async () => {
    const waited = receiver.waitForSpans((spans) => spans.some((s) => s.name === "never sent"), 200);
    expect(waited).rejects.toThrow(
      /did not satisfy the predicate within 200 ms; \d+ export\(s\), \d+ span\(s\):\n {2}(child|parent) \[(SERVER|CONSUMER)\] trace=[0-9a-f]{32} /,
    );
    await waited.catch(() => {});
  });

  test("a predicate that throws on what is missing waits on, and its last error is reported", async () => {
    const waited = receiver.waitForSpans((spans) => {
      const span = spans.find((s) => s.name === "not yet");
      if (!span) throw new Error("no span named 'not yet'");
      return true;
    }, 100);
    expect(waited).rejects.toThrow(/it last threw: no span named 'not yet'/);
    await waited.catch(() => {});
  });
});

test("decodeExport: an empty request is no spans, in both encodings", () => {
  expect(decodeExport(new Uint8Array(), "http/protobuf")).toEqual([]);
  expect(decodeExport(new TextEncoder().encode("{}"), "http/json")).toEqual([]);
});
