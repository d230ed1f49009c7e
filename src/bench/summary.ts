/**
 * The text summary `fibrpc bench` prints on stdout (--json prints the result itself). Pure.
 * Rates and latencies are of answered calls only; failed calls are counted by code, and the
 * times without a broker and a run cut short each get a line, so that a run across a restart
 * never reads like a clean one.
 */
import { Masker } from "../mask.ts";
import { EXACT_BELOW, TAIL_DIGITS } from "./answers.ts";
import type { LatencySummary } from "./histogram.ts";
import { rateSeconds, type BenchResult } from "./run.ts";
import { quote } from "../printable.ts";

/**
 * "closed-loop, 100 in flight" or "open-loop at 2000 calls/s (achieved: 1998 sent/s)". The
 * achieved rate is of sends over the schedule (JSON achievedRate); the answers per second over
 * the whole run, the drain of the last calls included, are the summary's "answered/s" line.
 */
export function modeText(r: BenchResult): string {
  if (r.mode === "closed-loop") return `closed-loop, ${r.concurrency} in flight`;
  return `open-loop at ${r.rate} calls/s (achieved: ${perSecond(r.achievedRate)} sent/s)`;
}

const ms = (v: number) => `${v.toFixed(3)} ms`;
const at = (seconds: number) => `t=${seconds.toFixed(1)} s`;
/** A span of time: a short one in ms, so that it never reads "0.0 s". */
const span = (seconds: number) => (seconds < 1 ? `${Math.round(seconds * 1000)} ms` : `${seconds.toFixed(1)} s`);
/** Calls per second: whole from 10 on, two significant digits below (a --rate of 0.3 is not "0"). */
export const perSecond = (v: number) => (v >= 10 || v === 0 ? String(Math.round(v)) : String(Number(v.toPrecision(2))));

/** What the run was meant to do, for the cut-short line. */
export interface Planned {
  n: string;
  /** The largest n asked for: above EXACT_BELOW an answer is checked by its digits, not whole. */
  nMax?: number;
  queue: string;
  requests?: number;
  durationMs?: number;
}

export function formatSummary(r: BenchResult, o: Planned, masker: Masker = new Masker()): string {
  const errors = Object.entries(r.errors);
  const notCounted = r.failed > 0 ? `; ${r.failed} failed call${r.failed === 1 ? "" : "s"} not counted` : "";
  const lines = [
    `fibrpc bench: ${r.calls} call${r.calls === 1 ? "" : "s"} of fib(${o.n}) on queue ${quote(o.queue)}, ` +
      `${modeText(r)}, in ${r.seconds.toFixed(2)} s`,
    // Open loop: answers over the whole run, which ends when the calls still in flight after the
    // schedule are answered, so it can be well under the rate sent; named apart from it.
    r.mode === "open-loop"
      ? `  answered/s ${perSecond(r.callsPerSecond)}  (over ${overall(r)}, ` +
        `incl. the drain of the calls in flight at the end${notCounted})`
      : `  calls/s   ${perSecond(r.callsPerSecond)}${notCounted ? `  (answered calls only${notCounted})` : ""}`,
    // A percentile of nothing is not 0 ms. Failed calls (a timeout among them) have no latency: said when there
    // were some, as the rate line says it.
    r.latencyMs === null
      ? "  latency   none: no answered calls"
      : `  latency   ${percentiles(r.latencyMs)}  ` +
        `(from ${r.latencyFrom === "send" ? "each send" : "each intended start"}` +
        `${r.failed > 0 ? `; answered calls only, ${r.failed} failed` : ""})`,
  ];
  if (r.mode === "open-loop") {
    if (r.sendLagMs)
      lines.push(
        `  send lag  p50 ${ms(r.sendLagMs.p50)}  p99 ${ms(r.sendLagMs.p99)}  max ${ms(r.sendLagMs.max)}  ` +
          "(the load generator's own delay, included above)",
      );
    if (r.missed > 0)
      lines.push(
        `  missed    ${r.missed} call${r.missed === 1 ? "" : "s"} not sent: ` +
          `${r.maxOutstanding} were already in flight ` +
          "(failures, not in the latencies)",
      );
  }
  lines.push(
    `  errors    ${
      errors.length === 0
        ? (o.nMax ?? 0) < EXACT_BELOW
          ? "none (every answer checked against the exact value)"
          : `none (every answer checked: whole below n = ${EXACT_BELOW}, ` +
            `by its number of digits and last ${TAIL_DIGITS} digits above)`
        : errors.map(([code, count]) => `${code} ${count}`).join(", ")
    }`,
  );
  for (const outage of r.outages) {
    const until = outage.toSeconds === null ? `the end of the run (${at(r.seconds)})` : at(outage.toSeconds);
    const why = outage.lastError ? `; last error: ${outage.lastError.message}` : "";
    // Connected again before its end, but with no server on the queue until it ended.
    const noServer =
      outage.noServerFromSeconds === undefined
        ? ""
        : `, no server on queue ${quote(o.queue)} from ${at(outage.noServerFromSeconds)},`;
    lines.push(
      // Not "unreachable": an operator closing the connection, or a refused login, is an outage too.
      `  outage    no connection to the broker from ${at(outage.fromSeconds)}${noServer} to ${until} ` +
        `(${span(outage.seconds)}): ${outage.failed} call${outage.failed === 1 ? "" : "s"} failed${why}`,
    );
  }
  if (r.cutShort) {
    const plan =
      o.durationMs !== undefined
        ? `of the ${(o.durationMs / 1000).toFixed(1)} s planned`
        : o.requests !== undefined
          ? `after ${r.calls} of the ${o.requests} calls planned`
          : "";
    lines.push(
      `  cut short at ${at(r.cutShort.atSeconds)}${plan ? ` ${plan}` : ""}: ${r.cutShort.code}: ${r.cutShort.message}`,
    );
  }
  lines.push("");
  // Messages may quote a broker URL: passwords masked, whatever their source.
  return masker.mask(lines.join("\n"));
}

/** The span answered/s is over: "all 2.00 s", or the schedule's when the run took less (its last answer came early). */
function overall(r: BenchResult): string {
  const over = rateSeconds(r, r.seconds);
  const [shown, run] = [over.toFixed(2), r.seconds.toFixed(2)];
  return shown === run ? `all ${run} s` : `the ${shown} s of its schedule`;
}

function percentiles(l: LatencySummary): string {
  return `p50 ${ms(l.p50)}  p90 ${ms(l.p90)}  p99 ${ms(l.p99)}  p99.9 ${ms(l.p999)}  max ${ms(l.max)}`;
}

/**
 * --json's numbers to 12 significant digits: a time in seconds or a rate is the result of float arithmetic, and
 * its binary noise (0.02495078600000001) is no precision the measurement has.
 */
export function withoutFloatNoise(_key: string, value: unknown): unknown {
  return typeof value === "number" && !Number.isInteger(value) ? Number(value.toPrecision(12)) : value;
}
