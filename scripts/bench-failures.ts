/**
 * How fast `fibrpc call` tells each "no answer possible" case, against the real broker:
 * median wall time (process start to exit) of 20 runs each, next to the tutorial's client,
 * which waits forever when no server consumes its queue.
 *
 *   bun scripts/bench-failures.ts        (needs ./fibrpc built and a broker on 127.0.0.1:5672)
 *
 * Writes its table into docs/benchmarks.md (section "failures").
 */
import { readFileSync, writeFileSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { connect } from "amqplib";
import { machineLine, median, writeSection } from "./lib/markdown-section.ts";

const ROOT = resolve(import.meta.dir, "..");
const BIN = join(ROOT, "fibrpc");
const URL = "amqp://guest:guest@127.0.0.1:5672";
const RUNS = 20;
const TUTORIAL_WAIT_MS = 5000;

const suffix = crypto.randomUUID().slice(0, 8);
const emptyQueue = `fibrpc_bench_empty_${suffix}`;
const conn = await connect(URL);
const ch = await conn.createChannel();
await ch.assertQueue(emptyQueue, { durable: false });

const cases: { name: string; args: string[]; code: number }[] = [
  { name: "broker unreachable (connection refused)", args: ["--url", "amqp://guest:guest@127.0.0.1:1"], code: 68 },
  { name: "broker host does not resolve", args: ["--url", "amqp://guest:guest@no-such-host.invalid"], code: 68 },
  { name: "login refused (wrong password)", args: ["--url", "amqp://guest:wrong@127.0.0.1:5672"], code: 77 },
  { name: "request queue does not exist", args: ["--queue", `fibrpc_bench_missing_${suffix}`], code: 69 },
  { name: "queue exists, no consumer", args: ["--queue", emptyQueue], code: 69 },
];

const rows: string[] = [];
for (const c of cases) {
  const times: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const started = performance.now();
    const proc = Bun.spawnSync([BIN, "call", "30", ...c.args], { cwd: "/", stderr: "pipe", stdout: "pipe" });
    times.push(performance.now() - started);
    if (proc.exitCode !== c.code)
      throw new Error(`${c.name}: exit ${proc.exitCode}, expected ${c.code}: ${proc.stderr.toString()}`);
  }
  rows.push(`| ${c.name} | ${c.code} | ${median(times).toFixed(1)} ms | ${Math.max(...times).toFixed(1)} ms |`);
  console.log(rows.at(-1));
}

// The tutorial's client, its code unchanged but for the queue name (a fresh queue with no
// consumer, so no message is left behind on the machine's rpc_queue).
const dir = mkdtempSync(join(tmpdir(), "fibrpc-tutorial-"));
const client = readFileSync(join(ROOT, "test/interop/tutorial/rpc_client.py"), "utf8").replace(
  "routing_key='rpc_queue'",
  `routing_key='${emptyQueue}'`,
);
writeFileSync(join(dir, "rpc_client.py"), client);
const started = performance.now();
const tutorial = Bun.spawn(["/usr/bin/python3", join(dir, "rpc_client.py")], { stdout: "ignore", stderr: "ignore" });
const outcome = await Promise.race([
  tutorial.exited.then(() => "exited"),
  Bun.sleep(TUTORIAL_WAIT_MS).then(() => "waiting"),
]);
tutorial.kill("SIGKILL");
const tutorialRow =
  outcome === "waiting"
    ? `| tutorial client (Python), queue exists, no consumer | — | still waiting after ${TUTORIAL_WAIT_MS / 1000} s (it has no timeout) | |`
    : `| tutorial client (Python), queue exists, no consumer | — | exited after ${(performance.now() - started).toFixed(0)} ms | |`;
console.log(tutorialRow);

await ch.deleteQueue(emptyQueue);
await conn.close();

const table = `## Fast failures (\`fibrpc call\`, no answer possible)

Median and worst wall time of ${RUNS} runs, process start to exit, of \`fibrpc call 30\` in each
case; goal: under 200 ms for "no server" and "broker unreachable". Machine: ${await machineLine()}.
Measured ${new Date().toISOString().slice(0, 10)} with \`bun scripts/bench-failures.ts\`.

| case | exit | median | worst |
| --- | --- | --- | --- |
${rows.join("\n")}
${tutorialRow}`;
writeSection(join(ROOT, "docs/benchmarks.md"), "failures", table);
console.log("\nwritten to docs/benchmarks.md");
