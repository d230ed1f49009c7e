/**
 * call -'s pure parts: the words of a stream (call/tokens.ts), and the window (call/stream.ts) with a
 * stand-in for the calls, which settle when the test says: order, bound on calls in flight, stop.
 * The command itself, against a broker, is test/integration/call-stream.test.ts.
 */
import { describe, expect, test } from "bun:test";
import { PassThrough, Writable } from "node:stream";
import { StdoutLines } from "../../src/call/stdout-lines.ts";
import { CallStream } from "../../src/call/stream.ts";
import { MAX_BATCH, MAX_TOKEN_LENGTH, tokensOf, type Token } from "../../src/call/tokens.ts";
import { Masker } from "../../src/mask.ts";
import type { CallOutcome } from "../../src/rpc/client.ts";
import { MAX_PROTOCOL_N } from "../../src/rpc/protocol.ts";

async function* chunks(parts: string[]) {
  for (const p of parts) yield new TextEncoder().encode(p);
}
async function words(parts: string[]): Promise<Token[]> {
  const out: Token[] = [];
  for await (const batch of tokensOf(chunks(parts))) out.push(...batch);
  return out;
}

/** A stream of `text` (plain output, in order, 4 in flight) run to its end with `call`; its stderr lines. */
async function runStream(text: string, call: (n: number) => Promise<CallOutcome>) {
  const errors: string[] = [];
  const stream = new CallStream({
    tokens: tokensOf(chunks([text])),
    call,
    out: new StdoutLines(new PassThrough()),
    err: (line) => errors.push(line),
    style: { json: false, named: false, masker: new Masker() },
    inFlight: 4,
    unordered: false,
  });
  await stream.run();
  return { errors, stream };
}

describe("the words of a stream", () => {
  test("any whitespace separates; a word split across chunks is one; line numbers count newlines", async () => {
    const found = await words(["  1", "2 3\t4\r\n\n5", "6\n 7"]);
    expect(found.map((t) => [t.text, t.line])).toEqual([
      ["12", 1],
      ["3", 1],
      ["4", 1],
      ["56", 3],
      ["7", 4],
    ]);
    expect(found.every((t) => !t.cut)).toBe(true);
  });

  test("a word longer than any n is cut, not held: its start, marked cut, then the next word", async () => {
    const found = await words(["x".repeat(30), "y".repeat(10_000), "z 9"]);
    expect(found).toEqual([
      {
        text: ("x".repeat(30) + "y".repeat(10_000)).slice(0, MAX_TOKEN_LENGTH),
        line: 1,
        cut: true,
        written: `${("x".repeat(30) + "y".repeat(10_000)).slice(0, MAX_TOKEN_LENGTH)}…`,
      },
      { text: "9", line: 1, cut: false, written: "9" },
    ]);
  });

  test("leading zeros are not length: any number of them reads as one zero, across chunks", async () => {
    // The command line takes `0…030` with any number of zeros (as 30): the stream must not call it too long.
    const found = await words(["0".repeat(60), `${"0".repeat(10_000)}30 0000 07 00x ${"0".repeat(50)}abc`]);
    const zeros = `${"0".repeat(MAX_TOKEN_LENGTH)}…`;
    expect(found).toEqual([
      { text: "030", line: 1, cut: false, written: zeros },
      { text: "0000", line: 1, cut: false, written: "0000" },
      { text: "07", line: 1, cut: false, written: "07" },
      { text: "00x", line: 1, cut: false, written: "00x" },
      // Long: read as "0abc", quoted as written (its start), never as "0abc", which nobody wrote.
      { text: "0abc", line: 1, cut: false, written: zeros },
    ]);
  });

  test("a character cut off by the end of the input is U+FFFD in the last word, not dropped", async () => {
    // "12" then the first two bytes of "€" (e2 82 ac): as an argument, or on a line of its own, it is refused.
    const out: Token[] = [];
    async function* raw() {
      yield new Uint8Array([0x31, 0x32, 0xe2]);
      yield new Uint8Array([0x82]);
    }
    for await (const batch of tokensOf(raw())) out.push(...batch);
    expect(out).toEqual([{ text: "12\ufffd", line: 1, cut: false, written: "12\ufffd" }]);
  });

  test("LF, CR LF and a lone CR each end one line, across chunks too", async () => {
    const found = await words(["a\rb\nc\r", "\nd\r\re\r\n", "f"]);
    expect(found.map((t) => [t.text, t.line])).toEqual([
      ["a", 1],
      ["b", 2],
      ["c", 3],
      ["d", 4],
      ["e", 6],
      ["f", 7],
    ]);
  });

  test("a chunk of many words is handed on in batches of at most MAX_BATCH, none lost", async () => {
    const sizes: number[] = [];
    let total = 0;
    for await (const batch of tokensOf(chunks(["1 ".repeat(3 * MAX_BATCH + 5)]))) {
      sizes.push(batch.length);
      total += batch.length;
    }
    expect(Math.max(...sizes)).toBe(MAX_BATCH);
    expect(total).toBe(3 * MAX_BATCH + 5);
  });

  test("a multi-byte character split across chunks is decoded whole", async () => {
    const bytes = new TextEncoder().encode("é 5");
    async function* split() {
      yield bytes.slice(0, 1);
      yield bytes.slice(1);
    }
    const found: string[] = [];
    for await (const batch of tokensOf(split())) found.push(...batch.map((t) => t.text));
    expect(found).toEqual(["é", "5"]);
  });
});

/** A stream of `input` over stand-in calls that settle when `answer(n)` is called; stdout collected. */
function harness(input: string, opts: { inFlight: number; unordered?: boolean }) {
  const out = new PassThrough();
  let text = "";
  out.on("data", (c: Buffer) => {
    text += c.toString();
  });
  const waiting = new Map<number, ((o: CallOutcome) => void)[]>();
  let running = 0;
  let most = 0;
  const stream = new CallStream({
    tokens: tokensOf(chunks([input])),
    call: (n) =>
      new Promise((resolve) => {
        running++;
        most = Math.max(most, running);
        waiting.set(n, [...(waiting.get(n) ?? []), resolve]);
      }),
    out: new StdoutLines(out),
    err: () => {},
    style: { json: false, named: opts.unordered === true, masker: new Masker() },
    inFlight: opts.inFlight,
    unordered: opts.unordered === true,
  });
  const answer = (n: number) => {
    const resolve = waiting.get(n)!.shift()!;
    running--;
    resolve({ n, ok: true, result: `r${n}`, ms: 1 });
  };
  return { stream, answer, waiting, stdout: () => text, most: () => most };
}

const turn = () => new Promise((r) => setImmediate(r));

describe("the window", () => {
  test("in input order whatever order the answers come in; never more than --in-flight calls", async () => {
    const h = harness("1 2 3 4 5 6", { inFlight: 2 });
    const done = h.stream.run();
    await turn();
    expect([...h.waiting.keys()]).toEqual([1, 2]);
    h.answer(2);
    await turn();
    expect(h.stdout()).toBe("");
    h.answer(1);
    for (const n of [3, 4, 5, 6]) {
      await turn();
      h.answer(n);
    }
    expect(await done).toBe(0);
    expect(h.stdout()).toBe("r1\nr2\nr3\nr4\nr5\nr6\n");
    expect(h.most()).toBe(2);
  });

  test("--unordered: each result as it comes, naming its n", async () => {
    const h = harness("7 8", { inFlight: 5, unordered: true });
    const done = h.stream.run();
    // The last word is known at the input's end, a turn of the event loop after the words before it.
    for (let turns = 0; turns < 10 && !h.waiting.has(8); turns++) await turn();
    h.answer(8);
    await turn();
    h.answer(7);
    expect(await done).toBe(0);
    expect(h.stdout()).toBe("8 r8\n7 r7\n");
  });

  test("stopped: nothing more is read, the calls in flight are printed", async () => {
    const h = harness("1 2 3 4 5", { inFlight: 2 });
    const done = h.stream.run();
    await turn();
    h.stream.stop({ signal: "SIGINT" });
    h.answer(1);
    h.answer(2);
    await done;
    expect(h.stdout()).toBe("r1\nr2\n");
    expect(h.waiting.get(3)).toBeUndefined();
  });
});

describe("bad words and the tally", () => {
  test("stdout that fails (a full disk) ends the output and is kept for the command to report", async () => {
    const full = new Writable({
      write(_chunk, _encoding, done) {
        done(Object.assign(new Error("ENOSPC: no space left on device"), { code: "ENOSPC" }));
      },
    });
    full.on("error", () => {});
    const out = new StdoutLines(full);
    out.write("1\n");
    await out.end();
    expect(out.failure?.message).toContain("ENOSPC");
    expect(out.closed).toBe(true);
  });

  test("a bad word's line comes after the results before it, on a terminal that shows stdout and stderr", async () => {
    const both: string[] = [];
    const terminal = new Writable({
      write(chunk, _encoding, done) {
        both.push(String(chunk));
        done();
      },
    });
    const stream = new CallStream({
      tokens: tokensOf(chunks(["5 x 6\n"])),
      call: async (n) => ({ n, ok: true, result: String(n * 10), ms: 1 }) as CallOutcome,
      out: new StdoutLines(terminal),
      err: (line) => both.push(line),
      style: { json: false, named: false, masker: new Masker() },
      inFlight: 4,
      unordered: false,
    });
    await stream.run();
    expect(both.join("").split("\n").filter(Boolean)).toEqual([
      "50",
      expect.stringMatching(/^line 1: invalid n "x"/),
      "60",
    ]);
  });

  test("a long word of leading zeros that is not an n is quoted as written, never as what was read", async () => {
    const text = `${"0".repeat(50)}abc ${"0".repeat(50)}12345678901234567\n`;
    const { errors } = await runStream(text, async (n) => ({ n, ok: true, result: "r", ms: 1 }));
    const zeros = JSON.stringify(`${"0".repeat(MAX_TOKEN_LENGTH)}…`);
    expect(errors).toEqual([
      `line 1: invalid n ${zeros}: n must be a decimal integer, got ${zeros}\n`,
      `line 1: invalid n ${zeros}: n must be at most ${MAX_PROTOCOL_N}, got ${zeros}\n`,
    ]);
  });

  test("a bad word's control characters are escaped once; the tally counts calls, not bad words", async () => {
    const { errors, stream } = await runStream("2\u0000 3 x\u0001 4\n\u009b5 \u007f\n", async (n) =>
      n === 4
        ? ({ n, ok: false, error: undefined, code: "X", message: "no", ms: 1 } as unknown as CallOutcome)
        : { n, ok: true, result: "r", ms: 1 },
    );
    expect(errors[0]).toStartWith('line 1: invalid n "2\\u0000": ');
    expect(errors[1]).toStartWith('line 1: invalid n "x\\u0001": ');
    // C1 (U+009B is a terminal's CSI) and DEL, which JSON leaves as they are.
    expect(errors[3]).toStartWith('line 2: invalid n "\\u009b5": ');
    expect(errors[4]).toStartWith('line 2: invalid n "\\u007f": ');
    expect(stream.tally).toEqual({ calls: 2, ok: 1 });
  });
});
