/**
 * Fault injection for the test suite, only in the test build (`bun run build:test`, which sets
 * FIBRPC_TEST_BUILD; the release build leaves this module out, see worker.ts) and only when
 * FIBRPC_TEST_FAULTS is set, e.g. "throw=13,crash=14":
 *   throw=N             computing fib(N) throws (an unexpected server exception);
 *   crash=N             computing fib(N) ends the worker on the spot, on every delivery;
 *   crash-first=N       the same, on the first delivery only (the redelivery succeeds);
 *   kill-after-reply=N  once the reply to fib(N) is published, nothing more is acked and the whole
 *                       process is SIGKILLed 100 ms later: requests answered in that window are
 *                       redelivered although answered;
 *   no-frame-writer=1   the frame writer cannot attach (as with an amqplib whose internals
 *                       changed): serve falls back to amqplib's own publish and ack.
 * It wraps the server's seams (the compute function and the outlet) from outside rpc/, so the
 * server's code is the same in both builds. Lets tests prove that workers keep serving, crashed
 * workers are restarted, poison requests stop, and callers get exactly one answer.
 */
import type { Outlet } from "../rpc/outlet.ts";
import type { ServerOptions } from "../rpc/server.ts";

export interface Faults {
  throwOn?: number;
  crashOn?: number;
  crashFirstOn?: number;
  killAfterReplyOn?: number;
  noFrameWriter?: boolean;
}

export function parseFaults(spec: string | undefined): Faults | undefined {
  if (!spec) return undefined;
  const faults: Faults = {};
  for (const part of spec.split(",")) {
    const [kind, value] = part.split("=");
    const n = Number(value);
    if (kind === "throw") faults.throwOn = n;
    else if (kind === "crash") faults.crashOn = n;
    else if (kind === "crash-first") faults.crashFirstOn = n;
    else if (kind === "kill-after-reply") faults.killAfterReplyOn = n;
    else if (kind === "no-frame-writer") faults.noFrameWriter = value === "1";
  }
  return faults;
}

/** The server options that inject `faults` around `compute`. */
export function withFaults(faults: Faults, compute: (n: number) => string): Pick<ServerOptions, "compute" | "wrapOutlet" | "openFrameWriter"> {
  let computing: number | undefined;
  return {
    ...(faults.noFrameWriter ? { openFrameWriter: () => undefined } : {}),
    compute: (n, { firstDelivery }) => {
      if (n === faults.throwOn) throw new Error(`injected exception for n=${n}`);
      // A crash mid-computation: the worker ends here, with no reply and no ack.
      if (n === faults.crashOn || (n === faults.crashFirstOn && firstDelivery)) process.exit(1);
      computing = n;
      return compute(n);
    },
    wrapOutlet: (outlet: Outlet): Outlet => {
      let dying = false;
      return {
        kind: outlet.kind,
        publish: (routingKey, body, properties, mandatory) => {
          outlet.publish(routingKey, body, properties, mandatory);
          if (computing !== undefined && computing === faults.killAfterReplyOn && !dying) {
            dying = true;
            // Late enough for the reply to reach the broker; nothing is acked in between.
            setTimeout(() => process.kill(process.pid, "SIGKILL"), 100);
          }
          computing = undefined;
        },
        ack: (msg) => {
          if (!dying) outlet.ack(msg);
        },
        flushed: () => outlet.flushed(),
      };
    },
  };
}
