/** What several commands make of their resolved options (options.ts): where to connect, the logger, the client. */
import { readFileSync } from "node:fs";
import { usageError } from "../errors.ts";
import { createLogger, type Logger } from "../log.ts";
import type { Options } from "../options.ts";
import type { BrokerTarget } from "../rpc/broker.ts";
import type { ClientOptions, ReplyQueueMode } from "../rpc/client.ts";
import type { RunContext } from "./_run.ts";
import { SDK_URL } from "../paths.ts";
import { startTracer, warnTracingProblems } from "../tracing/start.ts";
import { CALL_EXPORT_TIMEOUT_MS, type Tracer } from "../tracing/tracer.ts";

type BrokerOptions = Pick<Options<"call">, "url" | "queue" | "tlsCa" | "tlsCert" | "tlsKey">;

function readPem(flag: string, path: string | undefined): Buffer | undefined {
  if (path === undefined) return undefined;
  try {
    return readFileSync(path);
  } catch (err) {
    throw usageError(`cannot read --${flag} ${JSON.stringify(path)}: ${(err as Error).message}`);
  }
}

/** Where to connect: the broker URLs, in the order they are tried, and the TLS files' contents. */
export function brokerTarget(o: BrokerOptions): BrokerTarget {
  const { tlsCa, tlsCert, tlsKey } = o;
  const tls = { ca: readPem("tls-ca", tlsCa), cert: readPem("tls-cert", tlsCert), key: readPem("tls-key", tlsKey) };
  return { urls: o.url, tls };
}

/** The run's logger: its level and format, its secrets masked, colored unless NO_COLOR. */
export function loggerOf(o: Pick<Options<"call">, "logLevel" | "logFormat">, run: RunContext): Logger {
  return createLogger({ level: o.logLevel, format: o.logFormat, masker: run.masker, noColor: run.env.noColor });
}

/** call's and bench's client: text requests on the options' queue, with the run's outlet and confirms. */
export function clientOptionsOf(
  o: BrokerOptions & Pick<Options<"call">, "timeout">,
  run: RunContext,
  log: Logger,
  replyQueue: ReplyQueueMode,
): ClientOptions {
  const { outlet, publisherConfirms } = run.env;
  const broker = brokerTarget(o);
  return { broker, queue: o.queue, replyQueue, format: "text", timeoutMs: o.timeout, log, publisherConfirms, outlet };
}

/**
 * A calling command's tracer (OTEL_* variables, tracing/settings.ts), their problems said first; undefined
 * when tracing is off, and then no OpenTelemetry module is loaded (tracing/start.ts).
 */
export async function tracerOf(run: RunContext, log: Logger): Promise<Tracer | undefined> {
  warnTracingProblems(run.env.tracing, log);
  return startTracer(run.env.tracing.settings, { log, exportTimeoutMs: CALL_EXPORT_TIMEOUT_MS, sdk: SDK_URL.href });
}
