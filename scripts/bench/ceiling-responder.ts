/**
 * The ceiling's server: the least code that answers requests with amqplib — TCP_NODELAY, no
 * parsing beyond the decimal body, reply then ack. Arguments: URL QUEUE PREFETCH.
 */
import { connect } from "amqplib";

const [url = "amqp://guest:guest@127.0.0.1:5672", queue = "ceiling", prefetch = "1"] = process.argv.slice(2);
const conn = await connect(url, { noDelay: true });
const ch = await conn.createChannel();
// A transient queue, as the tutorial declares, where the broker allows it; RabbitMQ 4.x deprecates transient
// non-exclusive queues (4.3 may deny them), so there it is durable, as fibrpc's own request queue is everywhere.
const brokerMajor = Number(String(conn.connection.serverProperties.version ?? "3").split(".")[0]);
await ch.assertQueue(queue, { durable: brokerMajor >= 4 });
await ch.prefetch(Number(prefetch));
await ch.consume(queue, (msg) => {
  if (!msg) return;
  ch.publish("", msg.properties.replyTo, Buffer.from("1"), { correlationId: msg.properties.correlationId });
  ch.ack(msg);
});
console.error("ready");
process.on("SIGTERM", async () => {
  await conn.close();
  process.exit(0);
});
