/**
 * fibrpc: RPC over RabbitMQ, as one executable. This file only wires the commands; each lives
 * in src/commands/. `serve` and `bench` are loaded lazily, so `fibrpc call` does not load the
 * server's code; `call` itself is imported statically, because in the compiled binary a
 * dynamic import costs ~2 ms of a ~15 ms cold call.
 */
// First: amqplib must load with its field-table decoder guarded (rpc/amqplib-internals.ts).
import "./rpc/amqplib-internals.ts";
import { defineCommand } from "citty";
import callCommand from "./commands/call.ts";
import { runMain } from "./commands/_run.ts";
import { installCrashHandlers } from "./report.ts";
import { version } from "./version.ts";

// Nothing ever prints a stack trace or the binary's minified source unasked.
installCrashHandlers();

const main = defineCommand({
  meta: {
    name: "fibrpc",
    version,
    description:
      "Fibonacci RPC over RabbitMQ: `fibrpc serve` answers requests on a queue, `fibrpc call N` asks for fib(N)",
  },
  subCommands: {
    serve: () => import("./commands/serve.ts").then((m) => m.default),
    call: callCommand,
    bench: () => import("./commands/bench.ts").then((m) => m.default),
    health: () => import("./commands/health.ts").then((m) => m.default),
    completion: () => import("./commands/completion.ts").then((m) => m.default),
  },
});

await runMain(main, process.argv.slice(2));
