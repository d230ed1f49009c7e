/**
 * TLS end to end: a broker node of the test's own (of the suite's RabbitMQ release) with a TLS
 * listener, and a CA and certificates made here with openssl. serve and call work over amqps://
 * with --tls-ca; a wrong CA is refused with one clear line.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { rmSync } from "node:fs";
import { startPrivateNode } from "../broker.ts";
import { makeCertificates, type Certificates } from "../certificates.ts";
import { freePort, run, startServe, cleanupAfterFile } from "../helpers.ts";

cleanupAfterFile();

let certificates: Certificates;
const pem = (name: string) => certificates.pem(name);
let tlsPort = 0;

beforeAll(async () => {
  // A CA, a server certificate it signs (valid for 127.0.0.1 and localhost), and a second,
  // unrelated CA for the "wrong CA" case.
  certificates = makeCertificates("fibrpc-tls-");
  tlsPort = await freePort();
  const extraConf = [
    `listeners.ssl.default = 127.0.0.1:${tlsPort}`,
    `ssl_options.cacertfile = ${pem("ca.pem")}`,
    `ssl_options.certfile = ${pem("server.pem")}`,
    `ssl_options.keyfile = ${pem("server.key")}`,
    "ssl_options.verify = verify_none",
    "ssl_options.fail_if_no_peer_cert = false",
  ].join("\n");
  await startPrivateNode("fibrpc-tls", { extraConf }); // stopped by the file's cleanup
}, 300_000);

afterAll(() => {
  if (certificates) rmSync(certificates.dir, { recursive: true, force: true });
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
  expect(stderr).toMatch(
    /^fibrpc: the TLS certificate of the broker at amqps:\/\/guest:\*\*\*@127\.0\.0\.1:\d+ could not be verified \([A-Z_]+\); pass --tls-ca with the CA that signed it/,
  );
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
