/**
 * Worker entry: one RpcServer per Bun Worker. Workers get no signals; the supervisor asks them
 * to drain with a message. Everything a worker knows comes in its start message (WorkerConfig):
 * its masking is built from the broker URLs it is sent.
 */
// First: amqplib must load with its field-table decoder guarded (rpc/amqplib-internals.ts).
import "../rpc/amqplib-internals.ts";
import { fibDecimal } from "../fib.ts";
import { withHint } from "../hints.ts";
import { createLogger } from "../log.ts";
import { Masker } from "../mask.ts";
import { RpcServer } from "../rpc/server.ts";
import { WorkerLedger } from "./crash-ledger.ts";
import type { FromWorker, ToWorker } from "./messages.ts";
import { reasonOf } from "./outage.ts";
import { StatsRecorder, ThreadProbe } from "./stats.ts";
import { testFaults } from "./test-build.ts";
import { startTracer } from "../tracing/start.ts";
import { FLUSH_WITHIN_MS, SERVE_EXPORT_TIMEOUT_MS, type Tracer } from "../tracing/tracer.ts";

declare const self: Worker;

/** Time kept, after the spans' export, for the drained message and the exit before the drain's deadline. */
const DRAIN_MARGIN_MS = 200;

function send(message: FromWorker): void {
  self.postMessage(message);
}

/** The worker's state lives in this closure, from its start message to its exit. */
function listen(): void {
  let server: RpcServer | undefined;
  let ledger: WorkerLedger | undefined;
  let tracer: Tracer | undefined;
  let stats = new StatsRecorder();
  const thread = new ThreadProbe();

  self.onmessage = async (event: MessageEvent<ToWorker>) => {
    const message = event.data;
    if (message.type === "start") {
      const { config } = message;
      const masker = new Masker(config.broker.urls);
      const log = createLogger({
        level: config.logLevel,
        format: config.logFormat,
        tag: `worker-${config.id}`,
        masker,
        noColor: config.noColor,
      });
      ledger = new WorkerLedger(config.ledger);
      stats = new StatsRecorder(config.answered);
      // Its own provider, from the settings it was sent (tracing off: none, nothing loaded). A
      // collector out of reach fails every worker's exports alike: the supervisor says it once.
      if (config.tracing) {
        const { settings, sdk } = config.tracing;
        const warn = (line: string) => send({ type: "notice", message: line });
        tracer = await startTracer(settings, { log, exportTimeoutMs: SERVE_EXPORT_TIMEOUT_MS, warn, sdk });
      }
      server = new RpcServer(
        {
          ...config,
          lead: config.id === 1,
          log,
          ledger,
          metrics: stats,
          tracer,
          ...(await testFaults(config.faults, fibDecimal)),
        },
        {
          onServing: (broker) => send({ type: "serving", broker }),
          onInterrupted: (broker, reason) => send({ type: "interrupted", broker, reason }),
          onFatal: (error) => send({ type: "fatal", message: withHint(error, "serve"), exitCode: error.exitCode }),
          // Each attempt's detail at debug, here; the supervisor says what the process goes
          // through, once for all workers (outage.ts).
          onRetrying: ({ error, attempt, delayMs }) => {
            const refused = error?.refusal === true;
            const failure = error && {
              broker: error.details.broker ?? "the broker",
              reason: reasonOf(error),
              kind: error.details.reason ?? error.code,
              line: withHint(error, "serve"),
              refused,
            };
            if (failure) log.debug(failure.line);
            send({ type: "retrying", attempt, delayMs, failure });
          },
          onNotice: (notice) => send({ type: "notice", message: notice }),
          // The supervisor says it once for the process (flow-control.ts).
          onBlocked: (reason) => send({ type: "blocked", reason }),
          onUnblocked: (lost) => send({ type: "unblocked", lost }),
        },
      );
      await server.start();
    } else if (message.type === "stats") {
      if (server) send({ type: "stats", id: message.id, stats: stats.snapshot(server.inFlight, thread.read()) });
    } else if (message.type === "crashed") {
      ledger?.record(message.key, message.count);
    } else if (message.type === "drain") {
      await server?.drain();
      // The spans of the requests answered, exported within a bounded wait that leaves the drain
      // its deadline (a collector that does not answer must not turn a clean drain into exit 75).
      await tracer?.shutdown(Math.max(0, Math.min(FLUSH_WITHIN_MS, message.by - Date.now() - DRAIN_MARGIN_MS)));
      send({ type: "drained", served: server?.requestsServed ?? 0 });
      process.exit(0);
    }
  };
}

listen();
