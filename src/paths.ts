/**
 * Where the worker's code is, and tracing's SDK module. This module must stay at the root of
 * src/, next to cli.ts: in the compiled binary every module's import.meta.url is the entrypoint's,
 * so the path is written relative to cli.ts, and so it is right both from source
 * (`bun src/cli.ts`) and compiled (from the command line's bundle: a worker is sent SDK_URL).
 * The worker file is passed to `bun build --compile` as an extra entrypoint (scripts/build.ts).
 */
export const WORKER_URL = new URL("./serve/worker.ts", import.meta.url);

/**
 * tracing/sdk.ts (OpenTelemetry), an extra entrypoint too, imported by this URL (tracing/start.ts)
 * only when tracing is on: a specifier the bundler cannot follow keeps the SDK out of the command
 * line's and the worker's bundles, so a run without tracing does not even load its code.
 */
export const SDK_URL = new URL("./tracing/sdk.ts", import.meta.url);
