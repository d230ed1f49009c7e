/**
 * Test helpers for the files in deploy/: the PromQL expressions of the alert rules and of the
 * Grafana dashboard, the metric names those expressions name, and the names a /metrics text
 * exports. Metric names are what the tests check against a running serve.
 */
import { readFileSync } from "node:fs";
import { resolve } from "node:path";

const ROOT = resolve(import.meta.dir, "..");

export const ALERTS_FILE = resolve(ROOT, "deploy/prometheus/alerts.yaml");
export const DASHBOARD_FILE = resolve(ROOT, "deploy/grafana/fibrpc.json");

/** PromQL words that are not metric names (binary operators, modifiers, literals). */
const KEYWORDS = new Set([
  "and",
  "or",
  "unless",
  "bool",
  "offset",
  "by",
  "without",
  "on",
  "ignoring",
  "group_left",
  "group_right",
  "inf",
  "nan",
  "start",
  "end",
]);

/**
 * The metric names an expression selects: identifiers that are neither functions (followed by
 * "("), keywords, label names (inside {…} or by/without/on/ignoring/group_*(…)), durations
 * ([5m], offset 1h) nor Grafana variables ($job, $__rate_interval), plus names given as
 * {__name__="…"}. Grafana's label_values(metric, label) counts its metric only.
 */
export function metricNames(expr: string): string[] {
  const names = new Set<string>();
  let e = expr;
  // label_values(selector, label) and label_values(label): keep the selector only.
  e = e
    .replace(/\blabel_values\s*\(\s*([^,()]*?)\s*,\s*\w+\s*\)/g, " $1 ")
    .replace(/\blabel_values\s*\(\s*\w+\s*\)/g, " ");
  // {__name__="x"} names a metric inside a matcher.
  for (const m of e.matchAll(/__name__\s*=\s*"([^"]+)"/g)) names.add(m[1]!);
  e = e
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""') // string literals
    .replace(/\{[^}]*\}/g, " ") // label matchers
    .replace(/\[[^\]]*\]/g, " ") // ranges and subqueries
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, " ") // label lists
    .replace(/\boffset\s+-?[\d.]+\w*/g, " ") // offset 1h
    .replace(/\$\{[^}]*\}|\$\w+/g, " "); // Grafana variables
  // An identifier not preceded by a digit, letter or dot (so not the "m" of 5m nor the "e3" of 1e3).
  for (const m of e.matchAll(/(?<![\w.:])[A-Za-z_:][\w:]*(?!\w)(\s*\()?/g)) {
    const word = m[0].replace(/\s*\($/, "");
    if (m[1] !== undefined || KEYWORDS.has(word.toLowerCase())) continue;
    names.add(word);
  }
  return [...names].sort();
}

export interface AlertRule {
  alert?: string;
  record?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

export function readAlerts(): { groups: { name: string; rules: AlertRule[] }[] } {
  return Bun.YAML.parse(readFileSync(ALERTS_FILE, "utf8")) as never;
}

// Grafana's dashboard model, as far as the tests read it.
interface Target {
  refId?: string;
  expr?: string;
}
export interface Panel {
  id: number;
  type: string;
  title: string;
  targets?: Target[];
  panels?: Panel[];
  datasource?: { type?: string; uid?: string };
}
export interface Dashboard {
  title: string;
  panels: Panel[];
  templating: { list: { name: string; type: string; query: string | { query: string } }[] };
}

export function readDashboard(): Dashboard {
  return JSON.parse(readFileSync(DASHBOARD_FILE, "utf8")) as Dashboard;
}

/** Every panel, those inside collapsed rows included. */
export function allPanels(dashboard: Dashboard): Panel[] {
  return dashboard.panels.flatMap((p) => [p, ...(p.panels ?? [])]);
}

/** Every PromQL expression of a file, with where it is (for the failure message). */
export function expressionsOf(): { where: string; expr: string }[] {
  const found: { where: string; expr: string }[] = [];
  for (const group of readAlerts().groups)
    for (const rule of group.rules) found.push({ where: `alerts.yaml ${rule.alert ?? rule.record}`, expr: rule.expr });
  const dashboard = readDashboard();
  for (const panel of allPanels(dashboard))
    for (const t of panel.targets ?? [])
      if (t.expr) found.push({ where: `fibrpc.json panel "${panel.title}" ${t.refId}`, expr: t.expr });
  for (const v of dashboard.templating.list) {
    if (v.type !== "query") continue;
    found.push({
      where: `fibrpc.json variable $${v.name}`,
      expr: typeof v.query === "string" ? v.query : v.query.query,
    });
  }
  return found;
}

/** Names of the samples in a Prometheus text exposition (series that exist, not just declared). */
export function exportedNames(text: string): Set<string> {
  const names = new Set<string>();
  for (const line of text.split("\n")) {
    const m = /^([A-Za-z_:][\w:]*)[{ ]/.exec(line);
    if (m) names.add(m[1]!);
  }
  return names;
}

/** Which referenced names a /metrics text does not export, with where each is used. */
export function missingNames(expressions: { where: string; expr: string }[], exported: Set<string>): string[] {
  return expressions.flatMap(({ where, expr }) =>
    metricNames(expr)
      .filter((n) => !exported.has(n))
      .map((n) => `${n} (${where})`),
  );
}

/** Path of a promtool (scripts/ensure-promtool.sh fetches Debian's when none is installed). */
export async function promtool(): Promise<string> {
  const proc = Bun.spawn(["bash", resolve(ROOT, "scripts/ensure-promtool.sh")], { stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  if (code !== 0)
    throw new Error(
      `scripts/ensure-promtool.sh failed (${code}); promtool is needed to check the alert rules:\n${err}`,
    );
  return out.trim();
}
