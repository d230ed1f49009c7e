#!/usr/bin/env node
// fibrpc's npm launcher: runs the binary of this machine's platform package (@fibrpc/<platform>,
// an optional dependency npm installed beside this one). install.js replaces this file with that
// binary at install time, so `fibrpc` normally starts with no Node.js in between; this file runs only
// where it could not (Windows, `--ignore-scripts`, or bun, which runs no install scripts of packages
// it does not trust). Exit code 1, with one line, when there is no binary to run.
import { spawn } from "node:child_process";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { binaryPath, platformFor, runningLibc } from "../lib/platforms.js";

function fail(line) {
  process.stderr.write(`fibrpc: ${line}\n`);
  process.exit(1);
}

const found = platformFor(process.platform, process.arch, runningLibc());
if (found.error) fail(found.error);
const { platform } = found;

let binary;
try {
  binary = join(
    dirname(createRequire(import.meta.url).resolve(`${platform.package}/package.json`)),
    binaryPath(platform),
  );
} catch {
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
  if (signal) {
    // Ended by a signal: end the same way, so that the shell sees what fibrpc's own exit would say.
    process.removeAllListeners(signal);
    process.kill(process.pid, signal);
  } else process.exit(code ?? 1);
});
