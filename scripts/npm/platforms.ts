/**
 * The platforms fibrpc's npm packages carry a binary for, one package each, and which one this
 * machine needs. Only Node.js's own modules: scripts/npm.ts makes the packages from this table and ships it in the
 * root package, built for Node.js, as lib/platforms.js, which the launcher and the install script read
 * (test/release/npm-platforms.test.ts).
 */
import { createRequire } from "node:module";
import { dirname, join } from "node:path";

/**
 * `key` is Node's `${process.platform}-${process.arch}`; `release` is the platform in the release
 * file's name (scripts/release.ts); `libc` is the C library npm must find for the package to install.
 */
export interface Platform {
  key: string;
  package: string;
  os: string;
  cpu: string;
  libc?: "glibc";
  release: string;
}

export const PLATFORMS: readonly Platform[] = [
  { key: "linux-x64", package: "@fibrpc/linux-x64", os: "linux", cpu: "x64", libc: "glibc", release: "linux-x64" },
  {
    key: "linux-arm64",
    package: "@fibrpc/linux-arm64",
    os: "linux",
    cpu: "arm64",
    libc: "glibc",
    release: "linux-arm64",
  },
  { key: "darwin-x64", package: "@fibrpc/darwin-x64", os: "darwin", cpu: "x64", release: "darwin-x64" },
  { key: "darwin-arm64", package: "@fibrpc/darwin-arm64", os: "darwin", cpu: "arm64", release: "darwin-arm64" },
  { key: "win32-x64", package: "@fibrpc/win32-x64", os: "win32", cpu: "x64", release: "windows-x64" },
];

/**
 * Where npm installed the binary of `platform`: its package resolved from here, as from the root
 * package's lib/ (the launcher and the install script both ask). Throws if the package is not installed.
 */
export function installedBinary(platform: Platform): string {
  const manifest = createRequire(import.meta.url).resolve(`${platform.package}/package.json`);
  return join(dirname(manifest), binaryPath(platform));
}

/** The binary's path inside its platform package. */
export function binaryPath(platform: Platform): string {
  return platform.os === "win32" ? "bin/fibrpc.exe" : "bin/fibrpc";
}

const WHAT_INSTEAD =
  "run the container image (ghcr.io/fibrpc/fibrpc), or build from source (https://github.com/fibrpc/fibrpc#build-from-source)";

/**
 * The package that holds this machine's binary, or, where there is none, one line saying so and
 * what to install instead. `libc` is "glibc", "musl" or undefined (not Linux).
 */
export function platformFor(
  platform: string,
  arch: string,
  libc: string | undefined,
): { platform: Platform; error?: undefined } | { error: string } {
  const key = `${platform}-${arch}`;
  const found = PLATFORMS.find((p) => p.key === key);
  const shipped = PLATFORMS.map((p) => p.key).join(", ");
  if (!found)
    return { error: `no fibrpc binary for this platform (${key}); fibrpc ships for ${shipped}: ${WHAT_INSTEAD}` };
  if (found.libc && libc && libc !== found.libc)
    return {
      error: `no fibrpc binary for ${key} with ${libc} (Alpine?); fibrpc's Linux binaries need ${found.libc}: ${WHAT_INSTEAD}`,
    };
  return { platform: found };
}

/** The C library Node runs on, on Linux: its process report names glibc's version, and nothing for musl. */
export function runningLibc(): "glibc" | "musl" | undefined {
  if (process.platform !== "linux") return undefined;
  const report = process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined;
  return report?.header?.glibcVersionRuntime ? "glibc" : "musl";
}
