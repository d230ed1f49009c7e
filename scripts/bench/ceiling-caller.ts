/**
 * The ceiling's client: a minimal pipelined amqplib caller — Direct Reply-to, TCP_NODELAY,
 * trivial body, CONCURRENCY calls kept in flight. Prints {"callsPerSecond", "p50Ms", "p99Ms"}.
 * Arguments: URL QUEUE CONCURRENCY REQUESTS [confirms|fibrpc-request]. With `confirms` it publishes on a
 * channel in confirm mode, as fibrpc's caller does, and still counts a call done at its reply: what publisher
 * confirms cost the broker and the caller alone, with nothing else of fibrpc's (one-in-flight.ts). With
 * `fibrpc-request`, confirms and every property fibrpc's caller gives a request (rpc/client.ts): `mandatory`,
 * the deadline as `expiration` and as a header, the timestamp and the header asking for batched replies: what fibrpc's protocol costs, on this minimal caller's code.
 */
import { connect, type Options } from "amqplib";
import { DEADLINE_HEADER, REPLY_BATCH_HEADER } from "../../src/rpc/protocol.ts";

const [
  url = "amqp://guest:guest@127.0.0.1:5672",
  queue = "ceiling",
  concurrencyArg = "100",
  requestsArg = "20000",
  mode = "",
] = process.argv.slice(2);
const concurrency = Number(concurrencyArg);
const requests = Number(requestsArg);
if (!["", "confirms", "fibrpc-request"].includes(mode))
  throw new Error(`unknown mode ${JSON.stringify(mode)}: only "confirms" or "fibrpc-request"`);
const confirms = mode !== "";
/** fibrpc's default --timeout: the budget its requests carry. */
const TIMEOUT_MS = 30_000;
const conn = await connect(url, { noDelay: true });
const ch = confirms ? await conn.createConfirmChannel() : await conn.createChannel();
const pending = new Map<string, () => void>();
await ch.consume(
  "amq.rabbitmq.reply-to",
  (msg) => {
    const done = msg && pending.get(msg.properties.correlationId);
    if (done) {
      pending.delete(msg!.properties.correlationId);
      done();
    }
  },
  { noAck: true },
);
let id = 0;
const call = () =>
  new Promise<void>((resolve) => {
    const correlationId = String(id++);
    pending.set(correlationId, resolve);
    const options: Options.Publish = { replyTo: "amq.rabbitmq.reply-to", correlationId };
    if (mode === "fibrpc-request") {
      const now = Date.now();
      Object.assign(options, {
        mandatory: true,
        expiration: String(TIMEOUT_MS),
        timestamp: Math.floor(now / 1000),
        headers: { [DEADLINE_HEADER]: now + TIMEOUT_MS, [REPLY_BATCH_HEADER]: 1 },
      });
    }
    // A confirm channel's publish takes a callback, called at the broker's ack; the reply is what counts.
    if (confirms) ch.publish("", queue, Buffer.from("1"), options, () => {});
    else ch.publish("", queue, Buffer.from("1"), options);
  });
const latencies: number[] = [];
let sent = 0;
const started = performance.now();
await Promise.all(
  Array.from({ length: concurrency }, async () => {
    while (sent < requests) {
      sent++;
      const t = performance.now();
      await call();
      latencies.push(performance.now() - t);
    }
  }),
);
const seconds = (performance.now() - started) / 1000;
latencies.sort((a, b) => a - b);
console.log(
  JSON.stringify({
    callsPerSecond: requests / seconds,
    p50Ms: latencies[Math.floor(latencies.length / 2)],
    p99Ms: latencies[Math.floor(latencies.length * 0.99)],
  }),
);
await conn.close();
