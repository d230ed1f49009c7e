/**
 * `fibrpc bench` traces its calls when tracing is configured (issue 21, point 1), through the same
 * client as `call`, sampled per OTEL_TRACES_SAMPLER: with parentbased_traceidratio at 0.5, some calls
 * and not all have a send span, each sampled call's trace has serve's process span under it, and
 * serve (following the caller's decision) records no span of the others. bench exits with its spans
 * exported (a bounded wait), and a collector that cannot be reached is one warning, not failed calls.
 * The compiled binary runs from `/`, exporting to the tests' OTLP receiver. No speed is asserted.
 */
import { afterAll, expect, test } from "bun:test";
import { cleanupAfterFile, run, startServe, uniqueQueue } from "../helpers.ts";
import { describeSpans, startOtlpReceiver, unreachableEndpoint, type OtlpSpan } from "../otlp-receiver.ts";

cleanupAfterFile();

const receiver = startOtlpReceiver();
afterAll(() => receiver.stop());

const CALLS = 400;

/** A service's messaging spans (send, process), its internal steps (serve's "compute fib") aside. */
const of = (spans: readonly OtlpSpan[], service: string) =>
  spans.filter((s) => s.resource["service.name"] === service && s.kind !== "INTERNAL");

test("bench samples its calls at OTEL_TRACES_SAMPLER_ARG; each sampled call's trace has serve's process span", async () => {
  const queue = uniqueQueue("fibrpc_trace_bench");
  const tag = crypto.randomUUID().slice(0, 8);
  const name = { bench: `fibrpc-bench-${tag}`, serve: `fibrpc-serve-${tag}` };
  // serve's sampler is the default (parentbased_always_on): it follows each caller's decision.
  const server = await startServe(["--queue", queue, "--workers", "2"], {
    ...receiver.env("http/protobuf"),
    OTEL_SERVICE_NAME: name.serve,
  });
  const benched = await run(
    ["bench", "--queue", queue, "--requests", String(CALLS), "--concurrency", "20", "--n", "0-90", "--json"],
    {
      ...receiver.env("http/protobuf"),
      OTEL_SERVICE_NAME: name.bench,
      OTEL_TRACES_SAMPLER: "parentbased_traceidratio",
      OTEL_TRACES_SAMPLER_ARG: "0.5",
    },
  );
  expect(benched.code, benched.stderr).toBe(0);
  expect(JSON.parse(benched.stdout)).toMatchObject({ calls: CALLS, ok: CALLS, errors: {} });
  expect(benched.stderr).not.toContain("could not export");

  // bench exits with its spans exported: they are here already, not on their way.
  const sends = of(receiver.spans, name.bench);
  expect(sends.every((s) => s.kind === "PRODUCER" && s.name === `send ${queue}`)).toBe(true);
  // Some calls sampled, not all (with 0.5, none or all of 400 has odds of 2^-400 each).
  expect(sends.length, describeSpans(sends)).toBeGreaterThan(0);
  expect(sends.length).toBeLessThan(CALLS);
  // One span per sampled call: correlation ids are not repeated.
  const conversations = new Set(sends.map((s) => s.attributes["messaging.message.conversation_id"]));
  expect(conversations.size).toBe(sends.length);

  expect(await server.stop()).toBe(0); // serve flushes on drain
  const processOf = (spans: readonly OtlpSpan[], send: OtlpSpan) =>
    of(spans, name.serve).find(
      (s) => s.traceId === send.traceId && s.parentSpanId === send.spanId && s.kind === "CONSUMER",
    );
  const spans = await receiver.waitForSpans((all) => sends.every((send) => processOf(all, send)), 10_000);
  for (const send of sends) expect(processOf(spans, send)?.name).toBe(`process ${queue}`);
  // serve followed the calls not sampled too: no process span outside the sampled calls' traces.
  const sampledTraces = new Set(sends.map((s) => s.traceId));
  const served = of(spans, name.serve);
  expect(
    served.filter((s) => !sampledTraces.has(s.traceId)),
    describeSpans(served),
  ).toEqual([]);
  expect(served.length).toBe(sends.length);
});

test("bench with a collector that cannot be reached: every call answered, one warning", async () => {
  const queue = uniqueQueue("fibrpc_trace_bench");
  const server = await startServe(["--queue", queue, "--workers", "1"]);
  // Credentials in the endpoint (user info, a token in the query) never reach the warning.
  const endpoint = new URL(`${unreachableEndpoint()}/v1/traces?token=s3cretTok`);
  endpoint.username = "collector";
  endpoint.password = "s3cretPw";
  const benched = await run(["bench", "--queue", queue, "--requests", "1200", "--concurrency", "20", "--json"], {
    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: endpoint.href,
  });
  expect(benched.code, benched.stderr).toBe(0);
  expect(JSON.parse(benched.stdout)).toMatchObject({ calls: 1200, ok: 1200, errors: {} });
  // 1200 spans are at least three exports (512 each): the failures are said once.
  expect(benched.stderr.match(/could not export spans/g), benched.stderr).toHaveLength(1);
  expect(benched.stderr).toContain(`could not export spans to ${endpoint.origin}/v1/traces?…: `);
  expect(benched.stderr).not.toMatch(/s3cret|collector@/);
  expect(await server.stop()).toBe(0);
});
