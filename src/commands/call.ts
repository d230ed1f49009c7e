import { defineCommand } from "citty";
import { runCalls } from "../call/run.ts";
import { type FibrpcError, usageError } from "../errors.ts";
import { NEARNESS, type Options } from "../options.ts";
import { givenAs } from "../options-resolve.ts";
import { DEFAULT_MAX_N, MAX_PROTOCOL_N, parseN } from "../rpc/protocol.ts";
import { quote } from "../printable.ts";
import { runAction } from "./_run.ts";
import { clientOptionsOf, loggerOf, tracerOf } from "./_shared.ts";

function invalidN(token: string, why: string): FibrpcError {
  return usageError(`invalid n ${quote(token)}: ${why}`);
}

export default defineCommand({
  meta: { name: "call", description: "Ask the servers for fib(N) and print each result on its own line" },
  args: {
    n: {
      type: "positional",
      valueHint: "N [N ...] | -",
      description:
        `One or more n, from 0; how large is the server's to say (serve --max-n, ${DEFAULT_MAX_N} by default; ` +
        "above it, an N_TOO_LARGE error, exit 76); all are sent at once and printed in this order, " +
        "one fib(n) per line. " +
        "- alone: read n from stdin (separated by spaces or newlines) as they come, --in-flight at a time",
    },
  },
  run: (context) =>
    runAction(
      "call",
      context,
      async (o, run, tokens) => {
        if (tokens.length === 0)
          throw usageError("give at least one n, e.g. `fibrpc call 30`, or - to read them from stdin");
        const streaming = tokens.length === 1 && tokens[0] === "-";
        if (!streaming && tokens.includes("-")) throw usageError("give - alone, to read every n from stdin");
        // Given on the command line (--no-unordered says nothing to refuse).
        if (!streaming && o.from.inFlight === "flag") throw usageError("--in-flight applies to `fibrpc call -` only");
        if (!streaming && o.from.unordered === "flag" && o.unordered)
          throw usageError("--unordered applies to `fibrpc call -` only");
        const pipeline = pipelineOf(o);
        // Checked before connecting, against what the protocol carries only: how large an n may
        // be is the server's to say (serve --max-n; above it an N_TOO_LARGE error reply, exit 76).
        const ns = (streaming ? [] : tokens).map((token) => {
          const parsedN = parseN(token, MAX_PROTOCOL_N);
          if (!parsedN.ok) throw invalidN(token, parsedN.message);
          return parsedN.n;
        });
        const log = loggerOf(o, run);
        // Reads the TLS files: a usage error.
        // A pipeline reads no replies: no reply queue of its own, whatever a farther FIBRPC_REPLY_QUEUE says.
        const replyQueue = pipeline ? "direct" : o.replyQueue;
        const client = { ...clientOptionsOf(o, run, log, replyQueue), tracer: await tracerOf(run, log) };
        try {
          return await runCalls({
            ns: streaming ? "stdin" : ns,
            client,
            // A pipeline's farther FIBRPC_RETRY is not for it (pipelineOf).
            retry: pipeline ? 0 : o.retry,
            waitForServer: o.waitForServer,
            json: o.json,
            pipeline,
            stream: { inFlight: o.inFlight, unordered: o.unordered },
            masker: run.masker,
            log,
          });
        } finally {
          // The calls' spans exported before exit, within a bounded wait (tracing off: nothing to do).
          await client.tracer?.shutdown();
        }
      },
      (token) => {
        throw invalidN(token, "n must not be negative");
      },
    ),
});

/**
 * --reply-to QUEUE --no-wait, given together (an asynchronous pipeline: the replies go to QUEUE, for
 * another program); neither alone. Options that exclude each other follow one rule (as bench's --requests
 * and --duration): given at one level (two flags, two variables) it is an error, since which was meant is not
 * known; at two, the nearer wins, so that a config file shared by every call can hold either kind of call's
 * settings: `--no-no-wait` turns its FIBRPC_REPLY_TO off, and its FIBRPC_RETRY is no reason to refuse a
 * pipeline asked for on the command line.
 */
function pipelineOf(o: Options<"call">): { replyTo: string } | undefined {
  if (o.replyTo === undefined && !o.noWait) return undefined;
  if (o.replyTo === undefined)
    throw usageError(`${givenAs("no-wait", o.from.noWait)} needs --reply-to QUEUE: the queue the replies go to`);
  if (!o.noWait) {
    if (NEARNESS[o.from.noWait] > NEARNESS[o.from.replyTo]) return undefined;
    throw usageError(
      `${givenAs("reply-to", o.from.replyTo)} needs --no-wait: ` +
        "call does not wait for replies it sends to another queue",
    );
  }
  // Where the pipeline was asked for: its nearer option.
  const level = Math.max(NEARNESS[o.from.replyTo], NEARNESS[o.from.noWait]);
  if (o.retry > 0 && NEARNESS[o.from.retry] >= level)
    throw usageError(`${givenAs("retry", o.from.retry)} applies to calls that wait for their reply, not to --no-wait`);
  if (o.from.replyQueue !== "default" && NEARNESS[o.from.replyQueue] >= level)
    throw usageError(
      `${givenAs("reply-queue", o.from.replyQueue)} chooses where a waiting call's replies come back; ` +
        "with --no-wait they go to --reply-to",
    );
  if (o.replyTo === o.queue)
    throw usageError(
      `--reply-to ${quote(o.replyTo)} is the request queue: the servers would take each reply ` +
        "for a request and drop it; name another queue",
    );
  return { replyTo: o.replyTo };
}
