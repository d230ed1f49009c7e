/**
 * The repository's formatter and linter (biome.jsonc) find nothing, and no line of src/ is longer
 * than 120 characters — the formatter wraps code, but not the strings and comments this checks.
 * `bun run format` fixes what the formatter can; the rest is by hand.
 */
import { expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";

const ROOT = resolve(import.meta.dir, "../..");
const MAX_LINE = 120;

test("biome: every file formatted, no lint finding (warnings included)", () => {
  const biome = Bun.spawnSync(
    [resolve(ROOT, "node_modules/.bin/biome"), "ci", "--error-on-warnings", "--colors=off", "."],
    { cwd: ROOT, stdout: "pipe", stderr: "pipe" },
  );
  const output = `${biome.stdout.toString()}${biome.stderr.toString()}`;
  expect(biome.exitCode, output.slice(0, 4000)).toBe(0);
});

test(`no line of src/ is longer than ${MAX_LINE} characters`, () => {
  const files = Bun.spawnSync(["git", "ls-files", "src"], { cwd: ROOT }).stdout.toString().trim().split("\n");
  expect(files.length).toBeGreaterThan(10);
  const long: string[] = [];
  for (const file of files.filter((f) => f.endsWith(".ts"))) {
    readFileSync(resolve(ROOT, file), "utf8")
      .split("\n")
      .forEach((line, i) => {
        if (line.length > MAX_LINE) long.push(`${file}:${i + 1} (${line.length})`);
      });
  }
  expect(long).toEqual([]);
});
