/**
 * TLS end to end: a broker node of the test's own with a TLS listener, and a CA and certificates
 * made here with openssl. serve and call work over amqps:// with --tls-ca; a wrong CA is refused
 * with one clear line.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { chmodSync, mkdtempSync } from "node:fs";
import { join, resolve } from "node:path";
import { ROOT, run, startServe, cleanupAfterFile } from "../helpers.ts";

cleanupAfterFile();

const BROKER_NODE = resolve(ROOT, "scripts/broker-node.sh");
const node = `fibrpc-tls-${crypto.randomUUID().slice(0, 6)}`;
const port = 5790 + Math.floor(Math.random() * 50);
const tlsPort = port + 100;
const dir = mkdtempSync("/tmp/fibrpc-tls-");
const pem = (name: string) => join(dir, name);

function openssl(args: string[]): void {
  const r = Bun.spawnSync(["openssl", ...args], { cwd: dir, stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`openssl ${args.join(" ")}: ${r.stderr.toString()}`);
}

beforeAll(() => {
  // A CA, a server certificate it signs (valid for 127.0.0.1 and localhost), and a second,
  // unrelated CA for the "wrong CA" case.
  openssl(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=fibrpc test CA", "-keyout", "ca.key", "-out", "ca.pem"]);
  openssl(["req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout", "server.key", "-out", "server.csr"]);
  Bun.write(pem("san.ext"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n");
  openssl(["x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2", "-extfile", "san.ext", "-out", "server.pem"]);
  openssl(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=some other CA", "-keyout", "other.key", "-out", "other-ca.pem"]);
  // The broker runs as the rabbitmq user: let it read them.
  chmodSync(dir, 0o755);
  for (const f of ["ca.pem", "server.pem", "server.key"]) chmodSync(pem(f), 0o644);
  const extra = [
    `listeners.ssl.default = 127.0.0.1:${tlsPort}`,
    `ssl_options.cacertfile = ${pem("ca.pem")}`,
    `ssl_options.certfile = ${pem("server.pem")}`,
    `ssl_options.keyfile = ${pem("server.key")}`,
    "ssl_options.verify = verify_none",
    "ssl_options.fail_if_no_peer_cert = false",
  ].join("\n");
  const started = Bun.spawnSync(["bash", BROKER_NODE, "start", node, String(port)], { env: { ...process.env, FIBRPC_BROKER_EXTRA_CONF: extra }, stderr: "pipe" });
  if (started.exitCode !== 0) throw new Error(`broker node did not start: ${started.stderr.toString()}`);
});

afterAll(() => {
  Bun.spawnSync(["bash", BROKER_NODE, "stop", node]);
  Bun.spawnSync(["rm", "-rf", dir]);
});

const url = () => `amqps://guest:tls-s3cret@127.0.0.1:${tlsPort}`;

test("serve and call over TLS, the broker verified against --tls-ca", async () => {
  // guest's password on this node is "guest": set the URL's password to it, but keep one that
  // would show if it leaked.
  const goodUrl = url().replace("tls-s3cret", "guest");
  const server = await startServe(["--workers", "2", "--url", goodUrl, "--tls-ca", pem("ca.pem")]);
  const { code, stdout, stderr } = await run(["call", "--url", goodUrl, "--tls-ca", pem("ca.pem"), "30", "100"]);
  expect(stderr).toBe("");
  expect(code).toBe(0);
  expect(stdout).toBe("832040\n354224848179261915075\n");
  expect(server.log).toContain(`amqps://guest:***@127.0.0.1:${tlsPort}`);
  expect(await server.stop()).toBe(0);
});

test("a wrong CA is refused with one clear line, exit 78, password masked", async () => {
  const { code, stdout, stderr } = await run(["call", "--url", url(), "--tls-ca", pem("other-ca.pem"), "30"]);
  expect(code).toBe(78);
  expect(stdout).toBe("");
  expect(stderr).toMatch(/^fibrpc: the TLS certificate of the broker at amqps:\/\/guest:\*\*\*@127\.0\.0\.1:\d+ could not be verified \([A-Z_]+\); pass --tls-ca with the CA that signed it/);
  expect(stderr.trim().split("\n")).toHaveLength(1);
  expect(stderr).not.toContain("tls-s3cret");
  // serve does not retry forever on it either.
  const server = await startServe(["--workers", "1", "--url", url(), "--tls-ca", pem("other-ca.pem")], {}, null);
  expect(await server.proc.exited).toBe(78);
  expect(server.log).toContain("could not be verified");
  expect(server.log).not.toContain("tls-s3cret");
});

test("without --tls-ca the system CAs do not know this broker: refused", async () => {
  const { code, stderr } = await run(["call", "--url", url().replace("tls-s3cret", "guest"), "30"]);
  expect(code).toBe(78);
  expect(stderr).toContain("could not be verified");
});
