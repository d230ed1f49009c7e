/**
 * What the worker takes from the request queue, and when: its consumer, and the heavy requests
 * waiting their turn. Fair dispatch with prefetch > 1: a heavy request (milliseconds of CPU) would
 * keep drawing requests to this worker while it computes, though other workers are idle. So
 * before computing one, the worker swaps its consumer for a standby one: prefetch 1 and consumer
 * priority -1 (RabbitMQ delivers to a lower-priority consumer only while every higher one is at its
 * prefetch limit), and swaps back once its heavy requests are done. New requests go to idle
 * workers, the queue never shows zero consumers (callers check that a server is there), and
 * requests the broker had already sent wait for at most that computation; light ones among them
 * are answered at once. A per-consumer prefetch cannot be lowered on a live consumer, and RabbitMQ
 * 4.3 refuses the channel-wide (global) limit fibrpc used before.
 *
 * One worker of a process (the lead) also has a lead consumer: prefetch 1, consumer priority 1.
 * With consumers of one priority the broker hands consecutive requests to alternate workers, so at
 * one call at a time each request wakes a worker that has slept longest: `serve --workers 3` gave
 * ~0.85× the calls/s of `--workers 1` (docs/benchmarks.md, "A lead consumer"). The lead consumer
 * takes every request while it holds none, so a lone caller is served by one worker. Its normal
 * consumer takes one fewer (prefetch - 1): the worker holds at most --prefetch requests like the
 * others, and fair dispatch is as before. It goes with the normal consumer: swapped out for the
 * standby one while heavy requests are computed.
 */
import type { ConsumeMessage } from "amqplib";
import type { Logger } from "../log.ts";
import type { Executor, HeavyJob } from "./executor.ts";
import { endAbandoned } from "./process-span.ts";
import type { ServingChannel } from "./serving-channel.ts";
import { quote } from "../printable.ts";

export interface SchedulerOptions {
  queue: string;
  prefetch: number;
  /** Whether this worker is its process's lead: a lead consumer beside its normal one (see above). */
  lead: boolean;
  log: Logger;
  draining(): boolean;
}

export class Scheduler {
  /** The consumer tags on the current channel: normal (and lead), or standby; both for a moment while switching. */
  private readonly consumers = new Set<string>();
  private readonly backlog: HeavyJob[] = [];
  /**
   * consume() on its way: a heavy request can come in on the normal consumer before the lead
   * consumer is there, and its swap to the standby consumer must wait for both (to cancel both;
   * and so that serve says it is serving before that computation takes the thread).
   */
  private starting: Promise<void> | undefined;
  /** The loop computing the backlog, while there is one. */
  private running: Promise<void> | undefined;
  /**
   * Deliveries that came while consume() was still starting consumers, held until it is done. A reply published
   * meanwhile would, during a resource alarm, make the broker stop reading the connection: the next basic.consume
   * (the lead consumer's) would never be read, and the set-up never end (serve never serving, its status and
   * /readyz never ready, while the worker answers).
   */
  private held: ConsumeMessage[] | undefined;

  constructor(
    private readonly options: SchedulerOptions,
    private readonly executor: Executor,
  ) {}

  /** Heavy requests delivered and not answered yet. */
  get waiting(): number {
    return this.backlog.length;
  }

  /** Settles once the heavy requests being computed are done (undefined: none are). */
  get done(): Promise<void> | undefined {
    return this.running;
  }

  /** Consumes on a new channel, unless draining (then it stays for the acks still to come). */
  async consume(via: ServingChannel): Promise<void> {
    this.consumers.clear();
    // A reconnection while draining: stay connected for the acks still to come, take nothing new.
    if (this.options.draining()) return;
    const started = this.withDeliveriesHeld(via, () => this.consumeNormally(via));
    this.starting = started.then(
      () => {},
      () => {},
    );
    const tags = await started;
    for (const tag of tags) this.consumers.add(tag);
    via.consuming = true;
    // A drain that began while consume was on its way did not see this consumer.
    if (this.options.draining()) await this.cancelConsumers(via);
  }

  /**
   * Runs `start` (basic.qos and basic.consume, awaited one by one) with the deliveries that come meanwhile held,
   * then hands them on in a microtask: see `held`. On a failure or a drain, the channel closes and the broker has
   * them back.
   */
  private async withDeliveriesHeld<T>(via: ServingChannel, start: () => Promise<T>): Promise<T> {
    this.held = [];
    try {
      return await start();
    } finally {
      const held = this.held;
      this.held = undefined;
      queueMicrotask(() => {
        if (!via.open || this.options.draining()) return;
        for (const msg of held) this.executor.deliver(via, msg);
      });
    }
  }

  /** A heavy request waits for its turn; the standby consumer takes over meanwhile. */
  enqueue(job: HeavyJob): void {
    this.backlog.push(job);
    this.running ??= this.runAll(job.delivery.via)
      .catch((err) => {
        const message = err instanceof Error ? err.message : String(err);
        this.options.log.error(`unexpected error computing heavy requests: ${message}`);
      })
      .finally(() => {
        this.running = undefined;
      });
  }

  async cancelConsumers(via: ServingChannel): Promise<void> {
    const tags = [...this.consumers];
    this.consumers.clear();
    for (const tag of tags) await via.channel.cancel(tag).catch(() => {});
  }

  private handler(via: ServingChannel): (msg: ConsumeMessage | null) => void {
    return (msg) => {
      if (msg && this.held) this.held.push(msg);
      else if (msg) this.executor.deliver(via, msg);
      else if (!this.options.draining()) {
        // The broker cancelled our consumer (queue deleted, or a node of the cluster went away):
        // reconnect, which declares the queue and consumes again.
        const queue = quote(this.options.queue);
        this.options.log.warn(`the broker cancelled the consumer on queue ${queue}; re-subscribing`);
        via.model.close().catch(() => {});
      }
    };
  }

  private async runAll(via: ServingChannel): Promise<void> {
    await this.starting;
    for (;;) {
      await this.switchConsumer(via, "standby");
      while (this.backlog.length > 0) {
        // One computation per event-loop turn: between two, the socket is read and written (acks
        // and replies go out, a drain request or other deliveries come in).
        await new Promise((resolve) => setImmediate(resolve));
        const job = this.backlog.shift()!;
        // Its channel is gone (connection lost): the broker has put the request back already.
        if (job.delivery.via.open) this.executor.runHeavy(job);
        else endAbandoned(job);
      }
      if (this.options.draining() || !via.open) return;
      await this.switchConsumer(via, "normal");
      // Heavy requests that arrived while switching back: another round. Otherwise done; no
      // delivery can come in between this check and the end of the run (both are microtasks).
      if (this.backlog.length === 0) return;
    }
  }

  /**
   * The normal consumer, and for the lead worker the lead consumer (prefetch 1, priority 1) beside
   * a normal one of prefetch - 1, so that it too holds at most --prefetch requests; with
   * --prefetch 1 (the tutorial's strict fair dispatch) the lead consumer is its only one. Each
   * consumer's prefetch is the channel's setting when it starts.
   */
  private async consumeNormally(via: ServingChannel): Promise<string[]> {
    const { channel } = via;
    const { queue, prefetch, lead } = this.options;
    const tags: string[] = [];
    const normalPrefetch = lead ? prefetch - 1 : prefetch;
    if (normalPrefetch > 0) {
      await channel.prefetch(normalPrefetch);
      tags.push((await channel.consume(queue, this.handler(via))).consumerTag);
    }
    if (lead) {
      await channel.prefetch(1);
      tags.push((await channel.consume(queue, this.handler(via), { priority: 1 })).consumerTag);
    }
    return tags;
  }

  /**
   * Starts the new consumer before cancelling the old one, so the queue always has one. The
   * channel's prefetch setting applies to consumers started after it (basic.qos global=false).
   */
  private async switchConsumer(via: ServingChannel, mode: "standby" | "normal"): Promise<void> {
    const { options } = this;
    const { channel } = via;
    if (!via.open || options.draining()) return;
    try {
      let tags: string[];
      if (mode === "standby") {
        await channel.prefetch(1);
        if (options.draining()) return;
        tags = [(await channel.consume(options.queue, this.handler(via), { priority: -1 })).consumerTag];
      } else {
        if (options.draining()) return;
        tags = await this.withDeliveriesHeld(via, () => this.consumeNormally(via));
      }
      if (!via.open) return;
      const previous = [...this.consumers];
      this.consumers.clear();
      for (const tag of tags) this.consumers.add(tag);
      for (const tag of previous) await channel.cancel(tag);
      // A drain that began meanwhile did not know this consumer: cancel it too.
      if (options.draining()) await this.cancelConsumers(via);
    } catch {
      // The channel is gone: recovery consumes again on the new one.
    }
  }
}
