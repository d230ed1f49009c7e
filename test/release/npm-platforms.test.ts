/**
 * Which npm platform package a machine needs (scripts/npm/platforms.ts, shipped as the launcher's
 * lib/platforms.js), and the one line a machine with none gets: naming its platform and what to
 * install instead. test/release/release.test.ts installs the packages through a registry.
 */
import { describe, expect, test } from "bun:test";
import { binaryPath, PLATFORMS, platformFor } from "../../scripts/npm/platforms.ts";

const INSTEAD =
  "run the container image (ghcr.io/fibrpc/fibrpc), or build from source (https://github.com/fibrpc/fibrpc#build-from-source)";

describe("platformFor", () => {
  const cases: { platform: string; arch: string; libc?: string; package?: string; error?: string }[] = [
    { platform: "linux", arch: "x64", libc: "glibc", package: "@fibrpc/linux-x64" },
    { platform: "linux", arch: "arm64", package: "@fibrpc/linux-arm64" },
    { platform: "darwin", arch: "x64", package: "@fibrpc/darwin-x64" },
    { platform: "darwin", arch: "arm64", package: "@fibrpc/darwin-arm64" },
    { platform: "win32", arch: "x64", package: "@fibrpc/win32-x64" },
    {
      platform: "freebsd",
      arch: "x64",
      error: `no fibrpc binary for this platform (freebsd-x64); fibrpc ships for linux-x64, linux-arm64, darwin-x64, darwin-arm64, win32-x64: ${INSTEAD}`,
    },
    {
      platform: "win32",
      arch: "arm64",
      error: `no fibrpc binary for this platform (win32-arm64); fibrpc ships for linux-x64, linux-arm64, darwin-x64, darwin-arm64, win32-x64: ${INSTEAD}`,
    },
    {
      platform: "linux",
      arch: "x64",
      libc: "musl",
      error: `no fibrpc binary for linux-x64 with musl (Alpine?); fibrpc's Linux binaries need glibc: ${INSTEAD}`,
    },
  ];
  for (const c of cases) {
    test(`${c.platform}-${c.arch}${c.libc ? ` (${c.libc})` : ""}: ${c.package ?? "none"}`, () => {
      const found = platformFor(c.platform, c.arch, c.libc);
      if (c.package) expect("platform" in found ? found.platform.package : found.error).toBe(c.package);
      else expect(found.error).toBe(c.error!);
    });
  }
});

test("each platform package names npm's os and cpu, glibc on Linux, and where its binary is", () => {
  expect(
    PLATFORMS.map((p) => ({ package: p.package, os: p.os, cpu: p.cpu, libc: p.libc, binary: binaryPath(p) })),
  ).toEqual([
    { package: "@fibrpc/linux-x64", os: "linux", cpu: "x64", libc: "glibc", binary: "bin/fibrpc" },
    { package: "@fibrpc/linux-arm64", os: "linux", cpu: "arm64", libc: "glibc", binary: "bin/fibrpc" },
    { package: "@fibrpc/darwin-x64", os: "darwin", cpu: "x64", libc: undefined, binary: "bin/fibrpc" },
    { package: "@fibrpc/darwin-arm64", os: "darwin", cpu: "arm64", libc: undefined, binary: "bin/fibrpc" },
    { package: "@fibrpc/win32-x64", os: "win32", cpu: "x64", libc: undefined, binary: "bin/fibrpc.exe" },
  ]);
});
