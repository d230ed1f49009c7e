/**
 * Layers and hidden inputs, checked on the source:
 * - the core never talks to the user: nothing under src/rpc/ imports from src/commands/,
 *   src/serve/ or src/config.ts, so that RpcClient and RpcServer stay usable as a library;
 * - nothing under src/serve/ imports from src/commands/ (the CLI sits on top of both);
 * - process.env is read only where options are resolved and in the test build's one seam;
 * - amqplib's private files (its lib/) are imported by one module only.
 */
import { expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { relative, resolve } from "node:path";

const SRC = resolve(import.meta.dir, "../../src");
const RPC = resolve(SRC, "rpc");
const SERVE = resolve(SRC, "serve");
const FORBIDDEN = /^\.\.\/(commands\/|serve\/|config(\.ts)?$)/;
const COMMANDS = /^\.\.\/commands\//;

/** Every module specifier of a file: import/export ... from "x", import "x", import("x"). */
function specifiers(source: string): string[] {
  const found: string[] = [];
  for (const m of source.matchAll(/^\s*(?:import|export)\b[^;]*?\bfrom\s*["']([^"']+)["']/gm)) found.push(m[1]!);
  for (const m of source.matchAll(/^\s*import\s*["']([^"']+)["']/gm)) found.push(m[1]!);
  for (const m of source.matchAll(/\b(?:import|require)\s*\(\s*["']([^"']+)["']\s*\)/g)) found.push(m[1]!);
  return found;
}

test("the check sees imports of every form", () => {
  const sample = [
    'import { a } from "../config.ts";',
    'import type {\n  B,\n} from "../serve/stats.ts";',
    'export { c } from "../commands/_hints.ts";',
    'import "./x.ts";',
    'const d = await import("../serve/faults.ts");',
    'const e = require("../commands/y.ts");',
  ].join("\n");
  const all = ["../config.ts", "../serve/stats.ts", "../commands/_hints.ts", "./x.ts", "../serve/faults.ts"];
  all.push("../commands/y.ts");
  expect(specifiers(sample)).toEqual(all);
  expect(specifiers(sample).filter((s) => FORBIDDEN.test(s))).toHaveLength(5);
  expect(specifiers(sample).filter((s) => COMMANDS.test(s))).toHaveLength(2);
});

const tsFiles = (dir: string): string[] =>
  readdirSync(dir, { recursive: true, encoding: "utf8" })
    .filter((f) => f.endsWith(".ts"))
    .map((f) => resolve(dir, f));
const files = readdirSync(RPC).filter((f) => f.endsWith(".ts"));

test("src/rpc/ has files", () => expect(files.length).toBeGreaterThan(5));

for (const file of files) {
  test(`src/rpc/${file} imports nothing from commands/, serve/ or config`, () => {
    const bad = specifiers(readFileSync(resolve(RPC, file), "utf8")).filter((s) => FORBIDDEN.test(s));
    expect(bad).toEqual([]);
  });
}

test("src/serve/ imports nothing from commands/", () => {
  const serve = tsFiles(SERVE);
  expect(serve.length).toBeGreaterThan(5);
  const importsOf = (file: string) => specifiers(readFileSync(file, "utf8")).filter((s) => COMMANDS.test(s));
  const bad = serve.flatMap((file) => importsOf(file).map((s) => `${relative(SRC, file)}: ${s}`));
  expect(bad).toEqual([]);
});

/**
 * Where process.env may be read: where options are resolved (the command runner and the CLI's
 * own modules, which hand the environment to the option resolution), the test build's seam, and
 * compile-time constants (scripts/build.ts defines FIBRPC_COMMIT).
 */
const ENV_READERS = new Set([
  "commands/_run.ts",
  "commands/_help.ts",
  // The log level, for a crash before the command line is read.
  "report.ts",
  "serve/test-build.ts",
  "version.ts",
]);
const isEnvReader = (path: string) => ENV_READERS.has(path) || /^options[^/]*\.ts$/.test(path);
const COMMENT = /^\s*(\/\/|\*|\/\*)/;

test("process.env is read only where options are resolved and in the test build's seam", () => {
  const readers = tsFiles(SRC)
    .map((file) => ({ path: relative(SRC, file), source: readFileSync(file, "utf8") }))
    // Code, not comments: a comment may name the variable it explains.
    .filter(({ source }) => source.split("\n").some((line) => /\bprocess\.env\b/.test(line) && !COMMENT.test(line)))
    .map(({ path }) => path);
  expect(readers.filter((path) => !isEnvReader(path))).toEqual([]);
});

test("only rpc/amqplib-internals.ts imports amqplib's private files", () => {
  const importers = tsFiles(SRC)
    .filter((file) => specifiers(readFileSync(file, "utf8")).some((s) => s.includes("node_modules/amqplib/")))
    .map((file) => relative(SRC, file));
  expect(importers).toEqual(["rpc/amqplib-internals.ts"]);
});

/**
 * Tracing off loads no OpenTelemetry module, nor carries its code in the bundle a run starts from:
 * only tracing/sdk.ts imports @opentelemetry/*; no module imports sdk.ts but for its types
 * (tracing/start.ts loads it by its URL, paths.ts SDK_URL, a specifier the bundler does not
 * follow); and the build compiles it as an entrypoint of its own.
 */
test("only tracing/sdk.ts imports OpenTelemetry, and it is loaded by its URL only", () => {
  const sources = tsFiles(SRC).map((file) => ({ path: relative(SRC, file), source: readFileSync(file, "utf8") }));
  const otel = sources.filter(({ source }) => specifiers(source).some((s) => s.startsWith("@opentelemetry/")));
  expect(otel.map(({ path }) => path)).toEqual(["tracing/sdk.ts"]);
  const valueImports = (source: string) =>
    specifiers(source.replace(/^\s*import\s+type\b[^;]*;/gm, "")).filter((s) => /(^|\/)sdk\.ts$/.test(s));
  expect(sources.filter(({ source }) => valueImports(source).length > 0).map(({ path }) => path)).toEqual([]);
  expect(readFileSync(resolve(SRC, "paths.ts"), "utf8")).toContain('new URL("./tracing/sdk.ts", import.meta.url)');
  expect(readFileSync(resolve(SRC, "tracing/start.ts"), "utf8")).toMatch(/await import\(sdk\)/);
  expect(readFileSync(resolve(SRC, "../scripts/build.ts"), "utf8")).toContain('"src/tracing/sdk.ts",');
});

/**
 * No state at module level (issue 20): a module's top level declares no `let` or `var`, and no
 * Map, WeakMap, Set or WeakSet but a constant set typed ReadonlySet. What a run needs is passed
 * down or held by an instance. (Frozen tables and `as const` arrays are the other constants.)
 */
const MUTABLE_AT_TOP = [
  /^(?:export\s+)?(?:let|var)\s/,
  // A collection, unless typed (or cast) read-only; a type may hold "=>" (Map<string, () => void>).
  /^(?:export\s+)?const\s+[\w$]+\s*(?::(?!\s*Readonly(?:Set|Map)<)(?:[^=]|=>)+)?=\s*new\s+(?:Weak)?(?:Map|Set)\b(?!.*\bas\s+Readonly(?:Set|Map)<)/,
  // A class's static field other than a readonly value: state shared by every instance.
  /^\s+(?:(?:private|public|protected)\s+)?static\s+(?!async\b|readonly\s+[#\w$]+\s*(?::[^=]+)?=(?!\s*new\s+(?:Weak)?(?:Map|Set)\b))(?:readonly\s+)?[#\w$]+\s*[:=]/,
];
const mutableAtTop = (source: string): string[] =>
  source.split("\n").filter((line) => MUTABLE_AT_TOP.some((pattern) => pattern.test(line)));

test("the check sees module-level state of every form, and not constants", () => {
  const state = [
    "let count = 0;",
    "export var seen = [];",
    "const cache = new Map<string, number>();",
    "const watched = new WeakMap<object, number>();",
    "export const names = new Set(['a']);",
    "const typed: Set<string> = new Set();",
    "const handlers: Map<string, () => void> = new Map();",
    "  static cache = new Map<string, number>();",
    "  private static count = 0;",
    "  static readonly seen = new Set<string>();",
  ];
  const constant = [
    "const NAMES: ReadonlySet<string> = new Set(['a']);",
    "const TABLE: ReadonlyMap<string, number> = new Map();",
    "  let local = 0;",
    "  readonly #watched = new WeakMap<object, number>();",
    "const LIMIT = 10;",
    "const CAST = new Set(['a']) as ReadonlySet<string>;",
    "  static readonly LIMIT = 10;",
    "  static async create(x: number): Promise<void> {",
    "  static connect(options: Options): Client {",
  ];
  expect(mutableAtTop([...state, ...constant].join("\n"))).toEqual(state);
});

test("no module in src/ keeps state at its top level", () => {
  const found = tsFiles(SRC).flatMap((file) =>
    mutableAtTop(readFileSync(file, "utf8")).map((line) => `${relative(SRC, file)}: ${line}`),
  );
  expect(found).toEqual([]);
});
