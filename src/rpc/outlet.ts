/**
 * The one way out to the broker for a channel's hot path: publishing through the default exchange
 * and acking deliveries. Chosen once per channel: the frame writer (wire.ts) when amqplib's
 * internals are as it expects, else amqplib's own channel methods.
 */
import type { Channel, ConsumeMessage } from "amqplib";
import { INTERNALS_PROBLEM } from "./amqplib-internals.ts";

/** The message properties fibrpc sends (requests, replies, and requests put back). */
export interface PublishProperties {
  contentType?: string;
  headers?: Record<string, string | number>;
  /** 2: persistent (a request for a pipeline, kept by a durable queue through a broker restart). */
  deliveryMode?: 1 | 2;
  correlationId?: string;
  replyTo?: string;
  expiration?: string;
  /** Seconds since the epoch (AMQP's unit): when the request was sent. */
  timestamp?: number;
  type?: string;
}

export interface Outlet {
  /** Which implementation this is (tests check that the frame writer is the one in use). */
  readonly kind: "wire" | "amqplib";
  /** basic.publish to the default exchange. Throws (writing nothing) if the properties cannot be encoded. */
  publish(routingKey: string, body: Uint8Array, properties: PublishProperties, mandatory?: boolean): void;
  /**
   * basic.ack of one delivery of this channel, written after whatever is published in the same
   * event-loop turn (the frame writer merges a turn's acks into one where it can: wire.ts).
   */
  ack(msg: ConsumeMessage): void;
  /** basic.ack of one delivery, written before whatever is published next (serving-channel.ts says when). */
  ackFirst(msg: ConsumeMessage): void;
  /** Resolves once everything published and acked so far has been handed to the socket. */
  flushed(): Promise<void>;
}

/** amqplib's own publish and ack. */
export function channelOutlet(channel: Channel): Outlet {
  return {
    kind: "amqplib",
    publish: (routingKey, body, properties, mandatory = false) => {
      channel.publish("", routingKey, Buffer.from(body.buffer, body.byteOffset, body.byteLength), {
        ...properties,
        mandatory,
      });
    },
    ack: (msg) => channel.ack(msg),
    ackFirst: (msg) => channel.ack(msg),
    // amqplib's channel.close is queued behind its own frames: nothing to wait for.
    flushed: () => Promise.resolve(),
  };
}

/**
 * "wire": the frame writer where it can attach; "amqplib": amqplib's own publish and ack, asked
 * for (FIBRPC_OUTLET=amqplib, env-settings.ts): an escape hatch, and how `bun run bench:outlet`
 * measures what the frame writer is worth.
 */
export type OutletMode = "wire" | "amqplib";

/**
 * The outlet for a channel: the frame writer if it can attach (wire.ts), else amqplib's own,
 * with `fallback` true so that the caller says so (a log line, and /metrics for serve). Mode
 * "amqplib" is amqplib's own, and not a fallback.
 */
export function chooseOutlet(
  channel: Channel,
  mode: OutletMode,
  openFrameWriter: () => Outlet | undefined,
): { outlet: Outlet; fallback: boolean } {
  if (mode === "amqplib") return { outlet: channelOutlet(channel), fallback: false };
  const writer = openFrameWriter();
  return writer ? { outlet: writer, fallback: false } : { outlet: channelOutlet(channel), fallback: true };
}

/**
 * The log line for a fallback: what happened and what it costs. On an amqplib other than the one
 * pinned it names both versions, and says what else is off (amqplib-internals.ts).
 */
export const OUTLET_FALLBACK_MESSAGE = `the frame writer could not attach to ${
  INTERNALS_PROBLEM === undefined
    ? "this amqplib version's connection internals"
    : `amqplib's connection internals (${INTERNALS_PROBLEM}; ` +
      `its field-table guard and the broker's reasons at connection.open are off too)`
}; publishing and acking through amqplib's own methods (correct, but slower: see docs/benchmarks.md, "Outlet")`;
