/**
 * `fibrpc call -` over a long stream (issue 22): memory stays flat however many n come in. In the slow
 * tier: a million calls take about a hundred seconds.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { BIN, cleanupAfterFile, startServe, tracked, uniqueQueue, URL, type Server } from "../helpers.ts";

cleanupAfterFile();

const queue = uniqueQueue("call_stream_memory");
let serve: Server;

beforeAll(async () => {
  serve = await startServe(["--queue", queue, "--workers", "2"]);
});
afterAll(async () => {
  await serve.stop();
});

function callStream(input: ReadableStream<Uint8Array>) {
  const env: Record<string, string | undefined> = { ...process.env, NO_COLOR: "1", FIBRPC_URL: URL };
  for (const k of Object.keys(env)) if (k.startsWith("OTEL_") || k.startsWith("FIBRPC_")) delete env[k];
  env.FIBRPC_URL = URL;
  const cmd = [BIN, "call", "-", "--queue", queue];
  return tracked(Bun.spawn(cmd, { cwd: "/", env, stdin: input, stdout: "pipe", stderr: "inherit" }));
}

test("memory stays flat: 1,000,000 n streamed, peak RSS no higher than for 20,000 plus a margin", async () => {
  // Peak RSS of a short stream and a long one, the same in every other way: what call holds is the
  // window (--in-flight calls, twice as many results, a batch of words), never the stream. The margin,
  // 64 MiB, is the collector's: under this allocation rate the heap grows in steps (5 MiB above the
  // short stream in most runs); a leak of 70 bytes per n would exceed it.
  const peak = async (count: number) => {
    const seq = tracked(
      Bun.spawn(["bash", "-c", `seq 1 ${count} | awk '{ print $1 % 30 }'`], { stdout: "pipe", stderr: "ignore" }),
    );
    const proc = callStream(seq.stdout);
    const [lines, code] = await Promise.all([
      (async () => {
        let newlines = 0;
        for await (const chunk of proc.stdout) for (const byte of chunk) if (byte === 10) newlines++;
        return newlines;
      })(),
      proc.exited,
    ]);
    expect(code).toBe(0);
    expect(lines).toBe(count);
    return proc.resourceUsage()!.maxRSS;
  };
  const small = await peak(20_000);
  const large = await peak(1_000_000);
  const mib = (bytes: number) => Math.round(bytes / 2 ** 20);
  console.log(`call -: peak RSS ${mib(small)} MiB for 20,000 n, ${mib(large)} MiB for 1,000,000`);
  expect(large).toBeLessThan(small + 64 * 2 ** 20);
}, 600_000);
