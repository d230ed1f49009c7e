/**
 * How the request queue is declared, so that it works on every RabbitMQ users run today.
 *
 * Classic: durable, not exclusive, not auto-delete, storage version 2. RabbitMQ 4.3 refuses
 * non-durable non-exclusive queues by default (deprecated feature `transient_nonexcl_queues`),
 * so fibrpc never declares one. Requests stay transient messages (clients publish them so), and
 * a queue that already exists with other settings — the tutorial's server declares
 * `queue_declare(queue='rpc_queue')`, not durable, on older brokers; an operator may add
 * arguments — is joined as it is. Quorum: durable and replicated, for clusters, with a
 * dead-letter queue for requests past the broker's delivery limit.
 */
import type { ChannelModel, Options } from "amqplib";
import { brokerReason, isInequivalent } from "./broker-errors.ts";
import { FibrpcError } from "../errors.ts";
import { REDELIVERY_LIMIT } from "./protocol.ts";

export const QUEUE_TYPES = ["classic", "quorum"] as const;
export type QueueType = (typeof QUEUE_TYPES)[number];

/**
 * Quorum queues count deliveries: past this many the broker dead-letters a request instead of
 * delivering it again. A safety net above fibrpc's own REDELIVERY_LIMIT, so that the caller of a
 * request that keeps coming back gets a POISON_REQUEST reply from a server first.
 */
export const QUORUM_DELIVERY_LIMIT = REDELIVERY_LIMIT + 5;

/** Where a quorum request queue dead-letters requests that hit the delivery limit. */
export function deadLetterQueueName(queue: string): string {
  return `${queue}.dead-letter`;
}

export function requestQueueOptions(queue: string, type: QueueType): Options.AssertQueue {
  if (type === "quorum") {
    return {
      durable: true,
      exclusive: false,
      autoDelete: false,
      arguments: {
        "x-queue-type": "quorum",
        "x-delivery-limit": QUORUM_DELIVERY_LIMIT,
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": deadLetterQueueName(queue),
      },
    };
  }
  // Version 2 of the classic queue's storage: the only one in RabbitMQ 4.x (which refuses version
  // 1 by default) and the default from 3.12 on. On older brokers (3.10 here) version 1 makes a
  // durable queue measurably slower per request than a transient one, even for transient
  // messages (docs/benchmarks.md, "Durable request queue").
  return { durable: true, exclusive: false, autoDelete: false, arguments: { "x-queue-version": 2 } };
}

export type QueueSetup = { declared: true } | { declared: false; differences: string };

/**
 * Declares the request queue, or joins it as it is if it already exists with other settings.
 * Runs on a channel of its own: a refused declaration closes the channel it ran on. Throws a
 * FibrpcError (code BROKER_REFUSED) when the broker refuses what fibrpc needs.
 */
export async function declareOrJoinRequestQueue(model: ChannelModel, queue: string, type: QueueType): Promise<QueueSetup> {
  const declared = await onThrowawayChannel(model, (ch) => ch.assertQueue(queue, requestQueueOptions(queue, type)));
  if (!declared.ok) {
    // The broker said which argument differs ("inequivalent arg 'durable' ..."): the queue is
    // someone else's, and consuming from it works whatever its settings.
    if (isInequivalent(declared.error)) return { declared: false, differences: brokerReason(declared.error) };
    throw declared.error;
  }
  if (type === "quorum") {
    const dlq = await onThrowawayChannel(model, (ch) => ch.assertQueue(deadLetterQueueName(queue), { durable: true, arguments: { "x-queue-type": "quorum" } }));
    if (!dlq.ok) {
      if (isInequivalent(dlq.error)) {
        const dead = deadLetterQueueName(queue);
        throw new FibrpcError("BROKER_REFUSED", `the dead-letter queue ${JSON.stringify(dead)} exists with other settings (${brokerReason(dlq.error)})`, { reason: "dead-letter-queue-differs", queue: dead });
      }
      throw dlq.error;
    }
  }
  return { declared: true };
}

async function onThrowawayChannel<T>(model: ChannelModel, work: (ch: Awaited<ReturnType<ChannelModel["createChannel"]>>) => Promise<T>): Promise<{ ok: true; value: T } | { ok: false; error: unknown }> {
  const ch = await model.createChannel();
  ch.on("error", () => {}); // a refusal closes the channel: the rejection below carries it
  try {
    const value = await work(ch);
    await ch.close();
    return { ok: true, value };
  } catch (error) {
    return { ok: false, error };
  }
}
