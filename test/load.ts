/**
 * A load generator for fault-injection tests: many calls in flight through fibrpc's own client,
 * every answer checked against the exact value, and an account of what became of each request.
 */
import { appendFileSync, mkdirSync } from "node:fs";
import { resolve } from "node:path";
import { createConsola } from "consola";
import { parseBrokerUrls } from "../src/broker-url.ts";
import { RpcClient, type CallOutcome } from "../src/rpc/client.ts";
import { RetryingCaller } from "../src/rpc/retry.ts";
import { fibDecimal } from "../src/fib.ts";

export interface LoadOptions {
  /** One broker URL, or several (comma-separated) tried in order. */
  url: string;
  queue: string;
  requests: number;
  concurrency: number;
  /** n of the i-th request. */
  n: (i: number) => number;
  /** Each attempt's time: with `retries`, a call's whole budget is timeoutMs × (retries + 1). */
  timeoutMs: number;
  retries?: number;
  /** Called after each answer, with the number answered so far (to inject a fault mid-run). */
  onAnswer?: (answered: number) => void;
  /** Reply queue of the client (default: Direct Reply-to). */
  replyQueue?: "direct" | "exclusive";
  /** Stop sending before `requests` when this says so (e.g. enough answers after a fault). */
  stopWhen?: () => boolean;
}

export interface LoadReport {
  sent: number;
  answered: number;
  wrong: number;
  /** Failed with a clear error, by code. */
  failed: Record<string, number>;
  retried: number;
  /** Replies ignored by the client as duplicates or late. */
  ignoredReplies: number;
  outcomes: (CallOutcome & { attempts: number })[];
  /** Times (ms since start) of each answer, to find the longest gap in service. */
  answerTimes: number[];
  /** The client's own log lines (retries, reconnections), for a failing test to show. */
  clientLog: string[];
}

export async function runLoad(o: LoadOptions): Promise<LoadReport> {
  const lines: string[] = [];
  const t0 = performance.now();
  const log = createConsola({
    level: 4,
    reporters: [{ log: (entry) => lines.push(`${(performance.now() - t0).toFixed(0)}ms ${entry.args.join(" ")}`) }],
  });
  const clientOptions = {
    broker: { urls: parseBrokerUrls([{ text: o.url, source: "test" }]), tls: {} },
    queue: o.queue,
    replyQueue: o.replyQueue ?? "direct",
    format: "text",
    timeoutMs: o.timeoutMs,
    log,
  } as const;
  const client = await RpcClient.connect(clientOptions);
  const caller = new RetryingCaller(client, () => RpcClient.connect(clientOptions), o.retries ?? 0, o.timeoutMs, log);
  const report: LoadReport = {
    sent: 0,
    answered: 0,
    wrong: 0,
    failed: {},
    retried: 0,
    ignoredReplies: 0,
    outcomes: [],
    answerTimes: [],
    clientLog: lines,
  };
  const started = t0;
  let next = 0;
  const worker = async () => {
    while (next < o.requests && !o.stopWhen?.()) {
      const i = next++;
      const n = o.n(i);
      report.sent++;
      // --retry spreads its attempts over one budget (rpc/retry.ts): give the call what its
      // attempts had together when each had timeoutMs, so a fault is ridden out as before.
      const outcome = await caller.call(n, Date.now() + o.timeoutMs * (1 + (o.retries ?? 0)));
      report.outcomes.push(outcome);
      report.retried += outcome.attempts - 1;
      if (outcome.ok) {
        report.answered++;
        report.answerTimes.push(performance.now() - started);
        if (outcome.result !== fibDecimal(n)) report.wrong++;
        o.onAnswer?.(report.answered);
      } else {
        report.failed[outcome.code] = (report.failed[outcome.code] ?? 0) + 1;
      }
    }
  };
  await Promise.all(Array.from({ length: o.concurrency }, worker));
  report.ignoredReplies = lines.filter((l) => l.includes("ignored a reply")).length;
  await caller.close();
  return report;
}

/** The longest time without an answer, in ms. */
export function longestGap(times: number[]): number {
  let gap = 0;
  for (let i = 1; i < times.length; i++) gap = Math.max(gap, times[i]! - times[i - 1]!);
  return Math.round(gap);
}

/** One line per scenario, printed and kept in .test-results/resilience.txt. */
export function record(scenario: string, figures: Record<string, unknown>): void {
  const line = `${scenario}: ${Object.entries(figures)
    .map(([k, v]) => `${k} ${typeof v === "object" ? JSON.stringify(v) : v}`)
    .join(", ")}`;
  console.log(`[resilience] ${line}`);
  const dir = resolve(import.meta.dir, "../.test-results");
  mkdirSync(dir, { recursive: true });
  appendFileSync(resolve(dir, "resilience.txt"), `${new Date().toISOString()} ${line}\n`);
}
