import { AsyncQueue, BackplaneError } from '@backplane/runtime';
import { EVENT_BYTES, type EventBus, type EventPayload } from './engine';
import { topicMatches } from './limits';

interface Subscriber {
  pattern: string;
  queue: AsyncQueue<EventPayload>;
}

/**
 * The embedded engine's SharedEvents: an in-process bus. Publish hands the event to every matching
 * subscriber's queue in the same turn, so each subscriber sees a topic's events in publish order; a
 * subscriber that falls more than `maxQueued` events behind is ended with RESOURCE_EXHAUSTED instead
 * of holding memory without bound.
 */
export class LocalBus implements EventBus {
  readonly kind = 'embedded' as const;
  private readonly exact = new Map<string, Set<Subscriber>>();
  private readonly wildcard = new Set<Subscriber>();

  constructor(private readonly maxQueued = 10_000) {}

  async publish(event: EventPayload): Promise<undefined> {
    const subs = this.exact.get(event.topic);
    if (subs) for (const s of subs) s.queue.push(event);
    for (const s of this.wildcard) if (topicMatches(s.pattern, event.topic)) s.queue.push(event);
    return undefined;
  }

  async subscribe(pattern: string, signal: AbortSignal): Promise<AsyncIterable<EventPayload>> {
    const sub: Subscriber = {
      pattern,
      queue: new AsyncQueue(
        this.maxQueued,
        `subscriber too slow: more than ${this.maxQueued} events behind`,
        EVENT_BYTES,
      ),
    };
    const wild = /(^|\.)(\*|>)(\.|$)/.test(pattern);
    if (wild) this.wildcard.add(sub);
    else {
      let set = this.exact.get(pattern);
      if (!set) {
        set = new Set();
        this.exact.set(pattern, set);
      }
      set.add(sub);
    }
    const remove = () => {
      if (wild) this.wildcard.delete(sub);
      else {
        const set = this.exact.get(pattern);
        set?.delete(sub);
        if (set?.size === 0) this.exact.delete(pattern);
      }
    };
    // removed when the caller goes away, whether or not it ever iterated
    signal.addEventListener('abort', remove, { once: true });
    return {
      async *[Symbol.asyncIterator]() {
        try {
          yield* sub.queue.drain(signal);
        } finally {
          remove();
          signal.removeEventListener('abort', remove);
        }
      },
    };
  }

  async close(): Promise<void> {
    const err = BackplaneError.unavailable('the sharing node is stopping');
    for (const s of this.wildcard) s.queue.fail(err);
    for (const set of this.exact.values()) for (const s of set) s.queue.fail(err);
  }
}
