import { AsyncQueue, BackplaneError, type NatsLink } from '@backplane/runtime';
import { headers, type NatsConnection } from '@nats-io/transport-node';
import { EVENT_BYTES, type EventBus, type EventPayload } from './engine';

/** Marks an event sent as text (the seed's string events); without it the payload is bytes. */
const TEXT = 'Backplane-Text';

/**
 * The distributed engine's SharedEvents: every topic is a NATS subject under `prefix`, so an event
 * published at any node reaches the subscribers of every node, in the order the NATS server received a
 * topic's events. Publish resolves once the server has the event (a flush shared by the publishes of
 * the same moment); subscribe resolves once the server has the subscription.
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

  async publish(event: EventPayload): Promise<void> {
    this.link?.ensure();
    try {
      const subject = `${this.prefix}.${event.topic}`;
      if (event.payload.$case === 'text')
        this.nc.publish(subject, event.payload.text, { headers: this.textHeaders });
      else this.nc.publish(subject, event.payload.data);
      await this.flush();
    } catch (err) {
      throw BackplaneError.unavailable(`NATS: ${(err as Error).message}`, { cause: err });
    }
  }

  async subscribe(pattern: string, signal: AbortSignal): Promise<AsyncIterable<EventPayload>> {
    this.link?.ensure();
    const queue = new AsyncQueue<EventPayload>(
      this.maxQueued,
      `subscriber too slow: more than ${this.maxQueued} events behind`,
      EVENT_BYTES,
    );
    const skip = this.prefix.length + 1;
    const sub = this.nc.subscribe(`${this.prefix}.${pattern}`, {
      callback: (err, m) => {
        if (err) {
          queue.fail(BackplaneError.unavailable(`NATS: ${err.message}`));
          return;
        }
        const topic = m.subject.slice(skip);
        queue.push(
          m.headers?.get(TEXT)
            ? { topic, payload: { $case: 'text', text: m.string() } }
            : { topic, payload: { $case: 'data', data: m.data } },
        );
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

  async close(): Promise<void> {
    this.stopFollowing();
    const err = BackplaneError.unavailable('the sharing node is stopping');
    for (const q of this.queues) q.fail(err);
  }
}
