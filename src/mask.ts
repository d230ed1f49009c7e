/**
 * What fibrpc must never print, and the functions every output line goes through.
 *
 * Masking works on parsed URLs: a Masker is built from the broker URLs of a run (where its
 * options are resolved, commands/_run.ts; in a serve worker, from the URLs it is sent), and
 * replaces each URL's text as given by its display form (amqp://user:***@host:port/vhost) and its
 * password, in every form it may take (as written in the URL, decoded, percent-encoded,
 * JSON-escaped), by "***", wherever it appears. It is passed down to whatever prints (the logger,
 * the error line, call's and bench's output), never kept at module level. maskSecrets, for text
 * printed before any URL is parsed (a command-line problem, --help), and every Masker after its
 * own replacements, catches URLs by shape: "scheme://user:password@".
 *
 * Passwords shorter than MIN_SECRET_LENGTH are not replaced on their own (masking every "ab" in
 * every line would garble the output; the URL forms are still masked), nor is "guest", RabbitMQ's
 * well-known default that only works from localhost (masking it would also hide the user name in
 * "amqp://guest:***@…").
 */
import { displayUrl, type BrokerUrl } from "./broker-url.ts";

export const MIN_SECRET_LENGTH = 4;
const PUBLIC_PASSWORDS: ReadonlySet<string> = new Set(["guest"]);

/** amqp(s)://user:password@ — the password runs to the last "@" before a space or the next URL. */
const URL_PASSWORD = /(amqps?:\/\/[^:/?#@\s]*:)(?:(?!amqps?:\/\/)\S)*@/gi;

/** Masks the password of every amqp(s):// URL in `text`: what can be masked without knowing it. */
export function maskSecrets(text: string): string {
  return text.replace(URL_PASSWORD, "$1***@");
}

/** The secrets of a run's broker URLs, masked in every line it prints. Fixed once built. */
export class Masker {
  /** Text to hide → what is shown instead. */
  private readonly replacements = new Map<string, string>();
  private readonly pattern: RegExp | undefined;

  constructor(urls: readonly BrokerUrl[] = []) {
    for (const url of urls) {
      const { password, passwordText } = url;
      // Only a URL with a password needs hiding as written. One without is left alone: its display form
      // begins with its text (amqp://h → amqp://h:5672), and a line that already shows that form would be
      // replaced again (amqp://h:5672:5672).
      if (url.userinfo && password !== "") this.add(url.text, displayUrl(url));
      if (password.length < MIN_SECRET_LENGTH || PUBLIC_PASSWORDS.has(password)) continue;
      const encoded = encodeURIComponent(password);
      const lower = encoded.replace(/%[0-9A-F]{2}/g, (e) => e.toLowerCase());
      for (const form of [password, passwordText ?? "", encoded, lower]) this.add(form, "***");
    }
    // Longest first, so a URL is replaced whole before the password inside it.
    this.pattern =
      this.replacements.size === 0
        ? undefined
        : new RegExp(
            [...this.replacements.keys()]
              .sort((a, b) => b.length - a.length)
              .map((s) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"))
              .join("|"),
            "g",
          );
  }

  private add(secret: string, replacement: string): void {
    if (secret === "" || this.replacements.has(secret)) return;
    this.replacements.set(secret, replacement);
    // JSON logs escape quotes, backslashes and control characters: hide that form too.
    const json = JSON.stringify(secret).slice(1, -1);
    if (json !== secret && !this.replacements.has(json)) this.replacements.set(json, replacement);
  }

  /** Replaces every secret of these URLs, and the password of any other amqp(s):// URL, in `text`. */
  mask(text: string): string {
    const pattern = this.pattern;
    if (pattern) text = text.replace(pattern, (match) => this.replacements.get(match) ?? "***");
    return maskSecrets(text);
  }
}
