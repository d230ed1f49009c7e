/**
 * The Node fixtures of test/interop/otel-node/ and the OTLP receiver together, before fibrpc
 * traces anything: the Node client calls the Node server through the broker, both under
 * OpenTelemetry's Node SDK and @opentelemetry/instrumentation-amqplib with the amqplib fibrpc pins,
 * both exporting to the receiver, and the receiver holds one trace across the two processes:
 *
 *   client: publish <default>            (PRODUCER, root; its traceparent goes in the request)
 *   server:   QUEUE process               (CONSUMER, child of the client's publish)
 *   server:     publish <default>         (PRODUCER, the reply, child of the process span)
 *   client:       REPLYQUEUE process      (CONSUMER, child of the server's reply publish)
 *
 * So the fixtures put W3C traceparent headers on the wire and continue the traces they receive, in
 * both OTLP encodings; the tests of fibrpc's tracing put fibrpc on one side of them.
 */
import { afterAll, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { rawChannel, uniqueQueue, cleanupAfterFile, UNMASKED_PASSWORD } from "../helpers.ts";
import { describeSpans, type OtlpProtocol, type OtlpSpan, startOtlpReceiver } from "../otlp-receiver.ts";
import { runNodeRpcClient, startNodeRpcServer } from "../otel-node.ts";

cleanupAfterFile();

const receiver = startOtlpReceiver();
afterAll(() => receiver.stop());

const versionOf = (name: string): string =>
  JSON.parse(readFileSync(resolve(import.meta.dir, `../../node_modules/${name}/package.json`), "utf8")).version;
const AMQPLIB = versionOf("amqplib");
const INSTRUMENTATION = versionOf("@opentelemetry/instrumentation-amqplib");

/** The four spans of one call, found by the call's correlation id, or why not yet. */
function callTrace(spans: readonly OtlpSpan[], queue: string, clientService: string, serverService: string) {
  const of = (service: string) => spans.filter((s) => s.resource["service.name"] === service);
  const client = of(clientService);
  const server = of(serverService);
  const request = client.find((s) => s.kind === "PRODUCER" && s.attributes["messaging.rabbitmq.routing_key"] === queue);
  if (!request) throw new Error("no publish span of the client's request yet");
  const correlationId = request.attributes["messaging.conversation_id"];
  const consumed = server.find((s) => s.kind === "CONSUMER" && s.parentSpanId === request.spanId);
  if (!consumed) throw new Error("no process span of the server under the client's publish yet");
  const reply = server.find((s) => s.kind === "PRODUCER" && s.parentSpanId === consumed.spanId);
  if (!reply) throw new Error("no publish span of the server's reply under its process span yet");
  const replied = client.find((s) => s.kind === "CONSUMER" && s.parentSpanId === reply.spanId);
  if (!replied) throw new Error("no process span of the client's reply under the server's publish yet");
  return { request, consumed, reply, replied, correlationId };
}

for (const protocol of ["http/protobuf", "http/json"] as OtlpProtocol[]) {
  test(`Node client → Node server, amqplib ${AMQPLIB} under instrumentation-amqplib ${INSTRUMENTATION}: one trace (${protocol})`, async () => {
    const queue = uniqueQueue("fibrpc_otel");
    const run = crypto.randomUUID().slice(0, 8);
    const serverService = `node-rpc-server-${run}`;
    const clientService = `node-rpc-client-${run}`;
    const server = await startNodeRpcServer(queue, { ...receiver.env(protocol), OTEL_SERVICE_NAME: serverService });
    const client = await runNodeRpcClient(queue, [30], {
      ...receiver.env(protocol),
      OTEL_SERVICE_NAME: clientService,
    });
    expect(client).toMatchObject({ code: 0, results: ["832040"] });
    // The client exited with its spans flushed; the server's come within its 50 ms batch delay.
    const spans = await receiver.waitForSpans((all) => !!callTrace(all, queue, clientService, serverService), 10_000);
    const { request, consumed, reply, replied, correlationId } = callTrace(spans, queue, clientService, serverService);
    const traceId = request.traceId;
    const whole = receiver.trace(traceId);
    expect(whole.map((s) => s.spanId).sort(), describeSpans(whole)).toEqual(
      [request, consumed, reply, replied].map((s) => s.spanId).sort(),
    );
    expect(request).toMatchObject({ parentSpanId: undefined, name: "publish <default>", protocol });
    expect(consumed).toMatchObject({ traceId, name: `${queue} process`, protocol });
    expect(reply).toMatchObject({ traceId, name: "publish <default>" });
    expect(replied.traceId).toBe(traceId);
    // The instrumentation's attributes: the call's correlation id on both sides, and the queue.
    expect(correlationId).toBeString();
    expect(consumed.attributes["messaging.conversation_id"]).toBe(correlationId);
    expect(reply.attributes["messaging.conversation_id"]).toBe(correlationId);
    expect(consumed.attributes["messaging.rabbitmq.routing_key"]).toBe(queue);
    // Both ran under Node, with OpenTelemetry's SDK and the amqplib instrumentation.
    for (const span of [request, consumed]) {
      expect(span.resource["process.runtime.name"]).toBe("nodejs");
      expect(span.resource["telemetry.sdk.language"]).toBe("nodejs");
      expect(span.scope.name).toBe("@opentelemetry/instrumentation-amqplib");
    }
    // The broker URL goes to the fixtures in their environment: its password is in no span.
    const bigints = (_: string, v: unknown) => (typeof v === "bigint" ? String(v) : v);
    expect(JSON.stringify(whole, bigints)).not.toMatch(UNMASKED_PASSWORD);
    expect(receiver.requests.filter((r) => r.status !== 200)).toEqual([]);
    expect(await server.stop()).toBe(0);
    expect(server.output).toContain(" [.] fib(30)");
  });
}

test("the Node client's request carries a W3C traceparent header (what fibrpc serve will read)", async () => {
  const queue = uniqueQueue("fibrpc_otel");
  const { ch } = await rawChannel();
  await ch.assertQueue(queue, { durable: true });
  const run = crypto.randomUUID().slice(0, 8);
  const env = { ...receiver.env("http/protobuf"), OTEL_SERVICE_NAME: `node-rpc-client-${run}`, RPC_TIMEOUT_MS: "200" };
  // Nobody answers: the client gives up after 200 ms, but its request stays in the queue.
  const client = await runNodeRpcClient(queue, [7], env);
  expect(client.code).toBe(1);
  const message = await ch.get(queue, { noAck: true });
  if (!message) throw new Error("the request is not in the queue");
  expect(message.content.toString()).toBe("7");
  const traceparent = String(message.properties.headers?.traceparent);
  expect(traceparent).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
  const [, traceId, spanId] = traceparent.split("-");
  const spans = await receiver.waitForSpans((all) => all.some((s) => s.spanId === spanId), 10_000);
  expect(spans.find((s) => s.spanId === spanId)).toMatchObject({
    traceId,
    kind: "PRODUCER",
    name: "publish <default>",
  });
});
