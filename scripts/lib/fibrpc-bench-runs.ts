/**
 * What the benchmark scripts that put fibrpc builds or tracing settings side by side share
 * (bench.ts part g, bench/cpu-per-call.ts): the environments that turn tracing off or on, one
 * `fibrpc bench` run with its CPU time, CPU time of other processes from /proc, and rounds
 * interleaved so that a drift of the machine's load falls on every way alike.
 */
import { readdirSync, readFileSync, readlinkSync } from "node:fs";

/** This process's environment without OTEL_*: the shell's must not turn tracing on where it is meant to be off. */
export function withoutOtel(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("OTEL_") && v !== undefined) env[k] = v;
  return env;
}

/**
 * Tracing on, exporting to `endpoint` (an OTLP sink, scripts/lib/otlp-sink.ts): serve with its
 * default sampler (parentbased_always_on, so it follows the decision each request carries) and
 * bench sampling `ratio` of its calls.
 */
export function tracingOn(
  endpoint: string,
  ratio: string,
): { serve: Record<string, string>; bench: Record<string, string> } {
  const serve = { ...withoutOtel(), OTEL_EXPORTER_OTLP_ENDPOINT: endpoint };
  const bench = { ...serve, OTEL_TRACES_SAMPLER: "parentbased_traceidratio", OTEL_TRACES_SAMPLER_ARG: ratio };
  return { serve, bench };
}

/** One way of running fibrpc side by side with others: a build, its serve's and bench's environments, a queue of its own. */
export interface FibrpcWay {
  label: string;
  /** The fibrpc binary. */
  bin: string;
  queue: string;
  serveEnv: Record<string, string>;
  benchEnv: Record<string, string>;
}

export interface BenchRun {
  /** The load generator's JSON output, read field by field by each script. */
  json: any;
  /** Its own CPU time (user + system), from its rusage. */
  cpuSeconds: number;
}

/** A load generator that waits for every reply may hang on a lost one: killed after this. */
const LOAD_TIME_LIMIT_MS = 300_000;

/**
 * Runs a load generator that prints one JSON object (`fibrpc bench --json`, scripts/bench/ceiling-caller.ts)
 * from `/`, waited for asynchronously (an OTLP sink may answer in the calling process meanwhile): its
 * output and its CPU time. A non-zero exit, or anything on stderr unless `stderrAllowed`, fails the benchmark.
 */
export async function runLoad(cmd: string[], env: Record<string, string>, stderrAllowed = false): Promise<BenchRun> {
  const proc = Bun.spawn(cmd, { cwd: "/", env, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const limit = setTimeout(() => proc.kill("SIGKILL"), LOAD_TIME_LIMIT_MS);
  const [stdout, stderr, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  clearTimeout(limit);
  if (code !== 0 || (!stderrAllowed && stderr.trim() !== ""))
    throw new Error(`${cmd.join(" ")} exited ${code} (killed after ${LOAD_TIME_LIMIT_MS / 1000} s if null): ${stderr}`);
  const usage = proc.resourceUsage()!;
  return { json: JSON.parse(stdout), cpuSeconds: Number(usage.cpuTime.user + usage.cpuTime.system) / 1e6 };
}

/**
 * `fibrpc bench --n 1 --json` against `queue` (runLoad). Anything on its stderr (an export warning), a
 * non-zero exit or a call not answered fails the benchmark: a rate is only worth comparing when every call was.
 */
export async function runBench(
  bin: string,
  url: string,
  queue: string,
  concurrency: number,
  requests: number,
  env: Record<string, string>,
): Promise<BenchRun> {
  const cmd = [bin, "bench", "--url", url, "--queue", queue, "--concurrency", String(concurrency)];
  cmd.push("--requests", String(requests), "--n", "1", "--json");
  const run = await runLoad(cmd, env);
  if (run.json.ok !== requests) throw new Error(`${cmd.join(" ")}: ${run.json.ok} of ${requests} calls answered`);
  return run;
}

const TICKS_PER_SECOND = 100; // USER_HZ: /proc/<pid>/stat's unit on Linux

/**
 * /proc/<pid>/stat's fields from the third (state) on: cut after the last ")", since the command
 * name before it may hold one (proc(5)). Field k of proc(5), counted from 1, is at index k - 3.
 */
function statFields(pid: number | string): string[] {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  return stat.slice(stat.lastIndexOf(")") + 2).split(" ");
}

/** A process's CPU time so far, all its threads (utime + stime: fields 14 and 15). */
export function cpuSeconds(pid: number): number {
  const fields = statFields(pid);
  return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
}

/** The AMQP port a broker URL names: its own, or the scheme's (5672, 5671 for amqps). */
export function amqpPortOf(url: string): number {
  const { port, protocol } = new URL(url);
  return Number(port || (protocol === "amqps:" ? 5671 : 5672));
}

/**
 * The local RabbitMQ's process: the one listening on the port of `url` (the broker benchmarked), found
 * as ss(8) does, by the listening socket's inode in /proc/net/tcp and the process holding it; so a
 * private node of another release (scripts/broker-node.sh, its own port) is measured, not the machine's.
 * The URL's host is not looked at: a remote broker is not measured, and one on the same port here would
 * be. Reading another user's /proc/<pid>/fd needs root: without it, the only beam.smp if there is one and
 * something listens on the port. Undefined on a machine whose broker is elsewhere.
 */
export function brokerPid(url: string): number | undefined {
  const port = amqpPortOf(url);
  const LISTEN = "0A";
  const inodes = new Set<string>();
  for (const table of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    let lines: string[];
    try {
      lines = readFileSync(table, "utf8").split("\n").slice(1);
    } catch {
      continue; // no IPv6 on this machine
    }
    for (const line of lines) {
      const [, local, , state, , , , , , inode] = line.trim().split(/\s+/);
      if (state === LISTEN && local && Number.parseInt(local.split(":")[1]!, 16) === port) inodes.add(inode!);
    }
  }
  const brokers: number[] = [];
  let unreadable = false;
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    let fds: string[];
    try {
      if (readFileSync(`/proc/${entry}/comm`, "utf8").trim() !== "beam.smp") continue;
      brokers.push(Number(entry));
      fds = readdirSync(`/proc/${entry}/fd`);
    } catch (err) {
      // Gone between the listing and the read, or another user's.
      if ((err as NodeJS.ErrnoException).code === "EACCES") unreadable = true;
      continue;
    }
    for (const fd of fds) {
      try {
        if (inodes.has(readlinkSync(`/proc/${entry}/fd/${fd}`).slice("socket:[".length, -1))) return Number(entry);
      } catch {
        // Closed while listed: a client's connection coming or going.
      }
    }
  }
  return inodes.size > 0 && unreadable && brokers.length === 1 ? brokers[0] : undefined;
}

/** `measure` for every way, `rounds` times, the order turned each round. */
export async function interleaved<T>(ways: T[], rounds: number, measure: (way: T) => Promise<void>): Promise<void> {
  for (let round = 0; round < rounds; round++)
    for (let i = 0; i < ways.length; i++) await measure(ways[(round + i) % ways.length]!);
}
