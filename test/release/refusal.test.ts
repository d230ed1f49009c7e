/**
 * `bun run release` refuses to build from a tree with uncommitted changes or an unknown commit
 * (the files' --version would name a commit nobody can check out), in one line and before it
 * touches dist/. Cheap: FIBRPC_COMMIT stands for what scripts/build.ts commitOf finds (its
 * "-dirty" and "unknown" are tested in build.test.ts), so nothing is compiled.
 */
import { describe, expect, test } from "bun:test";
import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { parseArgs, refusal } from "../../scripts/release.ts";
import { cleanupAfterFile, ROOT, tracked } from "../helpers.ts";

cleanupAfterFile();

const DIST = join(ROOT, "dist");

/** dist/ as it is: absent, or its names and modification times. */
function distState(): string {
  if (!existsSync(DIST)) return "(absent)";
  return readdirSync(DIST)
    .sort()
    .map((name) => `${name} ${statSync(join(DIST, name)).mtimeMs}`)
    .join("\n");
}

/**
 * Runs scripts/release.ts ARGS (what `bun run release` runs, without bun's own "$ bun …" and
 * "error: script … exited" lines) with FIBRPC_COMMIT=commit; one that starts building is stopped after 30 s.
 */
async function release(
  commit: string,
  args: string[] = [],
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const proc = tracked(
    Bun.spawn([process.execPath, "scripts/release.ts", ...args], {
      cwd: ROOT,
      env: { ...process.env, FIBRPC_COMMIT: commit, NO_COLOR: "1" },
      stdout: "pipe",
      stderr: "pipe",
      stdin: "ignore",
    }),
  );
  const timer = setTimeout(() => proc.kill("SIGKILL"), 30_000);
  const [stdout, stderr, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]).finally(() => clearTimeout(timer));
  return { code: proc.signalCode ? null : code, stdout, stderr };
}

describe("bun run release refuses", () => {
  test("a tree with uncommitted changes: one line, exit 1, dist/ untouched", async () => {
    const before = distState();
    expect(await release("abc-dirty")).toEqual({
      code: 1,
      stdout: "",
      stderr:
        "release: the working tree has uncommitted changes (commit abc-dirty); commit them, or pass --allow-dirty for a local build\n",
    });
    expect(distState()).toBe(before);
  }, 40_000);

  test("an unknown commit: one line, exit 1, dist/ untouched", async () => {
    const before = distState();
    const { code, stdout, stderr } = await release("unknown");
    expect({ code, stdout, lines: stderr.trimEnd().split("\n").length }).toEqual({ code: 1, stdout: "", lines: 1 });
    expect(stderr).toStartWith("release: the commit is unknown");
    expect(stderr).toContain("--allow-dirty");
    expect(distState()).toBe(before);
  }, 40_000);

  test("an argument it does not know", async () => {
    const { code, stdout, stderr } = await release("0123456789ab", ["--allow-dirt"]);
    expect({ code, stdout, stderr }).toEqual({
      code: 1,
      stdout: "",
      stderr:
        'release: unknown argument "--allow-dirt"; the only option is --allow-dirty (build from uncommitted changes)\n',
    });
  }, 40_000);
});

test("refusal and --allow-dirty: a clean commit passes; -dirty and unknown are refused unless --allow-dirty is given", () => {
  expect(refusal("0123456789ab")).toBeUndefined();
  expect(refusal("0123456789ab-dirty")).toContain("uncommitted changes (commit 0123456789ab-dirty)");
  expect(refusal("unknown")).toContain("the commit is unknown");
  expect(parseArgs([])).toEqual({});
  expect(parseArgs(["--allow-dirty"])).toEqual({ allowDirty: true });
});
