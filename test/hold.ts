/**
 * The test side of the test build's hold fault (src/serve/faults.ts, `hold=N`): a computation of
 * fib(N) holds its worker's thread until the test releases it. A test can then act while a
 * computation is surely under way (cut a connection, send more requests, hold a worker's event
 * loop for a time it measures itself) instead of hoping a computation takes long enough on this
 * machine.
 */
import { readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { tempFolder } from "./helpers.ts";

export interface Held {
  /** "<pid>-<thread>-<k>": the k-th hold of that worker thread. */
  name: string;
  /** The serve process whose worker is held. */
  pid: number;
}

export class Hold {
  readonly dir = tempFolder("fibrpc-hold-");
  private readonly reported = new Set<string>();

  /** `n`: the n whose computations are held. */
  constructor(readonly n: number) {}

  /** FIBRPC_TEST_FAULTS for serve (with other faults, if given). */
  faults(other?: string): string {
    return [other, `hold=${this.n}`, `hold-dir=${this.dir}`].filter(Boolean).join(",");
  }

  /** Holds under way or over whose files are there, by name (in no particular order). */
  private heldNow(): string[] {
    return readdirSync(this.dir)
      .filter((f) => f.startsWith("held-"))
      .map((f) => f.slice("held-".length));
  }

  /** Waits (up to `ms`) for a hold not reported before, and reports it. */
  async next(ms = 15_000): Promise<Held> {
    const deadline = Date.now() + ms;
    for (;;) {
      const name = this.heldNow().find((h) => !this.reported.has(h));
      if (name) {
        this.reported.add(name);
        return { name, pid: Number(name.split("-")[0]) };
      }
      if (Date.now() > deadline)
        throw new Error(
          `no computation of fib(${this.n}) was held within ${ms} ms (holds so far: ${[...this.reported].join(", ") || "none"})`,
        );
      await Bun.sleep(5);
    }
  }

  /** Lets one hold go on. */
  release(held: Held): void {
    writeFileSync(join(this.dir, `release-${held.name}`), "");
  }

  /** Lets every hold go on, now and from now on. */
  releaseAll(): void {
    writeFileSync(join(this.dir, "release-all"), "");
  }
}
