/**
 * commands/_run.ts: an unexpected error, caught or not, is one masked line and exit 70; the stack
 * only at --log-level debug. Each case runs in a bun process of its own (the handlers exit it).
 */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

const dir = mkdtempSync(join(tmpdir(), "fibrpc-run-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const RUN = resolve(import.meta.dir, "../../src/commands/_run.ts");
const REPORT = resolve(import.meta.dir, "../../src/report.ts");
const MASK = resolve(import.meta.dir, "../../src/mask.ts");
const URL_MODULE = resolve(import.meta.dir, "../../src/broker-url.ts");

const script = `
import { runAction } from ${JSON.stringify(RUN)};
import { installCrashHandlers } from ${JSON.stringify(REPORT)};
import { Masker } from ${JSON.stringify(MASK)};
import { parseBrokerUrl } from ${JSON.stringify(URL_MODULE)};
const kind = process.argv[2];
// serve --log-format json installs them so: the crash is a JSON log entry.
installCrashHandlers(undefined, new Masker([parseBrokerUrl("amqp://u:pa%20ss-w0rd@h")]), kind === "throw-json");
if (kind === "throw" || kind === "throw-json") setTimeout(() => { throw new TypeError("boom with pa ss-w0rd\\nand a second line"); }, 1);
if (kind === "reject") Promise.reject(new Error("rejected at amqp://x:y0ur-s3cret@h"));
if (kind === "action") runAction("call", process.argv.slice(3), async () => { throw new RangeError("out of range"); });
`;
const file = join(dir, "crash.ts");
writeFileSync(file, script);

async function crash(kind: string, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const proc = Bun.spawn([process.execPath, file, kind, ...args], {
    stdout: "pipe",
    stderr: "pipe",
    env: { ...process.env, FIBRPC_LOG_LEVEL: "" },
  });
  const timer = setTimeout(() => proc.kill("SIGKILL"), 20_000);
  const [stdout, stderr, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  clearTimeout(timer);
  return { code, stdout, stderr };
}

describe("unexpected errors", () => {
  const cases = [
    {
      kind: "throw",
      line: "fibrpc: internal error: TypeError: boom with *** and a second line (rerun with --log-level debug for the stack trace; please report it)",
    },
    {
      kind: "reject",
      line: "fibrpc: internal error: rejected at amqp://x:***@h (rerun with --log-level debug for the stack trace; please report it)",
    },
    {
      kind: "action",
      line: "fibrpc: internal error: RangeError: out of range (rerun with --log-level debug for the stack trace; please report it)",
    },
  ];
  for (const c of cases) {
    test(`${c.kind}: one line, masked, exit 70`, async () => {
      const { code, stdout, stderr } = await crash(c.kind);
      expect(code).toBe(70);
      expect(stdout).toBe("");
      expect(stderr).toBe(`${c.line}\n`);
    });
    test(`${c.kind} at --log-level debug: the stack too, masked`, async () => {
      const { code, stderr } = await crash(c.kind, "--log-level", "debug");
      expect(code).toBe(70);
      expect(stderr.split("\n")[0]).toMatch(
        /^fibrpc: internal error: .* \(a bug; please report it with this stack trace\)$/,
      );
      expect(stderr).toMatch(/\n\s+at /);
      expect(stderr).not.toContain("pa ss-w0rd");
      expect(stderr).not.toContain("y0ur-s3cret");
    });
  }
});

test("an uncaught error with JSON logs (serve --log-format json): one JSON entry, masked, exit 70", async () => {
  const { code, stdout, stderr } = await crash("throw-json");
  expect(code).toBe(70);
  expect(stdout).toBe("");
  expect(stderr.trimEnd().split("\n")).toHaveLength(1);
  expect(JSON.parse(stderr)).toEqual({
    time: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
    level: "error",
    message:
      "internal error: TypeError: boom with *** and a second line " +
      "(rerun with --log-level debug for the stack trace; please report it)",
  });
});
