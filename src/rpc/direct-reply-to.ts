/**
 * Direct Reply-to addresses (RabbitMQ docs, "Direct Reply-to"). A caller consuming from
 * `amq.rabbitmq.reply-to` publishes requests whose reply_to the broker rewrites to
 * `amq.rabbitmq.reply-to.<pid>.<key>`: <pid> is the base64 of the caller's channel process id in
 * Erlang's external term format, <key> a random base64 key. RabbitMQ 3.x decodes <pid> when a
 * server publishes to that address, and a <pid> that does not decode crashes the *publisher's*
 * channel: the server's connection is closed with 541 INTERNAL_ERROR (rabbit_direct_reply_to,
 * decode_reply_to_v1/v2). A client can put any such string in reply_to, so a server checks the
 * shape before replying — the same checks the broker's decoder relies on.
 */

const PREFIX = "amq.rabbitmq.reply-to.";

export function isDirectReplyTo(replyTo: string): boolean {
  return replyTo.startsWith(PREFIX);
}

const ERLANG_TERM_VERSION = 131;
const NEW_PID_EXT = 88; // node atom, then ID, Serial, Creation: 4 bytes each
const PID_EXT = 103; // node atom, then ID, Serial (4 bytes each), Creation (1 byte)

/**
 * Whether `replyTo` has the shape the broker gives Direct Reply-to addresses: two dot-separated
 * parts (empty ones are skipped, as the broker's string:lexemes does), the first standard base64
 * of a pid term whose node name is `name@host`, and, for the synthetic `reply@<hash>` node names
 * of the v2 encoding, a decimal hash. An address of the right shape may still name a channel that
 * is gone: the broker then drops the reply (RabbitMQ 3.10 still closes the connection if the
 * caller's node has died or left the cluster; a server answers a request it has seen before on a
 * connection of its own, so it cannot loop: isolated-replies.ts).
 */
export function isWellFormedDirectReplyTo(replyTo: string): boolean {
  const parts = replyTo
    .slice(PREFIX.length)
    .split(".")
    .filter((part) => part !== "");
  if (parts.length !== 2) return false;
  const pid = parts[0]!;
  if (pid.length % 4 !== 0 || !/^[A-Za-z0-9+/]+={0,2}$/.test(pid)) return false;
  return isPidTerm(Buffer.from(pid, "base64"));
}

/**
 * isWellFormedDirectReplyTo with a memory of the addresses found well-formed lately: a caller
 * sends all its requests with one address, so each is checked once. A server keeps one; the
 * answers are those of isWellFormedDirectReplyTo.
 */
export class DirectReplyToChecks {
  /** Addresses found well-formed lately (callers in flight), oldest first. */
  private readonly recent = new Set<string>();

  constructor(private readonly max = 256) {}

  isWellFormed(replyTo: string): boolean {
    if (this.recent.has(replyTo)) return true;
    const wellFormed = isWellFormedDirectReplyTo(replyTo);
    if (wellFormed) {
      if (this.recent.size >= this.max) this.recent.delete(this.recent.values().next().value!);
      this.recent.add(replyTo);
    }
    return wellFormed;
  }
}

function isPidTerm(term: Buffer): boolean {
  if (term.length < 3 || term[0] !== ERLANG_TERM_VERSION) return false;
  const tag = term[1];
  if (tag !== NEW_PID_EXT && tag !== PID_EXT) return false;
  const node = readAtom(term, 2);
  if (!node) return false;
  const end = node.end + (tag === NEW_PID_EXT ? 12 : 9);
  if (end !== term.length) return false;
  const at = node.name.indexOf("@");
  if (at <= 0 || at === node.name.length - 1) return false;
  return !node.name.startsWith("reply@") || /^\d+$/.test(node.name.slice("reply@".length));
}

/** An atom in external term format at `offset`: its text and where it ends. */
function readAtom(term: Buffer, offset: number): { name: string; end: number } | undefined {
  const tag = term[offset];
  let length: number;
  let start: number;
  if (tag === 119 /* SMALL_ATOM_UTF8_EXT */ || tag === 115 /* SMALL_ATOM_EXT */) {
    if (offset + 2 > term.length) return undefined;
    length = term[offset + 1]!;
    start = offset + 2;
  } else if (tag === 118 /* ATOM_UTF8_EXT */ || tag === 100 /* ATOM_EXT */) {
    if (offset + 3 > term.length) return undefined;
    length = term.readUInt16BE(offset + 1);
    start = offset + 3;
  } else return undefined;
  if (start + length > term.length) return undefined;
  return { name: term.toString("utf8", start, start + length), end: start + length };
}
