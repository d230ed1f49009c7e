/**
 * When the broker says no: every refusal RabbitMQ sends on connect, declare, consume or publish
 * reaches the user as one line with the broker's own reason and code, what to do, and the
 * documented exit code (77 for access and permissions, 78 for limits and locked queues); serve
 * exits at start-up instead of waiting forever, and --retry does not retry. All on a private node
 * of the suite's release, whose users, permissions, vhosts and limits are set with rabbitmqctl
 * (RabbitMQ 3.10 and 4.x word some reasons differently: the patterns take both).
 */
import { beforeAll, describe, expect, test } from "bun:test";
import { connect, type ChannelModel } from "amqplib";
import { startPrivateNode, type PrivateNode } from "../broker.ts";
import { cleanupAfterFile, run, startServe, type Server } from "../helpers.ts";

cleanupAfterFile();

const tag = crypto.randomUUID().slice(0, 8);
/** Each user's password: it must never show in what fibrpc prints. */
const password = (user: string) => `pw${user}${tag}`;
const USERS = ["noperm", "full", "nowrite", "noread", "noconf", "ulimc", "ulimch", "later"] as const;
type User = (typeof USERS)[number];

let node: PrivateNode;
let host: string;

async function ctl(args: string[]): Promise<void> {
  const r = await node.ctl(args);
  if (r.code !== 0)
    throw new Error(`rabbitmqctl ${args.join(" ")} exited ${r.code}: ${r.stderr.trim() || r.stdout.trim()}`);
}

beforeAll(async () => {
  node = await startPrivateNode("fibrpc-refusals");
  host = `127.0.0.1:${node.port}`;
  for (const vhost of ["v1", "vlim", "vq"]) await ctl(["add_vhost", vhost]);
  for (const user of USERS) await ctl(["add_user", user, password(user)]);
  const all = [".*", ".*", ".*"];
  for (const [user, vhost, perms] of [
    ["full", "v1", all],
    ["full", "vlim", all],
    ["full", "vq", all],
    ["nowrite", "v1", [".*", "^$", ".*"]],
    ["noread", "v1", [".*", ".*", "^$"]],
    ["noconf", "v1", ["^$", ".*", ".*"]],
    ["ulimc", "v1", all],
    ["ulimch", "v1", all],
    ["later", "v1", all],
  ] as const) {
    await ctl(["set_permissions", "-p", vhost, user, ...perms]);
  }
  // noperm has no permission on any vhost.
  await ctl(["set_vhost_limits", "-p", "vlim", '{"max-connections": 0}']);
  await ctl(["set_vhost_limits", "-p", "vq", '{"max-queues": 0}']);
  await ctl(["set_user_limits", "ulimc", '{"max-connections": 0}']);
  await ctl(["set_user_limits", "ulimch", '{"max-channels": 0}']);
}, 240_000);

const urlOf = (user: User, vhost: string) => `amqp://${user}:${password(user)}@${host}/${vhost}`;
/** The broker as fibrpc names it: password masked. */
const shown = (user: User, vhost: string) => `amqp://${user}:***@${host}/${vhost}`;
const esc = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
/** RabbitMQ 4.x names the permission it refuses ("configure access to queue ..."); 3.x does not. */
const access = (permission: string) => `(?:${permission} )?access to`;

const queueName = (prefix: string) => `${prefix}_${crypto.randomUUID().slice(0, 8)}`;

/** Nothing fibrpc prints shows a password or a stack trace. */
function expectClean(text: string): void {
  for (const user of USERS) expect(text).not.toContain(password(user));
  expect(text).not.toMatch(/^\s+at /m);
  expect(text).not.toMatch(/internal error|please report/);
}

/** `fibrpc call`'s stderr is exactly one line, matching `line`. */
function expectOneLine(stderr: string, line: RegExp): void {
  expectClean(stderr);
  expect(stderr.split("\n").filter(Boolean), stderr).toHaveLength(1);
  expect(stderr).toMatch(line);
}

/** Starts serve and waits for it to exit on its own (bounded): its exit code and log. */
async function serveUntilExit(args: string[], ms = 30_000): Promise<{ code: number; log: string; server: Server }> {
  const server = await startServe(["--workers", "2", ...args], {}, null);
  const timer = setTimeout(() => server.proc.kill("SIGKILL"), ms);
  const code = await server.proc.exited;
  clearTimeout(timer);
  // The log's reader may be a turn behind the exit.
  await server.waitForLog(/\n$/, 5_000);
  return { code, log: server.log, server };
}

/** serve said one error, matching `line`, and nothing about retrying. */
function expectServeRefused(log: string, line: RegExp): void {
  expectClean(log);
  const errors = log.split("\n").filter((l) => / ERROR /.test(l));
  expect(errors, log).toHaveLength(1);
  expect(errors[0]).toMatch(line);
  expect(log).not.toMatch(/still cannot reach|retrying|reconnect/i);
}

describe("at connection.open: the vhost", () => {
  test("a user with no permission on the vhost: 77, the broker's reason, and the command that grants it", async () => {
    const line = new RegExp(
      `^fibrpc: the broker at ${esc(shown("noperm", "v1"))} refused the connection: access to vhost 'v1' refused for user 'noperm' \\(530 NOT_ALLOWED\\); give user "noperm" permissions on vhost "v1" \\(rabbitmqctl set_permissions -p v1 noperm CONFIGURE WRITE READ\\), or check the vhost in --url / FIBRPC_URL\\n$`,
    );
    const call = await run(["call", "--url", urlOf("noperm", "v1"), "5"]);
    expect(call.code).toBe(77);
    expectOneLine(call.stderr, line);
    const serve = await serveUntilExit(["--url", urlOf("noperm", "v1")]);
    expect(serve.code).toBe(77);
    expectServeRefused(
      serve.log,
      new RegExp(
        ` ERROR the broker at ${esc(shown("noperm", "v1"))} refused the connection: access to vhost 'v1' refused for user 'noperm' \\(530 NOT_ALLOWED\\); give user "noperm"`,
      ),
    );
  });

  test("with failover: a broker that refused is what is reported (77), not a later one that is down (68)", async () => {
    const urls = ["--url", urlOf("noperm", "v1"), "--url", "amqp://guest:guest@127.0.0.1:1"];
    const call = await run(["call", ...urls, "5"]);
    expect(call.code).toBe(77);
    expectOneLine(call.stderr, /refused the connection: access to vhost 'v1' refused for user 'noperm'/);
    // With --retry the broker that is down may come back: tried again until the timeout, then the refusal.
    const retried = await run(["call", "--retry", "1", "--timeout", "1500ms", ...urls, "5"]);
    expect(retried.code, retried.stderr).toBe(77);
    expectClean(retried.stderr);
    expect(retried.stderr).toMatch(/refused for user 'noperm'.*; trying again until the timeout \(--retry\)\n/);
    expect(retried.stderr).toMatch(/^fibrpc: the broker at .* refused the connection: access to vhost 'v1'/m);
  });

  test("a vhost that does not exist: 77, and how to create it", async () => {
    const call = await run(["call", "--url", urlOf("full", "nosuch"), "5"]);
    expect(call.code).toBe(77);
    expectOneLine(
      call.stderr,
      new RegExp(
        `^fibrpc: the broker at ${esc(shown("full", "nosuch"))} refused the connection: vhost '?nosuch'? not found \\(530 NOT_ALLOWED\\); check the vhost in --url / FIBRPC_URL, or create it \\(rabbitmqctl add_vhost nosuch\\)\\n$`,
      ),
    );
    const serve = await serveUntilExit(["--url", urlOf("full", "nosuch")]);
    expect(serve.code).toBe(77);
    expectServeRefused(
      serve.log,
      / ERROR the broker at .* refused the connection: vhost '?nosuch'? not found \(530 NOT_ALLOWED\); check the vhost/,
    );
  });
});

describe("limits: 78, the limit, and the command that raises it", () => {
  test("the vhost's connection limit", async () => {
    const call = await run(["call", "--url", urlOf("full", "vlim"), "5"]);
    expect(call.code).toBe(78);
    expectOneLine(
      call.stderr,
      new RegExp(
        `^fibrpc: the broker at ${esc(shown("full", "vlim"))} refused the connection: access to vhost 'vlim' refused for user 'full': connection limit \\(0\\) is reached \\(530 NOT_ALLOWED\\); raise the vhost's limit \\(rabbitmqctl set_vhost_limits -p vlim '\\{"max-connections": N\\}', -1 for none\\)`,
      ),
    );
    const serve = await serveUntilExit(["--url", urlOf("full", "vlim")]);
    expect(serve.code).toBe(78);
    expectServeRefused(
      serve.log,
      / ERROR .* refused the connection: access to vhost 'vlim' refused for user 'full': connection limit \(0\) is reached \(530 NOT_ALLOWED\); raise the vhost's limit/,
    );
  });

  test("the user's connection limit", async () => {
    const call = await run(["call", "--url", urlOf("ulimc", "v1"), "5"]);
    expect(call.code).toBe(78);
    expectOneLine(
      call.stderr,
      new RegExp(
        `^fibrpc: the broker at ${esc(shown("ulimc", "v1"))} refused the connection: connection refused for user 'ulimc': user connection limit \\(0\\) is reached \\(530 NOT_ALLOWED\\); raise the user's limit \\(rabbitmqctl set_user_limits ulimc '\\{"max-connections": N\\}', -1 for none\\)`,
      ),
    );
    const serve = await serveUntilExit(["--url", urlOf("ulimc", "v1")]);
    expect(serve.code).toBe(78);
    expectServeRefused(
      serve.log,
      / ERROR .* user connection limit \(0\) is reached \(530 NOT_ALLOWED\); raise the user's limit/,
    );
  });

  test("the user's channel limit", async () => {
    const call = await run(["call", "--url", urlOf("ulimch", "v1"), "5"]);
    expect(call.code).toBe(78);
    expectOneLine(
      call.stderr,
      new RegExp(
        `^fibrpc: the broker at ${esc(shown("ulimch", "v1"))} refused to open a channel: number of channels opened for user 'ulimch' has reached the maximum allowed user limit of \\(?0\\)? \\(530 NOT_ALLOWED\\); raise the user's limit \\(rabbitmqctl set_user_limits ulimch '\\{"max-channels": N\\}', -1 for none\\)\\n$`,
      ),
    );
    const serve = await serveUntilExit(["--url", urlOf("ulimch", "v1"), "--queue", queueName("chlimit")]);
    expect(serve.code).toBe(78);
    expectServeRefused(
      serve.log,
      / ERROR .* refused to open a channel: number of channels opened for user 'ulimch' .* \(530 NOT_ALLOWED\); raise the user's limit/,
    );
  });

  test("the vhost's queue limit: 406 PRECONDITION_FAILED on serve's declaration", async () => {
    const queue = queueName("qlimit");
    const serve = await serveUntilExit(["--url", urlOf("full", "vq"), "--queue", queue]);
    expect(serve.code).toBe(78);
    expectServeRefused(
      serve.log,
      new RegExp(
        ` ERROR the broker at ${esc(shown("full", "vq"))} refused to declare queue "${queue}": cannot declare queue '${queue}': queue limit in vhost 'vq' \\(0\\) is reached \\(406 PRECONDITION_FAILED\\); raise the vhost's limit \\(rabbitmqctl set_vhost_limits -p vq '\\{"max-queues": N\\}', -1 for none\\) or delete queues it no longer needs$`,
        "m",
      ),
    );
  });
});

describe("permissions on queues and exchanges: 77, which permission, and how to grant it", () => {
  test("no write permission: every call fails with the broker's reason, and --retry does not retry it", async () => {
    const queue = queueName("nowrite");
    const server = await startServe(["--workers", "1", "--url", urlOf("full", "v1"), "--queue", queue]);
    try {
      const line = (n: number) =>
        `fib\\(${n}\\): ACCESS_REFUSED: the broker at ${esc(shown("nowrite", "v1"))} refused to publish to exchange "amq\\.default": ${access("write")} exchange 'amq\\.default' in vhost 'v1' refused for user 'nowrite' \\(403 ACCESS_REFUSED\\); give user "nowrite" the write permission on exchange "amq\\.default" in vhost "v1" \\(its patterns: rabbitmqctl list_user_permissions nowrite; to set them: rabbitmqctl set_permissions -p v1 nowrite CONFIGURE WRITE READ\\)`;
      const call = await run(["call", "--url", urlOf("nowrite", "v1"), "--queue", queue, "5", "6"]);
      expect(call.code).toBe(77);
      expect(call.stdout).toBe("");
      expectClean(call.stderr);
      expect(call.stderr).toMatch(new RegExp(`^${line(5)}\\n${line(6)}\\n$`));
      const retried = await run([
        "call",
        "--url",
        urlOf("nowrite", "v1"),
        "--queue",
        queue,
        "--retry",
        "3",
        "--log-level",
        "info",
        "7",
      ]);
      expect(retried.code).toBe(77);
      expectOneLine(retried.stderr, new RegExp(`^${line(7)}\\n$`));
      expect(retried.stderr).not.toMatch(/retrying|safe to retry/);
      // call -: the refusal once, and the reading stops, rather than a line per n of stdin.
      const n = Array.from({ length: 2000 }, (_, i) => i + 1).join("\n");
      const streamed = await run(["call", "-", "--url", urlOf("nowrite", "v1"), "--queue", queue], {}, `${n}\n`);
      expect(streamed.code).toBe(77);
      expectOneLine(streamed.stderr, /ACCESS_REFUSED|refused to publish to exchange "amq\.default"/);
      // bench: the run is cut short with the refusal, not reconnected over and over for its duration.
      const bench = await run([
        "bench",
        "--url",
        urlOf("nowrite", "v1"),
        "--queue",
        queue,
        "--duration",
        "30s",
        "-c",
        "2",
        "--json",
      ]);
      expect(bench.code).toBe(77);
      // Cut short by the refusal itself, with no outage: it never went looking for a new connection.
      const summary = JSON.parse(bench.stdout) as { cutShort?: { code: string }; outages: unknown[] };
      expect(summary.cutShort?.code).toBe("ACCESS_REFUSED");
      expect(summary.outages).toEqual([]);
      expect(bench.stderr).not.toMatch(/reconnect/);
      expect(bench.stderr).toMatch(/stopping: the broker at .* refused to publish to exchange "amq\.default"/);
      expectClean(bench.stderr + bench.stdout);
    } finally {
      expect(await server.stop()).toBe(0);
    }
  });

  test("serve without write permission stops at its first reply, instead of looping on the redelivered request", async () => {
    const queue = queueName("srvnowrite");
    const server = await startServe(["--workers", "2", "--url", urlOf("nowrite", "v1"), "--queue", queue]);
    const call = run(["call", "--url", urlOf("full", "v1"), "--queue", queue, "--timeout", "5s", "5"]);
    const timer = setTimeout(() => server.proc.kill("SIGKILL"), 30_000);
    expect(await server.proc.exited).toBe(77);
    clearTimeout(timer);
    await server.waitForLog(/\n$/, 5_000);
    expectServeRefused(
      server.log,
      new RegExp(
        ` ERROR the broker at ${esc(shown("nowrite", "v1"))} refused to publish to exchange "amq\\.default": ${access("write")} exchange 'amq\\.default' in vhost 'v1' refused for user 'nowrite' \\(403 ACCESS_REFUSED\\); give user "nowrite" the write permission`,
      ),
    );
    // The request is not answered (it is back in the queue, for a server that may reply), and the call,
    // timing out on a queue whose server has gone, says so: NO_CONSUMER, 69.
    const called = await call;
    expect(called.code).toBe(69);
    expect(called.stderr).toMatch(/has no consumer now: the server the call went to has stopped/);
  });

  test("no read permission: serve cannot consume the request queue; call cannot consume its exclusive reply queue", async () => {
    const queue = queueName("noread");
    const serve = await serveUntilExit(["--url", urlOf("noread", "v1"), "--queue", queue]);
    expect(serve.code).toBe(77);
    expectServeRefused(
      serve.log,
      new RegExp(
        ` ERROR the broker at ${esc(shown("noread", "v1"))} refused to consume from queue "${queue}": ${access("read")} queue '${queue}' in vhost 'v1' refused for user 'noread' \\(403 ACCESS_REFUSED\\); give user "noread" the read permission on queue "${queue}" in vhost "v1" \\(its patterns: rabbitmqctl list_user_permissions noread; to set them: rabbitmqctl set_permissions -p v1 noread CONFIGURE WRITE READ\\)$`,
        "m",
      ),
    );
    const call = await run([
      "call",
      "--url",
      urlOf("noread", "v1"),
      "--queue",
      queue,
      "--reply-queue",
      "exclusive",
      "5",
    ]);
    expect(call.code).toBe(77);
    expectOneLine(
      call.stderr,
      new RegExp(
        `^fibrpc: the broker at ${esc(shown("noread", "v1"))} refused to consume from queue "amq\\.gen-[^"]+": ${access("read")} queue 'amq\\.gen-[^']+' in vhost 'v1' refused for user 'noread' \\(403 ACCESS_REFUSED\\); give user "noread" the read permission on the reply queues the broker names \\(a pattern matching \\^amq\\\\\\.gen-, e\\.g\\. rabbitmqctl set_permissions -p v1 noread CONFIGURE WRITE READ\\), or use --reply-queue direct, which needs none\\n$`,
      ),
    );
  });

  test("no configure permission: serve cannot declare the request queue; call cannot declare its exclusive reply queue", async () => {
    const queue = queueName("noconf");
    const serve = await serveUntilExit(["--url", urlOf("noconf", "v1"), "--queue", queue]);
    expect(serve.code).toBe(77);
    expectServeRefused(
      serve.log,
      new RegExp(
        ` ERROR the broker at ${esc(shown("noconf", "v1"))} refused to declare queue "${queue}": ${access("configure")} queue '${queue}' in vhost 'v1' refused for user 'noconf' \\(403 ACCESS_REFUSED\\); give user "noconf" the configure permission on queue "${queue}" in vhost "v1"`,
      ),
    );
    const call = await run(["call", "--url", urlOf("noconf", "v1"), "--reply-queue", "exclusive", "5"]);
    expect(call.code).toBe(77);
    expectOneLine(
      call.stderr,
      new RegExp(
        `^fibrpc: the broker at ${esc(shown("noconf", "v1"))} refused to declare queue "amq\\.gen-[^"]+": ${access("configure")} queue 'amq\\.gen-[^']+' in vhost 'v1' refused for user 'noconf' \\(403 ACCESS_REFUSED\\); give user "noconf" the configure permission on the reply queues the broker names`,
      ),
    );
  });
});

describe("names and queues the broker keeps from fibrpc", () => {
  test("a reserved name (amq.): serve is refused the declaration, call is told no server can declare it; both 77", async () => {
    const serve = await serveUntilExit(["--url", urlOf("full", "v1"), "--queue", "amq.fibrpc"]);
    expect(serve.code).toBe(77);
    expectServeRefused(
      serve.log,
      new RegExp(
        ` ERROR the broker at ${esc(shown("full", "v1"))} refused to declare queue "amq\\.fibrpc": queue name 'amq\\.fibrpc' contains reserved prefix 'amq\\.\\*' \\(403 ACCESS_REFUSED\\); pick a --queue that does not begin with "amq\\." \\(for serve and call alike\\)$`,
        "m",
      ),
    );
    expect(serve.log).not.toMatch(/login|password/);
    const call = await run(["call", "--url", urlOf("full", "v1"), "--queue", "amq.fibrpc", "5"]);
    expect(call.code).toBe(77);
    expectOneLine(
      call.stderr,
      new RegExp(
        // The look for a server and the returned request race to say it: either way, one line.
        `^(fib\\(5\\): ACCESS_REFUSED: |fibrpc: )queue "amq\\.fibrpc" does not exist on the broker at ${esc(shown("full", "v1"))}, and no server can declare it: the broker reserves names beginning with "amq\\." to itself; pick a --queue that does not begin with "amq\\." \\(for serve and call alike\\)\\n$`,
      ),
    );
  });

  test("a stream of that name: 78, said as a stream, whichever --queue-type is asked for", async () => {
    const queue = queueName("stream");
    const conn = await connect(urlOf("full", "v1"));
    try {
      await (await conn.createChannel()).assertQueue(queue, { durable: true, arguments: { "x-queue-type": "stream" } });
      for (const type of ["classic", "quorum"]) {
        const serve = await serveUntilExit(["--url", urlOf("full", "v1"), "--queue", queue, "--queue-type", type]);
        expect(serve.code, type).toBe(78);
        expectServeRefused(
          serve.log,
          new RegExp(
            ` ERROR queue "${queue}" exists as a stream, which serve cannot consume requests from \\(a stream is read from an offset, not acked a request at a time\\); serve a classic or quorum queue: another --queue, or delete this one \\(rabbitmqctl delete_queue -p v1 ${queue}\\)$`,
            "m",
          ),
        );
        expect(serve.log, type).not.toContain("serving it as it is");
      }
    } finally {
      await (await conn.createChannel()).deleteQueue(queue).catch(() => {});
      await conn.close().catch(() => {});
    }
  });

  describe("a queue another connection holds: 78", () => {
    let holder: ChannelModel | undefined;
    const hold = async (declare: (ch: Awaited<ReturnType<ChannelModel["createChannel"]>>) => Promise<unknown>) => {
      holder = await connect(urlOf("full", "v1"));
      await declare(await holder.createChannel());
    };
    const release = async () => {
      await holder?.close().catch(() => {});
      holder = undefined;
    };

    test("its exclusive queue: 405 RESOURCE_LOCKED", async () => {
      const queue = queueName("locked");
      try {
        await hold((ch) => ch.assertQueue(queue, { exclusive: true }));
        const serve = await serveUntilExit(["--url", urlOf("full", "v1"), "--queue", queue]);
        expect(serve.code).toBe(78);
        expectServeRefused(
          serve.log,
          new RegExp(
            ` ERROR the broker at ${esc(shown("full", "v1"))} refused to declare queue "${queue}": cannot obtain exclusive access to locked queue '${queue}' in vhost 'v1'\\..* \\(405 RESOURCE_LOCKED\\); another connection holds queue "${queue}" for itself \\(an exclusive queue or consumer\\): stop that client, or pick another --queue$`,
            "m",
          ),
        );
        const call = await run(["call", "--url", urlOf("full", "v1"), "--queue", queue, "5"]);
        expect(call.code).toBe(78);
        expectOneLine(
          call.stderr,
          new RegExp(
            // call never declares the request queue: it looks at it (a passive declare).
            `^(fib\\(5\\): BROKER_REFUSED: |fibrpc: )the broker at .* refused access to queue "${queue}": cannot obtain exclusive access .* \\(405 RESOURCE_LOCKED\\); another connection holds queue`,
          ),
        );
      } finally {
        await release();
      }
    });

    test("an exclusive consumer on it: 403 'in exclusive use' is a lock, not a permission", async () => {
      const queue = queueName("exclusiveuse");
      try {
        await hold(async (ch) => {
          await ch.assertQueue(queue, { durable: true });
          await ch.consume(queue, () => {}, { exclusive: true });
        });
        const serve = await serveUntilExit(["--url", urlOf("full", "v1"), "--queue", queue]);
        expect(serve.code).toBe(78);
        expectServeRefused(
          serve.log,
          new RegExp(
            ` ERROR the broker at ${esc(shown("full", "v1"))} refused to consume from queue "${queue}": queue '${queue}' in vhost 'v1' in exclusive use \\(403 ACCESS_REFUSED\\); another connection holds queue "${queue}" for itself`,
          ),
        );
      } finally {
        await release();
      }
    });
  });
});

test("once serving, a refusal after a lost connection is waited out, the broker's reason in the log; serving resumes once it is lifted", async () => {
  const queue = queueName("revoked");
  const server = await startServe(["--workers", "1", "--url", urlOf("later", "v1"), "--queue", queue]);
  try {
    await ctl(["clear_permissions", "-p", "v1", "later"]);
    const from = server.log.length;
    await ctl(["close_all_connections", "-p", "v1", "fibrpc refusals test"]);
    await server.waitForLog(
      new RegExp(
        ` WARN +the broker at ${esc(shown("later", "v1"))} refused the connection: access to vhost 'v1' refused for user 'later' \\(530 NOT_ALLOWED\\); give user "later" permissions on vhost "v1"`,
      ),
      20_000,
      from,
    );
    // Still trying: a broker restarting may refuse for a while (definitions not loaded yet).
    expect(server.proc.exitCode).toBeNull();
    await ctl(["set_permissions", "-p", "v1", "later", ".*", ".*", ".*"]);
    await server.waitForLog(/reconnected to .*; 1\/1 workers serving/, 30_000, from);
    expect(await run(["call", "--url", urlOf("full", "v1"), "--queue", queue, "30"])).toMatchObject({
      code: 0,
      stdout: "832040\n",
    });
  } finally {
    expect(await server.stop()).toBe(0);
  }
  expectClean(server.log);
  expect(server.log.match(/refused the connection/g)).toHaveLength(1);
});
