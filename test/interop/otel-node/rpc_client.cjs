// The RabbitMQ tutorial's RPC client in Node with amqplib, under OpenTelemetry's amqplib
// instrumentation (tracing.cjs): each request's publish span starts a trace and its traceparent
// goes in the message's headers; the reply is a "process" span of the replier's trace.
//
//   AMQP_URL=amqp://user:pass@host:port node rpc_client.cjs QUEUE N...
//
// (The URL comes in the environment: see rpc_server.cjs.)
// Calls fib(N) for each N in turn on an exclusive reply queue, prints " [.] Got R" for each,
// then flushes its spans and exits 0; exits 1 if a reply takes over RPC_TIMEOUT_MS (10 s).
const tracing = require("./tracing.cjs");
const amqp = require("amqplib");
const { randomUUID } = require("node:crypto");

const url = process.env.AMQP_URL ?? "amqp://localhost";
const [queue, ...ns] = process.argv.slice(2);
const timeoutMs = Number(process.env.RPC_TIMEOUT_MS ?? 10_000);

async function main() {
  const connection = await amqp.connect(url);
  const channel = await connection.createChannel();
  const { queue: callbackQueue } = await channel.assertQueue("", { exclusive: true });
  const pending = new Map();
  await channel.consume(
    callbackQueue,
    (msg) => {
      const resolve = pending.get(msg.properties.correlationId);
      pending.delete(msg.properties.correlationId);
      resolve?.(msg.content.toString());
    },
    { noAck: true },
  );
  for (const n of ns) {
    const correlationId = randomUUID();
    let timer;
    const reply = new Promise((resolve, reject) => {
      pending.set(correlationId, resolve);
      timer = setTimeout(() => reject(new Error(`no reply to fib(${n}) within ${timeoutMs} ms`)), timeoutMs);
    });
    console.log(` [x] Requesting fib(${n})`);
    channel.sendToQueue(queue, Buffer.from(String(n)), { correlationId, replyTo: callbackQueue });
    const result = await reply.finally(() => clearTimeout(timer));
    console.log(` [.] Got ${result}`);
  }
  await connection.close();
  await tracing.shutdown();
}

main().catch(async (err) => {
  console.error(err);
  await tracing.shutdown().catch(() => {});
  process.exit(1);
});
