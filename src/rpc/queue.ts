/**
 * How the request queue is declared, so that it works on every RabbitMQ users run today.
 *
 * Classic: durable, not exclusive, not auto-delete, no arguments (storage version 2 asked of
 * brokers before 3.12, see wantsClassicStorageV2). RabbitMQ 4.3 refuses
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
import { quote } from "../printable.ts";

export const QUEUE_TYPES = ["classic", "quorum"] as const;
export type QueueType = (typeof QUEUE_TYPES)[number];

/**
 * Quorum queues count deliveries: past this many the broker dead-letters a request instead of
 * delivering it again. A safety net above fibrpc's own REDELIVERY_LIMIT, so that the caller of a
 * request that keeps coming back gets a POISON_REQUEST reply from a server first.
 */
export const QUORUM_DELIVERY_LIMIT = REDELIVERY_LIMIT + 5;

/**
 * What is wrong with a queue name, for "--queue …" or "queue …": AMQP's short string holds 255 bytes, and
 * a control character (a newline) is dropped by RabbitMQ from the name it declares, so that the queue
 * made is not the one then consumed.
 */
export function queueNameProblem(name: string): string | undefined {
  if (Buffer.byteLength(name, "utf8") > 255) return "must be at most 255 bytes long (UTF-8)";
  if (/[\u0000-\u001f\u007f]/.test(name)) return "must not hold control characters (a newline, a tab)";
  return undefined;
}

/** The longest name a quorum request queue may have: its dead-letter queue's name is 12 bytes longer. */
export const MAX_QUORUM_QUEUE_BYTES = 255 - ".dead-letter".length;

/** Where a quorum request queue dead-letters requests that hit the delivery limit. */
export function deadLetterQueueName(queue: string): string {
  return `${queue}.dead-letter`;
}

/**
 * The dead-letter queue, bounded. A quorum queue dead-letters what expires in it too, and every request carries
 * its caller's deadline as its expiration: each request that waited out its caller would stay there, unread, for
 * ever. Kept: the newest 10,000, none older than a week (the poison requests it is there for are few). Without
 * dead-lettering of its own, what it drops is gone.
 */
export const DEAD_LETTER_QUEUE_OPTIONS: Options.AssertQueue = {
  durable: true,
  arguments: {
    "x-queue-type": "quorum",
    "x-max-length": 10_000,
    "x-overflow": "drop-head",
    "x-message-ttl": 7 * 24 * 3_600_000,
  },
};

export function requestQueueOptions(queue: string, type: QueueType, classicStorageV2 = false): Options.AssertQueue {
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
  return {
    durable: true,
    exclusive: false,
    autoDelete: false,
    ...(classicStorageV2 ? { arguments: { "x-queue-version": 2 } } : {}),
  };
}

/**
 * Whether to ask for version 2 of the classic queue's storage: only from brokers older than 3.12,
 * where version 1 is the default and makes a durable queue measurably slower per request than a
 * transient one, even for transient messages (docs/benchmarks.md, "Before and after"). From 3.12
 * on version 2 is the default (and in 4.3 the only one): the argument would only make the
 * declaration differ from one without it.
 */
export function wantsClassicStorageV2(serverVersion: unknown): boolean {
  const match = typeof serverVersion === "string" ? /^(\d+)\.(\d+)\./.exec(serverVersion) : null;
  if (!match) return false;
  const [major, minor] = [Number(match[1]), Number(match[2])];
  return major === 3 && minor < 12;
}

/**
 * Declared as asked, or joined as it is: `differences` is the broker's word on what differs, and
 * `existingType` the existing queue's type where the broker's answers tell it (see existingTypeOf).
 */
export type QueueSetup =
  | { declared: true; notice?: string }
  | { declared: false; differences: string; existingType?: string };

/**
 * Declares the request queue, or joins it as it is if it already exists with other settings.
 * Runs on a channel of its own: a refused declaration closes the channel it ran on. Throws a
 * FibrpcError (code BROKER_REFUSED) when the broker refuses what fibrpc needs.
 */
export async function declareOrJoinRequestQueue(
  model: ChannelModel,
  queue: string,
  type: QueueType,
  /** The connection's vhost: a refusal names it, for the hint's rabbitmqctl command (hints.ts). */
  vhost?: string,
): Promise<QueueSetup> {
  const serverVersion = (model as unknown as { connection?: { serverProperties?: { version?: unknown } } }).connection
    ?.serverProperties?.version;
  const storageV2 = wantsClassicStorageV2(serverVersion);
  let declared = await onThrowawayChannel(model, (ch) =>
    ch.assertQueue(queue, requestQueueOptions(queue, type, storageV2)),
  );
  // A vhost whose default queue type is quorum (3.11+) makes a declaration without x-queue-type
  // a quorum queue, which refuses x-queue-version ("invalid arg"): declare it without.
  if (!declared.ok && !isInequivalent(declared.error) && /x-queue-version/.test(brokerReason(declared.error))) {
    declared = await onThrowawayChannel(model, (ch) => ch.assertQueue(queue, requestQueueOptions(queue, type)));
  }
  if (!declared.ok) {
    // The broker said which argument differs ("inequivalent arg 'durable' ..."): the queue is
    // someone else's, and consuming from it works whatever its settings.
    if (isInequivalent(declared.error)) {
      const existing = await existingTypeOf(model, queue, type, storageV2, declared.error);
      // A stream is read from an offset, never consumed and acked a request at a time: there is nothing to serve.
      if (existing.type === "stream") {
        throw new FibrpcError(
          "BROKER_REFUSED",
          `queue ${quote(queue)} exists as a stream, which serve cannot consume requests from (a stream is read ` +
            "from an offset, not acked a request at a time)",
          { reason: "stream-queue", queue, vhost },
        );
      }
      return {
        declared: false,
        differences: brokerReason(existing.said ?? declared.error),
        ...(existing.type === undefined ? {} : { existingType: existing.type }),
      };
    }
    throw declared.error;
  }
  if (type === "quorum") return declareDeadLetterQueue(model, deadLetterQueueName(queue), vhost);
  return { declared: true };
}

/**
 * Declares the dead-letter queue of a quorum request queue, bounded; one an older fibrpc declared without bounds
 * (a quorum queue with no other argument) is kept as it is, said in a notice; one of another type is refused.
 */
async function declareDeadLetterQueue(model: ChannelModel, dead: string, vhost?: string): Promise<QueueSetup> {
  const dlq = await onThrowawayChannel(model, (ch) => ch.assertQueue(dead, DEAD_LETTER_QUEUE_OPTIONS));
  if (dlq.ok) return { declared: true };
  if (!isInequivalent(dlq.error)) throw dlq.error;
  const unbounded = await onThrowawayChannel(model, (ch) =>
    ch.assertQueue(dead, { durable: true, arguments: { "x-queue-type": "quorum" } }),
  );
  if (unbounded.ok) {
    return {
      declared: true,
      notice:
        `the dead-letter queue ${quote(dead)} has no length limit (declared by an older fibrpc): requests that ` +
        "expire in the request queue collect in it; delete it when empty for serve to declare it bounded, " +
        `or bound it by a policy (rabbitmqctl set_policy … '{"max-length":10000}' --apply-to queues)`,
    };
  }
  // The second refusal names the type when that is what differs (the first may name a bound first).
  throw new FibrpcError(
    "BROKER_REFUSED",
    `the dead-letter queue ${quote(dead)} exists with other settings (${brokerReason(unbounded.error)})`,
    { reason: "dead-letter-queue-differs", queue: dead, vhost },
  );
}

/** The line serve logs when it joins an existing queue as it is, saying its type when it is not the one asked for. */
export function joinedNotice(queue: string, asked: QueueType, setup: Extract<QueueSetup, { declared: false }>): string {
  const name = quote(queue);
  if (setup.existingType !== undefined && setup.existingType !== asked) {
    return (
      `queue ${name} already exists as a ${setup.existingType} queue, not the ${asked} queue asked for ` +
      `(${setup.differences}); serving it as it is`
    );
  }
  return `queue ${name} already exists with other settings (${setup.differences}); serving it as it is`;
}

/**
 * The type of an existing queue, from the broker's refusals: RabbitMQ names one differing
 * argument per refusal ("inequivalent arg 'x-queue-type' … received the value 'quorum' … but
 * current is none"), and checks x-queue-type after the others (3.10), so the refusal of fibrpc's
 * own declaration often names another (a quorum declaration on a classic queue: its dead-letter
 * argument). Two more declarations on throwaway channels ask more narrowly: durable with only the
 * type asked for (a plain classic queue differs in the type alone; only a classic queue can be
 * transient), then fibrpc's declaration of the other type (a queue a fibrpc of the other
 * --queue-type declared). Both name an existing queue, so they change nothing. Undefined when no
 * answer tells; `said` is the refusal that told.
 */
async function existingTypeOf(
  model: ChannelModel,
  queue: string,
  asked: QueueType,
  storageV2: boolean,
  refusal: unknown,
): Promise<{ type?: string; said?: unknown }> {
  const told = typeTold(refusal);
  if (told !== undefined) return { type: told, said: refusal };
  const other: QueueType = asked === "quorum" ? "classic" : "quorum";
  const probes: [Options.AssertQueue, QueueType][] = [
    [{ durable: true, exclusive: false, autoDelete: false, arguments: { "x-queue-type": asked } }, asked],
    [requestQueueOptions(queue, other, storageV2), other],
  ];
  for (const [options, type] of probes) {
    const probe = await onThrowawayChannel(model, (ch) => ch.assertQueue(queue, options));
    if (probe.ok) return { type };
    const probeTold = typeTold(probe.error);
    if (probeTold !== undefined) return { type: probeTold, said: probe.error };
  }
  return {};
}

/** The existing queue's type, if a refusal tells it. */
export function typeTold(refusal: unknown): string | undefined {
  if (!isInequivalent(refusal)) return undefined;
  const reason = brokerReason(refusal);
  // 3.10 says "… but current is the value 'quorum'"; 4.x "… received 'classic' but current is 'stream'".
  const type = /inequivalent arg 'x-queue-type'.*but current is (?:none|(?:the value )?'([^']*)')/.exec(reason);
  // "none": declared without a type, so of the default type, classic.
  if (type) return type[1] ?? "classic";
  // Quorum queues and streams are always durable.
  if (/inequivalent arg 'durable'.*but current is 'false'/.test(reason)) return "classic";
  return undefined;
}

async function onThrowawayChannel<T>(
  model: ChannelModel,
  work: (ch: Awaited<ReturnType<ChannelModel["createChannel"]>>) => Promise<T>,
): Promise<{ ok: true; value: T } | { ok: false; error: unknown }> {
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
