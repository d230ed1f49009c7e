/**
 * scripts/build.ts: the one compile command (build, build:test and release use it), and the
 * commit it compiles in for `fibrpc --version`.
 */
import { expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { buildArgs, commitOf } from "../../scripts/build.ts";

const ROOT = resolve(import.meta.dir, "../..");

test("build, build:test and release all go through scripts/build.ts (no second copy of the flags)", async () => {
  const pkg = (await Bun.file(join(ROOT, "package.json")).json()) as { scripts: Record<string, string> };
  expect(pkg.scripts.build).toBe("bun scripts/build.ts");
  expect(pkg.scripts["build:test"]).toBe("bun scripts/build.ts --test");
  expect(pkg.scripts.release).toBe("bun scripts/release.ts");
  expect(await Bun.file(join(ROOT, "scripts/release.ts")).text()).toContain("buildBinary(");
  for (const [name, script] of Object.entries(pkg.scripts))
    expect({ name, compiles: /--compile/.test(script) }).toEqual({ name, compiles: false });
});

test("the compile flags: the three entrypoints, minify, bytecode, esm, no autoload, the defines", () => {
  const args = buildArgs({ outfile: "out", target: "bun-linux-arm64", testBuild: true, commit: "0123456789ab-dirty" });
  expect(args).toEqual([
    "build",
    "--compile",
    "--target=bun-linux-arm64",
    "--minify",
    "--bytecode",
    "--format=esm",
    "src/cli.ts",
    "src/serve/worker.ts",
    "src/tracing/sdk.ts",
    "--outfile",
    "out",
    "--no-compile-autoload-dotenv",
    "--no-compile-autoload-bunfig",
    "--define",
    'process.env.FIBRPC_TEST_BUILD="1"',
    "--define",
    'process.env.FIBRPC_COMMIT="0123456789ab-dirty"',
  ]);
  expect(buildArgs({ outfile: "fibrpc", commit: "unknown" })).toContain('process.env.FIBRPC_TEST_BUILD="0"');
  expect(buildArgs({ outfile: "fibrpc", commit: "unknown" }).some((a) => a.startsWith("--target"))).toBe(false);
  expect(() => buildArgs({ outfile: "fibrpc", commit: 'x" ; rm -rf /' })).toThrow("not a plain name");
});

test("commitOf: 12 hex digits, -dirty with uncommitted changes (untracked files too), unknown without git", () => {
  const dir = mkdtempSync(join(tmpdir(), "fibrpc-commit-"));
  try {
    expect(commitOf(dir)).toBe("unknown");
    const git = (...args: string[]) => {
      const r = Bun.spawnSync(["git", "-C", dir, "-c", "user.name=t", "-c", "user.email=t@t", ...args], {
        stdout: "pipe",
        stderr: "pipe",
      });
      expect(r.exitCode, r.stderr.toString()).toBe(0);
      return r.stdout.toString().trim();
    };
    git("init", "-q");
    writeFileSync(join(dir, "a.txt"), "a\n");
    git("add", "a.txt");
    git("commit", "-qm", "a");
    const head = git("rev-parse", "HEAD");
    expect(commitOf(dir)).toBe(head.slice(0, 12));
    writeFileSync(join(dir, "b.txt"), "new\n");
    expect(commitOf(dir)).toBe(`${head.slice(0, 12)}-dirty`);
    rmSync(join(dir, "b.txt"));
    writeFileSync(join(dir, "a.txt"), "changed\n");
    expect(commitOf(dir)).toBe(`${head.slice(0, 12)}-dirty`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
