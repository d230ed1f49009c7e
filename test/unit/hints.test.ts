/**
 * hints.ts: rpc/ errors say what happened, with a code and details; the line a user
 * reads adds what to do, naming only options the command takes. A table of error → line.
 */
import { describe, expect, test } from "bun:test";
import { parseBrokerUrl } from "../../src/broker-url.ts";
import { hintFor, withHint } from "../../src/hints.ts";
import { FibrpcError } from "../../src/errors.ts";
import type { CommandName } from "../../src/options.ts";
import { brokerRefusal, connectError } from "../../src/rpc/broker-errors.ts";

const url = parseBrokerUrl("amqp://u:s3cret@h:5672/v");
const socketError = (code: string) => Object.assign(new Error(`connect ${code} 10.0.0.1:5672`), { code });
const lost = new FibrpcError(
  "CONNECTION_LOST",
  "the connection to the broker at amqp://u:***@h:5672/v was lost while the call was in flight",
  { reason: "connection-lost" },
);

const cases: { error: FibrpcError; command?: CommandName; line: string; exitCode: number }[] = [
  {
    error: connectError(socketError("ECONNREFUSED"), url),
    line: "cannot reach the broker at amqp://u:***@h:5672/v: connection refused; start RabbitMQ there or point --url / FIBRPC_URL at a running broker",
    exitCode: 68,
  },
  {
    error: connectError(socketError("ENOTFOUND"), url),
    line: 'cannot reach the broker at amqp://u:***@h:5672/v: host name "h" does not resolve; check the host in --url / FIBRPC_URL',
    exitCode: 68,
  },
  {
    error: connectError(socketError("ETIMEDOUT"), url),
    line: "cannot reach the broker at amqp://u:***@h:5672/v: connection timed out; check the network and --url / FIBRPC_URL",
    exitCode: 68,
  },
  {
    error: connectError(socketError("ECONNRESET"), url),
    line: "the broker at amqp://u:***@h:5672/v closed the connection during the handshake; is it an AMQP 0-9-1 port (5672, or 5671 for amqps)?",
    exitCode: 68,
  },
  {
    error: connectError(
      new Error(
        'Handshake terminated by server: 403 (ACCESS-REFUSED) with message "ACCESS_REFUSED - Login was refused"',
      ),
      url,
    ),
    line: "the broker at amqp://u:***@h:5672/v refused the login: Login was refused (403 ACCESS_REFUSED); check the user name and password in --url / FIBRPC_URL",
    exitCode: 77,
  },
  {
    error: connectError(
      Object.assign(new Error("self-signed certificate in certificate chain"), { code: "SELF_SIGNED_CERT_IN_CHAIN" }),
      url,
    ),
    line: "the TLS certificate of the broker at amqp://u:***@h:5672/v could not be verified (SELF_SIGNED_CERT_IN_CHAIN); pass --tls-ca with the CA that signed it, or check the host name in the URL",
    exitCode: 78,
  },
  // RabbitMQ 4.3 (Khepri), words as the broker sent them (test/cluster/cluster.test.ts meets them live).
  {
    error: connectError(
      new Error(
        `Connection closed: 541 (INTERNAL-ERROR) with message "INTERNAL_ERROR - Could not declare queue 'q' in vhost '/' on node 'n@h' because the metadata store operation timed out"`,
      ),
      url,
    ),
    line: "the broker at amqp://u:***@h:5672/v could not declare the queue: Could not declare queue 'q' in vhost '/' on node 'n@h' because the metadata store operation timed out (a node cut off from the majority of its cluster cannot change the cluster's metadata); bring the cluster's other nodes back (rabbitmqctl cluster_status), or point --url / FIBRPC_URL at a node that is part of the majority",
    exitCode: 68,
  },
  {
    error: connectError(
      new Error(
        `Operation failed: QueueDeclare; 404 (NOT-FOUND) with message "NOT_FOUND - failed to perform operation on queue 'q' in vhost 'v' due to timeout"`,
      ),
      url,
    ),
    // The URL's vhost, for rabbitmqctl's -p (else it would delete a queue of that name in /, or none).
    line: `the broker at amqp://u:***@h:5672/v could not declare queue "q": it has a record of the queue, but the queue does not answer (failed to perform operation on queue 'q' in vhost 'v' due to timeout); if it lasts, delete it (rabbitmqctl delete_queue -p v q) so that serve declares it afresh`,
    exitCode: 68,
  },
  {
    error: new FibrpcError("BROKER_REFUSED", 'queue "my q" exists as a stream, …', {
      reason: "stream-queue",
      queue: "my q",
      vhost: "team a",
    }),
    line: `queue "my q" exists as a stream, …; serve a classic or quorum queue: another --queue, or delete this one (rabbitmqctl delete_queue -p 'team a' 'my q')`,
    exitCode: 78,
  },
  {
    error: new FibrpcError("BROKER_REFUSED", 'the dead-letter queue "q.dead-letter" exists with other settings (…)', {
      reason: "dead-letter-queue-differs",
      queue: "q.dead-letter",
      vhost: "/",
    }),
    line: 'the dead-letter queue "q.dead-letter" exists with other settings (…); delete it (rabbitmqctl delete_queue q.dead-letter) so that serve can declare it as a quorum queue',
    exitCode: 78,
  },
  {
    error: new FibrpcError("BROKER_REFUSED", 'queue "-v" exists as a stream, …', {
      reason: "stream-queue",
      queue: "-v",
    }),
    line: 'queue "-v" exists as a stream, …; serve a classic or quorum queue: another --queue, or delete this one (rabbitmqctl delete_queue -- -v)',
    exitCode: 78,
  },
  // An error nothing is known to help with is its message alone.
  {
    error: connectError(new Error("something odd"), url),
    line: "cannot connect to the broker at amqp://u:***@h:5672/v: something odd",
    exitCode: 68,
  },
  {
    error: new FibrpcError("NO_CONSUMER", 'queue "q" on amqp://h:5672 has no consumer: no server is running', {
      reason: "no-server",
      queue: "q",
    }),
    command: "call",
    line: 'queue "q" on amqp://h:5672 has no consumer: no server is running; start one with `fibrpc serve`, or pass --wait-for-server',
    exitCode: 69,
  },
  {
    error: new FibrpcError("NO_CONSUMER", 'queue "q" on amqp://h:5672 has no consumer: no server is running', {
      reason: "no-server",
      queue: "q",
    }),
    command: "bench", // bench has no --wait-for-server
    line: 'queue "q" on amqp://h:5672 has no consumer: no server is running; start one with `fibrpc serve`',
    exitCode: 69,
  },
  {
    // Gone after the look before sending: --wait-for-server (which waits only then) would not help.
    error: new FibrpcError(
      "NO_CONSUMER",
      "no reply within the timeout, and queue …: the server the call went to has stopped",
      {
        reason: "server-gone",
        queue: "q",
      },
    ),
    command: "call",
    line:
      "no reply within the timeout, and queue …: the server the call went to has stopped; start one with `fibrpc serve` " +
      "(--retry sends calls again until the timeout, for a server that restarts)",
    exitCode: 69,
  },
  {
    // Sent again already (--retry given): not told to retry.
    error: new FibrpcError(
      "NO_CONSUMER",
      "no reply within the timeout, and queue …: the server the call went to has stopped",
      {
        reason: "server-gone",
        retried: true,
      },
    ),
    command: "call",
    line: "no reply within the timeout, and queue …: the server the call went to has stopped; start one with `fibrpc serve`",
    exitCode: 69,
  },
  {
    error: new FibrpcError("TIMEOUT", "no reply within the timeout: 4 ms of it were left …", { reason: "too-short" }),
    command: "call",
    line: "no reply within the timeout: 4 ms of it were left …; raise --timeout (connecting is part of it)",
    exitCode: 75,
  },
  {
    error: new FibrpcError("TIMEOUT", 'no reply within the timeout from a server on queue "q"', {
      reason: "reply-timed-out",
      queue: "q",
      timeoutMs: 5,
    }),
    command: "call",
    line: 'no reply within the timeout from a server on queue "q"; raise --timeout, or check that the servers keep up',
    exitCode: 75,
  },
  { error: lost, command: "call", line: `${lost.message}; it is safe to retry (--retry)`, exitCode: 75 },
  { error: lost, command: "bench", line: lost.message, exitCode: 75 }, // bench has no --retry
  {
    // A pipeline's request blocked by an alarm: --no-wait takes no --retry.
    error: new FibrpcError("BROKER_BLOCKED", "the broker has been blocking publishers", { pipeline: true }),
    command: "call",
    line:
      "the broker has been blocking publishers; a resource alarm is on (rabbitmqctl status shows it): the broker's " +
      "operator must free memory or disk; retry once it lifts",
    exitCode: 75,
  },
  {
    // A pipeline's request (--no-wait takes no --retry): sent again by hand.
    error: new FibrpcError("CONNECTION_LOST", lost.message, { ...lost.details, pipeline: true }),
    command: "call",
    line: `${lost.message}; send the n that failed again (one the broker took unconfirmed may then be answered twice)`,
    exitCode: 75,
  },
  {
    // Lost to the end of --retry's attempts: more time, not --retry, is what may help.
    error: new FibrpcError("CONNECTION_LOST", lost.message, { ...lost.details, retried: true }),
    command: "call",
    line: `${lost.message}; raise --timeout, which --retry's reconnections share`,
    exitCode: 75,
  },
  {
    error: new FibrpcError("REJECTED", "the broker rejected the request (basic.nack)", { retried: true }),
    command: "call",
    line:
      "the broker rejected the request (basic.nack); the servers are not keeping up, or the queue's length limit " +
      "is too small (rabbitmqctl list_policies); retry later",
    exitCode: 75,
  },
  {
    error: new FibrpcError("CONNECTION_LOST", "the client was closed before the reply came", {
      reason: "client-closed",
    }),
    command: "call",
    line: "the client was closed before the reply came",
    exitCode: 75,
  },
  {
    error: brokerRefusal(
      new Error(
        'Channel closed by server: 540 (NOT-IMPLEMENTED) with message "NOT_IMPLEMENTED - Feature `global_qos` is deprecated."',
      ),
      "q",
    )!,
    command: "serve",
    line: 'the broker refused serve\'s set-up on queue "q": it denies the deprecated feature "global_qos" (Feature `global_qos` is deprecated.); fibrpc does not use it itself, so check the queue\'s policies and arguments, or permit the feature in rabbitmq.conf (deprecated_features.permit.global_qos = true)',
    exitCode: 78,
  },
  {
    error: new FibrpcError("USAGE", "--timeout must be a duration"),
    command: "call",
    line: "--timeout must be a duration",
    exitCode: 64,
  },
  // A call's full queue may be tried again (--retry); a pipeline's (--no-wait) may not: --retry goes with no --no-wait.
  {
    error: new FibrpcError("REJECTED", "rejected", { reason: "queue-full", queue: "q" }),
    command: "call",
    line:
      "rejected; the servers are not keeping up, or the queue's length limit is too small " +
      "(rabbitmqctl list_policies); retry later (--retry)",
    exitCode: 75,
  },
  {
    error: new FibrpcError("REJECTED", "rejected", { reason: "queue-full", queue: "q", pipeline: true }),
    command: "call",
    line:
      "rejected; the servers are not keeping up, or the queue's length limit is too small " +
      "(rabbitmqctl list_policies); retry later",
    exitCode: 75,
  },
  // The queue locked is --reply-to's, not --queue's: the hint names the option to change.
  {
    error: new FibrpcError("BROKER_REFUSED", "locked", { reason: "locked", queue: "r", queueOption: "reply-to" }),
    command: "call",
    line:
      'locked; another connection holds queue "r" for itself (an exclusive queue or consumer): ' +
      "stop that client, or pick another --reply-to",
    exitCode: 78,
  },
  {
    error: new FibrpcError("IO_ERROR", "cannot write to stdout: ENOSPC: no space left on device", {
      reason: "write-stdout",
    }),
    command: "call",
    line: "cannot write to stdout: ENOSPC: no space left on device; check where stdout goes (a full disk, a device gone)",
    exitCode: 74,
  },
];

describe("the line a user reads: what, why, what to do", () => {
  for (const c of cases) {
    test(`${c.error.code} ${c.error.details.reason ?? ""} (${c.command ?? "any command"})`, () => {
      expect(withHint(c.error, c.command)).toBe(c.line);
      expect(c.error.exitCode as number).toBe(c.exitCode);
    });
  }
});

test("rpc/ messages name no option or command line (the hints do)", () => {
  for (const c of cases) {
    if (c.error.code === "USAGE") continue;
    expect(c.error.message).not.toMatch(/--[a-z]|FIBRPC_|fibrpc serve|rabbitmq\.conf/);
    if (hintFor(c.error, c.command) !== undefined) expect(c.line.startsWith(`${c.error.message}; `)).toBe(true);
  }
});

test("details carry the structured facts", () => {
  const error = connectError(socketError("ECONNREFUSED"), url);
  expect(error.details).toEqual({ reason: "connection-refused", broker: "amqp://u:***@h:5672/v" });
  expect(JSON.stringify(error.details)).not.toContain("s3cret");
});
