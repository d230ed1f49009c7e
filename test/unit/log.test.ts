/**
 * log.ts's two formats as a reader sees them: a traced request's ids (tracing/tracer.ts, TraceIds)
 * at the top of a JSON line and nowhere in a pretty one; a log call given no ids (tracing off:
 * `span?.ids` is undefined) writes the same line as one without the argument.
 */
import { describe, expect, test } from "bun:test";
import { createLogger, type LogFormat } from "../../src/log.ts";
import { Masker } from "../../src/mask.ts";

/** The lines `log` writes to stderr while `body` runs (the reporters write synchronously). */
function linesOf(
  format: LogFormat,
  body: (log: ReturnType<typeof createLogger>) => void,
  drawsInPlace = false,
): string[] {
  const log = createLogger({
    level: "debug",
    format,
    tag: "worker-1",
    masker: new Masker([]),
    noColor: true,
    drawsInPlace,
  });
  const lines: string[] = [];
  const write = process.stderr.write;
  process.stderr.write = ((chunk: string) => lines.push(chunk) > 0) as typeof process.stderr.write;
  try {
    body(log);
  } finally {
    process.stderr.write = write;
  }
  return lines;
}

const IDS = { trace_id: "0af7651916cd43dd8448eb211c80319c", span_id: "b7ad6b7169203331", trace_flags: "01" };

describe("JSON", () => {
  test("a span's ids go at the top level, other fields stay in fields", () => {
    const [line] = linesOf("json", (log) => log.warn("dropped a request: no reply_to", IDS, { queue: "q" }));
    const entry = JSON.parse(line!);
    expect(Object.keys(entry)).toEqual([
      "time",
      "level",
      "worker",
      "message",
      "trace_id",
      "span_id",
      "trace_flags",
      "fields",
    ]);
    expect(entry).toMatchObject({ level: "warn", message: "dropped a request: no reply_to", ...IDS });
    expect(entry.fields).toEqual({ queue: "q" });
  });

  test("ids alone: no fields key", () => {
    const [line] = linesOf("json", (log) => log.debug("fib(30) → 6 bytes", IDS));
    const entry = JSON.parse(line!);
    expect(entry).toMatchObject(IDS);
    expect("fields" in entry).toBe(false);
  });

  test("undefined in their place (tracing off): the line without them", () => {
    const [traced, untraced] = linesOf("json", (log) => {
      log.debug("fib(30) → 6 bytes", undefined);
      log.debug("fib(30) → 6 bytes");
    }).map((l) => JSON.parse(l));
    const { time: _t1, ...a } = traced;
    const { time: _t2, ...b } = untraced;
    expect(a).toEqual(b);
    expect(a).toEqual({ level: "debug", worker: "worker-1", message: "fib(30) → 6 bytes" });
  });
});

describe("pretty", () => {
  test("no ids: a line for a human stays as it was", () => {
    const [withIds, without, undef] = linesOf("pretty", (log) => {
      log.warn("dropped a request: no reply_to", IDS);
      log.warn("dropped a request: no reply_to");
      log.warn("dropped a request: no reply_to", undefined);
    }).map((l) => l.slice(l.indexOf(" ")));
    expect(withIds).toBe(" WARN  [worker-1] dropped a request: no reply_to\n");
    expect(without).toBe(withIds);
    expect(undef).toBe(withIds);
  });

  test("one line per entry: text from the broker cannot break it, forge a line, or reach the terminal raw", () => {
    const broker = "NOT_FOUND - no queue 'jobs\n2026-12-07T00:00:00.000Z INFO  forged' in vhost '/' \u001b[2J";
    const lines = linesOf("pretty", (log) => log.warn(`cannot connect: ${broker}`));
    expect(lines).toHaveLength(1);
    expect(lines[0]!.split("\n")).toEqual([expect.any(String), ""]);
    expect(lines[0]).toContain("no queue 'jobs\\n2026-12-07T00:00:00.000Z INFO  forged' in vhost '/' \\u001b[2J\n");
  });
});

test("with a line drawn in place on a terminal (bench's progress bar), a pretty line first erases it", () => {
  const tty = Object.getOwnPropertyDescriptor(process.stderr, "isTTY");
  const cases: [isTTY: boolean, drawsInPlace: boolean][] = [
    [true, true],
    [true, false],
    [false, true],
  ];
  for (const [isTTY, drawsInPlace] of cases) {
    Object.defineProperty(process.stderr, "isTTY", { value: isTTY, configurable: true });
    try {
      const [line] = linesOf("pretty", (log) => log.info("SIGINT: no new calls"), drawsInPlace);
      expect(line!.startsWith("\r\u001b[K")).toBe(isTTY && drawsInPlace);
      expect(line).toEndWith(" INFO  [worker-1] SIGINT: no new calls\n");
    } finally {
      if (tty) Object.defineProperty(process.stderr, "isTTY", tty);
      else delete (process.stderr as { isTTY?: boolean }).isTTY;
    }
  }
});
