/**
 * The container image, built from the Dockerfile unchanged and run with podman
 * (scripts/container-test.sh). Fails loudly where podman cannot run; never skips.
 */
import { expect, test } from "bun:test";
import { resolve } from "node:path";
import { ROOT } from "../helpers.ts";

test("the Dockerfile builds, and the image serves, answers health checks and drains", async () => {
  const proc = Bun.spawn(["bash", resolve(ROOT, "scripts/container-test.sh")], { cwd: ROOT, stdout: "pipe", stderr: "pipe" });
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  const report = `${stdout}${stderr}`
    .split("\n")
    .filter((l) => l.startsWith("container-test:"))
    .join("\n");
  console.log(report);
  expect(code, `${stdout}\n${stderr}`).toBe(0);
  expect(stdout).toContain("container-test: PASSED");
  expect(stdout).toMatch(/image .*: \d+ MiB/);
}, 900_000);
