/**
 * What serve logs while the broker is away (src/serve/outage.ts), counted line by line through
 * the compiled binary: one warning for the process however many workers and attempts, no line
 * per attempt, one line once every worker is back; a summary at most every interval (30 s in the
 * release build; the test build's FIBRPC_TEST_OUTAGE_SUMMARY_MS shortens it here).
 */
import { expect, test } from "bun:test";
import { startProxy } from "../proxy.ts";
import {
  BIN,
  cleanupAfterFile,
  eventually,
  run,
  startServe,
  TEST_BIN,
  tracked,
  uniqueQueue,
  freePort,
  BROKER_PORT,
} from "../helpers.ts";

cleanupAfterFile();

const MASKED = String.raw`amqp://guest:\*\*\*@127\.0\.0\.1:\d+`;
/** The duration of a log line: "0.4 s", "14 s", "1m12s". */
const DURATION = String.raw`(\d+\.\d s|\d+ s|\d+m\d\ds)`;
const lines = (log: string) => log.split("\n").filter((l) => l.length > 0);
/** The lines above debug: what an operator sees at the default level. */
const aboveDebug = (log: string) => lines(log).filter((l) => !/^\S+ DEBUG /.test(l));
/** Seconds of a DURATION as serve writes it. */
function seconds(duration: string): number {
  const m = /^(?:(\d+(?:\.\d)?) s|(\d+)m(\d\d)s)$/.exec(duration);
  if (!m) throw new Error(`not a duration: ${duration}`);
  return m[1] !== undefined ? Number(m[1]) : Number(m[2]) * 60 + Number(m[3]);
}
/**
 * Lines of one outage above debug, from its first warning to the line saying serve is back: the
 * warning, then a summary at most every 30 s (none unless the outage lasted that long: on this
 * machine the tests below end it after seconds; a slower one may log one), then "connected".
 */
function outageLines(log: string): { warning: string; summaries: string[]; back: string; downSeconds: number } {
  const all = aboveDebug(log);
  const start = all.findIndex((l) => / WARN {2}(cannot reach|connection to)/.test(l));
  const end = all.findIndex((l) => /(re)?connected to .* after /.test(l));
  expect(start, log).toBeGreaterThanOrEqual(0);
  expect(end, log).toBeGreaterThan(start);
  const summaries = all.slice(start + 1, end);
  for (const summary of summaries) expect(summary).toMatch(/ WARN {2}still cannot reach /);
  const downSeconds = seconds(new RegExp(`after ${DURATION} \\(`).exec(all[end]!)![1]!);
  expect(summaries.length).toBeLessThanOrEqual(Math.floor(downSeconds / 30));
  return { warning: all[start]!, summaries, back: all[end]!, downSeconds };
}

test("unreachable at start-up (connection refused): one warning for 3 workers, none per attempt; one line when it is reachable", async () => {
  const queue = uniqueQueue();
  const port = await freePort(); // nothing listens there: every attempt is refused
  // At debug each worker logs each failed attempt, a DEBUG line of its own: the test counts the
  // attempts by them, and judges what serve says above debug.
  const server = await startServe(
    ["--workers", "3", "--queue", queue, "--url", `amqp://guest:guest@127.0.0.1:${port}`, "--log-level", "debug"],
    {},
    null,
  );
  const failedAttempts = () =>
    server.log.match(/ DEBUG \[worker-\d\] cannot reach the broker at .*: connection refused/g)?.length ?? 0;
  await server.waitForLog(
    new RegExp(
      `WARN  cannot reach the broker at ${MASKED}: connection refused; start RabbitMQ there or point --url / FIBRPC_URL at a running broker\n`,
    ),
  );
  // Every worker tries again and again (250 ms doubling to 5 s): 12 failed attempts, and still
  // nothing above debug but the first warning.
  await eventually(
    async () => failedAttempts(),
    (n) => n >= 12,
    25_000,
    "12 failed connection attempts",
  );
  const during = aboveDebug(server.log);
  expect(
    during.filter((l) => !/still cannot reach/.test(l)),
    server.log,
  ).toHaveLength(2);
  expect(during[0]).toMatch(/INFO {2}fibrpc .* serving queue/);
  expect(during[1]).toMatch(/WARN {2}cannot reach the broker/);

  // The broker becomes reachable at that address.
  const proxy = await startProxy(BROKER_PORT, "127.0.0.1", port);
  try {
    await server.waitForLog(
      new RegExp(`INFO  connected to ${MASKED} after ${DURATION} \\(\\d+ failed attempts\\); 3/3 workers serving\n`),
      15_000,
    );
    const { code, stdout } = await run(["call", "--queue", queue, "30"]);
    expect(code).toBe(0);
    expect(stdout).toBe("832040\n");
    expect(await server.stop()).toBe(0);
  } finally {
    await proxy.close();
  }
  const all = aboveDebug(server.log);
  const attempts = Number(/\((\d+) failed attempts\)/.exec(server.log)![1]);
  console.log(`start-up outage: ${attempts} failed attempts by 3 workers, ${all.length} log lines above debug`);
  // serve counted every failed attempt of every worker, each of which its worker logged at debug.
  expect(attempts).toBe(failedAttempts());
  expect(attempts).toBeGreaterThanOrEqual(12);
  const outage = outageLines(server.log);
  expect(outage.warning).toMatch(/WARN {2}cannot reach the broker/);
  expect(all.filter((l) => /connected to|workers serving/.test(l))).toEqual([outage.back]);
  // The banner, the warning, (summaries, if it lasted 30 s), connected, SIGTERM: draining, drained.
  expect(all).toHaveLength(5 + outage.summaries.length);
}, 60_000);

test("an established connection cut and refused: one warning, none per attempt or worker; one line when all 3 are back", async () => {
  const queue = uniqueQueue();
  const proxy = await startProxy(BROKER_PORT);
  try {
    const server = await startServe([
      "--workers",
      "3",
      "--queue",
      queue,
      "--url",
      `amqp://guest:guest@127.0.0.1:${proxy.port}`,
    ]);
    const from = server.log.length;
    proxy.refuse(true);
    expect(proxy.cut()).toBe(3);
    await server.waitForLog(new RegExp(`WARN  connection to ${MASKED} lost \\(.+\\); reconnecting\n`), 10_000, from);
    // Hold the outage until the workers have been refused 12 times (4 back-off steps each).
    await eventually(
      async () => proxy.refused,
      (n) => n >= 12,
      25_000,
      "12 refused attempts",
    );
    expect(
      lines(server.log.slice(from)).filter((l) => !/still cannot reach/.test(l)),
      server.log,
    ).toHaveLength(1);

    proxy.refuse(false);
    await server.waitForLog(
      new RegExp(`INFO  reconnected to ${MASKED} after ${DURATION} \\(\\d+ failed attempts\\); 3/3 workers serving\n`),
      15_000,
      from,
    );
    const { code, stdout } = await run(["call", "--queue", queue, "30"]);
    expect(code).toBe(0);
    expect(stdout).toBe("832040\n");
    expect(await server.stop()).toBe(0);
    const after = lines(server.log.slice(from));
    const attempts = Number(/\((\d+) failed attempts\)/.exec(server.log)![1]);
    console.log(
      `lost connection: ${proxy.refused} attempts refused by the proxy, ${attempts} counted by serve, ${after.length} log lines from the cut to the exit`,
    );
    expect(attempts).toBe(proxy.refused);
    const outage = outageLines(server.log.slice(from));
    expect(outage.warning).toMatch(/WARN {2}connection to .* lost/);
    expect(after.filter((l) => /connected to|workers serving/.test(l))).toEqual([outage.back]);
    // Lost, (summaries, if it lasted 30 s), reconnected, SIGTERM: draining, drained.
    expect(after).toHaveLength(4 + outage.summaries.length);
  } finally {
    await proxy.close();
  }
}, 60_000);

test("test build, summary every 1.5 s, JSON at debug: summaries paced and carrying their fields; each attempt only at debug", async () => {
  const queue = uniqueQueue();
  const proxy = await startProxy(BROKER_PORT);
  proxy.refuse(true);
  try {
    const env: Record<string, string> = { NO_COLOR: "1", FIBRPC_TEST_OUTAGE_SUMMARY_MS: "1500" };
    for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("FIBRPC_") && v !== undefined) env[k] ??= v;
    const args = [
      "serve",
      "--workers",
      "2",
      "--queue",
      queue,
      "--url",
      `amqp://guest:guest@127.0.0.1:${proxy.port}`,
      "--log-format",
      "json",
      "--log-level",
      "debug",
    ];
    const proc = tracked(
      Bun.spawn([TEST_BIN, ...args], { cwd: "/", env, stdin: "ignore", stdout: "ignore", stderr: "pipe" }),
    );
    let log = "";
    const reading = (async () => {
      const decoder = new TextDecoder();
      for await (const chunk of proc.stderr) log += decoder.decode(chunk, { stream: true });
    })();
    const entries = () =>
      lines(log).map(
        (l) =>
          JSON.parse(l) as {
            time: string;
            level: string;
            worker?: string;
            message: string;
            fields?: Record<string, unknown>;
          },
      );
    const summaries = () => entries().filter((e) => e.message.startsWith("still cannot reach"));
    await eventually(
      async () => summaries().length,
      (n) => n >= 3,
      20_000,
      "3 summaries",
    );
    proxy.refuse(false);
    await eventually(
      async () => entries().some((e) => !e.worker && /^(re)?connected to/.test(e.message)),
      Boolean,
      15_000,
      "the line saying serve is back",
    );
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
    expect(first).toMatchObject({
      level: "warn",
      fields: {
        broker: expect.stringMatching(new RegExp(`^${MASKED}$`)),
        reason: expect.any(String),
        since: expect.any(String),
        workers: 2,
      },
    });
    // `since` is when the outage began: after the banner, at or before the warning saying so.
    expect(Date.parse(main[0]!.time)).toBeLessThanOrEqual(Date.parse(since));
    expect(Date.parse(since)).toBeLessThanOrEqual(Date.parse(first.time));
    // The pace, by serve's own clock at each decision (not by when each line got written): each
    // summary says how long since the previous line, at least the interval; and the outage's
    // length (downSeconds, to 0.1 s) grows by at least that much from one summary to the next.
    const intervals = said.map((e) =>
      seconds(new RegExp(`attempts? in ${DURATION}; next try in`).exec(e.message)![1]!),
    );
    const down = said.map((e) => e.fields!.downSeconds as number);
    const stamps = [first, ...said].map((e) => Date.parse(e.time));
    console.log(
      `summaries every ${stamps
        .slice(1)
        .map((t, i) => t - stamps[i]!)
        .join(
          ", ",
        )} ms by their log times, ${intervals.join(", ")} s by their own account (interval 1.5 s); down ${down.join(", ")} s; attempts per summary ${said.map((e) => e.fields!.attempts).join(", ")}`,
    );
    for (const interval of intervals) expect(interval).toBeGreaterThanOrEqual(1.5);
    expect(down[0]).toBeGreaterThanOrEqual(1.5 - 0.1);
    for (let i = 1; i < down.length; i++) expect(down[i]! - down[i - 1]!).toBeGreaterThanOrEqual(1.5 - 0.1 - 1e-9);
    for (const summary of said) {
      expect(summary.level).toBe("warn");
      expect(summary.fields).toMatchObject({
        broker,
        reason: expect.stringContaining("closed the connection during the handshake"),
        since,
        workersWaiting: 2,
        workers: 2,
        attempts: expect.any(Number),
        nextTryMs: expect.any(Number),
      });
    }
    const back = main.find((e) => /^(re)?connected to/.test(e.message))!;
    expect(back).toMatchObject({ level: "info", fields: { since, workers: 2, serving: 2 } });
    // Each failed attempt is one debug line of its worker, and counted once by the summaries.
    const failedAttempts = entries().filter(
      (e) => e.worker && e.level === "debug" && e.message.includes("closed the connection during the handshake"),
    );
    expect(back.fields!.attempts).toBe(failedAttempts.length);
    expect(back.fields!.attempts).toBe(proxy.refused);
    // At info and above, the main thread said: the banner, the warning, the summaries, back, SIGTERM, drained.
    expect(main).toHaveLength(2 + said.length + 3);
    expect(entries().filter((e) => e.worker && e.level !== "debug")).toEqual([]);
  } finally {
    await proxy.close();
  }
}, 60_000);

test("the release binary holds no knob for the summary interval (30 s, always)", async () => {
  const holds = async (bin: string) =>
    Buffer.from(await Bun.file(bin).bytes()).includes("FIBRPC_TEST_OUTAGE_SUMMARY_MS");
  expect(await holds(BIN)).toBe(false);
  expect(await holds(TEST_BIN)).toBe(true);
});
