/**
 * Where and how to connect: one or more broker URLs (tried in order, with failover) and TLS
 * material. Every connection, serve's and call's alike, is given amqplib's connect *object*
 * built from the parsed URL (broker-url.ts), never a URL string: amqplib would read the string
 * its own way (and throw from inside a worker on a bad escape). For serve, whose reconnects are
 * amqplib's built-in recovery, FailoverUrl is that object: its fields are those of the current
 * broker, moved on to the next one after each failed attempt or lost connection.
 */
// Before amqplib: the broker's reasons for a refused connection.open (amqplib-internals.ts).
import "./amqplib-internals.ts";
import { connect, type ChannelModel, type Options } from "amqplib";
import { connectionTimeoutOf, displayUrl, type BrokerUrl } from "../broker-url.ts";
import { ExitCode, FibrpcError } from "../errors.ts";
import { connectError, connectTimedOut } from "./broker-errors.ts";

export interface TlsFiles {
  ca?: Uint8Array;
  cert?: Uint8Array;
  key?: Uint8Array;
}

export interface BrokerTarget {
  /** Parsed in the main thread; plain objects, so they cross to the workers as they are. */
  urls: readonly BrokerUrl[];
  tls: TlsFiles;
}

/** The frame size every connection asks for (amqplib's default, stated once for all commands). */
export const DEFAULT_FRAME_MAX = 131_072;

/**
 * amqplib's connect object for one URL (node_modules/amqplib/lib/connect.js reads protocol,
 * hostname, port, username, password, vhost, locale, frameMax, channelMax, heartbeat). amqplib
 * percent-decodes the vhost of the object form again (querystring.unescape), so it is handed
 * over encoded; user name and password are used as they are.
 */
export function connectFields(url: BrokerUrl): Options.Connect {
  return {
    protocol: url.protocol,
    hostname: url.hostname,
    port: url.port,
    username: url.username,
    password: url.password,
    vhost: encodeURIComponent(url.vhost),
    heartbeat: url.heartbeat,
    frameMax: url.frameMax ?? DEFAULT_FRAME_MAX,
    // No frame the broker sends is larger than the frame_max asked for (it may only lower it), so amqplib's
    // bound on an inbound frame is that, not its 64 MiB: bytes of another protocol read as a frame header
    // are refused at once, among them a TLS port's alert (connectError: "wrong-protocol"). frame_max=0 (the
    // broker's) leaves amqplib's bound, raised to what the broker tunes.
    maxFrameSize: url.frameMax === 0 ? undefined : (url.frameMax ?? DEFAULT_FRAME_MAX),
    channelMax: url.channelMax,
    locale: url.locale,
  };
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

const CONNECT_FIELDS = [
  "protocol",
  "hostname",
  "port",
  "username",
  "password",
  "vhost",
  "heartbeat",
  "frameMax",
  "maxFrameSize",
  "channelMax",
  "locale",
] as const;

/** A URL object for amqplib whose fields follow the current broker of a list. */
export class FailoverUrl {
  private index = 0;
  private readonly fields: Options.Connect[];

  constructor(private readonly urls: readonly BrokerUrl[]) {
    this.fields = urls.map(connectFields);
  }

  /** The broker the next attempt goes to, password masked. */
  get current(): string {
    return displayUrl(this.urls[this.index]!);
  }

  get currentUrl(): BrokerUrl {
    return this.urls[this.index]!;
  }

  /** How many brokers there are to fail over between. */
  get count(): number {
    return this.urls.length;
  }

  /** Which of them the next attempt goes to (from 0, in the order given). */
  get position(): number {
    return this.index;
  }

  /**
   * Socket options of serve's recovering connection: amqplib takes them once for every attempt,
   * so a connection_timeout is one for all the URLs (serve's option rules, options.ts, check they agree).
   */
  get socketTimeout(): { timeout: number } {
    return { timeout: connectionTimeoutOf(this.urls[0]!) };
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
 * Throws the FibrpcError of the first broker that answered and refused (a login, a vhost, a TLS
 * certificate: what the user must fix, which a later broker being down must not hide behind "retry
 * later"), marked `anotherUnreachable` if one was down (a reconnection may still reach it); else
 * the last failure (each failure is logged at debug by the caller).
 */
export async function connectToFirst(
  target: BrokerTarget,
  deadline: number,
  connectionName: string,
  onFailure?: (error: FibrpcError) => void,
): Promise<{ model: ChannelModel; url: BrokerUrl }> {
  let last: FibrpcError | undefined;
  let refused: FibrpcError | undefined;
  let unreachable = false;
  /** The URL whose attempt the caller's deadline cut short, if one was. */
  let cut: BrokerUrl | undefined;
  for (const url of target.urls) {
    try {
      // The attempt ends by the deadline, and within the URL's connection_timeout.
      const timeout = Math.max(1, Math.min(deadline - Date.now(), connectionTimeoutOf(url)));
      const model = await connect(
        connectFields(url),
        socketOptions(target.tls, { timeout, clientProperties: { connection_name: connectionName } }),
      );
      return { model, url };
    } catch (err) {
      last = connectError(err, url);
      onFailure?.(last);
      if (last.exitCode === ExitCode.ACCESS_REFUSED || last.exitCode === ExitCode.CONFIG) refused ??= last;
      else if (last.exitCode === ExitCode.BROKER_UNREACHABLE) {
        unreachable = true;
        if (Date.now() >= deadline) cut ??= url;
      }
      if (last.code === "ACCESS_REFUSED" && target.urls.length === 1) break;
    }
  }
  // The caller's deadline cut an attempt short (call -t 2ms): its time ran out, whether or not the broker can be
  // reached; "cannot reach the broker" (68) would send the user looking for an outage. A reconnection loop
  // (rpc/retry.ts connectWithin) takes it as it takes an unreachable broker.
  if (refused === undefined && cut !== undefined) throw connectTimedOut(last!, cut);
  if (refused === undefined) {
    // Named by the last URL tried; the line must not read as if the others had not been.
    const before = target.urls.length - 1;
    if (before === 0) throw last!;
    const others = before === 1 ? "the broker URL before it" : `the ${before} broker URLs before it`;
    throw new FibrpcError(last!.code, `${last!.message} (nor ${others})`, last!.details);
  }
  throw unreachable
    ? new FibrpcError(refused.code, refused.message, { ...refused.details, anotherUnreachable: true })
    : refused;
}
