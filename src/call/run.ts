/**
 * What `fibrpc call` does once its options are resolved (commands/call.ts parses and checks them): connect,
 * look for a server, send the n (given, or read from stdin by call/stream.ts) and print each outcome, in
 * order. A plain module with a typed function, as giget keeps its work apart from its CLI file.
 */
import { writeSync } from "node:fs";
import { ExitCode, FibrpcError, mostSevere } from "../errors.ts";
import { withHint } from "../hints.ts";
import type { Logger } from "../log.ts";
import type { Masker } from "../mask.ts";
import { stdinError, stdoutError, writeResults, writeStdout } from "../output.ts";
import { awaitServer } from "../rpc/await-server.ts";
import { RpcClient, type CallOutcome, type ClientOptions, type SendOutcome } from "../rpc/client.ts";
import { connectWithin, RetryingCaller } from "../rpc/retry.ts";
import { ServerWatch } from "../rpc/server-gone.ts";
import { type FirstSignal, firstSignal, isEcho } from "../signals.ts";
import { errorLine, linesOf, traceIdOf } from "./lines.ts";
import { StdoutLines } from "./stdout-lines.ts";
import { CallStream } from "./stream.ts";
import { tokensOf } from "./tokens.ts";
import { quote } from "../printable.ts";

export interface CallJob {
  /** The n to ask for, printed in this order, or "stdin": `call -`, n read as they come. */
  ns: readonly number[] | "stdin";
  /** The client's options: the queue, --timeout (the whole command's, and each streamed n's), the tracer… */
  client: ClientOptions;
  retry: number;
  waitForServer: boolean;
  json: boolean;
  /** --reply-to QUEUE --no-wait: each request is done once the broker has it; its reply goes to this queue. */
  pipeline?: { replyTo: string };
  /** `call -`: calls kept in flight, and whether results are printed as they come. */
  stream: { inFlight: number; unordered: boolean };
  masker: Masker;
  log: Logger;
}

type Ask = (n: number, deadline: number) => Promise<CallOutcome | SendOutcome>;

/** Runs the calls and prints their outcomes; the exit code says the most severe. */
export async function runCalls(job: CallJob): Promise<ExitCode> {
  const { client: clientOptions, log, masker, pipeline } = job;
  const { queue, timeoutMs } = clientOptions;
  const ns = job.ns === "stdin" ? [] : job.ns;
  // From here on, with --json, every n gets its line on stdout whatever happens (usage errors, found
  // before, print none: nothing was asked yet).
  const startedAt = performance.now();
  let printed = 0;
  let calls: Promise<CallOutcome | SendOutcome>[] = [];
  // Until the calls are sent (connecting, waiting for a server: up to --timeout), a signal ends the run at once:
  // nothing is in flight to finish. --json still gets its line per n.
  const beforeSending = (signal: Signal) => {
    const message = `${signal} before the calls were sent`;
    const ms = performance.now() - startedAt;
    if (job.json) for (const n of ns) writeSync(1, errorLine({ n }, "INTERRUPTED", message, ms, masker));
    process.stderr.write(`fibrpc: ${message}; nothing was sent\n`);
    process.exit(signalExit(signal));
  };
  const sending = () => process.off("SIGINT", beforeSending).off("SIGTERM", beforeSending);
  process.on("SIGINT", beforeSending).on("SIGTERM", beforeSending);
  try {
    const deadline = Date.now() + timeoutMs;
    // `call N …`: one --timeout for the whole command, reconnections included. `call -`: each n has its own,
    // so a reconnection (--retry) is bounded by the calls waiting for it: bounded by the first deadline, every
    // reconnection after the stream's first --timeout got 1 ms and failed, and the stream never recovered.
    const streaming = job.ns === "stdin";
    const connect = (by: number) => RpcClient.connect(clientOptions, streaming ? by : Math.min(by, deadline));
    // With --retry, a broker that refuses the first connection (restarting) is tried again
    // until the deadline, as a lost connection is (rpc/retry.ts).
    let brokerWasDown = false;
    const client =
      job.retry > 0
        ? await connectWithin(connect, () => deadline, {
            onFailure: (error, attempt, again) => {
              brokerWasDown = true;
              if (attempt === 0 && again) log.info(`${error.message}; trying again until the timeout (--retry)`);
            },
          })
        : await connect(deadline);
    // A broker that has just come back (--retry waited for it) has no servers yet: they reconnect on their
    // own schedule (serve's back-off, up to seconds). Waited for within the deadline, as --wait-for-server
    // would, rather than failing with NO_CONSUMER in the gap.
    const waitForServer = job.waitForServer || brokerWasDown;
    const caller = new RetryingCaller(client, connect, job.retry, timeoutMs, log);
    let failure: FibrpcError | undefined;
    try {
      // --no-wait: each request is done once the broker has it, and the reply goes to another program.
      // A call that times out on a queue whose server has gone since the look below: NO_CONSUMER, not TIMEOUT.
      // call - stops on it: a second look a second later must agree (a server reconnecting is no server gone).
      const watch = new ServerWatch(() => caller.current, {
        confirmMs: job.ns === "stdin" ? 1_000 : 0,
        retried: job.retry > 0,
      });
      const ask: Ask = pipeline
        ? (n, by) => caller.sendTo(n, pipeline.replyTo, by)
        : (n, by) =>
            caller.call(n, by).then((outcome) => (ServerWatch.concerns(outcome) ? watch.explain(outcome) : outcome));
      // Is a server there? With --wait-for-server, wait for one before publishing. Otherwise the
      // check runs alongside the calls, off the path of a cold call: if it finds no server,
      // call fails at once (the requests already sent expire with their deadline). Requests of a
      // pipeline (--no-wait) wait in the queue for a server to come, unless --wait-for-server: the
      // queue itself must be there.
      const serverThere = awaitServer(client, {
        deadline,
        wait: waitForServer,
        queueOnly: pipeline !== undefined && !waitForServer,
        onWaiting: () => {
          const why = job.waitForServer
            ? "--wait-for-server"
            : "the broker is back, its servers may still be reconnecting";
          log.info(`no server on queue ${quote(queue)} yet; waiting for one (${why}, up to --timeout)`);
        },
      });
      // call - and a pipeline look before they send anything: with no server (no queue) they read
      // nothing and make no reply queue, and say so once, whatever the input (a race between stdin
      // and the look made the output vary).
      if (waitForServer || job.ns === "stdin" || pipeline) await serverThere;
      if (pipeline) await client.ensureReplyQueue(pipeline.replyTo);
      if (job.ns === "stdin") {
        sending();
        return await streamStdin(job, ask, caller, serverThere);
      }
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
      sending();
      calls = ns.map((n) => ask(n, deadline));
      // Every call is sent: a signal lets them finish and print (with --json, a line per n whatever happens).
      const signals = onSignals(caller, (signal) =>
        log.info(`${signal}: the calls in flight finish (${signal} again to end them now)`),
      );
      const codes: ExitCode[] = [];
      try {
        for (const call of calls) {
          const outcome = await Promise.race([call, noServer]);
          // The broker returned the request (no queue) before the look said so: the look's one line, for every n,
          // as for a queue with no consumer (rather than the same line once per n).
          if (!outcome.ok && outcome.code === "QUEUE_NOT_FOUND") {
            const missing = await serverThere.then(
              () => undefined,
              (err: unknown) => err,
            );
            if (missing instanceof FibrpcError && missing.code !== "TIMEOUT") throw missing;
          }
          const code = await print(outcome, job.json, masker);
          if (code === undefined) break; // stdout's reader went away (`| head`): nothing more to print
          codes.push(code);
          printed++;
        }
      } finally {
        signals.remove();
      }
      if (pipeline) {
        const taken = codes.filter((c) => c === ExitCode.OK).length;
        log.info(sentLine(taken, codes.length, queue, pipeline.replyTo));
      }
      return signals.caught === undefined ? mostSevere(codes) : signalExit(signals.caught);
    } catch (err) {
      // No server (or another error for them all): the calls still in flight end with it, so that
      // their spans say what call says.
      if (err instanceof FibrpcError) failure = err;
      throw err;
    } finally {
      await caller.close({ waitForBroker: false, callsEndWith: failure });
    }
  } catch (err) {
    sending();
    // One error for all the calls not printed yet (the broker unreachable or refusing, no
    // server): the command writes its one line on stderr, and --json a line per n on stdout,
    // in order, shaped as any failed call's.
    if (job.json) {
      const ms = performance.now() - startedAt;
      const { code, message } =
        err instanceof FibrpcError
          ? { code: err.code, message: withHint(err, "call") }
          : { code: "INTERNAL", message: `internal error: ${err instanceof Error ? err.message : String(err)}` };
      for (const [i, n] of ns.entries()) {
        if (i < printed) continue;
        // A call that was sent has its outcome (ended by close) and, tracing on, its trace.
        const trace = calls[i] && traceIdOf(await calls[i]);
        // Written as far as stdout takes them: the error that ended the calls is what the user reads.
        const written = await writeStdout(errorLine({ n }, code, message, ms, masker, trace)).then(
          () => true,
          () => false,
        );
        if (!written) break;
      }
    }
    throw err;
  }
}

/** Prints one outcome; undefined once stdout's reader has gone away (EPIPE). Other write failures throw (74). */
async function print(outcome: CallOutcome | SendOutcome, json: boolean, masker: Masker): Promise<ExitCode | undefined> {
  const { stdout, stderr, code } = linesOf(outcome, { json, named: false, masker });
  if (stderr) process.stderr.write(stderr);
  if (stdout && !(await writeResults(stdout))) return undefined;
  return code;
}

/**
 * stdin's chunks, ended as at EOF by a read that fails (a directory, a device error): the calls in flight
 * then finish and print as they would, and `failed` holds the error, the user's to fix (exit 74), not a bug.
 */
function stdinChunks(): { chunks: AsyncGenerator<Uint8Array | string>; failed: () => FibrpcError | undefined } {
  let failure: FibrpcError | undefined;
  async function* chunks() {
    try {
      for await (const chunk of process.stdin) yield chunk;
    } catch (err) {
      failure = stdinError(err);
    }
  }
  return { chunks: chunks(), failed: () => failure };
}

/**
 * `call -`: the n of stdin, --in-flight at a time, each by its own --timeout (call/stream.ts). SIGINT or
 * SIGTERM stops the reading and lets the calls in flight finish (exit 130 or 143); a second one ends them
 * at once, each reported. No server, or a refusal: reading stops and the calls in flight end with that error.
 */
async function streamStdin(job: CallJob, ask: Ask, caller: RetryingCaller, serverThere: Promise<void>) {
  const { log, masker, pipeline } = job;
  const out = new StdoutLines();
  // stderr too: a slow reader of the error lines (input of words that are not n) slows the reading down
  // instead of piling lines up in memory, and what is queued is written before the process exits.
  const errors = new StdoutLines(process.stderr);
  const stdin = stdinChunks();
  // Reading stops with the error, and the calls in flight end with it: no server (at the start, or gone since).
  const stopWith = (error: FibrpcError) => {
    stream.stop({ error });
    void caller.close({ waitForBroker: false, callsEndWith: error });
  };
  const stream = new CallStream({
    tokens: tokensOf(stdin.chunks),
    call: async (n) => {
      const outcome = await ask(n, Date.now() + job.client.timeoutMs);
      // With --retry the stream goes on: its next calls are retried until a server comes back, as asked.
      const gone = !outcome.ok && outcome.error?.details.reason === "server-gone";
      if (gone && job.retry === 0 && !stream.stoppedBy) stopWith(outcome.error!);
      // A refusal (no write permission, a limit, a certificate) meets every n after it too: said once, and the
      // reading stops, rather than a line per n for as long as stdin lasts.
      if (!outcome.ok && outcome.error?.refusal && !stream.stoppedBy) stopWith(outcome.error);
      return outcome;
    },
    out,
    err: (line) => errors.writeNow(line),
    errRoom: () => (errors.blocked ? errors.room() : undefined),
    style: { json: job.json, named: job.stream.unordered, masker },
    settleAll: pipeline !== undefined,
    ...job.stream,
  });
  const signals = onSignals(caller, (signal) => {
    log.info(`${signal}: reading stopped; the calls in flight finish (${signal} again to end them now)`);
    stream.stop({ signal });
  });
  serverThere.catch((error: unknown) => {
    if (error instanceof FibrpcError) stopWith(error);
  });
  const code = await stream.run();
  signals.remove();
  await errors.end();
  if (pipeline) log.info(sentLine(stream.tally.ok, stream.tally.calls, job.client.queue, pipeline.replyTo));
  if (out.failure) throw stdoutError(out.failure);
  const unread = stdin.failed();
  if (unread) throw unread;
  const stopped = stream.stoppedBy;
  if (stopped && "error" in stopped) throw stopped.error;
  if (stopped && "signal" in stopped) return signalExit(stopped.signal);
  return code;
}

type Signal = "SIGINT" | "SIGTERM";

/**
 * SIGINT and SIGTERM while calls are in flight: the first is `first`'s to act on (the calls go on), a second
 * ends every call still in flight at once, each as INTERRUPTED. `caught` is the first signal, if any.
 */
function onSignals(caller: RetryingCaller, first: (signal: Signal) => void) {
  let caught: Signal | undefined;
  let stamp: FirstSignal | undefined;
  const handler = (signal: Signal) => {
    if (stamp !== undefined) {
      // The first one's echo (GNU timeout signals the process and its group) is not a second signal.
      if (isEcho(stamp, signal)) return;
      const why = new FibrpcError("INTERRUPTED", `ended by a second ${signal} before its reply came`);
      void caller.close({ waitForBroker: false, callsEndWith: why });
      return;
    }
    caught = signal;
    stamp = firstSignal(signal);
    first(signal);
  };
  process.on("SIGINT", handler).on("SIGTERM", handler);
  return {
    get caught() {
      return caught;
    },
    remove: () => process.off("SIGINT", handler).off("SIGTERM", handler),
  };
}

/** The exit code of a run a signal cut short: the shell's 128 + its number, as if it had killed the process. */
const signalExit = (signal: Signal) => (signal === "SIGINT" ? ExitCode.SIGINT_AGAIN : ExitCode.SIGTERM_AGAIN);

/** What --no-wait did, said once at the end (stderr): how many requests the broker took, where their replies go. */
function sentLine(taken: number, sent: number, queue: string, replyTo: string): string {
  return (
    `${taken} of ${sent} requests taken by the broker (confirmed) on queue ${quote(queue)}; ` +
    `their replies go to queue ${quote(replyTo)}`
  );
}
