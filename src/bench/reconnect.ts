/**
 * bench's connection, kept through a broker restart. When the client's connection is lost, a new
 * one is opened in the background (rpc/retry.ts connectWithin: back-off, bounded by the run's
 * end) while the run goes on: the open loop keeps its schedule and each call due meanwhile fails at once, not
 * sent (CONNECTION_LOST; NO_CONSUMER once connected again to a queue with no server yet); the closed loop waits
 * (ready) instead of spinning. Each time without a connection is an Outage: when it began and ended on the bench's
 * clock, how many calls failed during it, and the last reason a reconnection failed; the summary prints them. An
 * outage lasts until a server consumes the queue again: the broker back, or the next of the list, may have none yet.
 */
import { FibrpcError } from "../errors.ts";
import type { CallOutcome, ClientLog, RpcClient } from "../rpc/client.ts";
import { duration } from "../duration.ts";
import { setUpError } from "../rpc/broker-errors.ts";
import { connectWithin } from "../rpc/retry.ts";
import { realTime, type Time } from "../rpc/time.ts";
import { awaitServer } from "../rpc/await-server.ts";
import { quote } from "../printable.ts";
import { realClock, type Caller, type Clock, type Outage } from "./run.ts";

export interface ReconnectingOptions {
  /**
   * Until when (ms since the epoch) a lost connection may be reopened, given when it was lost
   * (Infinity: until closed). With --duration the run's end bounds it (bench closes the caller
   * then); with --requests, nothing does, so bench gives --timeout after the loss: a call could
   * not be answered any later, and the run is cut short.
   */
  reconnectUntil: (lostAt: number) => number;
  log: ClientLog;
  /** The bench's clock (outages are on it). */
  clock?: Clock;
  /** Wall-clock time for reconnecting (deadlines are ms since the epoch). */
  time?: Time;
}

export class ReconnectingCaller implements Caller {
  private client: RpcClient;
  private reconnecting: Promise<void> | undefined;
  private closed = false;
  private current: Outage | undefined;
  readonly outages: Outage[] = [];
  /** Why the caller gave up: no new connection within its time, or a refusal retrying cannot fix. */
  failure: FibrpcError | undefined;
  /** Reconnected, the queue has no server yet (see lost()): what the calls not sent meanwhile say. */
  private noServerOn: string | undefined;
  /** Ends a wait for a server at close(). */
  private readonly closing = new AbortController();

  constructor(
    first: RpcClient,
    /** Opens a new client by `deadline` (ms since the epoch). */
    private readonly connect: (deadline: number) => Promise<RpcClient>,
    private readonly o: ReconnectingOptions,
  ) {
    this.client = first;
  }

  private get clock(): Clock {
    return this.o.clock ?? realClock;
  }

  /** False once it gave up reconnecting, or was closed: the run ends (cut short, if before its end). */
  get usable(): boolean {
    return !this.closed && this.failure === undefined;
  }

  async call(n: number, deadline: number): Promise<CallOutcome> {
    let outcome: CallOutcome;
    const client = this.client;
    if (client.usable) {
      outcome = await client.call(n, deadline);
      if (!outcome.ok && outcome.error?.refusal && this.failure === undefined) {
        // The broker refused the request (a write permission): a new connection would meet the
        // same refusal, so the run is cut short with it instead of reconnecting over and over.
        this.failure = outcome.error;
        this.o.log.warn(`stopping: ${outcome.error.message}`);
      } else if (!client.usable && client === this.client && !this.closed) {
        // The call failed with the connection (calls in flight fail as it goes): the outage begins.
        this.lost();
      }
    } else {
      this.lost();
      // Connected again, with no server on the queue yet: the call's error says that, not a lost connection.
      const error =
        this.noServerOn === undefined
          ? new FibrpcError(
              "CONNECTION_LOST",
              `the request could not be sent: no connection to the broker at ${client.broker} (reconnecting)`,
              { reason: "not-sent", broker: client.broker, outage: true },
            )
          : new FibrpcError(
              "NO_CONSUMER",
              `the request was not sent: reconnected to ${this.noServerOn}, ` +
                `where queue ${quote(client.queue)} has no server yet`,
              { reason: "not-sent", broker: this.noServerOn, queue: client.queue, outage: true },
            );
      outcome = { n, ok: false, code: error.code, message: error.message, remote: false, error, ms: 0 };
    }
    if (!outcome.ok && this.current) this.current.failed++;
    return outcome;
  }

  /**
   * Undefined if a call can be sent now (connected) or never again (the caller gave up or was closed);
   * else resolves once one can, or by `until` (on the bench's clock).
   */
  ready(until: number): Promise<void> | undefined {
    if (this.client.usable || !this.usable) return undefined;
    this.lost();
    if (!this.reconnecting) return undefined;
    const left = until - this.clock.now();
    return Number.isFinite(left) ? Promise.race([this.reconnecting, this.clock.sleep(left)]) : this.reconnecting;
  }

  /** The connection is gone: open an outage (once) and reconnect in the background. */
  private lost(): void {
    if (this.reconnecting || !this.usable) return;
    const outage: Outage = { from: this.clock.now(), failed: 0 };
    this.current = outage;
    this.outages.push(outage);
    const broker = this.client.broker;
    const until = this.o.reconnectUntil((this.o.time ?? realTime).now());
    const because = this.client.lostBecause;
    this.o.log.warn(`lost the connection to the broker at ${broker}${because ? ` (${because})` : ""}; reconnecting`);
    let attempts = 0;
    this.reconnecting = connectWithin(this.connect, () => (this.closed ? 0 : until), {
      time: this.o.time,
      onFailure: (error) => {
        attempts++;
        outage.lastError = error;
        this.o.log.debug(`reconnecting: ${error.message}`);
      },
    }).then(
      async (client) => {
        // The broker back (or the next one of the list) may have no server yet, not even the queue: until one
        // consumes it, within the same bound, the outage goes on, rather than every call failing at once.
        // Why the connection could not be reopened: the outage's last error again once a server is back.
        const unreachable = outage.lastError;
        await awaitServer(client, {
          deadline: until,
          wait: true,
          signal: this.closing.signal,
          onWaiting: () => {
            const what = `reconnected to ${client.broker}, where queue ${quote(client.queue)} has no server yet`;
            this.o.log.info(`${what}; waiting for one`);
            this.noServerOn = client.broker;
            outage.noServerFrom = this.clock.now();
            // If it lasts to the run's end, this is what the outage ended on (exit 69, as call's).
            outage.lastError = new FibrpcError("NO_CONSUMER", what, { reason: "no-server", broker: client.broker });
          },
        }).then(
          () => {
            outage.lastError = unreachable;
          },
          () => {
            // None by then: the calls go on, and say what is missing (NO_CONSUMER, QUEUE_NOT_FOUND).
          },
        );
        this.noServerOn = undefined;
        if (this.closed) {
          void client.close({ waitForBroker: false });
          return;
        }
        void this.client.close({ waitForBroker: false });
        this.client = client;
        outage.to = this.clock.now();
        this.current = undefined;
        this.reconnecting = undefined;
        this.o.log.info(
          `reconnected to ${client.broker} after ${duration(outage.to - outage.from)} ` +
            `(${attempts} failed attempt${attempts === 1 ? "" : "s"})`,
        );
      },
      (err: unknown) => {
        this.reconnecting = undefined;
        if (this.closed) return;
        // The outage stays open: it lasts to the run's end.
        this.failure = setUpError(err);
        this.o.log.warn(`gave up reconnecting: ${this.failure.message}`);
      },
    );
  }

  async close(): Promise<void> {
    this.closed = true;
    this.closing.abort();
    await this.client.close();
  }
}
