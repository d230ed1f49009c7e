/**
 * amqplib decodes AMQP field tables recursively, while RabbitMQ accepts tables (and arrays)
 * nested far deeper than a JS stack holds: 20,000 levels fit in one frame, and amqplib's decoder
 * overflows near 10,000 in a Bun Worker. A delivery whose headers overflow it would close the
 * consumer's connection, and the broker would redeliver it forever, to every worker.
 *
 * The same holds for a field type RabbitMQ accepts and amqplib's decoder does not ('L').
 *
 * So the decoder amqplib's frame parser uses is wrapped: a table it cannot decode comes back
 * empty, marked UNREADABLE_TABLE, the rest of the frame decodes as usual (the table's length is
 * read by the caller), and `decide` (delivery.ts) refuses the request like any other bad input.
 *
 * amqplib's defs.js copies `codec.decodeFields` once, when it loads: this module must be
 * evaluated before amqplib is, which is why the entry points (cli.ts, serve/worker.ts) import it
 * first. test/integration/hostile-requests.test.ts sends such tables to the compiled binary.
 */
// @ts-expect-error -- amqplib's package exports hide lib/; this is the very file amqplib loads.
import codec from "../../node_modules/amqplib/lib/codec.js";

/** Marks a field table amqplib could not decode (nested too deeply, or of an unknown field type). */
export const UNREADABLE_TABLE = Symbol.for("fibrpc.unreadable-table");

const amqplibCodec = codec as { decodeFields: (slice: Buffer) => Record<string, unknown>; guarded?: true };
if (!amqplibCodec.guarded) {
  const decodeFields = amqplibCodec.decodeFields;
  amqplibCodec.decodeFields = (slice) => {
    try {
      return decodeFields(slice);
    } catch {
      // The stack overflowed deep inside (here, at the top, there is room again), or a field type
      // the broker passes on and amqplib does not know ('L', an unsigned 64-bit integer RabbitMQ
      // accepts): either way the table cannot be read, and the delivery must still get through.
      const unreadable: Record<string, unknown> = {};
      Object.defineProperty(unreadable, UNREADABLE_TABLE, { value: true });
      return unreadable;
    }
  };
  amqplibCodec.guarded = true;
}
