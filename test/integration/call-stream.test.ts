/**
 * `fibrpc call -` (issue 22): n streamed from stdin, at most --in-flight at a time, results in input
 * order or (--unordered) as they come; bad words reported and skipped; memory flat however long the
 * stream; a closed stdout, SIGINT and SIGTERM end it cleanly.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { Subprocess } from "bun";
import { join } from "node:path";
import { startProxy } from "../proxy.ts";
import {
  BIN,
  BROKER_PORT,
  cleanupAfterFile,
  eventually,
  pastEchoWindow,
  rawChannel,
  type Server,
  startServe,
  stderrOf,
  tempFolder,
  tracked,
  uniqueQueue,
  URL,
} from "../helpers.ts";

cleanupAfterFile();

const FIB = [0, 1, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 233, 377, 610, 987, 1597, 2584, 4181, 6765];
const queue = uniqueQueue("call_stream");
let serve: Server;

beforeAll(async () => {
  serve = await startServe(["--queue", queue, "--workers", "2"]);
});
afterAll(async () => {
  await serve.stop();
});

/** `fibrpc call - ARGS` with `input` on stdin (a string, or a command's stdout) from `/`, run by `through` if given. */
function callStream(args: string[], input: string | ReadableStream<Uint8Array>, through: string[] = []) {
  const env: Record<string, string | undefined> = { ...process.env, NO_COLOR: "1", FIBRPC_URL: URL };
  for (const k of Object.keys(env)) if (k.startsWith("OTEL_")) delete env[k];
  const cmd = [...through, BIN, "call", "-", "--queue", queue, ...args];
  const stdin = typeof input === "string" ? new Blob([input]) : input;
  return tracked(Bun.spawn(cmd, { cwd: "/", env, stdin, stdout: "pipe", stderr: "pipe" }));
}

/** The same, stdin a pipe the test writes to. */
function callStreamPiped(args: string[]) {
  const env: Record<string, string | undefined> = { ...process.env, NO_COLOR: "1", FIBRPC_URL: URL };
  for (const k of Object.keys(env)) if (k.startsWith("OTEL_")) delete env[k];
  const cmd = [BIN, "call", "-", "--queue", queue, ...args];
  return tracked(Bun.spawn(cmd, { cwd: "/", env, stdin: "pipe", stdout: "pipe", stderr: "pipe" }));
}

async function finished(proc: Subprocess<"pipe" | "ignore" | Blob | ReadableStream, "pipe", "pipe">) {
  const [stdout, stderr, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  return { stdout, stderr, code };
}

/** No stack trace, no source excerpt from the binary. */
const noTrace = (stderr: string) => expect(stderr).not.toMatch(/\n\s+at |\bat <anonymous>|\^$/m);

describe("reading n from stdin", () => {
  test("spaces, tabs and newlines separate n; results in input order, one per line; exit 0", async () => {
    const { stdout, stderr, code } = await finished(callStream([], "5 3\t20\n\n0 1\r\n7"));
    expect(stderr).toBe("");
    expect(stdout).toBe([5, 3, 20, 0, 1, 7].map((n) => `${FIB[n]}\n`).join(""));
    expect(code).toBe(0);
  });

  test("a bad word gets its own line, on stderr with its line number, and the stream goes on; exit 64", async () => {
    const long = "9".repeat(100);
    const { stdout, stderr, code } = await finished(callStream([], `5 x\n-3 ${long} 6\n7 a\u007f\u009b31m`));
    expect(stdout).toBe(`${FIB[5]}\n${FIB[6]}\n${FIB[7]}\n`);
    expect(stderr.trim().split("\n")).toEqual([
      'line 1: invalid n "x": n must be a decimal integer, got "x"',
      'line 2: invalid n "-3": n must not be negative, got "-3"',
      `line 2: invalid n "${"9".repeat(40)}…": longer than any n`,
      // DEL and C1 (U+009B: a terminal's CSI) escaped where the word is quoted, twice.
      'line 3: invalid n "a\\u007f\\u009b31m": n must be a decimal integer, got "a\\u007f\\u009b31m"',
    ]);
    expect(code).toBe(64);
  });

  test("--json: one object per word, in input order, bad words included", async () => {
    const { stdout, code } = await finished(callStream(["--json"], "8 abc 9"));
    const lines = stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(lines).toHaveLength(3);
    expect(lines[0]).toMatchObject({ n: 8, result: "21" });
    expect(lines[1]).toMatchObject({ input: "abc", line: 1, error: { code: "USAGE" } });
    expect(lines[2]).toMatchObject({ n: 9, result: "34" });
    expect(code).toBe(64);
  });

  test("--unordered: every line names its n; each n answered once", async () => {
    const ns = Array.from({ length: 500 }, (_, i) => i % 21);
    const { stdout, stderr, code } = await finished(callStream(["--unordered", "--in-flight", "50"], ns.join("\n")));
    expect(stderr).toBe("");
    const lines = stdout.trim().split("\n");
    expect(lines.toSorted()).toEqual(ns.map((n) => `${n} ${FIB[n]}`).toSorted());
    expect(code).toBe(0);
  });

  test("no server: call - looks before it reads, so the same input gives the same one line and exit 69", async () => {
    // Before, the look raced the reading of stdin: a bad word was reported or not, the exit 64 or 69.
    const missing = uniqueQueue("call_stream_missing");
    const noConsumer = uniqueQueue("call_stream_idle");
    const { ch } = await rawChannel();
    await ch.assertQueue(noConsumer, { durable: true });
    try {
      for (const [target, why] of [
        [missing, /^fibrpc: queue "call_stream_missing\S*" does not exist on the broker/],
        [noConsumer, /^fibrpc: queue "call_stream_idle\S*" on \S+ has no consumer: no server is running/],
      ] as const) {
        for (const json of [[], ["--json"]]) {
          const runs = Array.from({ length: 3 }, () => {
            const env = { ...process.env, NO_COLOR: "1", FIBRPC_URL: URL };
            const cmd = [BIN, "call", "-", "--queue", target, ...json];
            const stdin = new Blob(["abc\n1\n-1 5\n"]);
            return finished(tracked(Bun.spawn(cmd, { cwd: "/", env, stdin, stdout: "pipe", stderr: "pipe" })));
          });
          for (const { stdout, stderr, code } of await Promise.all(runs)) {
            expect(code, stderr).toBe(69);
            expect(stdout).toBe("");
            expect(stderr.trim().split("\n"), stderr).toHaveLength(1);
            expect(stderr.trim()).toMatch(why);
          }
        }
      }
    } finally {
      await ch.deleteQueue(noConsumer);
    }
  });

  test("- is given alone; --unordered and --in-flight are for call - only (exit 64)", async () => {
    for (const args of [
      ["-", "5"],
      ["5", "--unordered"],
      ["5", "--in-flight", "3"],
    ]) {
      const proc = tracked(Bun.spawn([BIN, "call", ...args], { cwd: "/", stdout: "pipe", stderr: "pipe" }));
      const { code, stdout, stderr } = await finished(proc);
      expect(code).toBe(64);
      expect(stdout).toBe("");
      expect(stderr).toMatch(/^fibrpc: (give - alone|--(unordered|in-flight) applies to `fibrpc call -` only)/);
    }
  });
});

describe("ending", () => {
  test("stdout closed (| head -3): exits 0 at once, without reading the rest, no stack trace", async () => {
    // A million n: read to the end, this would take minutes.
    const script = `seq 1 1000000 | "${BIN}" call - --queue ${queue} | head -3; echo "exit $\{PIPESTATUS[1]}"`;
    const proc = tracked(
      Bun.spawn(["bash", "-c", script], {
        cwd: "/",
        env: { ...process.env, FIBRPC_URL: URL },
        stdout: "pipe",
        stderr: "pipe",
      }),
    );
    const { stdout, stderr, code } = await finished(proc);
    expect(stdout).toBe("1\n1\n2\nexit 0\n");
    expect(stderr).toBe("");
    expect(code).toBe(0);
  }, 30_000);

  test("a pipeline whose stdout closes (| head -3): the requests it published are all confirmed and counted", async () => {
    // A queue without a consumer: every request the broker took waits in it, to be counted there.
    const requests = uniqueQueue();
    const replies = uniqueQueue();
    const { ch } = await rawChannel();
    await ch.assertQueue(requests, { durable: true });
    const script =
      `seq 1 5000 | "${BIN}" call - --reply-to ${replies} --no-wait --json --queue ${requests} | head -3 > /dev/null; ` +
      `echo "exit $\{PIPESTATUS[1]}" >&2`;
    const proc = tracked(
      Bun.spawn(["bash", "-c", script], {
        cwd: "/",
        env: { ...process.env, FIBRPC_URL: URL, NO_COLOR: "1" },
        stdout: "pipe",
        stderr: "pipe",
      }),
    );
    const { stderr } = await finished(proc);
    const said = /INFO {2}(\d+) of (\d+) requests taken by the broker \(confirmed\)/.exec(stderr);
    expect(said, stderr).not.toBeNull();
    expect(stderr).toContain("exit 0");
    const [taken, sent] = [Number(said![1]), Number(said![2])];
    expect(taken).toBe(sent);
    // Every request in the queue was counted: none published and left out of the count.
    expect((await ch.checkQueue(requests)).messageCount).toBe(taken);
  }, 30_000);

  for (const [signal, exit] of [
    ["SIGINT", 130],
    ["SIGTERM", 143],
  ] as const) {
    test(`${signal}: reading stops with stdin still open, the calls in flight are printed, exit ${exit}`, async () => {
      const proc = callStreamPiped(["--in-flight", "20"]);
      // Many n at once, stdin left open: only a signal can end this run.
      proc.stdin.write("22\n".repeat(2000));
      proc.stdin.flush();
      const out = proc.stdout.getReader();
      const first = await out.read();
      expect(first.done).toBe(false);
      proc.kill(signal);
      let stdout = new TextDecoder().decode(first.value);
      for (;;) {
        const chunk = await out.read();
        if (chunk.done) break;
        stdout += new TextDecoder().decode(chunk.value);
      }
      const [stderr, code] = await Promise.all([new Response(proc.stderr).text(), proc.exited]);
      expect(code).toBe(exit);
      // Every line a whole result (nothing cut, no error), fewer than the n sent: reading stopped.
      const lines = stdout.trim().split("\n");
      for (const line of lines) expect(line).toBe("17711");
      expect(lines.length).toBeLessThan(2000);
      expect(stderr).toMatch(new RegExp(`${signal}: reading stopped; the calls in flight finish`));
      expect(stderr).not.toMatch(/fib\(\d+\):/);
      noTrace(stderr);
    });
  }

  test("SIGTERM while reading input that is always there and holds no n (/dev/zero, `yes x`): it stops, exit 143", async () => {
    // Read without ever waiting on anything (the input always there, the error lines written to a file at once),
    // such input kept the signal's handler from running. It comes from outside the test process, as fast as the
    // kernel gives it: /dev/zero, and `yes` through a FIFO.
    const folder = tempFolder("fibrpc-stream-");
    const fifo = join(folder, "input");
    const errors = join(folder, "errors");
    expect(Bun.spawnSync(["mkfifo", fifo]).exitCode).toBe(0);
    for (const producer of ["cat /dev/zero", "yes x"]) {
      const writer = tracked(Bun.spawn(["sh", "-c", `exec ${producer} > ${fifo}`]));
      // As `fibrpc call - < fifo 2> errors` is run; exec: the shell's pid is fibrpc's.
      const proc = callStream([], "", ["sh", "-c", `exec "$0" "$@" < ${fifo} 2> ${errors}`]);
      // Well into it: the producer has written 1 MiB, which a pipe holds only 64 KiB of.
      const written = async () => Number(/wchar: (\d+)/.exec(await Bun.file(`/proc/${writer.pid}/io`).text())?.[1]);
      await eventually(written, (bytes) => bytes > 1 << 20, 15_000, `${producer}: 1 MiB read`);
      proc.kill("SIGTERM");
      const code = await proc.exited;
      writer.kill();
      expect(code, producer).toBe(143);
      expect((await Bun.file(errors).text()).trimEnd().split("\n").at(-1), producer).toMatch(
        /INFO {2}SIGTERM: reading stopped; the calls in flight finish/,
      );
    }
  });

  test("a second SIGINT ends the calls in flight at once, each reported; exit 130", async () => {
    // A consumer that takes requests and never answers: the calls stay in flight.
    const silent = uniqueQueue("call_stream_silent");
    const { conn, ch } = await rawChannel();
    // A broker's refusal closes the connection: a failed test, not an error thrown at the tests after it.
    conn.on("error", () => {});
    try {
      // Durable: RabbitMQ 4.3 may deny transient non-exclusive queues (transient_nonexcl_queues).
      await ch.assertQueue(silent, { durable: true });
      let taken = 0;
      const allTaken = Promise.withResolvers<void>();
      await ch.consume(silent, () => ++taken === 3 && allTaken.resolve(), { noAck: true });
      const env = { ...process.env, NO_COLOR: "1", FIBRPC_URL: URL };
      const proc = tracked(
        Bun.spawn([BIN, "call", "-", "--queue", silent], {
          cwd: "/",
          env,
          stdin: "pipe",
          stdout: "pipe",
          stderr: "pipe",
        }),
      );
      proc.stdin.write("1 2 3\n");
      proc.stdin.flush();
      await allTaken.promise;
      proc.kill("SIGINT");
      const errors = stderrOf(proc);
      await errors.until(/reading stopped/);
      await pastEchoWindow();
      proc.kill("SIGINT");
      const [stderr, code] = await Promise.all([errors.all(), proc.exited]);
      expect(code).toBe(130);
      // INTERRUPTED, not CONNECTION_LOST: the user ended them, and nothing says a retry would help.
      for (const n of [1, 2, 3]) expect(stderr).toContain(`fib(${n}): INTERRUPTED: ended by a second SIGINT`);
      noTrace(stderr);
    } finally {
      await conn.close();
    }
  });
});

describe("the server goes away while calls wait", () => {
  test("reading stops at the first call that times out on a queue with no consumer now: NO_CONSUMER, exit 69", async () => {
    // A hand-made server that answers, then goes (its channel closed): the later requests wait in a queue
    // nobody consumes. Before, each n went on to wait out its --timeout, the whole stream through.
    const gone = uniqueQueue("call_stream_gone");
    const { conn, ch } = await rawChannel();
    conn.on("error", () => {});
    try {
      await ch.assertQueue(gone, { durable: true });
      const server = await conn.createChannel();
      await server.consume(gone, (msg) => {
        if (!msg) return;
        server.sendToQueue(msg.properties.replyTo, Buffer.from("1"), { correlationId: msg.properties.correlationId });
        server.ack(msg);
      });
      const env = { ...process.env, NO_COLOR: "1", FIBRPC_URL: URL };
      const proc = tracked(
        Bun.spawn([BIN, "call", "-", "--queue", gone, "--timeout", "1s"], {
          cwd: "/",
          env,
          stdin: "pipe",
          stdout: "pipe",
          stderr: "pipe",
        }),
      );
      const stdout = proc.stdout.getReader();
      proc.stdin.write("1\n");
      proc.stdin.flush();
      expect(new TextDecoder().decode((await stdout.read()).value)).toBe("1\n");
      await server.close();
      // stdin stays open: the stream ends by itself, not at EOF.
      proc.stdin.write("2\n1\n");
      proc.stdin.flush();
      const [stderr, code] = await Promise.all([new Response(proc.stderr).text(), proc.exited]);
      expect(code).toBe(69);
      expect(stderr).toMatch(
        /^fibrpc: no reply within the timeout, and queue "call_stream_gone_\w+" on amqp:\/\/guest:\*\*\*@127\.0\.0\.1:\d+ has no consumer now: the server the call went to has stopped; start one with `fibrpc serve`/,
      );
      expect(stderr.trim().split("\n")).toHaveLength(1);
      expect((await stdout.read()).done).toBe(true);
    } finally {
      await conn.close();
    }
  });
});

describe("--retry over a long stream", () => {
  test("a connection lost after the stream's first --timeout is made again, and the stream goes on", async () => {
    // Before: reconnections were bounded by the deadline of the command's start, long past in a stream
    // (each n has its own --timeout): every one got 1 ms, and no n after the loss was answered.
    const proxy = await startProxy(BROKER_PORT);
    try {
      const env: Record<string, string | undefined> = { ...process.env, NO_COLOR: "1" };
      for (const k of Object.keys(env)) if (k.startsWith("OTEL_") || k.startsWith("FIBRPC_")) delete env[k];
      const url = `amqp://guest:guest@127.0.0.1:${proxy.port}`;
      const cmd = [BIN, "call", "-", "--queue", queue, "--url", url, "--timeout", "1s", "--retry", "2"];
      const proc = tracked(Bun.spawn(cmd, { cwd: "/", env, stdin: "pipe", stdout: "pipe", stderr: "pipe" }));
      const stdout = proc.stdout.getReader();
      proc.stdin.write("10\n");
      proc.stdin.flush();
      expect(new TextDecoder().decode((await stdout.read()).value)).toBe("55\n");
      // The condition itself, not a wait for an event: the stream has now run longer than its --timeout.
      await Bun.sleep(1_200);
      proxy.cut();
      proc.stdin.write("11\n");
      proc.stdin.end();
      let rest = "";
      for (let chunk = await stdout.read(); !chunk.done; chunk = await stdout.read())
        rest += new TextDecoder().decode(chunk.value);
      const [stderr, code] = await Promise.all([new Response(proc.stderr).text(), proc.exited]);
      expect(rest, stderr).toBe("89\n");
      expect(code, stderr).toBe(0);
    } finally {
      await proxy.close();
    }
  });
});

/** A bash script running "$BIN" (fibrpc), for its redirections (`> /dev/full`, `< /tmp`, `| head`), from `/`. */
async function shell(script: string) {
  const env: Record<string, string | undefined> = { ...process.env, NO_COLOR: "1", FIBRPC_URL: URL, BIN };
  for (const k of Object.keys(env)) if (k.startsWith("OTEL_")) delete env[k];
  return finished(tracked(Bun.spawn(["bash", "-c", script], { cwd: "/", env, stdout: "pipe", stderr: "pipe" })));
}

describe("stdin and stdout that fail", () => {
  test("stdout that cannot be written (a full disk): one line, exit 74, with n given and streamed", async () => {
    for (const script of [
      `"$BIN" call --queue ${queue} 5 6 > /dev/full`,
      `"$BIN" call --queue ${queue} --json 5 > /dev/full`,
      `seq 1 3000 | "$BIN" call - --queue ${queue} > /dev/full`,
    ]) {
      const { stderr, code } = await shell(script);
      expect(code, script).toBe(74);
      expect(stderr.trim().split("\n"), script).toEqual([
        expect.stringMatching(/^fibrpc: cannot write to stdout: ENOSPC.*; check where stdout goes/),
      ]);
    }
  });

  test("the same for help, --version and completion: one line, exit 74", async () => {
    for (const script of [
      `"$BIN" --help > /dev/full`,
      `"$BIN" call --help > /dev/full`,
      `"$BIN" --version > /dev/full`,
      `"$BIN" completion bash > /dev/full`,
    ]) {
      const { stderr, code } = await shell(script);
      expect(code, script).toBe(74);
      expect(stderr, script).toMatch(/^fibrpc: cannot write to stdout: ENOSPC[^\n]*\n$/);
    }
  });

  test("a reader that goes away (`| head`) ends the output, no error: exit 0 with n given, as streamed", async () => {
    // Three results of 208,988 digits: more than the pipe holds once head has gone.
    const { stdout, stderr } = await shell(
      `"$BIN" call --queue ${queue} 1000000 1000000 1000000 | head -c 5; echo " \${PIPESTATUS[0]}"`,
    );
    expect(stdout).toBe("19532 0\n");
    expect(stderr).toBe("");
  });

  test("stderr whose reader goes away: the stream goes on to its end, its results on stdout; exit 64", async () => {
    // 50,000 bad words, a line on stderr each (far more than a pipe holds once head has gone), then 30.
    const { stdout, stderr } = await shell(
      `{ yes x | head -50000; echo 30; } | "$BIN" call - --queue ${queue} 2> >(head -1 >/dev/null); echo "exit $?"`,
    );
    expect(stdout).toBe("832040\nexit 64\n");
    expect(stderr).toBe("");
  });

  test("stdin that cannot be read (a directory): one line, exit 74", async () => {
    const { stderr, code } = await shell(`"$BIN" call - --queue ${queue} < /tmp`);
    expect(code).toBe(74);
    expect(stderr).toMatch(/^fibrpc: cannot read the n from stdin: EISDIR.*; give call - the n as a file or a pipe/);
    noTrace(stderr);
  });

  test("input that ends inside a character is refused, as the same bytes on a line of their own", async () => {
    for (const input of ["12\\xe2\\x82", "12\\xe2\\x82\\n"]) {
      const { stdout, stderr, code } = await shell(`printf '${input}' | "$BIN" call - --queue ${queue}`);
      expect(code, input).toBe(64);
      expect(stdout, input).toBe("");
      expect(stderr, input).toStartWith('line 1: invalid n "12\ufffd": ');
    }
  });
});

test("a pipeline to a request queue that does not exist: one line, exit 69, stdin unread, no reply queue made", async () => {
  const missing = uniqueQueue("call_stream_missing");
  const replies = uniqueQueue("call_stream_replies");
  for (const script of [
    `"$BIN" call --queue ${missing} --reply-to ${replies} --no-wait 4 5`,
    `seq 1 100000 | "$BIN" call - --queue ${missing} --reply-to ${replies} --no-wait`,
  ]) {
    const { stderr, code } = await shell(script);
    expect(code, script).toBe(69);
    expect(stderr.trim().split("\n"), script).toEqual([expect.stringContaining(`queue "${missing}" does not exist`)]);
  }
  const { conn, ch } = await rawChannel();
  try {
    ch.on("error", () => {});
    const found = await ch.checkQueue(replies).then(
      () => "there",
      () => "missing",
    );
    expect(found).toBe("missing");
  } finally {
    await conn.close().catch(() => {});
  }
});

test("a --reply-to queue another connection holds: one line naming --reply-to, exit 78", async () => {
  const replies = uniqueQueue("call_stream_held");
  const { conn, ch } = await rawChannel();
  try {
    await ch.assertQueue(replies, { exclusive: true });
    const { stderr, code } = await shell(`"$BIN" call --queue ${queue} --reply-to ${replies} --no-wait 4`);
    expect(code).toBe(78);
    expect(stderr.trim().split("\n")).toEqual([expect.stringMatching(/stop that client, or pick another --reply-to$/)]);
  } finally {
    await conn.close().catch(() => {});
  }
});
