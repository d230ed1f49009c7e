/**
 * broker-url.ts as a table of { input, output | error } cases: RabbitMQ's URI spec, the choices
 * fibrpc makes where it leaves room (vhost of "amqp://h/", query parameters), and errors that say
 * what is wrong without ever quoting the password.
 */
import { describe, expect, test } from "bun:test";
import {
  displayUrl,
  ordinal,
  parseBrokerUrl,
  parseBrokerUrls,
  splitBrokerUrls,
  type BrokerUrl,
} from "../../src/broker-url.ts";
import { FibrpcError } from "../../src/errors.ts";

type Fields = Partial<Omit<BrokerUrl, "text" | "passwordText">>;
const guest = { userinfo: false, username: "guest", password: "guest" };

const ok: { input: string; output: Fields; display: string }[] = [
  {
    input: "amqp://h",
    output: { protocol: "amqp", hostname: "h", port: 5672, ...guest, vhost: "/" },
    display: "amqp://h:5672",
  },
  { input: "amqps://h", output: { protocol: "amqps", port: 5671 }, display: "amqps://h:5671" },
  { input: "AMQP://h:1234", output: { protocol: "amqp", port: 1234 }, display: "amqp://h:1234" },
  {
    input: "  amqp://u:p@h  ",
    output: { username: "u", password: "p", userinfo: true },
    display: "amqp://u:***@h:5672",
  },
  // The spec's own examples.
  {
    input: "amqp://user:pass@host:10000/vhost",
    output: { username: "user", password: "pass", hostname: "host", port: 10000, vhost: "vhost" },
    display: "amqp://user:***@host:10000/vhost",
  },
  {
    input: "amqp://user%61:%61pass@ho%61st:10000/v%2fhost",
    output: { username: "usera", password: "apass", hostname: "hoast", vhost: "v/host" },
    display: "amqp://usera:***@hoast:10000/v%2Fhost",
  },
  { input: "amqp://user@h", output: { userinfo: true, username: "user", password: "" }, display: "amqp://user@h:5672" },
  { input: "amqp://:@h", output: { userinfo: true, username: "", password: "" }, display: "amqp://@h:5672" },
  { input: "amqp://h:", output: { port: 5672 }, display: "amqp://h:5672" },
  { input: "amqp://h/%2f", output: { vhost: "/" }, display: "amqp://h:5672" },
  // Decision: "amqp://h/" is the default vhost "/", as amqplib and pika read it (the spec says "").
  { input: "amqp://h/", output: { vhost: "/" }, display: "amqp://h:5672" },
  { input: "amqp://h?heartbeat=5", output: { vhost: "/", heartbeat: 5 }, display: "amqp://h:5672" },
  { input: "amqp://[::1]", output: { hostname: "::1", port: 5672 }, display: "amqp://[::1]:5672" },
  {
    input: "amqp://u:p@[::1]:5673/v",
    output: { hostname: "::1", port: 5673, vhost: "v" },
    display: "amqp://u:***@[::1]:5673/v",
  },
  { input: "amqp://[fe80::1%25eth0]", output: { hostname: "fe80::1%eth0" }, display: "amqp://[fe80::1%eth0]:5672" },
  // Every character that collides with a delimiter, percent-encoded, and non-ASCII as UTF-8.
  {
    input: "amqp://us%40er:p%40s%3As%2Fs%2Cs%23s%25s%20s@h/v%20h",
    output: { username: "us@er", password: "p@s:s/s,s#s%s s", vhost: "v h" },
    display: "amqp://us%40er:***@h:5672/v%20h",
  },
  { input: "amqp://u:p%C3%A4ss%E2%82%AC@h", output: { password: "päss€" }, display: "amqp://u:***@h:5672" },
  // What cannot be mistaken for a delimiter may be written as it is.
  { input: "amqp://u:pä ss,w:rd@h", output: { password: "pä ss,w:rd" }, display: "amqp://u:***@h:5672" },
  {
    input: "amqp://jörg:x@h/vhöst",
    output: { username: "jörg", vhost: "vhöst" },
    display: "amqp://j%C3%B6rg:***@h:5672/vh%C3%B6st",
  },
  // Query parameters: RabbitMQ's names, amqplib's spellings.
  {
    input: "amqp://h?heartbeat=0&frame_max=4096&channel_max=65535&locale=en_US&connection_timeout=2500",
    output: { heartbeat: 0, frameMax: 4096, channelMax: 65535, locale: "en_US", connectionTimeoutMs: 2500 },
    display: "amqp://h:5672",
  },
  { input: "amqp://h/v?frameMax=0&channelMax=0", output: { frameMax: 0, channelMax: 0 }, display: "amqp://h:5672/v" },
  { input: "amqp://h?", output: { vhost: "/" }, display: "amqp://h:5672" },
  { input: "amqp://10.0.0.1:5672/%2F", output: { hostname: "10.0.0.1", vhost: "/" }, display: "amqp://10.0.0.1:5672" },
];

describe("parses", () => {
  for (const c of ok) {
    test(c.input, () => {
      const url = parseBrokerUrl(c.input);
      expect(url).toMatchObject(c.output);
      expect(displayUrl(url)).toBe(c.display);
      expect(url.text).toBe(c.input.trim());
    });
  }
  test("keeps the password as written, for masking", () => {
    expect(parseBrokerUrl("amqp://u:p%40ss@h").passwordText).toBe("p%40ss");
    expect(parseBrokerUrl("amqp://u@h").passwordText).toBeUndefined();
  });
  test("a parsed URL is a plain object (it crosses to the workers)", () => {
    const url = parseBrokerUrl("amqp://u:p@h?heartbeat=3");
    expect(structuredClone(url)).toEqual(url);
  });
});

/** Each error names the URL by its place, says what is wrong, and shows the expected form. */
const bad: { input: string; error: RegExp; secret?: string }[] = [
  { input: "", error: /is empty/ },
  { input: "nonsense", error: /must start with amqp:\/\/ or amqps:\/\// },
  { input: "http://h", error: /must start with amqp:\/\/ or amqps:\/\/, not http:\/\// },
  { input: "amqp:h", error: /must start with amqp:\/\// },
  { input: "amqp://", error: /names no host/ },
  { input: "amqp://u:secret@", error: /names no host/, secret: "secret" },
  {
    input: "amqp://u:s3cret%zz@h",
    error: /"%" in the password that is not followed by two hex digits \(write "%" as %25\)/,
    secret: "s3cret",
  },
  { input: "amqp://u:s3cret%@h", error: /"%" in the password/, secret: "s3cret" },
  { input: "amqp://us%zer:x@h", error: /"%" in the user name/ },
  { input: "amqp://u:s3cret%C3@h", error: /percent-escapes in the password that are not UTF-8/, secret: "s3cret" },
  { input: "amqp://u:s3cret%FF%FE@h", error: /not UTF-8/, secret: "s3cret" },
  { input: "amqp://h/v%zz", error: /"%" in the vhost/ },
  {
    input: "amqp://u:p@ss@h",
    error: /more than one "@" before the host \(write "@" in a user name or password as %40\)/,
    secret: "p@ss",
  },
  {
    input: "amqp://u:pa/ss@h",
    error:
      /port that is not a number from 1 to 65535 \(a "\/" or "\?" in a user name or password must be written %2F or %3F\)/,
    secret: "pa/ss",
  },
  { input: "amqp://u:pa?ss@h", error: /%2F or %3F/, secret: "pa?ss" },
  // A password that starts with digits reads as a port: then its "@" is in the vhost.
  {
    input: "amqp://admin:5672/Xy9secret@127.0.0.1",
    error:
      /has an "@" after the host \(a "\/" or "\?" in a user name or password must be written %2F or %3F\); an "@" in the vhost is written %40/,
    secret: "Xy9secret",
  },
  { input: "amqp://127.0.0.1:5672/Xy9secret@127.0.0.1", error: /"@" after the host/, secret: "Xy9secret" },
  { input: "amqp://u:pa#ss@h", error: /contains "#".*write "#" as %23/, secret: "pa#ss" },
  { input: "amqp://u:s3cr\net@h", error: /control character/, secret: "s3cr" },
  { input: "amqp://h:0", error: /port that is not a number from 1 to 65535/ },
  { input: "amqp://h:65536", error: /port that is not/ },
  { input: "amqp://h:56x", error: /port that is not/ },
  { input: "amqp://fe80::1", error: /more than one ":" after the host \(an IPv6 address goes in brackets/ },
  { input: "amqp://[::1", error: /without its closing "\]"/ },
  { input: "amqp://[nope]", error: /invalid IPv6 address/ },
  { input: "amqp://[::1]x", error: /text after the IPv6 address/ },
  {
    input: "amqp://h1,h2",
    error: /"," in the host name \(several brokers are several URLs: amqp:\/\/host1,amqp:\/\/host2\)/,
  },
  { input: "amqp://h o", error: /neither a name .* nor an IP address/ },
  { input: "amqp://h/a/b", error: /"\/" inside the vhost \(write it as %2F/ },
  { input: `amqp://h/${"v".repeat(256)}`, error: /vhost longer than 255 bytes/ },
  { input: "amqp://h?heartbeat=x", error: /heartbeat that is not seconds from 0 \(off\) to 65535/ },
  { input: "amqp://h?heartbeat=65536", error: /heartbeat that is not/ },
  { input: "amqp://h?heartbeat=-1", error: /heartbeat that is not/ },
  { input: "amqp://h?heartbeat=", error: /gives query parameter "heartbeat" no value/ },
  { input: "amqp://h?heartbeat", error: /no value/ },
  { input: "amqp://h?heartbeat=1&heartbeat=2", error: /gives query parameter "heartbeat" twice/ },
  { input: "amqp://h?frame_max=4096&frameMax=8192", error: /"frame_max" twice/ },
  {
    input: "amqp://h?frame_max=1024",
    error: /frame_max that is not bytes, 0 \(the broker's\) or from 4096 to 67108864/,
  },
  { input: "amqp://h?channel_max=70000", error: /channel_max that is not/ },
  { input: "amqp://h?connection_timeout=0", error: /connection_timeout that is not milliseconds from 1 to 2147483647/ },
  { input: "amqp://h?connection_timeout=2147483648", error: /connection_timeout that is not/ },
  { input: "amqp://h?locale=en US", error: /locale that is not like "en_US"/ },
  {
    input: "amqp://h?auth_mechanism=external",
    error:
      /unknown query parameter "auth_mechanism" \(fibrpc reads heartbeat, frame_max, channel_max, connection_timeout, locale; for TLS files use --tls-ca/,
  },
  { input: "amqp://h?cacertfile=/x", error: /unknown query parameter "cacertfile"/ },
  { input: "amqp://h?s3cr%20et=1", error: /has an unknown query parameter \(fibrpc reads/, secret: "s3cr" },
];

describe("refuses, never quoting the URL", () => {
  for (const c of bad) {
    test(JSON.stringify(c.input), () => {
      let error: unknown;
      try {
        parseBrokerUrl(c.input, "the 2nd broker URL (--url)");
      } catch (err) {
        error = err;
      }
      expect(error).toBeInstanceOf(FibrpcError);
      const { message, exitCode } = error as FibrpcError;
      expect(exitCode).toBe(64);
      expect(message).toMatch(/^the 2nd broker URL \(--url\) /);
      expect(message).toMatch(c.error);
      expect(message).toContain(
        'write "@" as %40, ":" as %3A, "/" as %2F, "," as %2C, "#" as %23, "%" as %25 and a space as %20',
      );
      expect(message).not.toContain("\n");
      if (c.input.length > "amqp://h".length) expect(message).not.toContain(c.input.slice("amqp://".length));
      if (c.secret) expect(message).not.toContain(c.secret);
    });
  }
});

describe("several URLs", () => {
  test("split only before a new amqp:// or amqps://, so a comma in a password needs no escape", () => {
    expect(splitBrokerUrls("amqp://a:p,w@h1,amqp://h2, AMQPS://h3")).toEqual([
      "amqp://a:p,w@h1",
      "amqp://h2",
      "AMQPS://h3",
    ]);
    expect(splitBrokerUrls("amqp://h")).toEqual(["amqp://h"]);
  });
  test("in order, from every value; an error names the URL by its place and source", () => {
    const urls = parseBrokerUrls([
      { text: "amqp://h1,amqp://h2", source: "--url" },
      { text: "amqp://h3", source: "--url" },
    ]);
    expect(urls.map((u) => u.hostname)).toEqual(["h1", "h2", "h3"]);
    expect(() =>
      parseBrokerUrls([
        { text: "amqp://h1,amqp://h2", source: "--url" },
        { text: "amqp://u:s3cret@h:x", source: "--url" },
      ]),
    ).toThrow(/^the 3rd broker URL \(--url\) has a port/);
    expect(() => parseBrokerUrls([{ text: "amqp://h1,amqp://u:s3cret%@h", source: "FIBRPC_URL" }])).toThrow(
      /^the 2nd broker URL \(FIBRPC_URL\) has a "%"/,
    );
  });
  test("ordinals", () => {
    expect([1, 2, 3, 4, 11, 12, 13, 21, 22, 23, 101, 111].map(ordinal)).toEqual([
      "1st",
      "2nd",
      "3rd",
      "4th",
      "11th",
      "12th",
      "13th",
      "21st",
      "22nd",
      "23rd",
      "101st",
      "111th",
    ]);
  });
});
