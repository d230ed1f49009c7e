/**
 * A time span for a log line or an error message, written the same way everywhere (serve's outage
 * and flow-control lines, call's BROKER_BLOCKED, bench's reconnection): "0.3 s", "14 s", "1m12s",
 * "2h05m", short enough for a log line, exact enough for an operator.
 */
export function duration(ms: number): string {
  if (ms < 9_950) return `${(ms / 1000).toFixed(1)} s`;
  if (ms < 59_500) return `${Math.round(ms / 1000)} s`;
  const s = Math.round(ms / 1000);
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  const m = Math.round(s / 60);
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, "0")}m`;
}
