/**
 * `fibrpc call --retry N`: a call that failed in a way a new attempt can fix (timeout, lost
 * connection, broker unreachable) is sent again, up to N times, with the same correlation id.
 * That is safe because fib is idempotent. A lost connection is replaced once for all the calls
 * that need it.
 *
 * One budget for the whole call: --timeout bounds the call from its start to its last attempt's
 * end, retries and reconnections included (never N+1 timeouts end to end). The attempts are spread
 * over that budget (attemptEnds): each has a window twice as long as the one before, so the
 * retries reach the deadline however long the budget is (a broker restart of several seconds is
 * waited out by a 20 s budget, not given up on after a second of back-off). An attempt that fails
 * early (connection refused) waits for the end of its window before the next one: that is the
 * back-off. Reconnecting is retried within the window too (connectWithin), so that a broker
 * still starting does not use up an attempt per refused connection.
 */
import { FibrpcError } from "../errors.ts";
import { setUpError } from "./broker-errors.ts";
import { awaitServer } from "./await-server.ts";
import { realTime, waitUntil, type Time } from "./time.ts";
import { quote } from "../printable.ts";
import { RetryLines } from "./retry-lines.ts";
import {
  TOO_SHORT_TO_CONFIRM_MS,
  type CallOutcome,
  type ClientLog,
  type CloseOptions,
  type RpcClient,
  type SendOutcome,
} from "./client.ts";
import type { RetryOf } from "../tracing/tracer.ts";

/**
 * After a fault the servers may not be back yet (a restarted broker has lost a non-durable
 * queue until a server declares it again): on a retry, these are worth another attempt too.
 */
const RETRYABLE_AFTER_A_FAULT: ReadonlySet<string> = new Set(["QUEUE_NOT_FOUND", "NO_CONSUMER"]);
/**
 * Outcomes after which the attempt's request may still be answered where it was sent: the broker took it and no
 * reply came in its window (a slow server), or the broker held it (blocking publishers) and may let it through.
 */
const ANSWERABLE_LATE: ReadonlySet<string> = new Set(["TIMEOUT", "BROKER_BLOCKED"]);
/** How the attempt under way ends when an earlier one's answer came first: the call is done; its span says so. */
const ANSWERED_EARLIER = new FibrpcError("CONNECTION_LOST", "an earlier attempt of the call was answered first", {
  reason: "answered-earlier",
});
/** Connection failures worth another connection attempt (a broker restarting refuses, then lets in). */
const RECONNECTABLE: ReadonlySet<string> = new Set(["BROKER_UNREACHABLE", "CONNECTION_LOST"]);

/**
 * The first attempt's window is at least this long when the budget allows (a share of it for
 * each attempt): a call merely slow (fib(1,000,000) takes ~0.5 s) would otherwise be sent again,
 * and computed again, while its first answer is on its way.
 */
export const MIN_FIRST_WINDOW_MS = 1_000;
/**
 * How far each window may stray from its nominal length (± this fraction), so that callers that
 * failed together do not retry together.
 */
export const WINDOW_JITTER = 0.2;
/** Reconnection attempts: the first pause, doubled each time up to the cap, each with jitter. */
const RECONNECT_BASE_MS = 100;
const RECONNECT_MAX_MS = 1_000;

/**
 * When each of the `retries + 1` attempts of a call ends, from `start` to `deadline` (ms): windows
 * that fill the budget exactly, each `ratio` times the one before — 2 (an exponential back-off
 * scaled to the budget: with --retry 3, 1/15, 2/15, 4/15 and 8/15 of it) unless that makes the
 * first shorter than MIN_FIRST_WINDOW_MS, when the ratio shrinks (down to 1, equal windows) so
 * that the first gets that much. Each window's length is jittered by ±WINDOW_JITTER before they are
 * scaled back to the budget, so the last attempt always ends at `deadline`. In whole ms.
 */
export function attemptEnds(
  start: number,
  deadline: number,
  retries: number,
  random: () => number = Math.random,
): number[] {
  const count = retries + 1;
  const budget = Math.max(0, deadline - start);
  const ratio = windowRatio(budget, count);
  const lengths = Array.from({ length: count }, (_, i) => ratio ** i * (1 + WINDOW_JITTER * (2 * random() - 1)));
  const scale = budget / lengths.reduce((a, b) => a + b, 0);
  const ends: number[] = [];
  let at = start;
  // Whole milliseconds: a deadline travels as an integer header and the AMQP expiration.
  for (const length of lengths) {
    at += length * scale;
    ends.push(Math.round(at));
  }
  ends[count - 1] = deadline;
  return ends;
}

/** The growth from one window to the next (see attemptEnds). */
export function windowRatio(budget: number, count: number): number {
  if (count === 1) return 1;
  // The sum of `count` windows growing by r, the first 1 long.
  const total = (r: number) => (r === 1 ? count : (r ** count - 1) / (r - 1));
  const first = Math.min(MIN_FIRST_WINDOW_MS, budget / count);
  if (budget / total(2) >= first) return 2;
  // total(r) grows with r: find the r that gives the first window `first` (bisection; 50 halvings
  // are far below a millisecond).
  let [low, high] = [1, 2];
  for (let i = 0; i < 50; i++) {
    const mid = (low + high) / 2;
    if (budget / total(mid) >= first) low = mid;
    else high = mid;
  }
  return low;
}

/** The pause before reconnection attempt `attempt + 1` (ms): 100, 200, 400 … up to 1 s, each ±50%. */
export function reconnectDelay(attempt: number, random: () => number = Math.random): number {
  return Math.min(RECONNECT_MAX_MS, RECONNECT_BASE_MS * 2 ** attempt) * (0.5 + random());
}

export interface ConnectWithinOptions {
  /**
   * Called with each failed attempt's error, and whether another attempt follows (if not, the
   * promise rejects with it).
   */
  onFailure?: (error: FibrpcError, attempt: number, again: boolean) => void;
  random?: () => number;
  time?: Time;
}

/**
 * Connects with `connect`, trying again after a pause (reconnectDelay) while the failure is one a later attempt
 * may not meet (broker unreachable, connection lost, an attempt its deadline cut short), until `until()` (ms
 * since the epoch, read afresh each time: a caller may extend it, or end it by returning 0). Each attempt is
 * given `until()` as its own deadline. Rejects with the first failure retrying cannot fix (login
 * refused, TLS, ...) at once, unless another broker of the list was only unreachable (it may come
 * back), or with the last failure once the time is up.
 */
export async function connectWithin<T>(
  connect: (deadline: number) => Promise<T>,
  until: () => number,
  o: ConnectWithinOptions = {},
): Promise<T> {
  const time = o.time ?? realTime;
  for (let attempt = 0; ; attempt++) {
    let error: FibrpcError;
    try {
      return await connect(until());
    } catch (err) {
      error = setUpError(err);
    }
    const left = until() - time.now();
    // A refusal with another broker of the list down: that one may come back within the time.
    // A port that speaks another protocol (amqps:// to 5672, an HTTP server) will not speak AMQP a moment later.
    const again =
      ((RECONNECTABLE.has(error.code) && error.details.reason !== "wrong-protocol") ||
        error.details.reason === "connect-timed-out" ||
        error.details.anotherUnreachable === true) &&
      left > 0;
    o.onFailure?.(error, attempt, again);
    if (!again) throw error;
    // The last pause ends at `until`: the failure is reported then, not a back-off step early.
    await time.sleep(Math.min(left, reconnectDelay(attempt, o.random)));
    if (time.now() >= until()) throw error;
  }
}

export class RetryingCaller {
  private client: RpcClient;
  private reconnecting: Promise<RpcClient> | undefined;
  /** How long the reconnection under way may go on: the latest end of the attempts waiting for it. */
  private reconnectUntil = 0;
  /** The last failure to reconnect, what an attempt that ran out of time waiting for a connection reports. */
  private lastConnectError: FibrpcError | undefined;
  private closed = false;
  /** Settles at close(): a call pausing between attempts stops then, with `endedWith`. */
  private readonly closing = Promise.withResolvers<void>();
  /** Why close() ended the calls (a second SIGINT: INTERRUPTED), else the client's own CONNECTION_LOST. */
  private endedWith = new FibrpcError("CONNECTION_LOST", "the client was closed before the reply came", {
    reason: "client-closed",
  });
  /**
   * Calls in flight per client, and calls listening there for a late answer: a replaced client is closed once none
   * is left on it.
   */
  private readonly inFlight = new Map<RpcClient, number>();
  /**
   * After a reconnection, until a server consumes the queue there (serve reconnects on its own schedule; a
   * broker failed over to may not even have the queue until serve declares it): calls wait for it, each until
   * its attempt's end, instead of failing QUEUE_NOT_FOUND or NO_CONSUMER in the gap.
   */
  private serverBack: Promise<void> | undefined;
  /** A reconnection happened: a missing queue or consumer is then a server not back yet, worth another attempt. */
  private faulted = false;
  /**
   * A pipeline's reply queue made sure of on a client, once for all the sends on it: the first client's by
   * call/run.ts before the stream.
   */
  private replyQueue: { on: RpcClient; ready: Promise<void> };
  /** It sends a pipeline's requests (sendTo): they wait in the queue for a server; only the queue must be there. */
  private pipeline = false;
  /** The "retrying" lines, one a second per code for calls not followed yet (retry-lines.ts). */
  private readonly lines: RetryLines;

  constructor(
    first: RpcClient,
    /** Opens a new client by `deadline` (ms since the epoch). */
    private readonly connectAgain: (deadline: number) => Promise<RpcClient>,
    private readonly retries: number,
    /** A call's budget when call() is given no deadline. */
    private readonly timeoutMs: number,
    private readonly log: ClientLog,
    private readonly seams: { random?: () => number; time?: Time } = {},
  ) {
    this.client = first;
    this.replyQueue = { on: first, ready: Promise.resolve() };
    this.lines = new RetryLines(log, () => this.time.now());
  }

  /** The client calls go through now (a lost one is replaced by the next call). */
  get current(): RpcClient {
    return this.client;
  }

  /**
   * Calls fib(n), trying again as the module's comment says, by `deadline` (ms since the epoch)
   * for all its attempts. The promise never rejects.
   */
  async call(n: number, deadline = this.time.now() + this.timeoutMs): Promise<CallOutcome & { attempts: number }> {
    const correlationId = this.client.newCorrelationId();
    const started = this.time.now();
    const ends = attemptEnds(started, deadline, this.retries, this.seams.random);
    // `ms` is the whole call's, retries and back-off included (call --json prints it as the call's time); a
    // first attempt's outcome keeps its own, finer measure.
    const done = (outcome: CallOutcome, attempts: number) => ({
      ...outcome,
      // What the error says must not suggest --retry to a call that had it (hints.ts reads `retried`).
      ...(!outcome.ok && outcome.error && this.retries > 0 ? { error: marked(outcome.error, "retried") } : {}),
      attempts,
      ms: attempts === 1 && outcome.ms > 0 ? outcome.ms : this.time.now() - started,
    });
    /** With tracing on, the first attempt's span: a retry's span links to it. */
    let first: string | undefined;
    // An attempt whose window ran out may still be answered (a slow server: its reply on the way to the address
    // that attempt gave, which a retry on a new connection does not share): the first answer to any attempt before
    // the deadline is the call's (client.ts awaitLate), and ends the attempt under way.
    const late = Promise.withResolvers<CallOutcome>();
    let lateAnswer: CallOutcome | undefined;
    const answeredLate = (outcome: CallOutcome) => {
      lateAnswer ??= outcome;
      late.resolve(outcome);
    };
    const listening = new Set<RpcClient>();
    /** Called once the last listening client is gone (its connection lost): no late answer can come any more. */
    let noneListening: (() => void) | undefined;
    // The attempt's client, held from its send until it listens for a late answer or the attempt is over: the send's
    // own hold ends first, and a client replaced meanwhile would be closed before it could listen.
    let held: RpcClient | undefined;
    const letGo = () => {
      if (held) this.release(held);
      held = undefined;
    };
    try {
      for (let attempt = 1; ; attempt++) {
        // A window an earlier attempt outlived, kept waiting behind a queue (client.ts onWindowEnd), is skipped, and
        // so is one it left too short to be confirmed in (under half its length, and 100 ms): the attempt takes the
        // next.
        const now = this.time.now();
        const enough = (i: number) =>
          Math.min(TOO_SHORT_TO_CONFIRM_MS, (ends[i]! - (i === 0 ? started : ends[i - 1]!)) / 2);
        let next = attempt - 1;
        while (next < ends.length - 1 && ends[next]! - now < enough(next)) next++;
        const attemptEnd = ends[next] ?? deadline;
        let outcome: CallOutcome;
        // Closed before it was sent at all.
        if (this.closed) return done(failedWith(n, this.endedWith), 0);
        let client: RpcClient | undefined;
        try {
          const ready = this.currentClient(attemptEnd);
          ready.catch(() => {}); // an earlier attempt's answer may win the race below
          client = await Promise.race([ready, late.promise.then(() => undefined)]);
          if (lateAnswer) return done(lateAnswer, attempt - 1);
          const retry = first === undefined ? undefined : { attempt, traceparent: first };
          // The request carries the call's deadline, and may wait past its window (client.ts onWindowEnd).
          const holdUntil = this.retries > 0 ? deadline : undefined;
          const sent = client!;
          this.hold(sent);
          held = sent;
          outcome = await Promise.race([
            this.send(sent, n, attemptEnd, correlationId, retry, attempt, holdUntil),
            late.promise,
          ]);
          if (lateAnswer) {
            sent.cancel(correlationId, ANSWERED_EARLIER);
            return done(lateAnswer, attempt);
          }
          first ??= outcome.traceparent;
        } catch (err) {
          outcome = failedWith(n, err instanceof FibrpcError ? err : new FibrpcError("INTERNAL", String(err)));
        }
        if (outcome.ok || outcome.remote) return done(outcome, attempt);
        // Kept waiting to the call's deadline (client.ts onWindowEnd): no time is left for another attempt.
        if (this.time.now() >= deadline) return done(outcome, attempt);
        // Which outcomes another attempt may turn into an answer is one table (errors.ts RETRYABLE):
        // refusals, usage errors and error replies are never retried.
        const afterAFault = attempt > 1 || this.faulted;
        const retryable =
          outcome.error?.retryable === true || (afterAFault && RETRYABLE_AFTER_A_FAULT.has(outcome.code));
        if (!retryable) return done(outcome, attempt);
        // The last attempt failed before the deadline (its connection lost, say), while an earlier one may still be
        // answered where it was sent: that answer is the call's until the deadline, as it would be were the last
        // attempt still under way, unless no connection it could come on is left.
        if (attempt > this.retries) {
          if (listening.size > 0) {
            const emptied = new Promise<void>((resolve) => (noneListening = resolve));
            await this.pauseUntil(deadline, Promise.race([late.promise, emptied]));
          }
          if (!lateAnswer && this.closed) return done(failedWith(n, this.endedWith), attempt);
          return done(lateAnswer ?? outcome, attempt);
        }
        if (this.closed) return done(failedWith(n, this.endedWith), attempt);
        // A first attempt sent with too little time to be confirmed (`-t 30ms`: connecting took the rest): with
        // less than that left of the whole call, no retry can do better; with more, it goes on the same
        // connection, which nothing suggests is at fault.
        const tooShort = outcome.error?.details.reason === "too-short";
        if (tooShort && deadline - this.time.now() < TOO_SHORT_TO_CONFIRM_MS) return done(outcome, attempt);
        // Taken by the broker (or held by it, blocked), the request may still be answered on this client: its
        // hold is now the listening one (released when the call ends).
        if (held && ANSWERABLE_LATE.has(outcome.code) && !listening.has(held)) {
          // A late answer is to this attempt: with tracing on, the call's lines and --json name its trace.
          const { trace, traceparent } = outcome;
          const on = held;
          held = undefined;
          listening.add(on);
          const gone = () => {
            // Its connection lost: no answer can come there, and its hold ends now.
            if (listening.delete(on)) this.release(on);
            if (listening.size === 0) noneListening?.();
          };
          on.awaitLate(correlationId, n, deadline, (answer) => answeredLate({ ...answer, trace, traceparent }), gone);
        }
        letGo();
        // A timeout may be the connection's fault (seen on a cluster: a channel stuck after a
        // quorum queue's leader died): send the retry over a new connection. Not one sent too late to be
        // confirmed: nothing says the connection is at fault.
        if (outcome.code === "TIMEOUT" && !tooShort && client === this.client) client.retire();
        // The back-off: the rest of this attempt's window.
        const pause = Math.max(0, attemptEnd - this.time.now());
        // With tracing on, the line names the attempt that failed (its send span); a retry is a trace of its own.
        this.lines.retrying(
          correlationId,
          outcome.code,
          `fib(${n}): ${outcome.code}; retrying in ${Math.round(pause)} ms (retry ${attempt}/${this.retries})`,
          outcome.trace,
        );
        // Not past close(): a call between attempts ends with the others (the loop's first look).
        if (pause > 0) await this.pauseUntil(this.time.now() + pause, late.promise);
        if (lateAnswer) return done(lateAnswer, attempt);
        if (this.closed) return done(failedWith(n, this.endedWith), attempt);
      }
    } finally {
      letGo();
      this.lines.ended(correlationId);
      for (const client of listening) {
        client.forgetLate(correlationId);
        this.release(client);
      }
    }
  }

  /**
   * Sends a pipeline's request (call --reply-to --no-wait): on the current client, or on a new one once it
   * is lost, its reply queue made sure of there first (a broker failed over to may not have it). Never sent
   * again: a request whose confirm a lost connection took may have reached the queue.
   */
  async sendTo(n: number, replyTo: string, deadline: number): Promise<SendOutcome> {
    this.pipeline = true;
    const outcome = await (async (): Promise<SendOutcome> => {
      try {
        const client = await this.currentClient(deadline);
        if (client !== this.replyQueue.on) this.replyQueue = { on: client, ready: client.ensureReplyQueue(replyTo) };
        await this.replyQueue.ready;
        return await client.send(n, replyTo, deadline);
      } catch (err) {
        return failedWith(n, err instanceof FibrpcError ? err : new FibrpcError("INTERNAL", String(err)));
      }
    })();
    // Its hint must not suggest --retry, which a pipeline does not take (hints.ts reads `pipeline`).
    return outcome.ok || outcome.error === undefined
      ? outcome
      : { ...outcome, error: marked(outcome.error, "pipeline") };
  }

  private get time(): Time {
    return this.seams.time ?? realTime;
  }

  /** Until `end`, `answered` or close(), whichever comes first. */
  private async pauseUntil(end: number, answered: Promise<unknown>): Promise<void> {
    const paused = new AbortController();
    const pause = Math.max(0, end - this.time.now());
    await Promise.race([this.time.sleep(pause, paused.signal), this.closing.promise, answered]);
    paused.abort();
  }

  /** One attempt on `client`, counted in flight there; its window ends at `deadline`, its call at `holdUntil`. */
  private async send(
    client: RpcClient,
    n: number,
    deadline: number,
    correlationId: string,
    retry: RetryOf | undefined,
    attempt: number,
    holdUntil: number | undefined,
  ): Promise<CallOutcome> {
    this.hold(client);
    try {
      return await client.call(n, deadline, correlationId, retry, attempt, holdUntil);
    } finally {
      this.release(client);
    }
  }

  /** A call in flight on `client`, or listening there for a late answer: it stays open. */
  private hold(client: RpcClient): void {
    this.inFlight.set(client, (this.inFlight.get(client) ?? 0) + 1);
  }

  /** The end of a hold: a client replaced meanwhile is closed once none is left on it. */
  private release(client: RpcClient): void {
    const left = this.inFlight.get(client)! - 1;
    if (left > 0) this.inFlight.set(client, left);
    else {
      this.inFlight.delete(client);
      if (client !== this.client) void client.close({ waitForBroker: false });
    }
  }

  /**
   * Lets the old client go: at once, or, when it was retired (a timeout on it) with other calls
   * still waiting on it, once they have settled (send), so that their replies are not lost.
   */
  private replace(client: RpcClient): void {
    const old = this.client;
    this.client = client;
    if (!this.inFlight.has(old)) void old.close({ waitForBroker: false });
  }

  /**
   * The client to send on: the current one, or a new one once the current is lost. The
   * reconnection is shared by every call that needs it and goes on (connectWithin) until the
   * latest of their attempts ends; each call waits for it until its own attempt's end.
   */
  private async currentClient(until: number): Promise<RpcClient> {
    const client = await this.connected(until);
    const back = this.serverBack;
    if (back === undefined) return client;
    // Waited for until this attempt's end at the latest (or close()); none by then: the attempt fails without
    // sending (a request sent with a few ms left would be blamed on the broker), NO_CONSUMER, which is worth
    // another attempt after a fault.
    const done = new AbortController();
    const timeUp = this.time.sleep(Math.max(0, until - this.time.now()), done.signal).then(() => "time-up" as const);
    const ended = await Promise.race([back.then(() => "back" as const), timeUp, this.closing.promise]);
    done.abort();
    if (this.closed) throw this.endedWith;
    if (ended === "time-up") {
      const [code, what] = this.pipeline
        ? (["QUEUE_NOT_FOUND", "has not been declared since"] as const)
        : (["NO_CONSUMER", "has had no server since"] as const);
      throw new FibrpcError(
        code,
        `reconnected to ${client.broker}, where queue ${quote(client.queue)} ${what}, within the timeout`,
        { reason: "no-server", queue: client.queue, broker: client.broker },
      );
    }
    return this.client.usable ? this.client : client;
  }

  /** The client once connected: the current one, or the reconnection's (see currentClient). */
  private connected(until: number): Promise<RpcClient> {
    if (this.client.usable) return Promise.resolve(this.client);
    if (this.closed) return Promise.reject(this.endedWith);
    this.reconnectUntil = Math.max(this.reconnectUntil, until);
    this.reconnecting ??= connectWithin(this.connectAgain, () => this.reconnectUntil, {
      random: this.seams.random,
      time: this.time,
      onFailure: (error) => {
        this.lastConnectError = error;
        this.log.debug(`reconnecting: ${error.message}`);
      },
    }).then(
      (client) => {
        this.reconnecting = undefined;
        if (this.closed) {
          void client.close({ waitForBroker: false });
          throw this.endedWith;
        }
        // The old connection may still be open (only its channel died, or it was retired).
        this.replace(client);
        this.faulted = true;
        this.awaitServerOn(client);
        return client;
      },
      (err) => {
        this.reconnecting = undefined;
        throw err;
      },
    );
    const timedOut = () =>
      this.lastConnectError ??
      new FibrpcError(
        "CONNECTION_LOST",
        "no connection to the broker: still reconnecting when the attempt's time was up",
        { reason: "connection-lost" },
      );
    return waitUntil(
      this.reconnecting,
      (signal) => this.time.sleep(Math.max(0, until - this.time.now()), signal),
      timedOut,
    );
  }

  /** Waits in the background, up to the latest attempt's end, for a server on the queue of `client`, a new one. */
  private awaitServerOn(client: RpcClient): void {
    // A pipeline's requests wait in the queue for a server: only the queue must be there (a broker failed over to
    // has it once a serve declares it).
    const queueOnly = this.pipeline;
    const waiting = queueOnly
      ? `is not there yet; the requests wait for a server to declare it`
      : "has no server yet; the calls wait for one";
    const back: Promise<void> = awaitServer(client, {
      deadline: this.reconnectUntil,
      wait: true,
      queueOnly,
      onWaiting: () => this.log.info(`reconnected to ${client.broker}, where queue ${quote(client.queue)} ${waiting}`),
    })
      .catch(() => {})
      .finally(() => {
        if (this.serverBack === back) this.serverBack = undefined;
      });
    this.serverBack = back;
  }

  close(options?: CloseOptions): Promise<void> {
    // A reconnection still under way stops at its next look at the time.
    this.closed = true;
    this.reconnectUntil = 0;
    this.lines.flush();
    if (options?.callsEndWith) this.endedWith = options.callsEndWith;
    this.closing.resolve();
    // Replaced clients still waiting for calls go too (their calls end, as the current one's do).
    const others = [...this.inFlight.keys()].filter((client) => client !== this.client);
    return Promise.all([this.client.close(options), ...others.map((client) => client.close(options))]).then(() => {});
  }
}

/**
 * `error` marked for hints.ts: the last of a call's attempts under --retry, or a pipeline's send (neither
 * hint suggests --retry).
 */
function marked(error: FibrpcError, mark: "retried" | "pipeline"): FibrpcError {
  if (error.details[mark]) return error;
  return new FibrpcError(error.code, error.message, { ...error.details, [mark]: true });
}

/** A call's outcome that is `error`, without an answer. */
function failedWith(n: number, error: FibrpcError): Extract<CallOutcome, { ok: false }> {
  return { n, ok: false, code: error.code, message: error.message, remote: false, error, ms: 0 };
}
