/**
 * The one way out to the broker for a channel's hot path: publishing through the default exchange
 * and acking deliveries. Chosen once per channel: the frame writer (wire.ts) when amqplib's
 * internals are as it expects, else amqplib's own channel methods.
 */
import type { Channel, ConsumeMessage } from "amqplib";

/** The message properties fibrpc sends (requests, replies, and requests put back). */
export interface PublishProperties {
  contentType?: string;
  headers?: Record<string, string | number>;
  correlationId?: string;
  replyTo?: string;
  expiration?: string;
  type?: string;
}

export interface Outlet {
  /** Which implementation this is, for logs and /metrics: "wire" or "amqplib". */
  readonly kind: "wire" | "amqplib";
  /** basic.publish to the default exchange. Throws (writing nothing) if the properties cannot be encoded. */
  publish(routingKey: string, body: Uint8Array, properties: PublishProperties, mandatory?: boolean): void;
  /** basic.ack of one delivery of this channel. */
  ack(msg: ConsumeMessage): void;
}

/** amqplib's own publish and ack. */
export function channelOutlet(channel: Channel): Outlet {
  return {
    kind: "amqplib",
    publish: (routingKey, body, properties, mandatory = false) => {
      channel.publish("", routingKey, Buffer.from(body.buffer, body.byteOffset, body.byteLength), { ...properties, mandatory });
    },
    ack: (msg) => channel.ack(msg),
  };
}

/**
 * The outlet for a channel: the frame writer if it can attach (wire.ts), else amqplib's own.
 * FIBRPC_OUTLET=amqplib forces amqplib's own: an escape hatch, and how `bun run bench:outlet`
 * measures what the frame writer is worth.
 */
export function chooseOutlet(channel: Channel, openFrameWriter: () => Outlet | undefined): Outlet {
  if (process.env.FIBRPC_OUTLET === "amqplib") return channelOutlet(channel);
  return openFrameWriter() ?? channelOutlet(channel);
}
