// OpenTelemetry's Node SDK with amqplib's instrumentation, as a Node user of RabbitMQ runs them,
// configured by the standard variables alone (OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_PROTOCOL,
// OTEL_SERVICE_NAME, OTEL_BSP_SCHEDULE_DELAY, ...). Required before amqplib, so that the SDK's
// require hook patches it. shutdown() flushes the spans not yet exported.
const { NodeSDK } = require("@opentelemetry/sdk-node");
const { AmqplibInstrumentation } = require("@opentelemetry/instrumentation-amqplib");

const sdk = new NodeSDK({ instrumentations: [new AmqplibInstrumentation()] });
sdk.start();

module.exports.shutdown = () => sdk.shutdown();
