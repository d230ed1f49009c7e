// fibrpc's install script (postinstall of the root package): puts this platform's binary, from the
// platform package npm already installed, in the place of the launcher bin/fibrpc.js, so that
// `fibrpc` starts as fast as the binary itself (the Node.js launcher adds Node.js's start-up to every
// run; esbuild and Bun's own npm packages do the same). It downloads nothing. Whatever goes wrong, it
// leaves the launcher in place, which works, only slower, and the install succeeds.
import { chmodSync, copyFileSync, linkSync, renameSync, rmSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { installedBinary, platformFor, runningLibc } from "./lib/platforms.js";

const root = dirname(fileURLToPath(import.meta.url));
const launcher = join(root, "bin", "fibrpc.js");
const next = `${launcher}.next`;

function install() {
  // Windows runs bin entries through npm's cmd shims, which expect the JavaScript launcher.
  if (process.platform === "win32") return;
  // The C library too: an npm before 10, or a lockfile without libc, installs the glibc package on
  // musl, where its binary cannot start; the launcher then says what to install instead.
  const found = platformFor(process.platform, process.arch, runningLibc());
  if (found.error) return;
  let binary;
  try {
    binary = installedBinary(found.platform);
  } catch {
    return; // Not installed: the launcher says so when run.
  }
  // Run before (npm rebuild): the launcher is that binary already.
  const [from, to] = [statSync(binary), statSync(launcher)];
  if (from.ino === to.ino && from.dev === to.dev) return;
  rmSync(next, { force: true });
  try {
    // A hard link costs no space (the binary is ~100 MB); across file systems, a copy.
    linkSync(binary, next);
  } catch {
    copyFileSync(binary, next);
  }
  chmodSync(next, 0o755);
  // A rename replaces the launcher in one step: never a half-written bin/fibrpc.js.
  renameSync(next, launcher);
}

try {
  install();
} catch (err) {
  rmSync(next, { force: true });
  process.stderr.write(`fibrpc: kept the Node.js launcher (${err.message})\n`);
}
