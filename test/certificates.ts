/**
 * Certificates for the TLS tests, made with openssl in a folder of the test's own: a CA, a server
 * certificate it signs for 127.0.0.1 (and localhost), and an unrelated second CA, as a broker's
 * operator would have them. Readable by all (a broker node runs as the rabbitmq user).
 */
import { chmodSync, mkdtempSync, writeFileSync } from "node:fs";
import { join } from "node:path";

export interface Certificates {
  dir: string;
  /** The path of a file in the folder: ca.pem, ca.key, server.pem, server.key, other-ca.pem. */
  pem(name: string): string;
}

function openssl(dir: string, args: string[]): void {
  const r = Bun.spawnSync(["openssl", ...args], { cwd: dir, stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`openssl ${args.join(" ")}: ${r.stderr.toString()}`);
}

/** Makes them under /tmp (remove `dir` when done). `commonName`: the server certificate's subject CN. */
export function makeCertificates(prefix: string, commonName = "localhost"): Certificates {
  const dir = mkdtempSync(`/tmp/${prefix}`);
  const pem = (name: string) => join(dir, name);
  openssl(dir, [
    "req",
    "-x509",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-days",
    "2",
    "-subj",
    "/CN=fibrpc test CA",
    "-keyout",
    "ca.key",
    "-out",
    "ca.pem",
  ]);
  writeFileSync(pem("san.ext"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n");
  signedByCa(dir, "server", commonName, "san.ext");
  openssl(dir, [
    "req",
    "-x509",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-days",
    "2",
    "-subj",
    "/CN=some other CA",
    "-keyout",
    "other.key",
    "-out",
    "other-ca.pem",
  ]);
  chmodSync(dir, 0o755);
  for (const f of ["ca.pem", "server.pem", "server.key", "other-ca.pem"]) chmodSync(pem(f), 0o644);
  return { dir, pem };
}

/**
 * A client certificate for mutual TLS, `<name>.pem` and `<name>.key` in the folder: signed by the CA of
 * `makeCertificates` (a broker verifying peers against ca.pem takes it).
 */
export function makeClientCertificate(certificates: Certificates, name: string): void {
  signedByCa(certificates.dir, name, name);
}

/** `<name>.key` and `<name>.pem`, a certificate for `commonName` that ca.pem signs (with extensions from `extfile`). */
function signedByCa(dir: string, name: string, commonName: string, extfile?: string): void {
  const subject = `/CN=${commonName}`;
  openssl(dir, [
    "req",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-subj",
    subject,
    "-keyout",
    `${name}.key`,
    "-out",
    `${name}.csr`,
  ]);
  openssl(dir, [
    ...["x509", "-req", "-in", `${name}.csr`, "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2"],
    ...(extfile ? ["-extfile", extfile] : []),
    ...["-out", `${name}.pem`],
  ]);
}

/** `openssl rehash` of a folder: a directory of certificates by subject hash, as /etc/ssl/certs is. */
export function rehash(dir: string): void {
  openssl(dir, ["rehash", dir]);
}
