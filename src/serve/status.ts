/**
 * What `fibrpc health` knows: serve keeps a small JSON file up to date with how many of its
 * workers are connected and consuming, rewritten on every change and every few seconds (so a
 * stuck process shows as stale). A file and not a port, so the check needs no network, no shell
 * and no curl — it works in a distroless container — and a second process on the machine cannot
 * answer for this one.
 */
import { readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";

export interface ServeStatus {
  pid: number;
  queue: string;
  workers: number;
  serving: number;
  /** ms since the epoch of the last write. */
  updatedAt: number;
}

/** serve rewrites the file at least this often. */
export const STATUS_HEARTBEAT_MS = 5_000;

export function writeStatus(path: string, status: ServeStatus): void {
  // Write then rename: a reader never sees half a file.
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(status));
  renameSync(tmp, path);
}

export function removeStatus(path: string): void {
  rmSync(path, { force: true });
}

export type Health = { healthy: true; status: ServeStatus } | { healthy: false; reason: string };

/** The verdict of `fibrpc health`, from the status file alone. */
export function checkHealth(path: string, maxAgeMs: number, now = Date.now()): Health {
  let status: unknown;
  try {
    status = JSON.parse(readFileSync(path, "utf8"));
  } catch (err) {
    const missing = (err as { code?: string }).code === "ENOENT";
    return { healthy: false, reason: missing ? `no status file at ${path}: serve is not running, or runs without --status-file` : `unreadable status file ${path}` };
  }
  // Valid JSON that is not what writeStatus writes (null, a pid of 0 or -1, which signal 0
  // reaches as a process group, a missing count or time) is unreadable too, never healthy.
  if (!isServeStatus(status)) return { healthy: false, reason: `unreadable status file ${path}` };
  if (!isAlive(status.pid)) return { healthy: false, reason: `serve (pid ${status.pid}) is not running any more` };
  const age = now - status.updatedAt;
  if (age > maxAgeMs) return { healthy: false, reason: `serve's status is ${Math.round(age / 1000)} s old: the process is stuck` };
  if (status.serving < status.workers) {
    return { healthy: false, reason: `${status.serving}/${status.workers} workers consuming queue ${JSON.stringify(status.queue)}: the broker is unreachable or a worker is restarting` };
  }
  return { healthy: true, status };
}

function isServeStatus(value: unknown): value is ServeStatus {
  if (typeof value !== "object" || value === null) return false;
  const s = value as Record<string, unknown>;
  const count = (v: unknown) => Number.isSafeInteger(v) && (v as number) >= 0;
  return Number.isSafeInteger(s.pid) && (s.pid as number) > 0 && typeof s.queue === "string" && count(s.workers) && count(s.serving) && Number.isFinite(s.updatedAt);
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as { code?: string }).code === "EPERM";
  }
}
