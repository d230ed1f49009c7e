/**
 * Where the worker's code is. This module must stay at the root of src/, next to cli.ts: in the
 * compiled binary every module's import.meta.url is the entrypoint's, so the path is written
 * relative to cli.ts, and so it is right both from source (`bun src/cli.ts`) and compiled.
 * The worker file is passed to `bun build --compile` as an extra entrypoint (scripts/build.ts).
 */
export const WORKER_URL = new URL("./serve/worker.ts", import.meta.url);
