/**
 * Worker entry: one RpcServer per Bun Worker. Workers get no signals; the supervisor asks them
 * to drain with a message.
 */
import { createLogger } from "../log.ts";
import { parseFaults } from "../rpc/faults.ts";
import { RpcServer } from "../rpc/server.ts";
import { WorkerLedger } from "./crash-ledger.ts";
import type { FromWorker, ToWorker } from "./messages.ts";

declare const self: Worker;

function send(message: FromWorker): void {
  self.postMessage(message);
}

let server: RpcServer | undefined;
let ledger: WorkerLedger | undefined;

self.onmessage = async (event: MessageEvent<ToWorker>) => {
  const message = event.data;
  if (message.type === "start") {
    const { config } = message;
    const log = createLogger(config.logLevel, `worker-${config.id}`, config.logFormat);
    ledger = new WorkerLedger(config.ledger);
    server = new RpcServer(
      { ...config, log, ledger, faults: parseFaults(config.faults) },
      {
        onServing: () => send({ type: "serving" }),
        onInterrupted: (reason) => send({ type: "interrupted", reason }),
        onFatal: (error) => send({ type: "fatal", message: error.message, exitCode: error.exitCode }),
        onNotice: (notice) => send({ type: "notice", message: notice }),
      },
    );
    await server.start();
  } else if (message.type === "stats") {
    if (server) send({ type: "stats", id: message.id, stats: server.statsSnapshot() });
  } else if (message.type === "crashed") {
    ledger?.record(message.key, message.count);
  } else if (message.type === "drain") {
    await server?.drain();
    send({ type: "drained", served: server?.requestsServed ?? 0 });
    process.exit(0);
  }
};
