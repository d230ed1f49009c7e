/**
 * Ports for private broker nodes, found free rather than guessed (scripts/test.sh uses this too,
 * before any broker of the suite exists; so it depends on nothing else of the tests).
 */

/** Whether `port` can be listened on at 127.0.0.1 right now. */
async function isFree(port: number): Promise<boolean> {
  try {
    const listener = Bun.listen({ hostname: "127.0.0.1", port, socket: { data() {} } });
    listener.stop(true);
    return true;
  } catch {
    return false;
  }
}

/**
 * A base port for `count` consecutive node ports (base+1 … base+count) that are free, with their
 * distribution ports (+20000): chosen, not guessed at random, so two files never collide.
 */
export async function freeNodePorts(count = 1): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const base = 5600 + Math.floor(Math.random() * 400);
    let free = true;
    for (let i = 1; i <= count && free; i++) free = (await isFree(base + i)) && (await isFree(base + i + 20_000));
    if (free) return base;
  }
  throw new Error(`no ${count} free node ports (and their +20000 distribution ports) between 5601 and 6000`);
}
