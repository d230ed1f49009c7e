/** What several commands make of their resolved options (options.ts): where to connect, the logger, the client. */
import { createPrivateKey, X509Certificate } from "node:crypto";
import { usageError } from "../errors.ts";
import { readSmallFile } from "../small-file.ts";
import { quote } from "../printable.ts";
import { createLogger, type Logger } from "../log.ts";
import type { Options } from "../options.ts";
import type { BrokerTarget } from "../rpc/broker.ts";
import type { ClientOptions, ReplyQueueMode } from "../rpc/client.ts";
import type { RunContext } from "./_run.ts";
import { SDK_URL } from "../paths.ts";
import { startTracer, warnTracingProblems } from "../tracing/start.ts";
import { CALL_EXPORT_TIMEOUT_MS, type Tracer } from "../tracing/tracer.ts";

type BrokerOptions = Pick<Options<"call">, "url" | "queue" | "tlsCa" | "tlsCert" | "tlsKey">;

/**
 * A TLS file's contents, checked before any connection: a file that holds no PEM certificate (or
 * key) is the user's to fix (exit 64), not a broker that cannot be reached (68, which the TLS
 * library's error would otherwise become, and which serve would retry forever).
 */
function readPem(flag: string, path: string | undefined, holds: "certificate" | "private key"): Buffer | undefined {
  if (path === undefined) return undefined;
  let pem: Buffer;
  try {
    // 4 MiB: twenty times a system's whole CA bundle; /dev/zero given by mistake is refused, not read on.
    pem = readSmallFile(path, 4 << 20);
  } catch (err) {
    throw usageError(`cannot read --${flag} ${quote(path)}: ${(err as Error).message}`);
  }
  // X509Certificate also takes DER, which TLS then refuses (as "broker unreachable"): PEM's armour first.
  const armour =
    holds === "private key" ? /-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----/ : /-----BEGIN [A-Z0-9 ]*CERTIFICATE-----/;
  try {
    if (!armour.test(pem.toString("latin1"))) throw new Error("no PEM block found");
    if (holds === "private key") createPrivateKey(pem);
    else new X509Certificate(pem);
  } catch (err) {
    const message = (err as Error).message;
    const why = /NO_START_LINE|no start line/i.test(message) ? "no PEM block found" : message;
    const give = holds === "private key" ? "an unencrypted private key" : "a certificate";
    throw usageError(`--${flag} ${quote(path)} is not a usable PEM ${holds} (${why}); give ${give} in PEM`);
  }
  return pem;
}

/** Where to connect: the broker URLs, in the order they are tried, and the TLS files' contents. */
export function brokerTarget(o: BrokerOptions): BrokerTarget {
  const { tlsCa, tlsCert, tlsKey } = o;
  const tls = {
    ca: readPem("tls-ca", tlsCa, "certificate"),
    cert: readPem("tls-cert", tlsCert, "certificate"),
    key: readPem("tls-key", tlsKey, "private key"),
  };
  // A key of another certificate: the TLS library says only "key values mismatch" at the first connection,
  // which would read as the broker's refusal. (The first certificate of --tls-cert is the client's own.)
  if (tls.cert && tls.key && !new X509Certificate(tls.cert).checkPrivateKey(createPrivateKey(tls.key)))
    throw usageError(
      `--tls-key ${quote(tlsKey!)} is not the private key of --tls-cert ${quote(tlsCert!)}; give the key made with it`,
    );
  return { urls: o.url, tls };
}

/**
 * The run's logger: its level and format, its secrets masked, colored unless NO_COLOR. It warns first of the
 * FIBRPC_* variables that set nothing.
 */
export function loggerOf(
  o: Pick<Options<"call">, "logLevel" | "logFormat">,
  run: RunContext,
  drawsInPlace = false,
): Logger {
  const { masker, env } = run;
  const log = createLogger({ level: o.logLevel, format: o.logFormat, masker, noColor: env.noColor, drawsInPlace });
  for (const warning of run.unusedVariables) log.warn(warning);
  return log;
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
  return { broker, queue: o.queue, replyQueue, timeoutMs: o.timeout, log, publisherConfirms, outlet };
}

/**
 * A calling command's tracer (OTEL_* variables, tracing/settings.ts), their problems said first; undefined
 * when tracing is off, and then no OpenTelemetry module is loaded (tracing/start.ts).
 */
export async function tracerOf(run: RunContext, log: Logger): Promise<Tracer | undefined> {
  warnTracingProblems(run.env.tracing, log);
  return startTracer(run.env.tracing.settings, { log, exportTimeoutMs: CALL_EXPORT_TIMEOUT_MS, sdk: SDK_URL.href });
}
