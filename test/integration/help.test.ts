/**
 * --help of the compiled binary, run from `/` as a user would: plain text on a pipe and with
 * NO_COLOR (set, even empty) on a terminal (a pty from script(1)), coloured on a terminal
 * otherwise; wrapped to the width; EXAMPLES on every command's page; the exit codes and
 * FIBRPC_* variables on the root's. And short flags end to end against a running serve.
 */
import { describe, expect, test } from "bun:test";
import { EXIT_CODES } from "../../src/errors.ts";
import { OPTIONS } from "../../src/options.ts";
import { BIN, cleanupAfterFile, run, startServe, tracked, uniqueQueue, URL } from "../helpers.ts";
import { EXAMPLES } from "../../src/commands/_help.ts";
import { sectionOf } from "../unit/help-page.ts";

cleanupAfterFile();

const ESC = "\u001b";

/** The environment of a user's shell: no FIBRPC_*, and none of the variables help reads unless given. */
function userEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (
      v !== undefined &&
      !k.startsWith("FIBRPC_") &&
      !["NO_COLOR", "FORCE_COLOR", "COLUMNS", "TERM", "CI", "TEST"].includes(k)
    )
      env[k] = v;
  }
  return { ...env, TERM: "xterm-256color", ...extra };
}

/** `sh -c script` from `/`, to completion (bounded), its stdout. */
async function shell(script: string, env: Record<string, string>): Promise<{ code: number; stdout: string }> {
  const proc = tracked(
    Bun.spawn(["sh", "-c", script], { cwd: "/", env, stdout: "pipe", stderr: "pipe", stdin: "ignore" }),
  );
  const timer = setTimeout(() => proc.kill("SIGKILL"), 15_000);
  const [stdout, code] = await Promise.all([new Response(proc.stdout).text(), proc.exited]);
  clearTimeout(timer);
  return { code, stdout };
}

/** `fibrpc ARGS` on a terminal: a pty made by script(1), sized `columns` wide if given. */
function onTerminal(args: string, env: Record<string, string>, columns?: number) {
  const size = columns === undefined ? "" : `stty cols ${columns} rows 50; `;
  return shell(`script -qec '${size}${BIN} ${args}' /dev/null`, env);
}

/** `text` as one shell word, single-quoted. */
const quote = (text: string) => `'${text.replace(/'/g, `'\\''`)}'`;

const lines = (text: string) =>
  text
    .replace(/\r/g, "")
    .replace(/\u001b\[[0-9;]*m/g, "")
    .split("\n");

describe("plain text unless on a terminal without NO_COLOR", () => {
  test("fibrpc call --help | cat: no escape byte, 80 columns", async () => {
    const { code, stdout } = await shell(`${BIN} call --help | cat`, userEnv());
    expect(code).toBe(0);
    expect(stdout).toContain("USAGE");
    expect(stdout).not.toContain(ESC);
    expect(Math.max(...lines(stdout).map((l) => l.length))).toBeLessThanOrEqual(80);
    expect(Math.max(...lines(stdout).map((l) => l.length))).toBeGreaterThan(70);
  });

  test("on a terminal: coloured (the check above can see colour when there is some)", async () => {
    const { code, stdout } = await onTerminal("call --help", userEnv());
    expect(code).toBe(0);
    expect(stdout).toContain(`${ESC}[1mUSAGE`);
  });

  for (const value of ["", "1", "0"]) {
    test(`on a terminal with NO_COLOR=${JSON.stringify(value)}: plain`, async () => {
      const { code, stdout } = await onTerminal("call --help", userEnv({ NO_COLOR: value }));
      expect(code).toBe(0);
      expect(stdout).toContain("USAGE");
      expect(stdout).not.toContain(ESC);
    });
  }

  test("FORCE_COLOR colours on a pipe; NO_COLOR still wins", async () => {
    expect((await shell(`${BIN} --help | cat`, userEnv({ FORCE_COLOR: "1" }))).stdout).toContain(ESC);
    expect((await shell(`${BIN} --help | cat`, userEnv({ FORCE_COLOR: "1", NO_COLOR: "" }))).stdout).not.toContain(ESC);
  });
});

describe("wrapped to the width", () => {
  for (const [columns, width] of [
    [60, 60],
    [90, 90],
    [150, 100],
  ] as const) {
    test(`a terminal ${columns} columns wide: wrapped at ${width}`, async () => {
      const { stdout } = await onTerminal("bench --help", userEnv({ NO_COLOR: "1" }), columns);
      const widths = lines(stdout).map((l) => l.length);
      expect(Math.max(...widths)).toBeLessThanOrEqual(width);
      expect(Math.max(...widths)).toBeGreaterThan(width - 15);
    });
  }

  test("COLUMNS=100000: no line wider than 100, on every page", async () => {
    for (const command of ["", "serve", "call", "bench", "health", "completion"]) {
      const { code, stdout } = await run([...(command ? [command] : []), "--help"], { COLUMNS: "100000" });
      expect(code).toBe(0);
      const widths = stdout.split("\n").map((l) => l.length);
      expect(Math.max(...widths), command).toBeLessThanOrEqual(100);
      expect(Math.max(...widths), command).toBeGreaterThan(85);
    }
  });

  for (const columns of [40, 60, 80]) {
    test(`COLUMNS=${columns}: every example, pasted into bash, is the example as written`, async () => {
      for (const page of ["fibrpc", "serve", "call", "bench", "health", "completion"] as const) {
        const { code, stdout } = await run([...(page === "fibrpc" ? [] : [page]), "--help"], {
          COLUMNS: String(columns),
        });
        expect(code).toBe(0);
        // The command lines of EXAMPLES, each with its continuation lines.
        const commands: string[][] = [];
        let open = false;
        for (const line of sectionOf(stdout, "EXAMPLES")) {
          if (line === "" || line.startsWith("  # ")) continue;
          if (open) commands.at(-1)!.push(line);
          else commands.push([line]);
          open = line.endsWith(" \\");
        }
        expect(open, page).toBe(false);
        expect(
          commands.map((c) => c.map((l) => l.trimStart().replace(/ \\$/, "")).join(" ")),
          page,
        ).toEqual(EXAMPLES[page]!.flatMap((e) => e.run));
        for (const command of commands) {
          for (const line of command) expect(line.length, line).toBeLessThanOrEqual(columns);
          // bash accepts the lines as pasted, and parses them into the same command as the
          // example on one line (bash prints a function's body the same for the same parse).
          const pasted = command.join("\n");
          const unwrapped = command.map((l) => l.trimStart().replace(/ \\$/, "")).join(" ");
          expect((await shell(`bash -n -c ${quote(pasted)}`, userEnv())).code, pasted).toBe(0);
          const parsed = async (text: string) =>
            (await shell(`bash -c ${quote(`f() {\n${text}\n}; declare -f f`)}`, userEnv())).stdout;
          expect(await parsed(pasted), pasted).toBe(await parsed(unwrapped));
        }
      }
    });
  }

  for (const command of ["", "serve", "call", "bench", "health"]) {
    test(`fibrpc ${command} --help with COLUMNS=60, and 80 on a pipe`, async () => {
      for (const [env, width] of [
        [{ COLUMNS: "60" }, 60],
        [{}, 80],
      ] as const) {
        const { code, stdout } = await run([...(command ? [command] : []), "--help"], env);
        expect(code).toBe(0);
        for (const line of stdout.split("\n")) expect(line.length, line).toBeLessThanOrEqual(width);
      }
    });
  }
});

describe("what help says", () => {
  test("every command the root lists has EXAMPLES; the root lists the FIBRPC_* variables and the exit codes", async () => {
    const root = await run(["--help"]);
    expect(root.code).toBe(0);
    const commands = sectionOf(root.stdout, "COMMANDS")
      .filter((l) => /^ {2}\S/.test(l))
      .map((l) => l.trim().split(/\s+/)[0]!);
    expect(commands).toEqual(expect.arrayContaining(["serve", "call", "bench", "health"]));
    expect(sectionOf(root.stdout, "EXAMPLES").length).toBeGreaterThan(0);
    for (const command of commands) {
      const { code, stdout } = await run([command, "--help"]);
      expect(code).toBe(0);
      expect(
        sectionOf(stdout, "EXAMPLES").filter((l) => l.includes(`fibrpc ${command}`)).length,
        command,
      ).toBeGreaterThan(0);
    }
    const environment = sectionOf(root.stdout, "ENVIRONMENT").join("\n");
    for (const option of Object.values(OPTIONS)) expect(environment).toContain(`  ${option.env} `);
    expect(environment).toContain("NO_COLOR");
    const exitCodes = sectionOf(root.stdout, "EXIT CODES").join("\n");
    for (const e of Object.values(EXIT_CODES)) expect(exitCodes).toMatch(new RegExp(`^  ${e.code} +${e.name} `, "m"));
  });

  test("fibrpc help is fibrpc --help; fibrpc help <command> is fibrpc <command> --help; exit 0", async () => {
    const root = await run(["--help"]);
    expect(await run(["help"])).toMatchObject({ code: 0, stdout: root.stdout, stderr: "" });
    expect(root.stdout).toContain("fibrpc help <command>");
    for (const command of ["serve", "call", "bench", "health", "completion"]) {
      const page = await run([command, "--help"]);
      expect(await run(["help", command]), command).toMatchObject({ code: 0, stdout: page.stdout, stderr: "" });
    }
    const typo = await run(["help", "cal"]);
    expect(typo.code).toBe(64);
    expect(typo.stderr.trim()).toBe('fibrpc: unknown command "cal"; did you mean "call"? see fibrpc --help');
  });

  test("fibrpc alone prints the root help, exit 0", async () => {
    const { code, stdout } = await run([]);
    expect(code).toBe(0);
    expect(stdout).toContain("EXIT CODES");
  });

  test("a reader that left early is no error: exit 0, nothing on stderr", async () => {
    // stdout is a pipe whose reading end is already closed, so that the write surely fails (EPIPE).
    const script = `import os, subprocess, sys\nr, w = os.pipe()\nos.close(r)\np = subprocess.run([sys.argv[1], "bench", "--help"], stdout=w, stderr=subprocess.PIPE, timeout=15)\nprint(p.returncode, repr(p.stderr.decode()))`;
    const { stdout } = await shell(`python3 -c '${script}' ${BIN}`, userEnv());
    expect(stdout.trim()).toBe("0 ''");
  });

  test("short flags are in --help", async () => {
    expect((await run(["serve", "--help"])).stdout).toContain("  -w, --workers <count>");
    const bench = (await run(["bench", "--help"])).stdout;
    for (const label of [
      "-c, --concurrency <count>",
      "-r, --requests <count>",
      "-n, --n <n|min-max>",
      "-t, --timeout <duration>",
      "-j, --json",
    ])
      expect(bench).toContain(`  ${label}`);
  });
});

describe("short flags end to end", () => {
  test("serve -w 1; call -t 2s -j 10; bench -r 200 -n 10 -c 4 -j", async () => {
    const queue = uniqueQueue();
    const server = await startServe(["-w", "1", "--queue", queue]);
    expect(server.log).toContain("with 1 worker,");
    const call = await run(["call", "--queue", queue, "-t", "2s", "-j", "10"]);
    expect(call.code, call.stderr).toBe(0);
    expect(JSON.parse(call.stdout)).toMatchObject({ n: 10, result: "55" });
    const bench = await run(["bench", "--queue", queue, "-r", "200", "-n", "10", "-c", "4", "-j"]);
    expect(bench.code, bench.stderr).toBe(0);
    expect(JSON.parse(bench.stdout)).toMatchObject({ calls: 200, ok: 200, errors: {} });
    expect(await server.stop()).toBe(0);
  });

  test("call -t bounds the call: 300ms against a queue nobody serves, with --wait-for-server", async () => {
    const queue = uniqueQueue();
    // A twin started first with --timeout 20s (less than the default 30s) must still be waiting
    // when this call exits: -t was applied, whatever this machine's speed.
    const env: Record<string, string> = {};
    for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("FIBRPC_") && v !== undefined) env[k] = v;
    const twin = tracked(
      Bun.spawn([BIN, "call", "--url", URL, "--queue", queue, "--wait-for-server", "--timeout", "20s", "5"], {
        cwd: "/",
        env,
        stdout: "ignore",
        stderr: "ignore",
        stdin: "ignore",
      }),
    );
    const { code, stderr } = await run(["call", "--queue", queue, "--wait-for-server", "-t", "300ms", "5"]);
    expect(code, stderr).toBe(75);
    expect(stderr).toContain(`no server started consuming queue "${queue}"`);
    expect(twin.exitCode).toBeNull();
    twin.kill();
  });
});
