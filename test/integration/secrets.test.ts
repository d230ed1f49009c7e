/**
 * Passwords that collide with URL syntax (space, "@", ",", "#", "%", ":") and non-ASCII ones,
 * on broker users of the test's own: with the URL given as a flag, as FIBRPC_URL and in a
 * --config file, call, bench and serve connect (the call is answered: the decoding is right),
 * a wrong password is refused (77), a malformed URL is one line and 64 from every command (serve
 * starts no worker), and no output, at --log-level debug, shows the password in any form.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { rabbitmqctl } from "../broker.ts";
import { BROKER_PORT, run, startServe, uniqueQueue, cleanupAfterFile, type RunResult } from "../helpers.ts";

cleanupAfterFile();

const tag = crypto.randomUUID().slice(0, 6);
/** One password with every awkward character, then one per character. */
const PASSWORDS = [
  "pä ss@,#%:wörd",
  "pa ss-word",
  "pa@ss-word",
  "pa,ss-word",
  "pa#ss-word",
  "pa%ss-word",
  "pa:ss-word",
  "päss-wörd€",
];
const users = PASSWORDS.map((password, i) => ({ name: `fibrpc_secret_${i}_${tag}`, password }));
const dir = mkdtempSync(join(tmpdir(), "fibrpc-secrets-"));

// Registered before the users exist: they go even if creating one of them fails half-way.
afterAll(async () => {
  await Promise.all(users.map((u) => rabbitmqctl(["delete_user", u.name])));
  rmSync(dir, { recursive: true, force: true });
});

beforeAll(async () => {
  await Promise.all(
    users.map(async (u) => {
      const added = await rabbitmqctl(["add_user", u.name, u.password]);
      if (added.code !== 0) throw new Error(`rabbitmqctl add_user: ${added.stderr}`);
      const allowed = await rabbitmqctl(["set_permissions", "-p", "/", u.name, ".*", ".*", ".*"]);
      if (allowed.code !== 0) throw new Error(`rabbitmqctl set_permissions: ${allowed.stderr}`);
    }),
  );
}, 120_000);

const urlOf = (user: string, password: string) =>
  `amqp://${user}:${encodeURIComponent(password)}@127.0.0.1:${BROKER_PORT}`;

/** Every form the password may take in a line: as decoded, percent-encoded (either case), JSON. */
function forms(password: string): string[] {
  const encoded = encodeURIComponent(password);
  return [...new Set([password, encoded, encoded.toLowerCase(), JSON.stringify(password).slice(1, -1)])];
}

function expectNoPassword(output: string, password: string): void {
  for (const form of forms(password))
    expect(output.includes(form), `output shows the password as ${JSON.stringify(form)}:\n${output}`).toBe(false);
}

/** The three ways to give the URL: flag, environment, config file. */
type Source = "flag" | "env" | "config";
function given(source: Source, url: string): { args: string[]; env: Record<string, string> } {
  if (source === "flag") return { args: ["--url", url], env: {} };
  if (source === "env") return { args: [], env: { FIBRPC_URL: url } };
  const file = join(dir, `${crypto.randomUUID()}.env`);
  // Quoted: dotenv would cut an unquoted value at " #".
  writeFileSync(file, `# broker\nFIBRPC_URL="${url}"\n`);
  return { args: ["--config", file], env: {} };
}

function expectOneLine(r: RunResult): void {
  expect(r.stdout).toBe("");
  expect(r.stderr.trim().split("\n"), r.stderr).toHaveLength(1);
}

describe("the right password works, and never shows", () => {
  for (const [i, { name, password }] of users.entries()) {
    for (const source of ["flag", "env", "config"] as Source[]) {
      test(`${JSON.stringify(password)} as ${source}: serve, call and bench connect`, async () => {
        const queue = uniqueQueue();
        const { args, env } = given(source, urlOf(name, password));
        const server = await startServe(["--workers", "1", "--queue", queue, "--log-level", "debug", ...args], env);
        const call = await run(["call", "--queue", queue, "--log-level", "debug", ...args, "30"], env);
        expect(call.code, call.stderr).toBe(0);
        expect(call.stdout).toBe("832040\n");
        const bench = await run(["bench", "--queue", queue, "--requests", "10", "--log-level", "debug", ...args], env);
        expect(bench.code, bench.stderr).toBe(0);
        expect(bench.stdout).toMatch(/fibrpc bench: 10 calls/);
        expect(await server.stop()).toBe(0);
        // serve names its broker, masked, built from the parsed URL.
        expect(server.log).toContain(`on amqp://${name}:***@127.0.0.1:${BROKER_PORT} with 1 worker,`);
        for (const output of [call.stdout + call.stderr, bench.stdout + bench.stderr, server.log])
          expectNoPassword(output, password);
      });
    }
    if (i === 0) {
      test("characters that cannot be mistaken for a delimiter may be written as they are", async () => {
        // Space, ",", ":" and non-ASCII letters as they are; "@", "#" and "%" must be escaped.
        const raw = `amqp://${name}:pä ss%40,%23%25:wörd@127.0.0.1:${BROKER_PORT}`;
        const { code, stderr } = await run([
          "call",
          "--url",
          raw,
          "--queue",
          uniqueQueue(),
          "--log-level",
          "debug",
          "30",
        ]);
        expect(code, stderr).toBe(69); // logged in; the queue does not exist
        expectNoPassword(stderr, password);
        expect(stderr).not.toContain("pä ss%40,%23%25:wörd");
      });
    }
  }
});

describe("a wrong password is refused, and never shows", () => {
  const { name, password } = users[0]!;
  const wrong = `${password}-wrong`;
  for (const source of ["flag", "env", "config"] as Source[]) {
    test(`as ${source}: call, bench and serve exit 77`, async () => {
      const { args, env } = given(source, urlOf(name, wrong));
      const call = await run(["call", "--log-level", "debug", ...args, "30"], env);
      expect(call.code).toBe(77);
      expect(call.stderr).toContain(`the broker at amqp://${name}:***@127.0.0.1:${BROKER_PORT} refused the login`);
      const bench = await run(["bench", "--requests", "10", "--log-level", "debug", ...args], env);
      expect(bench.code).toBe(77);
      const server = await startServe(
        ["--workers", "1", "--queue", uniqueQueue(), "--log-level", "debug", ...args],
        env,
        null,
      );
      expect(await server.proc.exited).toBe(77);
      for (const output of [call.stderr, bench.stderr, server.log]) expectNoPassword(output, wrong);
    });
  }
});

describe("a malformed URL is one line and exit 64 from every command", () => {
  // An unescaped "%", an unescaped "@", an unescaped "#", a bad query parameter.
  const cases = [
    {
      what: 'a "%" not followed by two hex digits',
      password: "pa%ss-word",
      url: (u: string) => `amqp://${u}:pa%ss-word@127.0.0.1:${BROKER_PORT}`,
      error: /"%" in the password that is not followed by two hex digits/,
    },
    {
      what: 'a second "@"',
      password: "pa@ss-word",
      url: (u: string) => `amqp://${u}:pa@ss-word@127.0.0.1:${BROKER_PORT}`,
      error: /more than one "@"/,
    },
    {
      what: 'a "#"',
      password: "pa#ss-word",
      url: (u: string) => `amqp://${u}:pa#ss-word@127.0.0.1:${BROKER_PORT}`,
      error: /contains "#"/,
    },
    {
      what: "an escape that is not UTF-8",
      password: "pass%FFword",
      url: (u: string) => `amqp://${u}:pass%FFword@127.0.0.1:${BROKER_PORT}`,
      error: /not UTF-8/,
    },
    {
      what: "an unknown query parameter",
      password: "pa ss-word",
      url: (u: string) => `${urlOf(u, "pa ss-word")}/?heartbeats=5`,
      error: /unknown query parameter "heartbeats"/,
    },
  ];
  for (const c of cases) {
    for (const source of ["flag", "env", "config"] as Source[]) {
      test(`${c.what}, as ${source}`, async () => {
        const { args, env } = given(source, c.url(users[0]!.name));
        const where = source === "flag" ? "--url" : source === "env" ? "FIBRPC_URL" : "FIBRPC_URL in the --config file";
        for (const command of [
          ["call", "30"],
          ["bench", "--requests", "10"],
          ["serve", "--workers", "2", "--queue", uniqueQueue()],
        ]) {
          const r = await run([...command, "--log-level", "debug", ...args], env);
          expect(r.code, `${command[0]}: ${r.stderr}`).toBe(64);
          expectOneLine(r);
          expect(r.stderr).toMatch(new RegExp(`^fibrpc: the 1st broker URL \\(${where.replace(/[-()]/g, "\\$&")}\\) `));
          expect(r.stderr).toMatch(c.error);
          expect(r.stderr).not.toMatch(/\[worker-|workers serving/); // serve started none
          expectNoPassword(r.stderr, c.password);
        }
      });
    }
  }

  test("the 2nd of several URLs is named as such", async () => {
    const r = await run(["call", "--url", "amqp://127.0.0.1:1", "--url", "amqp://u:s3cret%@h", "30"]);
    expect(r.code).toBe(64);
    expectOneLine(r);
    expect(r.stderr).toMatch(/^fibrpc: the 2nd broker URL \(--url\) has a "%" in the password/);
    expect(r.stderr).not.toContain("s3cret");
  });
});
