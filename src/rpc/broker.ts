/**
 * Where and how to connect: one or more broker URLs (tried in order, with failover) and TLS
 * material. amqplib takes one URL; for serve, whose reconnects are amqplib's built-in recovery,
 * FailoverUrl is the connection target it is given: a URL object whose fields are those of the
 * current broker, moved on to the next one after each failed attempt or lost connection.
 */
import { connect, type ChannelModel, type Options } from "amqplib";
import { displayUrl } from "../config.ts";
import type { FibrpcError } from "../errors.ts";
import { connectError } from "./broker-errors.ts";

export interface TlsFiles {
  ca?: Uint8Array;
  cert?: Uint8Array;
  key?: Uint8Array;
}

export interface BrokerTarget {
  urls: readonly string[];
  tls: TlsFiles;
}

/** amqplib's connection fields for one URL, as amqplib itself reads a URL string. */
export function connectFields(url: string): Options.Connect {
  const u = new URL(url);
  const protocol = u.protocol.replace(/:$/, "");
  const q = u.searchParams;
  const num = (name: string) => (q.has(name) ? Number(q.get(name)) : undefined);
  return {
    protocol,
    hostname: u.hostname.replace(/^\[|\]$/g, ""),
    port: u.port ? Number(u.port) : protocol === "amqps" ? 5671 : 5672,
    username: u.username ? decodeURIComponent(u.username) : "guest",
    password: u.password ? decodeURIComponent(u.password) : u.username ? "" : "guest",
    vhost: u.pathname.length > 1 ? decodeURIComponent(u.pathname.slice(1)) : "/",
    heartbeat: num("heartbeat"),
    frameMax: num("frameMax") ?? 131072,
    channelMax: num("channelMax"),
    locale: q.get("locale") ?? undefined,
  } as Options.Connect;
}

/** Socket options for every connection: TCP_NODELAY always; TLS material when given. */
export function socketOptions(tls: TlsFiles, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    noDelay: true,
    ...(tls.ca ? { ca: [Buffer.from(tls.ca)] } : {}),
    ...(tls.cert ? { cert: Buffer.from(tls.cert) } : {}),
    ...(tls.key ? { key: Buffer.from(tls.key) } : {}),
    ...extra,
  };
}

const CONNECT_FIELDS = ["protocol", "hostname", "port", "username", "password", "vhost", "heartbeat", "frameMax", "channelMax", "locale"] as const;

/** A URL object for amqplib whose fields follow the current broker of a list. */
export class FailoverUrl {
  private index = 0;
  private readonly fields: Options.Connect[];

  constructor(private readonly urls: readonly string[]) {
    this.fields = urls.map(connectFields);
  }

  /** The broker the next attempt goes to, password masked. */
  get current(): string {
    return displayUrl(this.urls[this.index]!);
  }

  get currentUrl(): string {
    return this.urls[this.index]!;
  }

  /** Moves on to the next broker (after a failed attempt or a lost connection). */
  advance(): void {
    this.index = (this.index + 1) % this.urls.length;
  }

  /** The object given to amqplib's connect: its fields are read afresh on every attempt. */
  target(): Options.Connect {
    const target = {} as Options.Connect;
    for (const key of CONNECT_FIELDS) {
      Object.defineProperty(target, key, { enumerable: true, get: () => this.fields[this.index]![key] });
    }
    return target;
  }
}

/**
 * For `call` and `bench`: connects to the first broker of the list that answers, by `deadline`.
 * Throws the FibrpcError of the last failure (each failure is logged at debug by the caller).
 */
export async function connectToFirst(target: BrokerTarget, deadline: number, connectionName: string, onFailure?: (error: FibrpcError) => void): Promise<{ model: ChannelModel; url: string }> {
  let last: FibrpcError | undefined;
  for (const url of target.urls) {
    try {
      const model = await connect(url, socketOptions(target.tls, { timeout: Math.max(1, deadline - Date.now()), clientProperties: { connection_name: connectionName } }));
      return { model, url };
    } catch (err) {
      last = connectError(err, url);
      onFailure?.(last);
      if (last.code === "ACCESS_REFUSED" && target.urls.length === 1) break;
    }
  }
  throw last!;
}
