/** `fibrpc bench` against a real serve, and against a responder that answers wrongly. */
import { expect, test } from "bun:test";
import { rawChannel, run, startServe, uniqueQueue, cleanupAfterFile } from "../helpers.ts";

cleanupAfterFile();

test("bench reports calls/s, percentiles and no errors; every answer checked", async () => {
  const queue = uniqueQueue();
  const server = await startServe(["--workers", "2", "--queue", queue]);
  const { code, stdout, stderr } = await run(["bench", "--queue", queue, "--requests", "2000", "--concurrency", "20", "--n", "0-300", "--json"]);
  expect(code).toBe(0);
  const result = JSON.parse(stdout);
  expect(result).toMatchObject({ calls: 2000, ok: 2000, errors: {} });
  expect(result.callsPerSecond).toBeGreaterThan(0);
  // Little's law: with 20 calls always in flight, the mean latency is 20 / (calls/s). The median
  // must be of that order: a latency measured from the wrong start, or a wrong rate, fails here.
  const littleMs = (1000 * 20) / result.callsPerSecond;
  expect(result.latencyMs.p50).toBeGreaterThan(littleMs / 5);
  expect(result.latencyMs.p50).toBeLessThan(littleMs * 5);
  expect(stderr).toBe(""); // finished within a second: no progress line yet, nothing else
  const human = await run(["bench", "--queue", queue, "--duration", "1500ms", "--concurrency", "5"]);
  expect(human.code).toBe(0);
  expect(human.stdout).toMatch(/calls\/s\s+\d+/);
  expect(human.stdout).toMatch(/p50 [\d.]+ ms {2}p90 [\d.]+ ms {2}p99 [\d.]+ ms {2}p99\.9 [\d.]+ ms {2}max/);
  expect(human.stderr).toMatch(/^1\.0s: \d+ calls, \d+ calls\/s, 0 errors$/m); // plain periodic lines off a TTY
  expect(await server.stop()).toBe(0);
});

test("a wrong answer is an error, never a fast result", async () => {
  const queue = uniqueQueue();
  const { ch } = await rawChannel();
  await ch.assertQueue(queue, { durable: false });
  await ch.consume(queue, (msg) => {
    if (!msg) return;
    ch.sendToQueue(msg.properties.replyTo, Buffer.from("42"), { correlationId: msg.properties.correlationId });
    ch.ack(msg);
  });
  const { code, stdout } = await run(["bench", "--queue", queue, "--requests", "100", "--n", "30", "--json"]);
  expect(code).not.toBe(0);
  expect(JSON.parse(stdout)).toMatchObject({ calls: 100, ok: 0, errors: { WRONG_ANSWER: 100 } });
});
