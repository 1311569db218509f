import { AsyncQueue, BackplaneError, type NatsLink } from '@backplane/runtime';
import type { JsMsg } from '@nats-io/jetstream';
import { headers, type MsgHdrs, type NatsConnection } from '@nats-io/transport-node';
import {
  type DeliveredEvent,
  type DurableSubscription,
  EVENT_BYTES,
  type EventBus,
  type EventPayload,
} from './engine';
import { ackEvent, type DurableStart, type EventStore } from './event-store';

/** Marks an event sent as text (the seed's string events); without it the payload is bytes. */
const TEXT = 'Backplane-Text';

/**
 * The distributed engine's SharedEvents: every topic is a NATS subject under `prefix`, so an event
 * published at any node reaches the subscribers of every node, in the order the NATS server received a
 * topic's events. Publish resolves once the server has the event (a flush shared by the publishes of
 * the same moment); subscribe resolves once the server has the subscription. With an event `store`
 * (durable events), publish resolves once the event is stored, and durable subscriptions are offered.
 */
export class NatsBus implements EventBus {
  readonly kind = 'nats' as const;
  private readonly textHeaders = headers();
  private flushing: Promise<void> | undefined;
  private next: Promise<void> | undefined;
  private readonly queues = new Set<AsyncQueue<EventPayload>>();
  private readonly stopFollowing: () => void;

  /**
   * With `link`, publishes and subscribes fail fast while the NATS connection is lost, and the
   * subscriptions end with UNAVAILABLE when it is lost: events published meanwhile would be missed
   * without a word, so the client subscribes again (on another node, or here once NATS is back).
   */
  constructor(
    private readonly nc: NatsConnection,
    private readonly prefix: string,
    private readonly link?: NatsLink,
    private readonly maxQueued = 10_000,
    private readonly store?: EventStore,
  ) {
    this.textHeaders.set(TEXT, '1');
    this.stopFollowing =
      link?.onChange((state) => {
        if (state.connected) return;
        const err = BackplaneError.unavailable('this node lost its NATS connection: subscribe again', {
          reason: 'NATS_DISCONNECTED',
        });
        for (const q of this.queues) q.fail(err);
      }) ?? (() => undefined);
  }

  /** One PING/PONG for every publish made before it started. */
  private flush(): Promise<void> {
    if (!this.flushing) {
      this.flushing = this.nc.flush().finally(() => {
        this.flushing = undefined;
      });
      return this.flushing;
    }
    // a flush is on the wire already, sent before this publish: wait for the one after it (also when
    // that one failed, a disconnect say: this publish's flush is its own)
    const after = () => {
      this.next = undefined;
      return this.flush();
    };
    this.next ??= this.flushing.then(after, after);
    return this.next;
  }

  async publish(event: EventPayload): Promise<number | undefined> {
    this.link?.ensure();
    const subject = `${this.prefix}.${event.topic}`;
    const [data, hdrs] =
      event.payload.$case === 'text'
        ? [event.payload.text, this.textHeaders]
        : [event.payload.data, undefined];
    if (this.store) return this.store.publish(subject, data, hdrs);
    try {
      this.nc.publish(subject, data, hdrs ? { headers: hdrs } : undefined);
      await this.flush();
      return undefined;
    } catch (err) {
      throw BackplaneError.unavailable(`NATS: ${(err as Error).message}`, { cause: err });
    }
  }

  /** An event as received on `subject` (our prefix, then the topic). */
  private eventOf(subject: string, hdrs: MsgHdrs | undefined, data: Uint8Array): EventPayload {
    const topic = subject.slice(this.prefix.length + 1);
    return hdrs?.get(TEXT)
      ? { topic, payload: { $case: 'text', text: new TextDecoder().decode(data) } }
      : { topic, payload: { $case: 'data', data } };
  }

  async subscribe(pattern: string, signal: AbortSignal): Promise<AsyncIterable<EventPayload>> {
    this.link?.ensure();
    const queue = new AsyncQueue<EventPayload>(
      this.maxQueued,
      `subscriber too slow: more than ${this.maxQueued} events behind`,
      EVENT_BYTES,
    );
    const sub = this.nc.subscribe(`${this.prefix}.${pattern}`, {
      callback: (err, m) => {
        if (err) {
          queue.fail(BackplaneError.unavailable(`NATS: ${err.message}`));
          return;
        }
        queue.push(this.eventOf(m.subject, m.headers, m.data));
      },
    });
    this.queues.add(queue);
    const end = () => {
      this.queues.delete(queue);
      if (sub.isClosed()) return;
      sub.unsubscribe();
    };
    signal.addEventListener('abort', end, { once: true });
    try {
      await this.nc.flush();
    } catch (err) {
      end();
      throw BackplaneError.unavailable(`NATS: ${(err as Error).message}`, { cause: err });
    }
    return drained(queue, signal, end);
  }

  /**
   * A durable subscription: the stored events of `pattern` the subscription `start.name` has not
   * acknowledged, then new ones, at most the store's maxUnacked delivered and not acknowledged at a time.
   */
  async subscribeDurable(
    pattern: string,
    start: DurableStart,
    signal: AbortSignal,
  ): Promise<DurableSubscription> {
    if (!this.store)
      throw BackplaneError.incorrectState(
        'durable events are off on this node: set BACKPLANE_SHARING_EVENT_RETENTION_S (every node)',
        { reason: 'DURABLE_EVENTS_OFF' },
      );
    this.link?.ensureReady();
    const messages = await this.store.consume(`${this.prefix}.${pattern}`, start);
    const queue = new AsyncQueue<DeliveredEvent>(
      this.maxQueued,
      `subscriber too slow: more than ${this.maxQueued} events behind`,
      EVENT_BYTES,
    );
    const waiting = new Map<number, JsMsg>();
    this.queues.add(queue as AsyncQueue<EventPayload>);
    const end = () => {
      this.queues.delete(queue as AsyncQueue<EventPayload>);
      messages.stop();
      // what was delivered and not acknowledged goes to the next subscriber now, not after the ack wait
      for (const m of waiting.values()) m.nak();
      waiting.clear();
    };
    signal.addEventListener('abort', end, { once: true });
    void (async () => {
      try {
        for await (const m of messages) {
          waiting.set(m.seq, m);
          queue.push({
            ...this.eventOf(m.subject, m.headers, m.data),
            sequence: m.seq,
            redelivered: m.redelivered,
          });
        }
        if (!signal.aborted)
          queue.fail(
            BackplaneError.unavailable('the durable subscription ended at the server: subscribe again'),
          );
      } catch (err) {
        queue.fail(BackplaneError.unavailable(`NATS: ${(err as Error).message}`, { cause: err }));
      }
    })();
    return {
      events: drained(queue, signal, end),
      ack: async (sequence) => {
        const m = waiting.get(sequence);
        if (!m) return;
        waiting.delete(sequence);
        await ackEvent(m);
      },
    };
  }

  async close(): Promise<void> {
    this.stopFollowing();
    const err = BackplaneError.unavailable('the sharing node is stopping');
    for (const q of this.queues) q.fail(err);
  }
}

/** A subscription's queue as its events: drained until `signal` aborts, then `end` (once, whoever stops). */
function drained<T>(queue: AsyncQueue<T>, signal: AbortSignal, end: () => void): AsyncIterable<T> {
  return {
    async *[Symbol.asyncIterator]() {
      try {
        yield* queue.drain(signal);
      } finally {
        end();
        signal.removeEventListener('abort', end);
      }
    },
  };
}
