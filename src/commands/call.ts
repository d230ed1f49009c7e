import { defineCommand } from "citty";
import { boolFromEnv, DEFAULT_TIMEOUT_MS, fromEnv, parseDuration, parseIntOption } from "../config.ts";
import { ExitCode, FibrpcError, mostSevere, usageError } from "../errors.ts";
import { RpcClient, type CallOutcome, type ReplyQueueMode } from "../rpc/client.ts";
import { DEFAULT_MAX_N, parseN } from "../rpc/protocol.ts";
import { RetryingCaller } from "../rpc/retry.ts";
import { brokerArgs, checkFlags, loadConfigFile, logArgs, resolveBroker, resolveLogger } from "./_args.ts";
import type { Logger } from "../log.ts";
import { writeStdout } from "../output.ts";
import { runAction } from "./_run.ts";

const args = {
  n: {
    type: "positional",
    valueHint: "N [N ...]",
    description: `One or more n (0 to ${DEFAULT_MAX_N}); all are sent at once and printed in this order, one fib(n) per line`,
    // Checked in run(): citty would report a lone negative n as a missing argument.
    required: false,
  },
  timeout: {
    type: "string",
    valueHint: "duration",
    description: "Give up on a call after this long, e.g. 500ms, 5s, 2m [env FIBRPC_TIMEOUT] (default: 30s)",
  },
  json: {
    type: "boolean",
    description: 'Print one JSON object per line: {"n", "result" (a string), "ms"}, or {"n", "error": {code, message}, "ms"} [env FIBRPC_JSON]',
  },
  "reply-queue": {
    type: "string",
    valueHint: "direct|exclusive",
    description: "direct: RabbitMQ Direct Reply-to (no queue declared); exclusive: the tutorial's exclusive callback queue [env FIBRPC_REPLY_QUEUE] (default: direct)",
  },
  retry: {
    type: "string",
    valueHint: "count",
    description: "Send a call again, up to this many times, when it timed out or its connection dropped (same correlation id; each attempt gets the full --timeout) [env FIBRPC_RETRY] (default: 0)",
  },
  "wait-for-server": {
    type: "boolean",
    description: "If the request queue has no consumer yet, wait (up to --timeout) for one instead of failing at once [env FIBRPC_WAIT_FOR_SERVER]",
  },
  ...brokerArgs,
  ...logArgs,
} as const;

const REPLY_QUEUE_MODES: readonly ReplyQueueMode[] = ["direct", "exclusive"];

function invalidN(token: string, why: string): FibrpcError {
  return usageError(`invalid n ${JSON.stringify(token)}: ${why}`);
}

export default defineCommand({
  meta: { name: "call", description: "Ask the servers for fib(N) and print each result on its own line" },
  args,
  run: ({ args: parsed, rawArgs }) =>
    runAction(async () => {
      const flags = checkFlags(rawArgs, args, (token) => {
        throw invalidN(token, "n must not be negative");
      });
      await loadConfigFile(parsed.config);
      const tokens = parsed._.map(String);
      if (tokens.length === 0) throw usageError("give at least one n, e.g. `fibrpc call 30`");
      // Same rule and same maximum as the server's default, checked before connecting.
      const ns = tokens.map((token) => {
        const parsedN = parseN(token, DEFAULT_MAX_N);
        if (!parsedN.ok) throw invalidN(token, parsedN.message);
        return parsedN.n;
      });
      const timeout = fromEnv(parsed.timeout, "FIBRPC_TIMEOUT");
      const timeoutMs = timeout === undefined ? DEFAULT_TIMEOUT_MS : parseDuration("timeout", timeout);
      const retries = parseIntOption("retry", fromEnv(parsed.retry, "FIBRPC_RETRY"), 0, 0, 100);
      const replyQueue = (fromEnv(parsed["reply-queue"], "FIBRPC_REPLY_QUEUE") ?? "direct") as ReplyQueueMode;
      if (!REPLY_QUEUE_MODES.includes(replyQueue)) throw usageError(`--reply-queue must be direct or exclusive, got ${JSON.stringify(replyQueue)}`);
      const { urls, queue, tls } = resolveBroker(flags.urls, parsed);
      const log = resolveLogger(parsed);
      const json = boolFromEnv(parsed.json, "FIBRPC_JSON");
      const waitForServer = boolFromEnv(parsed["wait-for-server"], "FIBRPC_WAIT_FOR_SERVER");

      const deadline = Date.now() + timeoutMs;
      const clientOptions = { broker: { urls, tls }, queue, replyQueue, format: "text", timeoutMs, log } as const;
      const client = await RpcClient.connect(clientOptions, deadline);
      const caller = new RetryingCaller(client, () => RpcClient.connect(clientOptions), retries, timeoutMs, log);
      try {
        // Is a server there? With --wait-for-server, wait for one before publishing. Otherwise the
        // check runs alongside the calls, off the path of a cold call: if it finds no server,
        // call fails at once (the requests already sent expire with their deadline).
        const serverThere = waitForConsumer(client, { queue, deadline, wait: waitForServer, log });
        if (waitForServer) await serverThere;
        const noServer = serverThere.then(() => new Promise<never>(() => {}));
        // One deadline for the whole command: --timeout bounds it end to end (per attempt with --retry).
        const calls = ns.map((n) => caller.call(n, deadline));
        const codes: ExitCode[] = [];
        for (const call of calls) codes.push(await print(await Promise.race([call, noServer]), json));
        return mostSevere(codes);
      } finally {
        await caller.close({ waitForBroker: false });
      }
    }),
});

const POLL_MS = 50;

async function waitForConsumer(client: RpcClient, o: { queue: string; deadline: number; wait: boolean; log: Logger }): Promise<void> {
  for (let polls = 0; ; polls++) {
    let count: number;
    try {
      count = await client.consumerCount();
    } catch (err) {
      if (!(o.wait && err instanceof FibrpcError && err.code === "QUEUE_NOT_FOUND")) throw err;
      count = 0;
    }
    if (count > 0) return;
    if (!o.wait) {
      throw new FibrpcError("NO_CONSUMER", `queue ${JSON.stringify(o.queue)} on ${client.broker} has no consumer: no server is running; start one with \`fibrpc serve\`, or pass --wait-for-server`);
    }
    if (polls === 0) o.log.info(`no server on queue ${JSON.stringify(o.queue)} yet; waiting for one (--wait-for-server, up to --timeout)`);
    if (Date.now() + POLL_MS > o.deadline) {
      throw new FibrpcError("TIMEOUT", `no server started consuming queue ${JSON.stringify(o.queue)} on ${client.broker} within --timeout; start one with \`fibrpc serve\``);
    }
    await Bun.sleep(POLL_MS);
  }
}

async function print(outcome: CallOutcome, json: boolean): Promise<ExitCode> {
  const ms = Math.round(outcome.ms * 1000) / 1000;
  if (outcome.ok) {
    await writeStdout(json ? `{"n":${outcome.n},"result":"${outcome.result}","ms":${ms}}\n` : `${outcome.result}\n`);
    return ExitCode.OK;
  }
  process.stderr.write(`fib(${outcome.n}): ${outcome.code}: ${outcome.message}\n`);
  if (json) await writeStdout(`${JSON.stringify({ n: outcome.n, error: { code: outcome.code, message: outcome.message }, ms })}\n`);
  return outcome.error?.exitCode ?? ExitCode.REMOTE_ERROR;
}
