/**
 * `bun run release` as a maintainer runs it: five files named with the version, a SHA256SUMS
 * that `sha256sum -c` accepts, each file the format and CPU its name says, and the linux-x64 one
 * answering a call on the local broker. The first run on a machine downloads bun's runtimes for
 * the other targets from the npm registry (~250 MB, cached in ~/.bun/install/cache after that).
 *
 * A clean clone (CI) releases as it is; a developer's tree with uncommitted changes needs
 * --allow-dirty (refusal.test.ts tests the refusal), and either way the files must name the
 * commit the tree is at ("<hash>" or "<hash>-dirty").
 *
 * dist/ is gitignored; if it was not there before this test, the test removes it again.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { commitOf } from "../../scripts/build.ts";
import { identifyFile } from "../../scripts/lib/binary-format.ts";
import { cleanupAfterFile, ROOT, tracked, uniqueQueue, URL } from "../helpers.ts";

cleanupAfterFile();

const DIST = join(ROOT, "dist");
const pkg = (await Bun.file(join(ROOT, "package.json")).json()) as { version: string };
const v = pkg.version;

/** The file names users download and the Dockerfile copies: fixed here on purpose, not read from release.ts. */
const EXPECTED = {
  [`fibrpc-${v}-linux-x64`]: { format: "elf", arch: "x64" },
  [`fibrpc-${v}-linux-arm64`]: { format: "elf", arch: "arm64" },
  [`fibrpc-${v}-darwin-x64`]: { format: "macho", arch: "x64" },
  [`fibrpc-${v}-darwin-arm64`]: { format: "macho", arch: "arm64" },
  [`fibrpc-${v}-windows-x64.exe`]: { format: "pe", arch: "x64" },
};

const hadDist = existsSync(DIST);
// commitOf is "<hash>-dirty" exactly when `git status --porcelain` prints something.
const commit = commitOf(ROOT);
const dirty = commit.endsWith("-dirty");
let result: { code: number; stdout: string; stderr: string; seconds: number };

beforeAll(async () => {
  const started = performance.now();
  // Without FIBRPC_COMMIT, so the commit is git's, as a maintainer's run sees it.
  const { FIBRPC_COMMIT: _, ...env } = process.env;
  const proc = tracked(
    Bun.spawn([process.execPath, "run", "release", ...(dirty ? ["--allow-dirty"] : [])], {
      cwd: ROOT,
      env: { ...env, FIBRPC_URL: URL, NO_COLOR: "1" },
      stdout: "pipe",
      stderr: "pipe",
      stdin: "ignore",
    }),
  );
  const [stdout, stderr, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  result = { code, stdout, stderr, seconds: (performance.now() - started) / 1000 };
  console.log(
    `bun run release${dirty ? " --allow-dirty" : ""} (commit ${commit}): exit ${code} in ${result.seconds.toFixed(1)} s`,
  );
}, 600_000);

afterAll(() => {
  if (!hadDist) rmSync(DIST, { recursive: true, force: true });
});

describe("bun run release", () => {
  test("succeeds and sums up what it made", () => {
    expect(result.code, result.stderr).toBe(0);
    for (const name of Object.keys(EXPECTED)) expect(result.stdout).toContain(name);
    expect(result.stdout).toContain(`, commit ${commit}, bun ${Bun.version}: 5 files in dist/`);
    if (dirty) expect(result.stderr).toContain(`release: warning: building commit ${commit} (--allow-dirty)`);
  });

  test("dist/ holds the five files, named with the version, and SHA256SUMS", () => {
    expect(readdirSync(DIST).sort()).toEqual([...Object.keys(EXPECTED), "SHA256SUMS"].sort());
  });

  test("SHA256SUMS lists exactly those files, and sha256sum -c accepts it", () => {
    const sums = readFileLines(join(DIST, "SHA256SUMS"));
    expect(sums.map((line) => line.replace(/^[0-9a-f]{64} {2}/, "")).sort()).toEqual(Object.keys(EXPECTED).sort());
    const check = Bun.spawnSync(["sha256sum", "-c", "SHA256SUMS"], { cwd: DIST, stdout: "pipe", stderr: "pipe" });
    expect(check.exitCode, check.stderr.toString()).toBe(0);
    expect(check.stdout.toString().trim().split("\n")).toEqual(sums.map((line) => `${line.slice(66)}: OK`));
  });

  for (const [name, kind] of Object.entries(EXPECTED)) {
    test(`${name} is ${kind.format} ${kind.arch} by its header`, async () => {
      expect(await identifyFile(join(DIST, name))).toEqual(kind as never);
    });
  }

  test.if(process.platform === "linux" && process.arch === "x64")(
    "the linux-x64 file prints its version line and answers a call, run from /",
    async () => {
      const bin = join(DIST, `fibrpc-${v}-linux-x64`);
      const version = Bun.spawnSync([bin, "--version"], { cwd: "/", stdout: "pipe" });
      expect(commit).toMatch(/^[0-9a-f]{12}(-dirty)?$/);
      expect(version.stdout.toString()).toBe(`fibrpc ${v} (commit ${commit}, bun ${Bun.version}, linux-x64)\n`);

      const queue = uniqueQueue("fibrpc_release");
      const serve = tracked(
        Bun.spawn([bin, "serve", "--workers", "1", "--queue", queue, "--url", URL], {
          cwd: "/",
          stdout: "ignore",
          stderr: "ignore",
          stdin: "ignore",
        }),
      );
      const call = tracked(
        Bun.spawn([bin, "call", "--wait-for-server", "--timeout", "30s", "--queue", queue, "--url", URL, "30"], {
          cwd: "/",
          stdout: "pipe",
          stderr: "pipe",
          stdin: "ignore",
        }),
      );
      const [stdout, stderr, code] = await Promise.all([
        new Response(call.stdout).text(),
        new Response(call.stderr).text(),
        call.exited,
      ]);
      expect({ code, stdout, stderr: code === 0 ? "" : stderr }).toEqual({ code: 0, stdout: "832040\n", stderr: "" });
      serve.kill("SIGTERM");
      expect(await serve.exited).toBe(0);
    },
    60_000,
  );
});

function readFileLines(path: string): string[] {
  return readFileSync(path, "utf8").trim().split("\n");
}
