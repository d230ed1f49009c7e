/**
 * What several commands do with their resolved options (options.ts): read the TLS files of the
 * broker options, and make the logger.
 */
import { readFileSync } from "node:fs";
import type { BrokerUrl } from "../broker-url.ts";
import { usageError } from "../errors.ts";
import { createLogger, type LogFormat, type Logger, type LogLevelName } from "../log.ts";
import type { BrokerTarget } from "../rpc/broker.ts";
import type { RunContext } from "./_run.ts";

function readPem(flag: string, path: string | undefined): Buffer | undefined {
  if (path === undefined) return undefined;
  try {
    return readFileSync(path);
  } catch (err) {
    throw usageError(`cannot read --${flag} ${JSON.stringify(path)}: ${(err as Error).message}`);
  }
}

/** Where to connect: the broker URLs, in the order they are tried, and the TLS files' contents. */
export function brokerTarget(o: {
  url: readonly BrokerUrl[];
  tlsCa: string | undefined;
  tlsCert: string | undefined;
  tlsKey: string | undefined;
}): BrokerTarget {
  return {
    urls: o.url,
    tls: { ca: readPem("tls-ca", o.tlsCa), cert: readPem("tls-cert", o.tlsCert), key: readPem("tls-key", o.tlsKey) },
  };
}

/** The run's logger: its level and format, its secrets masked, colored unless NO_COLOR. */
export function loggerOf(o: { logLevel: LogLevelName; logFormat: LogFormat }, run: RunContext): Logger {
  return createLogger({ level: o.logLevel, format: o.logFormat, masker: run.masker, noColor: run.env.noColor });
}
