/**
 * A broker's refusal of serve's set-up is recognised from the broker's own words, including
 * RabbitMQ 4.3's (which cannot run here): one FibrpcError, exit 78; the remedy is serve's hint.
 */
import { expect, test } from "bun:test";
import { withHint } from "../../src/commands/_hints.ts";
import { brokerRefusal, isInequivalent } from "../../src/rpc/broker-errors.ts";

// amqplib's wording of a connection / channel closed by the broker.
const DEPRECATED_QUEUE =
  'Connection closed: 541 (INTERNAL-ERROR) with message "INTERNAL_ERROR - Feature `transient_nonexcl_queues` is deprecated. By default, this feature is not permitted anymore. Its use is not permitted per the configuration (relevant configuration key: deprecated_features.permit.transient_nonexcl_queues)"';
const DEPRECATED_QOS = 'Channel closed by server: 540 (NOT-IMPLEMENTED) with message "NOT_IMPLEMENTED - Feature `global_qos` is deprecated. By default, this feature is not permitted anymore."';
const INEQUIVALENT = "Operation failed: QueueDeclare; 406 (PRECONDITION-FAILED) with message \"PRECONDITION_FAILED - inequivalent arg 'durable' for queue 'rpc_queue' in vhost '/': received 'true' but current is 'false'\"";

test.each([
  [DEPRECATED_QUEUE, /denies the deprecated feature "transient_nonexcl_queues" \(Feature `transient_nonexcl_queues` is deprecated\..*deprecated_features\.permit\.transient_nonexcl_queues = true/],
  [DEPRECATED_QOS, /denies the deprecated feature "global_qos"/],
  [INEQUIVALENT, /refused serve's set-up on queue "rpc_queue" \(inequivalent arg 'durable' for queue 'rpc_queue'/],
])("a refusal is exit 78 with the broker's words: %#", (message, line) => {
  const refusal = brokerRefusal(new Error(message), "rpc_queue");
  expect(refusal?.code).toBe("BROKER_REFUSED");
  expect(refusal?.exitCode).toBe(78);
  expect(withHint(refusal!, "serve")).toMatch(line);
  expect(withHint(refusal!, "serve")).not.toContain("\n");
  expect(refusal?.message).not.toContain("rabbitmq.conf"); // what to do is the command's to say
});

test("other errors are not refusals: serve keeps trying", () => {
  expect(brokerRefusal(new Error("connect ECONNREFUSED 127.0.0.1:5672"), "q")).toBeUndefined();
  expect(brokerRefusal(new Error("Connection closed: 320 (CONNECTION-FORCED) with message \"CONNECTION_FORCED - broker forced connection closure with reason 'shutdown'\""), "q")).toBeUndefined();
});

test("inequivalent arguments are told from other 406s", () => {
  expect(isInequivalent(new Error(INEQUIVALENT))).toBe(true);
  expect(isInequivalent(new Error('Channel closed by server: 406 (PRECONDITION-FAILED) with message "PRECONDITION_FAILED - unknown delivery tag 1"'))).toBe(false);
});
