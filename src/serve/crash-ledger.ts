/**
 * The crash ledger of one serve process (see rpc/crash-ledger.ts for why). Shared memory holds one
 * slot per worker: the key of the request that worker is computing, 0 when none. It outlives a
 * worker that dies, so the supervisor reads there which request killed it, counts that crash, and
 * tells every worker; new workers start with the counts so far.
 */
import type { CrashLedger } from "../rpc/crash-ledger.ts";

/** Requests remembered at most (oldest forgotten first): crashes are rare, keys are 8 bytes. */
const MAX_REMEMBERED = 10_000;

export interface LedgerConfig {
  memory: SharedArrayBuffer;
  slot: number;
  /** Crash counts so far, by key (as decimal strings: they cross postMessage). */
  crashes: [string, number][];
}

/** The worker's side: notes what it computes, and knows the counts the supervisor sends. */
export class WorkerLedger implements CrashLedger {
  private readonly slots: BigInt64Array;
  private readonly counts: Map<bigint, number>;

  constructor(private readonly config: LedgerConfig) {
    this.slots = new BigInt64Array(config.memory);
    this.counts = new Map(config.crashes.map(([key, count]) => [BigInt(key), count]));
  }

  crashes(key: bigint): number {
    return this.counts.get(key) ?? 0;
  }

  begin(key: bigint): void {
    Atomics.store(this.slots, this.config.slot, key);
  }

  end(): void {
    Atomics.store(this.slots, this.config.slot, 0n);
  }

  /** A crash the supervisor counted (in this worker or another). */
  record(key: string, count: number): void {
    this.counts.set(BigInt(key), count);
  }
}

/** The supervisor's side: the shared slots and the counts. */
export class CrashBook {
  readonly memory: SharedArrayBuffer;
  private readonly slots: BigInt64Array;
  private readonly counts = new Map<string, number>();

  constructor(workers: number) {
    this.memory = new SharedArrayBuffer(workers * BigInt64Array.BYTES_PER_ELEMENT);
    this.slots = new BigInt64Array(this.memory);
  }

  configFor(slot: number): LedgerConfig {
    return { memory: this.memory, slot, crashes: [...this.counts] };
  }

  /**
   * The worker in `slot` is gone: if it was computing a request, that request crashed it. Returns
   * the request's key and its crash count so far, and clears the slot for the next worker.
   */
  pinCrash(slot: number): { key: string; count: number } | undefined {
    const key = Atomics.exchange(this.slots, slot, 0n);
    if (key === 0n) return undefined;
    const id = key.toString();
    const count = (this.counts.get(id) ?? 0) + 1;
    this.counts.delete(id);
    this.counts.set(id, count);
    if (this.counts.size > MAX_REMEMBERED) this.counts.delete(this.counts.keys().next().value!);
    return { key: id, count };
  }

  /** A worker that stopped cleanly computes nothing: clear its slot. */
  clear(slot: number): void {
    Atomics.store(this.slots, slot, 0n);
  }
}
