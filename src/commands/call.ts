import { defineCommand } from "citty";
import { ExitCode, FibrpcError, mostSevere, usageError } from "../errors.ts";
import { awaitServer } from "../rpc/await-server.ts";
import { exitCodeOf, RpcClient, type CallOutcome } from "../rpc/client.ts";
import { DEFAULT_MAX_N, MAX_PROTOCOL_N, parseN } from "../rpc/protocol.ts";
import { connectWithin, RetryingCaller } from "../rpc/retry.ts";
import type { Masker } from "../mask.ts";
import { writeStdout } from "../output.ts";
import { withHint } from "../hints.ts";
import { runAction } from "./_run.ts";
import { clientOptionsOf, loggerOf, tracerOf } from "./_shared.ts";

function invalidN(token: string, why: string): FibrpcError {
  return usageError(`invalid n ${JSON.stringify(token)}: ${why}`);
}

export default defineCommand({
  meta: { name: "call", description: "Ask the servers for fib(N) and print each result on its own line" },
  args: {
    n: {
      type: "positional",
      valueHint: "N [N ...]",
      description:
        `One or more n, from 0; how large is the server's to say (serve --max-n, ${DEFAULT_MAX_N} by default; ` +
        "above it, an N_TOO_LARGE error, exit 76); all are sent at once and printed in this order, one fib(n) per line",
    },
  },
  run: (context) =>
    runAction(
      "call",
      context,
      async (o, run, tokens) => {
        if (tokens.length === 0) throw usageError("give at least one n, e.g. `fibrpc call 30`");
        // Checked before connecting, against what the protocol carries only: how large an n may
        // be is the server's to say (serve --max-n; above it an N_TOO_LARGE error reply, exit 76).
        const ns = tokens.map((token) => {
          const parsedN = parseN(token, MAX_PROTOCOL_N);
          if (!parsedN.ok) throw invalidN(token, parsedN.message);
          return parsedN.n;
        });
        const log = loggerOf(o, run);
        // Reads the TLS files: a usage error.
        const clientOptions = { ...clientOptionsOf(o, run, log, o.replyQueue), tracer: await tracerOf(run, log) };
        const { masker } = run;

        // From here on, with --json, every n gets its line on stdout whatever happens (the usage
        // errors above, exit 64, print none: nothing was asked yet).
        const startedAt = performance.now();
        let printed = 0;
        let calls: Promise<CallOutcome>[] = [];
        try {
          const deadline = Date.now() + o.timeout;
          const connect = (by: number) => RpcClient.connect(clientOptions, Math.min(by, deadline));
          // With --retry, a broker that refuses the first connection (restarting) is tried again
          // until the deadline, as a lost connection is (rpc/retry.ts).
          const client =
            o.retry > 0
              ? await connectWithin(connect, () => deadline, {
                  onFailure: (error, attempt, again) =>
                    attempt === 0 && again && log.info(`${error.message}; trying again until the timeout (--retry)`),
                })
              : await connect(deadline);
          const caller = new RetryingCaller(client, connect, o.retry, o.timeout, log);
          let failure: FibrpcError | undefined;
          try {
            // Is a server there? With --wait-for-server, wait for one before publishing. Otherwise the
            // check runs alongside the calls, off the path of a cold call: if it finds no server,
            // call fails at once (the requests already sent expire with their deadline).
            const serverThere = awaitServer(client, {
              deadline,
              wait: o.waitForServer,
              onWaiting: () =>
                log.info(
                  `no server on queue ${JSON.stringify(o.queue)} yet; ` +
                    "waiting for one (--wait-for-server, up to --timeout)",
                ),
            });
            if (o.waitForServer) await serverThere;
            const noServer = serverThere.then(() => new Promise<never>(() => {}));
            // One deadline for the whole command: --timeout bounds it end to end, --retry's attempts
            // and reconnections included (spread over it: rpc/retry.ts).
            calls = ns.map((n) => caller.call(n, deadline));
            const codes: ExitCode[] = [];
            for (const call of calls) {
              codes.push(await print(await Promise.race([call, noServer]), o.json, masker));
              printed++;
            }
            return mostSevere(codes);
          } catch (err) {
            // No server (or another error for them all): the calls still in flight end with it, so that
            // their spans say what call says.
            if (err instanceof FibrpcError) failure = err;
            throw err;
          } finally {
            await caller.close({ waitForBroker: false, callsEndWith: failure });
          }
        } catch (err) {
          // One error for all the calls not printed yet (the broker unreachable or refusing, no
          // server): runAction writes its one line on stderr, and --json a line per n on stdout,
          // in order, shaped as any failed call's.
          if (o.json) {
            const ms = performance.now() - startedAt;
            const { code, message } =
              err instanceof FibrpcError
                ? { code: err.code, message: withHint(err, "call") }
                : { code: "INTERNAL", message: `internal error: ${err instanceof Error ? err.message : String(err)}` };
            for (const [i, n] of ns.entries()) {
              if (i < printed) continue;
              // A call that was sent has its outcome (ended by close) and, tracing on, its trace.
              const trace = calls[i] && traceIdOf(await calls[i]);
              await writeStdout(errorLine(n, code, message, ms, masker, trace));
            }
          }
          throw err;
        } finally {
          // The calls' spans exported before exit, within a bounded wait (tracing off: nothing to do).
          await clientOptions.tracer?.shutdown();
        }
      },
      (token) => {
        throw invalidN(token, "n must not be negative");
      },
    ),
});

async function print(outcome: CallOutcome, json: boolean, masker: Masker): Promise<ExitCode> {
  const ms = Math.round(outcome.ms * 1000) / 1000;
  if (outcome.ok) {
    if (!json) {
      await writeStdout(`${outcome.result}\n`);
      return ExitCode.OK;
    }
    const trace = traceIdOf(outcome);
    await writeStdout(
      `{"n":${outcome.n},"result":"${outcome.result}","ms":${ms}${trace ? `,"trace_id":"${trace}"` : ""}}\n`,
    );
    return ExitCode.OK;
  }
  // An error of ours carries a hint of what to do; an error reply says it all itself. Either may
  // quote text from elsewhere (a server's reply, a socket error): masked, and one line whatever
  // it holds (control characters shown escaped, not obeyed by the terminal).
  const message = printable(masker.mask(outcome.error ? withHint(outcome.error, "call") : outcome.message));
  const code = printable(outcome.code);
  process.stderr.write(`fib(${outcome.n}): ${code}: ${message}\n`);
  if (json) await writeStdout(errorLine(outcome.n, outcome.code, message, outcome.ms, masker, traceIdOf(outcome)));
  return exitCodeOf(outcome);
}

/**
 * The JSON line of a failed call: {"n", "error": {code, message}, "ms"}; its text masked and
 * printable (again: it does no harm).
 */
function errorLine(n: number, code: string, message: string, ms: number, masker: Masker, trace?: string): string {
  const error = { code: printable(code), message: printable(masker.mask(message)) };
  return `${JSON.stringify({ n, error, ms: Math.round(ms * 1000) / 1000, trace_id: trace })}\n`;
}

/**
 * The trace of the call's last attempt (its send span's, tracing/tracer.ts) for a --json line when tracing
 * is on; undefined when it is off, so the line is as before (JSON.stringify leaves an undefined field out).
 */
function traceIdOf(outcome: CallOutcome): string | undefined {
  return outcome.trace?.trace_id;
}

/** Text from elsewhere, safe for one line on a terminal: control characters escaped (\n, \u001b). */
function printable(text: string): string {
  return text.replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) => JSON.stringify(c).slice(1, -1));
}
