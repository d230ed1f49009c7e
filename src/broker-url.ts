/**
 * Broker URLs, read one way for every command: RabbitMQ's AMQP URI spec
 * (https://www.rabbitmq.com/docs/uri-spec and uri-query-parameters):
 *
 *   amqp[s]://[user[:password]@]host[:port][/vhost][?key=value&...]
 *
 * - user, password and vhost are percent-decoded as UTF-8; a malformed escape ("%" not followed
 *   by two hex digits) or escapes that are not UTF-8 are errors. Characters that cannot be
 *   mistaken for a delimiter may also be given as they are (a space, ",", non-ASCII letters).
 * - No user info: guest/guest (RabbitMQ's default user). "user@" alone: password "".
 * - Port: 5672 for amqp, 5671 for amqps. IPv6 addresses go in brackets: amqp://[::1]:5672.
 * - vhost: no path, or "/" alone, means the default vhost "/" (the spec reads "amqp://h/" as the
 *   vhost "", but no broker has one, amqplib cannot send it, and pika and amqplib read it as "/");
 *   any other vhost is one path segment, so "/" inside it is written %2F ("amqp://h/%2F" is "/").
 * - Query: heartbeat (s), frame_max, channel_max, locale, connection_timeout (ms), each at most
 *   once and checked against its range; anything else is an error rather than silently ignored.
 *
 * An error never quotes the URL: it may hold a password. It says which URL (1st, 2nd...), what
 * is wrong, and the expected form with the percent-encodings to use.
 *
 * Pure: no I/O, no amqplib. rpc/broker.ts turns a BrokerUrl into amqplib's connect options and
 * mask.ts keeps what must never be printed.
 */
import { isIPv6 } from "node:net";
import { usageError, type FibrpcError } from "./errors.ts";

export interface BrokerUrl {
  protocol: "amqp" | "amqps";
  /** Host name or IP address; an IPv6 address without its brackets. */
  hostname: string;
  port: number;
  /** Whether the URL gave user info ("user[:password]@"); without it, guest/guest. */
  userinfo: boolean;
  username: string;
  password: string;
  vhost: string;
  /** Query parameters, when given: heartbeat in seconds (0: off), connection timeout in ms. */
  heartbeat?: number;
  frameMax?: number;
  channelMax?: number;
  locale?: string;
  connectionTimeoutMs?: number;
  /** The URL as given, and its password as written in it: what masking must hide (mask.ts). */
  text: string;
  passwordText?: string;
}

export const DEFAULT_PORTS = { amqp: 5672, amqps: 5671 } as const;

/**
 * How long a connection attempt may stay silent, TCP and the AMQP handshake, when ?connection_timeout does not say
 * (amqplib's socket timeout: each byte from the broker starts it again): without it, a peer that takes the
 * connection and never answers (a frozen broker, the port of a service that waits for its client to speak first)
 * held serve silently and kept it from the next URL. RabbitMQ gives a client's handshake 10 s too.
 */
export const DEFAULT_CONNECTION_TIMEOUT_MS = 10_000;

/** How long a connection attempt to `url` may stay silent: its ?connection_timeout, else the default. */
export function connectionTimeoutOf(url: BrokerUrl): number {
  return url.connectionTimeoutMs ?? DEFAULT_CONNECTION_TIMEOUT_MS;
}

/** Appended to every error: the form expected and how to write the characters that collide. */
export const URL_FORM =
  "expected amqp[s]://[user[:password]@]host[:port][/vhost][?heartbeat=seconds]; " +
  "in the user name, password and vhost " +
  'write "@" as %40, ":" as %3A, "/" as %2F, "," as %2C, "#" as %23, "%" as %25 and a space as %20';

/** The longest timer the runtime holds (setTimeout's limit, 2^31 - 1 ms, about 24.8 days). */
export const MAX_TIMER_MS = 2 ** 31 - 1;

interface NumberParam {
  key: string;
  field: "heartbeat" | "frameMax" | "channelMax" | "connectionTimeoutMs";
  min: number;
  max: number;
  /** Besides [min, max]. */
  alsoZero?: boolean;
  what: string;
}

/** amqplib refuses inbound frames above 64 MiB; RabbitMQ's minimum frame_max is 4096. */
const NUMBER_PARAMS: readonly NumberParam[] = [
  { key: "heartbeat", field: "heartbeat", min: 0, max: 65_535, what: "seconds from 0 (off) to 65535" },
  {
    key: "frame_max",
    field: "frameMax",
    min: 4096,
    max: 64 * 1024 * 1024,
    alsoZero: true,
    what: "bytes, 0 (the broker's) or from 4096 to 67108864",
  },
  {
    key: "channel_max",
    field: "channelMax",
    min: 0,
    max: 65_535,
    what: "a whole number from 0 (the broker's) to 65535",
  },
  {
    key: "connection_timeout",
    field: "connectionTimeoutMs",
    min: 1,
    max: MAX_TIMER_MS,
    what: `milliseconds from 1 to ${MAX_TIMER_MS}`,
  },
];
/** amqplib's own spellings, accepted as the same parameters. */
const ALIASES: Record<string, string> = { frameMax: "frame_max", channelMax: "channel_max" };
const QUERY_KEYS = [...NUMBER_PARAMS.map((p) => p.key), "locale"];

const ORDINALS = ["th", "st", "nd", "rd"];
/** 1 → "1st", 12 → "12th", 22 → "22nd". */
export function ordinal(n: number): string {
  const v = n % 100;
  return `${n}${ORDINALS[(v - 20) % 10] ?? ORDINALS[v] ?? "th"}`;
}

/**
 * Parses one broker URL. `which` names it in errors, e.g. "the 2nd broker URL (--url)"; the
 * URL's text is never part of an error message.
 */
export function parseBrokerUrl(text: string, which = "the broker URL"): BrokerUrl {
  const fail = (problem: string): FibrpcError => usageError(`${which} ${problem}; ${URL_FORM}`);
  const url = text.trim();
  if (url === "") throw fail("is empty");
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(url);
  if (!scheme) throw fail("must start with amqp:// or amqps://");
  const protocol = scheme[1]!.toLowerCase();
  if (protocol !== "amqp" && protocol !== "amqps")
    throw fail(`must start with amqp:// or amqps://, not ${protocol}://`);
  const rest = url.slice(scheme[0].length);
  if (/[\u0000-\u001f\u007f]/.test(rest)) throw fail("contains a control character (a tab or a line break?)");
  if (rest.includes("#"))
    throw fail('contains "#" (a fragment means nothing to AMQP; in a password, write "#" as %23)');

  // The authority ends at the first "/" or "?": those two must be percent-encoded before it.
  const end = rest.search(/[/?]/);
  const authority = end === -1 ? rest : rest.slice(0, end);
  const after = end === -1 ? "" : rest.slice(end);
  const hint = after.includes("@") ? ' (a "/" or "?" in a user name or password must be written %2F or %3F)' : "";

  const at = authority.split("@");
  if (at.length > 2) throw fail('has more than one "@" before the host (write "@" in a user name or password as %40)');
  const userinfo = at.length === 2 ? at[0]! : undefined;
  const hostPort = at.length === 2 ? at[1]! : at[0]!;

  let username = "guest";
  let password = "guest";
  let passwordText: string | undefined;
  if (userinfo !== undefined) {
    const colon = userinfo.indexOf(":");
    const userText = colon === -1 ? userinfo : userinfo.slice(0, colon);
    passwordText = colon === -1 ? undefined : userinfo.slice(colon + 1);
    username = decode(userText, "user name", fail);
    password = passwordText === undefined ? "" : decode(passwordText, "password", fail);
  }

  const { hostname, port } = parseHostPort(hostPort, protocol, fail, hint);
  // amqp://admin:5672/s3cret@host reads as host "admin", vhost "s3cret@host": a password with a "/" in it, which
  // error lines would then quote as a vhost. URL_FORM asks for "@" as %40 in the vhost too: refused before
  // anything names the vhost.
  if (after.includes("@")) throw fail(`has an "@" after the host${hint}; an "@" in the vhost is written %40`);

  let vhost = "/";
  let query = "";
  if (after.startsWith("/")) {
    const q = after.indexOf("?");
    const path = (q === -1 ? after : after.slice(0, q)).slice(1);
    query = q === -1 ? "" : after.slice(q + 1);
    if (path.includes("/"))
      throw fail('has a "/" inside the vhost (write it as %2F; the default vhost "/" is %2F, or leave the path out)');
    if (path !== "") vhost = decode(path, "vhost", fail);
    if (Buffer.byteLength(vhost, "utf8") > 255) throw fail("has a vhost longer than 255 bytes");
  } else if (after.startsWith("?")) {
    query = after.slice(1);
  }

  const parsed: BrokerUrl = {
    protocol,
    hostname,
    port,
    userinfo: userinfo !== undefined,
    username,
    password,
    vhost,
    text: url,
  };
  if (passwordText !== undefined) parsed.passwordText = passwordText;
  parseQuery(query, parsed, fail);
  return parsed;
}

/** Percent-decodes a user name, password or vhost as UTF-8. */
function decode(text: string, what: string, fail: (problem: string) => FibrpcError): string {
  if (/%(?![0-9A-Fa-f]{2})/.test(text))
    throw fail(`has a "%" in the ${what} that is not followed by two hex digits (write "%" as %25)`);
  if (!text.includes("%")) return text;
  const bytes: number[] = [];
  const encoder = new TextEncoder();
  for (let i = 0; i < text.length; ) {
    if (text[i] === "%") {
      bytes.push(Number.parseInt(text.slice(i + 1, i + 3), 16));
      i += 3;
    } else {
      const cp = text.codePointAt(i)!;
      const ch = String.fromCodePoint(cp);
      bytes.push(...encoder.encode(ch));
      i += ch.length;
    }
  }
  try {
    return new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(new Uint8Array(bytes));
  } catch {
    throw fail(`has percent-escapes in the ${what} that are not UTF-8`);
  }
}

function parseHostPort(
  text: string,
  protocol: "amqp" | "amqps",
  fail: (problem: string) => FibrpcError,
  hint: string,
): { hostname: string; port: number } {
  let hostname: string;
  let portText: string | undefined;
  if (text.startsWith("[")) {
    const close = text.indexOf("]");
    if (close === -1) throw fail('has an IPv6 address without its closing "]"');
    hostname = decodeHost(text.slice(1, close), fail);
    if (!isIPv6(hostname)) throw fail("has an invalid IPv6 address in brackets");
    const tail = text.slice(close + 1);
    if (tail !== "" && !tail.startsWith(":")) throw fail(`has text after the IPv6 address's "]"${hint}`);
    portText = tail === "" ? undefined : tail.slice(1);
  } else {
    const colon = text.indexOf(":");
    if (colon !== -1 && text.indexOf(":", colon + 1) !== -1) {
      throw fail(
        `has more than one ":" after the host${hint || " (an IPv6 address goes in brackets: amqp://[::1]:5672)"}`,
      );
    }
    hostname = decodeHost(colon === -1 ? text : text.slice(0, colon), fail);
    portText = colon === -1 ? undefined : text.slice(colon + 1);
    if (hostname === "") throw fail(`names no host (e.g. amqp://127.0.0.1)${hint}`);
    if (hostname.includes(","))
      throw fail('has a "," in the host name (several brokers are several URLs: amqp://host1,amqp://host2)');
    if (!/^[A-Za-z0-9._-]+$/.test(hostname))
      throw fail(`has a host that is neither a name (letters, digits, "-", "." and "_") nor an IP address${hint}`);
  }
  let port: number = DEFAULT_PORTS[protocol];
  if (portText !== undefined && portText !== "") {
    port = /^\d{1,5}$/.test(portText) ? Number(portText) : Number.NaN;
    if (!(port >= 1 && port <= 65_535)) throw fail(`has a port that is not a number from 1 to 65535${hint}`);
  }
  return { hostname, port };
}

function decodeHost(text: string, fail: (problem: string) => FibrpcError): string {
  if (/%(?![0-9A-Fa-f]{2})/.test(text)) throw fail('has a "%" in the host that is not followed by two hex digits');
  try {
    return decodeURIComponent(text);
  } catch {
    throw fail("has percent-escapes in the host that are not UTF-8");
  }
}

function parseQuery(query: string, parsed: BrokerUrl, fail: (problem: string) => FibrpcError): void {
  const seen = new Set<string>();
  for (const pair of query.split("&")) {
    if (pair === "") continue;
    const eq = pair.indexOf("=");
    const rawKey = eq === -1 ? pair : pair.slice(0, eq);
    const key = ALIASES[rawKey] ?? rawKey;
    // Names are shown only when they look like one: a misplaced password must not be echoed.
    const shown = /^[A-Za-z_]{1,40}$/.test(rawKey) ? ` "${rawKey}"` : "";
    if (!QUERY_KEYS.includes(key)) {
      throw fail(
        `has an unknown query parameter${shown} (fibrpc reads ${QUERY_KEYS.join(", ")}; ` +
          "for TLS files use --tls-ca, --tls-cert, --tls-key)",
      );
    }
    if (seen.has(key)) throw fail(`gives query parameter "${key}" twice`);
    seen.add(key);
    const value = eq === -1 ? "" : pair.slice(eq + 1);
    if (value === "") throw fail(`gives query parameter "${key}" no value`);
    if (key === "locale") {
      if (!/^[A-Za-z]{2,3}(_[A-Za-z]{2})?$/.test(value)) throw fail('has a locale that is not like "en_US"');
      parsed.locale = value;
      continue;
    }
    const param = NUMBER_PARAMS.find((p) => p.key === key)!;
    const n = /^\d{1,10}$/.test(value) ? Number(value) : Number.NaN;
    if (!((n >= param.min && n <= param.max) || (param.alsoZero && n === 0)))
      throw fail(`has a ${key} that is not ${param.what}`);
    parsed[param.field] = n;
  }
}

/**
 * Several URLs in one value: split at commas that start a new amqp:// or amqps:// URL only, so a
 * comma in a password (or vhost) needs no escaping.
 */
export function splitBrokerUrls(text: string): string[] {
  return text.split(/,\s*(?=amqps?:\/\/)/i);
}

/** Parses every URL of every value, in order; errors name the URL by its place and source. */
export function parseBrokerUrls(values: readonly { text: string; source: string }[]): BrokerUrl[] {
  const urls: BrokerUrl[] = [];
  for (const { text, source } of values) {
    for (const one of splitBrokerUrls(text)) {
      urls.push(parseBrokerUrl(one, `the ${ordinal(urls.length + 1)} broker URL (${source})`));
    }
  }
  return urls;
}

/** A URL as it may be shown: from the parsed fields, password "***", default vhost left out. */
export function displayUrl(url: BrokerUrl): string {
  const user = url.userinfo ? `${encodeURIComponent(url.username)}${url.password === "" ? "" : ":***"}@` : "";
  const host = url.hostname.includes(":") ? `[${url.hostname}]` : url.hostname;
  const vhost = url.vhost === "/" ? "" : `/${encodeURIComponent(url.vhost)}`;
  return `${url.protocol}://${user}${host}:${url.port}${vhost}`;
}
