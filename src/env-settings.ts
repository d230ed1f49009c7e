/**
 * What a run reads from its environment besides its options (options.ts): two switches for
 * measuring, NO_COLOR, OpenTelemetry's OTEL_* variables (tracing/settings.ts), and the test build's
 * settings (serve/test-build.ts). Read once, where the
 * options are resolved (commands/_run.ts), from the environment given there, and passed down:
 * nothing in rpc/ or serve/ reads process.env, but the test build's one seam (serve/test-build.ts:
 * FIBRPC_TEST_BUILD, a constant in a compiled binary).
 */
import type { OutletMode } from "./rpc/outlet.ts";
import { testSettings, type TestSettings } from "./serve/test-build.ts";
import { tracingConfig, withOtlpEndpoint, type TracingConfig } from "./tracing/settings.ts";

export interface EnvSettings {
  /**
   * FIBRPC_OUTLET=amqplib: amqplib's own publish and ack instead of the frame writer (outlet.ts),
   * for serve and the caller alike: an escape hatch, and how `bun run bench:outlet` measures
   * what the frame writer is worth.
   */
  outlet: OutletMode;
  /**
   * FIBRPC_PUBLISHER_CONFIRMS=off: call and bench publish without publisher confirms, only to
   * measure what they cost (`bun run bench`; rpc/client.ts ClientOptions.publisherConfirms).
   */
  publisherConfirms: boolean;
  /** NO_COLOR set and not empty (no-color.org): logs are not colored, even on a terminal. */
  noColor: boolean;
  /** Traces over OTLP: on only with an endpoint (OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT), see tracing/settings.ts. */
  tracing: TracingConfig;
  test: TestSettings;
}

/** `otlpEndpoint`: the --otlp-endpoint option's value, which wins over the OTEL_* endpoint variables. */
export function envSettings(env: Readonly<Record<string, string | undefined>>, otlpEndpoint?: string): EnvSettings {
  return {
    outlet: env.FIBRPC_OUTLET === "amqplib" ? "amqplib" : "wire",
    publisherConfirms: env.FIBRPC_PUBLISHER_CONFIRMS !== "off",
    noColor: Boolean(env.NO_COLOR),
    tracing: tracingConfig(withOtlpEndpoint(env, otlpEndpoint)),
    test: testSettings(env),
  };
}
