/**
 * TLS end to end: a broker node of the test's own (of the suite's RabbitMQ release) with a TLS
 * listener, and a CA and certificates made here with openssl. serve and call work over amqps://
 * with --tls-ca; a wrong CA is refused with one clear line.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { rmSync } from "node:fs";
import { startPrivateNode } from "../broker.ts";
import { makeCertificates, makeClientCertificate, type Certificates } from "../certificates.ts";
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
  await startPrivateNode("fibrpc-tls", { extraConf: tlsListener(tlsPort, false) }); // stopped by the file's cleanup
}, 300_000);

/**
 * rabbitmq.conf lines for a TLS listener on `port` with the server certificate; `mutual`: clients must show one
 * too; `tls12`: TLS 1.2 only, as many operators pin it.
 */
function tlsListener(port: number, mutual: boolean, tls12 = false): string {
  return [
    `listeners.ssl.default = 127.0.0.1:${port}`,
    `ssl_options.cacertfile = ${pem("ca.pem")}`,
    `ssl_options.certfile = ${pem("server.pem")}`,
    `ssl_options.keyfile = ${pem("server.key")}`,
    `ssl_options.verify = ${mutual ? "verify_peer" : "verify_none"}`,
    `ssl_options.fail_if_no_peer_cert = ${mutual}`,
    ...(tls12 ? ["ssl_options.versions.1 = tlsv1.2"] : []),
  ].join("\n");
}

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

test("amqp:// to the TLS port: says the port answered in TLS and to write amqps://, exit 68; not retried, serve stops", async () => {
  const plain = url().replace("amqps://", "amqp://");
  const { code, stdout, stderr } = await run(["call", "--url", plain, "30"]);
  expect([code, stdout]).toEqual([68, ""]);
  expect(stderr).toBe(
    `fibrpc: the broker at amqp://guest:***@127.0.0.1:${tlsPort} answered in TLS: the port is an amqps:// listener, ` +
      "not plain AMQP (amqp://); write amqps:// in --url / FIBRPC_URL for that port, or give the broker's plain port " +
      "(5672 by default)\n",
  );
  // A URL to fix: --retry does not spend its timeout on it, and serve stops at start-up.
  const retried = await run(["call", "--retry", "3", "-t", "20s", "--url", plain, "30"]);
  expect(retried.code).toBe(68);
  expect(retried.stderr).not.toContain("trying again");
  const server = await startServe(["--workers", "1", "--url", plain], {}, null);
  expect(await server.proc.exited).toBe(68);
  expect(server.log).toContain("answered in TLS: the port is an amqps:// listener");
  expect(server.log).not.toContain("tls-s3cret");
});

describe("a broker that requires a client certificate (mutual TLS)", () => {
  let mutualPort = 0;
  beforeAll(async () => {
    makeClientCertificate(certificates, "client");
    mutualPort = await freePort();
    await startPrivateNode("fibrpc-mtls", { extraConf: tlsListener(mutualPort, true) }); // stopped by the file's cleanup
  }, 300_000);
  const mutualUrl = () => `amqps://guest:guest@127.0.0.1:${mutualPort}`;
  const tls = (cert: string, key: string) => [
    "--tls-ca",
    pem("ca.pem"),
    "--tls-cert",
    pem(cert),
    "--tls-key",
    pem(key),
  ];

  test("with a client certificate the broker's CA issued: answered", async () => {
    const server = await startServe(["--workers", "1", "--url", mutualUrl(), ...tls("client.pem", "client.key")]);
    const r = await run(["call", "--url", mutualUrl(), ...tls("client.pem", "client.key"), "30"]);
    expect(r).toMatchObject({ code: 0, stdout: "832040\n", stderr: "" });
    expect(await server.stop()).toBe(0);
  });

  test("without one: the broker requires it, exit 78, and the line says to pass --tls-cert", async () => {
    const r = await run(["call", "--url", mutualUrl(), "--tls-ca", pem("ca.pem"), "30"]);
    expect(r.code).toBe(78);
    expect(r.stderr).toMatch(
      /^fibrpc: the broker at amqps:\/\/guest:\*\*\*@127\.0\.0\.1:\d+ requires a client certificate, and none was given; pass --tls-cert and --tls-key\n$/,
    );
  });

  test("one from a CA the broker does not trust: refused as this client's certificate (78), and serve does not retry it forever", async () => {
    // other-ca.pem is self-signed: the broker knows no CA of it (Erlang's TLS says "bad certificate" or "unknown ca").
    const r = await run(["call", "--url", mutualUrl(), ...tls("other-ca.pem", "other.key"), "30"]);
    expect(r.code).toBe(78);
    expect(r.stderr).toMatch(
      /refused this client's TLS certificate \((unknown ca|bad certificate)\); check --tls-cert: issued by a CA/,
    );
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    const server = await startServe(
      ["--workers", "1", "--url", mutualUrl(), ...tls("other-ca.pem", "other.key")],
      {},
      null,
    );
    expect(await server.proc.exited).toBe(78);
    expect(server.log).toContain("refused this client's TLS certificate");
  });

  test("a --tls-key that is not the key of --tls-cert: a usage error before connecting (64)", async () => {
    const r = await run(["call", "--url", mutualUrl(), ...tls("client.pem", "other.key"), "30"]);
    expect(r).toMatchObject({ code: 64, stdout: "" });
    expect(r.stderr).toMatch(
      /^fibrpc: --tls-key "[^"]+other\.key" is not the private key of --tls-cert "[^"]+client\.pem"; give the key made with it\n$/,
    );
  });
});

describe("a TLS 1.2 broker that requires a client certificate", () => {
  let port = 0;
  beforeAll(async () => {
    port = await freePort();
    await startPrivateNode("fibrpc-mtls12", { extraConf: tlsListener(port, true, true) }); // stopped by the file's cleanup
  }, 300_000);

  test("without one: TLS 1.2 says only 'handshake failure'; refused (78) with what to check, not retried, serve stops", async () => {
    const url = `amqps://guest:tls-s3cret@127.0.0.1:${port}`;
    const r = await run(["call", "--url", url, "--tls-ca", pem("ca.pem"), "--retry", "3", "-t", "20s", "30"]);
    expect([r.code, r.stdout]).toEqual([78, ""]);
    expect(r.stderr).toBe(
      `fibrpc: the broker at amqps://guest:***@127.0.0.1:${port} refused the TLS handshake (handshake failure); ` +
        "if it requires a client certificate, pass --tls-cert and --tls-key (a TLS 1.2 broker refuses a missing one " +
        "this way); else it allows no TLS version or cipher this client offers (its ssl_options.versions, ciphers)\n",
    );
    const server = await startServe(["--workers", "1", "--url", url, "--tls-ca", pem("ca.pem")], {}, null);
    expect(await server.proc.exited).toBe(78);
    expect(server.log).toContain("refused the TLS handshake (handshake failure)");
    expect(server.log).not.toContain("tls-s3cret");
  });
});
