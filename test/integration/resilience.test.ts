/**
 * Fault injection under load, against real brokers: connections cut, the broker application
 * restarted (on a private node, the machine's broker is untouched), a worker crashing, SIGTERM
 * and SIGKILL. Each scenario accounts for every request: answered, failed with a clear error,
 * or left in the queue; nothing lost, nothing answered twice.
 */
import { describe, expect, test } from "bun:test";
import { resolve } from "node:path";
import { Hold } from "../hold.ts";
import { startProxy } from "../proxy.ts";
import { longestGap, record, runLoad } from "../load.ts";
import { startPrivateNode } from "../broker.ts";
import {
  tracked,
  eventually,
  queueStats,
  ROOT,
  startServe,
  uniqueQueue,
  URL,
  cleanupAfterFile,
  BROKER_PORT,
} from "../helpers.ts";

cleanupAfterFile();

describe("connections dropped under load", () => {
  test("serve reconnects at its first attempt and keeps serving; every request answered once", async () => {
    const queue = uniqueQueue();
    const proxy = await startProxy(BROKER_PORT);
    try {
      const server = await startServe([
        "--workers",
        "2",
        "--queue",
        queue,
        "--url",
        `amqp://guest:guest@127.0.0.1:${proxy.port}`,
      ]);
      let cut = false;
      const report = await runLoad({
        url: URL,
        queue,
        requests: 3000,
        concurrency: 20,
        n: (i) => i % 500,
        timeoutMs: 30_000,
        onAnswer: (answered) => {
          if (answered === 500 && !cut) {
            cut = true;
            expect(proxy.cut()).toBe(2);
          }
        },
      });
      await server.waitForLog(/2\/2 workers serving[\s\S]*lost[\s\S]*2\/2 workers serving/);
      const stats = await queueStats(queue);
      // Both workers lose their connection at once: the longest gap between two answers is how
      // long serving stopped (recorded, not judged: it is this machine's speed).
      const gapMs = longestGap(report.answerTimes);
      record("connections cut (TCP proxy)", {
        sent: report.sent,
        answered: report.answered,
        failed: report.failed,
        left: stats.messageCount,
        duplicatesIgnored: report.ignoredReplies,
        longestGapMs: gapMs,
      });
      expect(report.wrong).toBe(0);
      expect(report.failed).toEqual({});
      expect(report.answered).toBe(report.sent);
      expect(stats.messageCount).toBe(0);
      // The broker stayed reachable through the proxy: each worker's first attempt to reconnect
      // succeeded, and serve said so in one line.
      expect(
        server.log.match(/reconnected to \S+ after .* \(\d+ failed attempts?\); 2\/2 workers serving/g) ?? [],
        server.log,
      ).toHaveLength(1);
      expect(server.log).toMatch(/reconnected to \S+ after .* \(0 failed attempts\); 2\/2 workers serving/);
      expect(await server.stop()).toBe(0);
    } finally {
      await proxy.close();
    }
  });
});

describe("the broker application restarted under load (private node)", () => {
  test("serve reconnects and keeps serving; with --retry every call is answered", async () => {
    // A node of the suite's release, stopped by the file's cleanup.
    const node = await startPrivateNode("fibrpc-restart");
    const nodeUrl = node.url;
    const queue = "rpc_queue";
    const server = await startServe(["--workers", "2", "--queue", queue, "--url", nodeUrl]);
    let downAt = 0;
    let restartedAt = 0;
    let answeredSoFar = 0;
    let answeredAtRestart = 0;
    let restart: Promise<void> | undefined;
    const report = await runLoad({
      url: nodeUrl,
      queue,
      // Keeps going through the restart, until 1000 more answers came after it.
      requests: 1_000_000,
      stopWhen: () => restartedAt > 0 && answeredSoFar > answeredAtRestart + 1000,
      concurrency: 20,
      n: (i) => i % 300,
      timeoutMs: 10_000,
      retries: 10,
      onAnswer: (answered) => {
        answeredSoFar = answered;
        if (answered === 500 && !restart) {
          restart = (async () => {
            const ctl = async (cmd: string) => (await node.ctl([cmd])).code;
            downAt = performance.now();
            expect(await ctl("stop_app")).toBe(0);
            expect(await ctl("start_app")).toBe(0);
            answeredAtRestart = answeredSoFar;
            restartedAt = performance.now();
          })();
        }
      },
    });
    await restart;
    await server.waitForLog(/lost[\s\S]*2\/2 workers serving/);
    // queueStats talks to the machine's broker; ask the private node instead.
    const left = await leftOnNode(nodeUrl, queue);
    record("broker application restarted (stop_app/start_app)", {
      sent: report.sent,
      answered: report.answered,
      failed: report.failed,
      retried: report.retried,
      left,
      duplicatesIgnored: report.ignoredReplies,
      brokerDownMs: Math.round(restartedAt - downAt),
      longestGapMs: longestGap(report.answerTimes),
    });
    expect(report.wrong).toBe(0);
    expect(report.failed).toEqual({});
    expect(report.answered).toBe(report.sent);
    expect(report.retried).toBeGreaterThan(0);
    expect(left).toBe(0);
    expect(server.log).not.toMatch(/died/);
    expect(await server.stop()).toBe(0);
  });
});

async function leftOnNode(url: string, queue: string): Promise<number> {
  const { connect } = await import("amqplib");
  const conn = await connect(url);
  try {
    const ch = await conn.createChannel();
    return (await ch.checkQueue(queue)).messageCount;
  } finally {
    await conn.close();
  }
}

describe("a worker forced to crash", () => {
  test("it is restarted, its request is redelivered and answered; serving continues", async () => {
    const queue = uniqueQueue();
    const server = await startServe(["--workers", "2", "--queue", queue], { FIBRPC_TEST_FAULTS: "crash-first=14" });
    const report = await runLoad({
      url: URL,
      queue,
      requests: 1000,
      concurrency: 10,
      n: (i) => (i === 300 ? 14 : 100 + (i % 50)),
      timeoutMs: 30_000,
    });
    await server.waitForLog(/worker \d died unexpectedly; restarting[\s\S]*2\/2 workers serving/);
    const stats = await queueStats(queue);
    record("worker crash", {
      sent: report.sent,
      answered: report.answered,
      failed: report.failed,
      left: stats.messageCount,
      restarts: server.log.match(/restarting/g)?.length ?? 0,
    });
    expect(report.wrong).toBe(0);
    expect(report.failed).toEqual({});
    expect(report.answered).toBe(report.sent);
    expect(stats.messageCount).toBe(0);
    expect(await server.stop()).toBe(0);
  });
});

describe("SIGTERM under load", () => {
  test("every request is answered or still in the queue; serve exits 0; another server finishes the rest", async () => {
    const queue = uniqueQueue();
    // Every computation is held until the test lets it go: 10 are, then SIGTERM comes while each
    // worker is in the middle of one and the others wait, however fast this machine computes.
    const hold = new Hold(300_000);
    const first = await startServe(["--workers", "2", "--queue", queue], { FIBRPC_TEST_FAULTS: hold.faults() });
    const releasing = (async () => {
      for (let i = 0; i < 10; i++) hold.release(await hold.next(30_000));
    })();
    let stopped: Promise<number> | undefined;
    let answeredSoFar = 0;
    let accountedAtStop: { answered: number; left: number } | undefined;
    let second: Awaited<ReturnType<typeof startServe>> | undefined;
    const report = await runLoad({
      url: URL,
      queue,
      requests: 120,
      concurrency: 120, // all in flight at once: most are still queued when SIGTERM comes
      n: () => 300_000,
      timeoutMs: 60_000,
      onAnswer: (answered) => {
        answeredSoFar = answered;
        if (answered === 10 && !stopped) {
          stopped = (async () => {
            first.proc.kill("SIGTERM");
            // The computations under way finish (the drain waits for them); the rest go back.
            hold.releaseAll();
            const code = await first.proc.exited;
            // No consumer now: what is not answered must be in the queue. Replies published
            // just before the exit may still be on their way to us, hence "eventually".
            const left = (await queueStats(queue)).messageCount;
            await eventually(
              async () => answeredSoFar + left,
              (total) => total === 120,
              10_000,
              "answered + left in queue = sent",
            );
            accountedAtStop = { answered: answeredSoFar, left };
            second = await startServe(["--workers", "2", "--queue", queue]);
            return code;
          })();
        }
      },
    });
    await releasing;
    const code = await stopped;
    expect(code).toBe(0);
    expect(first.log).toContain("SIGTERM: draining");
    record("SIGTERM under load", {
      sent: report.sent,
      answeredBeforeExit: accountedAtStop?.answered,
      leftInQueueAtExit: accountedAtStop?.left,
      answeredInTheEnd: report.answered,
      failed: report.failed,
      duplicatesIgnored: report.ignoredReplies,
    });
    expect(report.failed).toEqual({});
    expect(report.answered).toBe(report.sent);
    expect(accountedAtStop!.left).toBeGreaterThan(0);
    expect(report.ignoredReplies).toBe(0); // drained cleanly: nothing answered twice
    expect(await second!.stop()).toBe(0);
  });
});

describe("SIGKILL of a server under load, a second server running", () => {
  test("killed between reply and ack: the redelivered request is answered again, the caller keeps one answer", async () => {
    const queue = uniqueQueue();
    const victim = await startServe(["--workers", "1", "--queue", queue], {
      FIBRPC_TEST_FAULTS: "kill-after-reply=17",
    });
    const survivor = await startServe(["--workers", "1", "--queue", queue]);
    const report = await runLoad({
      url: URL,
      queue,
      requests: 2000,
      concurrency: 10,
      n: (i) => (i % 10 === 0 ? 17 : i % 200),
      timeoutMs: 30_000,
    });
    await victim.proc.exited;
    const stats = await queueStats(queue);
    record("SIGKILL between reply and ack", {
      sent: report.sent,
      answered: report.answered,
      failed: report.failed,
      left: stats.messageCount,
      duplicatesIgnored: report.ignoredReplies,
    });
    expect(victim.proc.signalCode).toBe("SIGKILL");
    expect(report.outcomes).toHaveLength(report.sent); // exactly one outcome per call
    expect(report.wrong).toBe(0);
    expect(report.failed).toEqual({});
    expect(report.answered).toBe(report.sent);
    expect(report.ignoredReplies).toBeGreaterThanOrEqual(1); // the duplicate came, and was ignored
    expect(stats.messageCount).toBe(0);
    expect(await survivor.stop()).toBe(0);
  });

  test("plain SIGKILL mid-load: every call answered exactly once", async () => {
    const queue = uniqueQueue();
    const victim = await startServe(["--workers", "2", "--queue", queue]);
    const survivor = await startServe(["--workers", "1", "--queue", queue]);
    let killed = false;
    const report = await runLoad({
      url: URL,
      queue,
      requests: 2000,
      concurrency: 20,
      n: (i) => i % 1000,
      timeoutMs: 30_000,
      onAnswer: (answered) => {
        if (answered === 400 && !killed) {
          killed = true;
          victim.proc.kill("SIGKILL");
        }
      },
    });
    const stats = await queueStats(queue);
    record("plain SIGKILL under load", {
      sent: report.sent,
      answered: report.answered,
      failed: report.failed,
      left: stats.messageCount,
      duplicatesIgnored: report.ignoredReplies,
    });
    expect(report.outcomes).toHaveLength(report.sent);
    expect(report.wrong).toBe(0);
    expect(report.failed).toEqual({});
    expect(report.answered).toBe(report.sent);
    expect(stats.messageCount).toBe(0);
    expect(await survivor.stop()).toBe(0);
  });
});

describe("client under faults", () => {
  test("calls in flight when the client's connection drops fail at once (exit 75); --retry completes them", async () => {
    const queue = uniqueQueue();
    // fib(30) is answered at once; each fib(100,000) is held in the server until the test lets it
    // go, so the calls after the first are surely in flight when the connection is cut. (Heavy, and quick to
    // compute once let go: the retried calls and the originals are computed one after the other by one worker,
    // within the --retry run's timeout, however busy the machine is; fib(999,999) took seconds each.)
    const hold = new Hold(100_000);
    const server = await startServe(["--workers", "1", "--queue", queue], { FIBRPC_TEST_FAULTS: hold.faults() });
    const proxy = await startProxy(BROKER_PORT);
    try {
      const url = `amqp://guest:guest@127.0.0.1:${proxy.port}`;
      const ns = ["30", "100000", "100000", "100000"];
      const run = (extra: string[]) =>
        tracked(
          Bun.spawn(
            [resolve(ROOT, "fibrpc"), "call", "--queue", queue, "--url", url, "--timeout", "30s", ...extra, ...ns],
            { cwd: "/", stdout: "pipe", stderr: "pipe" },
          ),
        );
      const plain = run([]);
      // Cut once the first answer is out (results print in argument order) and a call is held.
      const reader = plain.stdout.getReader();
      expect(new TextDecoder().decode((await reader.read()).value)).toBe("832040\n");
      const firstHeld = await hold.next();
      const cutAt = performance.now();
      proxy.cut();
      const code = await plain.exited;
      const failFastMs = Math.round(performance.now() - cutAt);
      const stderr = await new Response(plain.stderr).text();
      expect(code).toBe(75);
      // Each call in flight failed on the lost connection itself, none by running out its 30 s
      // --timeout (that would be TIMEOUT).
      const failures = stderr.trim().split("\n");
      expect(failures).toHaveLength(3);
      for (const line of failures)
        expect(line).toMatch(
          /^fib\(100000\): CONNECTION_LOST: the connection to the broker at amqp:\/\/guest:\*\*\*@127\.0\.0\.1:\d+ was lost/,
        );
      // The server still holds those three requests: let them through (their replies go nowhere).
      hold.release(firstHeld);
      for (let i = 0; i < 2; i++) hold.release(await hold.next());

      const retrying = run(["--retry", "3"]);
      const reader2 = retrying.stdout.getReader();
      const first = await reader2.read();
      await hold.next();
      proxy.cut();
      hold.releaseAll();
      let out = new TextDecoder().decode(first.value);
      for (;;) {
        const chunk = await reader2.read();
        if (chunk.done) break;
        out += new TextDecoder().decode(chunk.value);
      }
      expect(await retrying.exited).toBe(0);
      expect(
        out
          .trim()
          .split("\n")
          .map((line) => line.length),
      ).toEqual([6, 20899, 20899, 20899]);
      record("client connection cut", { failFastMs, withRetry: "4/4 answered" });
    } finally {
      await proxy.close();
      await server.stop();
    }
  });
});
