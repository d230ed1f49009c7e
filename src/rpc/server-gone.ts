/**
 * A call that ran out of time waiting for its reply on a queue that has no server now: the server it went
 * to stopped (killed, scaled to zero) after the look call makes before sending. Said as NO_CONSUMER, as
 * that look says it, rather than as a slow server. The request itself expires in the queue at its deadline
 * (its `expiration`), so no server answers it later for nobody.
 *
 * `call -` also stops reading on it (call/run.ts), since every n after it would wait out its whole --timeout
 * in turn (hours, for a long stream); for that, a second look a little later must agree (`confirmMs`), so
 * that a server reconnecting at that moment (its consumer gone for a second) does not end the stream.
 * The calls that time out together share one look; each look is a fresh passive declare (never the count a
 * client took when it connected) and waits at most LOOK_MS, which is what it adds to --timeout.
 */
import { FibrpcError } from "../errors.ts";
import type { CallOutcome, RpcClient } from "./client.ts";
import { realTime, waitUntil } from "./time.ts";
import { quote } from "../printable.ts";

/** How long a look may take: a broker that does not answer it leaves the TIMEOUT as it was. */
export const LOOK_MS = 500;

type Looked = Pick<RpcClient, "freshConsumerCount" | "queue" | "broker">;

export class ServerWatch {
  /** The look under way: NO_CONSUMER if the queue has none, one error for every call that shares the look. */
  private looking: Promise<FibrpcError | undefined> | undefined;

  constructor(
    private readonly client: () => Looked,
    private readonly o: {
      /** A second look this long after a first that found no consumer, which must find none either (0: none). */
      confirmMs?: number;
      /** The calls are retried (--retry): what the error says does not suggest it. */
      retried?: boolean;
      /**
       * No look was made before sending (the library's calls): a queue without a consumer may never have had one,
       * so the error says no server is there, not that one stopped.
       */
      unlooked?: boolean;
    } = {},
  ) {}

  /** Whether `outcome` is one explain() may change: a reply that timed out. Cheap, for the per-call path. */
  static concerns(outcome: CallOutcome): boolean {
    return !outcome.ok && outcome.error?.details.reason === "reply-timed-out";
  }

  /** The outcome, unless it is a reply that timed out on a queue with no consumer now: then NO_CONSUMER. */
  async explain<T extends CallOutcome>(outcome: T): Promise<T> {
    if (!ServerWatch.concerns(outcome)) return outcome;
    this.looking ??= this.look().finally(() => {
      this.looking = undefined;
    });
    const error = await this.looking;
    return error === undefined ? outcome : { ...outcome, code: error.code, message: error.message, error };
  }

  private async look(): Promise<FibrpcError | undefined> {
    const client = this.client();
    if ((await countOf(client)) !== 0) return undefined;
    if (this.o.confirmMs) {
      await realTime.sleep(this.o.confirmMs);
      if ((await countOf(this.client())) !== 0) return undefined;
    }
    const { queue, broker } = client;
    const why = this.o.unlooked ? "no server consumes it" : "the server the call went to has stopped";
    return new FibrpcError(
      "NO_CONSUMER",
      `no reply within the timeout, and queue ${quote(queue)} on ${broker} has no consumer now: ${why}`,
      {
        reason: this.o.unlooked ? "no-server" : "server-gone",
        queue,
        broker,
        ...(this.o.retried ? { retried: true as const } : {}),
      },
    );
  }
}

/** The queue's consumers, or undefined if the broker did not say within LOOK_MS (or the connection is gone). */
function countOf(client: Looked): Promise<number | undefined> {
  return waitUntil(
    client.freshConsumerCount(),
    (signal) => realTime.sleep(LOOK_MS, signal),
    () => new Error("no answer"),
  ).catch(() => undefined);
}
