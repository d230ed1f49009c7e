/**
 * The one door to OpenTelemetry: with tracing off (no settings) nothing is imported; with it on,
 * sdk.ts and the exporter of the configured protocol are loaded, here, with `await import` of
 * sdk.ts's URL (paths.ts SDK_URL: a separate entrypoint of the compiled binary, whose specifier
 * the bundler does not follow), so that a
 * `fibrpc call` without tracing pays neither their loading nor their start-up, nor the size of
 * their code in the bundle it starts from.
 */
import type { Logger } from "../log.ts";
import type * as Sdk from "./sdk.ts";
import type { TracingConfig, TracingSettings } from "./settings.ts";
import type { Tracer } from "./tracer.ts";

export interface StartOptions {
  log: Logger;
  /** One export's time limit (tracer.ts: SERVE_EXPORT_TIMEOUT_MS, CALL_EXPORT_TIMEOUT_MS). */
  exportTimeoutMs: number;
  /** How an export failure is said: on `log` unless given (a serve worker tells its supervisor). */
  warn?: (line: string) => void;
  /**
   * sdk.ts's URL, paths.ts SDK_URL as the main thread computes it: a worker is sent it (in a
   * compiled binary, import.meta.url in the worker's bundle is the worker's, not cli.ts's).
   */
  sdk: string;
}

/** The run's tracer, or undefined when tracing is off or could not start (said as a warning). */
export async function startTracer(
  settings: TracingSettings | undefined,
  { log, exportTimeoutMs, warn = (line) => log.warn(line), sdk }: StartOptions,
): Promise<Tracer | undefined> {
  if (settings === undefined) return undefined;
  try {
    const { createTracer }: typeof Sdk = await import(sdk);
    return await createTracer(settings, warn, exportTimeoutMs);
  } catch (err) {
    // Through `warn`: serve's workers send it to their supervisor, which says it once for the process.
    warn(`tracing is off: it could not start (${err instanceof Error ? err.message : String(err)})`);
    return undefined;
  }
}

/** What was wrong in the OTEL_* variables, one warning each (by the process that reads them). */
export function warnTracingProblems(config: TracingConfig, log: Logger): void {
  for (const problem of config.problems) log.warn(problem);
}
