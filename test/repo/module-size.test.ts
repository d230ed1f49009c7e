/**
 * The server's parts stay small enough to read whole (issue 20, point 2: connection lifecycle, delivery
 * execution and the heavy-request scheduler each in a module of its own, none over 250 lines). The
 * batched replies once took serving-channel.ts to 301 lines unnoticed: this catches the next one.
 */
import { expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";

const RPC = resolve(import.meta.dir, "../../src/rpc");
const MAX_LINES = 250;
/** RpcServer, and the modules a delivery passes through from its consumer to its ack. */
const SERVER_PARTS = [
  "server.ts",
  "connection.ts",
  "scheduler.ts",
  "executor.ts",
  "serving-channel.ts",
  "reply-batches.ts",
];

for (const file of SERVER_PARTS) {
  test(`src/rpc/${file} has at most ${MAX_LINES} lines`, () => {
    const lines = readFileSync(resolve(RPC, file), "utf8").split("\n").length - 1;
    expect(lines).toBeGreaterThan(20);
    expect(lines).toBeLessThanOrEqual(MAX_LINES);
  });
}
