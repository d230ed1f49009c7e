/**
 * The tutorial's own Python code (Debian's python3-pika), run as-is against fibrpc: its client
 * calls `fibrpc serve`, and `fibrpc call` calls its server. Both use the tutorial's queue name,
 * rpc_queue, and host 'localhost' (on a private node of another release, its port comes from
 * test/interop/redirect/sitecustomize.py; the tutorial's files are unchanged). Where the broker
 * denies transient non-exclusive queues (4.3 here), the tutorial's server is refused: the test
 * says what it and `fibrpc call` print then.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { BROKER_RELEASE, rabbitmqctlJson, TRANSIENT_QUEUES_DENIED } from "../broker.ts";
import {
  BROKER_PORT,
  tracked,
  eventually,
  queueStats,
  rawChannel,
  run,
  startServe,
  cleanupAfterFile,
  uniqueQueue,
} from "../helpers.ts";

cleanupAfterFile();

// rpc_queue is the tutorial's (and fibrpc's default) queue: leave the broker as found.
let rpcQueueExisted = true;
beforeAll(async () => {
  rpcQueueExisted = await queueStats("rpc_queue").then(
    () => true,
    () => false,
  );
});
afterAll(async () => {
  const { conn, ch } = await rawChannel();
  if (!rpcQueueExisted) await ch.deleteQueue("rpc_queue");
  else if (restoreDurableRpcQueue) {
    await ch.deleteQueue("rpc_queue", { ifEmpty: true, ifUnused: true });
    await ch.assertQueue("rpc_queue", { durable: true });
  }
  await conn.close();
});

const TUTORIAL = resolve(import.meta.dir, "../interop/tutorial");
const PYTHON = "/usr/bin/python3"; // Debian's, where python3-pika is installed

function pythonProcess(script: string) {
  return tracked(
    Bun.spawn([PYTHON, resolve(TUTORIAL, script)], {
      cwd: TUTORIAL,
      // Unbuffered output only, so the test sees the lines as they are printed; the code is untouched.
      env: {
        ...process.env,
        PYTHONUNBUFFERED: "1",
        PYTHONPATH: resolve(import.meta.dir, "../interop/redirect"),
        FIBRPC_TEST_AMQP_PORT: String(BROKER_PORT),
      },
      stdout: "pipe",
      stderr: "pipe",
    }),
  );
}

/**
 * The tutorial's server declares rpc_queue not durable. fibrpc serve (the test above, or anyone on
 * this machine) declares it durable, for RabbitMQ 4.3, and the broker then refuses the tutorial's
 * declaration (inequivalent arg 'durable'): the documented price of sharing a queue with it (see
 * docs/operations.md, "Broker versions"). An idle, empty durable rpc_queue is deleted for the
 * test; afterAll declares it again if it was there before this file.
 */
let restoreDurableRpcQueue = false;
async function makeRoomForTheTutorialServer(): Promise<void> {
  // rabbitmqctl tells whether it is durable without declaring anything (a probing declaration of
  // a transient queue would close the connection on a broker that denies those).
  const rows = await rabbitmqctlJson(["list_queues", "name", "durable"]);
  const durable = rows.some((row) => row.name === "rpc_queue" && row.durable === true);
  if (!durable) return;
  expect(await queueStats("rpc_queue")).toEqual({ messageCount: 0, consumerCount: 0 });
  const { ch } = await rawChannel();
  await ch.deleteQueue("rpc_queue");
  restoreDurableRpcQueue = rpcQueueExisted;
}

/** Consumers on rpc_queue, or 0 if it does not exist. */
async function rpcQueueConsumers(): Promise<number> {
  return queueStats("rpc_queue").then(
    (s) => s.consumerCount,
    () => 0,
  );
}

test("the tutorial code here is the seed's, byte for byte", () => {
  const md = readFileSync(resolve(TUTORIAL, "rabbitmq-rpc-tutorial.zh.md"), "utf8");
  const blocks = [...md.matchAll(/```python\n([\s\S]*?)```/g)]
    .map((m) => m[1])
    .filter((b) => b!.includes("import pika"));
  expect(blocks).toEqual([
    readFileSync(resolve(TUTORIAL, "rpc_server.py"), "utf8"),
    readFileSync(resolve(TUTORIAL, "rpc_client.py"), "utf8"),
  ]);
  const seed = resolve(import.meta.dir, "../../../shared/seed/rabbitmq-rpc-tutorial.zh.md");
  if (Bun.file(seed).size > 0) expect(readFileSync(seed, "utf8")).toBe(md);
});

describe("interop on rpc_queue", () => {
  test("nothing else consumes rpc_queue (the tests below need it to themselves)", async () => {
    expect(await rpcQueueConsumers()).toBe(0);
  });

  test("the tutorial's Python client calls fibrpc serve", async () => {
    const server = await startServe(["--workers", "2"]);
    try {
      const client = pythonProcess("rpc_client.py");
      const [stdout, stderr, code] = await Promise.all([
        new Response(client.stdout).text(),
        new Response(client.stderr).text(),
        client.exited,
      ]);
      expect(stderr).toBe("");
      expect(code).toBe(0);
      expect(stdout).toBe(" [x] Requesting fib(30)\n [.] Got 832040\n");
    } finally {
      expect(await server.stop()).toBe(0);
    }
  });

  const tutorialServerCase = TRANSIENT_QUEUES_DENIED
    ? `RabbitMQ ${BROKER_RELEASE} (transient queues denied) refuses the tutorial's Python server; fibrpc call says no server declared rpc_queue`
    : `fibrpc call calls the tutorial's Python server (RabbitMQ ${BROKER_RELEASE} permits its transient rpc_queue)`;
  test(tutorialServerCase, async () => {
    await makeRoomForTheTutorialServer();
    if (TRANSIENT_QUEUES_DENIED) return tutorialServerRefused();
    const pyServer = pythonProcess("rpc_server.py");
    try {
      await eventually(rpcQueueConsumers, (n) => n === 1, 15_000, "the Python server consuming rpc_queue");
      const direct = await run(["call", "30", "0", "1", "10"]);
      expect(direct.stderr).toBe("");
      expect(direct.code).toBe(0);
      expect(direct.stdout).toBe("832040\n0\n1\n55\n");
      const exclusive = await run(["call", "--reply-queue", "exclusive", "20"]);
      expect(exclusive.stdout).toBe("6765\n");
      // A pipeline's request is the tutorial's decimal text (it died on JSON, and so did every server of its kind
      // started after, the request back in the queue): answered as the tutorial answers, the result alone.
      const results = uniqueQueue("interop_pipeline_results");
      const piped = await run(["call", "--reply-to", results, "--no-wait", "--json", "30"]);
      expect(piped.code, piped.stderr).toBe(0);
      const { correlation_id: sent } = JSON.parse(piped.stdout) as { correlation_id: string };
      const { ch } = await rawChannel();
      const reply = await eventually(
        () => ch.get(results, { noAck: true }),
        (message) => message !== false,
        15_000,
        "the tutorial server's reply in the pipeline's queue",
      );
      expect(reply && [reply.content.toString(), reply.properties.correlationId]).toEqual(["832040", sent]);
      expect((await run(["call", "10"])).stdout).toBe("55\n");
      expect(pyServer.exitCode).toBeNull();
    } finally {
      pyServer.kill("SIGTERM");
      await pyServer.exited;
    }
    const log = await new Response(pyServer.stdout).text();
    expect(log).toContain(" [.] fib(30)");
  });
});

/** Where transient queues are denied: what the tutorial's server and then `fibrpc call` say. */

async function tutorialServerRefused(): Promise<void> {
  const pyServer = pythonProcess("rpc_server.py");
  const [stderr, code] = await Promise.all([new Response(pyServer.stderr).text(), pyServer.exited]);
  // pika's own words: the connection closed by the broker, 541, naming the denied feature.
  expect(code).not.toBe(0);
  expect(stderr).toContain("541");
  expect(stderr).toContain("transient_nonexcl_queues");
  const call = await run(["call", "30"]);
  expect(call.code).toBe(69);
  expect(call.stdout).toBe("");
  expect(call.stderr.trim().split("\n")).toHaveLength(1);
  expect(call.stderr).toContain('queue "rpc_queue" does not exist on the broker');
  expect(call.stderr).toContain("start one with `fibrpc serve`");
}
