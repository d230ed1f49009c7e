/**
 * "Is a server there?", decided in one place for every caller: a server is there when the
 * request queue has at least one consumer (for a pipeline's requests, when the queue is there).
 * Without `wait`, one look: no queue is QUEUE_NOT_FOUND, no consumer is NO_CONSUMER. With `wait`,
 * the queue is polled until a consumer shows up (the queue may not exist yet either: the server
 * declares it), or TIMEOUT at `deadline`. Either way a look the broker does not answer (a queue
 * without its cluster's majority, a silent link) ends at `deadline` too; while waiting, once the
 * broker has answered a look, a deadline that comes during the next one is the wait running out,
 * and says so.
 */
import { FibrpcError } from "../errors.ts";
import { type RpcClient, TOO_SHORT_TO_CONFIRM_MS } from "./client.ts";
import { realTime, waitUntil } from "./time.ts";
import { quote } from "../printable.ts";

export const AWAIT_SERVER_POLL_MS = 50;

export interface AwaitServerOptions {
  /** ms since the epoch: give up (TIMEOUT) by then. */
  deadline: number;
  /** Wait for a server to start instead of failing at once. */
  wait: boolean;
  /** Only the queue must be there, with or without a consumer (a pipeline's requests wait in it for one). */
  queueOnly?: boolean;
  /** Called once, when the first look finds no server and waiting begins. */
  onWaiting?: () => void;
  pollMs?: number;
  /** Ends the wait (its owner closed): a FibrpcError, CONNECTION_LOST. */
  signal?: AbortSignal;
}

/** Resolves once the client's request queue has a consumer; otherwise throws a FibrpcError. */
export async function awaitServer(
  client: Pick<RpcClient, "consumerCount" | "queue" | "broker">,
  o: AwaitServerOptions,
): Promise<void> {
  const pollMs = o.pollMs ?? AWAIT_SERVER_POLL_MS;
  const { queue, broker } = client;
  const noServerInTime = () =>
    new FibrpcError("TIMEOUT", `no server started consuming queue ${quote(queue)} on ${broker} within the timeout`, {
      reason: "wait-timed-out",
      queue,
      broker,
    });
  for (let polls = 0; ; polls++) {
    let count: number;
    /** Waiting, the queue is not there yet (the server declares it): not even `queueOnly` is met. */
    let missing = false;
    // A look begun with a few ms left (call -t 10ms: connecting took the rest) is the timeout's to blame.
    const left = o.deadline - Date.now();
    try {
      count = await waitUntil(
        client.consumerCount(),
        (signal) => realTime.sleep(Math.max(0, left), signal),
        () =>
          left < TOO_SHORT_TO_CONFIRM_MS
            ? new FibrpcError(
                "TIMEOUT",
                `only ${Math.max(0, Math.round(left))} ms of the timeout were left to look for a server on ` +
                  `queue ${quote(queue)}, too few for the broker at ${broker} to answer`,
                { reason: "too-short", queue, broker },
              )
            : new FibrpcError(
                "TIMEOUT",
                `the broker at ${broker} did not say within the timeout whether queue ${quote(queue)} ` +
                  "has a consumer",
                { reason: "not-confirmed", queue, broker },
              ),
      );
    } catch (err) {
      // Waiting, with the broker's answer to an earlier look: the deadline came during this one, and what
      // ran out is the wait for a server, not the broker's answer.
      const lookTimedOut = err instanceof FibrpcError && err.code === "TIMEOUT";
      if (o.wait && polls > 0 && lookTimedOut) throw noServerInTime();
      if (!(o.wait && err instanceof FibrpcError && err.code === "QUEUE_NOT_FOUND")) throw err;
      count = 0;
      missing = true;
    }
    if (count > 0 || (o.queueOnly && !missing)) return;
    if (!o.wait) {
      throw new FibrpcError("NO_CONSUMER", `queue ${quote(queue)} on ${broker} has no consumer: no server is running`, {
        reason: "no-server",
        queue,
        broker,
      });
    }
    if (polls === 0) o.onWaiting?.();
    if (Date.now() + pollMs > o.deadline) throw noServerInTime();
    await realTime.sleep(pollMs);
    if (o.signal?.aborted)
      throw new FibrpcError("CONNECTION_LOST", "closed while waiting for a server", { reason: "client-closed" });
  }
}
