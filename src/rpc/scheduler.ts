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
 */
import type { ConsumeMessage } from "amqplib";
import type { Logger } from "../log.ts";
import type { Executor, HeavyJob } from "./executor.ts";
import { endAbandoned } from "./process-span.ts";
import type { ServingChannel } from "./serving-channel.ts";

export interface SchedulerOptions {
  queue: string;
  prefetch: number;
  log: Logger;
  draining(): boolean;
}

export class Scheduler {
  /** The consumer tags on the current channel (two for a moment while switching, see switchConsumer). */
  private readonly consumers = new Set<string>();
  private readonly backlog: HeavyJob[] = [];
  /** The loop computing the backlog, while there is one. */
  private running: Promise<void> | undefined;

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
    this.consumers.add((await via.channel.consume(this.options.queue, this.handler(via))).consumerTag);
    via.consuming = true;
    // A drain that began while consume was on its way did not see this consumer.
    if (this.options.draining()) await this.cancelConsumers(via);
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
      if (msg) this.executor.deliver(via, msg);
      else if (!this.options.draining()) {
        // The broker cancelled our consumer (queue deleted, or a node of the cluster went away):
        // reconnect, which declares the queue and consumes again.
        const queue = JSON.stringify(this.options.queue);
        this.options.log.warn(`the broker cancelled the consumer on queue ${queue}; re-subscribing`);
        via.model.close().catch(() => {});
      }
    };
  }

  private async runAll(via: ServingChannel): Promise<void> {
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
   * Starts the new consumer before cancelling the old one, so the queue always has one. The
   * channel's prefetch setting applies to consumers started after it (basic.qos global=false).
   */
  private async switchConsumer(via: ServingChannel, mode: "standby" | "normal"): Promise<void> {
    const { options } = this;
    const { channel } = via;
    if (!via.open || options.draining()) return;
    try {
      await channel.prefetch(mode === "standby" ? 1 : options.prefetch);
      if (options.draining()) return;
      const priority = mode === "standby" ? { priority: -1 } : {};
      const { consumerTag } = await channel.consume(options.queue, this.handler(via), priority);
      if (!via.open) return;
      const previous = [...this.consumers];
      this.consumers.clear();
      this.consumers.add(consumerTag);
      for (const tag of previous) await channel.cancel(tag);
      // A drain that began meanwhile did not know this consumer: cancel it too.
      if (options.draining()) await this.cancelConsumers(via);
    } catch {
      // The channel is gone: recovery consumes again on the new one.
    }
  }
}
