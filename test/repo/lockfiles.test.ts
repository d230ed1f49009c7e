/**
 * Two lockfiles: package-lock.json for the README's commands (npm ci), bun.lock for the image
 * (bun install --frozen-lockfile in the Dockerfile). Nothing else keeps them in agreement, so
 * this test does: the same packages, at the same versions, with the same integrity hashes.
 * After changing a dependency, run both `npm install` and `bun install`.
 */
import { expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";

const ROOT = resolve(import.meta.dir, "../..");

function npmPackages(): Map<string, { version: string; integrity?: string }> {
  const lock = JSON.parse(readFileSync(resolve(ROOT, "package-lock.json"), "utf8")) as {
    packages: Record<string, { version: string; integrity?: string }>;
  };
  const out = new Map<string, { version: string; integrity?: string }>();
  for (const [path, entry] of Object.entries(lock.packages)) {
    if (path === "") continue;
    // node_modules/a/node_modules/b (b nested under a) is "a/b" in bun.lock.
    out.set(path.replace(/^node_modules\//, "").replaceAll("/node_modules/", "/"), {
      version: entry.version,
      integrity: entry.integrity,
    });
  }
  return out;
}

function bunPackages(): Map<string, { version: string; integrity?: string }> {
  // bun.lock is JSON with trailing commas.
  const text = readFileSync(resolve(ROOT, "bun.lock"), "utf8").replace(/,(\s*[}\]])/g, "$1");
  const lock = JSON.parse(text) as { packages: Record<string, [string, string, unknown, string?]> };
  const out = new Map<string, { version: string; integrity?: string }>();
  for (const [name, [spec, , , integrity]] of Object.entries(lock.packages)) {
    out.set(name, { version: spec.slice(spec.lastIndexOf("@") + 1), integrity });
  }
  return out;
}

test("package-lock.json and bun.lock pin the same packages, versions and hashes", () => {
  const npm = npmPackages();
  const bun = bunPackages();
  expect(npm.size).toBeGreaterThan(5);
  expect([...bun.keys()].sort()).toEqual([...npm.keys()].sort());
  for (const [name, pinned] of npm) expect({ name, ...bun.get(name) }).toEqual({ name, ...pinned });
});

test("package.json's direct dependencies are pinned exactly, as both lockfiles have them", () => {
  const pkg = JSON.parse(readFileSync(resolve(ROOT, "package.json"), "utf8")) as {
    dependencies: Record<string, string>;
    devDependencies: Record<string, string>;
  };
  const npm = npmPackages();
  for (const [name, version] of Object.entries({ ...pkg.dependencies, ...pkg.devDependencies })) {
    expect({ name, version }).toEqual({ name, version: npm.get(name)?.version ?? "missing" });
  }
});
