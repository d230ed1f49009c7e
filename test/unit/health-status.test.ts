/**
 * serve/health.ts checkHealth, the verdict of `fibrpc health`, from the status file alone: a
 * table of files (written by writeStatus, or by hand for the malformed ones) and clocks (`now` is
 * injected) → healthy, or unhealthy with the documented reason.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { existsSync, readFileSync } from "node:fs";
import { checkHealth } from "../../src/serve/health.ts";
import {
  claimStatus,
  holderOf,
  removeStatus,
  STATUS_STALE_MS,
  writeStatus,
  type ServeStatus,
} from "../../src/serve/status.ts";

const folder = mkdtempSync(join(tmpdir(), "fibrpc-health-unit-"));
afterAll(() => rmSync(folder, { recursive: true, force: true }));

let files = 0;
const newPath = () => join(folder, `status-${++files}.json`);

const NOW = 1_800_000_000_000;
const MAX_AGE = 15_000;
/** A status written by this process (alive), fresh, every worker consuming. */
const fresh = (over: Partial<ServeStatus> = {}): ServeStatus => ({
  pid: process.pid,
  queue: "rpc_queue",
  workers: 2,
  serving: 2,
  updatedAt: NOW,
  ...over,
});

/** The pid of a process that has exited (and was reaped): nothing runs under it now. */
async function deadPid(): Promise<number> {
  const proc = Bun.spawn(["true"], { stdout: "ignore", stderr: "ignore" });
  await proc.exited;
  // The precondition the test relies on: signal 0 to it fails with ESRCH.
  expect(() => process.kill(proc.pid, 0)).toThrow();
  return proc.pid;
}

describe("checkHealth: a status file serve wrote", () => {
  test("fresh, alive, every worker consuming: healthy, with the status", () => {
    const path = newPath();
    writeStatus(path, fresh());
    expect(checkHealth(path, MAX_AGE, NOW)).toEqual({ healthy: true, status: fresh() });
  });

  test("exactly --max-age old is still fresh; one millisecond more is stale", () => {
    const path = newPath();
    writeStatus(path, fresh({ updatedAt: NOW - MAX_AGE }));
    expect(checkHealth(path, MAX_AGE, NOW).healthy).toBe(true);
    expect(checkHealth(path, MAX_AGE, NOW + 1)).toEqual({
      healthy: false,
      reason: "serve's status is 15 s old: the process is stuck",
    });
  });

  test("stale (not rewritten for longer than --max-age, its process alive): the process is stuck", () => {
    const path = newPath();
    writeStatus(path, fresh({ updatedAt: NOW - 42_400 }));
    expect(checkHealth(path, MAX_AGE, NOW)).toEqual({
      healthy: false,
      reason: "serve's status is 42 s old: the process is stuck",
    });
    // The same file read with a longer --max-age is fresh.
    expect(checkHealth(path, 60_000, NOW).healthy).toBe(true);
  });

  test("its pid is dead: serve is not running any more, whatever the age and counts say", async () => {
    const pid = await deadPid();
    const path = newPath();
    writeStatus(path, fresh({ pid }));
    expect(checkHealth(path, MAX_AGE, NOW)).toEqual({
      healthy: false,
      reason: `serve (pid ${pid}) is not running any more`,
    });
    // A dead process's file is old too: "not running" is the reason given, not "stuck".
    writeStatus(path, fresh({ pid, updatedAt: NOW - 600_000 }));
    expect(checkHealth(path, MAX_AGE, NOW)).toEqual({
      healthy: false,
      reason: `serve (pid ${pid}) is not running any more`,
    });
  });

  test("fewer workers consuming than configured: the count and the queue", () => {
    const path = newPath();
    writeStatus(path, fresh({ serving: 1, queue: 'q "x"' }));
    expect(checkHealth(path, MAX_AGE, NOW)).toEqual({
      healthy: false,
      reason: '1/2 workers consuming queue "q \\"x\\"": the broker is unreachable or a worker is restarting',
    });
  });

  test("serve draining (0 workers consuming): unhealthy, saying it is stopping, not that the broker is gone", () => {
    const path = newPath();
    writeStatus(path, fresh({ serving: 0, draining: true }));
    expect(checkHealth(path, MAX_AGE, NOW)).toEqual({
      healthy: false,
      reason: "serve is stopping (draining): it finishes the requests it holds and takes no new ones",
    });
  });

  test("the broker blocks serve's publishes (flow control): unhealthy, with the broker's reason", () => {
    const path = newPath();
    writeStatus(path, fresh({ blocked: "low on memory" }));
    expect(checkHealth(path, MAX_AGE, NOW)).toEqual({
      healthy: false,
      reason:
        "broker is blocking publishers: low on memory; serve's replies wait until the broker's resource alarm clears",
    });
  });

  test("removed (serve stopped cleanly): no status file", () => {
    const path = newPath();
    writeStatus(path, fresh());
    removeStatus(path);
    expect(checkHealth(path, MAX_AGE, NOW)).toEqual({
      healthy: false,
      reason: `no status file at ${path}: serve is not running, or runs without --status-file`,
    });
  });
});

describe("checkHealth: a file that is not a status of serve is unreadable (unhealthy, never healthy, never a crash)", () => {
  const alive = process.pid;
  const cases: { name: string; content: string }[] = [
    { name: "empty", content: "" },
    { name: "not JSON", content: "garbage\n" },
    { name: "cut short", content: JSON.stringify(fresh()).slice(0, 30) },
    { name: "JSON null", content: "null" },
    { name: "a JSON number", content: "42" },
    { name: "a JSON array", content: "[]" },
    { name: "an empty object", content: "{}" },
    { name: "pid missing", content: JSON.stringify({ ...fresh(), pid: undefined }) },
    { name: "pid as a string", content: JSON.stringify({ ...fresh(), pid: String(alive) }) },
    // kill(0, 0) signals the caller's process group and kill(-1, 0) every process: both "alive".
    { name: "pid 0", content: JSON.stringify(fresh({ pid: 0 })) },
    { name: "pid -1", content: JSON.stringify(fresh({ pid: -1 })) },
    { name: "updatedAt missing", content: JSON.stringify({ ...fresh(), updatedAt: undefined }) },
    { name: "serving missing", content: JSON.stringify({ ...fresh(), serving: undefined }) },
    { name: "blocked not a string", content: JSON.stringify({ ...fresh(), blocked: true }) },
    // serve refuses 0 workers, and never counts more serving than it has.
    { name: "no workers", content: JSON.stringify(fresh({ workers: 0, serving: 0 })) },
    { name: "more serving than workers", content: JSON.stringify(fresh({ workers: 1, serving: 5 })) },
    // Not read past 64 KiB: /dev/zero given by mistake is an answer, not a hang.
    { name: "far larger than any status", content: " ".repeat(65 << 10) },
  ];
  const why = (content: string) =>
    content.length > 64 << 10
      ? "larger than 64 KiB"
      : content === ""
        ? "it is empty"
        : /^(garbage|\{"pid)/.test(content) && !content.endsWith("}")
          ? "it is not JSON"
          : "not an object of pid, queue, workers, serving, updatedAt";
  for (const c of cases) {
    test(c.name, () => {
      const path = newPath();
      writeFileSync(path, c.content);
      expect(checkHealth(path, MAX_AGE, NOW)).toEqual({
        healthy: false,
        reason: `${path} is not a status file serve wrote (${why(c.content)})`,
      });
    });
  }

  test("a folder where the file should be, a pipe, or a path through a file: each said as what it is", () => {
    const path = newPath();
    mkdirSync(path);
    expect(checkHealth(path, MAX_AGE, NOW)).toEqual({
      healthy: false,
      reason: `${path} is a directory; give the file serve's --status-file names`,
    });
    // A named pipe with no writer: opening it would wait for one, forever.
    const pipe = newPath();
    expect(Bun.spawnSync(["mkfifo", pipe]).exitCode).toBe(0);
    expect(checkHealth(pipe, MAX_AGE, NOW)).toEqual({
      healthy: false,
      reason: `${pipe} is not a status file serve wrote (it is not a regular file)`,
    });
    const file = newPath();
    writeFileSync(file, JSON.stringify(fresh()));
    expect(checkHealth(join(file, "x"), MAX_AGE, NOW)).toMatchObject({
      reason: expect.stringMatching(/^no status file at /),
    });
  });

  test("a status dated further ahead of the clock than --max-age is not trusted", () => {
    const path = newPath();
    writeFileSync(path, JSON.stringify(fresh({ updatedAt: NOW + MAX_AGE + 10_000 })));
    expect(checkHealth(path, MAX_AGE, NOW)).toMatchObject({
      healthy: false,
      reason: expect.stringMatching(/^serve's status is dated \d+ s ahead of this machine's clock: not trusted$/),
    });
    writeFileSync(path, JSON.stringify(fresh({ updatedAt: NOW + 1000 })));
    expect(checkHealth(path, MAX_AGE, NOW).healthy).toBe(true);
  });
});

/** A live process that is not this one (a stand-in for another serve), ended after the tests. */
const other = Bun.spawn(["sleep", "600"], { stdout: "ignore", stderr: "ignore" });
afterAll(() => other.kill());

describe("a status file belongs to the serve that wrote it", () => {
  const now = Date.now;
  const status = (over: Partial<ServeStatus> = {}): ServeStatus => ({
    pid: process.pid,
    queue: "q",
    workers: 1,
    serving: 0,
    updatedAt: now(),
    ...over,
  });

  test("a free path: claimed, written", () => {
    const path = newPath();
    expect(claimStatus(path, status())).toEqual({ claimed: true });
    expect(JSON.parse(readFileSync(path, "utf8"))).toMatchObject({ pid: process.pid });
  });

  test("held by another live serve that keeps it fresh: refused, naming its pid; the file is left as it was", () => {
    const path = newPath();
    const theirs = status({ pid: other.pid });
    writeStatus(path, theirs);
    expect(holderOf(path)).toBe(other.pid);
    expect(claimStatus(path, status())).toEqual({ claimed: false, holder: other.pid });
    expect(JSON.parse(readFileSync(path, "utf8"))).toEqual(theirs);
    // Nor does this process delete it.
    removeStatus(path);
    expect(existsSync(path)).toBe(true);
  });

  test("left by a serve that is gone, or one that has not written it for longer than it would alive: taken over", async () => {
    for (const left of [
      status({ pid: await deadPid() }),
      status({ pid: other.pid, updatedAt: now() - STATUS_STALE_MS - 1_000 }),
    ]) {
      const path = newPath();
      writeStatus(path, left);
      expect(holderOf(path)).toBeUndefined();
      expect(claimStatus(path, status())).toEqual({ claimed: true });
      expect(JSON.parse(readFileSync(path, "utf8"))).toMatchObject({ pid: process.pid });
    }
  });

  test("unreadable: nobody's, taken over", () => {
    const path = newPath();
    writeFileSync(path, "garbage");
    expect(claimStatus(path, status())).toEqual({ claimed: true });
  });

  test("something that is not a regular file (a pipe, like /dev/zero a device) is never read nor replaced", () => {
    const path = newPath();
    expect(Bun.spawnSync(["mkfifo", path]).exitCode).toBe(0);
    const claim = claimStatus(path, status());
    expect(claim).toMatchObject({ claimed: false, error: { message: "it exists and is not a regular file" } });
    expect(statSync(path).isFIFO()).toBe(true);
    // Nor read when serve looks for another holder, nor when it cleans up: either would wait for a writer.
    expect(holderOf(path)).toBeUndefined();
    removeStatus(path);
    expect(statSync(path).isFIFO()).toBe(true);
  });

  test("its own file is removed on exit; a folder that does not exist is an error to report, not a refusal", () => {
    const path = newPath();
    claimStatus(path, status());
    removeStatus(path);
    expect(existsSync(path)).toBe(false);
    const claim = claimStatus(join(folder, "missing", "status.json"), status());
    expect(claim.claimed).toBe(false);
    expect("error" in claim && claim.error.message).toContain("ENOENT");
  });
});
