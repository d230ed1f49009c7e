/**
 * fibrpc's npm packages, as `bun run release` makes them next to the binaries (dist/npm/):
 *
 *   dist/npm/fibrpc-<version>.tgz                the root package `fibrpc`
 *   dist/npm/fibrpc-<platform>-<version>.tgz     one per platform: `@fibrpc/<platform>`
 *
 * The way esbuild, Biome and Bun ship native binaries through npm: each platform package carries
 * one release binary and says where it runs (`os`, `cpu`, and on Linux `libc: ["glibc"]`), so npm
 * installs only the one that fits; the root package names them all as optionalDependencies and holds
 *   - bin/fibrpc.js: a Node.js launcher (scripts/npm/launcher.js) that runs the platform's binary, and
 *     that its install script (scripts/npm/install.js) replaces with the binary itself: no download,
 *     nothing but what npm already installed;
 *   - lib/: the client library (`import { connect } from "fibrpc"`, src/index.ts), built for Node.js
 *     with amqplib bundled in (the package has no dependencies), and its types.
 * The platform table is scripts/npm/platforms.ts, which the root package ships as lib/platforms.js.
 */
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";
import { ROOT } from "./build.ts";
import { binaryPath, PLATFORMS } from "./npm/platforms.ts";

/**
 * What every package says of the project, from the repository's package.json: where it lives (npm
 * shows it; `npm publish --provenance` checks it against the repository that built the package).
 */
const PROJECT = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as {
  description: string;
  license: string;
  repository: { type: string; url: string };
  homepage: string;
};
const ABOUT = { license: PROJECT.license, repository: PROJECT.repository, homepage: PROJECT.homepage };

export interface NpmPackagesOptions {
  version: string;
  /** The release binary of each platform, by its release name (linux-x64, windows-x64, …). */
  binaryOf: (release: string) => string;
  /** Where the tarballs go. */
  outDir: string;
}

/** Makes the packages in a staging folder and packs them into `outDir`; returns the tarballs' paths. */
export async function buildNpmPackages({ version, binaryOf, outDir }: NpmPackagesOptions): Promise<string[]> {
  const stage = mkdtempSync(join(tmpdir(), "fibrpc-npm-"));
  try {
    mkdirSync(outDir, { recursive: true });
    const dirs: string[] = [];
    for (const platform of PLATFORMS) {
      const dir = join(stage, platform.key);
      const bin = join(dir, binaryPath(platform));
      mkdirSync(dirname(bin), { recursive: true });
      copyFileSync(binaryOf(platform.release), bin);
      writeJson(join(dir, "package.json"), {
        name: platform.package,
        version,
        description: `fibrpc for ${platform.key}${platform.libc ? ` (${platform.libc})` : ""}: the binary the package fibrpc runs`,
        ...ABOUT,
        os: [platform.os],
        cpu: [platform.cpu],
        ...(platform.libc ? { libc: [platform.libc] } : {}),
        files: ["bin"],
        preferUnplugged: true,
      });
      writeFileSync(
        join(dir, "README.md"),
        `# ${platform.package}\n\nThe fibrpc binary for ${platform.key}. Install [fibrpc](https://www.npmjs.com/package/fibrpc) instead: it picks this package on this platform.\n`,
      );
      copyFileSync(join(ROOT, "LICENSE"), join(dir, "LICENSE"));
      dirs.push(dir);
    }
    const root = join(stage, "fibrpc");
    await buildRootPackage(root, version);
    dirs.push(root);
    return dirs.map((dir) => pack(dir, outDir));
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
}

async function buildRootPackage(dir: string, version: string): Promise<void> {
  const lib = join(dir, "lib");
  mkdirSync(join(dir, "bin"), { recursive: true });
  // Two entry points, so two files: lib/index.js (the library) and lib/platforms.js (the launcher's table).
  const built = await Bun.build({
    entrypoints: [join(ROOT, "src/index.ts"), join(ROOT, "scripts/npm/platforms.ts")],
    target: "node",
    format: "esm",
    outdir: lib,
    root: ROOT,
    naming: "[name].js",
  });
  if (!built.success) throw new Error(`the library did not build: ${built.logs.map(String).join("; ")}`);
  writeTypes(lib);
  copyFileSync(join(ROOT, "scripts/npm/launcher.js"), join(dir, "bin/fibrpc.js"));
  copyFileSync(join(ROOT, "scripts/npm/install.js"), join(dir, "install.js"));
  copyFileSync(join(ROOT, "scripts/npm/README.md"), join(dir, "README.md"));
  copyFileSync(join(ROOT, "LICENSE"), join(dir, "LICENSE"));
  writeJson(join(dir, "package.json"), {
    name: "fibrpc",
    version,
    description: PROJECT.description,
    ...ABOUT,
    keywords: ["rabbitmq", "amqp", "rpc", "fibonacci", "cli"],
    type: "module",
    bin: { fibrpc: "bin/fibrpc.js" },
    exports: { ".": { types: "./lib/index.d.ts", default: "./lib/index.js" }, "./package.json": "./package.json" },
    types: "./lib/index.d.ts",
    files: ["bin", "lib", "install.js"],
    engines: { node: ">=20" },
    scripts: { postinstall: "node install.js" },
    optionalDependencies: Object.fromEntries(PLATFORMS.map((platform) => [platform.package, version])),
  });
}

/**
 * The library's .d.ts files: tsc's declarations of src/index.ts, and only the modules they import
 * (index.ts keeps its public types free of amqplib's and of the client's internals), with the
 * imports' `.ts` made `.js` as they are in the package.
 */
function writeTypes(lib: string): void {
  const work = mkdtempSync(join(tmpdir(), "fibrpc-types-"));
  try {
    const config = join(work, "tsconfig.json");
    writeJson(config, {
      extends: join(ROOT, "tsconfig.json"),
      compilerOptions: {
        noEmit: false,
        declaration: true,
        emitDeclarationOnly: true,
        outDir: join(work, "out"),
        rootDir: join(ROOT, "src"),
        types: [],
      },
      include: [],
      files: [join(ROOT, "src/index.ts")],
    });
    const tsc = Bun.spawnSync([join(ROOT, "node_modules/.bin/tsc"), "-p", config], { stdout: "pipe", stderr: "pipe" });
    if (tsc.exitCode !== 0) throw new Error(`tsc could not write the library's types: ${tsc.stdout.toString().trim()}`);
    const todo = ["index.d.ts"];
    const done = new Set<string>();
    while (todo.length > 0) {
      const file = todo.pop()!;
      if (done.has(file)) continue;
      done.add(file);
      const text = readFileSync(join(work, "out", file), "utf8");
      for (const [, spec] of text.matchAll(/from "(\.{1,2}\/[^"]+)\.ts"/g))
        todo.push(relative(join(work, "out"), join(work, "out", dirname(file), `${spec}.d.ts`)));
      mkdirSync(dirname(join(lib, file)), { recursive: true });
      writeFileSync(join(lib, file), text.replace(/from "(\.{1,2}\/[^"]+)\.ts"/g, 'from "$1.js"'));
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** `npm pack`, with a cache and config of its own: the machine's npm settings and cache are not touched. */
function pack(dir: string, outDir: string): string {
  const own = mkdtempSync(join(tmpdir(), "fibrpc-npm-pack-"));
  try {
    const proc = Bun.spawnSync(
      [
        "npm",
        "pack",
        "--json",
        "--pack-destination",
        outDir,
        "--cache",
        join(own, "cache"),
        "--userconfig",
        join(own, "npmrc"),
      ],
      { cwd: dir, stdout: "pipe", stderr: "pipe", env: { ...process.env, npm_config_logs_dir: join(own, "logs") } },
    );
    if (proc.exitCode !== 0) throw new Error(`npm pack ${relative(ROOT, dir)}: ${proc.stderr.toString().trim()}`);
    const [packed] = JSON.parse(proc.stdout.toString()) as { filename: string }[];
    return join(outDir, packed!.filename);
  } finally {
    rmSync(own, { recursive: true, force: true });
  }
}

function writeJson(path: string, value: unknown): void {
  writeFileSync(path, `${JSON.stringify(value, null, 2)}\n`);
}
