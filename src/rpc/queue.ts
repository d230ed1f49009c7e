/**
 * How the request queue is declared. Classic: exactly as the tutorial's server declares it
 * (`queue_declare(queue='rpc_queue')`: not durable, not exclusive, not auto-delete, no
 * arguments), so fibrpc and tutorial servers can share one queue. Quorum: durable and
 * replicated, for clusters.
 */
import type { Channel, Options } from "amqplib";

export const QUEUE_TYPES = ["classic", "quorum"] as const;
export type QueueType = (typeof QUEUE_TYPES)[number];

export function requestQueueOptions(type: QueueType): Options.AssertQueue {
  if (type === "quorum") return { durable: true, exclusive: false, autoDelete: false, arguments: { "x-queue-type": "quorum" } };
  return { durable: false, exclusive: false, autoDelete: false };
}

export async function declareRequestQueue(channel: Channel, queue: string, type: QueueType): Promise<void> {
  await channel.assertQueue(queue, requestQueueOptions(type));
}
