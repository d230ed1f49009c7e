#!/usr/bin/env node
// fibrpc's npm launcher: runs the binary of this machine's platform package (@fibrpc/<platform>,
// an optional dependency npm installed beside this one). install.js replaces this file with that
// binary at install time, so `fibrpc` normally starts with no Node.js in between; this file runs only
// where it could not (Windows, `--ignore-scripts`, and bun or pnpm, which run no install scripts of
// packages they do not trust). Exit code 1, with one line, when there is no binary to run.
// A .js file in a "type": "module" package, not an extensionless one: Node.js before 20.10 runs an
// extensionless file only as CommonJS.
import { spawn } from "node:child_process";
import { constants } from "node:os";
import { installedBinary, platformFor, runningLibc } from "../lib/platforms.js";

function fail(line) {
  process.stderr.write(`fibrpc: ${line}\n`);
  process.exit(1);
}

const found = platformFor(process.platform, process.arch, undefined);
if (found.error) fail(found.error);
const { platform } = found;

let binary;
try {
  binary = installedBinary(platform);
} catch {
  // Only now the C library: npm skips a glibc package on musl, and asking Node.js costs ~50 ms (its
  // process report), too much for every start.
  const libc = platformFor(process.platform, process.arch, runningLibc());
  if (libc.error) fail(libc.error);
  fail(
    `the package ${platform.package}, which holds fibrpc for ${platform.key}, is not installed ` +
      "(installed with --omit=optional, or from a lockfile made on another platform?): " +
      `install it with npm i -g fibrpc, or npm i ${platform.package}`,
  );
}

const child = spawn(binary, process.argv.slice(2), { stdio: "inherit" });
// Ctrl-C reaches fibrpc through the terminal's process group; passing SIGINT on as well would be a
// second one, which fibrpc takes as "stop at once". SIGTERM and SIGHUP reach only this process.
process.on("SIGINT", () => {});
for (const signal of ["SIGTERM", "SIGHUP"]) process.on(signal, () => child.kill(signal));
child.on("error", (err) => fail(`cannot run ${binary}: ${err.message}`));
child.on("exit", (code, signal) => {
  if (code !== null) process.exit(code);
  // Ended by a signal: end the same way, so that the shell sees what fibrpc's own end would say;
  // where Node.js ignores that signal (SIGPIPE), the shell's code for it, 128 + its number.
  process.removeAllListeners(signal);
  process.kill(process.pid, signal);
  process.exit(128 + (constants.signals[signal] ?? 0));
});
