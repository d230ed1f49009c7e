/**
 * What fibrpc must never print, and the one function every output line goes through.
 *
 * Masking works on parsed URLs: each broker URL parsed or received in this thread is registered
 * (registerBrokerUrl), and from then on its text as given is replaced by its display form
 * (amqp://user:***@host:port/vhost) and its password, in every form it may take (as written in
 * the URL, decoded, percent-encoded, JSON-escaped), by "***", wherever it appears. A regex for
 * "scheme://user:password@" catches URLs that were never parsed (from a library's message, say).
 *
 * Passwords shorter than MIN_SECRET_LENGTH are not replaced on their own (masking every "ab" in
 * every line would garble the output; the URL forms are still masked), nor is "guest", RabbitMQ's
 * well-known default that only works from localhost (masking it would also hide the user name in
 * "amqp://guest:***@…").
 */
import { displayUrl, type BrokerUrl } from "./broker-url.ts";

export const MIN_SECRET_LENGTH = 4;
const PUBLIC_PASSWORDS = new Set(["guest"]);

/** Text to hide → what is shown instead. */
const replacements = new Map<string, string>();
let pattern: RegExp | undefined;

function add(secret: string, replacement: string): void {
  if (secret === "" || replacements.has(secret)) return;
  replacements.set(secret, replacement);
  // JSON logs escape quotes, backslashes and control characters: hide that form too.
  const json = JSON.stringify(secret).slice(1, -1);
  if (json !== secret && !replacements.has(json)) replacements.set(json, replacement);
  pattern = undefined;
}

/** Registers a parsed URL: its text and its password are masked in every line from now on. */
export function registerBrokerUrl(url: BrokerUrl): void {
  add(url.text, displayUrl(url));
  const { password, passwordText } = url;
  if (password.length < MIN_SECRET_LENGTH || PUBLIC_PASSWORDS.has(password)) return;
  const encoded = encodeURIComponent(password);
  for (const form of [password, passwordText ?? "", encoded, encoded.replace(/%[0-9A-F]{2}/g, (e) => e.toLowerCase())]) add(form, "***");
}

/** amqp(s)://user:password@ — the password runs to the last "@" before a space or the next URL. */
const URL_PASSWORD = /(amqps?:\/\/[^:/?#@\s]*:)(?:(?!amqps?:\/\/)\S)*@/gi;

/** Replaces every registered secret, and the password of any other amqp(s):// URL, in `text`. */
export function maskSecrets(text: string): string {
  if (replacements.size > 0) {
    // Longest first, so a URL is replaced whole before the password inside it.
    pattern ??= new RegExp(
      [...replacements.keys()]
        .sort((a, b) => b.length - a.length)
        .map((s) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"))
        .join("|"),
      "g",
    );
    text = text.replace(pattern, (match) => replacements.get(match) ?? "***");
  }
  return text.replace(URL_PASSWORD, "$1***@");
}
