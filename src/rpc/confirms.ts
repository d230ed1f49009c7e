/**
 * Publisher confirms, the caller's bookkeeping: which request each of the broker's basic.ack and
 * basic.nack is about. On a channel in confirm mode the broker numbers the publishes 1, 2, 3, …
 * (the delivery tag) and confirms each once, alone or, with `multiple`, every one up to a tag
 * (AMQP 0-9-1 confirm class; RabbitMQ docs, "Publisher Confirms"). amqplib keeps such a list
 * only for its own publish; fibrpc's frame writer (wire.ts) publishes past it, so the client
 * counts here, for whichever outlet wrote the request.
 */
export class ConfirmTracker<T> {
  /** The request of each tag not confirmed yet. */
  private readonly unconfirmed = new Map<number, T>();
  private lastTag = 0;
  /** The lowest tag that may still be unconfirmed: where a `multiple` confirm starts. */
  private lowest = 1;

  /** A request was written to the channel: it has the next tag. */
  published(request: T): void {
    this.unconfirmed.set(++this.lastTag, request);
  }

  /** The requests a basic.ack or basic.nack confirms, in tag order (those already confirmed are skipped). */
  confirm(deliveryTag: number, multiple: boolean): T[] {
    const confirmed: T[] = [];
    for (let tag = multiple ? this.lowest : deliveryTag; tag <= deliveryTag; tag++) {
      const request = this.unconfirmed.get(tag);
      if (request === undefined) continue;
      this.unconfirmed.delete(tag);
      confirmed.push(request);
    }
    // Move the start of the next `multiple` on past everything confirmed, so none is walked twice.
    while (this.lowest <= this.lastTag && !this.unconfirmed.has(this.lowest)) this.lowest++;
    return confirmed;
  }

  /** Requests written and not confirmed yet. */
  get outstanding(): number {
    return this.unconfirmed.size;
  }
}
