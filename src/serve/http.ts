/**
 * serve's HTTP endpoints (`--http-port`): /metrics in the Prometheus text format (prom-client's
 * registry and formatter), /healthz (the process answers) and /readyz (every worker connected and
 * consuming, and the broker not blocking their replies). fibrpc's counters come from the workers,
 * summed on each scrape (supervisor.collect); the process metrics (process-metrics.ts) are read on
 * the main thread, for the whole process.
 */
import { isIP } from "node:net";
import { Registry } from "prom-client";
import { usageError } from "../errors.ts";
import { bunVersion, commit, version } from "../version.ts";
import { collected, processRegistry, type Sample } from "./process-metrics.ts";
import { LATENCY_BUCKETS } from "./stats.ts";
import type { ServeSnapshot, Supervisor } from "./supervisor.ts";

export function metricsRegistry(current: () => ServeSnapshot): Registry {
  const registry = new Registry();
  // Each metric's values are read from the snapshot of the current scrape.
  const add = (
    name: string,
    help: string,
    type: "counter" | "gauge" | "histogram",
    values: (s: ServeSnapshot) => Sample[],
  ) => registry.registerMetric(collected(name, help, type, () => values(current())) as never);
  add("fibrpc_requests_total", "Requests answered, by outcome (ok, or error) and error code", "counter", (s) =>
    Object.entries(s.stats.requests).map(([code, value]) => ({
      value,
      labels: code === "ok" ? { outcome: "ok", code: "" } : { outcome: "error", code },
    })),
  );
  add(
    "fibrpc_request_duration_seconds",
    "Time from a request's delivery to its reply, in the server",
    "histogram",
    (s) => [
      ...LATENCY_BUCKETS.map((le, i) => ({
        value: s.stats.latencyBuckets[i]!,
        labels: { le },
        metricName: "fibrpc_request_duration_seconds_bucket",
      })),
      {
        value: s.stats.latencyBuckets[LATENCY_BUCKETS.length]!,
        labels: { le: "+Inf" },
        metricName: "fibrpc_request_duration_seconds_bucket",
      },
      { value: s.stats.latencySum, metricName: "fibrpc_request_duration_seconds_sum" },
      { value: s.stats.latencyCount, metricName: "fibrpc_request_duration_seconds_count" },
    ],
  );
  add(
    "fibrpc_requests_in_flight",
    "Requests delivered and not answered yet (heavy requests waiting their turn)",
    "gauge",
    (s) => [{ value: s.stats.inFlight }],
  );
  add(
    "fibrpc_worker_heap_used_bytes",
    "JavaScript heap in use by the workers, summed " +
      "(each Bun Worker has its own heap; the main thread's is nodejs_heap_size_used_bytes)",
    "gauge",
    (s) => [{ value: s.stats.heapUsedBytes }],
  );
  add(
    "fibrpc_worker_eventloop_lag_max_seconds",
    "Longest event-loop delay of any worker since the previous scrape of /metrics (by any scraper; reset at each): " +
      "a worker computing a heavy request holds its loop that long",
    "gauge",
    (s) => [{ value: s.stats.eventLoopLagMaxSeconds }],
  );
  add("fibrpc_workers", "Workers configured", "gauge", (s) => [{ value: s.workers }]);
  add("fibrpc_workers_up", "Workers connected and consuming", "gauge", (s) => [{ value: s.serving }]);
  add("fibrpc_worker_restarts_total", "Workers restarted after dying", "counter", (s) => [{ value: s.restarts }]);
  add("fibrpc_reconnects_total", "Broker reconnections of the workers", "counter", (s) => [
    { value: s.stats.reconnects },
  ]);
  add(
    "fibrpc_connections_blocked",
    "Worker connections the broker blocks now (flow control during a memory or disk alarm: their replies wait)",
    "gauge",
    (s) => [{ value: s.blocked }],
  );
  add(
    "fibrpc_connection_blocks_total",
    "Times the broker blocked a worker's connection (connection.blocked: a resource alarm)",
    "counter",
    (s) => [{ value: s.blocks }],
  );
  add(
    "fibrpc_outlet_fallbacks_total",
    "Channels publishing and acking through amqplib's own methods because the frame writer could not attach " +
      "(0 with the pinned amqplib)",
    "counter",
    (s) => [{ value: s.stats.outletFallbacks }],
  );
  add("fibrpc_build_info", "Always 1: the version, commit and Bun runtime of this fibrpc", "gauge", () => [
    { value: 1, labels: { version, commit, bun: bunVersion } },
  ]);
  add(
    "fibrpc_deliveries_redelivered_total",
    "Requests the broker delivered again (after a server died or a connection dropped)",
    "counter",
    (s) => [{ value: s.stats.redelivered }],
  );
  return registry;
}

const ENDPOINTS = ["/metrics", "/healthz", "/readyz"];

/** Listens on `hostname` (serve's --http-host: loopback unless told otherwise); a usage error if it cannot. */
export function startHttp(
  hostname: string,
  port: number,
  supervisor: Pick<Supervisor, "collect" | "state">,
): { url: string; stop(): void } {
  const processMetrics = processRegistry();
  const server = listen(hostname, port, {
    async fetch(request) {
      const { pathname } = new URL(request.url);
      // Read-only endpoints: a POST or DELETE is a client's mistake, said as such (Bun answers HEAD from GET).
      if (request.method !== "GET" && request.method !== "HEAD" && ENDPOINTS.includes(pathname))
        return new Response(`method ${request.method} not allowed: ${pathname} answers GET and HEAD\n`, {
          status: 405,
          headers: { allow: "GET, HEAD" },
        });
      if (pathname === "/metrics") {
        // One registry per scrape: overlapping scrapes never mix their figures.
        const snapshot = await supervisor.collect();
        const registry = Registry.merge([metricsRegistry(() => snapshot), processMetrics]);
        return new Response(await registry.metrics(), { headers: { "content-type": registry.contentType } });
      }
      if (pathname === "/healthz") return new Response("ok\n");
      if (pathname === "/readyz") {
        const { serving, workers, draining, blocked, blockedReason } = supervisor.state();
        // Blocked, serve takes requests but its replies wait for the broker: not ready.
        const ready = !draining && serving === workers && blocked === 0;
        const blocking =
          blocked === 0
            ? ""
            : `; broker is blocking publishers: ${blockedReason} (${blocked} of ${workers} connections blocked)`;
        return new Response(
          `${ready ? "ready" : "not ready"}: ${serving}/${workers} workers consuming` +
            `${draining ? " (draining)" : ""}${blocking}\n`,
          { status: ready ? 200 : 503 },
        );
      }
      return new Response("not found: try /metrics, /healthz or /readyz\n", { status: 404 });
    },
  });
  const host = hostname.includes(":") ? `[${hostname}]` : hostname;
  return { url: `http://${host}:${server.port}`, stop: () => server.stop(true) };
}

/** Bun.serve, with a port in use or an address not of this machine as usage errors (before any worker starts). */
function listen(hostname: string, port: number, handler: { fetch(request: Request): Promise<Response> }) {
  try {
    return Bun.serve({ hostname, port, ...handler });
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === "EADDRINUSE")
      throw usageError(`--http-port ${port} is already in use on ${hostname}; pick another port`);
    if (code === "EADDRNOTAVAIL" || code === "ENOTFOUND" || code === "EAI_NONAME")
      throw usageError(`--http-host ${hostname} is not an address of this machine`);
    // Bun 1.4.5 reports a host name that does not resolve as ENOTTY, or EINVAL, by the run.
    if ((code === "ENOTTY" || code === "EINVAL") && isIP(hostname) === 0)
      throw usageError(
        // Bun's code, not a resolver's, would mislead (ENOTTY): left out.
        `--http-host ${hostname} does not resolve to an address of this machine; ` +
          "give an IP address of this machine (127.0.0.1, or 0.0.0.0 for every interface)",
      );
    // Any other refusal of the system's is the address or port given, not a bug of fibrpc's.
    if (typeof code === "string")
      throw usageError(
        `cannot listen on --http-host ${hostname} --http-port ${port} (${code}); ` +
          "give an IP address of this machine (127.0.0.1, or 0.0.0.0 for every interface) and a free port",
      );
    throw err;
  }
}
