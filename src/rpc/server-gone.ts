/**
 * A call that ran out of time waiting for its reply on a queue that has no server now: the server it went
 * to stopped (killed, scaled to zero) after the look call makes before sending. Said as NO_CONSUMER, as
 * that look says it, rather than as a slow server; `call -` then stops reading (call/run.ts), since every
 * n after it would wait out its whole --timeout in turn (hours, for a long stream). The request itself
 * expires in the queue at its deadline (its `expiration`), so no server answers it later for nobody.
 * The calls that time out together share one look at the queue.
 */
import { FibrpcError } from "../errors.ts";
import type { CallOutcome, RpcClient } from "./client.ts";
import { realTime, waitUntil } from "./retry.ts";

/** How long the look may take: a broker that does not answer it leaves the TIMEOUT as it was. */
const LOOK_MS = 2_000;

export class ServerWatch {
  /** The look under way: NO_CONSUMER if the queue has none, one error for every call that shares the look. */
  private looking: Promise<FibrpcError | undefined> | undefined;

  constructor(private readonly client: () => Pick<RpcClient, "consumerCount" | "queue" | "broker">) {}

  /** The outcome, unless it is a reply that timed out on a queue with no consumer now: then NO_CONSUMER. */
  async explain<T extends CallOutcome>(outcome: T): Promise<T> {
    if (outcome.ok || outcome.error?.details.reason !== "reply-timed-out") return outcome;
    this.looking ??= this.look().finally(() => {
      this.looking = undefined;
    });
    const error = await this.looking;
    return error === undefined ? outcome : { ...outcome, code: error.code, message: error.message, error };
  }

  private async look(): Promise<FibrpcError | undefined> {
    const client = this.client();
    const count = await waitUntil(
      client.consumerCount(),
      (signal) => realTime.sleep(LOOK_MS, signal),
      () => new Error("no answer"),
    ).catch(() => undefined);
    if (count !== 0) return undefined;
    const { queue, broker } = client;
    return new FibrpcError(
      "NO_CONSUMER",
      `no reply within the timeout, and queue ${JSON.stringify(queue)} on ${broker} has no consumer now: ` +
        "the server the call went to has stopped",
      { reason: "server-gone", queue, broker },
    );
  }
}
