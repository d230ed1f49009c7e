/**
 * The one door to OpenTelemetry: with tracing off (no settings) nothing is imported; with it on,
 * sdk.ts and the exporter of the configured protocol are loaded, here, with `await import`, so
 * that a `fibrpc call` without tracing pays neither their loading nor their start-up.
 */
import type { Logger } from "../log.ts";
import type { TracingConfig, TracingSettings } from "./settings.ts";
import type { Tracer } from "./tracer.ts";

/**
 * The run's tracer, or undefined when tracing is off or could not start (said as a warning).
 * `exportTimeoutMs`: one export's time limit (tracer.ts: SERVE_EXPORT_TIMEOUT_MS, CALL_EXPORT_TIMEOUT_MS);
 * `warn`: how an export failure is said, on `log` unless given (a serve worker tells its supervisor).
 */
export async function startTracer(
  settings: TracingSettings | undefined,
  log: Logger,
  exportTimeoutMs: number,
  warn: (line: string) => void = (line) => log.warn(line),
): Promise<Tracer | undefined> {
  if (settings === undefined) return undefined;
  try {
    const { createTracer } = await import("./sdk.ts");
    return await createTracer(settings, warn, exportTimeoutMs);
  } catch (err) {
    log.warn(`tracing is off: it could not start (${err instanceof Error ? err.message : String(err)})`);
    return undefined;
  }
}

/** What was wrong in the OTEL_* variables, one warning each (by the process that reads them). */
export function warnTracingProblems(config: TracingConfig, log: Logger): void {
  for (const problem of config.problems) log.warn(problem);
}
