/**
 * A minimal OTLP/HTTP trace sink for benchmarks: on 127.0.0.1, a port of its own, it answers every
 * POST /v1/traces 200 with an empty ExportTraceServiceResponse (empty protobuf; "{}" for http/json)
 * and counts the exports and their bytes. It decodes nothing: a benchmark measures what tracing
 * costs fibrpc, not a collector's work (test/otlp-receiver.ts is the decoding one, for tests).
 *
 * It runs in the benchmark's own process: the benchmark must wait for its children asynchronously
 * (Bun.spawn, not Bun.spawnSync, which would stop this server from answering while they run).
 */
export interface OtlpSink {
  /** The base endpoint, for OTEL_EXPORTER_OTLP_ENDPOINT. */
  readonly endpoint: string;
  /** Exports answered so far. */
  readonly exports: number;
  /** Their bodies' bytes, as sent (compressed, if they were). */
  readonly bytes: number;
  stop(): Promise<void>;
}

export function startOtlpSink(): OtlpSink {
  let exports = 0;
  let bytes = 0;
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    async fetch(req) {
      if (req.method !== "POST" || new URL(req.url).pathname !== "/v1/traces")
        return new Response(null, { status: 404 });
      bytes += (await req.arrayBuffer()).byteLength;
      exports++;
      const json = (req.headers.get("content-type") ?? "").startsWith("application/json");
      return json
        ? new Response("{}", { headers: { "content-type": "application/json" } })
        : new Response(new Uint8Array(0), { headers: { "content-type": "application/x-protobuf" } });
    },
  });
  return {
    endpoint: `http://127.0.0.1:${server.port}`,
    get exports() {
      return exports;
    },
    get bytes() {
      return bytes;
    },
    async stop() {
      await server.stop(true);
    },
  };
}
