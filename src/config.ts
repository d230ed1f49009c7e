/**
 * Defaults and the parsers of option values (whole numbers, durations, on/off, listen
 * addresses), and the reading of a --config file. Which option uses which, and the precedence
 * flag > FIBRPC_* environment variable > config file > default, are in options.ts. Broker URLs
 * are read in broker-url.ts, and masked in mask.ts. Nothing here keeps state.
 */
import { isIP } from "node:net";
import { MAX_TIMER_MS } from "./broker-url.ts";
import { messageOf, usageError } from "./errors.ts";
import { FileTooLarge, readSmallFile } from "./small-file.ts";
import { closest } from "./suggest.ts";
import { quote } from "./printable.ts";

/** 127.0.0.1, not localhost: localhost may resolve to ::1 first, where the broker may not listen. */
export const DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672";
export const DEFAULT_QUEUE = "rpc_queue";
/**
 * Unacked requests per worker. 1 (the tutorial's fair dispatch) caps a worker at one broker
 * round trip per request (~10k calls/s for two workers here); 50 lets light requests stream
 * (~25k calls/s); while a worker computes a heavy request it takes no new ones (rpc/scheduler.ts,
 * the standby consumer). See the README's "Defaults and trade-offs".
 */
export const DEFAULT_PREFETCH = 50;
export const DEFAULT_TIMEOUT_MS = 30_000;
export const DEFAULT_DRAIN_TIMEOUT_MS = 10_000;
/**
 * The largest --max-n: fib(10,000,000) (2.1 M digits) takes ~0.4 s here, already long for a worker
 * to block; much beyond it a request could stall a worker past its heartbeats.
 */
export const MAX_MAX_N = 10_000_000;

/** The environment variable of a flag: --max-n → FIBRPC_MAX_N. */
export function envNameOf(flag: string): string {
  return `FIBRPC_${flag.toUpperCase().replace(/-/g, "_")}`;
}

/** What a --config file may hold: the variables of every command's options (see readConfigFile). */
export interface ConfigKeys {
  /** Keys that set an option, of any command: a file may be shared between serve, call and bench. */
  known: readonly string[];
  /** Keys that are options but mean nothing in a file (FIBRPC_CONFIG: a file cannot name another). */
  notInFile: readonly string[];
}

/** Far beyond any config file of FIBRPC_* settings. */
const CONFIG_FILE_LIMIT = 1 << 20;

/**
 * The FIBRPC_* settings of a --config file (dotenv format), read once and handed on as a value; `named` is how
 * messages name the file's source (--config, or FIBRPC_CONFIG).
 * dotenv is loaded only when a config file is given, to keep it off a cold `fibrpc call`.
 * A key that sets no option is a usage error, as an unknown flag is: a mistyped key
 * (FIBRPC_TIMOUT) would otherwise be ignored silently and its value never used. A key of another
 * command's option (FIBRPC_WORKERS read by call) is fine: one file may serve every command.
 */
export async function readConfigFile(
  path: string,
  keys: ConfigKeys,
  named = "--config",
): Promise<Readonly<Record<string, string>>> {
  let text: string;
  try {
    text = readSmallFile(path, CONFIG_FILE_LIMIT).toString("utf8");
  } catch (err) {
    const why =
      err instanceof FileTooLarge ? `${err.message}: a config file is a few FIBRPC_*=value lines` : messageOf(err);
    throw usageError(`cannot read ${named} ${quote(path)}: ${why}`);
  }
  const unread = lineNotRead(text);
  if (unread !== undefined) {
    // The line itself is not shown: it may hold a password (FIBRPC_URL amqp://user:secret@…).
    throw usageError(
      `line ${unread.line} of ${named} ${quote(path)} ${unread.why}; ` +
        "each line is FIBRPC_NAME=value, a # comment or blank",
    );
  }
  const { parse: parseDotenv } = await import("dotenv");
  const values = parseDotenv(text);
  const wrong = Object.keys(values)
    .filter((key) => !keys.known.includes(key))
    .map((key) => ({ key, line: lineOf(text, key) }))
    .sort((a, b) => (a.line ?? Infinity) - (b.line ?? Infinity));
  if (wrong.length > 0) throw unknownKey(`${named} ${quote(path)}`, wrong, keys);
  const twice = repeatedKey(text);
  if (twice !== undefined) {
    // As a flag given twice is: the file's reader may mean either value (dotenv keeps the last).
    throw usageError(
      `${twice.key} is set twice in ${named} ${quote(path)} ` +
        `(lines ${twice.lines[0]} and ${twice.lines[1]}); keep one` +
        (twice.key === "FIBRPC_URL" ? " (several broker URLs go in one FIBRPC_URL, comma-separated)" : ""),
    );
  }
  return Object.freeze(values);
}

/**
 * A line of one setting, as dotenv 18 reads it (its LINE expression): key, then = or ": ", then a
 * value, quoted (over several lines if need be) or up to a #.
 */
const DOTENV_QUOTED = [/\s*'(?:\\'|[^'])*'/, /\s*"(?:\\"|[^"])*"/, /\s*`(?:\\`|[^`])*`/].map((r) => r.source).join("|");
const DOTENV_LINE = new RegExp(
  `(?:^|^)\\s*(?:export\\s+)?([\\w.-]+)(?:\\s*=\\s*?|:\\s+?)(${DOTENV_QUOTED}|[^#\\r\\n]+)?\\s*(?:#.*)?(?:$|$)`,
  "gm",
);

/**
 * The first line dotenv would skip without a word (`FIBRPC_URL amqp://…` with no "=", a stray word,
 * another kind of file): the settings dotenv reads are blanked, line breaks kept, and what is left
 * must be blank or a comment. A value opened by a quote and never closed is reported too (dotenv
 * keeps the quote in the value, which then fails for another reason).
 */
function lineNotRead(text: string): { line: number; why: string } | undefined {
  const normalized = text.replace(/\r\n?/g, "\n");
  const breaks = (text: string) => text.replace(/[^\n]/g, "");
  const rest = normalized.replace(DOTENV_LINE, (setting: string, _key: string, value: string | undefined) => {
    const v = value?.trim() ?? "";
    const quoted = v !== "" && `'"\``.includes(v[0]!);
    const open = quoted && !v.slice(1).includes(v[0]!);
    // A value not wholly quoted with a # right after it (FIBRPC_QUEUE=jobs#1, A='a'b#c): dotenv ends the value
    // there, silently (docker compose's env_file keeps it whole). Key, = and such a value hold no #: the first one
    // is where it cut.
    const whole = quoted && v.length > 1 && v.at(-1) === v[0];
    const hash = setting.indexOf("#");
    const cut = v !== "" && !whole && !open && hash > 0 && !/\s/.test(setting[hash - 1]!);
    // The setting becomes its line breaks; an open quote's, or a cut value's, is marked on its key's line (the
    // match may begin with the blank lines before it).
    const lead = setting.length - setting.trimStart().length;
    const keyLine = setting.lastIndexOf("\n", lead) + 1;
    const mark = open ? "\u0000" : cut ? "\u0001" : "";
    return breaks(setting.slice(0, keyLine)) + mark + breaks(setting.slice(keyLine));
  });
  const lines = rest.split("\n");
  const at = lines.findIndex((l) => /^[\u0000\u0001]/.test(l) || !/^\s*(#.*)?$/.test(l));
  if (at === -1) return undefined;
  if (lines[at]!.startsWith("\u0000")) return { line: at + 1, why: "opens a quote it never closes" };
  if (lines[at]!.startsWith("\u0001"))
    return {
      line: at + 1,
      why:
        "has a # right after its value, which starts a comment in this format and would cut the value there: " +
        'quote the value (FIBRPC_QUEUE="jobs#1"), or put a space before a comment',
    };
  return { line: at + 1, why: "is not a setting" };
}

/** The first key a dotenv text sets twice, with the lines (from 1) of its first two settings. */
function repeatedKey(text: string): { key: string; lines: [number, number] } | undefined {
  const normalized = text.replace(/\r\n?/g, "\n");
  const seen = new Map<string, number>();
  for (const match of normalized.matchAll(DOTENV_LINE)) {
    const [setting, key] = match as unknown as [string, string];
    const lead = setting.length - setting.trimStart().length;
    const line = normalized.slice(0, match.index + lead).split("\n").length;
    const before = seen.get(key);
    if (before !== undefined) return { key, lines: [before, line] };
    seen.set(key, line);
  }
  return undefined;
}

/** The usage error for the first wrong key of a config file (by line), the others counted. */
function unknownKey(file: string, wrong: readonly { key: string; line: number | undefined }[], keys: ConfigKeys) {
  const at = ({ key, line }: { key: string; line: number | undefined }) =>
    `${key} in ${file}${line === undefined ? "" : ` (line ${line})`}`;
  const first = wrong[0]!;
  const more =
    wrong.length === 1
      ? ""
      : ` (${wrong.length - 1} more: ${wrong
          .slice(1)
          .map((w) => w.key)
          .join(", ")})`;
  if (keys.notInFile.includes(first.key))
    return usageError(`${at(first)}: a config file cannot name another one; remove the line${more}`);
  // Compared without the prefix, which every key shares (it would make any two keys look close),
  // so that a key without it (TIMEOUT) or in lower case (fibrpc_timout) finds its option too.
  const bare = (key: string) => key.replace(/^FIBRPC_/i, "");
  const guess = closest(bare(first.key), keys.known.map(bare));
  const why = first.key.startsWith("FIBRPC_") ? "" : ": only FIBRPC_* settings belong there";
  const hint =
    guess === undefined ? "the keys are the variables listed in fibrpc --help" : `did you mean FIBRPC_${guess}?`;
  return usageError(`unknown key ${at(first)}${why}; ${hint}${more}`);
}

/** The line (from 1) where `key` is set in a dotenv text, if it can be told. */
function lineOf(text: string, key: string): number | undefined {
  const escaped = key.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  const line = text.split(/\r?\n/).findIndex((l) => new RegExp(`^\\s*(?:export\\s+)?${escaped}\\s*[=:]`).test(l));
  return line === -1 ? undefined : line + 1;
}

/** An on/off value from the environment or a config file: 1, true, yes, on / 0, false, no, off. */
export function parseSwitch(where: string, value: string): boolean {
  if (/^(1|true|yes|on)$/i.test(value)) return true;
  if (/^(0|false|no|off)$/i.test(value)) return false;
  throw usageError(`${where} must be true or false, got ${quote(value)}`);
}

/** Parses a whole number option such as --workers, within [min, max]. */
export function parseWholeNumber(name: string, value: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (!/^\d+$/.test(value.trim())) throw usageError(`--${name} must be a whole number, got ${quote(value)}`);
  const n = Number(value.trim());
  // Quoted as given: a number beyond 2^53 would come back rounded (1e+20).
  if (n < min || n > max) throw usageError(`--${name} must be between ${min} and ${max}, got ${value.trim()}`);
  return n;
}

const UNITS_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/**
 * Parses a duration such as 500ms, 5s, 1.5s, 2m or 1h (a bare number means seconds), from 1 ms
 * (or `least`, said with why) to the longest timer the runtime holds (2^31 - 1 ms, about 24.8 days): beyond it, a timer
 * would fire at once. "0", "-1s", "1e3" and "Infinity" are refused.
 */
export function parseDuration(name: string, value: string, least: { ms: number; why?: string } = { ms: 1 }): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$/.exec(value);
  if (!match) throw usageError(`--${name} must be a duration like 500ms, 5s or 2m, got ${quote(value)}`);
  const ms = Math.round(Number(match[1]) * UNITS_MS[match[2] ?? "s"]!);
  // A number without a unit is seconds (as sleep(1) reads it): said, since 2147483647 reads as ms.
  const got = `got ${quote(value)}${match[2] === undefined ? ", seconds without a unit" : ""}`;
  if (!(ms >= least.ms))
    throw usageError(
      `--${name} must be at least ${formatDuration(least.ms)}, ${got}${least.why ? `: ${least.why}` : ""}`,
    );
  if (ms > MAX_TIMER_MS)
    throw usageError(
      `--${name} must be at most ${MAX_TIMER_MS}ms (about 24.8 days, the longest timer the runtime holds), ${got}`,
    );
  return ms;
}

/** A duration as parseDuration reads it back: 30000 → "30s", 1500 → "1500ms", 120000 → "2m". */
export function formatDuration(ms: number): string {
  for (const [unit, size] of [
    ["h", 3_600_000],
    ["m", 60_000],
    ["s", 1000],
  ] as const)
    if (ms % size === 0) return `${ms / size}${unit}`;
  return `${ms}ms`;
}

/** A host name or IP address to listen on (brackets around an IPv6 address are dropped). */
export function parseHost(name: string, value: string): string {
  const host = value.trim().replace(/^\[(.*)\]$/, "$1");
  const label = "[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?";
  // Digits and dots only is meant as an IPv4 address (999.1.1.1 is none), not a host name.
  const isHostName =
    !/^[\d.]+$/.test(host) && host.length <= 253 && new RegExp(`^${label}(?:\\.${label})*$`).test(host);
  if (isIP(host) !== 0 || isHostName) return host;
  throw usageError(`--${name} must be an IP address or a host name, e.g. 127.0.0.1 or 0.0.0.0, got ${quote(value)}`);
}
