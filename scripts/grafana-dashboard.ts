/**
 * Writes deploy/grafana/fibrpc.json, the Grafana dashboard for fibrpc serve's /metrics:
 * `bun scripts/grafana-dashboard.ts deploy/grafana/fibrpc.json`. The JSON is committed (import it
 * in Grafana: Dashboards > New > Import); test/repo/deploy-files.test.ts checks it is this script's
 * output, and test/integration/metrics.test.ts that every metric it names is exported by serve.
 * Panels go left to right, three to a row of the grid (four in "Failures"); every query is filtered by $job and
 * $instance, and every panel reads the $datasource variable.
 */
const sel = 'job=~"$job",instance=~"$instance"';
// biome-ignore lint/suspicious/noTemplateCurlyInString: Grafana's ${datasource} variable, which Grafana expands
const ds = { type: "prometheus", uid: "${datasource}" };
let id = 0;
let x = 0;
let y = 0;
const panels: any[] = [];
function row(title: string) {
  panels.push({ id: ++id, type: "row", title, collapsed: false, gridPos: { h: 1, w: 24, x: 0, y }, panels: [] });
  y += 1;
  x = 0;
}
function panel(
  title: string,
  description: string,
  unit: string,
  targets: [string, string][],
  opts: { w?: number; type?: string; stack?: boolean; bars?: boolean; min?: number; textMode?: string } = {},
) {
  const w = opts.w ?? 8;
  if (x + w > 24) {
    x = 0;
    y += 8;
  }
  const type = opts.type ?? "timeseries";
  const p: any = {
    id: ++id,
    type,
    title,
    description,
    datasource: ds,
    gridPos: { h: 8, w, x, y },
    fieldConfig: {
      defaults: {
        unit,
        ...(opts.min !== undefined ? { min: opts.min } : {}),
        ...(type === "timeseries"
          ? {
              custom: {
                drawStyle: opts.bars ? "bars" : "line",
                lineWidth: 1,
                fillOpacity: opts.bars ? 80 : 10,
                showPoints: "never",
                stacking: { mode: opts.stack ? "normal" : "none", group: "A" },
              },
            }
          : {}),
      },
      overrides: [],
    },
    options:
      type === "timeseries"
        ? {
            legend: { displayMode: "list", placement: "bottom", showLegend: true },
            tooltip: { mode: "multi", sort: "desc" },
          }
        : {
            reduceOptions: { calcs: ["lastNotNull"], fields: "", values: false },
            textMode: opts.textMode ?? "value_and_name",
            colorMode: "none",
            graphMode: "none",
          },
    targets: targets.map(([expr, legendFormat], i) => ({
      refId: String.fromCharCode(65 + i),
      datasource: ds,
      expr,
      legendFormat,
      range: true,
      ...(type === "stat" ? { instant: true, range: false } : {}),
    })),
  };
  panels.push(p);
  x += w;
}
function endRow() {
  y += 8;
  x = 0;
}

row("Requests");
panel(
  "Calls/s by outcome",
  "Requests answered per second (fibrpc_requests_total), ok and error.",
  "reqps",
  [[`sum by (outcome) (rate(fibrpc_requests_total{${sel}}[$__rate_interval]))`, "{{outcome}}"]],
  { stack: true, min: 0 },
);
panel(
  "Error replies/s by code",
  "Error replies per second by error code (docs/protocol.md lists the codes).",
  "reqps",
  [[`sum by (code) (rate(fibrpc_requests_total{outcome="error",${sel}}[$__rate_interval]))`, "{{code}}"]],
  { stack: true, min: 0 },
);
panel(
  "Error ratio",
  "Share of requests answered with an error; server-side codes (INTERNAL, POISON_REQUEST, DEADLINE_EXCEEDED) separately.",
  "percentunit",
  [
    [
      `sum(rate(fibrpc_requests_total{outcome="error",${sel}}[$__rate_interval])) / sum(rate(fibrpc_requests_total{${sel}}[$__rate_interval]))`,
      "all errors",
    ],
    [
      `sum(rate(fibrpc_requests_total{code=~"INTERNAL|POISON_REQUEST|DEADLINE_EXCEEDED",${sel}}[$__rate_interval])) / sum(rate(fibrpc_requests_total{${sel}}[$__rate_interval]))`,
      "server-side",
    ],
  ],
  { min: 0 },
);
endRow();
panel(
  "Latency (delivery to reply)",
  "p50 and p99 from the fibrpc_request_duration_seconds histogram (buckets up to 2.5 s), and the mean.",
  "s",
  [
    [
      `histogram_quantile(0.5, sum by (le) (rate(fibrpc_request_duration_seconds_bucket{${sel}}[$__rate_interval])))`,
      "p50",
    ],
    [
      `histogram_quantile(0.99, sum by (le) (rate(fibrpc_request_duration_seconds_bucket{${sel}}[$__rate_interval])))`,
      "p99",
    ],
    [
      `sum(rate(fibrpc_request_duration_seconds_sum{${sel}}[$__rate_interval])) / sum(rate(fibrpc_request_duration_seconds_count{${sel}}[$__rate_interval]))`,
      "mean",
    ],
  ],
  { min: 0 },
);
panel(
  "In flight and consumers",
  "Requests delivered and not answered yet; workers consuming against workers configured (a worker is one consumer on the queue).",
  "short",
  [
    [`sum(fibrpc_requests_in_flight{${sel}})`, "in flight"],
    [`sum(fibrpc_workers_up{${sel}})`, "workers consuming"],
    [`sum(fibrpc_workers{${sel}})`, "workers configured"],
  ],
  { min: 0 },
);
panel(
  "Redeliveries/s",
  "Requests the broker delivered again (a server died or a connection dropped with them unacked).",
  "reqps",
  [[`sum by (instance) (rate(fibrpc_deliveries_redelivered_total{${sel}}[$__rate_interval]))`, "{{instance}}"]],
  { min: 0 },
);
endRow();
row("Failures");
panel(
  "Worker restarts",
  "Workers restarted after dying, per interval.",
  "short",
  [[`sum by (instance) (increase(fibrpc_worker_restarts_total{${sel}}[$__rate_interval]))`, "{{instance}}"]],
  { w: 6, bars: true, min: 0 },
);
panel(
  "Broker reconnects",
  "Reconnections of the workers to the broker, per interval.",
  "short",
  [[`sum by (instance) (increase(fibrpc_reconnects_total{${sel}}[$__rate_interval]))`, "{{instance}}"]],
  { w: 6, bars: true, min: 0 },
);
panel(
  "Broker blocking publishers",
  "Worker connections the broker blocks now (connection.blocked during a memory or disk alarm: their replies wait and /readyz says not ready; `rabbitmq-diagnostics alarms` on the broker says which alarm), and the blocks per interval.",
  "short",
  [
    [`sum by (instance) (fibrpc_connections_blocked{${sel}})`, "{{instance}} blocked now"],
    [`sum by (instance) (increase(fibrpc_connection_blocks_total{${sel}}[$__rate_interval]))`, "{{instance}} blocks"],
  ],
  { w: 6, min: 0 },
);
panel(
  "Outlet fallbacks",
  "Channels publishing through amqplib's own methods because the frame writer could not attach (0 with the pinned amqplib).",
  "short",
  [[`sum by (instance) (fibrpc_outlet_fallbacks_total{${sel}})`, "{{instance}}"]],
  { w: 6, min: 0 },
);
endRow();
row("Process");
panel(
  "CPU",
  "CPU time per second of each serve process (all its worker threads): 1 = one core busy.",
  "short",
  [
    [`sum by (instance) (rate(process_cpu_user_seconds_total{${sel}}[$__rate_interval]))`, "{{instance}} user"],
    [`sum by (instance) (rate(process_cpu_system_seconds_total{${sel}}[$__rate_interval]))`, "{{instance}} system"],
  ],
  { stack: true, min: 0 },
);
panel(
  "Memory",
  "Resident memory of each process; the JavaScript heaps of its workers (summed) and of its main thread.",
  "bytes",
  [
    [`sum by (instance) (process_resident_memory_bytes{${sel}})`, "{{instance}} resident"],
    [`sum by (instance) (fibrpc_worker_heap_used_bytes{${sel}})`, "{{instance}} workers' heap used"],
    [`sum by (instance) (nodejs_heap_size_used_bytes{${sel}})`, "{{instance}} main-thread heap used"],
  ],
  { min: 0 },
);
panel(
  "Event-loop lag",
  "Longest delay of any worker's event loop between scrapes (a heavy request holds its worker's loop while it computes), and the main thread's (supervisor, HTTP) p99 and max.",
  "s",
  [
    [`max by (instance) (fibrpc_worker_eventloop_lag_max_seconds{${sel}})`, "{{instance}} workers max"],
    [`max by (instance) (nodejs_eventloop_lag_p99_seconds{${sel}})`, "{{instance}} main p99"],
    [`max by (instance) (nodejs_eventloop_lag_max_seconds{${sel}})`, "{{instance}} main max"],
  ],
  { min: 0 },
);
endRow();
panel(
  "Open file descriptors",
  "Open descriptors against the limit.",
  "short",
  [
    [`sum by (instance) (process_open_fds{${sel}})`, "{{instance}} open"],
    [`min by (instance) (process_max_fds{${sel}})`, "{{instance}} limit"],
  ],
  { min: 0 },
);
panel(
  "Uptime",
  "Time since each serve process started.",
  "s",
  [[`time() - max by (instance) (process_start_time_seconds{${sel}})`, "{{instance}}"]],
  { type: "stat" },
);
panel(
  "Versions",
  "fibrpc_build_info of the running processes.",
  "short",
  [[`count by (version, commit, bun) (fibrpc_build_info{${sel}})`, "{{version}} ({{commit}}, bun {{bun}})"]],
  { type: "stat", textMode: "name" },
);
endRow();

const dashboard = {
  title: "fibrpc",
  uid: "fibrpc",
  description:
    "fibrpc serve: requests, latency, failures and process health (fibrpc's /metrics, see docs/operations.md)",
  tags: ["fibrpc", "rabbitmq"],
  editable: true,
  graphTooltip: 1,
  schemaVersion: 39,
  version: 1,
  time: { from: "now-1h", to: "now" },
  refresh: "30s",
  timezone: "",
  links: [],
  annotations: {
    list: [
      {
        builtIn: 1,
        datasource: { type: "grafana", uid: "-- Grafana --" },
        enable: true,
        hide: true,
        iconColor: "rgba(0, 211, 255, 1)",
        name: "Annotations & Alerts",
        type: "dashboard",
      },
    ],
  },
  templating: {
    list: [
      {
        name: "datasource",
        label: "Data source",
        type: "datasource",
        query: "prometheus",
        current: {},
        hide: 0,
        refresh: 1,
        regex: "",
        options: [],
      },
      {
        name: "job",
        label: "Job",
        type: "query",
        datasource: ds,
        query: "label_values(fibrpc_build_info, job)",
        definition: "label_values(fibrpc_build_info, job)",
        refresh: 2,
        includeAll: true,
        multi: true,
        allValue: ".*",
        current: {},
        options: [],
        sort: 1,
        hide: 0,
      },
      {
        name: "instance",
        label: "Instance",
        type: "query",
        datasource: ds,
        query: 'label_values(fibrpc_build_info{job=~"$job"}, instance)',
        definition: 'label_values(fibrpc_build_info{job=~"$job"}, instance)',
        refresh: 2,
        includeAll: true,
        multi: true,
        allValue: ".*",
        current: {},
        options: [],
        sort: 1,
        hide: 0,
      },
    ],
  },
  panels,
};
const out = process.argv[2];
if (!out) throw new Error("usage: bun scripts/grafana-dashboard.ts OUTPUT.json");
await Bun.write(out, `${JSON.stringify(dashboard, null, 2)}\n`);
