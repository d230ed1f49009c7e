/**
 * The cold-call yardstick: the least a compiled program can do to make one RPC — connect,
 * consume Direct Reply-to, publish, print the reply, exit. Arguments: URL QUEUE N.
 * Compiled by scripts/bench.ts with the same `bun build --compile` flags as fibrpc.
 */
import { connect } from "amqplib";

const [url = "amqp://guest:guest@127.0.0.1:5672", queue = "rpc_queue", n = "30"] = process.argv.slice(2);
const conn = await connect(url, { noDelay: true });
const ch = await conn.createChannel();
const reply = new Promise<string>((resolve) => {
  ch.consume("amq.rabbitmq.reply-to", (msg) => msg && resolve(msg.content.toString()), { noAck: true });
});
await new Promise((r) => setImmediate(r));
ch.publish("", queue, Buffer.from(n), { replyTo: "amq.rabbitmq.reply-to", correlationId: "1" });
process.stdout.write(`${await reply}\n`);
process.exit(0);
