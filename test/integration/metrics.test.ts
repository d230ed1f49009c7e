/**
 * /metrics of a running serve (the compiled binary, started from `/`): every metric the alert
 * rules and the dashboard name is exported; the process metrics describe the whole process (its
 * worker threads included) and agree with what the kernel says in /proc/<pid>; fibrpc_build_info
 * says what `fibrpc --version` says; promtool finds nothing to lint in the exposition.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { Hold } from "../hold.ts";
import { expressionsOf, exportedNames, missingNames, promtool } from "../promql.ts";
import {
  cleanupAfterFile,
  eventually,
  run,
  startServe,
  uniqueQueue,
  type Server,
  freePort,
  metricValues,
  scrapeMetrics,
} from "../helpers.ts";

/** Samples of an exposition by series ("name" or "name{labels}"). */
const samples = (text: string) => new Map(Object.entries(metricValues(text)));

/** Fields of a /proc stat file, numbered as in proc(5) (14 = utime, 15 = stime, 22 = starttime). */
function procStat(path: string): (i: number) => number {
  const text = readFileSync(path, "utf8");
  const fields = text.slice(text.lastIndexOf(")") + 2).split(" "); // fields from 3 (state) on
  return (i) => Number(fields[i - 3]);
}
/** Clock ticks per second of /proc's times: USER_HZ, 100 on Linux whatever the kernel's HZ. */
const TICKS = 100;
/** CPU seconds of a process (all its threads, exited ones included), or of one of its threads. */
function cpuSeconds(pid: number, tid?: number): number {
  const f = procStat(tid === undefined ? `/proc/${pid}/stat` : `/proc/${pid}/task/${tid}/stat`);
  return (f(14) + f(15)) / TICKS;
}
/** CPU seconds of a process's main thread and of all its other threads (those alive now). */
function threadCpuSeconds(pid: number): { main: number; others: number } {
  const others = readdirSync(`/proc/${pid}/task`)
    .map(Number)
    .filter((tid) => tid !== pid)
    .reduce((sum, tid) => sum + cpuSeconds(pid, tid), 0);
  return { main: cpuSeconds(pid, pid), others };
}

let server: Server;
let port: number;
let queue: string;
let spawnedAt: number;
const scrape = () => scrapeMetrics(port);

beforeAll(async () => {
  queue = uniqueQueue();
  port = await freePort();
  spawnedAt = Date.now() / 1000;
  server = await startServe(["--workers", "2", "--queue", queue, "--http-port", String(port), "--max-n", "999999"]);
  // One ok and one error reply, so the labelled series exist.
  expect((await run(["call", "--queue", queue, "10"])).code).toBe(0);
  expect((await run(["call", "--queue", queue, "1000000"])).code).toBe(76); // N_TOO_LARGE (serve --max-n 999999)
});
// Before the file's cleanup (hooks run in the order they are registered), which kills what is left.
afterAll(async () => {
  expect(await server.stop()).toBe(0);
});
cleanupAfterFile();

describe("every metric deploy/ names is exported", () => {
  test("alerts.yaml and fibrpc.json against a live /metrics", async () => {
    const expressions = expressionsOf();
    expect(expressions.length).toBeGreaterThan(20);
    expect(missingNames(expressions, exportedNames(await scrape()))).toEqual([]);
  });

  test("promtool check metrics: no lint problem in the exposition", async () => {
    const proc = Bun.spawn([await promtool(), "check", "metrics"], {
      stdin: Buffer.from(await scrape()),
      stdout: "pipe",
      stderr: "pipe",
    });
    const [out, err, code] = await Promise.all([
      new Response(proc.stdout).text(),
      new Response(proc.stderr).text(),
      proc.exited,
    ]);
    expect(out + err).toBe("");
    expect(code).toBe(0);
  });
});

describe("process metrics describe the whole process", () => {
  test("resident memory within 10% of VmRSS, open fds as /proc/<pid>/fd, max fds as the limit", async () => {
    const pid = server.proc.pid;
    const m = samples(await scrape());
    const vmRss = Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))![1]) * 1024;
    const fds = readdirSync(`/proc/${pid}/fd`).length;
    const maxFds = Number(/^Max open files\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/limits`, "utf8"))![1]);
    console.log(
      `rss ${m.get("process_resident_memory_bytes")} vs VmRSS ${vmRss}; fds ${m.get("process_open_fds")} vs ${fds}; max fds ${m.get("process_max_fds")} vs ${maxFds}`,
    );
    expect(Math.abs(m.get("process_resident_memory_bytes")! - vmRss) / vmRss).toBeLessThan(0.1);
    expect(Math.abs(m.get("process_open_fds")! - fds)).toBeLessThanOrEqual(3);
    expect(m.get("process_max_fds")).toBe(maxFds);
    // The JS heap is the main thread's: some, and less than the process's memory.
    expect(m.get("nodejs_heap_size_used_bytes")).toBeGreaterThan(0);
    expect(m.get("nodejs_heap_size_used_bytes")).toBeLessThan(m.get("process_resident_memory_bytes")!);
    // The workers' heaps are their own (one per Bun Worker): some each, less than the process's memory.
    expect(m.get("fibrpc_worker_heap_used_bytes")).toBeGreaterThan(2 * 100_000);
    expect(m.get("fibrpc_worker_heap_used_bytes")).toBeLessThan(m.get("process_resident_memory_bytes")!);
  });

  test("start time: when the test spawned serve", async () => {
    const pid = server.proc.pid;
    const m = samples(await scrape());
    const start = m.get("process_start_time_seconds")!;
    // What ps says: boot time (whole seconds: /proc/stat's btime is truncated) plus the start tick.
    const btime = Number(/^btime (\d+)/m.exec(readFileSync("/proc/stat", "utf8"))![1]);
    const procStart = btime + procStat(`/proc/${pid}/stat`)(22) / TICKS;
    // serve's first log line (its banner, time to the millisecond), written once it was running.
    const bannerAt = Date.parse(/^(\S+) INFO {2}fibrpc /.exec(server.log)![1]!) / 1000;
    console.log(`start ${start}; spawned at ${spawnedAt}; first log line at ${bannerAt}; /proc says ${procStart}`);
    // In order: the test spawned it, it started, it logged. Not before the spawn (to the clock's
    // 50 ms), nor after its own first line; ps's figure is early (by btime's fraction), never late.
    expect(start).toBeGreaterThanOrEqual(spawnedAt - 0.05);
    expect(start).toBeLessThanOrEqual(bannerAt + 0.001);
    expect(procStart).toBeLessThanOrEqual(start + 0.01);
  });

  test("CPU: the kernel's count for the process, worker threads included", async () => {
    const pid = server.proc.pid;
    // Work for the workers only: calls of fib(999,999), as many as this machine needs for its
    // threads other than the main one to use 0.3 s of CPU more (the kernel's count, in 10 ms ticks).
    const start = threadCpuSeconds(pid);
    let calls = 0;
    await eventually(
      async () => {
        const { code } = await run(["call", "--queue", queue, "999999", "999999"]);
        expect(code).toBe(0);
        calls += 2;
        return threadCpuSeconds(pid).others - start.others;
      },
      (grown) => grown >= 0.3,
      60_000,
      "0.3 s more CPU on serve's threads other than the main one",
    );
    const threads = threadCpuSeconds(pid); // read before the process's total: it holds them all
    const before = cpuSeconds(pid);
    const m = samples(await scrape());
    const after = cpuSeconds(pid);
    const cpu = m.get("process_cpu_seconds_total")!;
    console.log(
      `cpu ${cpu} (user ${m.get("process_cpu_user_seconds_total")}, system ${m.get("process_cpu_system_seconds_total")}); /proc ${before}..${after}; ` +
        `main thread ${start.main} → ${threads.main}, other threads ${start.others} → ${threads.others} over ${calls} calls of fib(999999)`,
    );
    // /proc counts in 10 ms ticks.
    expect(cpu).toBeGreaterThanOrEqual(before - 0.02);
    expect(cpu).toBeLessThanOrEqual(after + 0.02);
    expect(m.get("process_cpu_user_seconds_total")! + m.get("process_cpu_system_seconds_total")!).toBeCloseTo(cpu, 2);
    // The fib work ran on the other threads (the workers), not on the main thread...
    expect(threads.main - start.main).toBeLessThan(threads.others - start.others);
    // ...and the count holds those threads: it exceeds the main thread's own by at least theirs.
    expect(cpu - threads.main).toBeGreaterThanOrEqual(threads.others - 0.02);
  });

  test("worker event-loop lag: at least as long as the test held a worker's thread", async () => {
    // A serve of the test build whose computations of fib(999,999) are held until released: the
    // worker's thread is blocked (as by a long computation) for as long as the test decides.
    const hold = new Hold(999_999);
    const heldQueue = uniqueQueue();
    const heldPort = await freePort();
    const held = await startServe(["--workers", "1", "--queue", heldQueue, "--http-port", String(heldPort)], {
      FIBRPC_TEST_FAULTS: hold.faults(),
    });
    const heldScrape = async () => samples(await scrapeMetrics(heldPort));
    try {
      // The first read starts the worker's sampler; each read resets it.
      await heldScrape();
      const call = run(["call", "--queue", heldQueue, "999999"]);
      const computation = await hold.next();
      const heldFrom = performance.now(); // the thread is blocked since before this...
      await Bun.sleep(200); // (how long to hold it: the assertion below uses what was measured)
      const heldTo = performance.now(); // ...and until after this
      hold.release(computation);
      const answered = await call;
      expect(answered.code).toBe(0);
      expect(answered.stdout.trimEnd()).toHaveLength(208_988);
      const m = await heldScrape();
      const blockedSeconds = (heldTo - heldFrom) / 1000;
      const lag = m.get("fibrpc_worker_eventloop_lag_max_seconds")!;
      console.log(
        `worker held ${blockedSeconds.toFixed(3)} s by the test; its event-loop lag max ${lag}; the main thread's ${m.get("nodejs_eventloop_lag_max_seconds")}`,
      );
      // The sampler ticks every 10 ms and reports a tick's lateness beyond that.
      expect(lag).toBeGreaterThanOrEqual(blockedSeconds - 0.011);
    } finally {
      hold.releaseAll();
      expect(await held.stop()).toBe(0);
    }
  });

  test("event-loop lag of the main thread: sampled, ordered, and within the process's lifetime", async () => {
    // Each scrape reports the delays sampled (every 10 ms) since the previous one, and the
    // setImmediate probe's value shows at the next scrape: scrape until a sample is in.
    const m = await eventually(
      async () => samples(await scrape()),
      (s) => s.get("nodejs_eventloop_lag_p99_seconds")! > 0,
      5_000,
      "an event-loop delay sampled",
    );
    const lifetime = Date.now() / 1000 - spawnedAt; // no delay of the process is longer than it has run
    const lag = (suffix: string) => m.get(`nodejs_eventloop_lag${suffix}_seconds`)!;
    for (const suffix of ["", "_min", "_mean", "_p50", "_p90", "_p99", "_max"]) {
      expect(lag(suffix), suffix).toBeGreaterThanOrEqual(0);
      expect(lag(suffix), suffix).toBeLessThanOrEqual(lifetime);
    }
    // One histogram: its percentiles in order (each is its bucket's upper end, so they are not
    // compared with the exact extremes), its mean between its extremes.
    expect(lag("_p50")).toBeLessThanOrEqual(lag("_p90"));
    expect(lag("_p90")).toBeLessThanOrEqual(lag("_p99"));
    expect(lag("_min")).toBeLessThanOrEqual(lag("_mean"));
    expect(lag("_mean")).toBeLessThanOrEqual(lag("_max"));
    expect(lag("_p99")).toBeGreaterThan(0);
  });

  test("the event-loop series say in their HELP that they cover the time since the previous scrape", async () => {
    // Each scrape resets them, whoever scrapes: with two scrapers each sees part, and /metrics says so.
    const help = new Map([...(await scrape()).matchAll(/^# HELP (\w+) (.*)$/gm)].map((m) => [m[1]!, m[2]!]));
    const names = [...help.keys()].filter((name) => /^(nodejs|fibrpc_worker)_eventloop_lag/.test(name)).sort();
    expect(names).toEqual(
      [
        "fibrpc_worker_eventloop_lag_max_seconds",
        ...["", "_max", "_mean", "_min", "_p50", "_p90", "_p99", "_stddev"].map(
          (s) => `nodejs_eventloop_lag${s}_seconds`,
        ),
      ].sort(),
    );
    for (const name of names)
      expect(help.get(name), name).toMatch(
        name === "nodejs_eventloop_lag_seconds"
          ? /at the previous scrape of \/metrics \(by any scraper\)/
          : /since the previous scrape of \/metrics \(by any scraper; reset at each\)/,
      );
  });

  test("no collector Bun cannot fill", async () => {
    const names = exportedNames(await scrape());
    for (const dropped of [
      "nodejs_active_handles_total",
      "nodejs_active_requests_total",
      "nodejs_active_resources_total",
      "nodejs_heap_space_size_used_bytes",
      "nodejs_version_info",
      "nodejs_gc_duration_seconds_count",
    ]) {
      expect(names.has(dropped), dropped).toBeFalse();
    }
  });
});

test("fibrpc_build_info says what fibrpc --version says", async () => {
  const { stdout, code } = await run(["--version"]);
  expect(code).toBe(0);
  const printed = /^fibrpc (\S+) \(commit (\S+), bun (\S+), \S+\)$/.exec(stdout.trim());
  expect(printed, stdout).not.toBeNull();
  const [, version, commit, bun] = printed!;
  const info = [...samples(await scrape())].filter(([series]) => series.startsWith("fibrpc_build_info"));
  expect(info).toEqual([[`fibrpc_build_info{version="${version}",commit="${commit}",bun="${bun}"}`, 1]]);
  // And they are the real thing: the package's version, a commit the build knew, the Bun that built it.
  expect(version).toBe((await Bun.file(`${import.meta.dir}/../../package.json`).json()).version);
  expect(commit).not.toBe("unknown");
  expect(bun).toBe(Bun.version);
});
