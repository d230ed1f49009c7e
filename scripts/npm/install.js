// fibrpc's install script (postinstall of the root package): puts this platform's binary, from the
// platform package npm already installed, in the place of the launcher bin/fibrpc, so that `fibrpc`
// starts as fast as the binary itself (a Node.js launcher adds ~40 ms to every run; esbuild and Bun's
// own npm packages do the same). It downloads nothing. Whatever goes wrong, it leaves the launcher in
// place, which works, only slower, and the install succeeds.
import { chmodSync, copyFileSync, linkSync, renameSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { binaryPath, platformFor } from "./lib/platforms.js";

const root = dirname(fileURLToPath(import.meta.url));

function install() {
  // Windows runs bin entries through npm's cmd shims, which expect the JavaScript launcher.
  if (process.platform === "win32") return;
  // No C library check: on musl npm did not install the glibc package, and the resolve below fails.
  const found = platformFor(process.platform, process.arch, undefined);
  if (found.error) return;
  let binary;
  try {
    binary = join(
      dirname(createRequire(import.meta.url).resolve(`${found.platform.package}/package.json`)),
      binaryPath(found.platform),
    );
  } catch {
    return; // Not installed: the launcher says so when run.
  }
  const launcher = join(root, "bin", "fibrpc");
  const next = `${launcher}.next`;
  rmSync(next, { force: true });
  try {
    // A hard link costs no space (the binary is ~100 MB); across file systems, a copy.
    linkSync(binary, next);
  } catch {
    copyFileSync(binary, next);
  }
  chmodSync(next, 0o755);
  // A rename replaces the launcher in one step: never a half-written bin/fibrpc.
  renameSync(next, launcher);
}

try {
  install();
} catch (err) {
  process.stderr.write(`fibrpc: kept the Node.js launcher (${err.message})\n`);
}
