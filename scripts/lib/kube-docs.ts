/**
 * deploy/kubernetes read as Kubernetes reads it, for the test that checks the manifests
 * (test/repo/deploy.test.ts) and the one that runs them (scripts/kube-test.sh via
 * kube-test-manifest.ts).
 */
import { readdirSync, readFileSync } from "node:fs";
import { resolve } from "node:path";

/** A parsed YAML node: callers say what they expect of it. */
export type Doc = any;

export const KUBE_DIR = resolve(import.meta.dir, "../../deploy/kubernetes");

/** The documents of one file of deploy/kubernetes (a file may hold several), or of all of them. */
export function kubeDocs(file?: string): Doc[] {
  const files = file ? [file] : readdirSync(KUBE_DIR).filter((name) => /\.ya?ml$/.test(name));
  return files.flatMap((name) => {
    const parsed = Bun.YAML.parse(readFileSync(resolve(KUBE_DIR, name), "utf8")) as Doc;
    return (Array.isArray(parsed) ? parsed : [parsed]).filter(Boolean);
  });
}

/** The port a probe or Service names: a number, or the name of one of the container's ports. */
export function containerPort(container: Doc, port: string | number): number | undefined {
  if (typeof port === "number") return port;
  if (/^\d+$/.test(port)) return Number(port);
  return container?.ports?.find((p: Doc) => p.name === port)?.containerPort;
}
