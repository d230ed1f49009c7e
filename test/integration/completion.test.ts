/**
 * `fibrpc completion bash|zsh|fish`, as a user installs it: the compiled binary (from `/`) on
 * PATH, its script loaded by the shell itself, and completions asked of it — bash through its
 * registered completion function, zsh through a real interactive zsh on a pseudo-terminal (zpty)
 * pressing Tab, fish through `complete -C`. What is expected is read from the option table, so
 * a command or an option added there is checked here too. zsh and fish come from Debian's
 * packages (scripts/test.sh installs them); without them these tests fail, they do not skip.
 */
import { describe, expect, test } from "bun:test";
import { symlinkSync } from "node:fs";
import { join } from "node:path";
import { COMMAND_OPTIONS, COMMANDS, OPTIONS, type OptionDef, type OptionName } from "../../src/options.ts";
import { BIN, cleanupAfterFile, run, tracked, tempFolder } from "../helpers.ts";

cleanupAfterFile();

// A directory with just `fibrpc` in it, put first on PATH, as an installed binary would be.
const binDir = tempFolder("fibrpc-completion-");
symlinkSync(BIN, join(binDir, "fibrpc"));

/** Runs a shell (argv) with the binary on PATH, from `/`, bounded in time. */
async function shell(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const program = Bun.which(argv[0]!);
  if (program === null)
    throw new Error(`${argv[0]} is not installed: apt-get install ${argv[0]} (scripts/test.sh installs it)`);
  const proc = tracked(
    Bun.spawn([program, ...argv.slice(1)], {
      cwd: "/",
      env: { PATH: `${binDir}:${process.env.PATH}`, HOME: binDir, TERM: "xterm", LANG: "C.UTF-8" },
      stdout: "pipe",
      stderr: "pipe",
      stdin: "ignore",
      timeout: 60_000,
    }),
  );
  const [stdout, stderr, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  return { code, stdout, stderr };
}

/** What the table says: every command, its long and short flags, and the values of fixed-set options. */
const option = (name: OptionName): OptionDef<unknown> => OPTIONS[name];
const flagsOf = (command: (typeof COMMANDS)[number]) =>
  (COMMAND_OPTIONS[command] as readonly OptionName[]).flatMap((name) => [
    `--${name}`,
    ...[option(name).short ?? []].flat().map((a) => `-${a}`),
  ]);
const withChoices = (Object.keys(OPTIONS) as OptionName[]).filter((name) => option(name).choices !== undefined);
const commandTaking = (name: OptionName) =>
  COMMANDS.find((c) => (COMMAND_OPTIONS[c] as readonly string[]).includes(name))!;

describe("fibrpc completion", () => {
  test("prints a script for bash, zsh and fish on stdout", async () => {
    for (const sh of ["bash", "zsh", "fish"]) {
      const { code, stdout, stderr } = await run(["completion", sh]);
      expect(code, sh).toBe(0);
      expect(stderr, sh).toBe("");
      expect(stdout, sh).toContain(`printed by \`fibrpc completion ${sh}\``);
    }
  });

  test("an unknown or missing shell: one line naming the shells, exit 64", async () => {
    for (const args of [["completion", "tcsh"], ["completion"], ["completion", "bash", "zsh"]]) {
      const { code, stdout, stderr } = await run(args);
      expect(code, args.join(" ")).toBe(64);
      expect(stdout).toBe("");
      expect(stderr.trimEnd().split("\n"), args.join(" ")).toHaveLength(1);
      expect(stderr).toMatch(/bash.*zsh.*fish/);
    }
    expect((await run(["completion", "tcsh"])).stderr).toBe(
      'fibrpc: unknown shell "tcsh": fibrpc completion supports bash, zsh or fish\n',
    );
    expect((await run(["completion", "--shell", "bash"])).code).toBe(64);
    expect((await run(["completion", "bsh"])).stderr).toBe(
      'fibrpc: unknown shell "bsh": fibrpc completion supports bash, zsh or fish; did you mean bash?\n',
    );
  });

  test("--help says how to install each", async () => {
    const { code, stdout } = await run(["completion", "--help"]);
    expect(code).toBe(0);
    const flat = stdout.replace(/\s+/g, " ");
    expect(flat).toContain("source <(fibrpc completion bash)");
    // biome-ignore lint/suspicious/noTemplateCurlyInString: zsh's ${fpath[1]}, as help prints it
    expect(flat).toContain('fibrpc completion zsh > "${fpath[1]}/_fibrpc"');
    expect(flat).toContain("fibrpc completion fish > ~/.config/fish/completions/fibrpc.fish");
  });
});

describe("bash", () => {
  /**
   * Each line completed by the function the script registers (found with `complete -p`), with
   * COMP_WORDS/COMP_CWORD/COMP_LINE/COMP_POINT set as bash sets them; one line of COMPREPLY each.
   */
  async function complete(lines: string[]): Promise<string[][]> {
    const script = `
      source <(fibrpc completion bash) || exit 3
      spec=$(complete -p fibrpc) || exit 4
      fn=\${spec##*-F }; fn=\${fn%% *}
      for line in "$@"; do
        read -ra COMP_WORDS <<< "$line"
        [[ $line == *" " ]] && COMP_WORDS+=("")
        COMP_CWORD=$(( \${#COMP_WORDS[@]} - 1 )); COMP_LINE=$line; COMP_POINT=\${#line}
        COMPREPLY=()
        "$fn" fibrpc "\${COMP_WORDS[COMP_CWORD]}" "\${COMP_WORDS[COMP_CWORD-1]}"
        printf '%s\\n' "\${COMPREPLY[*]}"
      done`;
    const { code, stdout, stderr } = await shell(["bash", "--norc", "--noprofile", "-c", script, "bash", ...lines]);
    expect(stderr).toBe("");
    expect(code).toBe(0);
    const replies = stdout.split("\n").slice(0, -1);
    expect(replies).toHaveLength(lines.length);
    return replies.map((r) => r.split(" ").filter(Boolean));
  }

  test("completes a command, a flag and a flag's value", async () => {
    const [se, wo, level, all] = await complete([
      "fibrpc se",
      "fibrpc serve --wo",
      "fibrpc serve --log-level ",
      "fibrpc ",
    ]);
    expect(se).toEqual(["serve"]);
    expect(wo).toEqual(["--workers"]);
    expect(level).toEqual([...option("log-level").choices!]);
    expect(all).toEqual([...COMMANDS]);
  });

  test("every command's flags (long and short) and every fixed set of values, from the option table", async () => {
    const flagLines = COMMANDS.map((c) => `fibrpc ${c} -`);
    const valueLines = withChoices.map((name) => `fibrpc ${commandTaking(name)} --${name} `);
    const replies = await complete([...flagLines, ...valueLines, "fibrpc completion ", "fibrpc call --timeout "]);
    COMMANDS.forEach((command, i) => {
      expect(replies[i], command).toEqual(expect.arrayContaining([...flagsOf(command), "--help"]));
    });
    withChoices.forEach((name, i) => {
      expect(replies[COMMANDS.length + i], name).toEqual([...option(name).choices!]);
    });
    expect(replies.at(-2)).toEqual(["bash", "zsh", "fish"]);
    expect(replies.at(-1)).toEqual([]); // a duration: nothing to offer, and not file names
  });

  test("help completes a command; completion's shell is offered once", async () => {
    const replies = await complete(["fibrpc help ", "fibrpc help c", "fibrpc help call ", "fibrpc completion bash "]);
    expect(replies).toEqual([[...COMMANDS], ["call", "completion"], [], []]);
  });

  test("--flag=value, split at '=' by bash or not", async () => {
    const script = `
      source <(fibrpc completion bash)
      COMP_WORDS=(fibrpc call --reply-queue = ex); COMP_CWORD=4; _fibrpc_completion; echo "\${COMPREPLY[*]}"
      COMP_WORDS=(fibrpc call --reply-queue=ex); COMP_CWORD=2; _fibrpc_completion; echo "\${COMPREPLY[*]}"`;
    const { stdout } = await shell(["bash", "--norc", "--noprofile", "-c", script]);
    expect(stdout).toBe("exclusive\n--reply-queue=exclusive\n");
  });

  test("sourcing it twice is harmless, and the line is never evaluated", async () => {
    const marker = join(binDir, "evaluated");
    const script = `
      source <(fibrpc completion bash); source <(fibrpc completion bash)
      COMP_WORDS=(fibrpc call '$(touch ${marker})' --js); COMP_CWORD=3; _fibrpc_completion; echo "\${COMPREPLY[*]}"`;
    const { stdout, stderr } = await shell(["bash", "--norc", "--noprofile", "-c", script]);
    expect(stderr).toBe("");
    expect(stdout).toBe("--json\n");
    expect(await Bun.file(marker).exists()).toBe(false);
  });
});

describe("zsh", () => {
  test("the script parses (zsh -n)", async () => {
    const { stdout } = await run(["completion", "zsh"]);
    const file = join(binDir, "_fibrpc");
    await Bun.write(file, stdout);
    const { code, stderr } = await shell(["zsh", "-n", file]);
    expect(stderr).toBe("");
    expect(code).toBe(0);
  });

  /**
   * An interactive zsh on a pseudo-terminal (zpty), with compinit and the script sourced or
   * autoloaded from $fpath; for each line, types it, presses Tab, and prints the matches offered
   * (compadd is wrapped to show them). Prints "== line" before each line's matches. Each step
   * waits for the shell's answer, bounded by the process's timeout.
   */
  const CAPTURE = `
    zmodload zsh/zpty || exit 3
    zpty z zsh -f -i
    zpty -w z "PROMPT='' RPROMPT='' PS2=''"
    # $1: "source", or a directory to autoload _fibrpc from (the script saved in $fpath).
    load=$1; shift
    if [[ $load == source ]]; then
      zpty -w z "autoload -U compinit; compinit -u -D; source <(fibrpc completion zsh)"
    else
      zpty -w z "fpath=(\${(q)load} \\$fpath); autoload -U compinit; compinit -u -D"
    fi
    zpty -w z "zstyle ':completion:*' list-prompt ''; zstyle ':completion:*' menu no"
    zpty -w z 'compadd () { if [[ $* == *-[OAD]* ]]; then builtin compadd "$@"; return; fi; local -a hits; builtin compadd -O hits "$@"; local h; for h in $hits; do print -rn -- "<hit>$h</hit>"; done; builtin compadd "$@" }'
    # Ctrl-X: complete, then say so; nothing more is typed before that (zsh skips completing
    # while keys are waiting).
    zpty -w z 'tab-then-mark() { zle complete-word; print -rn -- "<tabbed>" }; zle -N tab-then-mark; bindkey "^X" tab-then-mark'
    zpty -w z "print '<ready''>'"
    zpty -r z out '*<ready>*' || exit 4
    for input in "$@"; do
      print -r -- "== $input"
      zpty -w -n z "$input"$'\\C-x'
      zpty -r z out '*<tabbed>*' || exit 5
      zpty -w -n z $'\\C-e\\C-u'
      zpty -w z "print '<done''>'"
      zpty -r z done '*<done>*' || exit 6
      while [[ $out == *'<hit>'*'</hit>'* ]]; do
        out=\${out#*<hit>}
        print -r -- \${out%%</hit>*}
        out=\${out#*</hit>}
      done
    done
    zpty -d z`;

  async function complete(load: string, lines: string[]): Promise<string[][]> {
    const { code, stdout, stderr } = await shell(["zsh", "-f", "-c", CAPTURE, "zsh", load, ...lines]);
    expect(stderr).toBe("");
    expect(code).toBe(0);
    return stdout
      .split(/^== .*\n/m)
      .slice(1)
      .map((block) => block.split("\n").filter(Boolean));
  }

  test("sourced: completes a command, a flag and a flag's value when Tab is pressed", async () => {
    const matches = await complete("source", [
      "fibrpc se",
      "fibrpc serve --wo",
      "fibrpc serve --log-level ",
      "fibrpc completion ",
    ]);
    expect(matches).toEqual([["serve"], ["--workers"], [...option("log-level").choices!], ["bash", "zsh", "fish"]]);
  });

  test("help completes a command", async () => {
    expect(await complete("source", ["fibrpc help "])).toEqual([[...COMMANDS]]);
  });

  test("after call's n (or -), flags and their values still complete", async () => {
    const matches = await complete("source", [
      "fibrpc call 5 --js",
      "fibrpc call - --un",
      "fibrpc call 30 --log-level ",
    ]);
    expect(matches).toEqual([["--json"], ["--unordered"], [...option("log-level").choices!]]);
  });

  // biome-ignore lint/suspicious/noTemplateCurlyInString: zsh's ${fpath[1]}, named in the test's title
  test('saved as "${fpath[1]}/_fibrpc" and autoloaded: the same', async () => {
    const dir = join(binDir, "zsh-functions");
    const { stdout } = await run(["completion", "zsh"]);
    await Bun.write(join(dir, "_fibrpc"), stdout);
    const matches = await complete(dir, ["fibrpc se", "fibrpc call --re", "fibrpc call --reply-queue "]);
    expect(matches).toEqual([
      ["serve"],
      ["--reply-queue", "--retry", "--reply-to"],
      [...option("reply-queue").choices!],
    ]);
  });
});

describe("fish", () => {
  async function complete(lines: string[]): Promise<string[][]> {
    const script = 'fibrpc completion fish | source; for line in $argv; echo "== $line"; complete -C "$line"; end';
    const { code, stdout, stderr } = await shell(["fish", "--no-config", "-c", script, ...lines]);
    expect(stderr).toBe("");
    expect(code).toBe(0);
    return stdout
      .split(/^== .*\n/m)
      .slice(1)
      .map((block) =>
        block
          .split("\n")
          .filter(Boolean)
          .map((l) => l.split("\t")[0]!),
      );
  }

  test("the script parses (fish -n)", async () => {
    const { stdout } = await run(["completion", "fish"]);
    const file = join(binDir, "fibrpc.fish");
    await Bun.write(file, stdout);
    const { code, stderr } = await shell(["fish", "--no-config", "-n", file]);
    expect(stderr).toBe("");
    expect(code).toBe(0);
  });

  test("help completes a command; completion's shell is offered once", async () => {
    const [help, shells, again] = await complete(["fibrpc help ", "fibrpc completion ", "fibrpc completion bash "]);
    expect(help!.sort()).toEqual([...COMMANDS].sort());
    expect(shells!.sort()).toEqual(["bash", "fish", "zsh"]);
    expect(again).toEqual([]);
  });

  test("completes a command, every flag of each command, and fixed sets of values", async () => {
    const lines = [
      "fibrpc se",
      "fibrpc serve --wo",
      ...COMMANDS.map((c) => `fibrpc ${c} -`),
      ...withChoices.map((name) => `fibrpc ${commandTaking(name)} --${name} `),
    ];
    const replies = await complete(lines);
    expect(replies[0]).toEqual(["serve"]);
    expect(replies[1]).toEqual(["--workers"]);
    COMMANDS.forEach((command, i) => {
      expect(replies[2 + i], command).toEqual(expect.arrayContaining([...flagsOf(command), "--help"]));
    });
    withChoices.forEach((name, i) => {
      expect(replies[2 + COMMANDS.length + i]!.sort(), name).toEqual([...option(name).choices!].sort());
    });
  });
});
