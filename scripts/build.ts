/**
 * The one place the compile command lives: `bun run build` (./fibrpc), `bun run build:test`
 * (./fibrpc-test, fault injection compiled in) and `bun run release` (every platform, into dist/)
 * all call buildBinary(), so their flags cannot drift apart.
 *
 *   bun scripts/build.ts           ./fibrpc
 *   bun scripts/build.ts --test    ./fibrpc-test
 *
 * The commit compiled in (`fibrpc --version`) is FIBRPC_COMMIT from the environment if set (a
 * container build has no .git, so it is passed in), else `git rev-parse --short=12 HEAD` plus
 * "-dirty" when the tree has uncommitted changes, else "unknown".
 */
import { resolve } from "node:path";

export const ROOT = resolve(import.meta.dir, "..");

export interface BuildOptions {
  /** Output file, relative to the repository root or absolute. */
  outfile: string;
  /** A cross-compile target such as "bun-linux-arm64"; omitted: this machine's platform. */
  target?: string;
  /** Compile in fault injection (src/serve/faults.ts), for the tests that inject faults. */
  testBuild?: boolean;
  /** The commit to compile in; default: commitOf(ROOT). */
  commit?: string;
}

/** The commit the working tree is at: 12 hex digits, "-dirty" with uncommitted changes, or "unknown". */
export function commitOf(dir: string = ROOT): string {
  const git = (...args: string[]) => {
    try {
      const out = Bun.spawnSync(["git", "-C", dir, ...args], { stdout: "pipe", stderr: "ignore", stdin: "ignore" });
      return out.exitCode === 0 ? out.stdout.toString().trim() : undefined;
    } catch {
      return undefined; // no git installed
    }
  };
  const hash = git("rev-parse", "--short=12", "HEAD");
  if (!hash || !/^[0-9a-f]{12,40}$/.test(hash)) return "unknown";
  // Untracked files count too (a new file under src/ is in the build); ignored ones (./fibrpc,
  // dist/, node_modules) do not.
  const status = git("status", "--porcelain");
  if (status === undefined) return "unknown";
  return status === "" ? hash : `${hash}-dirty`;
}

/** The commit for a build: FIBRPC_COMMIT from the environment (a container build), else git. */
export function buildCommit(): string {
  const given = process.env.FIBRPC_COMMIT?.trim();
  return given ? given : commitOf(ROOT);
}

/** The `bun build` arguments (after the bun executable) for these options. */
export function buildArgs(options: BuildOptions): string[] {
  const commit = options.commit ?? buildCommit();
  if (!/^[\w.+-]+$/.test(commit))
    throw new Error(`the commit "${commit}" is not a plain name (letters, digits, . + - _)`);
  return [
    "build",
    "--compile",
    ...(options.target ? [`--target=${options.target}`] : []),
    "--minify",
    // Bytecode (faster start) for every release target too. Checked with bun 1.4.5: all five
    // targets compile with it; the linux-x64 (baseline) file runs here and the linux-arm64 one
    // ran under qemu-user (--version, serve, call 30). The darwin and windows files could not be
    // run on this Linux machine; older bun releases had cross-compiled bytecode crash at start
    // (oven-sh/bun#18416, #14992, both closed), so try a new bun's macOS/Windows files there.
    "--bytecode",
    "--format=esm",
    // Three entrypoints: the worker must be in the binary as its own module (new Worker(url)), and
    // so is tracing's SDK (imported by its URL only when tracing is on: src/paths.ts SDK_URL).
    "src/cli.ts",
    "src/serve/worker.ts",
    "src/tracing/sdk.ts",
    "--outfile",
    options.outfile,
    // A compiled binary must not read a .env or bunfig.toml from whatever folder it runs in.
    "--no-compile-autoload-dotenv",
    "--no-compile-autoload-bunfig",
    "--define",
    `process.env.FIBRPC_TEST_BUILD=${JSON.stringify(options.testBuild ? "1" : "0")}`,
    "--define",
    `process.env.FIBRPC_COMMIT=${JSON.stringify(commit)}`,
  ];
}

/**
 * Compiles fibrpc. Throws one line (bun's last error line) when bun build fails; bun's full
 * output goes to this process's stderr either way.
 */
export async function buildBinary(options: BuildOptions): Promise<void> {
  // process.execPath: the bun running this script (node_modules/.bin/bun under `bun run`).
  // bun's summary goes to stdout as before (scripts/test.sh discards it); its errors are kept
  // to name the failure in one line, and passed on in full.
  const proc = Bun.spawn([process.execPath, ...buildArgs(options)], {
    cwd: ROOT,
    stdout: "inherit",
    stderr: "pipe",
    stdin: "ignore",
  });
  const [stderr, code] = await Promise.all([new Response(proc.stderr).text(), proc.exited]);
  process.stderr.write(stderr);
  if (code !== 0) {
    const last =
      stderr
        .trim()
        .split("\n")
        .filter((l) => /error/i.test(l))
        .pop() ?? `exit code ${code}`;
    throw new Error(`bun build for ${options.target ?? "this platform"} failed: ${last.trim()}`);
  }
}

if (import.meta.main) {
  const testBuild = process.argv.includes("--test");
  const outfile = testBuild ? "fibrpc-test" : "fibrpc";
  try {
    await buildBinary({ outfile, testBuild });
  } catch (err) {
    process.stderr.write(`build: ${(err as Error).message}\n`);
    process.exit(1);
  }
}
