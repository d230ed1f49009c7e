/**
 * Which CAs fibrpc trusts for an amqps:// broker, as --tls-ca's help and the README say: without
 * --tls-ca, Bun's built-in Mozilla roots plus the system's CAs (OpenSSL's default locations, so
 * SSL_CERT_FILE and SSL_CERT_DIR count) and NODE_EXTRA_CA_CERTS; with --tls-ca, that CA alone.
 * The "broker" is a TLS listener of this test on a free port that closes every connection once
 * the TLS handshake is done: a certificate fibrpc accepts gets "closed the connection during the
 * handshake" (exit 68), one it refuses "could not be verified" (exit 78). No broker node, no
 * fixed port; a private CA made here with openssl, which no trust store holds.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, readFileSync, rmSync } from "node:fs";
import tls from "node:tls";
import { helpOf } from "../../src/options.ts";
import { makeCertificates, rehash, type Certificates } from "../certificates.ts";
import { BIN, tracked } from "../helpers.ts";

let certificates: Certificates;
const pem = (name: string) => certificates.pem(name);
let server: tls.Server;
let port = 0;

beforeAll(async () => {
  certificates = makeCertificates("fibrpc-tls-default-", "127.0.0.1");
  // SSL_CERT_DIR is a directory of certificates by subject hash, as /etc/ssl/certs is.
  mkdirSync(pem("certs"));
  await Bun.write(pem("certs/ca.pem"), readFileSync(pem("ca.pem")));
  rehash(pem("certs"));
  server = tls.createServer({ key: readFileSync(pem("server.key")), cert: readFileSync(pem("server.pem")) }, (socket) =>
    socket.end(),
  );
  await new Promise<void>((done) => server.listen(0, "127.0.0.1", done));
  port = (server.address() as { port: number }).port;
});

afterAll(() => {
  // Not awaited: Bun calls close's callback only once every socket is gone, which need not be soon.
  server?.close();
  if (certificates) rmSync(certificates.dir, { recursive: true, force: true });
});

/** `fibrpc call` against the listener, with none of the CA variables but those given. */
async function call(extraArgs: string[], extraEnv: Record<string, string>): Promise<{ code: number; stderr: string }> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (
      v !== undefined &&
      !k.startsWith("FIBRPC_") &&
      !["SSL_CERT_FILE", "SSL_CERT_DIR", "NODE_EXTRA_CA_CERTS", "NODE_USE_SYSTEM_CA"].includes(k)
    )
      env[k] = v;
  }
  const proc = tracked(
    Bun.spawn([BIN, "call", "--url", `amqps://127.0.0.1:${port}`, "-t", "10s", ...extraArgs, "5"], {
      cwd: "/",
      env: { ...env, NO_COLOR: "1", ...extraEnv },
      stdout: "ignore",
      stderr: "pipe",
      stdin: "ignore",
    }),
  );
  const timer = setTimeout(() => proc.kill("SIGKILL"), 20_000);
  const [stderr, code] = await Promise.all([new Response(proc.stderr).text(), proc.exited]);
  clearTimeout(timer);
  return { code, stderr };
}

const REFUSED = /could not be verified \(UNABLE_TO_VERIFY_LEAF_SIGNATURE\)/;
const ACCEPTED = /closed the connection during the handshake/;

describe("without --tls-ca", () => {
  test("a private CA is not trusted (the check can fail)", async () => {
    const r = await call([], {});
    expect(r.stderr).toMatch(REFUSED);
    expect(r.code).toBe(78);
  });
  test("the system's CAs are: SSL_CERT_FILE", async () => {
    const r = await call([], { SSL_CERT_FILE: pem("ca.pem") });
    expect(r.stderr).toMatch(ACCEPTED);
    expect(r.code).toBe(68);
  });
  test("the system's CAs are: SSL_CERT_DIR", async () => {
    const r = await call([], { SSL_CERT_DIR: pem("certs") });
    expect(r.stderr).toMatch(ACCEPTED);
    expect(r.code).toBe(68);
  });
  test("NODE_EXTRA_CA_CERTS is", async () => {
    const r = await call([], { NODE_EXTRA_CA_CERTS: pem("ca.pem") });
    expect(r.stderr).toMatch(ACCEPTED);
    expect(r.code).toBe(68);
  });
});

describe("with --tls-ca", () => {
  test("its CA is trusted", async () => {
    const r = await call(["--tls-ca", pem("ca.pem")], {});
    expect(r.stderr).toMatch(ACCEPTED);
    expect(r.code).toBe(68);
  });
  test("only its CA: the system's and NODE_EXTRA_CA_CERTS no longer count", async () => {
    const r = await call(["--tls-ca", pem("other-ca.pem")], {
      SSL_CERT_FILE: pem("ca.pem"),
      NODE_EXTRA_CA_CERTS: pem("ca.pem"),
    });
    expect(r.stderr).toMatch(REFUSED);
    expect(r.code).toBe(78);
  });
});

test("--tls-ca's help says so", () => {
  const help = helpOf("tls-ca", "call");
  for (const words of [
    "then the only ones trusted",
    "(default: Bun's built-in Mozilla roots + system CAs)",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "NODE_EXTRA_CA_CERTS",
    "none in the container image",
  ])
    expect(help).toContain(words);
  expect(help).not.toContain("default: system CAs");
});
