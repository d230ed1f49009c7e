/**
 * A Direct Reply-to caller whose node is gone, on one broker: an address the broker gave a caller, with its
 * node changed to one no node of the cluster has, as if the caller's node had died or left. RabbitMQ 3.10
 * closes the connection that publishes to it with 541 INTERNAL_ERROR (its channel crashes:
 * rabbit_channel:deliver_reply, case_clause), as it does for a caller on a cluster node just killed
 * (test/cluster/cluster.test.ts); RabbitMQ 4.3.6 drops such a reply.
 */
import { type Channel, connect } from "amqplib";
import { releaseAtLeast } from "./broker.ts";
import { eventually, rawChannel, uniqueQueue, URL } from "./helpers.ts";

/** Whether the suite's broker closes the connection that replies to such an address (measured: 3.10 does, 4.3.6 not). */
export const REPLY_TO_A_GONE_NODE_CLOSES = !releaseAtLeast(4, 3);

/**
 * `address` with its node changed: the last digit of the `reply@<hash>` name of the encoding RabbitMQ 3.10 to 4.x
 * use, or the letter before the `@` of a plain node name.
 */
export function addressOfAGoneNode(address: string): string {
  const prefix = "amq.rabbitmq.reply-to.";
  const [pid, key] = address.slice(prefix.length).split(".");
  const term = Buffer.from(pid!, "base64");
  // 131, the pid tag, then the node atom: its tag, its length (2 bytes for 118 and 100, else 1), its name.
  const nameAt = term[2] === 118 || term[2] === 100 ? 5 : 4;
  const length = nameAt === 5 ? term.readUInt16BE(3) : term[3]!;
  const name = term.toString("latin1", nameAt, nameAt + length);
  const changed = name.startsWith("reply@") ? nameAt + length - 1 : nameAt + name.indexOf("@") - 1;
  const digit = term[changed]! >= 48 && term[changed]! <= 57;
  term[changed] = digit ? 48 + ((term[changed]! - 48 + 1) % 10) : term[changed] === 122 ? 121 : term[changed]! + 1;
  return `${prefix}${term.toString("base64")}.${key}`;
}

/**
 * The address the broker gives `caller`, a channel consuming from amq.rabbitmq.reply-to: the reply_to of a probe
 * it sends through a queue of the test's.
 */
export async function directReplyToAddressOf(caller: Channel): Promise<string> {
  const { ch: admin } = await rawChannel();
  const probe = uniqueQueue();
  await admin.assertQueue(probe, { durable: true });
  caller.sendToQueue(probe, Buffer.from("probe"), { replyTo: "amq.rabbitmq.reply-to" });
  const seen = await eventually(
    () => admin.get(probe, { noAck: true }),
    (msg) => msg !== false,
    10_000,
    "the caller's address",
  );
  if (!seen) throw new Error("the probe is not in the queue");
  return seen.properties.replyTo as string;
}

/** The address the broker gives a Direct Reply-to caller (which then goes), with its node changed (above). */
export async function addressOfACallerWhoseNodeIsGone(): Promise<string> {
  const conn = await connect(URL);
  try {
    const caller = await conn.createChannel();
    await caller.consume("amq.rabbitmq.reply-to", () => {}, { noAck: true });
    return addressOfAGoneNode(await directReplyToAddressOf(caller));
  } finally {
    await conn.close();
  }
}
