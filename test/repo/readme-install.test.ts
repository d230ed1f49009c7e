/**
 * The README opens with Install (download, verify, PATH), then the container, then building from
 * source; the files it tells users to download are the ones `bun run release` makes, with the
 * current version in their names.
 */
import { expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { artifactName, TARGETS } from "../../scripts/release.ts";

const ROOT = resolve(import.meta.dir, "../..");
const readme = readFileSync(resolve(ROOT, "README.md"), "utf8");
const { version } = JSON.parse(readFileSync(resolve(ROOT, "package.json"), "utf8")) as { version: string };
const headings = readme.split("\n").filter((line) => line.startsWith("## "));
const install = readme.slice(readme.indexOf("## Install"), readme.indexOf("\n## ", readme.indexOf("## Install") + 1));

test("Install is the first section, then the container, then Build from source", () => {
  expect(headings.slice(0, 3)).toEqual(["## Install", "## The container", "## Build from source"]);
  expect(readme).toContain("[Container](#container)");
  expect(headings).toContain("## Container");
});

test("Install names every file bun run release makes, with this version", () => {
  const names = [...install.matchAll(/`(fibrpc-[^`\s]+)`/g)].map((m) => m[1]);
  const expected = TARGETS.map((t) => artifactName(version, t));
  expect(new Set(names)).toEqual(new Set(expected));
});

test("Install says how to verify, put on PATH and check, with this version everywhere", () => {
  expect(install).toContain("sha256sum -c --ignore-missing SHA256SUMS");
  expect(install).toContain("shasum -a 256 -c --ignore-missing SHA256SUMS");
  expect(install).toMatch(/install -m 755 fibrpc-\S+-linux-x64 ~\/\.local\/bin\/fibrpc/);
  expect(install).toContain("/usr/local/bin/fibrpc");
  expect(install).toMatch(
    new RegExp(
      `fibrpc --version +# fibrpc ${version.replaceAll(".", "\\.")} \\(commit [0-9a-f]{12}, bun \\S+, linux-x64\\)`,
    ),
  );
  for (const m of install.matchAll(/fibrpc-(\d+\.\d+\.\d+[^-\s`]*)-/g)) expect(m[1]).toBe(version);
});

test("the build-from-source commands and bun run release are still there", () => {
  const source = readme.slice(readme.indexOf("## Build from source"), readme.indexOf("## Usage"));
  expect(source).toContain("bash scripts/demo.sh");
  expect(source).toContain("bash scripts/test.sh");
  expect(source).toContain("bun run release");
});
