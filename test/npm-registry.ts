/**
 * A private npm registry on loopback (Verdaccio 6.8, from test/registry/: a tree of its own, see
 * its package.json; 6.10 wants Node 22), and an npm that uses only it: for the tests of fibrpc's npm
 * packages, installed as users install them.
 *
 * - The registry keeps its packages in a temporary folder and has no uplink: what is installed
 *   from it is what the test published, nothing from the public registry.
 * - `env` points npm, npx and bun at it through a user config, cache, global config, prefix, logs
 *   folder, HOME and XDG folders of the test's own: the machine's npm and bun configuration and
 *   caches are not read or written (the caller drops the npm_config_* and BUN_* it inherited).
 * - stop() ends Verdaccio; the test file's cleanup removes the folders (tempFolder).
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { freePort, ROOT, tempFolder, tracked } from "./helpers.ts";

export interface NpmRegistry {
  url: string;
  /** The environment for npm, npx and bun to use this registry and nothing of the machine's. */
  env: Record<string, string>;
  /** Where `npm install -g` puts packages (`<prefix>/bin/fibrpc`). */
  prefix: string;
  stop(): Promise<void>;
}

const VERDACCIO = join(ROOT, "test/registry/node_modules/verdaccio/bin/verdaccio");

/** Starts Verdaccio on a free port, with a user to publish as; resolves once it answers. */
export async function startNpmRegistry(): Promise<NpmRegistry> {
  const home = tempFolder("fibrpc-registry-");
  const port = await freePort();
  const url = `http://127.0.0.1:${port}/`;
  const config = join(home, "config.yaml");
  writeFileSync(
    config,
    [
      `storage: ${join(home, "storage")}`,
      "auth:",
      "  htpasswd:",
      `    file: ${join(home, "htpasswd")}`,
      // The platform packages are ~50 MB each (the default limit is 10 MB).
      "max_body_size: 500mb",
      "uplinks: {}",
      "packages:",
      '  "**":',
      "    access: $all",
      "    publish: $authenticated",
      "log: { type: stdout, format: pretty, level: warn }",
      "web: { enable: false }",
      "",
    ].join("\n"),
  );
  const proc = tracked(
    Bun.spawn(["node", VERDACCIO, "--config", config, "--listen", `127.0.0.1:${port}`], {
      cwd: home,
      stdout: "pipe",
      // Only Node's warning about running as root.
      stderr: "ignore",
      stdin: "ignore",
    }),
  );
  await waitUntilListening(proc, 30_000);

  // A user to publish as: npm publish needs a token, and Verdaccio hands one out on sign-up.
  const signUp = await fetch(`${url}-/user/org.couchdb.user:fibrpc`, {
    method: "PUT",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ name: "fibrpc", password: "fibrpc-test", type: "user", roles: [], date: new Date() }),
  });
  const { token } = (await signUp.json()) as { token?: string };
  if (!token) throw new Error(`the registry gave no token on sign-up (HTTP ${signUp.status})`);

  const npmrc = join(home, "npmrc");
  writeFileSync(npmrc, `registry=${url}\n//127.0.0.1:${port}/:_authToken=${token}\n`);
  const empty = join(home, "global-npmrc");
  writeFileSync(empty, "");
  const prefix = join(home, "prefix");
  const env: Record<string, string> = {
    PATH: `${join(prefix, "bin")}:${process.env.PATH}`,
    HOME: join(home, "home"),
    // bun reads $XDG_CONFIG_HOME/.bunfig.toml; neither it nor npm may find the machine's.
    XDG_CONFIG_HOME: join(home, "config"),
    XDG_CACHE_HOME: join(home, "cache"),
    npm_config_userconfig: npmrc,
    npm_config_globalconfig: empty,
    npm_config_registry: url,
    npm_config_cache: join(home, "npm-cache"),
    npm_config_prefix: prefix,
    npm_config_logs_dir: join(home, "npm-logs"),
    npm_config_update_notifier: "false",
    npm_config_audit: "false",
    npm_config_fund: "false",
    // bun: the same registry, and a cache of its own.
    BUN_CONFIG_REGISTRY: url,
    BUN_INSTALL_CACHE_DIR: join(home, "bun-cache"),
    NO_COLOR: "1",
  };
  return {
    url,
    env,
    prefix,
    async stop() {
      proc.kill("SIGTERM");
      await proc.exited;
    },
  };
}

/** Resolves when Verdaccio says it listens (its "http address" line, at warn level); rejects if it exits or after `ms`. */
async function waitUntilListening(proc: Subprocess<"ignore", "pipe", "ignore">, ms: number): Promise<void> {
  let output = "";
  const { promise: listening, resolve, reject } = Promise.withResolvers<void>();
  // Read to the end, past the line, so that Verdaccio never blocks on a full pipe.
  (async () => {
    const decoder = new TextDecoder();
    for await (const chunk of proc.stdout) {
      output += decoder.decode(chunk, { stream: true });
      if (/http address - http:\/\/127\.0\.0\.1:\d+\//.test(output)) resolve();
    }
    reject(new Error(`Verdaccio exited (${await proc.exited}) before listening: ${output.trim()}`));
  })();
  let timer: Timer | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`Verdaccio did not listen within ${ms} ms: ${output.trim()}`)), ms);
  });
  try {
    await Promise.race([listening, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
