/**
 * An asynchronous pipeline (issue 22, point 2): `fibrpc call - --reply-to QUEUE --no-wait` sends
 * 100,000 requests and exits once the broker has confirmed them all; the replies go to QUEUE, where a
 * next stage in another language (Debian's python3-pika) reads exactly one correct result per request,
 * though a serve was SIGKILLed in the middle (its unacked requests redelivered to the other one).
 */
import { expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  BIN,
  cleanupAfterFile,
  eventually,
  queueStats,
  rawChannel,
  ROOT,
  run,
  startServe,
  tempFolder,
  tracked,
  uniqueQueue,
  URL,
} from "../helpers.ts";

cleanupAfterFile();

const PYTHON = "/usr/bin/python3"; // Debian's, where python3-pika is installed
const NEXT_STAGE = join(ROOT, "test/interop/pipeline/next_stage.py");
const COUNT = 100_000;

test("100,000 requests with --no-wait, a serve SIGKILLed mid-way: the next stage reads exactly one correct result each", async () => {
  const queue = uniqueQueue("pipeline_requests");
  const results = uniqueQueue("pipeline_results");
  const victim = await startServe(["--workers", "2", "--queue", queue]);
  const survivor = await startServe(["--workers", "1", "--queue", queue]);
  const seq = tracked(
    Bun.spawn(["bash", "-c", `seq 0 ${COUNT - 1} | awk '{ print $1 % 500 }'`], { stdout: "pipe", stderr: "ignore" }),
  );
  const env: Record<string, string | undefined> = { ...process.env, NO_COLOR: "1", FIBRPC_URL: URL };
  for (const k of Object.keys(env)) if (k.startsWith("OTEL_")) delete env[k];
  const cmd = [BIN, "call", "-", "--queue", queue, "--reply-to", results, "--no-wait", "--json"];
  const call = tracked(Bun.spawn(cmd, { cwd: "/", env, stdin: seq.stdout, stdout: "pipe", stderr: "pipe" }));
  const sent = new Map<string, number>();
  let killed = false;
  const reading = (async () => {
    let text = "";
    for await (const chunk of call.stdout) {
      text += new TextDecoder().decode(chunk);
      const lines = text.split("\n");
      text = lines.pop()!;
      for (const line of lines) {
        const { n, correlation_id } = JSON.parse(line);
        sent.set(correlation_id, n);
      }
      // Mid-way: a third of the requests confirmed, many of them in the victim's hands.
      if (!killed && sent.size >= COUNT / 3) {
        killed = true;
        victim.proc.kill("SIGKILL");
      }
    }
  })();
  const [stderr, code] = await Promise.all([new Response(call.stderr).text(), call.exited, reading]);
  expect(stderr).toContain(
    `${COUNT} of ${COUNT} requests taken by the broker (confirmed) on queue ${JSON.stringify(queue)}; ` +
      `their replies go to queue ${JSON.stringify(results)}`,
  );
  expect(code).toBe(0);
  expect(killed).toBe(true);
  expect(sent.size).toBe(COUNT);
  expect(victim.proc.signalCode).toBe("SIGKILL");

  // The survivor works through the rest; every request answered, none left.
  await eventually(
    () => Promise.all([queueStats(queue), queueStats(results)]),
    ([requests, replies]) => requests.messageCount === 0 && replies.messageCount >= COUNT,
    120_000,
    "every request answered",
  );
  expect(await survivor.stop()).toBe(0);

  const stage = tracked(Bun.spawn([PYTHON, NEXT_STAGE, URL, results], { stdout: "pipe", stderr: "pipe" }));
  const [out, err, stageCode] = await Promise.all([
    new Response(stage.stdout).text(),
    new Response(stage.stderr).text(),
    stage.exited,
  ]);
  expect(stageCode, err).toBe(0);
  const report = JSON.parse(out) as {
    read: number;
    results: Record<string, number>;
    duplicates: number;
    transient: number;
    wrong: unknown[];
  };
  console.log(
    `pipeline: ${report.read} replies read, ${report.duplicates} duplicates (answered again after the SIGKILL)`,
  );
  expect(report.wrong).toEqual([]);
  // Persistent, as the requests were: results waiting in the durable queue survive a broker restart.
  expect(report.transient).toBe(0);
  expect(Object.keys(report.results)).toHaveLength(COUNT);
  // Each result is for a request call sent, with its n.
  for (const [id, n] of Object.entries(report.results)) expect(sent.get(id)).toBe(n);
  expect(report.read).toBe(COUNT + report.duplicates);
}, 300_000);

test("a pipeline's reply queue deleted before its replies: serve says so once, the results are not silently gone", async () => {
  const queue = uniqueQueue("pipeline_gone_requests");
  const replyTo = uniqueQueue("pipeline_gone_replies");
  // The requests wait in the queue: no server yet.
  const { ch } = await rawChannel();
  await ch.assertQueue(queue, { durable: true });
  const sent = await run(["call", "--queue", queue, "--reply-to", replyTo, "--no-wait", "1", "2", "3"]);
  expect(sent.code, sent.stderr).toBe(0);
  await ch.deleteQueue(replyTo);
  const server = await startServe(["--workers", "1", "--queue", queue]);
  await server.waitForLog(/came back from the broker/, 20_000);
  await eventually(
    () => queueStats(queue),
    (s) => s.messageCount === 0,
    20_000,
    "the requests taken",
  );
  expect(await server.stop()).toBe(0);
  const lines = server.log.split("\n").filter((line) => line.includes("came back from the broker"));
  expect(lines).toHaveLength(1);
  expect(lines[0]).toContain(
    `WARN  [worker-1] a persistent reply to queue "${replyTo}" came back from the broker (NO_ROUTE): the queue is gone, ` +
      "so its result is lost; declare it again (call --reply-to declares it) and send those requests again",
  );
});

test("a persistent request answered through Direct Reply-to: its reply is delivered, not sent back as unroutable", async () => {
  // The broker returns every mandatory message to a Direct Reply-to address though it delivers it: serve
  // publishes only a named queue's persistent replies mandatory, else each such reply would warn of a loss.
  const queue = uniqueQueue("pipeline_direct_requests");
  const gone = uniqueQueue("pipeline_direct_gone");
  const server = await startServe(["--workers", "1", "--queue", queue]);
  const { ch } = await rawChannel();
  const answered = new Promise<string>((resolve) => {
    void ch.consume("amq.rabbitmq.reply-to", (msg) => msg && resolve(msg.content.toString()), { noAck: true });
  });
  ch.sendToQueue(queue, Buffer.from("21"), {
    replyTo: "amq.rabbitmq.reply-to",
    correlationId: "direct-1",
    persistent: true,
  });
  expect(await answered).toBe("10946");
  // Then one to a queue that does not exist, from the same channel: its warning, which comes after any
  // for the first reply, shows serve has read the broker's returns that far.
  ch.sendToQueue(queue, Buffer.from("3"), { replyTo: gone, correlationId: "gone-1", persistent: true });
  await server.waitForLog(/came back from the broker/, 20_000);
  expect(await server.stop()).toBe(0);
  const lines = server.log.split("\n").filter((line) => line.includes("came back from the broker"));
  expect(lines).toHaveLength(1);
  expect(lines[0]).toContain(`a persistent reply to queue "${gone}" came back`);
});

test("a config file shared by waiting calls and pipelines: the option given nearer wins", async () => {
  const queue = uniqueQueue("pipeline_shared_config");
  const replyTo = uniqueQueue("pipeline_shared_results");
  // A team's file for its pipelines, with a --retry for its waiting calls.
  const config = join(tempFolder("fibrpc-pipeline-config-"), "fibrpc.env");
  writeFileSync(
    config,
    `FIBRPC_URL=${URL}\nFIBRPC_QUEUE=${queue}\nFIBRPC_REPLY_TO=${replyTo}\nFIBRPC_NO_WAIT=true\nFIBRPC_RETRY=2\n`,
  );
  const server = await startServe(["--workers", "1", "--queue", queue]);
  // The pipeline the file asks for: its FIBRPC_RETRY is for waiting calls, and refused only on their line.
  const piped = await run(["call", "--config", config, "7"]);
  expect(piped.code, piped.stderr).toBe(64);
  expect(piped.stderr).toMatch(/FIBRPC_RETRY in the config file applies to calls that wait for their reply/);
  // Asked for on the command line: the file's FIBRPC_RETRY is farther, so it is not for this call.
  const sent = await run(["call", "--config", config, "--reply-to", replyTo, "--no-wait", "7"]);
  expect(sent.code, sent.stderr).toBe(0);
  await eventually(
    () => queueStats(replyTo),
    (s) => s.messageCount === 1,
    20_000,
    "the pipeline's one result",
  );
  // --no-no-wait, nearer than the file's FIBRPC_REPLY_TO: a call that waits for its reply, with the file's --retry.
  const waited = await run(["call", "--config", config, "--no-no-wait", "30"]);
  expect(waited.code, waited.stderr).toBe(0);
  expect(waited.stdout).toBe("832040\n");
  expect((await queueStats(replyTo)).messageCount).toBe(1);
  expect(await server.stop()).toBe(0);
});
