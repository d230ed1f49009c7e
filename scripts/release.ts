/**
 * `bun run release`: fibrpc for every platform it ships on, into dist/, with a SHA256SUMS file
 * anyone can check (`sha256sum -c SHA256SUMS`), each file checked before it is listed:
 *
 *   dist/fibrpc-<version>-linux-x64          (baseline x64: runs on any x86-64 CPU, not only AVX2)
 *   dist/fibrpc-<version>-linux-arm64
 *   dist/fibrpc-<version>-darwin-x64
 *   dist/fibrpc-<version>-darwin-arm64
 *   dist/fibrpc-<version>-windows-x64.exe
 *   dist/SHA256SUMS
 *   dist/npm/fibrpc-<version>.tgz and dist/npm/fibrpc-<platform>-<version>.tgz  (scripts/npm.ts)
 *
 * Cross-compiling needs nothing but the npm registry: bun fetches each target's runtime as an
 * npm package (cached in ~/.bun/install/cache after the first run). The compile flags are
 * scripts/build.ts's, the same as `bun run build`. Then every artifact's header must say the
 * right format and CPU (scripts/lib/binary-format.ts), and the linux-x64 one must run here:
 * `--version` prints this version and commit, and `serve` on a fresh queue answers `call 30`
 * with 832040 (the broker: FIBRPC_URL, else amqp://guest:guest@127.0.0.1:5672).
 *
 * The files say which commit they were built from (`--version`), so a release is refused unless
 * that commit is known and clean: a tree with uncommitted changes ("<hash>-dirty") or no git
 * ("unknown") stops it before anything is built; `--allow-dirty` builds anyway (a local build).
 *
 * Any failure: one line on stderr ("release: ...") and exit 1. The summary (file, size, format)
 * goes to stdout.
 */
import { mkdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import { connect } from "amqplib";
import type { Subprocess } from "bun";
import { buildBinary, buildCommit, ROOT } from "./build.ts";
import { buildNpmPackages } from "./npm.ts";
import { describe, identifyFile, type Arch, type Format } from "./lib/binary-format.ts";
import pkg from "../package.json" with { type: "json" };

export interface ReleaseTarget {
  /** The platform in the file name. */
  name: string;
  /** bun build --target. */
  bunTarget: string;
  format: Format;
  arch: Arch;
}

export const TARGETS: readonly ReleaseTarget[] = [
  // Baseline: bun's default x64 build needs AVX2 and would die with SIGILL on older CPUs.
  { name: "linux-x64", bunTarget: "bun-linux-x64-baseline", format: "elf", arch: "x64" },
  { name: "linux-arm64", bunTarget: "bun-linux-arm64", format: "elf", arch: "arm64" },
  { name: "darwin-x64", bunTarget: "bun-darwin-x64", format: "macho", arch: "x64" },
  { name: "darwin-arm64", bunTarget: "bun-darwin-arm64", format: "macho", arch: "arm64" },
  { name: "windows-x64", bunTarget: "bun-windows-x64", format: "pe", arch: "x64" },
];

export const DIST = join(ROOT, "dist");

/** dist/ file name of a target: fibrpc-<version>-<platform>[.exe]. */
export function artifactName(version: string, target: ReleaseTarget): string {
  return `fibrpc-${version}-${target.name}${target.format === "pe" ? ".exe" : ""}`;
}

class ReleaseError extends Error {}

function fail(message: string): never {
  throw new ReleaseError(message);
}

export interface ReleaseOptions {
  /** Build from a tree with uncommitted changes or an unknown commit (a local build, not one to publish). */
  allowDirty?: boolean;
}

/** Why a release from `commit` (scripts/build.ts commitOf or FIBRPC_COMMIT) is refused without --allow-dirty, if it is. */
export function refusal(commit: string): string | undefined {
  if (commit.endsWith("-dirty"))
    return `the working tree has uncommitted changes (commit ${commit}); commit them, or pass --allow-dirty for a local build`;
  if (commit === "unknown")
    return "the commit is unknown (not a git checkout, or git missing); release from a git clone, or pass --allow-dirty for a local build";
  return undefined;
}

/** The command line: `--allow-dirty` or nothing. */
export function parseArgs(args: string[]): ReleaseOptions {
  const options: ReleaseOptions = {};
  for (const arg of args) {
    if (arg === "--allow-dirty") options.allowDirty = true;
    else
      throw new ReleaseError(
        `unknown argument "${arg}"; the only option is --allow-dirty (build from uncommitted changes)`,
      );
  }
  return options;
}

async function sha256(path: string): Promise<string> {
  const hasher = new Bun.CryptoHasher("sha256");
  for await (const chunk of Bun.file(path).stream()) hasher.update(chunk);
  return hasher.digest("hex");
}

/** Rejects after `ms` with `what`; the timer does not keep the process alive. */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: Timer | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new ReleaseError(what)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** The environment for the smoke run: none of the developer's FIBRPC_* settings (a config file, a queue). */
function cleanEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("FIBRPC_") && v !== undefined) env[k] = v;
  return { ...env, NO_COLOR: "1" };
}

/** Runs the linux-x64 artifact: --version, then serve on a fresh queue and call 30. */
async function smokeTest(bin: string, expectedVersionLine: string): Promise<void> {
  const env = cleanEnv();
  const version = Bun.spawnSync([bin, "--version"], { cwd: "/", env, stdout: "pipe", stderr: "pipe" });
  const line = version.stdout.toString().trim();
  if (version.exitCode !== 0 || line !== expectedVersionLine) {
    throw new ReleaseError(
      `${basename(bin)} --version printed "${line}" (exit ${version.exitCode}), expected "${expectedVersionLine}"`,
    );
  }

  const url = process.env.FIBRPC_URL || "amqp://guest:guest@127.0.0.1:5672";
  const queue = `fibrpc_release_${crypto.randomUUID().slice(0, 8)}`;
  const serve = Bun.spawn([bin, "serve", "--workers", "1", "--queue", queue, "--url", url, "--log-level", "warn"], {
    cwd: "/",
    env,
    stdout: "ignore",
    stderr: "pipe",
    stdin: "ignore",
  });
  const serveLog = new Response(serve.stderr).text();
  let call: Subprocess<"ignore", "pipe", "pipe"> | undefined;
  try {
    call = Bun.spawn([bin, "call", "--wait-for-server", "--timeout", "30s", "--queue", queue, "--url", url, "30"], {
      cwd: "/",
      env,
      stdout: "pipe",
      stderr: "pipe",
      stdin: "ignore",
    });
    // serve failing to start (no broker) ends the wait at once instead of after call's timeout.
    const served = serve.exited.then((code) => ({ serveExited: code }));
    const called = Promise.all([new Response(call.stdout).text(), new Response(call.stderr).text(), call.exited]);
    const first = await within(
      Promise.race([called, served]),
      60_000,
      `${basename(bin)} call 30 did not finish within 60 s`,
    );
    if ("serveExited" in first) {
      const log = (await serveLog).trim().split("\n").pop() ?? "";
      throw new ReleaseError(
        `${basename(bin)} serve exited (${first.serveExited}) before answering: ${log} (is RabbitMQ up? bash scripts/ensure-broker.sh)`,
      );
    }
    const [stdout, stderr, code] = first;
    if (code !== 0 || stdout.trim() !== "832040") {
      throw new ReleaseError(
        `${basename(bin)} call 30 printed "${stdout.trim()}" (exit ${code}), expected 832040: ${stderr.trim().split("\n").pop() ?? ""}`,
      );
    }
    serve.kill("SIGTERM");
    const exit = await within(serve.exited, 20_000, `${basename(bin)} serve did not stop within 20 s of SIGTERM`);
    if (exit !== 0) throw new ReleaseError(`${basename(bin)} serve exited ${exit} on SIGTERM, expected 0`);
  } finally {
    if (call?.exitCode === null) call.kill("SIGKILL");
    if (serve.exitCode === null) serve.kill("SIGKILL");
    await deleteQueue(url, queue);
  }
}

async function deleteQueue(url: string, queue: string): Promise<void> {
  try {
    const conn = await connect(url.split(/,(?=amqps?:\/\/)/)[0]!);
    try {
      const ch = await conn.createChannel();
      await ch.deleteQueue(queue);
    } finally {
      await conn.close().catch(() => {});
    }
  } catch (err) {
    process.stderr.write(`release: warning: could not delete the test queue ${queue}: ${(err as Error).message}\n`);
  }
}

export async function release(options: ReleaseOptions = {}): Promise<void> {
  const started = performance.now();
  const version = pkg.version;
  const commit = buildCommit();
  const refused = refusal(commit);
  if (refused && !options.allowDirty) throw new ReleaseError(refused);
  if (refused)
    process.stderr.write(
      `release: warning: building commit ${commit} (--allow-dirty): a local build, not one to publish\n`,
    );
  rmSync(DIST, { recursive: true, force: true });
  mkdirSync(DIST, { recursive: true });

  const rows: string[] = [];
  const sums: string[] = [];
  for (const target of TARGETS) {
    const name = artifactName(version, target);
    const path = join(DIST, name);
    const t0 = performance.now();
    process.stderr.write(`release: building ${name} (${target.bunTarget})\n`);
    try {
      await buildBinary({ outfile: path, target: target.bunTarget, commit });
    } catch (err) {
      throw new ReleaseError((err as Error).message);
    }
    const found = await identifyFile(path);
    if ("error" in found)
      throw new ReleaseError(`${name}: ${found.error}, expected ${describe(target.format, target.arch)}`);
    if (found.format !== target.format || found.arch !== target.arch) {
      throw new ReleaseError(
        `${name} is ${describe(found.format, found.arch)}, expected ${describe(target.format, target.arch)}`,
      );
    }
    sums.push(`${await sha256(path)}  ${name}`);
    const mib = statSync(path).size / 2 ** 20;
    rows.push(
      `${name.padEnd(34)} ${mib.toFixed(1).padStart(6)} MiB  ${describe(found.format, found.arch).padEnd(16)} ${((performance.now() - t0) / 1000).toFixed(1)} s`,
    );
  }
  writeFileSync(join(DIST, "SHA256SUMS"), `${sums.join("\n")}\n`);

  process.stderr.write("release: packing the npm packages into dist/npm/\n");
  const byRelease = new Map(TARGETS.map((target) => [target.name, join(DIST, artifactName(version, target))]));
  const tarballs = await buildNpmPackages({
    version,
    binaryOf: (name) => byRelease.get(name) ?? fail(`no release target for the npm platform ${name}`),
    outDir: join(DIST, "npm"),
  }).catch((err: Error) => fail(err.message));
  for (const tarball of tarballs)
    rows.push(`npm/${basename(tarball).padEnd(30)} ${(statSync(tarball).size / 2 ** 20).toFixed(1).padStart(6)} MiB`);

  const linux = join(DIST, artifactName(version, TARGETS[0]!));
  if (process.platform === "linux" && process.arch === "x64") {
    process.stderr.write(`release: running ${basename(linux)}: --version, serve and call 30\n`);
    await smokeTest(linux, `fibrpc ${version} (commit ${commit}, bun ${Bun.version}, linux-x64)`);
  } else {
    process.stderr.write(`release: warning: not on linux-x64, so ${basename(linux)} was not run\n`);
  }

  process.stdout.write(
    `${rows.join("\n")}\nSHA256SUMS (check: cd dist && sha256sum -c SHA256SUMS)\nfibrpc ${version}, commit ${commit}, bun ${Bun.version}: ${TARGETS.length} files and ${tarballs.length} npm packages in dist/ in ${((performance.now() - started) / 1000).toFixed(1)} s\n`,
  );
}

if (import.meta.main) {
  try {
    await release(parseArgs(process.argv.slice(2)));
  } catch (err) {
    process.stderr.write(`release: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  }
}
