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
import { existsSync, readdirSync, readFileSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { commitOf } from "../../scripts/build.ts";
import { identifyFile } from "../../scripts/lib/binary-format.ts";
import {
  cleanupAfterFile,
  rawChannel,
  ROOT,
  type Server,
  startServe,
  tempFolder,
  tracked,
  uniqueQueue,
  URL,
} from "../helpers.ts";
import { type NpmRegistry, startNpmRegistry } from "../npm-registry.ts";

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

/** The npm packages' tarballs (scripts/npm.ts): the root package and one per platform. */
const NPM_PLATFORMS = ["linux-x64", "linux-arm64", "darwin-x64", "darwin-arm64", "win32-x64"];
const NPM_TARBALLS = [`fibrpc-${v}.tgz`, ...NPM_PLATFORMS.map((platform) => `fibrpc-${platform}-${v}.tgz`)];

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
    expect(result.stdout).toContain(`, commit ${commit}, bun ${Bun.version}: 5 files and 6 npm packages in dist/`);
    if (dirty) expect(result.stderr).toContain(`release: warning: building commit ${commit} (--allow-dirty)`);
  });

  test("dist/ holds the five files, named with the version, SHA256SUMS and the npm packages", () => {
    expect(readdirSync(DIST).sort()).toEqual([...Object.keys(EXPECTED), "SHA256SUMS", "npm"].sort());
    expect(readdirSync(join(DIST, "npm")).sort()).toEqual([...NPM_TARBALLS].sort());
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

/**
 * The npm packages as users get them: published to a private registry on loopback (Verdaccio,
 * test/npm-registry.ts) and installed from it with npm, npx and bun, each with a config, cache and
 * prefix of the test's own. Calls go to a `fibrpc serve` of this checkout on a queue of the test's.
 */
/** No npm, npx, bun or fibrpc run of these tests takes this long; one that hangs is killed. */
const SPAWN_TIMEOUT_MS = 90_000;

describe("the npm packages, through a private registry", () => {
  let registry: NpmRegistry;
  let queue: string;
  let serve: Server;
  /** The registry's environment, over the test's own without FIBRPC_* and OTEL_* settings. */
  let env: Record<string, string>;
  /** `fibrpc` as `npm install -g` and as `npm install --ignore-scripts` left it (the tests below set them). */
  let installedBin: string | undefined;
  let launcherBin: string | undefined;

  beforeAll(async () => {
    expect(result.code, result.stderr).toBe(0);
    registry = await startNpmRegistry();
    env = { ...withoutSettings(process.env), ...registry.env };
    // The platform packages first: the root package's optionalDependencies name them.
    for (const tarball of [...NPM_TARBALLS.slice(1), NPM_TARBALLS[0]!]) {
      const published = npm(["publish", join(DIST, "npm", tarball)], tempFolder("fibrpc-publish-"));
      expect(published.code, published.stderr).toBe(0);
    }
    queue = uniqueQueue("fibrpc_npm");
    serve = await startServe(["--workers", "1", "--queue", queue, "--url", URL]);
  }, 300_000);

  afterAll(async () => {
    await serve?.stop();
    await registry?.stop();
  });

  /** A command run to its end in the registry's environment (plus `more`), bounded. */
  function spawn(cmd: string[], cwd: string, more: Record<string, string> = {}) {
    const proc = Bun.spawnSync(cmd, {
      cwd,
      env: { ...env, ...more },
      stdout: "pipe",
      stderr: "pipe",
      timeout: SPAWN_TIMEOUT_MS,
    });
    return { code: proc.exitCode, stdout: proc.stdout.toString(), stderr: proc.stderr.toString() };
  }

  const npm = (args: string[], cwd: string) => spawn(["npm", ...args], cwd);

  /** `call 30` to the test's serve, through `command` (an installed fibrpc, npx fibrpc, …). */
  const fibrpc = (command: string[], cwd = "/", more: Record<string, string> = {}) =>
    spawn([...command, "call", "--queue", queue, "--url", URL, "--timeout", "30s", "30"], cwd, more);

  const answered = { code: 0, stdout: "832040\n", stderr: "" };

  test.if(process.platform === "linux" && process.arch === "x64")(
    "npm install -g fibrpc: `fibrpc --version` and `fibrpc call 30`, the binary itself in place of the launcher",
    () => {
      const installed = npm(["install", "-g", "fibrpc"], tempFolder("fibrpc-npm-g-"));
      expect(installed.code, installed.stderr).toBe(0);
      const bin = join(registry.prefix, "bin", "fibrpc");
      const version = spawn([bin, "--version"], "/");
      expect(version.stdout).toBe(`fibrpc ${v} (commit ${commit}, bun ${Bun.version}, linux-x64)\n`);
      expect(fibrpc(["fibrpc"])).toEqual(answered);
      // The install script put the release binary there (no Node.js in between at start-up).
      expect(Bun.hash(readFileSync(realpathSync(bin)))).toBe(
        Bun.hash(readFileSync(join(DIST, `fibrpc-${v}-linux-x64`))),
      );
      installedBin = bin;
    },
    120_000,
  );

  test.if(process.platform === "linux" && process.arch === "x64")(
    "without install scripts the Node.js launcher runs the binary; without the platform package it says what to install",
    () => {
      const project = tempFolder("fibrpc-npm-launcher-");
      writeFileSync(join(project, "package.json"), "{}\n");
      const installed = npm(["install", "--ignore-scripts", "fibrpc"], project);
      expect(installed.code, installed.stderr).toBe(0);
      const launcher = join(project, "node_modules/.bin/fibrpc");
      expect(readFileSync(realpathSync(launcher), "utf8")).toStartWith("#!/usr/bin/env node");
      expect(fibrpc([launcher])).toEqual(answered);
      launcherBin = launcher;

      const omitted = tempFolder("fibrpc-npm-omit-");
      writeFileSync(join(omitted, "package.json"), "{}\n");
      expect(npm(["install", "--omit=optional", "fibrpc"], omitted).code).toBe(0);
      const run = spawn([join(omitted, "node_modules/.bin/fibrpc"), "--version"], omitted);
      expect(run.code).toBe(1);
      expect(run.stderr).toBe(
        "fibrpc: the package @fibrpc/linux-x64, which holds fibrpc for linux-x64, is not installed " +
          "(installed with --omit=optional, or from a lockfile made on another platform?): " +
          "install it with npm i -g fibrpc, or npm i @fibrpc/linux-x64\n",
      );
    },
    120_000,
  );

  test.if(process.platform === "linux" && process.arch === "x64")(
    "npx fibrpc call 30 (npx installing it: no global or local fibrpc for it to find)",
    () => {
      const cache = tempFolder("fibrpc-npx-cache-");
      const more = { npm_config_prefix: tempFolder("fibrpc-npx-prefix-"), npm_config_cache: cache };
      expect(fibrpc(["npx", "--yes", "fibrpc"], tempFolder("fibrpc-npx-"), more)).toEqual(answered);
      expect(readdirSync(join(cache, "_npx")).length).toBe(1);
    },
    120_000,
  );

  test.if(process.platform === "linux" && process.arch === "x64")(
    "bun add fibrpc in a fresh project, then its fibrpc call 30 (the launcher; with --trust, the binary itself)",
    () => {
      const bunAdd = (...args: string[]) => {
        const project = tempFolder("fibrpc-bun-add-");
        writeFileSync(join(project, "package.json"), "{}\n");
        const added = spawn([process.execPath, "add", ...args, "fibrpc"], project);
        expect(added.code, added.stderr).toBe(0);
        expect(fibrpc([join(project, "node_modules/.bin/fibrpc")], project)).toEqual(answered);
        return readFileSync(realpathSync(join(project, "node_modules/.bin/fibrpc")));
      };
      // bun runs no install script of a package the project does not trust: the Node.js launcher stays.
      expect(bunAdd().subarray(0, 19).toString()).toBe("#!/usr/bin/env node");
      // Trusted, the install script runs under bun as under npm: the release binary takes its place.
      expect(Bun.hash(bunAdd("--trust"))).toBe(Bun.hash(readFileSync(join(DIST, `fibrpc-${v}-linux-x64`))));
    },
    120_000,
  );

  test.if(process.platform === "linux" && process.arch === "x64")(
    "the library: a fresh project installs fibrpc, type-checks with tsc --strict, and calls serve under node and bun",
    async () => {
      // A queue that exists with no server on it, for a call that times out.
      const idle = uniqueQueue("fibrpc_npm_idle");
      const { ch } = await rawChannel();
      await ch.assertQueue(idle, { durable: true });
      const project = tempFolder("fibrpc-library-");
      writeFileSync(join(project, "package.json"), '{ "type": "module", "private": true }\n');
      writeFileSync(
        join(project, "tsconfig.json"),
        JSON.stringify({
          compilerOptions: {
            strict: true,
            target: "ES2022",
            module: "NodeNext",
            moduleResolution: "NodeNext",
            lib: ["ES2022", "DOM"],
            types: [],
            skipLibCheck: false,
            outDir: "out",
          },
          files: ["main.ts"],
        }),
      );
      // No @types/node: the settings are written into the program, and it prints with console.log.
      writeFileSync(
        join(project, "main.ts"),
        `import { connect, FibrpcError, ServerError, type FibClient } from "fibrpc";
const url = ${JSON.stringify(URL)};
const seen: Record<string, unknown> = {};
const client: FibClient = await connect({ url, queue: ${JSON.stringify(queue)} });
const fib30: bigint = await client.fib(30);
seen.fib30 = fib30 === 832040n;
const many = await Promise.all(Array.from({ length: 500 }, (_, i) => client.fib(i % 100)));
seen.many = many.length;
seen.fib99 = String(many[99]);
try {
  await client.fib(2_000_000);
} catch (err) {
  seen.serverError = err instanceof ServerError ? [err.code, err.exitCode] : String(err);
}
const controller = new AbortController();
const aborted = client.fib(90, { signal: controller.signal });
controller.abort();
try {
  await aborted;
} catch (err) {
  seen.aborted = err instanceof Error ? err.name : String(err);
}
// The aborted call's reply comes and is ignored: the next call gets its own answer.
seen.after = String(await client.fib(10));
const idle = await connect({ url, queue: ${JSON.stringify(idle)} });
try {
  await idle.fib(5, { timeout: 300 });
} catch (err) {
  seen.timeout = err instanceof FibrpcError ? [err.code, err.exitCode] : String(err);
}
await idle.close();
await client.close();
console.log(JSON.stringify(seen));
`,
      );
      const installed = npm(["install", "fibrpc"], project);
      expect(installed.code, installed.stderr).toBe(0);
      const tsc = spawn([join(ROOT, "node_modules/.bin/tsc"), "-p", project], project);
      expect(tsc.code, tsc.stdout).toBe(0);
      // The package's types need nothing but the language: no DOM, no @types/node.
      writeFileSync(
        join(project, "types-only.ts"),
        `import type { CallOptions, FibClient } from "fibrpc";
import { connect, FibrpcError, ServerError, ServerErrorCode } from "fibrpc";
export const use = async (options: CallOptions): Promise<bigint> => {
  const client: FibClient = await connect({ url: "amqp://127.0.0.1", timeout: 1000 });
  const codes: string[] = [ServerErrorCode.N_TOO_LARGE, new FibrpcError("TIMEOUT", "").code, new ServerError("X", "", 1).code];
  return (await client.fib(codes.length, options)) + 1n;
};
`,
      );
      writeFileSync(
        join(project, "tsconfig.types-only.json"),
        JSON.stringify({
          compilerOptions: {
            strict: true,
            noEmit: true,
            skipLibCheck: false,
            target: "ES2022",
            module: "NodeNext",
            moduleResolution: "NodeNext",
            lib: ["ES2022"],
            types: [],
          },
          files: ["types-only.ts"],
        }),
      );
      const bare = spawn([join(ROOT, "node_modules/.bin/tsc"), "-p", "tsconfig.types-only.json"], project);
      expect(bare.code, bare.stdout).toBe(0);
      const expected = {
        fib30: true,
        many: 500,
        fib99: "218922995834555169026",
        serverError: ["N_TOO_LARGE", 76],
        aborted: "AbortError",
        after: "55",
        // A queue with no consumer: the call's timeout says so, as `fibrpc call` does.
        timeout: ["NO_CONSUMER", 69],
      };
      for (const runtime of ["node", process.execPath]) {
        const ran = spawn([runtime, "out/main.js"], project);
        expect({ runtime, code: ran.code, stderr: ran.stderr }).toEqual({
          runtime,
          code: 0,
          stderr: "",
        });
        expect(JSON.parse(ran.stdout)).toEqual(expected);
      }
    },
    120_000,
  );

  test.if(process.platform === "linux" && process.arch === "x64")(
    "start-up: `call 30` cold through npm's fibrpc and through the launcher, against the bare binary (printed)",
    () => {
      if (!installedBin || !launcherBin) throw new Error("needs the two installs of the tests above");
      const commands = { bare: join(DIST, `fibrpc-${v}-linux-x64`), npm: installedBin, launcher: launcherBin };
      const times: Record<string, number[]> = { bare: [], npm: [], launcher: [] };
      // Interleaved, so that the machine's load falls on all three alike; medians of 15.
      for (let round = 0; round < 15; round++) {
        for (const [name, bin] of Object.entries(commands)) {
          const started = performance.now();
          expect(fibrpc([bin])).toEqual(answered);
          times[name]!.push(performance.now() - started);
        }
      }
      const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
      const bare = median(times.bare!);
      console.log(
        `start-up, call 30 cold, median of 15: bare ${bare.toFixed(1)} ms; ` +
          `npm install -g ${median(times.npm!).toFixed(1)} ms (${(median(times.npm!) / bare).toFixed(2)}×); ` +
          `launcher ${median(times.launcher!).toFixed(1)} ms (${(median(times.launcher!) / bare).toFixed(2)}×)`,
      );
    },
    120_000,
  );

  test("npm install --os darwin --cpu arm64 resolves @fibrpc/darwin-arm64, and no other platform's", () => {
    const project = tempFolder("fibrpc-npm-darwin-");
    writeFileSync(join(project, "package.json"), "{}\n");
    const installed = npm(["install", "--os", "darwin", "--cpu", "arm64", "fibrpc"], project);
    expect(installed.code, installed.stderr).toBe(0);
    expect(readdirSync(join(project, "node_modules/@fibrpc"))).toEqual(["darwin-arm64"]);
    expect(existsSync(join(project, "node_modules/@fibrpc/darwin-arm64/bin/fibrpc"))).toBe(true);
  }, 120_000);
});

/**
 * The environment without the developer's settings for fibrpc (FIBRPC_*, OTEL_*), npm (npm_config_*,
 * also set by `npm run`) and bun (BUN_*): the registry's environment then says all there is.
 */
function withoutSettings(from: NodeJS.ProcessEnv): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, value] of Object.entries(from))
    if (value !== undefined && !/^(FIBRPC_|OTEL_|BUN_|npm_)/i.test(k)) env[k] = value;
  return env;
}
