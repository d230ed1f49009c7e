/**
 * Long-running processes of the benchmark scripts (serve, responders): started from `/`, ready
 * when their stderr says so, and killed when the script exits, however it exits (a benchmark
 * that throws half-way must not leave a serve running).
 */
import type { Subprocess } from "bun";

const children = new Set<Subprocess>();
process.on("exit", () => {
  for (const child of children) child.kill("SIGKILL");
});

/** Starts a long-running process and waits (up to 20 s) until its stderr says `ready`. */
export async function startProcess(
  cmd: string[],
  ready: RegExp,
  env?: Record<string, string | undefined>,
): Promise<Subprocess<"ignore", "ignore", "pipe">> {
  const proc = Bun.spawn(cmd, { cwd: "/", env: env ?? process.env, stdin: "ignore", stdout: "ignore", stderr: "pipe" });
  children.add(proc);
  let text = "";
  const decoder = new TextDecoder();
  const reader = proc.stderr.getReader();
  const deadline = Date.now() + 20_000;
  while (!ready.test(text)) {
    const chunk = await Promise.race([reader.read(), Bun.sleep(Math.max(0, deadline - Date.now())).then(() => null)]);
    if (!chunk || chunk.done) {
      // Stopped here, not left to the exit handler: its caller's cleanup (deleting its queue) comes first,
      // and a serve still running would declare the queue again.
      proc.kill("SIGKILL");
      await proc.exited;
      children.delete(proc);
      throw new Error(`${cmd.join(" ")} did not get ready:\n${text}`);
    }
    text += decoder.decode(chunk.value, { stream: true });
  }
  // Keep draining stderr so the process never blocks on a full pipe.
  (async () => {
    for (;;) if ((await reader.read()).done) break;
  })();
  return proc;
}

/** SIGTERM, and wait for it to exit. */
export async function stop(proc: Subprocess): Promise<void> {
  proc.kill("SIGTERM");
  await proc.exited;
  children.delete(proc);
}
