/**
 * `fibrpc call --retry N`: a call that failed in a way a new attempt can fix (timeout, lost
 * connection) is sent again, up to N times, with the same correlation id. That is safe because
 * fib is idempotent, and whichever attempt's reply comes first is the answer. A lost connection
 * is replaced once for all the calls that need it.
 */
import { FibrpcError } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { CallOutcome, RpcClient } from "./client.ts";

const RETRYABLE = new Set<string>(["TIMEOUT", "CONNECTION_LOST", "BROKER_UNREACHABLE"]);
/**
 * After a fault the servers may not be back yet (a restarted broker has lost a non-durable
 * queue until a server declares it again): on a retry, these are worth another attempt too.
 */
const RETRYABLE_AFTER_A_FAULT = new Set<string>(["QUEUE_NOT_FOUND", "NO_CONSUMER"]);
const BASE_DELAY_MS = 100;
const MAX_DELAY_MS = 2_000;

export class RetryingCaller {
  private client: RpcClient;
  private reconnecting: Promise<RpcClient> | undefined;

  constructor(
    first: RpcClient,
    private readonly connectAgain: () => Promise<RpcClient>,
    private readonly retries: number,
    private readonly timeoutMs: number,
    private readonly log: Logger,
  ) {
    this.client = first;
  }

  /** Each attempt gets the full timeout; the promise never rejects. */
  async call(n: number, firstDeadline: number): Promise<CallOutcome & { attempts: number }> {
    const correlationId = this.client.newCorrelationId();
    let deadline = firstDeadline;
    for (let attempt = 1; ; attempt++) {
      let outcome: CallOutcome;
      let client: RpcClient | undefined;
      try {
        client = await this.currentClient();
        outcome = await client.call(n, deadline, correlationId);
      } catch (err) {
        const error = err instanceof FibrpcError ? err : new FibrpcError("INTERNAL", String(err));
        outcome = { n, ok: false, code: error.code, message: error.message, remote: false, error, ms: 0 };
      }
      if (outcome.ok || outcome.remote || attempt > this.retries) return { ...outcome, attempts: attempt };
      const retryable = RETRYABLE.has(outcome.code) || (attempt > 1 && RETRYABLE_AFTER_A_FAULT.has(outcome.code));
      if (!retryable) return { ...outcome, attempts: attempt };
      // A timeout may be the connection's fault (seen on a cluster: a channel stuck after a
      // quorum queue's leader died): send the retry over a new connection.
      if (outcome.code === "TIMEOUT" && client === this.client) client.retire();
      const delay = Math.min(MAX_DELAY_MS, BASE_DELAY_MS * 2 ** (attempt - 1)) * (0.5 + Math.random());
      this.log.info(`fib(${n}): ${outcome.code}; retrying in ${Math.round(delay)} ms (retry ${attempt}/${this.retries})`);
      await Bun.sleep(delay);
      deadline = Date.now() + this.timeoutMs;
    }
  }

  private currentClient(): Promise<RpcClient> {
    if (this.client.usable) return Promise.resolve(this.client);
    this.reconnecting ??= this.connectAgain().then(
      (client) => {
        // The old connection may still be open (only its channel died): let it go.
        void this.client.close({ waitForBroker: false });
        this.client = client;
        this.reconnecting = undefined;
        return client;
      },
      (err) => {
        this.reconnecting = undefined;
        throw err;
      },
    );
    return this.reconnecting;
  }

  close(options?: { waitForBroker?: boolean }): Promise<void> {
    return this.client.close(options);
  }
}
