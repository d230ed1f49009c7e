/**
 * What serve logs while the broker is away (src/serve/outage.ts), counted line by line through
 * the compiled binary: one warning for the process however many workers and attempts, no line
 * per attempt, one line once every worker is back; a summary at most every interval (30 s in the
 * release build; the test build's FIBRPC_TEST_OUTAGE_SUMMARY_MS shortens it here).
 */
import { expect, test } from "bun:test";
import { startProxy } from "../proxy.ts";
import { BIN, cleanupAfterFile, eventually, run, startServe, TEST_BIN, tracked, uniqueQueue, freePort } from "../helpers.ts";

cleanupAfterFile();

const MASKED = String.raw`amqp://guest:\*\*\*@127\.0\.0\.1:\d+`;
/** The duration of a log line: "0.4 s", "14 s", "1m12s". */
const DURATION = String.raw`(\d+\.\d s|\d+ s|\d+m\d\ds)`;
const lines = (log: string) => log.split("\n").filter((l) => l.length > 0);


test("unreachable at start-up (connection refused): one warning for 3 workers, none per attempt; one line when it is reachable", async () => {
  const queue = uniqueQueue();
  const port = await freePort(); // nothing listens there: every attempt is refused
  const server = await startServe(["--workers", "3", "--queue", queue, "--url", `amqp://guest:guest@127.0.0.1:${port}`], {}, null);
  await server.waitForLog(new RegExp(`WARN  cannot reach the broker at ${MASKED}: connection refused; start RabbitMQ there or point --url / FIBRPC_URL at a running broker\n`));
  // An observation window, not a synchronisation: in 8 s each worker makes 5 or more attempts
  // (250 ms doubling to 5 s), and the first summary is not due before 30 s.
  await Bun.sleep(8000);
  const during = lines(server.log);
  expect(during, server.log).toHaveLength(2);
  expect(during[0]).toMatch(/INFO  fibrpc .* serving queue/);
  expect(during[1]).toMatch(/WARN  cannot reach the broker/);

  // The broker becomes reachable at that address.
  const proxy = await startProxy(5672, "127.0.0.1", port);
  try {
    await server.waitForLog(new RegExp(`INFO  connected to ${MASKED} after ${DURATION} \\(\\d+ failed attempts\\); 3/3 workers serving\n`), 15_000);
    const { code, stdout } = await run(["call", "--queue", queue, "30"]);
    expect(code).toBe(0);
    expect(stdout).toBe("832040\n");
    expect(await server.stop()).toBe(0);
  } finally {
    await proxy.close();
  }
  const all = lines(server.log);
  const attempts = Number(/\((\d+) failed attempts\)/.exec(server.log)![1]);
  console.log(`start-up outage: ${attempts} failed attempts by 3 workers, ${all.length} log lines in all`);
  expect(attempts).toBeGreaterThanOrEqual(12);
  expect(all.filter((l) => l.includes(" WARN "))).toHaveLength(1);
  expect(all.filter((l) => /connected to|workers serving/.test(l))).toHaveLength(1);
  expect(all).toHaveLength(4); // the banner, the warning, connected, SIGTERM: draining
}, 60_000);

test("an established connection cut and refused: one warning, none per attempt or worker; one line when all 3 are back", async () => {
  const queue = uniqueQueue();
  const proxy = await startProxy(5672);
  try {
    const server = await startServe(["--workers", "3", "--queue", queue, "--url", `amqp://guest:guest@127.0.0.1:${proxy.port}`]);
    const from = server.log.length;
    proxy.refuse(true);
    expect(proxy.cut()).toBe(3);
    await server.waitForLog(new RegExp(`WARN  connection to ${MASKED} lost \\(.+\\); reconnecting\n`), 10_000, from);
    // Hold the outage until the workers have been refused 12 times (4 back-off steps each).
    await eventually(async () => proxy.refused, (n) => n >= 12, 20_000, "12 refused attempts");
    expect(lines(server.log.slice(from)), server.log).toHaveLength(1);

    proxy.refuse(false);
    await server.waitForLog(new RegExp(`INFO  reconnected to ${MASKED} after ${DURATION} \\(\\d+ failed attempts\\); 3/3 workers serving\n`), 15_000, from);
    const { code, stdout } = await run(["call", "--queue", queue, "30"]);
    expect(code).toBe(0);
    expect(stdout).toBe("832040\n");
    expect(await server.stop()).toBe(0);
    const after = lines(server.log.slice(from));
    const attempts = Number(/\((\d+) failed attempts\)/.exec(server.log)![1]);
    console.log(`lost connection: ${proxy.refused} attempts refused by the proxy, ${attempts} counted by serve, ${after.length} log lines from the cut to the exit`);
    expect(attempts).toBe(proxy.refused);
    expect(after.filter((l) => l.includes(" WARN "))).toHaveLength(1);
    expect(after.filter((l) => /connected to|workers serving/.test(l))).toHaveLength(1);
    expect(after).toHaveLength(3); // lost, reconnected, SIGTERM: draining
  } finally {
    await proxy.close();
  }
}, 60_000);

test("test build, summary every 1.5 s, JSON at debug: summaries paced and carrying their fields; each attempt only at debug", async () => {
  const queue = uniqueQueue();
  const proxy = await startProxy(5672);
  proxy.refuse(true);
  try {
    const env: Record<string, string> = { NO_COLOR: "1", FIBRPC_TEST_OUTAGE_SUMMARY_MS: "1500" };
    for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("FIBRPC_") && v !== undefined) env[k] ??= v;
    const args = ["serve", "--workers", "2", "--queue", queue, "--url", `amqp://guest:guest@127.0.0.1:${proxy.port}`, "--log-format", "json", "--log-level", "debug"];
    const proc = tracked(Bun.spawn([TEST_BIN, ...args], { cwd: "/", env, stdin: "ignore", stdout: "ignore", stderr: "pipe" }));
    let log = "";
    const reading = (async () => {
      const decoder = new TextDecoder();
      for await (const chunk of proc.stderr) log += decoder.decode(chunk, { stream: true });
    })();
    const entries = () => lines(log).map((l) => JSON.parse(l) as { time: string; level: string; worker?: string; message: string; fields?: Record<string, unknown> });
    const summaries = () => entries().filter((e) => e.message.startsWith("still cannot reach"));
    await eventually(async () => summaries().length, (n) => n >= 3, 20_000, "3 summaries");
    proxy.refuse(false);
    await eventually(async () => entries().some((e) => !e.worker && /^(re)?connected to/.test(e.message)), Boolean, 15_000, "the line saying serve is back");
    proc.kill("SIGTERM");
    expect(await proc.exited).toBe(0);
    await reading;

    const main = entries().filter((e) => !e.worker && e.level !== "debug");
    const said = summaries();
    const first = main[1]!;
    // `since` is the supervisor's clock at the event, `time` the logger's a moment later. (Read
    // before toMatchObject: bun 1.4.5's writes its asymmetric matchers into the object it checks.)
    const since = first.fields!.since as string;
    const broker = first.fields!.broker as string;
    expect(first).toMatchObject({ level: "warn", fields: { broker: expect.stringMatching(new RegExp(`^${MASKED}$`)), reason: expect.any(String), since: expect.any(String), workers: 2 } });
    expect(Math.abs(Date.parse(since) - Date.parse(first.time))).toBeLessThan(50);
    const stamps = [first, ...said].map((e) => Date.parse(e.time));
    const gaps = stamps.slice(1).map((t, i) => t - stamps[i]!);
    console.log(`summaries every ${gaps.join(", ")} ms (interval 1500); attempts per summary ${said.map((e) => e.fields!.attempts).join(", ")}`);
    for (const gap of gaps) expect(gap).toBeGreaterThanOrEqual(1500 - 10);
    for (const summary of said) {
      expect(summary.level).toBe("warn");
      expect(summary.fields).toMatchObject({ broker, reason: expect.stringContaining("closed the connection during the handshake"), since, workersWaiting: 2, workers: 2, attempts: expect.any(Number), nextTryMs: expect.any(Number) });
    }
    const back = main.find((e) => /^(re)?connected to/.test(e.message))!;
    expect(back).toMatchObject({ level: "info", fields: { since, workers: 2, serving: 2 } });
    // Each failed attempt is one debug line of its worker, and counted once by the summaries.
    const failedAttempts = entries().filter((e) => e.worker && e.level === "debug" && e.message.includes("closed the connection during the handshake"));
    expect(back.fields!.attempts).toBe(failedAttempts.length);
    expect(back.fields!.attempts).toBe(proxy.refused);
    // At info and above, the main thread said: the banner, the warning, the summaries, back, SIGTERM.
    expect(main).toHaveLength(2 + said.length + 2);
    expect(entries().filter((e) => e.worker && e.level !== "debug")).toEqual([]);
  } finally {
    await proxy.close();
  }
}, 60_000);

test("the release binary holds no knob for the summary interval (30 s, always)", async () => {
  const holds = async (bin: string) => Buffer.from(await Bun.file(bin).bytes()).includes("FIBRPC_TEST_OUTAGE_SUMMARY_MS");
  expect(await holds(BIN)).toBe(false);
  expect(await holds(TEST_BIN)).toBe(true);
});
