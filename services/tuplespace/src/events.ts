import { EventKind } from '@backplane/proto/tuplespace';
import { AsyncQueue, type BackplaneError } from '@backplane/runtime';
import type { SpaceEvent } from './command';
import type { Entry } from './tsdb';
import { matches, type Template } from './tuple';

/** Events a subscriber may fall behind by before its stream is ended (it can re-register and rescan). */
export const MAX_EVENT_BACKLOG = 10_000;

interface Subscriber {
  template: Template;
  kinds: Set<EventKind>;
  queue: AsyncQueue<SpaceEvent>;
}

/** The event registrations of one space. */
export class EventHub {
  private readonly subscribers = new Set<Subscriber>();

  get count(): number {
    return this.subscribers.size;
  }

  /** Delivers one event (already numbered) to every matching registration. */
  publish(seq: number, kind: EventKind, e: Entry): void {
    if (this.subscribers.size === 0) return;
    let record: SpaceEvent['record'] | undefined;
    for (const s of this.subscribers) {
      if ((s.kinds.size > 0 && !s.kinds.has(kind)) || !matches(s.template, e.tuple)) continue;
      record ??= { id: e.id, tuple: e.tuple, expiresAt: e.expiresAt };
      s.queue.push({ seq, kind, record });
    }
  }

  /**
   * A registration's events, from now on, until the consumer stops or `signal` aborts. A consumer more
   * than MAX_EVENT_BACKLOG events behind is ended with RESOURCE_EXHAUSTED (it can register again).
   */
  subscribe(template: Template, kinds: EventKind[], signal?: AbortSignal): AsyncIterable<SpaceEvent> {
    const sub: Subscriber = {
      template,
      kinds: new Set(kinds.filter((k) => k !== EventKind.EVENT_KIND_UNSPECIFIED)),
      queue: new AsyncQueue<SpaceEvent>(
        MAX_EVENT_BACKLOG,
        `the subscriber fell more than ${MAX_EVENT_BACKLOG} events behind`,
      ),
    };
    if (signal?.aborted) return { async *[Symbol.asyncIterator]() {} };
    this.subscribers.add(sub);
    // the caller going away ends the registration even if it never started reading it
    const drop = () => this.subscribers.delete(sub);
    signal?.addEventListener('abort', drop, { once: true });
    const hub = this;
    return {
      async *[Symbol.asyncIterator]() {
        try {
          yield* sub.queue.drain(signal);
        } finally {
          hub.subscribers.delete(sub);
          signal?.removeEventListener('abort', drop);
        }
      },
    };
  }

  /** Ends every registration (space deleted, server stopping). */
  closeAll(reason: BackplaneError): void {
    for (const s of this.subscribers) s.queue.fail(reason);
    this.subscribers.clear();
  }
}
