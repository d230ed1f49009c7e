/**
 * Operability: /metrics moving by exactly the calls made, /readyz following the broker
 * connection, every option in --help with its environment variable and default (from the option
 * table), configuration precedence, JSON logs.
 */
import { describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { envNameOf } from "../../src/config.ts";
import { COMMAND_OPTIONS, COMMANDS, helpOf, type OptionName } from "../../src/options.ts";
import { startProxy } from "../proxy.ts";
import {
  eventually,
  rawChannel,
  run,
  startServe,
  tempFolder,
  uniqueQueue,
  UNMASKED_PASSWORD,
  cleanupAfterFile,
  freePort,
  BROKER_PORT,
  metricValues,
  scrapeMetrics,
} from "../helpers.ts";
import { optionsOf } from "../unit/help-page.ts";

cleanupAfterFile();

/** Every series of serve's /metrics by name and labels. */
const scrape = async (port: number) => metricValues(await scrapeMetrics(port));

describe("metrics", () => {
  test("counters move by exactly the calls made, by outcome and code", async () => {
    const queue = uniqueQueue();
    const port = await freePort();
    const server = await startServe([
      "--workers",
      "2",
      "--queue",
      queue,
      "--http-port",
      String(port),
      "--max-n",
      "100",
    ]);
    const ok = 'fibrpc_requests_total{outcome="ok",code=""}';
    const tooLarge = 'fibrpc_requests_total{outcome="error",code="N_TOO_LARGE"}';
    const notInt = 'fibrpc_requests_total{outcome="error",code="NOT_AN_INTEGER"}';
    const before = await scrape(port);
    expect(before.fibrpc_workers_up).toBe(2);

    const { code } = await run([
      "call",
      "--queue",
      queue,
      ...Array.from({ length: 25 }, (_, i) => String(i)),
      "101",
      "102",
    ]);
    expect(code).toBe(76); // two N_TOO_LARGE error replies
    const { ch } = await rawChannel();
    const { queue: callback } = await ch.assertQueue("", { exclusive: true });
    let replies = 0;
    const three = new Promise<void>((resolve) =>
      ch.consume(callback, () => ++replies === 3 && resolve(), { noAck: true }),
    );
    for (const body of ["x", "1.5", "?"]) ch.sendToQueue(queue, Buffer.from(body), { replyTo: callback });
    await three;

    const after = await scrape(port);
    const delta = (series: string) => (after[series] ?? 0) - (before[series] ?? 0);
    expect(delta(ok)).toBe(25);
    expect(delta(tooLarge)).toBe(2);
    expect(delta(notInt)).toBe(3);
    expect(delta("fibrpc_request_duration_seconds_count")).toBe(30);
    expect(delta('fibrpc_request_duration_seconds_bucket{le="+Inf"}')).toBe(30);
    expect(after.fibrpc_worker_restarts_total).toBe(0);
    expect(after.fibrpc_requests_in_flight).toBe(0);
    // Read-only endpoints: another method is 405, naming the one they answer; HEAD is GET without the body.
    for (const path of ["/metrics", "/healthz", "/readyz"]) {
      const posted = await fetch(`http://127.0.0.1:${port}${path}`, { method: "POST" });
      expect([posted.status, posted.headers.get("allow"), await posted.text()]).toEqual([
        405,
        "GET, HEAD",
        `method POST not allowed: ${path} answers GET and HEAD\n`,
      ]);
      expect((await fetch(`http://127.0.0.1:${port}${path}`, { method: "HEAD" })).status).toBe(200);
    }
    expect(await server.stop()).toBe(0);
  });

  test("/readyz turns not ready while the broker is unreachable, ready again after recovery", async () => {
    const queue = uniqueQueue();
    const port = await freePort();
    const proxy = await startProxy(BROKER_PORT);
    try {
      const server = await startServe([
        "--workers",
        "2",
        "--queue",
        queue,
        "--http-port",
        String(port),
        "--url",
        `amqp://guest:guest@127.0.0.1:${proxy.port}`,
      ]);
      const readyz = async () => {
        const response = await fetch(`http://127.0.0.1:${port}/readyz`);
        return { status: response.status, text: await response.text() };
      };
      expect(await readyz()).toEqual({ status: 200, text: "ready: 2/2 workers consuming\n" });
      expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);
      proxy.refuse(true);
      proxy.cut();
      const down = await eventually(readyz, (r) => r.status === 503, 10_000, "/readyz 503");
      expect(down.text).toMatch(/^not ready: [01]\/2 workers consuming\n$/);
      expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200); // alive all along
      proxy.refuse(false);
      await eventually(readyz, (r) => r.status === 200, 15_000, "/readyz 200 after recovery");
      const metrics = await scrape(port);
      expect(metrics.fibrpc_reconnects_total).toBeGreaterThanOrEqual(2);
      expect(await server.stop()).toBe(0);
    } finally {
      await proxy.close();
    }
  });
});

describe("configuration", () => {
  // The README's table is checked against the option table in test/unit/options.test.ts; here,
  // the binary's --help against the same table.
  for (const command of COMMANDS) {
    test(`${command} --help lists its options from the table, each with its environment variable and default`, async () => {
      // Wide enough that no word is cut: each description, its lines joined, is the table's.
      const { stdout, code } = await run([command, "--help"], { COLUMNS: "200" });
      expect(code).toBe(0);
      const flags = optionsOf(stdout).filter((o) => o.flag !== "help");
      expect(flags.map((f) => f.flag)).toEqual([...COMMAND_OPTIONS[command]]);
      for (const { flag, description } of flags) {
        expect(description, `${command} --${flag}`).toBe(helpOf(flag as OptionName, command));
        expect(description).toContain(`[env ${envNameOf(flag)}]`);
      }
    });
  }

  test("flag > environment > config file > default", async () => {
    const dir = tempFolder("fibrpc-config-");
    const file = join(dir, "fibrpc.env");
    writeFileSync(file, "# fibrpc settings\nFIBRPC_QUEUE=from_file_q\nFIBRPC_TIMEOUT=2s\n");
    const missing = (stderr: string) => /queue "([^"]+)" does not exist/.exec(stderr)?.[1];
    expect(missing((await run(["call", "1", "--config", file])).stderr)).toBe("from_file_q");
    expect(missing((await run(["call", "1"], { FIBRPC_CONFIG: file, FIBRPC_QUEUE: "from_env_q" })).stderr)).toBe(
      "from_env_q",
    );
    expect(
      missing(
        (await run(["call", "1", "--queue", "from_flag_q"], { FIBRPC_CONFIG: file, FIBRPC_QUEUE: "from_env_q" }))
          .stderr,
      ),
    ).toBe("from_flag_q");
    writeFileSync(file, "PATH=/nowhere\n");
    const bad = await run(["call", "1", "--config", file]);
    expect(bad.code).toBe(64);
    expect(bad.stderr).toContain("only FIBRPC_* settings belong there");
  });

  test("--log-format json: one object per line with time, level, worker, message", async () => {
    const queue = uniqueQueue();
    const server = await startServe([
      "--workers",
      "2",
      "--queue",
      queue,
      "--log-format",
      "json",
      "--log-level",
      "debug",
    ]);
    await run(["call", "--queue", queue, "1", "2", "3", "4"]);
    await server.waitForLog(/"worker":"worker-\d".*"message":"fib\(/);
    expect(await server.stop()).toBe(0);
    const entries = server.log
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line));
    for (const entry of entries) {
      expect(typeof entry.time).toBe("string");
      expect(["error", "warn", "info", "debug", "trace"]).toContain(entry.level);
      expect(typeof entry.message).toBe("string");
    }
    expect(entries.some((e) => e.worker === "worker-1" || e.worker === "worker-2")).toBe(true);
    expect(entries[0]).toMatchObject({
      level: "info",
      fields: { queue, workers: 2, queueType: "classic", brokers: [`amqp://guest:***@127.0.0.1:${BROKER_PORT}`] },
    });
  });
});

describe("several broker URLs", () => {
  test("call tries them in order; serve fails over to the next when its broker goes away", async () => {
    const queue = uniqueQueue();
    const proxy = await startProxy(BROKER_PORT);
    try {
      const viaProxy = `amqp://guest:guest@127.0.0.1:${proxy.port}`;
      const direct = `amqp://guest:guest@127.0.0.1:${BROKER_PORT}`;
      const server = await startServe([
        "--workers",
        "2",
        "--queue",
        queue,
        "--url",
        `${viaProxy},${direct}`,
        "--log-level",
        "debug",
      ]);
      await server.waitForLog(new RegExp(`connected to amqp://guest:\\*\\*\\*@127\\.0\\.0\\.1:${proxy.port}`));
      // The first broker "goes away": connections cut, new ones refused.
      proxy.refuse(true);
      proxy.cut();
      await server.waitForLog(
        new RegExp(
          `connected to amqp://guest:\\*\\*\\*@127\\.0\\.0\\.1:${BROKER_PORT}[\\s\\S]*connected to amqp://guest:\\*\\*\\*@127\\.0\\.0\\.1:${BROKER_PORT}`,
        ),
        10_000,
      );
      const { code, stdout } = await run([
        "call",
        "--queue",
        queue,
        "--url",
        `amqp://guest:guest@127.0.0.1:1,${viaProxy},${direct}`,
        "30",
      ]);
      expect(code).toBe(0);
      expect(stdout).toBe("832040\n");
      expect(await server.stop()).toBe(0);
      // None reachable: the line names the last one tried, and says the others were tried too.
      const none = await run(["call", "--url", `amqp://guest:guest@127.0.0.1:1,${viaProxy},amqp://127.0.0.1:2`, "30"]);
      expect(none.code).toBe(68);
      expect(none.stderr).toStartWith(
        "fibrpc: cannot reach the broker at amqp://127.0.0.1:2: connection refused (nor the 2 broker URLs before it); ",
      );
    } finally {
      await proxy.close();
    }
  });
});

describe("the suite's password-leak detector", () => {
  test("sees an unmasked password and accepts a masked one", () => {
    expect(UNMASKED_PASSWORD.test(`at amqp://guest:guest@127.0.0.1:${BROKER_PORT}`)).toBe(true);
    expect(UNMASKED_PASSWORD.test("at amqps://u:s3cret@h/vh")).toBe(true);
    expect(UNMASKED_PASSWORD.test(`at amqp://guest:***@127.0.0.1:${BROKER_PORT}`)).toBe(false);
    expect(UNMASKED_PASSWORD.test(`at amqp://127.0.0.1:${BROKER_PORT}`)).toBe(false);
  });
});
