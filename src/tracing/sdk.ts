/**
 * The Tracer (tracer.ts) on OpenTelemetry's own packages: a TracerProvider with a batch span
 * processor and the OTLP/HTTP exporter of the configured protocol, and the W3C Trace Context
 * propagator. Loaded only by start.ts, and only when tracing is on. Manual spans only: no
 * instrumentation hooks (they patch modules at require time, which a compiled binary does not do).
 *
 * Nothing is registered globally (no global tracer provider, propagator or context manager): the
 * spans are made from this provider's tracer and their contexts passed explicitly, so that each
 * serve worker (a thread of its own) has its own provider, built from the settings it was sent.
 *
 * The SDK reads no OTEL_* variable itself (sdk-trace 3.x does not); the OTLP exporter still reads
 * the ones fibrpc does not resolve (OTEL_EXPORTER_OTLP_[TRACES_]HEADERS, _COMPRESSION, the TLS
 * certificate variables) from the process's environment, and is given what fibrpc resolved (URL,
 * protocol by choice of exporter, time limit), which takes precedence over its own reading.
 */
import {
  isSpanContextValid,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  TraceFlags,
  trace,
  type Attributes,
  type Context,
  type HrTime,
  type Link,
  type Span,
  type SpanContext,
  type TextMapGetter,
  type TextMapSetter,
} from "@opentelemetry/api";
import { ExportResultCode, millisToHrTime, W3CTraceContextPropagator, type ExportResult } from "@opentelemetry/core";
import { defaultResource, resourceFromAttributes } from "@opentelemetry/resources";
import {
  AlwaysOffSampler,
  AlwaysOnSampler,
  BatchSpanProcessor,
  ParentBasedSampler,
  RandomIdGenerator,
  SamplingDecision,
  TraceIdRatioBasedSampler,
  TracerProvider,
  type IdGenerator,
  type ReadableSpan,
  type Sampler,
  type SpanExporter,
} from "@opentelemetry/sdk-trace";
import {
  ATTR_ERROR_TYPE,
  ATTR_SERVER_ADDRESS,
  ATTR_SERVER_PORT,
  ATTR_SERVICE_VERSION,
} from "@opentelemetry/semantic-conventions";
import {
  ATTR_MESSAGING_DESTINATION_NAME,
  ATTR_MESSAGING_MESSAGE_CONVERSATION_ID,
  ATTR_MESSAGING_OPERATION_NAME,
  ATTR_MESSAGING_OPERATION_TYPE,
  ATTR_MESSAGING_RABBITMQ_DESTINATION_ROUTING_KEY,
  ATTR_MESSAGING_RABBITMQ_MESSAGE_DELIVERY_TAG,
  ATTR_MESSAGING_SYSTEM,
} from "@opentelemetry/semantic-conventions/incubating";
import { version } from "../version.ts";
import type { TracingSettings } from "./settings.ts";
import {
  FLUSH_WITHIN_MS,
  TRACEPARENT,
  TRACESTATE,
  type CallEnd,
  type Phase,
  type PhaseName,
  type ProcessEnd,
  type ProcessRequest,
  type ProcessSpan,
  type RetryOf,
  type SendRequest,
  type SendSpan,
  type TraceIds,
  type Tracer,
} from "./tracer.ts";

/** fibrpc's own attributes. */
export const ATTR_FIBRPC_N = "fibrpc.n";
/** A retry's attempt number (2 for the first retry): its span links to the first attempt's. */
export const ATTR_FIBRPC_ATTEMPT = "fibrpc.attempt";
export const ATTR_FIBRPC_FATE = "fibrpc.fate";
/** fib(n)'s decimal digits: on the process span and its compute span. */
export const ATTR_FIBRPC_RESULT_DIGITS = "fibrpc.result.digits";
/** How long the request waited in the queue (ms, from its AMQP timestamp: whole seconds, see process-span.ts). */
export const ATTR_FIBRPC_QUEUE_WAIT_MS = "fibrpc.queue.wait_ms";
/** The process span's children (tracer.ts, PhaseName). */
export const PHASE_SPAN_NAMES = { wait: "wait for turn", compute: "compute fib" } as const;

/** What phase() returns if starting the child span failed: ending it does nothing. */
const NO_PHASE: Phase = { end: () => {} };

/** Fates a server's operator must look at: the span's status is ERROR (a refused request is the caller's). */
const FAILED_FATES: ReadonlySet<string> = new Set(["internal", "poison", "dropped"]);

const setter: TextMapSetter<Record<string, string>> = {
  set: (carrier, key, value) => {
    carrier[key] = value;
  },
};

/** Reads only the two strings delivery.ts handed over: nothing else of a request reaches the propagator. */
const getter: TextMapGetter<ProcessRequest> = {
  keys: () => [TRACEPARENT, TRACESTATE],
  get: (carrier, key) =>
    key === TRACEPARENT ? carrier.traceparent : key === TRACESTATE ? carrier.tracestate : undefined,
};

/** The first attempt's traceparent, as the retry carries it. */
const retryGetter: TextMapGetter<RetryOf> = {
  keys: () => [TRACEPARENT],
  get: (carrier, key) => (key === TRACEPARENT ? carrier.traceparent : undefined),
};

/** `warn`: how an export failure is said (the run's logger; a serve worker's goes to its supervisor, said once). */
export async function createTracer(
  settings: TracingSettings,
  warn: (line: string) => void,
  exportTimeoutMs: number,
): Promise<Tracer> {
  const exporter = new WarningExporter(await exporterFor(settings, exportTimeoutMs), settings.url, warn);
  const sampler = samplerOf(settings);
  const ids = new RandomIdGenerator();
  // The trace id a root span's sampling was decided on (see decide), taken by the SDK as it starts that span.
  let decidedTraceId: string | undefined;
  const idGenerator: IdGenerator = {
    generateTraceId: () => {
      const id = decidedTraceId ?? ids.generateTraceId();
      decidedTraceId = undefined;
      return id;
    },
    generateSpanId: () => ids.generateSpanId(),
  };
  const provider = new TracerProvider({
    resource: defaultResource().merge(
      resourceFromAttributes({ [ATTR_SERVICE_VERSION]: version, ...settings.resource }),
    ),
    sampler,
    idGenerator,
    spanProcessors: [new BatchSpanProcessor({ exporter })],
  });
  const tracer = provider.getTracer("fibrpc", version);
  const propagator = new W3CTraceContextPropagator();

  /**
   * A span not sampled costs the SDK a span object, a context and the propagator's round trip, a
   * few µs a call in a loaded process (docs/benchmarks.md, "Tracing's cost"), for a context only:
   * the configured sampler is asked first, as the SDK would ask it (same context, trace id, name,
   * kind; no sampler fibrpc configures reads attributes or links), and a span it would not record
   * is only its context, written here as the W3C propagator writes it (version 00, flags 00).
   * Otherwise the SDK starts the span, for a root on the trace id the decision was made on.
   */
  const decide = (
    name: string,
    kind: SpanKind,
    parent: Context,
    caller: SpanContext | undefined,
  ): { unsampled: SendSpan & ProcessSpan } | { traceId: string | undefined } => {
    const traceId = caller?.traceId ?? ids.generateTraceId();
    const result = sampler.shouldSample(parent, traceId, name, kind, {}, []);
    if (result.decision !== SamplingDecision.NOT_RECORD) return { traceId: caller ? undefined : traceId };
    const spanId = ids.generateSpanId();
    const headers: Record<string, string> = { [TRACEPARENT]: `00-${traceId}-${spanId}-00` };
    const tracestate = (result.traceState ?? caller?.traceState)?.serialize();
    if (tracestate) headers[TRACESTATE] = tracestate;
    // Its ids still name it in log lines (trace_flags 00: not exported); its phases are nothing.
    const unsampledIds: TraceIds = { trace_id: traceId, span_id: spanId, trace_flags: "00" };
    return { unsampled: { headers, ids: unsampledIds, phase: () => NO_PHASE, end() {} } };
  };
  /** The SDK's span, on the trace id decided on for a root. */
  const start = (
    name: string,
    kind: SpanKind,
    parent: Context,
    links: Link[] | undefined,
    traceId: string | undefined,
    startTime?: HrTime,
  ) => {
    decidedTraceId = traceId;
    try {
      return tracer.startSpan(name, { kind, links, startTime }, parent);
    } finally {
      decidedTraceId = undefined;
    }
  };

  const headersOf = (span: Span): Record<string, string> => {
    const headers: Record<string, string> = {};
    propagator.inject(trace.setSpan(ROOT_CONTEXT, span), headers, setter);
    return headers;
  };

  // A span's attributes are made and set only when it records: a call or delivery not sampled (most
  // of them, at a ratio) costs neither the object nor the SDK's check of each attribute, which it
  // makes before sampling when they are given at the start. No sampler fibrpc configures reads them.
  return {
    send(request: SendRequest): SendSpan {
      let links: Link[] | undefined;
      if (request.retry) {
        const first = trace.getSpanContext(propagator.extract(ROOT_CONTEXT, request.retry, retryGetter));
        if (first && isSpanContextValid(first)) links = [{ context: first, attributes: { "fibrpc.link": "retry-of" } }];
      }
      const name = `send ${request.queue}`;
      const decision = decide(name, SpanKind.PRODUCER, ROOT_CONTEXT, undefined);
      if ("unsampled" in decision) return decision.unsampled;
      const span = start(name, SpanKind.PRODUCER, ROOT_CONTEXT, links, decision.traceId);
      if (span.isRecording()) {
        const attributes: Attributes = {
          ...messaging(request.queue, "send", "send"),
          [ATTR_MESSAGING_MESSAGE_CONVERSATION_ID]: request.correlationId,
          [ATTR_SERVER_ADDRESS]: request.peer.address,
          [ATTR_SERVER_PORT]: request.peer.port,
          [ATTR_FIBRPC_N]: request.n,
        };
        if (request.retry) attributes[ATTR_FIBRPC_ATTEMPT] = request.retry.attempt;
        span.setAttributes(attributes);
      }
      return {
        ids: idsOf(span),
        headers: headersOf(span),
        end(how: CallEnd) {
          if (!how.ok) {
            span.setAttribute(ATTR_ERROR_TYPE, how.code);
            span.setStatus({ code: SpanStatusCode.ERROR, message: how.remote ? "error reply" : how.code });
          }
          span.end();
        },
      };
    },

    process(request: ProcessRequest): ProcessSpan {
      const { parent, links } = callerOf(request, propagator);
      const name = `process ${request.queue}`;
      const decision = decide(name, SpanKind.CONSUMER, parent, trace.getSpanContext(parent));
      if ("unsampled" in decision) return decision.unsampled;
      // One clock for the span and its children: the SDK starts each span at Date.now() (whole ms) and
      // ends it by performance.now(), so a child could read up to 1 ms outside its parent, or before
      // its sibling's end. Anchored to the wall clock once per span, as the SDK does.
      const anchor = Date.now() - performance.now();
      const at = () => millisToHrTime(anchor + performance.now());
      const span = start(name, SpanKind.CONSUMER, parent, links, decision.traceId, at());
      if (span.isRecording()) {
        const attributes: Attributes = {
          ...messaging(request.queue, "process", "process"),
          [ATTR_MESSAGING_RABBITMQ_MESSAGE_DELIVERY_TAG]: request.deliveryTag,
        };
        if (request.correlationId !== undefined)
          attributes[ATTR_MESSAGING_MESSAGE_CONVERSATION_ID] = request.correlationId;
        if (request.peer) {
          attributes[ATTR_SERVER_ADDRESS] = request.peer.address;
          attributes[ATTR_SERVER_PORT] = request.peer.port;
        }
        if (request.redelivered) attributes["fibrpc.redelivered"] = true;
        if (request.queueWaitMs !== undefined) attributes[ATTR_FIBRPC_QUEUE_WAIT_MS] = request.queueWaitMs;
        span.setAttributes(attributes);
      }
      return {
        ids: idsOf(span),
        headers: headersOf(span),
        phase(name: PhaseName): Phase {
          try {
            const child = tracer.startSpan(
              PHASE_SPAN_NAMES[name],
              { kind: SpanKind.INTERNAL, startTime: at() },
              trace.setSpan(parent, span),
            );
            return {
              end(digits?: number) {
                try {
                  if (digits !== undefined) {
                    child.setAttribute(ATTR_FIBRPC_RESULT_DIGITS, digits);
                    span.setAttribute(ATTR_FIBRPC_RESULT_DIGITS, digits);
                  }
                  child.end(at());
                } catch {
                  // Tracing must cost no request its answer (tracer.ts, Phase).
                }
              },
            };
          } catch {
            return NO_PHASE;
          }
        },
        end(how: ProcessEnd) {
          span.setAttribute(ATTR_FIBRPC_FATE, how.fate);
          if (how.n !== undefined) span.setAttribute(ATTR_FIBRPC_N, how.n);
          if (how.error !== undefined) span.setAttribute(ATTR_ERROR_TYPE, how.error);
          if (FAILED_FATES.has(how.fate))
            span.setStatus({ code: SpanStatusCode.ERROR, message: how.error ?? how.fate });
          span.end(at());
        },
      };
    },

    async shutdown(withinMs = FLUSH_WITHIN_MS): Promise<void> {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const flushed = provider.shutdown().then(
        () => true,
        () => true,
      );
      const late = new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(false), withinMs);
      });
      const inTime = await Promise.race([flushed, late]);
      clearTimeout(timer);
      if (!inTime) exporter.failed(`not done within ${withinMs} ms`);
    },
  };
}

/**
 * The caller's context, from the two header values delivery.ts passed on: parent and link (see
 * tracer.ts) when the W3C propagator finds a valid one; else none, and the span starts a trace.
 * A malformed value (wrong length, not hex, version ff, all-zero ids, a tracestate over 512
 * characters or with bad members) is dropped by the propagator; nothing here throws.
 */
export function callerOf(
  request: ProcessRequest,
  propagator = new W3CTraceContextPropagator(),
): { parent: Context; links: Link[] | undefined } {
  if (request.traceparent === undefined) return { parent: ROOT_CONTEXT, links: undefined };
  try {
    const extracted = propagator.extract(ROOT_CONTEXT, request, getter);
    const caller = trace.getSpanContext(extracted);
    if (caller && isSpanContextValid(caller)) return { parent: extracted, links: [{ context: caller }] };
  } catch {
    // A value the propagator chokes on is a value it did not accept: no caller.
  }
  return { parent: ROOT_CONTEXT, links: undefined };
}

/**
 * A span's ids as log lines carry them: a sampled-out span has them too (they travel in the headers all
 * the same), so its lines still name a trace another service may have recorded (the caller, when this
 * sampler is not parent-based); trace_flags "00" says this span was not.
 */
function idsOf(span: Span): TraceIds {
  const { traceId, spanId, traceFlags } = span.spanContext();
  return { trace_id: traceId, span_id: spanId, trace_flags: traceFlags & TraceFlags.SAMPLED ? "01" : "00" };
}

function messaging(queue: string, operation: string, type: string): Attributes {
  // Published to the default exchange with the queue's name as routing key: per rabbitmq.md the
  // destination is the routing key alone (the exchange's name is empty), on the consumer's side
  // too (routing key and queue are the same name, said once).
  return {
    [ATTR_MESSAGING_SYSTEM]: "rabbitmq",
    [ATTR_MESSAGING_OPERATION_NAME]: operation,
    [ATTR_MESSAGING_OPERATION_TYPE]: type,
    [ATTR_MESSAGING_DESTINATION_NAME]: queue,
    [ATTR_MESSAGING_RABBITMQ_DESTINATION_ROUTING_KEY]: queue,
  };
}

function samplerOf({ sampler, ratio }: TracingSettings): Sampler {
  switch (sampler) {
    case "always_on":
      return new AlwaysOnSampler();
    case "always_off":
      return new AlwaysOffSampler();
    case "traceidratio":
      return new TraceIdRatioBasedSampler(ratio);
    case "parentbased_always_on":
      return new ParentBasedSampler({ root: new AlwaysOnSampler() });
    case "parentbased_always_off":
      return new ParentBasedSampler({ root: new AlwaysOffSampler() });
    case "parentbased_traceidratio":
      return new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(ratio) });
  }
}

/** The exporter of the configured protocol, only that one loaded. */
async function exporterFor({ url, protocol }: TracingSettings, timeoutMillis: number): Promise<SpanExporter> {
  const { OTLPTraceExporter } =
    protocol === "http/json"
      ? await import("@opentelemetry/exporter-trace-otlp-http")
      : await import("@opentelemetry/exporter-trace-otlp-proto");
  return new OTLPTraceExporter({ url, timeoutMillis });
}

/**
 * The exporter, with its failures said once: a collector that cannot be reached costs one
 * warning, and the spans of that export (the SDK drops them), never a call.
 */
class WarningExporter implements SpanExporter {
  private warned = false;

  constructor(
    private readonly inner: SpanExporter,
    private readonly url: string,
    private readonly warn: (line: string) => void,
  ) {}

  export(spans: ReadableSpan[], done: (result: ExportResult) => void): void {
    this.inner.export(spans, (result) => {
      if (result.code !== ExportResultCode.SUCCESS) this.failed(result.error?.message ?? "export failed");
      done(result);
    });
  }

  failed(why: string): void {
    if (this.warned) return;
    this.warned = true;
    this.warn(`could not export spans to ${shown(this.url)}: ${why}; spans are dropped (said once)`);
  }

  shutdown(): Promise<void> {
    return this.inner.shutdown();
  }

  forceFlush(): Promise<void> {
    return this.inner.forceFlush?.() ?? Promise.resolve();
  }
}

/** The endpoint without user info or query (a collector's credentials or token may be in either). */
function shown(url: string): string {
  const u = new URL(url);
  return `${u.origin}${u.pathname}${u.search === "" ? "" : "?…"}`;
}
