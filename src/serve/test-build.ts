/**
 * The test build's one seam: the only place below option resolution that reads process.env.
 * scripts/build.ts defines process.env.FIBRPC_TEST_BUILD as "1" for ./fibrpc-test and "0" for
 * the release build, so in a compiled binary each check below is a constant and the release
 * build drops what it guards: its binary holds no fault-injection code (serve/faults.ts) and
 * does not know the FIBRPC_TEST_* names, whatever its environment says. Running the source (unit
 * tests), the variable is read like any other and is unset.
 */
import type { ServerOptions } from "../rpc/server.ts";

export interface TestSettings {
  /** FIBRPC_TEST_FAULTS, e.g. "throw=13,crash=14" (serve/faults.ts), for every worker. */
  faults?: string;
  /** FIBRPC_TEST_OUTAGE_SUMMARY_MS: the outage summary's interval (30 s otherwise), for a test's sake. */
  outageSummaryMs?: number;
}

/** The test build's settings from `env` (read where options are resolved); none in the release build. */
export function testSettings(env: Readonly<Record<string, string | undefined>>): TestSettings {
  if (process.env.FIBRPC_TEST_BUILD === "1") {
    const ms = Number(env.FIBRPC_TEST_OUTAGE_SUMMARY_MS);
    const outageSummaryMs = Number.isFinite(ms) && ms > 0 ? ms : undefined;
    return { faults: env.FIBRPC_TEST_FAULTS || undefined, outageSummaryMs };
  }
  return {};
}

type Seams = Pick<ServerOptions, "compute" | "wrapOutlet" | "openFrameWriter" | "openIsolated">;

/** A worker's fault injection around the server's seams, for `faults` (see TestSettings); none in the release build. */
export async function testFaults(faults: string | undefined, compute: (n: number) => string): Promise<Seams> {
  if (process.env.FIBRPC_TEST_BUILD === "1" && faults) {
    const { parseFaults, withFaults } = await import("./faults.ts");
    return withFaults(parseFaults(faults)!, compute);
  }
  return {};
}
