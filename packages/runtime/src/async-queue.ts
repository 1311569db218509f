import { BackplaneError } from '@backplane/client-core';

/** A byte budget for a queue whose items vary in size (events of up to a megabyte, say). */
export interface QueueBytes<T> {
  max: number;
  sizeOf(item: T): number;
}

/**
 * A bounded queue between a producer that must not block (an event listener) and an async consumer
 * (a stream handler). Overflow — more than `maxItems` items, or more than `bytes.max` bytes of them —
 * ends the consumer with RESOURCE_EXHAUSTED rather than growing memory without bound; an aborted signal
 * ends it with the signal's reason.
 */
export class AsyncQueue<T> implements AsyncIterable<T> {
  private items: T[] = [];
  private wake: (() => void) | undefined;
  private failure: unknown;
  private ended = false;
  private queuedBytes = 0;

  constructor(
    private readonly maxItems: number,
    private readonly overflowMessage = `consumer too slow: more than ${maxItems} items waiting`,
    private readonly bytes?: QueueBytes<T>,
  ) {}

  get length(): number {
    return this.items.length;
  }

  push(item: T): void {
    if (this.ended) return;
    if (this.items.length >= this.maxItems) {
      this.fail(BackplaneError.of('RESOURCE_EXHAUSTED', this.overflowMessage));
      return;
    }
    if (this.bytes) {
      const size = this.bytes.sizeOf(item);
      if (this.queuedBytes + size > this.bytes.max && this.items.length > 0) {
        this.fail(
          BackplaneError.of(
            'RESOURCE_EXHAUSTED',
            `consumer too slow: more than ${this.bytes.max} bytes waiting`,
          ),
        );
        return;
      }
      this.queuedBytes += size;
    }
    this.items.push(item);
    this.wake?.();
  }

  /** Ends the iteration after the queued items. */
  end(): void {
    this.ended = true;
    this.wake?.();
  }

  /** Ends the iteration at once with an error. */
  fail(err: unknown): void {
    this.failure ??= err;
    this.ended = true;
    this.items = [];
    this.queuedBytes = 0;
    this.wake?.();
  }

  /** Iterates until end(), fail() or the signal aborts. */
  async *drain(signal?: AbortSignal): AsyncGenerator<T, void, undefined> {
    const onAbort = () => this.fail(signal?.reason ?? BackplaneError.of('CANCELLED', 'cancelled'));
    if (signal?.aborted) onAbort();
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      for (;;) {
        if (this.failure !== undefined) throw this.failure;
        const item = this.items.shift();
        if (item !== undefined) {
          if (this.bytes) this.queuedBytes -= this.bytes.sizeOf(item);
          yield item;
          continue;
        }
        if (this.ended) return;
        await new Promise<void>((resolve) => {
          this.wake = resolve;
        });
        this.wake = undefined;
      }
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
  }

  [Symbol.asyncIterator](): AsyncIterator<T> {
    return this.drain();
  }
}
