/**
 * The container image, built from the Dockerfile unchanged with podman for linux/amd64 and
 * linux/arm64 (scripts/container-test.sh): the amd64 image serves, answers health checks and
 * drains (and runs the Kubernetes manifest, scripts/kube-test.sh); the arm64 image is checked for
 * its architecture and contents; both hold only the binary, glibc and /tmp, at most 130 MB.
 * Fails loudly where podman cannot run; never skips.
 */
import { expect, test } from "bun:test";
import { resolve } from "node:path";
import { ROOT, tracked } from "../helpers.ts";

const LIMIT_MS = 900_000;

test(
  "the Dockerfile builds for amd64 and arm64; the images are small, and the amd64 one serves, answers health checks and drains",
  async () => {
    const proc = tracked(
      Bun.spawn(["bash", resolve(ROOT, "scripts/container-test.sh")], { cwd: ROOT, stdout: "pipe", stderr: "pipe" }),
    );
    // Stopped a minute before the test's limit with SIGTERM, so that its EXIT trap removes what it
    // made (images, containers, its storage), which a SIGKILL at the limit would not let it do.
    const stop = setTimeout(() => proc.kill("SIGTERM"), LIMIT_MS - 60_000);
    const [stdout, stderr, code] = await Promise.all([
      new Response(proc.stdout).text(),
      new Response(proc.stderr).text(),
      proc.exited,
    ]).finally(() => clearTimeout(stop));
    const report = `${stdout}${stderr}`
      .split("\n")
      .filter((l) => l.startsWith("container-test:") || l.startsWith("kube-test:"))
      .join("\n");
    console.log(report);
    expect(code, `${stdout}\n${stderr}`).toBe(0);
    expect(stdout).toContain("container-test: PASSED");
    // One size line per platform, each within the limit the script enforces.
    for (const arch of ["amd64", "arm64"]) {
      const size = stdout.match(new RegExp(`image ${arch} (\\d+) MB`));
      expect(size, `no size line for ${arch}`).not.toBeNull();
      expect(Number(size![1])).toBeLessThanOrEqual(130);
    }
  },
  LIMIT_MS,
);
