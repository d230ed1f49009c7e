/**
 * How large an n may be is the server's to say: `serve --max-n` above the default is reachable
 * from `fibrpc call` and `fibrpc bench`, and a server at the default refuses what is above it
 * with N_TOO_LARGE (an error reply, exit 76) — the clients no longer refuse it before asking.
 * n just above the default (1,000,001..1,000,005) keeps the computing cheap.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { fibDecimal } from "../../src/fib.ts";
import { DEFAULT_MAX_N } from "../../src/rpc/protocol.ts";
import { run, startServe, uniqueQueue, cleanupAfterFile, type Server } from "../helpers.ts";

const RAISED_MAX_N = DEFAULT_MAX_N + 5;
let raised: { server: Server; queue: string };
let standard: { server: Server; queue: string };

beforeAll(async () => {
  const queues = [uniqueQueue(), uniqueQueue()] as const;
  const [a, b] = await Promise.all([
    startServe(["--workers", "1", "--queue", queues[0], "--max-n", String(RAISED_MAX_N)]),
    startServe(["--workers", "1", "--queue", queues[1]]),
  ]);
  raised = { server: a, queue: queues[0] };
  standard = { server: b, queue: queues[1] };
});

// Before the file's cleanup (hooks run in the order they are registered), which kills what is left.
afterAll(async () => {
  // Each drains cleanly: nothing above was left half done.
  expect(await Promise.all([raised.server.stop(), standard.server.stop()])).toEqual([0, 0]);
});
cleanupAfterFile();

describe("serve --max-n above the default", () => {
  test("call asks for n above the default, and is answered", async () => {
    const n = DEFAULT_MAX_N + 3;
    const { code, stdout, stderr } = await run(["call", "--queue", raised.queue, "--timeout", "20s", String(n)]);
    expect(stderr).toBe("");
    expect(code).toBe(0);
    expect(stdout).toBe(`${fibDecimal(n)}\n`);
  });

  test("above the server's own --max-n: N_TOO_LARGE from the server, exit 76", async () => {
    const n = RAISED_MAX_N + 1;
    const { code, stdout, stderr } = await run(["call", "--queue", raised.queue, "--json", "30", String(n)]);
    expect(code).toBe(76);
    const lines = stdout
      .trimEnd()
      .split("\n")
      .map((line) => JSON.parse(line));
    expect(lines).toEqual([
      { n: 30, result: "832040", ms: expect.any(Number) },
      {
        n,
        error: { code: "N_TOO_LARGE", message: `n must be at most ${RAISED_MAX_N}, got ${n}` },
        ms: expect.any(Number),
      },
    ]);
    expect(stderr).toBe(`fib(${n}): N_TOO_LARGE: n must be at most ${RAISED_MAX_N}, got ${n}\n`);
  });

  test("bench loads it with n above the default; every answer checked", async () => {
    const { code, stdout, stderr } = await run([
      "bench",
      "--queue",
      raised.queue,
      "--n",
      `${DEFAULT_MAX_N + 1}-${RAISED_MAX_N}`,
      "--requests",
      "4",
      "--concurrency",
      "2",
      "--timeout",
      "20s",
      "--json",
    ]);
    expect(stderr).toBe("");
    expect(code).toBe(0);
    expect(JSON.parse(stdout)).toMatchObject({ calls: 4, ok: 4, errors: {} });
  });
});

describe("serve at the default --max-n", () => {
  test("call 1000001 reaches the server, which refuses it: N_TOO_LARGE, exit 76", async () => {
    const n = DEFAULT_MAX_N + 1;
    const { code, stdout, stderr } = await run(["call", "--queue", standard.queue, String(n)]);
    expect(code).toBe(76);
    expect(stdout).toBe("");
    expect(stderr).toBe(`fib(${n}): N_TOO_LARGE: n must be at most ${DEFAULT_MAX_N}, got ${n}\n`);
    // The server logged it as a refused request, not a crash.
    expect(standard.server.log).not.toMatch(/died|restarting/);
  });

  test("bench with n above it: the refusals counted as N_TOO_LARGE, exit 76", async () => {
    const { code, stdout } = await run([
      "bench",
      "--queue",
      standard.queue,
      "--n",
      String(DEFAULT_MAX_N + 1),
      "--requests",
      "3",
      "--concurrency",
      "1",
      "--json",
    ]);
    expect(code).toBe(76);
    expect(JSON.parse(stdout)).toMatchObject({ calls: 3, ok: 0, errors: { N_TOO_LARGE: 3 } });
  });
});
