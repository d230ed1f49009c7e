/**
 * The verdict of `fibrpc health`, from serve's status file alone (status.ts): healthy while every worker is
 * connected and consuming, the file fresh and not blocked; otherwise the reason, saying what is wrong with the
 * file itself when it is not one serve wrote.
 */
import { messageOf } from "../errors.ts";
import { FileTooLarge } from "../small-file.ts";
import { isAlive, isServeStatus, NotRegularFile, readStatusText, type ServeStatus } from "./status.ts";

export type Health = { healthy: true; status: ServeStatus } | { healthy: false; reason: string };

/** The verdict of `fibrpc health`, from the status file alone. */
export function checkHealth(path: string, maxAgeMs: number, now = Date.now()): Health {
  const notStatus = `${path} is not a status file serve wrote`;
  let text: string;
  try {
    text = readStatusText(path);
  } catch (err) {
    return { healthy: false, reason: unreadable(path, err, notStatus) };
  }
  let status: unknown;
  try {
    status = JSON.parse(text);
  } catch {
    return { healthy: false, reason: `${notStatus} (${text.trim() === "" ? "it is empty" : "it is not JSON"})` };
  }
  // Valid JSON that is not what writeStatus writes (null, a pid of 0 or -1, which signal 0 reaches as a process
  // group, a missing count or time, more serving than workers) is never healthy.
  if (!isServeStatus(status))
    return { healthy: false, reason: `${notStatus} (not an object of pid, queue, workers, serving, updatedAt)` };
  if (!isAlive(status.pid)) return { healthy: false, reason: `serve (pid ${status.pid}) is not running any more` };
  const age = now - status.updatedAt;
  if (age > maxAgeMs)
    return { healthy: false, reason: `serve's status is ${Math.round(age / 1000)} s old: the process is stuck` };
  // serve rewrites the file every few seconds by the clock health reads: a time further ahead than --max-age is
  // a clock set back meanwhile, or a file serve did not write.
  if (-age > maxAgeMs)
    return {
      healthy: false,
      reason: `serve's status is dated ${Math.round(-age / 1000)} s ahead of this machine's clock: not trusted`,
    };
  if (status.draining === true)
    return {
      healthy: false,
      reason: "serve is stopping (draining): it finishes the requests it holds and takes no new ones",
    };
  if (status.serving < status.workers) {
    return {
      healthy: false,
      reason:
        `${status.serving}/${status.workers} workers consuming queue ${JSON.stringify(status.queue)}: ` +
        `the broker is unreachable or a worker is restarting`,
    };
  }
  if (status.blocked !== undefined) {
    return {
      healthy: false,
      reason:
        `broker is blocking publishers: ${status.blocked}; ` +
        `serve's replies wait until the broker's resource alarm clears`,
    };
  }
  return { healthy: true, status };
}

/** Why the status file could not be read, and what to do. */
function unreadable(path: string, err: unknown, notStatus: string): string {
  if (err instanceof NotRegularFile && err.directory)
    return `${path} is a directory; give the file serve's --status-file names`;
  if (err instanceof FileTooLarge || err instanceof NotRegularFile) return `${notStatus} (${err.message})`;
  switch ((err as { code?: string }).code) {
    case "ENOENT":
    case "ENOTDIR":
      return `no status file at ${path}: serve is not running, or runs without --status-file`;
    case "EACCES":
    case "EPERM":
      return `cannot read the status file ${path}: permission denied; run health as serve's user (or one who may)`;
    default:
      return `cannot read the status file ${path}: ${messageOf(err)}`;
  }
}
