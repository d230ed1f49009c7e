/**
 * What the frame writer (src/rpc/wire.ts) is worth: `fibrpc bench` against `fibrpc serve`, with
 * the frame writer and with amqplib's own publish/ack (FIBRPC_OUTLET=amqplib, for serve and the
 * caller alike), alternating, in one run. Prints calls/s at 1 and 100 in flight and the gain.
 *
 *   bun run bench:outlet            (needs ./fibrpc and a broker on 127.0.0.1:5672)
 */
import { join, resolve } from "node:path";
import { connect } from "amqplib";
import { machineLine, median, writeSection } from "./lib/markdown-section.ts";
import { startProcess, stop } from "./lib/processes.ts";

const ROOT = resolve(import.meta.dir, "..");
const BIN = join(ROOT, "fibrpc");
const URL = process.env.FIBRPC_URL ?? "amqp://guest:guest@127.0.0.1:5672";
const ROUNDS = Number(process.env.ROUNDS ?? 3);
const queue = `bench_outlet_${crypto.randomUUID().slice(0, 6)}`;

function startServe(outlet: string) {
  return startProcess([BIN, "serve", "--workers", "2", "--queue", queue, "--url", URL], /2\/2 workers serving/, {
    ...process.env,
    FIBRPC_OUTLET: outlet,
  });
}

function bench(outlet: string, concurrency: number, requests: number): number {
  const out = Bun.spawnSync(
    [
      BIN,
      "bench",
      "--url",
      URL,
      "--queue",
      queue,
      "--concurrency",
      String(concurrency),
      "--requests",
      String(requests),
      "--json",
    ],
    { cwd: "/", env: { ...process.env, FIBRPC_OUTLET: outlet } },
  );
  if (out.exitCode !== 0) throw new Error(`bench failed: ${out.stderr.toString()}`);
  return JSON.parse(out.stdout.toString()).callsPerSecond as number;
}

const results: Record<string, { c1: number[]; c100: number[] }> = {
  wire: { c1: [], c100: [] },
  amqplib: { c1: [], c100: [] },
};
try {
  for (let round = 0; round < ROUNDS; round++) {
    for (const outlet of ["wire", "amqplib"] as const) {
      const serve = await startServe(outlet);
      bench(outlet, 10, 2000); // warm-up
      results[outlet]!.c1.push(bench(outlet, 1, 4000));
      results[outlet]!.c100.push(bench(outlet, 100, 40000));
      await stop(serve);
    }
  }
} finally {
  const conn = await connect(URL);
  const ch = await conn.createChannel();
  await ch.deleteQueue(queue);
  await conn.close();
}
const gain = (key: "c1" | "c100") => median(results.wire![key]) / median(results.amqplib![key]) - 1;
const line = (label: string, key: "c1" | "c100") =>
  `| ${label} | ${Math.round(median(results.amqplib![key]))} | ${Math.round(median(results.wire![key]))} | ${(gain(key) * 100).toFixed(1)}% |`;
const table = [
  "| calls in flight | amqplib's publish/ack, calls/s | frame writer, calls/s | gain |",
  "| --- | --- | --- | --- |",
  line("1", "c1"),
  line("100", "c100"),
].join("\n");
console.log(table);
writeSection(
  join(ROOT, "docs/benchmarks.md"),
  "outlet",
  `## Outlet: the frame writer against amqplib's own publish/ack (\`bun run bench:outlet\`)

\`fibrpc bench\` against \`fibrpc serve --workers 2\`, fib(1), with the frame writer (src/rpc/wire.ts)
and with \`FIBRPC_OUTLET=amqplib\` (amqplib's own \`publish\`/\`ack\`, for serve and the caller alike),
alternating, median of ${ROUNDS} rounds, in one run. ${await machineLine()}.

${table}

The frame writer stays while its gain is 10% or more (issue #12): it writes a reply and its ack in
one socket write per event-loop turn, where amqplib's muxer writes each frame group a
\`setImmediate\` later. Its bytes are checked against amqplib's encoder (test/unit/wire.test.ts),
its attaching to the pinned amqplib and a logged, counted fallback by test/integration/outlet.test.ts.`,
);
