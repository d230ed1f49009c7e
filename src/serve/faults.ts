/**
 * Fault injection for the test suite, only in the test build (`bun run build:test`, which sets
 * FIBRPC_TEST_BUILD; the release build leaves this module out, see test-build.ts) and only when
 * FIBRPC_TEST_FAULTS is set, e.g. "throw=13,crash=14":
 *   throw=N             computing fib(N) throws (an unexpected server exception);
 *   crash=N             computing fib(N) ends the worker on the spot, on every delivery;
 *   crash-first=N       the same, on the first delivery only (the redelivery succeeds);
 *   kill-after-reply=N  once the reply to fib(N) is published, nothing more is acked and the whole
 *                       process is SIGKILLed 100 ms later: requests answered in that window are
 *                       redelivered although answered;
 *   no-frame-writer=1   the frame writer cannot attach (as with an amqplib whose internals
 *                       changed): serve falls back to amqplib's own publish and ack;
 *   no-isolated-connection=1  the connection for replies apart cannot be opened (as under a
 *                       connection limit): those replies go on the serving channel, acked first;
 *   hold=N              computing fib(N) first holds the worker's thread (blocked, as by a long
 *                       computation) until the test lets it go, so that a test can act while a
 *                       computation is surely under way, however fast the machine. Each hold
 *                       creates the file held-<pid>-<thread>-<k> in the folder given by
 *                       hold-dir=PATH (k counts the holds of that thread from 1) and ends once
 *                       release-<pid>-<thread>-<k> or release-all exists there (test/hold.ts).
 * It wraps the server's seams (the compute function, the outlet and the frame writer's opening)
 * from outside rpc/, so the
 * server's code is the same in both builds. Lets tests prove that workers keep serving, crashed
 * workers are restarted, poison requests stop, and callers get exactly one answer.
 */
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { threadId } from "node:worker_threads";
import type { Outlet } from "../rpc/outlet.ts";
import type { ServerOptions } from "../rpc/server.ts";

export interface Faults {
  throwOn?: number;
  crashOn?: number;
  crashFirstOn?: number;
  killAfterReplyOn?: number;
  noFrameWriter?: boolean;
  noIsolatedConnection?: boolean;
  holdOn?: number;
  holdDir?: string;
}

export function parseFaults(spec: string | undefined): Faults | undefined {
  if (!spec) return undefined;
  const faults: Faults = {};
  for (const part of spec.split(",")) {
    // The value is everything after the first "=" (a folder's path may hold one).
    const at = part.indexOf("=");
    const kind = at < 0 ? part : part.slice(0, at);
    const value = at < 0 ? "" : part.slice(at + 1);
    const n = Number(value);
    if (kind === "throw") faults.throwOn = n;
    else if (kind === "crash") faults.crashOn = n;
    else if (kind === "crash-first") faults.crashFirstOn = n;
    else if (kind === "kill-after-reply") faults.killAfterReplyOn = n;
    else if (kind === "no-frame-writer") faults.noFrameWriter = value === "1";
    else if (kind === "no-isolated-connection") faults.noIsolatedConnection = value === "1";
    else if (kind === "hold") faults.holdOn = n;
    else if (kind === "hold-dir") faults.holdDir = value;
    else throw new Error(`FIBRPC_TEST_FAULTS: unknown fault ${JSON.stringify(kind)}`);
  }
  if (faults.holdOn !== undefined && !faults.holdDir) throw new Error("FIBRPC_TEST_FAULTS: hold=N needs hold-dir=PATH");
  return faults;
}

/** The server options that inject `faults` around `compute`. */
export function withFaults(
  faults: Faults,
  compute: (n: number) => string,
): Pick<ServerOptions, "compute" | "wrapOutlet" | "openFrameWriter" | "openIsolated"> {
  /** fib(killAfterReplyOn) was computed, and its reply not yet published (it may be held to the turn's end). */
  let replyToKillAfter = false;
  let holds = 0;
  return {
    ...(faults.noFrameWriter ? { openFrameWriter: () => undefined } : {}),
    ...(faults.noIsolatedConnection
      ? { openIsolated: () => Promise.reject(new Error("injected: no connection for replies apart")) }
      : {}),
    compute: (n, { firstDelivery }) => {
      if (n === faults.throwOn) throw new Error(`injected exception for n=${n}`);
      // A crash mid-computation: the worker ends here, with no reply and no ack.
      if (n === faults.crashOn || (n === faults.crashFirstOn && firstDelivery)) process.exit(1);
      if (n === faults.holdOn) hold(faults.holdDir!, ++holds);
      if (n === faults.killAfterReplyOn) replyToKillAfter = true;
      return compute(n);
    },
    wrapOutlet: (outlet: Outlet): Outlet => {
      let dying = false;
      return {
        kind: outlet.kind,
        publish: (routingKey, body, properties, mandatory) => {
          outlet.publish(routingKey, body, properties, mandatory);
          // Its reply, alone or in a batched reply sent at the end of the same turn (reply-batches.ts).
          if (replyToKillAfter && !dying) {
            dying = true;
            // Late enough for the reply to reach the broker; nothing is acked in between.
            setTimeout(() => process.kill(process.pid, "SIGKILL"), 100);
          }
          replyToKillAfter = false;
        },
        ack: (msg) => {
          if (!dying) outlet.ack(msg);
        },
        ackFirst: (msg) => {
          if (!dying) outlet.ackFirst(msg);
        },
        flushed: () => outlet.flushed(),
      };
    },
  };
}

/** A pause on the spot: nothing else runs on this thread meanwhile (its event loop included). */
const pause = (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

/** Holds this thread until the test releases hold `k` (or all holds); see hold= above. */
function hold(dir: string, k: number): void {
  const name = `${process.pid}-${threadId}-${k}`;
  writeFileSync(join(dir, `held-${name}`), "");
  while (!existsSync(join(dir, `release-${name}`)) && !existsSync(join(dir, "release-all"))) pause(2);
}
