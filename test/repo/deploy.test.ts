/**
 * deploy/compose.yaml and deploy/kubernetes/ agree with fibrpc itself: every FIBRPC_* variable
 * they set is one `fibrpc serve --help` lists, every port is the FIBRPC_HTTP_PORT they configure,
 * and every probe and scrape path is one a running `fibrpc serve`, started with the file's own
 * settings, answers as the probe needs (liveness 200 even while the broker is unreachable,
 * readiness 200 only while consuming). scripts/kube-test.sh runs the Kubernetes manifest itself
 * with `podman kube play` (from scripts/container-test.sh, with the real image).
 */
import { describe, expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { basename, dirname, resolve } from "node:path";
import { parseDuration } from "../../src/config.ts";
import { COMMAND_OPTIONS, COMMANDS, defaultShown, OPTIONS } from "../../src/options.ts";
import { containerPort, KUBE_DIR, kubeDocs, type Doc } from "../../scripts/lib/kube-docs.ts";
import { cleanupAfterFile, eventually, run, startServe, uniqueQueue, URL, freePort, ROOT } from "../helpers.ts";

cleanupAfterFile();

const compose: Doc = Bun.YAML.parse(readFileSync(resolve(ROOT, "deploy/compose.yaml"), "utf8"));
const allKubeDocs = kubeDocs();
const kinds = (kind: string) => allKubeDocs.filter((d) => d.kind === kind);

const deployment = kinds("Deployment")[0];
const podSpec = deployment?.spec?.template?.spec;
const container = podSpec?.containers?.find((c: Doc) => c.name === "fibrpc");
const service = kinds("Service")[0];
const composeFibrpc = compose.services?.fibrpc;

/** The Deployment's variables: name → literal value (undefined for valueFrom). */
const kubeEnv: Record<string, string | undefined> = Object.fromEntries(
  (container?.env ?? []).map((e: Doc) => [e.name, e.value]),
);
/** compose's environment, as a map or a list of NAME=value. */
const composeEnv: Record<string, string> = Array.isArray(composeFibrpc?.environment)
  ? Object.fromEntries(
      composeFibrpc.environment.map((line: string) => [line.split("=", 1)[0], line.slice(line.indexOf("=") + 1)]),
    )
  : Object.fromEntries(Object.entries(composeFibrpc?.environment ?? {}).map(([k, v]) => [k, String(v)]));

/** The variables `fibrpc <command> --help` lists: what that command reads. */
async function envOfHelp(command: string): Promise<Set<string>> {
  // Wide, so that no help line is wrapped; the pattern allows a wrap anyway.
  const { code, stdout } = await run([command, "--help"], { COLUMNS: "1000" });
  expect(code).toBe(0);
  return new Set([...stdout.matchAll(/\[env\s+(FIBRPC_[A-Z0-9_]+)\]/g)].map((m) => m[1]!));
}

/** A container port named in a probe or Service: a number, or the name of one of the container's ports. */
function kubePort(port: string | number): number | undefined {
  return containerPort(container, port);
}

/** Kubernetes CPU quantity ("2", "1500m") in cores. */
const cores = (q: string | number) => (String(q).endsWith("m") ? Number(String(q).slice(0, -1)) / 1000 : Number(q));

const drainMs = (env: Record<string, string | undefined>) =>
  parseDuration("drain-timeout", env.FIBRPC_DRAIN_TIMEOUT ?? defaultShown("drain-timeout")!);
/** Where serve writes its status file in the image: the folder must be writable. */
const statusDir = (env: Record<string, string | undefined>) =>
  dirname(env.FIBRPC_STATUS_FILE ?? OPTIONS["status-file"].imageDefault!);

describe("the files parse and hold what the checks read", () => {
  test("compose: a rabbitmq and a fibrpc service; kubernetes: a Deployment with a fibrpc container, a Service, a Secret", () => {
    expect(compose.services?.rabbitmq?.image).toMatch(/^rabbitmq:4/);
    expect(composeFibrpc?.image).toMatch(/fibrpc/);
    expect(container?.image).toMatch(/fibrpc/);
    expect(service).toBeDefined();
    expect(kinds("Secret")).toHaveLength(1);
  });
});

describe("variables: every one is an option serve reads", () => {
  test("serve --help lists the option table's serve variables (the same source)", async () => {
    const help = await envOfHelp("serve");
    expect([...help].sort()).toEqual(COMMAND_OPTIONS.serve.map((name) => OPTIONS[name].env).sort());
  });

  for (const [file, env] of [
    ["deploy/compose.yaml", () => composeEnv],
    ["deploy/kubernetes/deployment.yaml", () => kubeEnv],
  ] as const) {
    test(`${file}: each variable of the fibrpc container is in \`fibrpc serve --help\``, async () => {
      const serve = await envOfHelp("serve");
      const names = Object.keys(env());
      expect(names.length).toBeGreaterThan(3);
      expect(names.filter((name) => !serve.has(name))).toEqual([]);
      // The metrics port and the broker are configured: the rest of this file relies on both.
      expect(names).toContain("FIBRPC_HTTP_PORT");
      expect(names).toContain("FIBRPC_URL");
    });
  }
});

describe("deploy/kubernetes", () => {
  const httpPort = Number(kubeEnv.FIBRPC_HTTP_PORT);

  test("the container port, both probes, the Service's target and the scrape annotation are FIBRPC_HTTP_PORT", () => {
    expect(Number.isInteger(httpPort)).toBe(true);
    const named = container.ports.find((p: Doc) => p.name === "metrics");
    expect(named?.containerPort).toBe(httpPort);
    expect(kubePort(container.livenessProbe.httpGet.port)).toBe(httpPort);
    expect(kubePort(container.readinessProbe.httpGet.port)).toBe(httpPort);
    const servicePort = service.spec.ports.find((p: Doc) => p.name === "metrics");
    expect(kubePort(servicePort.targetPort ?? servicePort.port)).toBe(httpPort);
    expect(Number(service.metadata.annotations["prometheus.io/port"])).toBe(httpPort);
    expect(service.metadata.annotations["prometheus.io/scrape"]).toBe("true");
    // The Service selects the Deployment's pods.
    const labels = deployment.spec.template.metadata.labels;
    for (const [key, value] of Object.entries(service.spec.selector)) expect(labels[key]).toBe(value);
  });

  test("the broker URL comes from the Secret, whose value is a placeholder; no password in any manifest", () => {
    const secret = kinds("Secret")[0];
    const url = container.env.find((e: Doc) => e.name === "FIBRPC_URL");
    expect(url.value).toBeUndefined();
    expect(url.valueFrom.secretKeyRef.name).toBe(secret.metadata.name);
    const value = secret.stringData?.[url.valueFrom.secretKeyRef.key];
    expect(value).toMatch(/^amqps?:\/\/[^:@]+:CHANGE-ME@/);
    for (const file of readdirSync(KUBE_DIR)) {
      const text = readFileSync(resolve(KUBE_DIR, file), "utf8");
      const passwords = [...text.matchAll(/amqps?:\/\/[^:/\s@]+:([^@\s/]+)@/g)].map((m) => m[1]);
      expect(
        passwords.filter((p) => p !== "CHANGE-ME" && !p!.startsWith("<")),
        file,
      ).toEqual([]);
    }
  });

  test("the grace period outlasts FIBRPC_DRAIN_TIMEOUT", () => {
    expect(podSpec.terminationGracePeriodSeconds * 1000).toBeGreaterThan(drainMs(kubeEnv));
  });

  test("non-root, read-only root filesystem, the status file's folder on an emptyDir", () => {
    expect(podSpec.securityContext.runAsNonRoot).toBe(true);
    expect(podSpec.securityContext.runAsUser).toBeGreaterThan(0);
    expect(container.securityContext.readOnlyRootFilesystem).toBe(true);
    const mount = container.volumeMounts.find((m: Doc) => m.mountPath === statusDir(kubeEnv));
    expect(mount).toBeDefined();
    expect(podSpec.volumes.find((v: Doc) => v.name === mount.name)?.emptyDir).toBeDefined();
  });

  test("requests and limits set; one worker per CPU of the limit", () => {
    const { requests, limits } = container.resources;
    for (const r of [requests, limits]) expect(r.cpu !== undefined && r.memory !== undefined).toBe(true);
    expect(Number(kubeEnv.FIBRPC_WORKERS)).toBe(cores(limits.cpu));
  });
});

describe("deploy/compose.yaml", () => {
  test("the published metrics port is FIBRPC_HTTP_PORT", () => {
    const targets = composeFibrpc.ports.map((p: Doc) =>
      typeof p === "object" ? Number(p.target) : Number(String(p).split(":").at(-1)!.split("/")[0]),
    );
    expect(targets).toEqual([Number(composeEnv.FIBRPC_HTTP_PORT)]);
  });

  test("the health check is the image's: `fibrpc health`", () => {
    const test_ = composeFibrpc.healthcheck.test;
    expect(test_[0]).toBe("CMD");
    expect(basename(test_[1])).toBe("fibrpc");
    expect(COMMANDS).toContain(test_[2]);
    expect(test_[2]).toBe("health");
    const dockerfile = readFileSync(resolve(ROOT, "Dockerfile"), "utf8");
    const image = /^HEALTHCHECK\s.*\bCMD\s+(\[.*\])\s*$/m.exec(dockerfile)?.[1];
    expect(image && JSON.parse(image)).toEqual(test_.slice(1));
  });

  test("fibrpc waits for a healthy broker, reaches it by its service name, and gets the password by interpolation", () => {
    expect(composeFibrpc.depends_on.rabbitmq.condition).toBe("service_healthy");
    expect(compose.services.rabbitmq.healthcheck.test.length).toBeGreaterThan(1);
    expect(composeEnv.FIBRPC_URL).toMatch(/^amqp:\/\/[^:@]+:\$\{[A-Z_]+(:\?[^}]*)?\}@rabbitmq:5672$/);
  });

  test("replicas, a grace period longer than the drain, the status file's folder writable", () => {
    expect(composeFibrpc.deploy.replicas).toBeGreaterThan(1);
    expect(parseDuration("stop_grace_period", composeFibrpc.stop_grace_period)).toBeGreaterThan(drainMs(composeEnv));
    if (composeFibrpc.read_only) expect(composeFibrpc.tmpfs).toContain(statusDir(composeEnv));
    expect(Number(composeEnv.FIBRPC_WORKERS)).toBe(Number(composeFibrpc.deploy.resources.limits.cpus));
  });
});

/** Starts serve with a file's settings: only the broker, queue and port are the test's own. */
async function serveWith(env: Record<string, string | undefined>, url = URL) {
  const port = await freePort();
  const settings: Record<string, string> = {};
  for (const [name, value] of Object.entries(env)) if (value !== undefined) settings[name] = value;
  Object.assign(settings, {
    FIBRPC_URL: url,
    FIBRPC_QUEUE: uniqueQueue("fibrpc_deploy"),
    FIBRPC_HTTP_PORT: String(port),
  });
  const server = await startServe([], settings, null);
  const get = async (path: string) => {
    const response = await fetch(`http://127.0.0.1:${port}${path}`).catch(() => undefined);
    return { status: response?.status ?? 0, body: (await response?.text()) ?? "" };
  };
  return { server, get };
}

describe("the paths serve answers, started with each file's settings", () => {
  const files = [
    {
      file: "deploy/kubernetes",
      env: () => kubeEnv,
      liveness: () => container.livenessProbe.httpGet.path,
      readiness: () => container.readinessProbe.httpGet.path,
      metrics: () => service.metadata.annotations["prometheus.io/path"],
    },
    {
      file: "deploy/compose.yaml",
      env: () => composeEnv,
      liveness: () => "/healthz",
      readiness: () => "/readyz",
      metrics: () => "/metrics",
    },
  ];
  for (const f of files) {
    test(`${f.file}: readiness 200 once consuming, liveness 200, metrics with every worker up; an unknown path 404`, async () => {
      const { server, get } = await serveWith(f.env());
      const ready = await eventually(
        () => get(f.readiness()),
        (r) => r.status === 200,
        15_000,
        `${f.readiness()} answering 200`,
      );
      expect(ready.body).toMatch(/^ready/);
      expect((await get(f.liveness())).status).toBe(200);
      const metrics = await get(f.metrics());
      expect(metrics.status).toBe(200);
      expect(metrics.body).toContain(`\nfibrpc_workers_up ${f.env().FIBRPC_WORKERS}\n`);
      // The server tells paths apart: a path it does not serve would fail a probe.
      expect((await get("/not-a-probe")).status).toBe(404);
      expect(await server.stop()).toBe(0);
    });
  }

  test("deploy/kubernetes: with the broker unreachable, liveness stays 200 (no restart loop) and readiness is 503", async () => {
    const { server, get } = await serveWith(kubeEnv, "amqp://guest:guest@127.0.0.1:1");
    await eventually(
      () => get(container.livenessProbe.httpGet.path),
      (r) => r.status === 200,
      15_000,
      "liveness answering",
    );
    const readiness = await get(container.readinessProbe.httpGet.path);
    expect(readiness.status).toBe(503);
    expect(readiness.body).toMatch(/not ready: 0\/\d+ workers consuming/);
    await server.waitForLog(/cannot reach the broker/);
    expect((await get(container.livenessProbe.httpGet.path)).status).toBe(200);
    expect((await get(container.readinessProbe.httpGet.path)).status).toBe(503);
    expect(await server.stop()).toBe(0);
  });
});
