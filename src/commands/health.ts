import { defineCommand } from "citty";
import { fromEnv, parseDuration } from "../config.ts";
import { ExitCode, usageError } from "../errors.ts";
import { checkHealth, STATUS_HEARTBEAT_MS } from "../serve/status.ts";
import { writeStdout } from "../output.ts";
import { checkFlags, loadConfigFile, logArgs } from "./_args.ts";
import { runAction } from "./_run.ts";

const args = {
  "status-file": {
    type: "string",
    valueHint: "path",
    description: "The file `fibrpc serve --status-file` keeps up to date [env FIBRPC_STATUS_FILE]",
  },
  "max-age": {
    type: "string",
    valueHint: "duration",
    description: `How old the status may be before serve counts as stuck [env FIBRPC_MAX_AGE] (default: ${(3 * STATUS_HEARTBEAT_MS) / 1000}s)`,
  },
  config: logArgs.config,
} as const;

export default defineCommand({
  meta: {
    name: "health",
    description: "Exit 0 if the serve process of this machine or container has every worker connected and consuming; else exit 69 with the reason (for HEALTHCHECK)",
  },
  args,
  run: ({ args: parsed, rawArgs }) =>
    runAction(async () => {
      checkFlags(rawArgs, args);
      await loadConfigFile(parsed.config);
      const path = fromEnv(parsed["status-file"], "FIBRPC_STATUS_FILE");
      if (!path) throw usageError("give --status-file (or FIBRPC_STATUS_FILE), the file serve was started with");
      const maxAge = fromEnv(parsed["max-age"], "FIBRPC_MAX_AGE");
      const maxAgeMs = maxAge === undefined ? 3 * STATUS_HEARTBEAT_MS : parseDuration("max-age", maxAge);
      const health = checkHealth(path, maxAgeMs);
      if (health.healthy) {
        await writeStdout(`healthy: ${health.status.serving}/${health.status.workers} workers consuming queue ${JSON.stringify(health.status.queue)}\n`);
        return ExitCode.OK;
      }
      process.stderr.write(`fibrpc: unhealthy: ${health.reason}\n`);
      return ExitCode.NO_SERVER;
    }),
});
