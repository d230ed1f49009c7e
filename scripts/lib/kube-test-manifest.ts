/**
 * For scripts/kube-test.sh: a test copy of deploy/kubernetes/deployment.yaml with only what the
 * test needs changed, the Secret's value for the local broker, and what the test checks, read
 * from the manifests themselves (ports, probe paths, grace period), so that the test exercises
 * the files as written.
 *
 *   bun scripts/lib/kube-test-manifest.ts IMAGE QUEUE SUFFIX BROKER_URL OUT_DIR
 *
 * Writes OUT_DIR/deployment.yaml and OUT_DIR/secret.json; prints shell assignments on stdout.
 *
 * Changed in the copy, and why:
 * - names (Deployment, labels, Secret reference) get SUFFIX: nothing of a user's is touched;
 * - replicas 1: with hostNetwork, replicas would share the host's port;
 * - hostNetwork: true, so the pod reaches the broker at 127.0.0.1:5672 as guest (RabbitMQ's guest
 *   user may log in from loopback only), and the probes' port is the host's;
 * - no `ports` list: podman 4.3 turns containerPort into a port mapping and refuses it on the
 *   host network ("PortMappings can only be used with Bridge or slirp4netns networking"); the
 *   probes' named port ("metrics") is replaced by the number it names, read before the removal;
 * - the image is IMAGE with imagePullPolicy Never (there is no registry here);
 * - FIBRPC_QUEUE is a queue of the test's own;
 * - the volumes get SUFFIX too: podman makes a named volume of an emptyDir, named as in the
 *   manifest ("tmp"), which another pod or user could share.
 * The Secret: podman 4.3 stores a `kind: Secret` document as YAML, then cannot read it for
 * secretKeyRef (it expects JSON of key → base64 value: "secret ... is not valid JSON"). So the
 * test creates that podman secret itself, from secret.yaml's key, with the local broker's URL as
 * its value; the Deployment still reads FIBRPC_URL through its secretKeyRef.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { containerPort, kubeDocs, type Doc } from "./kube-docs.ts";

const [image, queue, suffix, brokerUrl, outDir] = process.argv.slice(2);
if (!image || !queue || !suffix || !brokerUrl || !outDir) {
  console.error("usage: bun scripts/lib/kube-test-manifest.ts IMAGE QUEUE SUFFIX BROKER_URL OUT_DIR");
  process.exit(64);
}

const one = (file: string, kind: string): Doc => {
  const found = kubeDocs(file).filter((d) => d.kind === kind);
  if (found.length !== 1) throw new Error(`${file}: expected one ${kind}, found ${found.length}`);
  return found[0];
};

const deployment = one("deployment.yaml", "Deployment");
const secret = one("secret.yaml", "Secret");
const service = one("service.yaml", "Service");

const pod = deployment.spec.template.spec;
if (pod.containers.length !== 1) throw new Error("deployment.yaml: expected one container");
const container = pod.containers[0];
const env = (name: string): Doc => container.env.find((e: Doc) => e.name === name);

// The port every check uses: a probe's or Service's port is a name of the container's ports or a number.
const portOf = (port: string | number): number => {
  const number = containerPort(container, port);
  if (number === undefined) throw new Error(`deployment.yaml: no container port named ${port}`);
  return number;
};
const httpPort = Number(env("FIBRPC_HTTP_PORT")?.value);
const urlRef = env("FIBRPC_URL")?.valueFrom?.secretKeyRef;
if (!urlRef || urlRef.name !== secret.metadata.name)
  throw new Error("deployment.yaml: FIBRPC_URL must come from secret.yaml's Secret (secretKeyRef)");
const serviceTarget = service.spec.ports.find((p: Doc) => p.name === "metrics") ?? service.spec.ports[0];

// The test copy.
const name = `${deployment.metadata.name}-${suffix}`;
const secretName = `${secret.metadata.name}-${suffix}`;
const labels = { ...deployment.spec.selector.matchLabels, "fibrpc-test": suffix };
deployment.metadata.name = name;
deployment.metadata.labels = { ...deployment.metadata.labels, ...labels };
deployment.spec.replicas = 1;
deployment.spec.selector.matchLabels = labels;
deployment.spec.template.metadata.labels = { ...deployment.spec.template.metadata.labels, ...labels };
pod.hostNetwork = true;
container.image = image;
container.imagePullPolicy = "Never";
env("FIBRPC_QUEUE").value = queue;
urlRef.name = secretName;
const livenessPort = portOf(container.livenessProbe.httpGet.port);
const readinessPort = portOf(container.readinessProbe.httpGet.port);
const metricsPort = portOf(serviceTarget.targetPort ?? serviceTarget.port);
container.livenessProbe.httpGet.port = livenessPort;
container.readinessProbe.httpGet.port = readinessPort;
delete container.ports;
for (const volume of pod.volumes ?? []) {
  for (const mount of container.volumeMounts ?? [])
    if (mount.name === volume.name) mount.name = `${volume.name}-${suffix}`;
  volume.name = `${volume.name}-${suffix}`;
}

mkdirSync(outDir, { recursive: true });
writeFileSync(resolve(outDir, "deployment.yaml"), Bun.YAML.stringify(deployment, null, 2));
writeFileSync(
  resolve(outDir, "secret.json"),
  JSON.stringify({ [urlRef.key]: Buffer.from(brokerUrl).toString("base64") }),
);

const shell = (value: string | number) => `'${String(value).replaceAll("'", "'\\''")}'`;
const out = {
  pod_name: `${name}-pod-0`,
  container_name: `${name}-pod-0-${container.name}`,
  secret_name: secretName,
  volumes: (pod.volumes ?? []).map((v: Doc) => v.name).join(" "),
  http_port: httpPort,
  liveness_path: container.livenessProbe.httpGet.path,
  liveness_port: livenessPort,
  readiness_path: container.readinessProbe.httpGet.path,
  readiness_port: readinessPort,
  metrics_path: service.metadata.annotations?.["prometheus.io/path"] ?? "/metrics",
  metrics_port: metricsPort,
  grace_seconds: pod.terminationGracePeriodSeconds ?? 30,
  workers: env("FIBRPC_WORKERS")?.value ?? "",
  memory_limit: container.resources?.limits?.memory ?? "",
  run_as_user: pod.securityContext?.runAsUser ?? container.securityContext?.runAsUser ?? "",
  read_only_root: container.securityContext?.readOnlyRootFilesystem === true ? "true" : "false",
};
for (const [key, value] of Object.entries(out)) console.log(`${key}=${shell(value)}`);
