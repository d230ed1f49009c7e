/**
 * What serve says while the broker blocks its publishers (flow control: RabbitMQ blocks a
 * connection that publishes during a memory or disk alarm, connection.blocked, and unblocks it
 * once the alarm clears). Each worker has its own connection and reports its own block; the
 * process says it once: one warning when the first connection is blocked, one line when none is
 * any more, with how long it lasted. Pure, as outage.ts: the supervisor feeds it the workers'
 * reports with the time and logs the lines it returns.
 */
import { duration, type OutageLine } from "./outage.ts";

export class BlockedLog {
  /** The blocked workers, with the broker's reason for each. */
  private readonly blockedWorkers = new Map<number, string>();
  private since: number | undefined;
  private total = 0;

  /** Worker connections blocked now. */
  get count(): number {
    return this.blockedWorkers.size;
  }

  /** The broker's reason, while a connection is blocked (the first blocked connection's). */
  get reason(): string | undefined {
    return this.blockedWorkers.values().next().value;
  }

  /** Times a worker's connection was blocked, since the start (a Prometheus counter). */
  get blocks(): number {
    return this.total;
  }

  /** The broker blocked `worker`'s connection, for `reason` ("low on memory"). */
  blocked(worker: number, reason: string, now: number): OutageLine[] {
    if (this.blockedWorkers.has(worker)) return [];
    this.total++;
    this.blockedWorkers.set(worker, reason);
    if (this.since !== undefined) return [];
    this.since = now;
    return [
      {
        level: "warn",
        message:
          `broker is blocking publishers: ${reason}; replies wait until its resource alarm clears, none is lost ` +
          `(rabbitmq-diagnostics alarms on the broker says which)`,
        fields: { reason, since: new Date(now).toISOString() },
      },
    ];
  }

  /** The broker unblocked `worker`'s connection, or (`lost`) that connection is gone. */
  unblocked(worker: number, lost: boolean, now: number): OutageLine[] {
    if (!this.blockedWorkers.delete(worker) || this.blockedWorkers.size > 0 || this.since === undefined) return [];
    const lasted = now - this.since;
    this.since = undefined;
    const fields = { blockedSeconds: Math.round(lasted / 100) / 10 };
    // A new connection is not blocked until it publishes during the alarm: if the alarm lasts,
    // the next reply blocks it again and the warning comes again.
    if (lost)
      return [
        {
          level: "info",
          message:
            `the blocked connections were lost after ${duration(lasted)} blocked; ` +
            `the broker blocks new ones again while its alarm lasts`,
          fields,
        },
      ];
    return [{ level: "info", message: `broker stopped blocking publishers after ${duration(lasted)}`, fields }];
  }

  /** `worker` is gone (it died or stopped): its connection with it. */
  gone(worker: number, now: number): OutageLine[] {
    return this.unblocked(worker, true, now);
  }
}
