/**
 * commands/_help.ts: colour only where it belongs, every line within the width, and pages built
 * from the tables (options from options.ts, exit codes from errors.ts), with examples.
 */
import { describe, expect, test } from "bun:test";
import { defineCommand } from "citty";
import bench from "../../src/commands/bench.ts";
import call from "../../src/commands/call.ts";
import completion from "../../src/commands/completion.ts";
import health from "../../src/commands/health.ts";
import serve from "../../src/commands/serve.ts";
import {
  EXAMPLES,
  helpStyle,
  helpText,
  MAX_WIDTH,
  MIN_WIDTH,
  wrap,
  wrapCommand,
  type HelpStyle,
} from "../../src/commands/_help.ts";
import { commandLineProblem } from "../../src/commands/_run.ts";
import { EXIT_CODES } from "../../src/errors.ts";
import { COMMAND_OPTIONS, COMMANDS, helpOf, OPTIONS, shortOf, type OptionName } from "../../src/options.ts";
import { closest, editDistance } from "../../src/suggest.ts";
import { optionsOf, sectionOf, stripAnsi } from "./help-page.ts";

const main = defineCommand({
  meta: { name: "fibrpc", description: "Fibonacci RPC over RabbitMQ" },
  subCommands: { serve, call, bench, health, completion },
});
const PAGES = ["fibrpc", ...COMMANDS] as const;
const page = (name: (typeof PAGES)[number], style: HelpStyle) =>
  helpText(main, name === "fibrpc" ? [] : [name, "--help"], style);

describe("helpStyle: colour and width", () => {
  const cases: {
    name: string;
    out: { isTTY?: boolean; columns?: number };
    env: Record<string, string>;
    color: boolean;
    width: number;
  }[] = [
    { name: "a pipe", out: {}, env: {}, color: false, width: 80 },
    { name: "a terminal", out: { isTTY: true, columns: 90 }, env: {}, color: true, width: 90 },
    {
      name: "a wide terminal: at most MAX_WIDTH",
      out: { isTTY: true, columns: 132 },
      env: {},
      color: true,
      width: MAX_WIDTH,
    },
    {
      name: "a terminal, NO_COLOR=1",
      out: { isTTY: true, columns: 100 },
      env: { NO_COLOR: "1" },
      color: false,
      width: 100,
    },
    {
      name: "a terminal, NO_COLOR empty",
      out: { isTTY: true, columns: 100 },
      env: { NO_COLOR: "" },
      color: false,
      width: 100,
    },
    {
      name: "a terminal, TERM=dumb",
      out: { isTTY: true, columns: 100 },
      env: { TERM: "dumb" },
      color: false,
      width: 100,
    },
    { name: "a pipe, FORCE_COLOR=1", out: {}, env: { FORCE_COLOR: "1" }, color: true, width: 80 },
    { name: "a pipe, FORCE_COLOR=0", out: {}, env: { FORCE_COLOR: "0" }, color: false, width: 80 },
    {
      name: "a pipe, FORCE_COLOR set empty (on, as Node.js reads it)",
      out: {},
      env: { FORCE_COLOR: "" },
      color: true,
      width: 80,
    },
    {
      name: "NO_COLOR wins over FORCE_COLOR",
      out: {},
      env: { FORCE_COLOR: "1", NO_COLOR: "" },
      color: false,
      width: 80,
    },
    {
      name: "a terminal without a size (a pty nobody sized)",
      out: { isTTY: true, columns: 0 },
      env: {},
      color: true,
      width: 80,
    },
    { name: "COLUMNS on a pipe", out: {}, env: { COLUMNS: "60" }, color: false, width: 60 },
    {
      name: "COLUMNS over the terminal's",
      out: { isTTY: true, columns: 200 },
      env: { COLUMNS: "90" },
      color: true,
      width: 90,
    },
    { name: "COLUMNS=100000: at most MAX_WIDTH", out: {}, env: { COLUMNS: "100000" }, color: false, width: MAX_WIDTH },
    {
      name: "COLUMNS narrower than a wide terminal",
      out: { isTTY: true, columns: 300 },
      env: { COLUMNS: "60" },
      color: true,
      width: 60,
    },
    { name: "COLUMNS not a number", out: {}, env: { COLUMNS: "wide" }, color: false, width: 80 },
    { name: "COLUMNS below the minimum", out: {}, env: { COLUMNS: "12" }, color: false, width: MIN_WIDTH },
  ];
  for (const c of cases) {
    test(c.name, () => expect(helpStyle(c.out, c.env)).toEqual({ color: c.color, width: c.width }));
  }
});

describe("wrap", () => {
  test("breaks at spaces, with a hanging indent", () => {
    expect(wrap("aaa bbb ccc ddd", 10, 0, 2)).toEqual(["aaa bbb", "  ccc ddd"]);
  });
  test("cuts a word wider than the line, after a / : @ if it has one", () => {
    expect(wrap("amqp://user:password@host:port/vhost", 20, 2)).toEqual([
      "  amqp://user:",
      "  password@host:",
      "  port/vhost",
    ]);
    expect(wrap("x".repeat(25), 10, 0)).toEqual(["x".repeat(10), "x".repeat(10), "x".repeat(5)]);
  });
});

describe("wrapCommand: example commands that still run when pasted", () => {
  test("breaks between words, each line but the last ending in a line continuation", () => {
    expect(wrapCommand("fibrpc serve --queue-type quorum --url amqp://rabbit1,amqp://rabbit2", 40, 2, 6)).toEqual([
      "  fibrpc serve --queue-type quorum \\",
      "      --url \\",
      "      amqp://rabbit1,amqp://rabbit2",
    ]);
    expect(wrapCommand("fibrpc call 30", 40, 2, 6)).toEqual(["  fibrpc call 30"]);
  });
  test("never breaks inside quotes", () => {
    expect(wrapCommand("echo 'source <(fibrpc completion bash)' >> ~/.bashrc", 40, 2, 6)).toEqual([
      "  echo \\",
      "    'source <(fibrpc completion bash)' \\",
      "      >> ~/.bashrc",
    ]);
  });
  test("a word too wide for the hanging indent starts nearer the margin; one too wide for any line stays whole", () => {
    expect(wrapCommand("fibrpc completion fish > ~/.config/fish/completions/fibrpc.fish", 40, 2, 6)).toEqual([
      "  fibrpc completion fish > \\",
      "  ~/.config/fish/completions/fibrpc.fish",
    ]);
    expect(wrapCommand(`cat ${"x".repeat(50)}`, 40, 2, 6)).toEqual(["  cat \\", `  ${"x".repeat(50)}`]);
  });
});

describe("every page, plain and coloured, at several widths", () => {
  for (const name of PAGES) {
    for (const width of [MIN_WIDTH, 60, 80, 120]) {
      test(`${name} at ${width} columns`, async () => {
        const plain = await page(name, { color: false, width });
        const colour = await page(name, { color: true, width });
        expect(plain).not.toContain("\u001b");
        expect(colour).toContain("\u001b[");
        // Colour adds escape codes and nothing else: the same text, laid out the same.
        expect(stripAnsi(colour)).toBe(plain);
        for (const line of plain.split("\n")) expect(line.length, line).toBeLessThanOrEqual(width);
        expect(
          plain.split("\n").some((line) => line.length > width - 15),
          "uses the width",
        ).toBe(true);
        expect(plain).not.toMatch(/ +$/m);
      });
    }
  }
});

describe("what a page says", () => {
  for (const command of COMMANDS) {
    test(`${command}: every option from the table, with its short flag, value hint, variable and default`, async () => {
      const options = optionsOf(await page(command, { color: false, width: 120 }));
      expect(options.map((o) => o.flag)).toEqual([...COMMAND_OPTIONS[command], "help"]);
      for (const o of options.slice(0, -1)) {
        const name = o.flag as OptionName;
        expect(o.description).toBe(helpOf(name, command));
        expect(o.short === undefined ? undefined : `-${o.short}`).toBe(shortOf(name));
        expect(o.hint).toBe(
          OPTIONS[name].kind === "switch" ? undefined : (OPTIONS[name] as { valueHint: string }).valueHint,
        );
      }
    });
  }

  for (const name of PAGES) {
    test(`${name} has EXAMPLES, each of its own commands`, async () => {
      const examples = sectionOf(await page(name, { color: false, width: 200 }), "EXAMPLES");
      expect(EXAMPLES[name]!.length).toBeGreaterThan(1);
      for (const example of EXAMPLES[name]!) {
        expect(examples).toContain(`  # ${example.what}`);
        for (const command of example.run) {
          expect(examples).toContain(`  ${command}`);
          if (name !== "fibrpc") expect(command).toContain(`fibrpc ${name}`);
        }
      }
    });
  }

  test("the examples use only flags the command takes", () => {
    for (const command of COMMANDS) {
      for (const example of EXAMPLES[command]!) {
        for (const run of example.run) {
          for (const [flag] of run.matchAll(/(?<=\s)--?[a-z][a-z-]*/g)) {
            const known = (COMMAND_OPTIONS[command] as readonly OptionName[]).some(
              (n) => flag === `--${n}` || flag === shortOf(n),
            );
            expect(known, `${command}: ${flag} in ${run}`).toBe(true);
          }
        }
      }
    }
  });

  test("the root page: commands, every FIBRPC_* variable with its flag, every exit code from EXIT_CODES", async () => {
    const root = await page("fibrpc", { color: false, width: 200 });
    expect(sectionOf(root, "COMMANDS").map((l) => l.trim().split(/\s+/)[0])).toEqual([...COMMANDS]);
    const environment = sectionOf(root, "ENVIRONMENT");
    for (const [name, option] of Object.entries(OPTIONS)) {
      expect(
        environment.some((l) => new RegExp(`^  ${option.env} +--${name} \\(`).test(l)),
        option.env,
      ).toBe(true);
    }
    for (const variable of ["NO_COLOR", "FORCE_COLOR", "COLUMNS"])
      expect(environment.some((l) => l.startsWith(`  ${variable} `))).toBe(true);
    const exitCodes = sectionOf(root, "EXIT CODES");
    expect(exitCodes).toHaveLength(Object.keys(EXIT_CODES).length);
    for (const e of Object.values(EXIT_CODES)) {
      expect(exitCodes, `${e.code}`).toContainEqual(
        expect.stringMatching(new RegExp(`^  ${e.code} +${e.name} +${e.meaning.replace(/[()]/g, "\\$&")}$`)),
      );
    }
  });

  test("a command page points to the root page for exit codes and the environment", async () => {
    expect(await page("call", { color: false, width: 80 })).toContain(
      "Exit codes and environment variables: fibrpc --help",
    );
  });
});

describe("the start of the command line", () => {
  const cases: [string[], string | undefined][] = [
    [["call", "30"], undefined],
    [[], undefined],
    [["--help"], undefined],
    [["-v"], undefined],
    [["servee"], 'unknown command "servee"; did you mean "serve"? see fibrpc --help'],
    [["cal", "30"], 'unknown command "cal"; did you mean "call"? see fibrpc --help'],
    [["hlth"], 'unknown command "hlth"; did you mean "health"? see fibrpc --help'],
    [
      ["frobnicate"],
      'unknown command "frobnicate"; the commands are serve, call, bench, health, completion; see fibrpc --help',
    ],
    [["servee", "--help"], 'unknown command "servee"; did you mean "serve"? see fibrpc --help'],
    [["--verison"], "unknown option --verison; did you mean --version? see fibrpc --help"],
    [
      ["--json", "call", "30"],
      "unknown option --json before the command: options go after it (fibrpc call --json); see fibrpc --help",
    ],
    [["--json", "--help"], undefined],
    [["help"], undefined],
    [["help", "call"], undefined],
    [["help", "cal"], 'unknown command "cal"; did you mean "call"? see fibrpc --help'],
    [
      ["help", "frobnicate"],
      'unknown command "frobnicate"; the commands are serve, call, bench, health, completion; see fibrpc --help',
    ],
    [["hlep"], 'unknown command "hlep"; did you mean "help"? see fibrpc --help'],
    [["help", "--bogus"], "help takes no option (got --bogus); give fibrpc help [command]"],
    [["help", "call", "extra"], "help takes one command, got call extra; give fibrpc help [command]"],
    [["help", "call", "--help"], undefined],
  ];
  for (const [argv, problem] of cases) {
    test(argv.join(" ") || "(nothing)", async () => expect(await commandLineProblem(main, argv)).toBe(problem));
  }
});

describe("closest", () => {
  const commands = ["serve", "call", "bench", "health"];
  const cases: [string, string[], string | undefined][] = [
    ["servee", commands, "serve"],
    ["sevre", commands, "serve"], // swapped neighbours: one edit
    ["CALL", commands, "call"],
    ["hlth", commands, "health"],
    ["benchmark", commands, "bench"], // too far by edits, but it starts with bench
    ["xyz", commands, undefined],
    ["jsn", ["timeout", "json", "no-json"], "json"],
    ["work", ["workers", "prefetch"], "workers"], // the start of exactly one
    ["re", ["retry", "reply-queue"], undefined], // the start of two
  ];
  for (const [word, candidates, expected] of cases) {
    test(`${word} → ${expected}`, () => expect(closest(word, candidates)).toBe(expected));
  }
  test("edit distance", () => {
    expect(editDistance("", "abc")).toBe(3);
    expect(editDistance("kitten", "sitting")).toBe(3);
    expect(editDistance("ab", "ba")).toBe(1);
  });
});
