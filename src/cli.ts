/**
 * fibrpc: RPC over RabbitMQ, as one executable. This file only wires the commands; each lives
 * in src/commands/. `serve` and `bench` are loaded lazily, so `fibrpc call` does not load the
 * server's code; `call` itself is imported statically, because in the compiled binary a
 * dynamic import costs ~2 ms of a ~15 ms cold call.
 */
// First: amqplib must load with its field-table decoder guarded (rpc/amqplib-internals.ts).
import "./rpc/amqplib-internals.ts";
import { defineCommand, runCommand } from "citty";
import { ExitCode } from "./errors.ts";
import { maskSecrets } from "./mask.ts";
import callCommand from "./commands/call.ts";
import { commandLineProblem, isHelpCommand, printHelp } from "./commands/_help.ts";
import { installCrashHandlers, reportError } from "./commands/_run.ts";
import { version, versionLine } from "./version.ts";

// Nothing ever prints a stack trace or the binary's minified source unasked.
installCrashHandlers();

const main = defineCommand({
  meta: {
    name: "fibrpc",
    version,
    description: "Fibonacci RPC over RabbitMQ: `fibrpc serve` answers requests on a queue, `fibrpc call N` asks for fib(N)",
  },
  subCommands: {
    serve: () => import("./commands/serve.ts").then((m) => m.default),
    call: callCommand,
    bench: () => import("./commands/bench.ts").then((m) => m.default),
    health: () => import("./commands/health.ts").then((m) => m.default),
    completion: () => import("./commands/completion.ts").then((m) => m.default),
  },
});

const rawArgs = process.argv.slice(2);
const wantsHelpOrVersion = rawArgs.some((a) => a === "--help" || a === "-h") || (rawArgs.length === 1 && (rawArgs[0] === "--version" || rawArgs[0] === "-v"));

// An unknown command (or a flag before any command): one line with the closest match, exit 64.
const problem = await commandLineProblem(main, rawArgs);
if (problem !== undefined) {
  process.stderr.write(`fibrpc: ${maskSecrets(problem)}\n`);
  process.exit(ExitCode.USAGE);
}

if (isHelpCommand(rawArgs)) {
  // `fibrpc help [command]`: that command's help (the root's without one), exit 0.
  await printHelp(main, rawArgs.slice(1));
} else if (wantsHelpOrVersion || rawArgs.length === 0) {
  // Help is ours (commands/_help.ts: plain off a terminal, wrapped, with examples); so is the
  // version: the version line (version, commit, bun, platform), not citty's bare meta.version.
  // Both exit 0.
  if (rawArgs.length === 0 || rawArgs.includes("--help") || rawArgs.includes("-h")) {
    await printHelp(main, rawArgs);
  } else {
    process.stdout.write(`${versionLine}\n`);
  }
} else {
  try {
    await runCommand(main, { rawArgs });
  } catch (err) {
    // citty's own errors (unknown command, missing argument): one line, exit 64 (EX_USAGE).
    // Anything else is unexpected: one line too, exit 70.
    if (!(err instanceof Error && err.name === "CLIError")) process.exit(reportError(err));
    const message = err.message.replace(/\u001b\[[0-9;]*m/g, "");
    process.stderr.write(`fibrpc: ${maskSecrets(message)}; see fibrpc --help\n`);
    process.exit(ExitCode.USAGE);
  }
}
