/**
 * A broker's refusal of serve's set-up is recognised from the broker's own words, including
 * RabbitMQ 4.3's (which cannot run here): one FibrpcError, exit 78; the remedy is serve's hint.
 */
import { describe, expect, test } from "bun:test";
import { parseBrokerUrl } from "../../src/broker-url.ts";
import { withHint } from "../../src/hints.ts";
import { FibrpcError } from "../../src/errors.ts";
import { HANDSHAKE_REASONS } from "../../src/rpc/amqplib-internals.ts";
import {
  brokerReason,
  brokerRefusal,
  channelClosedReason,
  connectError,
  isInequivalent,
  refusal,
  reservedQueueName,
} from "../../src/rpc/broker-errors.ts";

// amqplib's wording of a connection / channel closed by the broker.
const DEPRECATED_QUEUE =
  'Connection closed: 541 (INTERNAL-ERROR) with message "INTERNAL_ERROR - Feature `transient_nonexcl_queues` is deprecated. By default, this feature is not permitted anymore. Its use is not permitted per the configuration (relevant configuration key: deprecated_features.permit.transient_nonexcl_queues)"';
const DEPRECATED_QOS =
  'Channel closed by server: 540 (NOT-IMPLEMENTED) with message "NOT_IMPLEMENTED - Feature `global_qos` is deprecated. By default, this feature is not permitted anymore."';
const INEQUIVALENT =
  "Operation failed: QueueDeclare; 406 (PRECONDITION-FAILED) with message \"PRECONDITION_FAILED - inequivalent arg 'durable' for queue 'rpc_queue' in vhost '/': received 'true' but current is 'false'\"";

test.each([
  [
    DEPRECATED_QUEUE,
    /denies the deprecated feature "transient_nonexcl_queues" \(Feature `transient_nonexcl_queues` is deprecated\..*deprecated_features\.permit\.transient_nonexcl_queues = true/,
  ],
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
  expect(
    brokerRefusal(
      new Error(
        "Connection closed: 320 (CONNECTION-FORCED) with message \"CONNECTION_FORCED - broker forced connection closure with reason 'shutdown'\"",
      ),
      "q",
    ),
  ).toBeUndefined();
});

test("inequivalent arguments are told from other 406s", () => {
  expect(isInequivalent(new Error(INEQUIVALENT))).toBe(true);
  expect(
    isInequivalent(
      new Error(
        'Channel closed by server: 406 (PRECONDITION-FAILED) with message "PRECONDITION_FAILED - unknown delivery tag 1"',
      ),
    ),
  ).toBe(false);
});

/**
 * The broker's refusals, as amqplib reports them, in the words of RabbitMQ 3.10 and 4.3 (each
 * seen live on nodes of those releases; test/integration/refusals.test.ts meets them on the
 * suite's release): one code, one reason, the documented exit code, the broker's words and code
 * in the line, never retryable.
 */
const url = parseBrokerUrl("amqp://u:s3cret@h:5672/v1");

/** A close of the connection during the handshake (amqplib-internals.ts gives connection.open's this form). */
const handshake = (code: number, name: string, text: string) =>
  Object.assign(
    new Error(`Handshake terminated by server: ${code} (${name.replace(/_/g, "-")}) with message "${name} - ${text}"`),
    { code },
  );
/** The connection closed by the broker after the handshake (e.g. at channel.open). */
const connectionClose = (code: number, name: string, text: string) =>
  Object.assign(new Error(`Connection closed: ${code} (${name.replace(/_/g, "-")}) with message "${name} - ${text}"`), {
    code,
  });
/** A method the broker refused, closing the channel: amqplib's error for the pending operation. */
const METHOD_IDS = { QueueDeclare: [50, 10], BasicConsume: [60, 20] } as const;
const operationFailed = (method: keyof typeof METHOD_IDS, code: number, name: string, text: string) =>
  Object.assign(
    new Error(`Operation failed: ${method}; ${code} (${name.replace(/_/g, "-")}) with message "${name} - ${text}"`),
    { code, classId: METHOD_IDS[method][0], methodId: METHOD_IDS[method][1] },
  );
/** A channel closed by the broker with no operation pending (a publish): the channel's 'error' event. */
const channelClosed = (code: number, name: string, text: string, [classId, methodId] = [60, 40]) =>
  Object.assign(
    new Error(`Channel closed by server: ${code} (${name.replace(/_/g, "-")}) with message "${name} - ${text}"`),
    { code, classId, methodId },
  );

interface Case {
  name: string;
  error: Error;
  code: "ACCESS_REFUSED" | "BROKER_REFUSED";
  reason: string;
  exit: 77 | 78;
  /** The message after "the broker at amqp://u:***@h:5672/v1 refused ". */
  refused: string;
  details?: Record<string, unknown>;
  /** A part of the hint (the line after "; "). */
  hint: string;
}

const B = "the broker at amqp://u:***@h:5672/v1 refused ";
const cases: Case[] = [
  {
    name: "login (3.10 and 4.3)",
    error: handshake(
      403,
      "ACCESS_REFUSED",
      "Login was refused using authentication mechanism PLAIN. For details see the broker logfile.",
    ),
    code: "ACCESS_REFUSED",
    reason: "login",
    exit: 77,
    refused:
      "the login: Login was refused using authentication mechanism PLAIN. For details see the broker logfile. (403 ACCESS_REFUSED)",
    hint: "check the user name and password in --url / FIBRPC_URL",
  },
  {
    name: "no permission on the vhost",
    error: handshake(530, "NOT_ALLOWED", "access to vhost '/' refused for user 'noperm'"),
    code: "ACCESS_REFUSED",
    reason: "vhost",
    exit: 77,
    refused: "the connection: access to vhost '/' refused for user 'noperm' (530 NOT_ALLOWED)",
    details: { user: "noperm", vhost: "/" },
    hint: 'give user "noperm" permissions on vhost "/" (rabbitmqctl set_permissions -p / noperm CONFIGURE WRITE READ), or check the vhost in --url / FIBRPC_URL',
  },
  {
    name: "no such vhost",
    error: handshake(530, "NOT_ALLOWED", "vhost nosuch not found"),
    code: "ACCESS_REFUSED",
    reason: "vhost-not-found",
    exit: 77,
    refused: "the connection: vhost nosuch not found (530 NOT_ALLOWED)",
    details: { vhost: "nosuch" },
    hint: "check the vhost in --url / FIBRPC_URL, or create it (rabbitmqctl add_vhost nosuch)",
  },
  {
    name: "the vhost's connection limit",
    error: handshake(
      530,
      "NOT_ALLOWED",
      "access to vhost 'vlim' refused for user 'full': connection limit (2) is reached",
    ),
    code: "BROKER_REFUSED",
    reason: "limit",
    exit: 78,
    refused:
      "the connection: access to vhost 'vlim' refused for user 'full': connection limit (2) is reached (530 NOT_ALLOWED)",
    details: { vhost: "vlim", user: "full", limit: { scope: "vhost", key: "max-connections" } },
    hint: `raise the vhost's limit (rabbitmqctl set_vhost_limits -p vlim '{"max-connections": N}', -1 for none)`,
  },
  {
    // Names may hold quotes: each is read to the literal text that follows it, not to its first quote.
    name: "the vhost's connection limit, a vhost and a user with quotes in their names",
    error: handshake(
      530,
      "NOT_ALLOWED",
      `access to vhost 'team a's "q" é' refused for user 'o'brien': connection limit (0) is reached`,
    ),
    code: "BROKER_REFUSED",
    reason: "limit",
    exit: 78,
    refused: `the connection: access to vhost 'team a's "q" é' refused for user 'o'brien': connection limit (0) is reached (530 NOT_ALLOWED)`,
    details: { vhost: `team a's "q" é`, user: "o'brien", limit: { scope: "vhost", key: "max-connections" } },
    hint: `raise the vhost's limit (rabbitmqctl set_vhost_limits -p 'team a'\\''s "q" é' '{"max-connections": N}', -1 for none) or close other connections to it (serve opens one per worker, and each worker one more for a while to answer redelivered requests)`,
  },
  {
    name: "the user's connection limit",
    error: handshake(530, "NOT_ALLOWED", "connection refused for user 'ulimc': user connection limit (0) is reached"),
    code: "BROKER_REFUSED",
    reason: "limit",
    exit: 78,
    refused:
      "the connection: connection refused for user 'ulimc': user connection limit (0) is reached (530 NOT_ALLOWED)",
    details: { user: "ulimc", limit: { scope: "user", key: "max-connections" } },
    hint: `raise the user's limit (rabbitmqctl set_user_limits ulimc '{"max-connections": N}', -1 for none)`,
  },
  {
    name: "the user's channel limit (3.10)",
    error: connectionClose(
      530,
      "NOT_ALLOWED",
      "number of channels opened for user 'ulimch' has reached the maximum allowed user limit of (0)",
    ),
    code: "BROKER_REFUSED",
    reason: "limit",
    exit: 78,
    refused:
      "to open a channel: number of channels opened for user 'ulimch' has reached the maximum allowed user limit of (0) (530 NOT_ALLOWED)",
    details: { user: "ulimch", limit: { scope: "user", key: "max-channels" } },
    hint: `rabbitmqctl set_user_limits ulimch '{"max-channels": N}'`,
  },
  {
    name: "the user's channel limit (4.3)",
    error: connectionClose(
      530,
      "NOT_ALLOWED",
      "number of channels opened for user 'ulimch' has reached the maximum allowed user limit of 0",
    ),
    code: "BROKER_REFUSED",
    reason: "limit",
    exit: 78,
    refused:
      "to open a channel: number of channels opened for user 'ulimch' has reached the maximum allowed user limit of 0 (530 NOT_ALLOWED)",
    details: { limit: { scope: "user", key: "max-channels" } },
    hint: `rabbitmqctl set_user_limits ulimch '{"max-channels": N}'`,
  },
  {
    name: "the connection's channel_max",
    error: connectionClose(
      530,
      "NOT_ALLOWED",
      "number of channels opened (2) has reached the negotiated channel_max (2)",
    ),
    code: "BROKER_REFUSED",
    reason: "limit",
    exit: 78,
    refused:
      "to open a channel: number of channels opened (2) has reached the negotiated channel_max (2) (530 NOT_ALLOWED)",
    details: { limit: { scope: "connection", key: "channel_max" } },
    hint: "raise channel_max",
  },
  {
    name: "the vhost's queue limit",
    error: operationFailed(
      "QueueDeclare",
      406,
      "PRECONDITION_FAILED",
      "cannot declare queue 'qq': queue limit in vhost 'vq' (0) is reached",
    ),
    code: "BROKER_REFUSED",
    reason: "limit",
    exit: 78,
    refused: `to declare queue "qq": cannot declare queue 'qq': queue limit in vhost 'vq' (0) is reached (406 PRECONDITION_FAILED)`,
    details: { vhost: "vq", limit: { scope: "vhost", key: "max-queues" } },
    hint: `rabbitmqctl set_vhost_limits -p vq '{"max-queues": N}'`,
  },
  {
    name: "the cluster's queue limit (4.x)",
    error: operationFailed(
      "QueueDeclare",
      406,
      "PRECONDITION_FAILED",
      "cannot declare queue 'qq': queue limit in cluster (10) is reached",
    ),
    code: "BROKER_REFUSED",
    reason: "limit",
    exit: 78,
    refused: `to declare queue "qq": cannot declare queue 'qq': queue limit in cluster (10) is reached (406 PRECONDITION_FAILED)`,
    details: { limit: { scope: "cluster", key: "max-queues" } },
    hint: "cluster_queue_limit",
  },
  {
    name: "no configure permission (3.10)",
    error: operationFailed(
      "QueueDeclare",
      403,
      "ACCESS_REFUSED",
      "access to queue 'rpc_queue' in vhost 'v1' refused for user 'noconf'",
    ),
    code: "ACCESS_REFUSED",
    reason: "permission",
    exit: 77,
    refused: `to declare queue "rpc_queue": access to queue 'rpc_queue' in vhost 'v1' refused for user 'noconf' (403 ACCESS_REFUSED)`,
    details: { permission: "configure", user: "noconf", vhost: "v1", resource: { kind: "queue", name: "rpc_queue" } },
    hint: 'give user "noconf" the configure permission on queue "rpc_queue" in vhost "v1" (its patterns: rabbitmqctl list_user_permissions noconf; to set them: rabbitmqctl set_permissions -p v1 noconf CONFIGURE WRITE READ)',
  },
  {
    name: "no configure permission (4.3)",
    error: operationFailed(
      "QueueDeclare",
      403,
      "ACCESS_REFUSED",
      "configure access to queue 'rpc_queue' in vhost 'v1' refused for user 'noconf'",
    ),
    code: "ACCESS_REFUSED",
    reason: "permission",
    exit: 77,
    refused: `to declare queue "rpc_queue": configure access to queue 'rpc_queue' in vhost 'v1' refused for user 'noconf' (403 ACCESS_REFUSED)`,
    details: { permission: "configure" },
    hint: 'give user "noconf" the configure permission on queue "rpc_queue"',
  },
  {
    name: "no read permission (3.10)",
    error: operationFailed(
      "BasicConsume",
      403,
      "ACCESS_REFUSED",
      "access to queue 'rpc_queue' in vhost 'v1' refused for user 'noread'",
    ),
    code: "ACCESS_REFUSED",
    reason: "permission",
    exit: 77,
    refused: `to consume from queue "rpc_queue": access to queue 'rpc_queue' in vhost 'v1' refused for user 'noread' (403 ACCESS_REFUSED)`,
    details: { permission: "read" },
    hint: 'give user "noread" the read permission on queue "rpc_queue" in vhost "v1"',
  },
  {
    name: "no read permission on call's exclusive reply queue (4.3)",
    error: operationFailed(
      "BasicConsume",
      403,
      "ACCESS_REFUSED",
      "read access to queue 'amq.gen-k0i6U_v3WTPRSnMmpelWFQ' in vhost 'v1' refused for user 'noread'",
    ),
    code: "ACCESS_REFUSED",
    reason: "permission",
    exit: 77,
    refused: `to consume from queue "amq.gen-k0i6U_v3WTPRSnMmpelWFQ": read access to queue 'amq.gen-k0i6U_v3WTPRSnMmpelWFQ' in vhost 'v1' refused for user 'noread' (403 ACCESS_REFUSED)`,
    details: { permission: "read" },
    hint: "the read permission on the reply queues the broker names (a pattern matching ^amq\\.gen-",
  },
  {
    name: "no write permission: a publish (3.10)",
    error: channelClosed(
      403,
      "ACCESS_REFUSED",
      "access to exchange 'amq.default' in vhost 'v1' refused for user 'nowrite'",
    ),
    code: "ACCESS_REFUSED",
    reason: "permission",
    exit: 77,
    refused: `to publish to exchange "amq.default": access to exchange 'amq.default' in vhost 'v1' refused for user 'nowrite' (403 ACCESS_REFUSED)`,
    details: { permission: "write", resource: { kind: "exchange", name: "amq.default" } },
    hint: 'give user "nowrite" the write permission on exchange "amq.default" in vhost "v1"',
  },
  {
    name: "no write permission: a publish (4.3)",
    error: channelClosed(
      403,
      "ACCESS_REFUSED",
      "write access to exchange 'amq.default' in vhost 'v1' refused for user 'nowrite'",
    ),
    code: "ACCESS_REFUSED",
    reason: "permission",
    exit: 77,
    refused: `to publish to exchange "amq.default": write access to exchange 'amq.default' in vhost 'v1' refused for user 'nowrite' (403 ACCESS_REFUSED)`,
    details: { permission: "write" },
    hint: "the write permission on exchange",
  },
  {
    name: "a reserved name",
    error: operationFailed(
      "QueueDeclare",
      403,
      "ACCESS_REFUSED",
      "queue name 'amq.foo' contains reserved prefix 'amq.*'",
    ),
    code: "ACCESS_REFUSED",
    reason: "reserved-name",
    exit: 77,
    refused: `to declare queue "amq.foo": queue name 'amq.foo' contains reserved prefix 'amq.*' (403 ACCESS_REFUSED)`,
    details: { queue: "amq.foo" },
    hint: 'pick a --queue that does not begin with "amq."',
  },
  {
    name: "another connection's exclusive queue",
    error: operationFailed(
      "QueueDeclare",
      405,
      "RESOURCE_LOCKED",
      "cannot obtain exclusive access to locked queue 'exq' in vhost 'v1'. It could be originally declared on another connection or the exclusive property value does not match that of the original declaration.",
    ),
    code: "BROKER_REFUSED",
    reason: "locked",
    exit: 78,
    refused: `to declare queue "exq": cannot obtain exclusive access to locked queue 'exq' in vhost 'v1'. It could be originally declared on another connection or the exclusive property value does not match that of the original declaration. (405 RESOURCE_LOCKED)`,
    details: { queue: "exq" },
    hint: 'another connection holds queue "exq" for itself',
  },
  {
    name: "another connection's exclusive queue, its name and vhost with quotes",
    error: operationFailed(
      "QueueDeclare",
      405,
      "RESOURCE_LOCKED",
      "cannot obtain exclusive access to locked queue 'k q'1' in vhost 'a'b'. It could be originally declared on another connection or the exclusive property value does not match that of the original declaration.",
    ),
    code: "BROKER_REFUSED",
    reason: "locked",
    exit: 78,
    refused: `to declare queue "k q'1": cannot obtain exclusive access to locked queue 'k q'1' in vhost 'a'b'. It could be originally declared on another connection or the exclusive property value does not match that of the original declaration. (405 RESOURCE_LOCKED)`,
    details: { queue: "k q'1" },
    hint: `another connection holds queue "k q'1" for itself`,
  },
  {
    name: "no configure permission (4.3), the queue, vhost and user with quotes",
    error: operationFailed(
      "QueueDeclare",
      403,
      "ACCESS_REFUSED",
      "configure access to queue 'k q'1' in vhost 'a'b' refused for user 'o'brien'",
    ),
    code: "ACCESS_REFUSED",
    reason: "permission",
    exit: 77,
    refused: `to declare queue "k q'1": configure access to queue 'k q'1' in vhost 'a'b' refused for user 'o'brien' (403 ACCESS_REFUSED)`,
    details: { permission: "configure", user: "o'brien", vhost: "a'b", resource: { kind: "queue", name: "k q'1" } },
    hint: 'give user "o\'brien" the configure permission on queue "k q\'1" in vhost "a\'b"',
  },
  {
    name: "the vhost's queue limit, the queue and vhost with quotes",
    error: operationFailed(
      "QueueDeclare",
      406,
      "PRECONDITION_FAILED",
      "cannot declare queue 'k q'1': queue limit in vhost 'a'b' (0) is reached",
    ),
    code: "BROKER_REFUSED",
    reason: "limit",
    exit: 78,
    refused: `to declare queue "k q'1": cannot declare queue 'k q'1': queue limit in vhost 'a'b' (0) is reached (406 PRECONDITION_FAILED)`,
    details: { vhost: "a'b", limit: { scope: "vhost", key: "max-queues" } },
    hint: "raise the vhost's limit (rabbitmqctl set_vhost_limits -p 'a'\\''b'",
  },
  {
    name: "a queue with an exclusive consumer",
    error: operationFailed("BasicConsume", 403, "ACCESS_REFUSED", "queue 'exclc' in vhost 'v1' in exclusive use"),
    code: "BROKER_REFUSED",
    reason: "locked",
    exit: 78,
    refused: `to consume from queue "exclc": queue 'exclc' in vhost 'v1' in exclusive use (403 ACCESS_REFUSED)`,
    details: { queue: "exclc" },
    hint: 'another connection holds queue "exclc" for itself',
  },
  {
    name: "a precondition of no known kind",
    error: channelClosed(
      406,
      "PRECONDITION_FAILED",
      "message size 134217729 is larger than configured max size 134217728",
    ),
    code: "BROKER_REFUSED",
    reason: "precondition-failed",
    exit: 78,
    refused: `to publish to queue "rpc_queue": message size 134217729 is larger than configured max size 134217728 (406 PRECONDITION_FAILED)`,
    hint: "check the queue's arguments and policies",
  },
];

describe("the broker's refusals", () => {
  test("amqplib's handshake is wrapped (amqplib-internals.ts): connection.open's refusal keeps its reason", () => {
    expect(HANDSHAKE_REASONS).toBe(true);
  });

  for (const c of cases) {
    test(`${c.name}: ${c.code}, exit ${c.exit}`, () => {
      const error = refusal(c.error, { url, queue: "rpc_queue" })!;
      expect(error).toBeInstanceOf(FibrpcError);
      expect({
        code: error.code,
        reason: error.details.reason,
        exit: error.exitCode,
        retryable: error.retryable,
      }).toEqual({ code: c.code, reason: c.reason as never, exit: c.exit, retryable: false });
      expect(error.message).toBe(B + c.refused);
      expect(error.details).toMatchObject({ broker: "amqp://u:***@h:5672/v1", ...c.details });
      const line = withHint(error, "serve");
      expect(line.startsWith(`${error.message}; `), line).toBe(true);
      expect(line).toContain(c.hint);
      expect(line).not.toMatch(/\n|s3cret/);
      // Those at connection.open come the same through connectError (call and serve connect).
      if (c.error.message.startsWith("Handshake"))
        expect(connectError(c.error, url)).toMatchObject({
          code: error.code,
          message: error.message,
          details: { reason: error.details.reason },
        });
    });
  }

  test("what is not a refusal is left to the other rules: socket errors, a forced close, 541, a missing queue", () => {
    for (const error of [
      Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:5672"), { code: "ECONNREFUSED" }),
      connectionClose(320, "CONNECTION_FORCED", "broker forced connection closure with reason 'shutdown'"),
      connectionClose(
        541,
        "INTERNAL_ERROR",
        "Could not declare queue 'q' in vhost '/' on node 'n@h' because the metadata store operation timed out",
      ),
      operationFailed("QueueDeclare", 404, "NOT_FOUND", "no queue 'q' in vhost 'v1'"),
      new Error("Channel ended, no reply will be forthcoming"),
    ]) {
      expect(refusal(error, { url })).toBeUndefined();
    }
  });

  test("amqplib without the handshake wrapper: the close at connection.open is still exit 77, saying where the reason is", () => {
    const error = connectError(new Error("Expected ConnectionOpenOk; got <ConnectionClose channel:0>"), url);
    expect({ code: error.code, exit: error.exitCode }).toEqual({ code: "ACCESS_REFUSED", exit: 77 });
    expect(error.message).toContain("its reason is in the broker's log");
  });

  test("a close of no known kind while connecting: the broker's words, as a lost connection is said; a 541 names the majority", () => {
    const close = new Error('Connection closed: 541 (INTERNAL-ERROR) with message "INTERNAL_ERROR"');
    expect(connectError(close, url).message).toBe(
      "cannot connect to the broker at amqp://u:***@h:5672/v1: closed by the broker: INTERNAL_ERROR " +
        "(541 INTERNAL_ERROR); on a cluster, check that a majority of its nodes run",
    );
    expect(connectError(new Error("something odd"), url).message).toBe(
      "cannot connect to the broker at amqp://u:***@h:5672/v1: something odd",
    );
  });

  test("serve's set-up: a refusal with the broker's URL is one of the kinds above; a 406 of no known kind is serve's set-up refused", () => {
    expect(
      brokerRefusal(
        operationFailed(
          "BasicConsume",
          403,
          "ACCESS_REFUSED",
          "access to queue 'q' in vhost 'v1' refused for user 'noread'",
        ),
        "q",
        url,
      )?.details.reason,
    ).toBe("permission");
    expect(brokerRefusal(new Error(INEQUIVALENT), "rpc_queue", url)?.details.reason).toBe("set-up-refused");
  });

  test("call on a missing queue named amq.*: nobody can declare it (77); any other missing queue is no server (69)", () => {
    const error = reservedQueueName("amq.foo", url)!;
    expect({ code: error.code, reason: error.details.reason, exit: error.exitCode }).toEqual({
      code: "ACCESS_REFUSED",
      reason: "reserved-name",
      exit: 77,
    });
    expect(withHint(error, "call")).toBe(
      'queue "amq.foo" does not exist on the broker at amqp://u:***@h:5672/v1, and no server can declare it: the broker reserves names beginning with "amq." to itself; pick a --queue that does not begin with "amq." (for serve and call alike)',
    );
    expect(reservedQueueName("rpc_queue", url)).toBeUndefined();
  });

  test("a name that needs quoting is quoted in the rabbitmqctl command of the hint", () => {
    const error = refusal(handshake(530, "NOT_ALLOWED", "access to vhost 'my vhost' refused for user 'o'brien'"), {
      url,
    })!;
    expect(error.details).toMatchObject({ user: "o'brien", vhost: "my vhost" });
    expect(withHint(error)).toContain(`rabbitmqctl set_permissions -p 'my vhost' 'o'\\''brien' CONFIGURE WRITE READ`);
  });
});

describe("a consumer timeout (the broker closed the channel: a delivery unacknowledged past consumer_timeout)", () => {
  const CONSUMER_TIMEOUT =
    'Channel closed by server: 406 (PRECONDITION-FAILED) with message "PRECONDITION_FAILED - delivery acknowledgement on channel 1 timed out. Timeout value used: 3000 ms. This timeout value can be configured, see consumers doc guide to learn more"';
  const url = parseBrokerUrl("amqp://guest:guest@127.0.0.1:5672");

  test("is not a refusal of serve's set-up: serve waits and consumes again (it exited 78)", () => {
    expect(brokerRefusal(new Error(CONSUMER_TIMEOUT), "rpc_queue", url)).toBeUndefined();
    const error = connectError(new Error(CONSUMER_TIMEOUT), url);
    expect([error.code, error.refusal, error.details.reason]).toEqual([
      "BROKER_UNREACHABLE",
      false,
      "consumer-timeout",
    ]);
  });

  test("said with the broker's reason and the remedy", () => {
    expect(channelClosedReason(new Error(CONSUMER_TIMEOUT))).toBe(
      "the broker closed the channel: delivery acknowledgement on channel 1 timed out. Timeout value used: 3000 ms. " +
        "This timeout value can be configured, see consumers doc guide to learn more; a request was not acknowledged " +
        "within the broker's consumer_timeout (a long computation, or replies held by a resource alarm): " +
        "raise consumer_timeout, or lower --prefetch or --max-n",
    );
    expect(channelClosedReason(new Error(INEQUIVALENT))).toStartWith("the broker closed the channel: inequivalent arg");
  });
});

describe("connectError: a TLS alert about this client's certificate", () => {
  const url = parseBrokerUrl("amqps://guest:guest@127.0.0.1:5671");
  const cases = [
    // What Bun's TLS gives for a certificate from a CA the broker does not know: OpenSSL's text, no code of Node's.
    { err: new Error("error:10000418:SSL routines:OPENSSL_internal:TLSV1_ALERT_UNKNOWN_CA"), alert: "UNKNOWN_CA" },
    {
      err: Object.assign(new Error("certificate required"), { code: "ERR_SSL_TLSV1_ALERT_CERTIFICATE_REQUIRED" }),
      alert: "CERTIFICATE_REQUIRED",
    },
    {
      err: Object.assign(new Error("certificate expired"), { code: "ERR_SSL_SSLV3_ALERT_CERTIFICATE_EXPIRED" }),
      alert: "CERTIFICATE_EXPIRED",
    },
  ];
  test("a handshake failure (a TLS 1.2 broker's answer to no certificate): TLS_REFUSED (78), not an outage", () => {
    // Bun's words, seen against RabbitMQ 3.10 with ssl_options.versions.1 = tlsv1.2 and fail_if_no_peer_cert.
    const err = new Error("error:10000410:SSL routines:OPENSSL_internal:SSLV3_ALERT_HANDSHAKE_FAILURE");
    const error = connectError(err, url);
    expect([error.code, error.exitCode, error.details.reason]).toEqual(["TLS_REFUSED", 78, "tls-handshake"]);
    expect(withHint(error, "call")).toContain("pass --tls-cert and --tls-key");
  });
  for (const c of cases) {
    test(`${c.alert}: TLS_REFUSED (78) as this client's certificate, not the broker's, nor a broker out of reach`, () => {
      const error = connectError(c.err, url);
      expect([error.code, error.exitCode, error.details.reason, error.details.alert]).toEqual([
        "TLS_REFUSED",
        78,
        "client-certificate",
        c.alert,
      ]);
      expect(error.message).not.toContain("could not be verified");
    });
  }
});

describe("connectError: a port of the wrong protocol", () => {
  // RabbitMQ's TLS listener answers AMQP's header with an alert record (15 03 01 00 02 02 0a, seen on 3.10):
  // amqplib reads bytes 3 to 6 as the frame's size, 0x0002020a, above connectFields' bound (frame_max).
  const tlsAlert = new Error("Frame size 131594 exceeds maxFrameSize 131072");
  test("amqp:// to a TLS port: it answered in TLS; the hint says to write amqps://", () => {
    const error = connectError(tlsAlert, parseBrokerUrl("amqp://guest:s3cret@127.0.0.1:5671"));
    expect([error.code, error.exitCode, error.details.reason, error.details.speaks]).toEqual([
      "BROKER_UNREACHABLE",
      68,
      "wrong-protocol",
      "tls",
    ]);
    expect(withHint(error, "call")).toBe(
      "the broker at amqp://guest:***@127.0.0.1:5671 answered in TLS: the port is an amqps:// listener, not plain " +
        "AMQP (amqp://); write amqps:// in --url / FIBRPC_URL for that port, or give the broker's plain port " +
        "(5672 by default)",
    );
  });
  test("the same size over amqps://, or a size no alert has (HTTP's): another service, not TLS", () => {
    for (const [message, url] of [
      ["Frame size 131594 exceeds maxFrameSize 131072", "amqps://127.0.0.1:5671"],
      ["Frame size 1345270062 exceeds maxFrameSize 131072", "amqp://127.0.0.1:8080"],
    ] as const) {
      const error = connectError(new Error(message), parseBrokerUrl(url));
      expect([error.details.reason, error.details.speaks]).toEqual(["wrong-protocol", undefined]);
      expect(error.message).toContain("another service listens on that port");
    }
  });
});

describe("names with quotes in the broker's words", () => {
  test("brokerReason reads the broker's message to its last quote: a name may hold a \"", () => {
    const said = `inequivalent arg 'x-queue-type' for queue 'q' in vhost 'a"b': received 'classic' but current is 'stream'`;
    const err = new Error(
      `Operation failed: QueueDeclare; 406 (PRECONDITION-FAILED) with message "PRECONDITION_FAILED - ${said}"`,
    );
    expect(brokerReason(err)).toBe(said);
  });
  test("a queue that does not answer is named whole, quotes and all, not to its first quote", () => {
    const error = connectError(
      new Error(
        `Operation failed: QueueDeclare; 404 (NOT-FOUND) with message "NOT_FOUND - failed to perform operation on queue 'k q'1' in vhost 'team a's "q" é' due to timeout"`,
      ),
      parseBrokerUrl("amqp://u:p@h:5672/team%20a's%20%22q%22%20%C3%A9"),
    );
    expect([error.details.reason, error.details.queue, error.details.vhost]).toEqual([
      "queue-unresponsive",
      "k q'1",
      `team a's "q" é`,
    ]);
    expect(withHint(error, "serve")).toEndWith(
      `if it lasts, delete it (rabbitmqctl delete_queue -p 'team a'\\''s "q" é' 'k q'\\''1') so that serve declares it afresh`,
    );
  });
});
