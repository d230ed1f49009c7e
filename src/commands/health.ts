import { defineCommand } from "citty";
import { ExitCode } from "../errors.ts";
import { checkHealth } from "../serve/health.ts";
import { writeResults } from "../output.ts";
import { runAction } from "./_run.ts";

export default defineCommand({
  meta: {
    name: "health",
    description:
      "Exit 0 if the serve process of this machine or container has every worker connected, consuming " +
      "and not blocked by the broker; else exit 69 with the reason (for HEALTHCHECK)",
  },
  run: (context) =>
    runAction("health", context, async (o) => {
      // Option resolution refuses health without a status file (options-resolve.ts, CHECKS.health).
      const health = checkHealth(o.statusFile!, o.maxAge);
      if (health.healthy) {
        await writeResults(
          `healthy: ${health.status.serving}/${health.status.workers} workers consuming ` +
            `queue ${JSON.stringify(health.status.queue)}\n`,
        );
        return ExitCode.OK;
      }
      process.stderr.write(`fibrpc: unhealthy: ${health.reason}\n`);
      return ExitCode.NO_SERVER;
    }),
});
