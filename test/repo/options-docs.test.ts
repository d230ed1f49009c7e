/**
 * The README's options table and the container image's defaults agree with the option table
 * (src/options.ts), row by row: flag, env, commands, default.
 */
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { MAX_WIDTH } from "../../src/commands/_help.ts";
import { EXIT_CODES } from "../../src/errors.ts";
import { COMMAND_OPTIONS, COMMANDS, defaultShown, OPTIONS, shortOf, type OptionName } from "../../src/options.ts";

const ROOT = resolve(import.meta.dir, "../..");
const NAMES = Object.keys(OPTIONS) as OptionName[];
const commandsOf = (name: OptionName) =>
  COMMANDS.filter((c) => (COMMAND_OPTIONS[c] as readonly string[]).includes(name));

describe("the README's options table is the table", () => {
  const readme = readFileSync(resolve(ROOT, "README.md"), "utf8");
  const section = readme.slice(readme.indexOf("### Options"), readme.indexOf("### Broker URLs"));
  const rows = section
    .split("\n")
    .filter((line) => /^\| `-/.test(line))
    .map((line) => line.split(" | ").map((cell) => cell.replace(/^\| /, "").trim()));

  // The first cell: the short flag if there is one, then the flag ("`-w`, `--workers`").
  const cell = (name: OptionName) => `${shortOf(name) === undefined ? "" : `\`${shortOf(name)}\`, `}\`--${name}\``;

  test("one row per option, in no other order than the table's, short flags included", () => {
    expect(rows.map((r) => r[0])).toEqual(NAMES.map(cell));
    expect(rows.filter((r) => r[0]!.startsWith("`-") && !r[0]!.startsWith("`--")).length).toBeGreaterThanOrEqual(5);
  });

  for (const name of NAMES) {
    test(`--${name}: env, commands, default`, () => {
      const row = rows.find((r) => r[0] === cell(name));
      expect(row, `README row for --${name}`).toBeDefined();
      const option = OPTIONS[name];
      expect(row![1]).toBe(`\`${option.env}\``);
      expect(row![2]).toBe(commandsOf(name).join(", "));
      const shown = defaultShown(name)!;
      const literal = "defaultText" in option ? shown : `\`${shown}\``;
      const image = "imageDefault" in option ? ` (\`${option.imageDefault}\` in the image)` : "";
      expect(row![3]).toBe(`${literal}${image}`);
    });
  }
});

describe("the README's exit codes are the table's (src/errors.ts EXIT_CODES, which --help prints)", () => {
  test("same codes, same names, same order", () => {
    const readme = readFileSync(resolve(ROOT, "README.md"), "utf8");
    const section = readme.slice(readme.indexOf("### Exit codes"), readme.indexOf("## Defaults and trade-offs"));
    const rows = [...section.matchAll(/^\| (\d+) \| (\S+) \|/gm)].map((m) => `${m[1]} ${m[2]}`);
    expect(rows).toEqual(Object.values(EXIT_CODES).map((e) => `${e.code} ${e.name}`));
  });
});

describe("the README's Help paragraph", () => {
  test("says how wide help gets at most (MAX_WIDTH)", () => {
    const readme = readFileSync(resolve(ROOT, "README.md"), "utf8");
    const paragraph = readme.slice(readme.indexOf("**Help.**"), readme.indexOf("### Options")).replace(/\s+/g, " ");
    expect(paragraph).toContain(`at most ${MAX_WIDTH} columns`);
  });
});

describe("the image", () => {
  test("the container image's defaults are the Dockerfile's", () => {
    const dockerfile = readFileSync(resolve(ROOT, "Dockerfile"), "utf8");
    // ENV instructions, with their continuation lines (comments elsewhere may show examples).
    const instructions = [...dockerfile.matchAll(/^ENV\s((?:.*\\\n)*.*)$/gm)].map((m) => m[1]!).join(" ");
    const env = Object.fromEntries([...instructions.matchAll(/\b(FIBRPC_[A-Z_]+)=(\S+)/g)].map((m) => [m[1]!, m[2]!]));
    expect(Object.keys(env).length).toBeGreaterThan(0);
    for (const name of NAMES) {
      const option = OPTIONS[name];
      expect(env[option.env], option.env).toBe("imageDefault" in option ? option.imageDefault : undefined);
    }
  });
});
