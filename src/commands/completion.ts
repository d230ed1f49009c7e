/**
 * `fibrpc completion bash|zsh|fish`: the completion script for one shell on stdout, generated from the
 * option table (completion/model.ts); a shell it does not know is a usage error.
 */
import { defineCommand } from "citty";
import { completionModel, SHELLS, type Shell } from "../completion/model.ts";
import { bashScript, fishScript, zshScript } from "../completion/scripts.ts";
import { ExitCode, usageError } from "../errors.ts";
import { writeResults } from "../output.ts";
import { closest } from "../suggest.ts";
import { version } from "../version.ts";
import { runAction } from "./_run.ts";

const SCRIPTS: Record<Shell, typeof bashScript> = { bash: bashScript, zsh: zshScript, fish: fishScript };
const shells = `${SHELLS.slice(0, -1).join(", ")} or ${SHELLS.at(-1)}`;

export default defineCommand({
  meta: {
    name: "completion",
    description: `Print a shell completion script (${shells}) for fibrpc's commands and options`,
  },
  args: {
    shell: {
      type: "positional",
      valueHint: SHELLS.join("|"),
      // How to install each script: the EXAMPLES of this command's help (commands/_help.ts).
      description:
        `The shell to print the script for: ${shells}. The script completes commands, flags and ` +
        "the values of flags with a fixed set, from this fibrpc's option table: print it again after upgrading",
    },
  },
  run: (context) =>
    runAction("completion", context, async (_, _run, words) => {
      const [shell = ""] = words;
      if (words.length === 0) throw usageError(`name a shell: fibrpc completion ${SHELLS.join("|")}`);
      if (words.length > 1) throw usageError(`name one shell (${shells}), got ${words.length}: ${words.join(" ")}`);
      if (!(SHELLS as readonly string[]).includes(shell)) {
        const guess = closest(shell, SHELLS);
        const meant = guess === undefined ? "" : `; did you mean ${guess}?`;
        throw usageError(`unknown shell ${JSON.stringify(shell)}: fibrpc completion supports ${shells}${meant}`);
      }
      await writeResults(SCRIPTS[shell as Shell](completionModel(), version));
      return ExitCode.OK;
    }),
});
