/**
 * How the request queue is declared. Classic: exactly as the tutorial's server declares it
 * (`queue_declare(queue='rpc_queue')`: not durable, not exclusive, not auto-delete, no
 * arguments), so fibrpc and tutorial servers can share one queue. Quorum: durable and
 * replicated, for clusters.
 */
import type { Channel, Options } from "amqplib";

export const QUEUE_TYPES = ["classic", "quorum"] as const;
export type QueueType = (typeof QUEUE_TYPES)[number];

/**
 * Quorum queues count deliveries: past this many, the broker dead-letters a request instead of
 * delivering it again (a safety net; the server answers POISON_REQUEST well before).
 */
export const QUORUM_DELIVERY_LIMIT = 5;

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
  return { durable: false, exclusive: false, autoDelete: false };
}

export async function declareRequestQueue(channel: Channel, queue: string, type: QueueType): Promise<void> {
  if (type === "quorum") await channel.assertQueue(deadLetterQueueName(queue), { durable: true, arguments: { "x-queue-type": "quorum" } });
  await channel.assertQueue(queue, requestQueueOptions(queue, type));
}
