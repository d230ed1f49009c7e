/**
 * Which request crashed a worker. The broker cannot tell a worker that died computing a request
 * from a connection that dropped or a server that drained: all redeliver alike. The worker can:
 * before computing, it notes the request's key where its supervisor can read it after the
 * worker is gone (serve/crash-ledger.ts keeps it in shared memory), and clears it once the reply
 * is out. A key left behind by a dead worker is the request that killed it; the supervisor counts
 * those crashes and tells every worker. Requests that were merely delivered alongside are not
 * counted, however often they come back.
 */
export interface CrashLedger {
  /** Crashes pinned on the request with this key so far. */
  crashes(key: bigint): number;
  /** This worker starts computing the request with this key. */
  begin(key: bigint): void;
  /** ...and is done with it. */
  end(): void;
}

/**
 * A request's identity across redeliveries: its reply address, correlation id and body (the
 * broker redelivers them unchanged; fibrpc's own copies keep them too). Never 0 (0 means "none").
 */
export function requestKey(replyTo: string, correlationId: string | undefined, body: Uint8Array): bigint {
  const key = BigInt.asIntN(64, BigInt(Bun.hash(body, Bun.hash(`${replyTo}\n${correlationId ?? ""}`))));
  return key === 0n ? 1n : key;
}
