/**
 * The core never talks to the user: nothing under src/rpc/ imports from src/commands/,
 * src/serve/ or src/config.ts, so that RpcClient and RpcServer stay usable as a library.
 */
import { expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { resolve } from "node:path";

const RPC = resolve(import.meta.dir, "../../src/rpc");
const FORBIDDEN = /^\.\.\/(commands\/|serve\/|config(\.ts)?$)/;

/** Every module specifier of a file: import/export ... from "x", import "x", import("x"). */
function specifiers(source: string): string[] {
  const found: string[] = [];
  for (const m of source.matchAll(/^\s*(?:import|export)\b[^;]*?\bfrom\s*["']([^"']+)["']/gm)) found.push(m[1]!);
  for (const m of source.matchAll(/^\s*import\s*["']([^"']+)["']/gm)) found.push(m[1]!);
  for (const m of source.matchAll(/\bimport\s*\(\s*["']([^"']+)["']\s*\)/g)) found.push(m[1]!);
  return found;
}

test("the check sees imports of every form", () => {
  const sample = 'import { a } from "../config.ts";\nimport type {\n  B,\n} from "../serve/stats.ts";\nexport { c } from "../commands/_hints.ts";\nimport "./x.ts";\nconst d = await import("../serve/faults.ts");';
  expect(specifiers(sample)).toEqual(["../config.ts", "../serve/stats.ts", "../commands/_hints.ts", "./x.ts", "../serve/faults.ts"]);
  expect(specifiers(sample).filter((s) => FORBIDDEN.test(s))).toHaveLength(4);
});

const files = readdirSync(RPC).filter((f) => f.endsWith(".ts"));

test("src/rpc/ has files", () => expect(files.length).toBeGreaterThan(5));

for (const file of files) {
  test(`src/rpc/${file} imports nothing from commands/, serve/ or config`, () => {
    const bad = specifiers(readFileSync(resolve(RPC, file), "utf8")).filter((s) => FORBIDDEN.test(s));
    expect(bad).toEqual([]);
  });
}
