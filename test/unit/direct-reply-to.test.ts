/**
 * Direct Reply-to addresses a server may reply to: what RabbitMQ issues passes; what would crash
 * the broker's decoder (and with it the server's connection) does not.
 */
import { expect, test } from "bun:test";
import { DirectReplyToChecks, isDirectReplyTo, isWellFormedDirectReplyTo } from "../../src/rpc/direct-reply-to.ts";

/** Issued by RabbitMQ 3.10 here (v2 encoding: node "reply@<hash>"). */
const ISSUED_3_10 = "amq.rabbitmq.reply-to.g1h2AA1yZXBseUA5MjQ4ODg0AABmGQAAAAVrBt0Q.6nwfprQr5FoXK7Ed45FASw==";
/** As RabbitMQ 4.2 issues them (from its AMQP 1.0 RPC example: the same encoding). */
const ISSUED_4_2 = "amq.rabbitmq.reply-to.g1h2AA5yZXBseUA2ODc4MTMzNAAAcEoAAAAAaS8eQg==.key";

/** A pid term as base64: NEW_PID_EXT (or PID_EXT) with the node as a small UTF-8 atom. */
function pid(node: string, tag = 88, tail = tag === 88 ? 12 : 9): string {
  const name = Buffer.from(node);
  return Buffer.concat([Buffer.of(131, tag, 119, name.length), name, Buffer.alloc(tail, 1)]).toString("base64");
}

test.each([
  [ISSUED_3_10, true],
  [ISSUED_4_2, true],
  [`amq.rabbitmq.reply-to.${pid("rabbit@host")}.k`, true], // v1: the real node name
  [`amq.rabbitmq.reply-to.${pid("rabbit@host", 103)}.k`, true], // old PID_EXT
  [`amq.rabbitmq.reply-to..${pid("reply@1")}..k.`, true], // empty parts are skipped, as the broker does
  ["amq.rabbitmq.reply-to.g1hkAA==.AAAA", false], // truncated term
  ["amq.rabbitmq.reply-to.g1h2AA1yZXBseUA5MjQ4ODg0AABmGQAAAAVrBt0Q", false], // no key
  [`amq.rabbitmq.reply-to.${pid("reply@1")}.k.extra`, false], // three parts
  [`amq.rabbitmq.reply-to.${pid("reply@12ab")}.k`, false], // v2 hash not a number
  [`amq.rabbitmq.reply-to.${pid("nohost")}.k`, false],
  [`amq.rabbitmq.reply-to.${pid("reply@1", 88, 11)}.k`, false], // one byte short
  [`amq.rabbitmq.reply-to.${pid("reply@1", 88, 13)}.k`, false], // one byte too many
  [`amq.rabbitmq.reply-to.${pid("reply@1", 97)}.k`, false], // a small integer, not a pid
  ["amq.rabbitmq.reply-to.not*base64.k", false],
  ["amq.rabbitmq.reply-to.", false],
])("%s → %p", (address, wellFormed) => {
  expect(isDirectReplyTo(address)).toBe(true);
  expect(isWellFormedDirectReplyTo(address)).toBe(wellFormed);
});

test("other reply_to values are not Direct Reply-to addresses", () => {
  expect(isDirectReplyTo("amq.gen-abc")).toBe(false);
  expect(isDirectReplyTo("amq.rabbitmq.reply-to")).toBe(false); // the pseudo-queue a caller consumes
});

test("a server's memory of checked addresses gives the same answers, however often it is asked and however full", () => {
  const checks = new DirectReplyToChecks(2);
  const good = [ISSUED_3_10, ISSUED_4_2, `amq.rabbitmq.reply-to.${pid("rabbit@host")}.k`];
  const bad = ["amq.rabbitmq.reply-to.g1hkAA==.AAAA", `amq.rabbitmq.reply-to.${pid("nohost")}.k`];
  for (let round = 0; round < 3; round++) {
    for (const address of good) expect(checks.isWellFormed(address)).toBe(true);
    for (const address of bad) expect(checks.isWellFormed(address)).toBe(false);
  }
});
