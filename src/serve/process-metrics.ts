/**
 * The process metrics every Prometheus user expects (`process_*`, `nodejs_*`), for the whole serve
 * process: its N Bun Workers are threads of it, so CPU, memory and file descriptors read on the
 * main thread count them all. Only the event-loop lag and the JS heap are the main thread's own.
 *
 * prom-client's default collectors, checked one by one under Bun (docs/operations.md, "Metrics
 * and alerts"); those that report nothing true here are dropped or replaced:
 * - kept: process_resident_memory_bytes / process_virtual_memory_bytes / process_heap_bytes (read
 *   from /proc/self/status), process_open_fds (/proc/self/fd), process_max_fds
 *   (/proc/self/limits), nodejs_eventloop_lag_* (perf_hooks.monitorEventLoopDelay, which Bun
 *   implements per thread since 1.2.22), nodejs_heap_size_*_bytes and nodejs_external_memory_bytes
 *   (process.memoryUsage(): the main thread's JavaScriptCore heap).
 * - replaced: process_cpu_*_seconds_total, because prom-client counts CPU from the moment its
 *   collector is created, not from the process's start as the Prometheus convention says (the
 *   startup is missing); process_start_time_seconds, because prom-client rounds it to the second.
 * - dropped: nodejs_active_handles/requests/resources (Bun's process._getActiveHandles() and
 *   getActiveResourcesInfo() return empty lists: always 0), nodejs_heap_space_size_* (JSC has no
 *   V8 heap spaces: Bun fills in "old" and zeros), nodejs_gc_duration_seconds (Bun emits no gc
 *   performance entries: never a sample), nodejs_version_info (the Node.js version Bun imitates;
 *   fibrpc_build_info carries the real Bun version).
 */
import { collectDefaultMetrics, Registry } from "prom-client";

const DROPPED = [
  "nodejs_active_handles",
  "nodejs_active_handles_total",
  "nodejs_active_requests",
  "nodejs_active_requests_total",
  "nodejs_active_resources",
  "nodejs_active_resources_total",
  "nodejs_heap_space_size_total_bytes",
  "nodejs_heap_space_size_used_bytes",
  "nodejs_heap_space_size_available_bytes",
  "nodejs_gc_duration_seconds",
  "nodejs_version_info",
];
/**
 * HELP for the main thread's event-loop series. prom-client's own ("The maximum recorded event
 * loop delay.") does not say that its collector resets the histogram at every scrape: each value
 * covers only the time since the previous scrape, by whichever scraper, so two Prometheus servers
 * scraping one process each see part of it. Said where an operator reads /metrics.
 */
const SINCE = "since the previous scrape of /metrics (by any scraper; reset at each)";
const EVENTLOOP_HELP: Record<string, string> = {
  nodejs_eventloop_lag_seconds:
    "Lag of the main thread's event loop in seconds: " +
    "a setImmediate probe started at the previous scrape of /metrics (by any scraper)",
  nodejs_eventloop_lag_min_seconds: `Shortest event-loop delay of the main thread ${SINCE}, in seconds`,
  nodejs_eventloop_lag_max_seconds: `Longest event-loop delay of the main thread ${SINCE}, in seconds`,
  nodejs_eventloop_lag_mean_seconds: `Mean event-loop delay of the main thread ${SINCE}, in seconds`,
  nodejs_eventloop_lag_stddev_seconds: `Standard deviation of the main thread's event-loop delays ${SINCE}, in seconds`,
  nodejs_eventloop_lag_p50_seconds: `50th percentile of the main thread's event-loop delays ${SINCE}, in seconds`,
  nodejs_eventloop_lag_p90_seconds: `90th percentile of the main thread's event-loop delays ${SINCE}, in seconds`,
  nodejs_eventloop_lag_p99_seconds: `99th percentile of the main thread's event-loop delays ${SINCE}, in seconds`,
};
const REPLACED = [
  "process_cpu_user_seconds_total",
  "process_cpu_system_seconds_total",
  "process_cpu_seconds_total",
  "process_start_time_seconds",
];

/**
 * When this process started, in seconds since the epoch. process.uptime() counts from the
 * process's start (measured: within a few ms of the parent's spawn call), and this is computed once
 * so a clock step later does not move it. /proc/self/stat's start tick plus /proc/stat's btime is
 * what ps shows, but btime is truncated to the second: up to 1 s early.
 */
const START_TIME_SECONDS = Date.now() / 1000 - process.uptime();

export type Sample = { value: number; labels?: Record<string, string | number>; metricName?: string };

/** A metric prom-client reads by calling `values` at each scrape (no state of its own). */
export function collected(name: string, help: string, type: "counter" | "gauge" | "histogram", values: () => Sample[]) {
  return { name, help, type, get: async () => ({ name, help, type, aggregator: "sum", values: values() }) };
}

/**
 * One registry for the life of the process: the event-loop histogram and the lag probe keep state
 * between scrapes (each scrape reports the lag since the previous one).
 */
export function processRegistry(): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  for (const name of [...DROPPED, ...REPLACED]) registry.removeSingleMetric(name);
  // A metric's HELP is its `help` field, read at each scrape (prom-client 15 Gauge.get()).
  for (const [name, help] of Object.entries(EVENTLOOP_HELP)) {
    const gauge = registry.getSingleMetric(name) as { help: string } | undefined;
    if (gauge) gauge.help = help;
  }
  const add = (...args: Parameters<typeof collected>) => registry.registerMetric(collected(...args) as never);
  // process.cpuUsage() is getrusage(RUSAGE_SELF): every thread, the workers' included, since start.
  add("process_cpu_user_seconds_total", "Total user CPU time spent in seconds (all threads)", "counter", () => [
    { value: process.cpuUsage().user / 1e6 },
  ]);
  add("process_cpu_system_seconds_total", "Total system CPU time spent in seconds (all threads)", "counter", () => [
    { value: process.cpuUsage().system / 1e6 },
  ]);
  add("process_cpu_seconds_total", "Total user and system CPU time spent in seconds (all threads)", "counter", () => {
    const { user, system } = process.cpuUsage();
    return [{ value: (user + system) / 1e6 }];
  });
  add("process_start_time_seconds", "Start time of the process since unix epoch in seconds", "gauge", () => [
    { value: START_TIME_SECONDS },
  ]);
  return registry;
}
