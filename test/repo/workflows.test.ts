/**
 * The GitHub Actions workflows, checked here, offline, since nothing runs them before they reach
 * GitHub (issue 23, point 4):
 * - both are valid, by GitHub's own workflow parser (@actions/workflow-parser, from the Actions
 *   language services: the workflow schema, expressions and the contexts each place allows, job
 *   needs), and a broken copy is not, so that a pass means something;
 * - ci.yml runs the README's test command on every push (and the 4.3 run of .ci/run);
 * - release.yml, on a v* tag, checks the tag against package.json, runs `bun run release` after
 *   starting the broker, attests the files, attaches them to the release, publishes the npm
 *   packages with provenance (platform packages first) and pushes a linux/amd64 + linux/arm64 image.
 * The shell of the steps that decide (the tag check, the publishing order) is run here, with a
 * stand-in npm, rather than only read.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join, resolve } from "node:path";
import { convertWorkflowTemplate, NoOperationTraceWriter, parseWorkflow } from "@actions/workflow-parser";
import { artifactName, TARGETS } from "../../scripts/release.ts";

const ROOT = resolve(import.meta.dir, "../..");
const CI = ".github/workflows/ci.yml";
const RELEASE = ".github/workflows/release.yml";
const { version } = JSON.parse(readFileSync(resolve(ROOT, "package.json"), "utf8")) as { version: string };

// Broken copies and the steps' outputs go outside the repository: a stray file in it would make
// `bun run release` (and the suite's own git checks) see a dirty tree.
const scratch = mkdtempSync(join(tmpdir(), "fibrpc-workflows-"));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** GitHub's parser on a workflow file: the schema's errors, then the conversion's (needs, cron, ...). */
async function validate(path: string): Promise<string[]> {
  const content = readFileSync(resolve(ROOT, path), "utf8");
  const parsed = parseWorkflow({ name: basename(path), content }, new NoOperationTraceWriter());
  if (!parsed.value) return parsed.context.errors.getErrors().map((e) => e.message);
  const template = await convertWorkflowTemplate(parsed.context, parsed.value);
  return (template.errors ?? []).map((e) => e.Message);
}

interface Step {
  name?: string;
  uses?: string;
  run?: string;
  if?: string;
  with?: Record<string, unknown>;
  env?: Record<string, unknown>;
}
interface Job {
  "runs-on": string;
  needs?: string | string[];
  if?: string;
  permissions?: Record<string, string>;
  steps: Step[];
}
interface Workflow {
  on: Record<string, Record<string, unknown> | null>;
  permissions?: Record<string, string>;
  jobs: Record<string, Job>;
}

function load(path: string): Workflow {
  return Bun.YAML.parse(readFileSync(resolve(ROOT, path), "utf8")) as Workflow;
}
const ci = load(CI);
const release = load(RELEASE);

/** The one step of `workflow` that `match` picks, with its job. */
function stepWhere(
  workflow: Workflow,
  what: string,
  match: (s: Step) => boolean,
): { job: Job; id: string; step: Step } {
  const found = Object.entries(workflow.jobs).flatMap(([id, job]) =>
    job.steps.filter(match).map((step) => ({ job, id, step })),
  );
  expect(found.length, `steps that ${what}`).toBe(1);
  return found[0]!;
}
const runs = (line: string) => (s: Step) => (s.run ?? "").split("\n").some((l) => l.trim() === line);
const uses = (action: string) => (s: Step) => (s.uses ?? "").split("@")[0] === action;
const needsOf = (job: Job) => (job.needs === undefined ? [] : [job.needs].flat());

/** A step's shell as GitHub runs it (bash -e -o pipefail), in `cwd` with `env` on top of PATH and HOME. */
function runStep(step: Step, cwd: string, env: Record<string, string>) {
  const proc = Bun.spawnSync(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step.run!], {
    cwd,
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: scratch, ...env },
    stdout: "pipe",
    stderr: "pipe",
  });
  return { code: proc.exitCode, out: `${proc.stdout.toString()}${proc.stderr.toString()}` };
}

describe("GitHub's workflow parser", () => {
  test.each([CI, RELEASE])("%s is a valid workflow", async (path) => {
    expect(await validate(path)).toEqual([]);
  });

  // Each a copy with one mistake of the kind a hand edit makes, and the error the parser names:
  // if it found none, the test above would prove nothing.
  test.each([
    [CI, "a job without runs-on", "    runs-on: ubuntu-24.04\n", "", "Required property is missing: runs-on"],
    [RELEASE, "a misspelled key (tag: for tags:)", '    tags: ["v*"]\n', '    tag: ["v*"]\n', "Unexpected value 'tag'"],
    [
      RELEASE,
      "needs naming no job",
      "needs: [version, files]",
      "needs: [version, file]",
      "depends on unknown job 'file'",
    ],
    [
      CI,
      "an unclosed expression",
      `if: \${{ !cancelled() }}`,
      `if: \${{ !cancelled( }}`,
      "Unexpected end of expression",
    ],
  ])("a copy of %s with %s is refused", async (path, _what, from, to, error) => {
    const original = readFileSync(resolve(ROOT, path), "utf8");
    expect(original).toContain(from);
    const broken = join(scratch, basename(path));
    writeFileSync(broken, original.replace(from, to));
    const errors = await validate(broken);
    expect(errors.length).toBeGreaterThan(0);
    expect(errors.join("\n")).toContain(error);
  });
});

describe("ci.yml", () => {
  test("runs on every push, with no branch, tag or path filter", () => {
    expect(Object.keys(ci.on)).toContain("push");
    expect(ci.on.push ?? {}).toEqual({});
  });

  test("runs the README's test command, after checkout and Node.js 20, unconditionally", () => {
    const readme = readFileSync(resolve(ROOT, "README.md"), "utf8");
    const command = readme.match(/Run the whole test suite[\s\S]*?```sh\n([^\n]+)\n```/)?.[1];
    expect(command).toBe("bash scripts/test.sh");
    const { job, step } = stepWhere(ci, `run ${command}`, runs(command!));
    expect(step.if).toBeUndefined();
    expect(job.if).toBeUndefined();
    const before = job.steps.slice(0, job.steps.indexOf(step));
    expect(before.some(uses("actions/checkout"))).toBe(true);
    expect(before.find(uses("actions/setup-node"))?.with?.["node-version"]).toBe(20);
  });

  test("then the integration and cluster tiers on RabbitMQ 4.3, as .ci/run does", () => {
    expect(readFileSync(resolve(ROOT, ".ci/run"), "utf8")).toContain(
      "env FIBRPC_TEST_BROKER=4.3 bash scripts/test.sh integration cluster",
    );
    const { step } = stepWhere(ci, "run the 4.3 tiers", runs("bash scripts/test.sh integration cluster"));
    expect(step.env?.FIBRPC_TEST_BROKER).toBe("4.3");
  });

  test("holds no secret and may write nothing", () => {
    expect(readFileSync(resolve(ROOT, CI), "utf8")).not.toContain("secrets.");
    expect(ci.permissions).toEqual({ contents: "read" });
  });
});

describe("release.yml", () => {
  test("runs on version tags v* only", () => {
    expect(release.on).toEqual({ push: { tags: ["v*"] } });
  });

  const tagCheck = () =>
    stepWhere(release, "check the tag against package.json", (s) =>
      (s.run ?? "").includes("require('./package.json').version"),
    );

  test("every other job waits for the tag check", () => {
    const { id: check } = tagCheck();
    for (const [id, job] of Object.entries(release.jobs)) {
      if (id !== check) expect({ id, needs: needsOf(job) }).toEqual({ id, needs: expect.arrayContaining([check]) });
    }
  });

  test(`the tag check passes v${version} (package.json's version) and fails another, saying why`, () => {
    const { step } = tagCheck();
    const output = join(scratch, "tag-check-output");
    writeFileSync(output, "");
    const good = runStep(step, ROOT, { GITHUB_REF_NAME: `v${version}`, GITHUB_OUTPUT: output });
    expect(good.code, good.out).toBe(0);
    expect(readFileSync(output, "utf8")).toContain(`version=${version}\n`);

    writeFileSync(output, "");
    const bad = runStep(step, ROOT, { GITHUB_REF_NAME: "v99.0.0", GITHUB_OUTPUT: output });
    expect(bad.code).toBe(1);
    expect(bad.out).toContain(`::error`);
    expect(bad.out).toContain(`the tag is v99.0.0, but package.json's version is ${version}`);
    expect(readFileSync(output, "utf8")).toBe("");
  });

  const build = () => stepWhere(release, "run bun run release", runs("bun run release"));

  test("bun run release runs on x64 Linux (it runs its linux-x64 binary), after the broker is started", () => {
    const { job, step } = build();
    const at = (match: (s: Step) => boolean) => job.steps.findIndex(match);
    expect(job["runs-on"]).toMatch(/^ubuntu-[\d.]+$|^ubuntu-latest$/);
    const broker = at(runs("bash scripts/ensure-broker.sh"));
    expect(broker).toBeGreaterThanOrEqual(0);
    expect(broker).toBeLessThan(job.steps.indexOf(step));
    expect(at(uses("actions/checkout"))).toBeLessThan(broker);
  });

  test("every file scripts/release.ts makes is checked, attested and attached, before npm publish", () => {
    const { job, step } = build();
    const { steps } = job;
    const at = (match: (s: Step) => boolean) => steps.findIndex(match);
    const checked = steps.find((s) => (s.run ?? "").includes("sha256sum -c SHA256SUMS"))?.run ?? "";
    for (const target of TARGETS) {
      expect(checked).toContain(`dist/${artifactName("$VERSION", target)}`);
    }
    const attest = at(uses("actions/attest-build-provenance"));
    expect(attest).toBeGreaterThan(steps.indexOf(step));
    const subjects = String(steps[attest]!.with?.["subject-path"]).trim().split("\n");
    expect(subjects).toEqual(["dist/fibrpc-*", "dist/SHA256SUMS", "dist/npm/*.tgz"]);

    const gh = at((s) => (s.run ?? "").includes("gh release create"));
    expect(steps[gh]!.run).toContain("files=(dist/fibrpc-* dist/SHA256SUMS dist/npm/*.tgz)");
    const publish = at((s) => (s.run ?? "").includes("npm publish --provenance"));
    expect(attest).toBeLessThan(gh);
    expect(gh).toBeLessThan(publish);
    expect(job.permissions).toMatchObject({
      contents: "write",
      "id-token": "write",
      attestations: "write",
    });
  });

  test("npm publish --provenance: the platform packages, then fibrpc; the token only there, never printed", () => {
    const { step } = stepWhere(release, "publish to npm", (s) => (s.run ?? "").includes("npm publish"));
    expect(step.env).toEqual({ NODE_AUTH_TOKEN: `\${{ secrets.NPM_TOKEN }}` });
    const text = readFileSync(resolve(ROOT, RELEASE), "utf8");
    expect(text.match(/secrets\.NPM_TOKEN/g)).toHaveLength(1);
    for (const s of Object.values(release.jobs).flatMap((j) => j.steps)) {
      expect(s.run ?? "").not.toMatch(/NODE_AUTH_TOKEN|NPM_TOKEN/);
    }

    // A stand-in npm on the PATH records its commands; `npm view` says "not published" (E404)
    // unless the package is listed in PUBLISHED (a re-run after a partial publish).
    const bin = join(scratch, "bin");
    mkdirSync(bin, { recursive: true });
    const npm = [
      "#!/bin/sh",
      'echo "$*" >>"$NPM_CALLS"',
      '[ "$1" = view ] || exit 0',
      // `npm view @fibrpc/linux-x64@0.1.0 version`: the package is the argument without its @version.
      `case " $PUBLISHED " in *" \${2%@*} "*) exit 0 ;; esac`,
      "exit 1",
    ];
    writeFileSync(join(bin, "npm"), `${npm.join("\n")}\n`);
    chmodSync(join(bin, "npm"), 0o755);
    const publishing = (published: string, prerelease = "false") => {
      const calls = join(scratch, "npm-calls");
      writeFileSync(calls, "");
      const env = { PATH: `${bin}:${process.env.PATH}`, NPM_CALLS: calls, PUBLISHED: published };
      const { code, out } = runStep(step, scratch, { ...env, VERSION: version, PRERELEASE: prerelease });
      expect(code, out).toBe(0);
      return readFileSync(calls, "utf8")
        .split("\n")
        .filter((l) => l.startsWith("publish "));
    };

    const platforms = ["linux-x64", "linux-arm64", "darwin-x64", "darwin-arm64", "win32-x64"];
    const tarballs = [...platforms.map((p) => `dist/npm/fibrpc-${p}-${version}.tgz`), `dist/npm/fibrpc-${version}.tgz`];
    expect(publishing("")).toEqual(tarballs.map((t) => `publish --provenance --access public --tag latest ${t}`));
    // A re-run after linux-x64 was published goes on with the rest; a pre-release is npm's "next".
    const rerun = publishing("@fibrpc/linux-x64");
    expect(rerun).toEqual(tarballs.slice(1).map((t) => `publish --provenance --access public --tag latest ${t}`));
    expect(publishing("", "true")[0]).toContain("--tag next ");
  });

  test("the image: linux/amd64 and linux/arm64, pushed to ghcr.io as the version and latest, with the commit", () => {
    const { job, step } = stepWhere(release, "build and push the image", uses("docker/build-push-action"));
    expect(step.with?.platforms).toBe("linux/amd64,linux/arm64");
    expect(step.with?.push).toBe(true);
    expect(String(step.with?.["build-args"])).toContain("COMMIT=");
    expect(job.permissions?.packages).toBe("write");
    expect(needsOf(job)).toContain(build().id);
    // Cross-compiled by the Dockerfile's own stages: no emulation is set up.
    expect(job.steps.some(uses("docker/setup-qemu-action"))).toBe(false);
    expect(job.steps.some(uses("docker/setup-buildx-action"))).toBe(true);
    expect(job.steps.find(uses("docker/login-action"))?.with?.registry).toBe("ghcr.io");

    const meta = job.steps.find((s) => s.run?.includes("ghcr.io/"))!;
    const output = join(scratch, "image-output");
    writeFileSync(output, "");
    const env = { GITHUB_REPOSITORY: "Owner/fibrpc", VERSION: version, PRERELEASE: "false", GITHUB_OUTPUT: output };
    const { code, out } = runStep(meta, ROOT, env);
    expect(code, out).toBe(0);
    const outputs = readFileSync(output, "utf8");
    expect(outputs).toContain(`tags<<EOF\nghcr.io/owner/fibrpc:${version}\nghcr.io/owner/fibrpc:latest\nEOF\n`);
    expect(outputs).toMatch(/^commit=[0-9a-f]{12}$/m);
    expect(step.with?.tags).toBe(`\${{ steps.meta.outputs.tags }}`);
  });
});
