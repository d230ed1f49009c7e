/** `fibrpc health`: healthy while serving, unhealthy while the broker is unreachable, and after. */
import { expect, test } from "bun:test";
import { join } from "node:path";
import { startProxy } from "../proxy.ts";
import { eventually, run, startServe, tempFolder, uniqueQueue, cleanupAfterFile, BROKER_PORT } from "../helpers.ts";

cleanupAfterFile();

test("health follows the workers: serving, broker cut off, recovered, stopped", async () => {
  const statusFile = join(tempFolder("fibrpc-health-"), "status.json");
  const queue = uniqueQueue();
  const proxy = await startProxy(BROKER_PORT);
  try {
    const server = await startServe(["--workers", "2", "--queue", queue, "--status-file", statusFile, "--url", `amqp://guest:guest@127.0.0.1:${proxy.port}`]);
    const healthy = await run(["health", "--status-file", statusFile]);
    expect(healthy).toMatchObject({ code: 0, stdout: `healthy: 2/2 workers consuming queue "${queue}"\n` });

    proxy.refuse(true);
    proxy.cut();
    const down = await eventually(() => run(["health"], { FIBRPC_STATUS_FILE: statusFile }), (r) => r.code !== 0, 10_000, "health failing");
    expect(down.code).toBe(69);
    expect(down.stderr).toMatch(/^fibrpc: unhealthy: 0\/2 workers consuming queue .*: the broker is unreachable or a worker is restarting\n$/);

    proxy.refuse(false);
    await eventually(() => run(["health", "--status-file", statusFile]), (r) => r.code === 0, 15_000, "health passing again");

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
