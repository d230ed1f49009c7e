/**
 * What `fibrpc bench` does once its options are resolved (commands/bench.ts parses them and prints the
 * summary): connect, check that a server is there, and run the loop (run.ts) through a caller that
 * reconnects after a lost connection (reconnect.ts). `report` prints the result before the connection
 * closes: a close that waits on a broker that blocks the connection must not hold the summary back.
 * SIGINT or SIGTERM ends the run early with its result (the calls made so far are the measurement); a
 * second one ends the process at once.
 */
import { awaitServer } from "../rpc/await-server.ts";
import { RpcClient, type ClientLog, type ClientOptions } from "../rpc/client.ts";
import { ReconnectingCaller } from "./reconnect.ts";
import { runBench, type BenchOptions, type BenchResult } from "./run.ts";
import { type FirstSignal, firstSignal, isEcho } from "../signals.ts";

type Signal = "SIGINT" | "SIGTERM";

/**
 * `interrupted` ends the process (130, 143) on a signal that leaves no summary to print, saying why: one while
 * connecting or looking for a server (up to --timeout; no call made yet), or a second one during the run.
 */
export async function benchServer<T>(
  clientOptions: ClientOptions,
  loop: BenchOptions,
  report: (result: BenchResult) => Promise<T>,
  interrupted: (signal: Signal, why: string) => never,
): Promise<T> {
  const { timeoutMs, durationMs } = loop;
  const beforeStart = (signal: Signal) => interrupted(signal, `${signal} before the run started: no call was made`);
  process.on("SIGINT", beforeStart).on("SIGTERM", beforeStart);
  const started = () => process.off("SIGINT", beforeStart).off("SIGTERM", beforeStart);
  let client: RpcClient;
  try {
    client = await RpcClient.connect(clientOptions);
  } catch (err) {
    started();
    throw err;
  }
  let caller: ReconnectingCaller | undefined;
  try {
    try {
      await awaitServer(client, { deadline: Date.now() + timeoutMs, wait: false });
    } finally {
      started();
    }
    const runEnd = durationMs === undefined ? undefined : Date.now() + durationMs;
    const reconnect = (deadline: number) =>
      RpcClient.connect(clientOptions, Math.min(deadline, Date.now() + timeoutMs));
    caller = new ReconnectingCaller(client, reconnect, {
      // --duration: until the run's end, when the caller is closed; --requests: a run with no
      // broker for --timeout is cut short (no call could be answered in time any more).
      reconnectUntil: (lostAt) => (runEnd === undefined ? lostAt + timeoutMs : Number.POSITIVE_INFINITY),
      log: clientOptions.log,
    });
    const stop = stopOnSignals(clientOptions.log, interrupted);
    let result: BenchResult;
    try {
      result = await runBench(caller, { ...loop, stop: stop.signal });
    } finally {
      // The run is over: a signal from here on stops the process as it would any other.
      stop.dispose();
    }
    return await report(result);
  } finally {
    await (caller ?? client).close();
  }
}

/** A signal aborted (its reason "SIGINT" or "SIGTERM") at the first of them; the second exits (130, 143). */
function stopOnSignals(
  log: ClientLog,
  interrupted: (signal: Signal, why: string) => never,
): { signal: AbortSignal; dispose(): void } {
  const stop = new AbortController();
  let first: FirstSignal | undefined;
  const onSignal = (signal: Signal) => {
    // The first one's echo (GNU timeout signals the process and its group) is not a second signal.
    if (first !== undefined && isEcho(first, signal)) return;
    if (stop.signal.aborted) interrupted(signal, `a second ${signal} ended the run before its summary`);
    first = firstSignal(signal);
    log.info(`${signal}: no new calls; the summary once the calls in flight finish (${signal} again: exit now)`);
    stop.abort(signal);
  };
  process.on("SIGINT", onSignal).on("SIGTERM", onSignal);
  return { signal: stop.signal, dispose: () => process.off("SIGINT", onSignal).off("SIGTERM", onSignal) };
}
