/**
 * Tracing's pure parts: the settings from OTEL_* variables (tracing/settings.ts), what delivery.ts
 * passes on of a request's trace headers, and what the W3C propagator makes of hostile values
 * (tracing/sdk.ts callerOf): a malformed caller context is ignored, never thrown.
 */
import { describe, expect, test } from "bun:test";
import { traceContextOf } from "../../src/rpc/delivery.ts";
import { callerOf, createTracer } from "../../src/tracing/sdk.ts";
import {
  DEFAULT_SERVICE_NAME,
  tracingConfig,
  type TracingSettings,
  withOtlpEndpoint,
} from "../../src/tracing/settings.ts";
import type { ProcessRequest } from "../../src/tracing/tracer.ts";

const ENDPOINT = { OTEL_EXPORTER_OTLP_ENDPOINT: "http://127.0.0.1:4318" };

describe("tracingConfig", () => {
  test("off unless an endpoint is configured", () => {
    expect(tracingConfig({})).toEqual({ settings: undefined, problems: [] });
    expect(tracingConfig({ OTEL_SERVICE_NAME: "x", OTEL_EXPORTER_OTLP_PROTOCOL: "http/json" }).settings).toBe(
      undefined,
    );
    expect(tracingConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: "  " }).settings).toBe(undefined);
  });

  test("OTEL_SDK_DISABLED=true turns it off, whatever else is set", () => {
    expect(tracingConfig({ ...ENDPOINT, OTEL_SDK_DISABLED: "TRUE" }).settings).toBe(undefined);
    expect(tracingConfig({ ...ENDPOINT, OTEL_SDK_DISABLED: "false" }).settings).toBeDefined();
  });

  test("the base endpoint gets /v1/traces; the traces endpoint is used as given", () => {
    expect(tracingConfig(ENDPOINT).settings?.url).toBe("http://127.0.0.1:4318/v1/traces");
    expect(tracingConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: "https://c.example/otlp/" }).settings?.url).toBe(
      "https://c.example/otlp/v1/traces",
    );
    const both = { ...ENDPOINT, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "http://127.0.0.1:9/custom" };
    expect(tracingConfig(both).settings?.url).toBe("http://127.0.0.1:9/custom");
  });

  test("--otlp-endpoint: a base URL gets /v1/traces; the traces URL itself is not doubled; either wins over both variables", () => {
    const env = { ...ENDPOINT, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "http://127.0.0.1:9/custom" };
    const urlOf = (flag: string) => tracingConfig(withOtlpEndpoint(env, flag)).settings?.url;
    expect(urlOf("http://c:4318")).toBe("http://c:4318/v1/traces");
    expect(urlOf("http://c:4318/otlp/")).toBe("http://c:4318/otlp/v1/traces");
    expect(urlOf("http://c:4318/v1/traces")).toBe("http://c:4318/v1/traces");
    expect(urlOf("http://c:4318/v1/traces/")).toBe("http://c:4318/v1/traces");
  });

  test("an endpoint that is not an http(s) URL: off, and said", () => {
    for (const bad of ["localhost:4318", "grpc://h:4317", "::"]) {
      const config = tracingConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: bad });
      expect(config.settings).toBe(undefined);
      expect(config.problems).toHaveLength(1);
    }
  });

  test("protocols: http/protobuf by default, http/json, grpc refused", () => {
    expect(tracingConfig(ENDPOINT).settings?.protocol).toBe("http/protobuf");
    expect(tracingConfig({ ...ENDPOINT, OTEL_EXPORTER_OTLP_PROTOCOL: "http/json" }).settings?.protocol).toBe(
      "http/json",
    );
    const grpc = tracingConfig({ ...ENDPOINT, OTEL_EXPORTER_OTLP_PROTOCOL: "grpc" });
    expect(grpc.settings).toBe(undefined);
    expect(grpc.problems[0]).toContain("grpc");
  });

  test("samplers and their ratio", () => {
    expect(tracingConfig(ENDPOINT).settings).toMatchObject({ sampler: "parentbased_always_on", ratio: 1 });
    const tenth = { ...ENDPOINT, OTEL_TRACES_SAMPLER: "parentbased_traceidratio", OTEL_TRACES_SAMPLER_ARG: "0.1" };
    expect(tracingConfig(tenth).settings).toMatchObject({ sampler: "parentbased_traceidratio", ratio: 0.1 });
    const bad = tracingConfig({ ...ENDPOINT, OTEL_TRACES_SAMPLER: "traceidratio", OTEL_TRACES_SAMPLER_ARG: "2" });
    expect(bad.settings).toMatchObject({ sampler: "traceidratio", ratio: 1 });
    expect(bad.problems).toHaveLength(1);
    const unknown = tracingConfig({ ...ENDPOINT, OTEL_TRACES_SAMPLER: "xray" });
    expect(unknown.settings?.sampler).toBe("parentbased_always_on");
    expect(unknown.problems).toHaveLength(1);
  });

  test("resource attributes, percent-decoded; OTEL_SERVICE_NAME wins; a malformed list is dropped whole", () => {
    const env = { ...ENDPOINT, OTEL_RESOURCE_ATTRIBUTES: "deployment.environment=prod,team=a%2Cb,__proto__=x" };
    expect({ ...tracingConfig(env).settings?.resource }).toEqual({
      "deployment.environment": "prod",
      team: "a,b",
      // A key like any other (a computed key: a literal __proto__ would set the prototype).
      ["__proto__"]: "x",
      "service.name": DEFAULT_SERVICE_NAME,
    });
    const named = { ...env, OTEL_RESOURCE_ATTRIBUTES: "service.name=a", OTEL_SERVICE_NAME: "b" };
    expect(tracingConfig(named).settings?.resource["service.name"]).toBe("b");
    const malformed = tracingConfig({ ...ENDPOINT, OTEL_RESOURCE_ATTRIBUTES: "a=1,b,c=%zz" });
    expect({ ...malformed.settings?.resource }).toEqual({ "service.name": DEFAULT_SERVICE_NAME });
    expect(malformed.problems).toHaveLength(1);
  });

  test("the settings survive a structured clone (they are sent to serve's workers)", () => {
    const { settings } = tracingConfig({ ...ENDPOINT, OTEL_RESOURCE_ATTRIBUTES: "a=1" });
    expect({ ...structuredClone(settings) }).toEqual({ ...settings });
  });
});

const VALID = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

describe("traceContextOf (delivery.ts): strings of a sane length, nothing else", () => {
  test("reads both headers", () => {
    expect(traceContextOf({ traceparent: VALID, tracestate: "a=1" })).toEqual({
      traceparent: VALID,
      tracestate: "a=1",
    });
  });

  test("non-strings, absent tables, and oversized values are ignored", () => {
    const none = { traceparent: undefined, tracestate: undefined };
    for (const headers of [undefined, null, "x", [VALID], { traceparent: Buffer.from(VALID) }, { traceparent: 1 }])
      expect(traceContextOf(headers)).toEqual(none);
    expect(traceContextOf({ traceparent: `${VALID}-${"a".repeat(300)}` })).toEqual(none);
    expect(traceContextOf({ traceparent: VALID, tracestate: "a=".padEnd(10_000, "b") })).toEqual({
      traceparent: VALID,
      tracestate: undefined,
    });
    // Printable ASCII only (a copy put back in the queue carries them as they are).
    expect(traceContextOf({ traceparent: `${VALID.slice(0, 54)}\uFFFD` })).toEqual(none);
    expect(traceContextOf({ traceparent: VALID, tracestate: "a=\u0000" }).tracestate).toBe(undefined);
    // A tracestate without a traceparent means nothing (W3C Trace Context §3.3).
    expect(traceContextOf({ tracestate: "a=1" })).toEqual(none);
  });

  test("own properties only: a prototype planted by a header key is not read", () => {
    const headers = JSON.parse(`{"__proto__": {"traceparent": "${VALID}"}}`);
    expect(traceContextOf(headers).traceparent).toBe(undefined);
  });
});

function request(traceparent: string | undefined, tracestate?: string): ProcessRequest {
  return {
    queue: "q",
    correlationId: "c",
    deliveryTag: 1,
    redelivered: false,
    traceparent,
    tracestate,
    peer: undefined,
  };
}

describe("callerOf (sdk.ts): the W3C propagator's judgement, never a throw", () => {
  test("a valid traceparent is the parent and a link", () => {
    const { parent, links } = callerOf(request(VALID, "vendor=x"));
    expect(links).toHaveLength(1);
    expect(links![0]!.context).toMatchObject({
      traceId: "4bf92f3577b34da6a3ce929d0e0e4736",
      spanId: "00f067aa0ba902b7",
      isRemote: true,
    });
    expect(links![0]!.context.traceState?.get("vendor")).toBe("x");
    expect(parent).toBeDefined();
  });

  test.each([
    ["wrong length", VALID.slice(0, -1)],
    ["not hex", VALID.replace("4bf9", "4bg9")],
    ["upper-case hex", VALID.toUpperCase()],
    ["version ff", `ff${VALID.slice(2)}`],
    ["all-zero trace id", `00-${"0".repeat(32)}-00f067aa0ba902b7-01`],
    ["all-zero span id", `00-4bf92f3577b34da6a3ce929d0e0e4736-${"0".repeat(16)}-01`],
    ["version 00 with more fields", `${VALID}-extra`],
    ["empty", ""],
    ["control characters", `${VALID.slice(0, 20)}\u0000\n${VALID.slice(22)}`],
  ])("%s: ignored (a trace of its own)", (_, traceparent) => {
    expect(callerOf(request(traceparent)).links).toBe(undefined);
  });

  test("a malformed tracestate is dropped, the traceparent kept", () => {
    const { links } = callerOf(request(VALID, "not a list member,,==="));
    expect(links).toHaveLength(1);
  });
});

describe("a span's ids (sdk.ts), for log lines: those its headers carry", () => {
  // Sampled out: nothing is exported, and the ids are there all the same (they travel in the headers).
  const settings: TracingSettings = {
    url: "http://127.0.0.1:9/v1/traces",
    protocol: "http/json",
    sampler: "always_off",
    ratio: 1,
    resource: {},
  };

  test("send and process spans; a process span is in its caller's trace", async () => {
    const warnings: string[] = [];
    const tracer = await createTracer(settings, (w) => warnings.push(w), 100);
    const peer = { address: "127.0.0.1", port: 5672 };
    const send = tracer.send({ queue: "q", correlationId: "c", n: 30, peer });
    expect(send.headers.traceparent).toBe(`00-${send.ids.trace_id}-${send.ids.span_id}-00`);
    const processed = tracer.process(request(send.headers.traceparent));
    expect(processed.headers.traceparent).toBe(`00-${processed.ids.trace_id}-${processed.ids.span_id}-00`);
    expect(processed.ids.trace_id).toBe(send.ids.trace_id);
    expect(processed.ids.span_id).not.toBe(send.ids.span_id);
    // Sampled out: trace_flags says so, as the traceparent's flags do.
    expect([send.ids.trace_flags, processed.ids.trace_flags]).toEqual(["00", "00"]);
    processed.end({ fate: "computed", n: 30 });
    send.end({ ok: true });
    await tracer.shutdown(1_000);
    expect(warnings).toEqual([]);
  });
});
