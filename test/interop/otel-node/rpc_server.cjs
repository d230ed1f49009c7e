// The RabbitMQ tutorial's RPC server (request/reply with replyTo and correlationId, decimal
// bodies) in Node with amqplib, under OpenTelemetry's amqplib instrumentation (tracing.cjs):
// each request is a "process" span continuing the caller's trace from the message's traceparent
// header, and the reply's publish span is its child.
//
//   AMQP_URL=amqp://user:pass@host:port node rpc_server.cjs QUEUE
//
// (The URL comes in the environment, not the arguments: the SDK records a process's arguments in
// its resource, and the URL's password would be in every span.)
// Prints " [x] Awaiting RPC requests" once it consumes, " [.] fib(N)" per request; on SIGTERM
// it stops consuming, flushes its spans and exits 0.
const tracing = require("./tracing.cjs");
const amqp = require("amqplib");

const url = process.env.AMQP_URL ?? "amqp://localhost";
const [queue] = process.argv.slice(2);

function fibonacci(n) {
  let [a, b] = [0n, 1n];
  for (let i = 0; i < n; i++) [a, b] = [b, a + b];
  return a;
}

async function main() {
  const connection = await amqp.connect(url);
  const channel = await connection.createChannel();
  // Durable: brokers that deny transient non-exclusive queues (RabbitMQ 4.3) accept it too.
  await channel.assertQueue(queue, { durable: true });
  await channel.prefetch(1);
  await channel.consume(queue, (msg) => {
    const n = Number.parseInt(msg.content.toString(), 10);
    console.log(` [.] fib(${n})`);
    channel.sendToQueue(msg.properties.replyTo, Buffer.from(fibonacci(n).toString()), {
      correlationId: msg.properties.correlationId,
    });
    channel.ack(msg);
  });
  console.log(" [x] Awaiting RPC requests");
  process.once("SIGTERM", async () => {
    await connection.close().catch(() => {});
    await tracing.shutdown();
    process.exit(0);
  });
}

main().catch(async (err) => {
  console.error(err);
  await tracing.shutdown().catch(() => {});
  process.exit(1);
});
