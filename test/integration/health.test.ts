/** `fibrpc health`: healthy while serving, unhealthy while the broker is unreachable, and after. */
import { describe, expect, test } from "bun:test";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { startProxy } from "../proxy.ts";
import {
  eventually,
  run,
  startServe,
  tempFolder,
  tracked,
  uniqueQueue,
  cleanupAfterFile,
  BROKER_PORT,
} from "../helpers.ts";

cleanupAfterFile();

test("health follows the workers: serving, broker cut off, recovered, stopped", async () => {
  const statusFile = join(tempFolder("fibrpc-health-"), "status.json");
  const queue = uniqueQueue();
  const proxy = await startProxy(BROKER_PORT);
  try {
    const server = await startServe([
      "--workers",
      "2",
      "--queue",
      queue,
      "--status-file",
      statusFile,
      "--url",
      `amqp://guest:guest@127.0.0.1:${proxy.port}`,
    ]);
    const healthy = await run(["health", "--status-file", statusFile]);
    expect(healthy).toMatchObject({ code: 0, stdout: `healthy: 2/2 workers consuming queue "${queue}"\n` });

    proxy.refuse(true);
    proxy.cut();
    const down = await eventually(
      () => run(["health"], { FIBRPC_STATUS_FILE: statusFile }),
      (r) => r.code !== 0,
      10_000,
      "health failing",
    );
    expect(down.code).toBe(69);
    expect(down.stderr).toMatch(
      /^fibrpc: unhealthy: 0\/2 workers consuming queue .*: the broker is unreachable or a worker is restarting\n$/,
    );

    proxy.refuse(false);
    await eventually(
      () => run(["health", "--status-file", statusFile]),
      (r) => r.code === 0,
      15_000,
      "health passing again",
    );

    expect(await server.stop()).toBe(0);
    const gone = await run(["health", "--status-file", statusFile]);
    expect(gone.code).toBe(69);
    expect(gone.stderr).toContain("no status file");
  } finally {
    await proxy.close();
  }
});

test("health without a status file to read is a usage error", async () => {
  const { code, stderr } = await run(["health"]);
  expect(code).toBe(64);
  expect(stderr).toContain("give --status-file");
});

describe("a status file belongs to one serve", () => {
  test("a second serve given the same --status-file is refused (exit 64, one line naming the first's pid); the first's file stays, and goes when the first stops", async () => {
    const statusFile = join(tempFolder("fibrpc-health-"), "status.json");
    const queue = uniqueQueue();
    const first = await startServe(["--workers", "1", "--queue", queue, "--status-file", statusFile]);
    const second = await run(["serve", "--workers", "1", "--queue", queue, "--status-file", statusFile]);
    expect(second).toMatchObject({
      code: 64,
      stdout: "",
      stderr: `fibrpc: --status-file ${statusFile} is held by another serve (pid ${first.proc.pid}), which is running; give each serve its own --status-file\n`,
    });
    expect(JSON.parse(readFileSync(statusFile, "utf8"))).toMatchObject({ pid: first.proc.pid });
    expect(await run(["health", "--status-file", statusFile])).toMatchObject({
      code: 0,
      stdout: `healthy: 1/1 workers consuming queue "${queue}"\n`,
    });
    expect(await first.stop()).toBe(0);
    expect(existsSync(statusFile)).toBe(false);
  });

  test("a file left by a serve that was killed is taken over by the next", async () => {
    const statusFile = join(tempFolder("fibrpc-health-"), "status.json");
    const queue = uniqueQueue();
    const killed = await startServe(["--workers", "1", "--queue", queue, "--status-file", statusFile]);
    killed.proc.kill("SIGKILL");
    await killed.proc.exited;
    expect(JSON.parse(readFileSync(statusFile, "utf8"))).toMatchObject({ pid: killed.proc.pid });
    const next = await startServe(["--workers", "1", "--queue", queue, "--status-file", statusFile]);
    await eventually(
      () => run(["health", "--status-file", statusFile]),
      (r) => r.code === 0,
      10_000,
      "healthy with the new serve",
    );
    expect(JSON.parse(readFileSync(statusFile, "utf8"))).toMatchObject({ pid: next.proc.pid });
    expect(await next.stop()).toBe(0);
  });

  test("a serve whose file another live process now holds stops writing it and never deletes it", async () => {
    const statusFile = join(tempFolder("fibrpc-health-"), "status.json");
    const server = await startServe(["--workers", "1", "--queue", uniqueQueue(), "--status-file", statusFile]);
    // A stand-in for another serve: a live process, and a fresh status in its name.
    const other = tracked(Bun.spawn(["sleep", "120"], { stdout: "ignore", stderr: "ignore" }));
    const theirs = JSON.stringify({ pid: other.pid, queue: "theirs", workers: 1, serving: 1, updatedAt: Date.now() });
    writeFileSync(statusFile, theirs);
    // serve sees it at its next write (the heartbeat, every 5 s).
    await server.waitForLog(
      new RegExp(`the status file .* is now held by another serve \\(pid ${other.pid}\\); this one stops writing it`),
      15_000,
    );
    expect(await server.stop()).toBe(0);
    expect(readFileSync(statusFile, "utf8")).toBe(theirs);
    other.kill();
  });
});
