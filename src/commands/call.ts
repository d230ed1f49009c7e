import { defineCommand } from "citty";
import { errorLine, linesOf, traceIdOf } from "../call/lines.ts";
import { StdoutLines } from "../call/stdout-lines.ts";
import { CallStream } from "../call/stream.ts";
import { tokensOf } from "../call/tokens.ts";
import { ExitCode, FibrpcError, mostSevere, usageError } from "../errors.ts";
import { awaitServer } from "../rpc/await-server.ts";
import { RpcClient, type CallOutcome, type SendOutcome } from "../rpc/client.ts";
import { DEFAULT_MAX_N, MAX_PROTOCOL_N, parseN } from "../rpc/protocol.ts";
import { connectWithin, RetryingCaller } from "../rpc/retry.ts";
import type { Logger } from "../log.ts";
import type { Masker } from "../mask.ts";
import type { Options } from "../options.ts";
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
        for (const flag of ["unordered", "inFlight"] as const)
          if (!streaming && o.from[flag] === "flag")
            throw usageError(`--${flag === "inFlight" ? "in-flight" : flag} applies to \`fibrpc call -\` only`);
        const noWait = pipelineOf(o);
        // Checked before connecting, against what the protocol carries only: how large an n may
        // be is the server's to say (serve --max-n; above it an N_TOO_LARGE error reply, exit 76).
        const ns = (streaming ? [] : tokens).map((token) => {
          const parsedN = parseN(token, MAX_PROTOCOL_N);
          if (!parsedN.ok) throw invalidN(token, parsedN.message);
          return parsedN.n;
        });
        const log = loggerOf(o, run);
        // Reads the TLS files: a usage error.
        const clientOptions = { ...clientOptionsOf(o, run, log, o.replyQueue), tracer: await tracerOf(run, log) };
        // Requests of a pipeline in JSON: each reply then says its n (docs/protocol.md, "Replies to a named queue").
        if (noWait) clientOptions.format = "json";
        const { masker } = run;

        // From here on, with --json, every n gets its line on stdout whatever happens (the usage
        // errors above, exit 64, print none: nothing was asked yet).
        const startedAt = performance.now();
        let printed = 0;
        let calls: Promise<CallOutcome | SendOutcome>[] = [];
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
            if (noWait) await client.ensureReplyQueue(noWait.replyTo);
            // --no-wait: each request is done once the broker has it, and the reply goes to another program.
            const ask = noWait
              ? (n: number, by: number) => client.send(n, noWait.replyTo, by)
              : (n: number, by: number) => caller.call(n, by);
            // Is a server there? With --wait-for-server, wait for one before publishing. Otherwise the
            // check runs alongside the calls, off the path of a cold call: if it finds no server,
            // call fails at once (the requests already sent expire with their deadline). Requests of a
            // pipeline (--no-wait) wait in the queue for a server to come, unless --wait-for-server.
            const serverThere =
              noWait && !o.waitForServer
                ? new Promise<void>(() => {})
                : awaitServer(client, {
                    deadline,
                    wait: o.waitForServer,
                    onWaiting: () =>
                      log.info(
                        `no server on queue ${JSON.stringify(o.queue)} yet; ` +
                          "waiting for one (--wait-for-server, up to --timeout)",
                      ),
                  });
            // call - looks for a server before it reads a word: with none it reads nothing, and says
            // so once, whatever the input (a race between stdin and the look made the output vary).
            if (o.waitForServer || (streaming && !noWait)) await serverThere;
            if (streaming) return await streamStdin(o, ask, caller, serverThere, masker, log);
            // Alongside the calls, the look only ends them early when it finds no server. A look the
            // broker leaves unanswered until the deadline (it stops reading a connection it blocks
            // once it publishes) ends nothing: each call reports its own end (BROKER_BLOCKED, TIMEOUT).
            const never = () => new Promise<never>(() => {});
            const noServer = serverThere.then(never, (err: unknown) => {
              if (err instanceof FibrpcError && err.code === "TIMEOUT") return never();
              throw err;
            });
            // One deadline for the whole command: --timeout bounds it end to end, --retry's attempts
            // and reconnections included (spread over it: rpc/retry.ts).
            calls = ns.map((n) => ask(n, deadline));
            const codes: ExitCode[] = [];
            for (const call of calls) {
              codes.push(await print(await Promise.race([call, noServer]), o.json, masker));
              printed++;
            }
            if (noWait) {
              const taken = codes.filter((c) => c === ExitCode.OK).length;
              log.info(sentLine(taken, codes.length, o.queue, noWait.replyTo));
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
              await writeStdout(errorLine({ n }, code, message, ms, masker, trace));
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

async function print(outcome: CallOutcome | SendOutcome, json: boolean, masker: Masker): Promise<ExitCode> {
  const { stdout, stderr, code } = linesOf(outcome, { json, named: false, masker });
  if (stderr) process.stderr.write(stderr);
  if (stdout) await writeStdout(stdout);
  return code;
}

/**
 * `call -`: the n of stdin, --in-flight at a time, each by its own --timeout (call/stream.ts). SIGINT or
 * SIGTERM stops the reading and lets the calls in flight finish (exit 130 or 143); a second one ends them
 * at once, each reported. No server: reading stops and the calls in flight end with that error.
 */
async function streamStdin(
  o: Options<"call">,
  ask: (n: number, deadline: number) => Promise<CallOutcome | SendOutcome>,
  caller: RetryingCaller,
  serverThere: Promise<void>,
  masker: Masker,
  log: Logger,
): Promise<ExitCode> {
  const stream = new CallStream({
    tokens: tokensOf(process.stdin),
    call: (n) => ask(n, Date.now() + o.timeout),
    out: new StdoutLines(),
    err: (line) => process.stderr.write(line),
    style: { json: o.json, named: o.unordered, masker },
    inFlight: o.inFlight,
    unordered: o.unordered,
  });
  const onSignal = (signal: "SIGINT" | "SIGTERM") => {
    if (stream.stoppedBy === undefined) {
      log.info(`${signal}: reading stopped; the calls in flight finish (${signal} again to end them now)`);
      stream.stop({ signal });
    } else void caller.close({ waitForBroker: false });
  };
  process.on("SIGINT", onSignal).on("SIGTERM", onSignal);
  serverThere.catch((error: unknown) => {
    if (!(error instanceof FibrpcError)) return;
    stream.stop({ error });
    void caller.close({ waitForBroker: false, callsEndWith: error });
  });
  const code = await stream.run();
  if (o.replyTo !== undefined) log.info(sentLine(stream.tally.ok, stream.tally.calls, o.queue, o.replyTo));
  const stopped = stream.stoppedBy;
  if (stopped && "error" in stopped) throw stopped.error;
  if (stopped && "signal" in stopped)
    return stopped.signal === "SIGINT" ? ExitCode.SIGINT_AGAIN : ExitCode.SIGTERM_AGAIN;
  return code;
}

/**
 * --reply-to QUEUE --no-wait, given together (an asynchronous pipeline: the replies go to QUEUE, for
 * another program); neither alone, nor with --retry, which retries calls that wait for their reply.
 */
function pipelineOf(o: Options<"call">): { replyTo: string } | undefined {
  if (o.replyTo === undefined && !o.noWait) return undefined;
  if (o.replyTo === undefined) throw usageError("--no-wait needs --reply-to QUEUE: the queue the replies go to");
  if (!o.noWait)
    throw usageError("--reply-to needs --no-wait: call does not wait for replies it sends to another queue");
  if (o.retry > 0) throw usageError("--retry applies to calls that wait for their reply, not to --no-wait");
  if (o.replyTo === o.queue)
    throw usageError(
      `--reply-to ${JSON.stringify(o.replyTo)} is the request queue: the servers would take each reply ` +
        "for a request and drop it; name another queue",
    );
  return { replyTo: o.replyTo };
}

/** What --no-wait did, said once at the end (stderr): how many requests the broker took, where their replies go. */
function sentLine(taken: number, sent: number, queue: string, replyTo: string): string {
  return (
    `${taken} of ${sent} requests taken by the broker (confirmed) on queue ${JSON.stringify(queue)}; ` +
    `their replies go to queue ${JSON.stringify(replyTo)}`
  );
}
