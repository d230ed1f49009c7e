/**
 * deploy/prometheus/alerts.yaml and deploy/grafana/fibrpc.json as files: the rules have the shape
 * Prometheus loads (and promtool accepts them), each fires on made-up series of what it is about
 * and none on a healthy service (promtool test rules), the dashboard parses, reads the $datasource
 * variable and every panel queries something; the metric names are pulled out of their PromQL as
 * test/promql.ts does it (checked here on a table). That serve exports those names is checked
 * against a running serve in test/integration/metrics.test.ts.
 */
import { describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import {
  ALERTS_FILE,
  allPanels,
  DASHBOARD_FILE,
  expressionsOf,
  exportedNames,
  metricNames,
  missingNames,
  promtool,
  readAlerts,
  readDashboard,
} from "../promql.ts";

const ROOT = resolve(import.meta.dir, "../..");

describe("metric names in PromQL", () => {
  const cases: { expr: string; names: string[] }[] = [
    {
      expr: 'sum by (outcome) (rate(fibrpc_requests_total{outcome="error",job=~"$job"}[$__rate_interval]))',
      names: ["fibrpc_requests_total"],
    },
    {
      expr: "histogram_quantile(0.99, sum by (job, le) (rate(fibrpc_request_duration_seconds_bucket[5m]))) > 1",
      names: ["fibrpc_request_duration_seconds_bucket"],
    },
    {
      expr: 'sum by (job) (fibrpc_workers_up{job="fibrpc"}) == 0 or absent(fibrpc_workers_up{job="fibrpc"})',
      names: ["fibrpc_workers_up"],
    },
    { expr: "fibrpc_workers_up < fibrpc_workers", names: ["fibrpc_workers", "fibrpc_workers_up"] },
    { expr: "time() - max by (instance) (process_start_time_seconds)", names: ["process_start_time_seconds"] },
    {
      expr: "rate(a_total[5m] offset 1h) / on(instance) group_left(version) b_info * 1e3 unless c",
      names: ["a_total", "b_info", "c"],
    },
    {
      expr: "sum(rate(x_sum[5m:1m])) by (le) / ignoring (code) sum without (code) (rate(x_count[1h]))",
      names: ["x_count", "x_sum"],
    },
    { expr: 'label_values(fibrpc_build_info{job=~"$job"}, instance)', names: ["fibrpc_build_info"] },
    { expr: "label_values(job)", names: [] },
    { expr: '{__name__="named_by_matcher", code=~"a|b"} > bool 0', names: ["named_by_matcher"] },
    { expr: 'count by (version) (fibrpc_build_info{bun!="by"}) and on() vector(1)', names: ["fibrpc_build_info"] },
  ];
  for (const { expr, names } of cases) test(expr, () => expect(metricNames(expr)).toEqual(names));

  test("a name serve does not export is reported, with where it is used", () => {
    const exported = exportedNames('# TYPE fibrpc_x_total counter\nfibrpc_x_total{a="b"} 1\nh_bucket{le="+Inf"} 2\n');
    expect([...exported].sort()).toEqual(["fibrpc_x_total", "h_bucket"]);
    const expressions = [
      { where: "rule A", expr: "rate(fibrpc_x_total[5m]) / rate(fibrpc_typo_total[5m])" },
      { where: "panel B", expr: "histogram_quantile(0.5, rate(h_bucket[1m]))" },
    ];
    expect(missingNames(expressions, exported)).toEqual(["fibrpc_typo_total (rule A)"]);
  });
});

describe("deploy/prometheus/alerts.yaml", () => {
  const { groups } = readAlerts();
  const rules = groups.flatMap((g) => g.rules);

  test("groups of named rules, each with expr, for, a severity and a summary and description", () => {
    expect(groups.length).toBeGreaterThan(0);
    for (const group of groups) {
      expect(group.name).toBeString();
      expect(group.rules.length).toBeGreaterThan(0);
    }
    for (const rule of rules) {
      const where = `rule ${rule.alert}`;
      expect(rule.alert, where).toMatch(/^Fibrpc[A-Z]\w+$/);
      expect(rule.expr, where).toBeString();
      expect(metricNames(rule.expr).length, `${where} names a metric`).toBeGreaterThan(0);
      expect(rule.for, where).toMatch(/^\d+[smh]$/);
      expect(["critical", "warning", "info"], where).toContain(rule.labels?.severity ?? "(none)");
      expect(rule.annotations?.summary, where).toBeString();
      expect(rule.annotations?.description, where).toBeString();
      expect(Object.keys(rule).sort(), where).toEqual(["alert", "annotations", "expr", "for", "labels"]);
    }
    expect(new Set(rules.map((r) => r.alert)).size).toBe(rules.length);
  });

  test("covers no server consuming, error ratio, p99 latency, redeliveries, worker restarts and a broker blocking publishers", () => {
    const uses = (name: string) => rules.filter((r) => metricNames(r.expr).includes(name)).map((r) => r.alert);
    expect(rules.find((r) => r.alert === "FibrpcNoServerConsuming")?.expr).toMatch(/absent\(fibrpc_workers_up/);
    expect(uses("fibrpc_requests_total")).toEqual(["FibrpcErrorRatioHigh", "FibrpcServerErrors"]);
    expect(rules.find((r) => r.alert === "FibrpcLatencyP99High")?.expr).toMatch(
      /histogram_quantile\(0\.99, .*fibrpc_request_duration_seconds_bucket/,
    );
    expect(uses("fibrpc_deliveries_redelivered_total")).toEqual(["FibrpcRedeliveries"]);
    expect(uses("fibrpc_worker_restarts_total")).toEqual(["FibrpcWorkerRestarts"]);
    expect(uses("fibrpc_connections_blocked")).toEqual(["FibrpcBrokerBlockingPublishers"]);
  });

  test("promtool check rules accepts it", async () => {
    const proc = Bun.spawn([await promtool(), "check", "rules", ALERTS_FILE], { stdout: "pipe", stderr: "pipe" });
    const [out, err, code] = await Promise.all([
      new Response(proc.stdout).text(),
      new Response(proc.stderr).text(),
      proc.exited,
    ]);
    expect(code, out + err).toBe(0);
    expect(out).toContain(`SUCCESS: ${rules.length} rules found`);
  });

  test("promtool test rules: each alert fires on what it is about, and not on a healthy service", async () => {
    // promtool compares annotations word for word, so the cases run on a copy of the rules
    // without them: what is tested is each rule's expr, for and labels, as they are in the file.
    // The rules in WITH_ANNOTATIONS keep theirs, and their firing cases give the rendered text.
    const dir = mkdtempSync(join(tmpdir(), "fibrpc-alerts-"));
    try {
      const rulesFile = join(dir, "rules.yaml");
      const bare = {
        groups: groups.map((g) => ({
          ...g,
          rules: g.rules.map(({ annotations, ...rule }) =>
            WITH_ANNOTATIONS.includes(rule.alert!) ? { ...rule, annotations } : rule,
          ),
        })),
      };
      writeFileSync(rulesFile, JSON.stringify(bare)); // JSON is YAML
      const casesFile = join(dir, "cases.yaml");
      writeFileSync(
        casesFile,
        JSON.stringify({ rule_files: [rulesFile], evaluation_interval: "1m", tests: ALERT_CASES }),
      );
      const proc = Bun.spawn([await promtool(), "test", "rules", casesFile], { stdout: "pipe", stderr: "pipe" });
      const [out, err, code] = await Promise.all([
        new Response(proc.stdout).text(),
        new Response(proc.stderr).text(),
        proc.exited,
      ]);
      expect(code, out + err).toBe(0);
      expect(out).toContain("SUCCESS");
      // Every alert of the file is tested firing at least once.
      const tested = new Set(
        ALERT_CASES.flatMap((c) => c.alert_rule_test.filter((t) => t.exp_alerts.length > 0).map((t) => t.alertname)),
      );
      expect([...tested].sort()).toEqual(rules.map((r) => r.alert!).sort());
      // … and those that keep their annotations are checked rendered wherever they fire.
      for (const c of ALERT_CASES)
        for (const t of c.alert_rule_test)
          if (WITH_ANNOTATIONS.includes(t.alertname))
            for (const a of t.exp_alerts) expect(a.exp_annotations, `${t.alertname} at ${t.eval_time}`).toBeDefined();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

/** Cases for promtool test rules: series sampled every minute, alerts expected at eval_time. */
const A = { job: "fibrpc", instance: "a:9464" };
const series = (name: string, labels: Record<string, string>, values: string) => ({
  series: `${name}{${Object.entries(labels)
    .map(([k, v]) => `${k}="${v}"`)
    .join(",")}}`,
  values,
});
type Case = {
  interval: string;
  input_series: { series: string; values: string }[];
  alert_rule_test: {
    eval_time: string;
    alertname: string;
    exp_alerts: { exp_labels: Record<string, string>; exp_annotations?: Record<string, string> }[];
  }[];
};
/** Rules whose annotations stay in the copy promtool tests, so their text is checked as rendered. */
const WITH_ANNOTATIONS = ["FibrpcNoServerConsuming"];
/**
 * FibrpcNoServerConsuming's annotations as Prometheus renders them for a job: the description
 * names the job, so the alert's series must carry it in both branches of its expr (the sum and
 * absent()); without it the text reads "of job  has been".
 */
function noServerConsumingAnnotations(job: string): Record<string, string> {
  const rule = readAlerts()
    .groups.flatMap((g) => g.rules)
    .find((r) => r.alert === "FibrpcNoServerConsuming")!;
  const rendered = Object.fromEntries(
    Object.entries(rule.annotations!).map(([k, v]) => [k, v.replaceAll("{{ $labels.job }}", job)]),
  );
  for (const v of Object.values(rendered)) expect(v, "only {{ $labels.job }} is templated").not.toContain("{{");
  expect(rendered.description).toContain(`of job ${job} has been`);
  return rendered;
}
const ALERT_CASES: Case[] = [
  {
    // Healthy: all workers consuming, 9 ok calls/s, fast, nothing redelivered or restarted.
    interval: "1m",
    input_series: [
      series("fibrpc_workers_up", A, "2x30"),
      series("fibrpc_workers", A, "2x30"),
      series("fibrpc_requests_total", { ...A, outcome: "ok", code: "" }, "0+540x30"),
      series("fibrpc_requests_total", { ...A, outcome: "error", code: "N_TOO_LARGE" }, "0+6x30"),
      series("fibrpc_request_duration_seconds_bucket", { ...A, le: "0.01" }, "0+540x30"),
      series("fibrpc_request_duration_seconds_bucket", { ...A, le: "1" }, "0+546x30"),
      series("fibrpc_request_duration_seconds_bucket", { ...A, le: "+Inf" }, "0+546x30"),
      series("fibrpc_deliveries_redelivered_total", A, "0x30"),
      series("fibrpc_worker_restarts_total", A, "0x30"),
      series("fibrpc_connections_blocked", A, "0x30"),
    ],
    alert_rule_test: [
      "FibrpcNoServerConsuming",
      "FibrpcWorkersDown",
      "FibrpcErrorRatioHigh",
      "FibrpcServerErrors",
      "FibrpcLatencyP99High",
      "FibrpcRedeliveries",
      "FibrpcWorkerRestarts",
      "FibrpcBrokerBlockingPublishers",
    ].map((alertname) => ({ eval_time: "30m", alertname, exp_alerts: [] })),
  },
  {
    // Every worker stops consuming at 2m: nobody serves after 2 minutes, the process is short of workers after 5.
    interval: "1m",
    input_series: [series("fibrpc_workers_up", A, "2 2 0x10"), series("fibrpc_workers", A, "2x12")],
    alert_rule_test: [
      { eval_time: "3m", alertname: "FibrpcNoServerConsuming", exp_alerts: [] },
      {
        eval_time: "4m",
        alertname: "FibrpcNoServerConsuming",
        exp_alerts: [
          {
            exp_labels: { job: "fibrpc", severity: "critical" },
            exp_annotations: noServerConsumingAnnotations("fibrpc"),
          },
        ],
      },
      { eval_time: "6m", alertname: "FibrpcWorkersDown", exp_alerts: [] },
      { eval_time: "8m", alertname: "FibrpcWorkersDown", exp_alerts: [{ exp_labels: { ...A, severity: "warning" } }] },
    ],
  },
  {
    // No fibrpc serve scraped at all (another job's series only): absent() says it.
    interval: "1m",
    input_series: [series("fibrpc_workers_up", { job: "other", instance: "b:9464" }, "2x10")],
    alert_rule_test: [
      {
        eval_time: "3m",
        alertname: "FibrpcNoServerConsuming",
        exp_alerts: [
          {
            exp_labels: { job: "fibrpc", severity: "critical" },
            exp_annotations: noServerConsumingAnnotations("fibrpc"),
          },
        ],
      },
    ],
  },
  {
    // 10% of the requests refused as too large (the callers' doing): the ratio alert, not the server-side one.
    interval: "1m",
    input_series: [
      series("fibrpc_requests_total", { ...A, outcome: "ok", code: "" }, "0+540x30"),
      series("fibrpc_requests_total", { ...A, outcome: "error", code: "N_TOO_LARGE" }, "0+60x30"),
    ],
    alert_rule_test: [
      {
        eval_time: "20m",
        alertname: "FibrpcErrorRatioHigh",
        exp_alerts: [{ exp_labels: { job: "fibrpc", severity: "warning" } }],
      },
      { eval_time: "20m", alertname: "FibrpcServerErrors", exp_alerts: [] },
    ],
  },
  {
    // 2% INTERNAL: the server-side alert, under the 5% of the ratio alert.
    interval: "1m",
    input_series: [
      series("fibrpc_requests_total", { ...A, outcome: "ok", code: "" }, "0+540x30"),
      series("fibrpc_requests_total", { ...A, outcome: "error", code: "INTERNAL" }, "0+12x30"),
    ],
    alert_rule_test: [
      {
        eval_time: "20m",
        alertname: "FibrpcServerErrors",
        exp_alerts: [{ exp_labels: { job: "fibrpc", severity: "critical" } }],
      },
      { eval_time: "20m", alertname: "FibrpcErrorRatioHigh", exp_alerts: [] },
    ],
  },
  {
    // Half the requests take between 1 and 2.5 s; 0.2 redeliveries/s; a worker restarted at 2m.
    interval: "1m",
    input_series: [
      series("fibrpc_request_duration_seconds_bucket", { ...A, le: "1" }, "0+60x30"),
      series("fibrpc_request_duration_seconds_bucket", { ...A, le: "2.5" }, "0+120x30"),
      series("fibrpc_request_duration_seconds_bucket", { ...A, le: "+Inf" }, "0+120x30"),
      series("fibrpc_deliveries_redelivered_total", A, "0+12x30"),
      series("fibrpc_worker_restarts_total", A, "0 0 1x20"),
    ],
    alert_rule_test: [
      {
        eval_time: "20m",
        alertname: "FibrpcLatencyP99High",
        exp_alerts: [{ exp_labels: { job: "fibrpc", severity: "warning" } }],
      },
      {
        eval_time: "20m",
        alertname: "FibrpcRedeliveries",
        exp_alerts: [{ exp_labels: { job: "fibrpc", severity: "warning" } }],
      },
      {
        eval_time: "4m",
        alertname: "FibrpcWorkerRestarts",
        exp_alerts: [{ exp_labels: { ...A, severity: "warning" } }],
      },
      { eval_time: "20m", alertname: "FibrpcWorkerRestarts", exp_alerts: [] },
    ],
  },
  {
    // A memory alarm from 2m: the broker blocks both workers' connections of one process (the
    // other process publishes no reply, so the broker leaves it alone); a one-minute alarm on
    // another job clears before the alert's 2 minutes.
    interval: "1m",
    input_series: [
      series("fibrpc_connections_blocked", A, "0 0 2x10"),
      series("fibrpc_connections_blocked", { job: "fibrpc", instance: "b:9464" }, "0x12"),
      series("fibrpc_connections_blocked", { job: "other", instance: "c:9464" }, "0 0 1 0x9"),
    ],
    alert_rule_test: [
      { eval_time: "3m", alertname: "FibrpcBrokerBlockingPublishers", exp_alerts: [] },
      {
        eval_time: "4m",
        alertname: "FibrpcBrokerBlockingPublishers",
        exp_alerts: [{ exp_labels: { job: "fibrpc", severity: "critical" } }],
      },
    ],
  },
];

describe("deploy/grafana/fibrpc.json", () => {
  const dashboard = readDashboard();
  const panels = allPanels(dashboard).filter((p) => p.type !== "row");

  test("parses, has a datasource variable, and every panel queries through it", () => {
    const variable = dashboard.templating.list.find((v) => v.type === "datasource");
    expect(variable).toMatchObject({ name: "datasource", query: "prometheus" });
    expect(panels.length).toBeGreaterThanOrEqual(12);
    for (const panel of panels) {
      expect(panel.targets?.length, `panel "${panel.title}" has targets`).toBeGreaterThan(0);
      // biome-ignore lint/suspicious/noTemplateCurlyInString: Grafana's ${datasource} variable, as the dashboard holds it
      expect(panel.datasource?.uid, panel.title).toBe("${datasource}");
      for (const t of panel.targets!)
        expect(metricNames(t.expr ?? "").length, `panel "${panel.title}" ${t.refId} names a metric`).toBeGreaterThan(0);
    }
    expect(new Set(allPanels(dashboard).map((p) => p.id)).size).toBe(allPanels(dashboard).length);
  });

  test("every label a legend names is kept by its query's aggregation (else the legend shows it empty)", () => {
    for (const panel of panels)
      for (const t of panel.targets! as { refId?: string; expr?: string; legendFormat?: string }[]) {
        const kept = [...(t.expr ?? "").matchAll(/\bby\s*\(([^)]*)\)/g)].flatMap((m) =>
          m[1]!.split(",").map((l) => l.trim()),
        );
        for (const [, label] of (t.legendFormat ?? "").matchAll(/\{\{\s*(\w+)\s*\}\}/g))
          expect(kept, `panel "${panel.title}" ${t.refId}: {{${label}}}`).toContain(label!);
      }
  });

  test("shows what issue #14 asks for", () => {
    const names = new Set(expressionsOf().flatMap((e) => metricNames(e.expr)));
    for (const name of [
      "fibrpc_requests_total",
      "fibrpc_request_duration_seconds_bucket",
      "fibrpc_requests_in_flight",
      "fibrpc_workers_up",
      "fibrpc_deliveries_redelivered_total",
      "fibrpc_worker_restarts_total",
      "fibrpc_reconnects_total",
      "process_cpu_user_seconds_total",
      "process_resident_memory_bytes",
      "nodejs_eventloop_lag_p99_seconds",
    ])
      expect(names.has(name), name).toBeTrue();
  });

  test("shows the broker blocking serve's connections (issue #19)", () => {
    const names = new Set(
      allPanels(dashboard).flatMap((p) => (p.targets ?? []).flatMap((t) => metricNames(t.expr ?? ""))),
    );
    for (const name of ["fibrpc_connections_blocked", "fibrpc_connection_blocks_total"])
      expect(names.has(name), name).toBeTrue();
  });

  test("is what scripts/grafana-dashboard.ts writes", async () => {
    const dir = mkdtempSync(join(tmpdir(), "fibrpc-dashboard-"));
    try {
      const out = join(dir, "fibrpc.json");
      const proc = Bun.spawn([process.execPath, resolve(ROOT, "scripts/grafana-dashboard.ts"), out], {
        stdout: "pipe",
        stderr: "pipe",
      });
      expect(await proc.exited).toBe(0);
      expect(readFileSync(out, "utf8")).toBe(readFileSync(DASHBOARD_FILE, "utf8"));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
