/**
 * What `fibrpc health` knows: serve keeps a small JSON file up to date with how many of its
 * workers are connected and consuming, rewritten on every change and every few seconds (so a
 * stuck process shows as stale). A file and not a port, so the check needs no network, no shell
 * and no curl — it works in a distroless container — and a second process on the machine cannot
 * answer for this one.
 *
 * The file belongs to the serve that wrote it (its pid is in it): a second serve given the same
 * path refuses to start while the first one lives and keeps the file fresh (claimStatus), and a
 * serve never rewrites or deletes a file another live serve holds.
 */
import { renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { usageError } from "../errors.ts";
import { readSmallFile } from "../small-file.ts";
import type { Logger } from "../log.ts";
import type { ServeStatusUpdate } from "./supervisor.ts";

export interface ServeStatus {
  pid: number;
  queue: string;
  workers: number;
  serving: number;
  /** The broker's reason, while it blocks the publishes of a worker (flow control). */
  blocked?: string;
  /** serve is stopping (a signal): finishing what it holds, consuming nothing. */
  draining?: true;
  /** ms since the epoch of the last write. */
  updatedAt: number;
}

/** serve rewrites the file at least this often. */
export const STATUS_HEARTBEAT_MS = 5_000;

/**
 * A status older than this is not a live serve's, whatever its pid (--max-age's default too): a
 * live serve rewrites it every STATUS_HEARTBEAT_MS. A process that reuses a dead serve's pid, a
 * serve stopped (SIGSTOP) for that long, then do not keep the file from a new serve.
 */
export const STATUS_STALE_MS = 3 * STATUS_HEARTBEAT_MS;

/** Far beyond the status serve writes (~150 bytes): a file that holds more is not one (health.ts says so). */
export const STATUS_FILE_LIMIT = 64 << 10;

/** The path exists and is not a regular file (a pipe, a device, a directory): never a status file. */
export class NotRegularFile extends Error {
  constructor(readonly directory: boolean) {
    super(directory ? "it is a directory" : "it is not a regular file");
  }
}

/**
 * The status file's text, read no further than STATUS_FILE_LIMIT (FileTooLarge past it). Only a regular file is
 * read: opening a named pipe waits for a writer, and serve's supervisor and `health` must never wait.
 */
export function readStatusText(path: string): string {
  const stat = statSync(path);
  if (!stat.isFile()) throw new NotRegularFile(stat.isDirectory());
  return readSmallFile(path, STATUS_FILE_LIMIT).toString("utf8");
}

export function writeStatus(path: string, status: ServeStatus): void {
  // Write then rename: a reader never sees half a file.
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(status));
  try {
    renameSync(tmp, path);
  } catch (err) {
    // `path` a directory, say: no stray file left beside it.
    rmSync(tmp, { force: true });
    throw err;
  }
}

/** Who holds a status file: another serve that is alive and keeps it fresh, or nobody. */
export function holderOf(path: string, now = Date.now()): number | undefined {
  let status: unknown;
  try {
    status = JSON.parse(readStatusText(path));
  } catch {
    return undefined; // missing, unreadable, or no status at all (/dev/zero): nobody's
  }
  if (!isServeStatus(status) || status.pid === process.pid) return undefined;
  return isAlive(status.pid) && now - status.updatedAt <= STATUS_STALE_MS ? status.pid : undefined;
}

export type Claim = { claimed: true } | { claimed: false; holder: number } | { claimed: false; error: Error };

/**
 * Makes the status file this process's, before serve starts: refused while another live serve
 * holds it. A file left by a serve that is gone (killed, or its pid reused since) is taken over.
 * The first write creates the file exclusively (O_EXCL), so of two serves starting at once on a
 * free path, one gets it and the other sees it held.
 */
export function claimStatus(path: string, status: ServeStatus): Claim {
  try {
    writeFileSync(path, JSON.stringify(status), { flag: "wx" });
    return { claimed: true };
  } catch (err) {
    if ((err as { code?: string }).code !== "EEXIST") return { claimed: false, error: err as Error };
  }
  // Only a regular file is ever read, then replaced: a device (/dev/zero, /dev/null) or a pipe given by mistake
  // would be replaced by a file (serve often runs as root), and a pipe's open would wait for a writer.
  if (!isRegularFile(path)) return { claimed: false, error: new Error("it exists and is not a regular file") };
  const holder = holderOf(path);
  if (holder !== undefined) return { claimed: false, holder };
  try {
    writeStatus(path, status);
    return { claimed: true };
  } catch (err) {
    return { claimed: false, error: err as Error };
  }
}

function isRegularFile(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

/** Removes the status file if it is still this process's (a file another serve wrote is left alone). */
export function removeStatus(path: string): void {
  try {
    const status: unknown = JSON.parse(readStatusText(path));
    if (!isServeStatus(status) || status.pid !== process.pid) return;
  } catch {
    return;
  }
  rmSync(path, { force: true });
}

/** serve's side of the file: claimed at start, rewritten on each update, removed at exit. */
export interface StatusKeeper {
  update(status: ServeStatusUpdate): void;
  release(): void;
}

/**
 * Claims `path` for this serve, or throws a usage error if another running serve holds it (two sharing it
 * would answer `fibrpc health` for each other, and the first to exit would delete it under the other) or
 * if it cannot be written at all (no such directory, a directory, no permission): `fibrpc health` would
 * then say "not running" for as long as serve runs. Once claimed, writing never stops serving: a file that
 * cannot be written is one warning (until it can be again), and a file another serve took over meanwhile
 * (this one was stopped long enough to look gone) is left to it.
 */
export function keepStatus(path: string, of: { queue: string; workers: number }, log: Logger): StatusKeeper {
  const statusOf = ({ serving, workers, blocked, draining }: ServeStatusUpdate): ServeStatus => ({
    pid: process.pid,
    queue: of.queue,
    workers,
    serving,
    ...(blocked === undefined ? {} : { blocked }),
    ...(draining ? { draining } : {}),
    updatedAt: Date.now(),
  });
  const claim = claimStatus(path, statusOf({ serving: 0, workers: of.workers }));
  if (!claim.claimed && "holder" in claim) {
    throw usageError(
      `--status-file ${path} is held by another serve (pid ${claim.holder}), which is running; ` +
        "give each serve its own --status-file",
    );
  }
  if (!claim.claimed) {
    throw usageError(
      `cannot write --status-file ${path}: ${claim.error.message}; ` +
        "give a file path in a directory serve can write (it is replaced as a whole on each update)",
    );
  }
  let warned = false;
  let lost = false;
  const update = (status: ServeStatusUpdate) => {
    if (lost) return;
    const holder = holderOf(path);
    if (holder !== undefined) {
      log.warn(
        `the status file ${path} is now held by another serve (pid ${holder}); ` +
          "this one stops writing it, so `fibrpc health` reports on that one",
      );
      lost = true;
      return;
    }
    try {
      writeStatus(path, statusOf(status));
      warned = false;
    } catch (err) {
      if (!warned) log.warn(`cannot write the status file ${path}: ${(err as Error).message}`);
      warned = true;
    }
  };
  return { update, release: () => removeStatus(path) };
}

/** What writeStatus writes, and nothing else (health.ts: anything else is never healthy). */
export function isServeStatus(value: unknown): value is ServeStatus {
  if (typeof value !== "object" || value === null) return false;
  const s = value as Record<string, unknown>;
  const count = (v: unknown) => Number.isSafeInteger(v) && (v as number) >= 0;
  return (
    Number.isSafeInteger(s.pid) &&
    (s.pid as number) > 0 &&
    typeof s.queue === "string" &&
    count(s.workers) &&
    (s.workers as number) >= 1 &&
    count(s.serving) &&
    (s.serving as number) <= (s.workers as number) &&
    (s.blocked === undefined || typeof s.blocked === "string") &&
    Number.isFinite(s.updatedAt)
  );
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as { code?: string }).code === "EPERM";
  }
}
