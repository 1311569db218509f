import { randomBytes } from 'node:crypto';
import type { Consistency } from '@backplane/replicated';
import { BackplaneError } from '@backplane/runtime';
import type {
  CommitResult,
  DeliveredEvent,
  Entry,
  EventBus,
  EventPayload,
  PropertiesEngine,
  Transaction,
  WatchItem,
} from './engine';
import { type DurableStart, validateDurableName } from './event-store';
import {
  LIMITS,
  pageToken,
  validateKey,
  validatePattern,
  validatePrefix,
  validateTopic,
  validateTtl,
  validateValue,
} from './limits';
import type { Ring } from './ring';

export interface SubscriptionHandle {
  id: string;
  /** A durable subscription's events carry their sequence (DeliveredEvent). */
  events: AsyncIterable<EventPayload | DeliveredEvent>;
}

interface Subscribed {
  ac: AbortController;
  /** A durable subscription's acks. */
  ack?: ((sequence: number) => Promise<void>) | undefined;
}

/**
 * The sharing node's domain: SharedProperties over an engine, SharedEvents over a bus, and the ring.
 * Everything a caller sends is validated here, so both engines see only well-formed input.
 */
export class Sharing {
  /** subscription id → how to end it (Unsubscribe), and a durable one's acks. */
  private readonly subscriptions = new Map<string, Subscribed>();

  constructor(
    readonly properties: PropertiesEngine,
    readonly events: EventBus,
    /** Replaced once the node knows its own address (after it listens). */
    public ring: Ring,
    private readonly limits = { maxSubscriptions: 10_000, maxWatches: 10_000 },
  ) {}

  private watches = 0;

  async put(key: string, value: Uint8Array, ttlMs = 0, requestId?: string): Promise<number> {
    return this.properties.put(validateKey(key), validateValue(value), {
      ttlMs: validateTtl(ttlMs),
      requestId,
    });
  }

  async get(key: string, consistency: Consistency = 'linearizable'): Promise<Entry | undefined> {
    return this.properties.get(validateKey(key), consistency);
  }

  async remove(key: string, expectedRevision = 0, requestId?: string): Promise<number | undefined> {
    return this.properties.remove(
      validateKey(key),
      expectedRevision > 0 ? expectedRevision : undefined,
      requestId,
    );
  }

  async compareAndSet(
    key: string,
    expectedRevision: number,
    value: Uint8Array,
    ttlMs = 0,
    requestId?: string,
  ): Promise<number> {
    return this.properties.put(validateKey(key), validateValue(value), {
      ttlMs: validateTtl(ttlMs),
      expectRevision: expectedRevision,
      requestId,
    });
  }

  async list(
    prefix: string,
    pageSize: number,
    token: string,
    consistency: Consistency = 'linearizable',
  ): Promise<{ entries: Entry[]; nextPageToken: string }> {
    validatePrefix(prefix);
    if (pageSize > LIMITS.pageSize)
      throw BackplaneError.badParameter(`page_size is at most ${LIMITS.pageSize}, got ${pageSize}`);
    const limit = pageSize || LIMITS.defaultPageSize;
    const after = pageToken.decode(token);
    const { entries, more } = await this.properties.list(prefix, after, limit, consistency);
    const last = entries[entries.length - 1];
    return { entries, nextPageToken: more && last ? pageToken.encode(last.key) : '' };
  }

  async *watch(
    key: string,
    prefix: boolean,
    fromRevision: number,
    signal: AbortSignal,
  ): AsyncIterable<WatchItem> {
    if (prefix) validatePrefix(key);
    else validateKey(key);
    if (this.watches >= this.limits.maxWatches)
      throw BackplaneError.of(
        'RESOURCE_EXHAUSTED',
        `this node serves at most ${this.limits.maxWatches} watches`,
      );
    this.watches++;
    try {
      yield* this.properties.watch(key, { prefix, fromRevision, signal });
    } finally {
      this.watches--;
    }
  }

  async commit(txn: Transaction, requestId?: string): Promise<CommitResult> {
    const ops = txn.reads.length + txn.puts.length + txn.removes.length;
    if (ops === 0) throw BackplaneError.badParameter('a transaction needs at least one read, put or remove');
    if (ops > LIMITS.txnOps)
      throw BackplaneError.badParameter(`a transaction has at most ${LIMITS.txnOps} reads, puts and removes`);
    const written = new Set<string>();
    for (const r of txn.reads) validateKey(r.key);
    for (const p of txn.puts) {
      validateKey(p.key);
      validateValue(p.value);
      validateTtl(p.ttlMs);
      if (written.has(p.key))
        throw BackplaneError.badParameter(`key ${p.key} is written twice in one transaction`);
      written.add(p.key);
    }
    for (const k of txn.removes) {
      validateKey(k);
      if (written.has(k)) throw BackplaneError.badParameter(`key ${k} is written twice in one transaction`);
      written.add(k);
    }
    return this.properties.commit(txn, requestId);
  }

  /** Resolves with the event's sequence when events are kept (durable events), else undefined. */
  async publish(event: EventPayload): Promise<number | undefined> {
    validateTopic(event.topic);
    const size =
      event.payload.$case === 'text' ? Buffer.byteLength(event.payload.text) : event.payload.data.length;
    if (size > LIMITS.eventBytes)
      throw BackplaneError.of(
        'RESOURCE_EXHAUSTED',
        `an event is at most ${LIMITS.eventBytes} bytes, got ${size}`,
        {
          reason: 'EVENT_TOO_LARGE',
        },
      );
    return this.events.publish(event);
  }

  /**
   * Subscribes; the subscription lasts until `signal` aborts or Unsubscribe(id). With `durable`, the
   * durable subscription of that name (events kept until acknowledged with ack()).
   */
  async subscribe(pattern: string, signal: AbortSignal, durable?: DurableStart): Promise<SubscriptionHandle> {
    validatePattern(pattern);
    if (durable) {
      validateDurableName(durable.name);
      if (!this.events.subscribeDurable)
        throw BackplaneError.incorrectState(
          'durable subscriptions need the NATS engine with durable events on (BACKPLANE_SHARING_EVENT_RETENTION_S)',
          { reason: 'DURABLE_EVENTS_OFF' },
        );
    }
    // gone already (it cancelled while being authenticated): an abort listener would never fire
    if (signal.aborted) throw BackplaneError.of('CANCELLED', 'the call was cancelled before it subscribed');
    if (this.subscriptions.size >= this.limits.maxSubscriptions)
      throw BackplaneError.of(
        'RESOURCE_EXHAUSTED',
        `this node serves at most ${this.limits.maxSubscriptions} subscriptions`,
      );
    const id = randomBytes(16).toString('base64url');
    const ac = new AbortController();
    const onAbort = () => ac.abort(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    const subscribed: Subscribed = { ac };
    this.subscriptions.set(id, subscribed);
    const forget = () => {
      this.subscriptions.delete(id);
      signal.removeEventListener('abort', onAbort);
    };
    ac.signal.addEventListener('abort', forget, { once: true });
    try {
      let events: AsyncIterable<EventPayload | DeliveredEvent>;
      if (durable && this.events.subscribeDurable) {
        const sub = await this.events.subscribeDurable(pattern, durable, ac.signal);
        subscribed.ack = sub.ack;
        events = sub.events;
      } else events = await this.events.subscribe(pattern, ac.signal);
      return {
        id,
        events: {
          async *[Symbol.asyncIterator]() {
            try {
              yield* events;
            } catch (err) {
              // Unsubscribe ends the stream as if it had ended normally
              if (!(ac.signal.aborted && ac.signal.reason === UNSUBSCRIBED)) throw err;
            } finally {
              forget();
            }
          },
        },
      };
    } catch (err) {
      forget();
      throw err;
    }
  }

  unsubscribe(id: string): void {
    this.subscribed(id).ac.abort(UNSUBSCRIBED);
  }

  /** Acknowledges an event of a durable subscription (a sequence not waiting for its ack is a no-op). */
  async ack(id: string, sequence: number): Promise<void> {
    const ack = this.subscribed(id).ack;
    if (!ack)
      throw BackplaneError.incorrectState('only the events of a durable subscription are acknowledged', {
        reason: 'NOT_DURABLE',
      });
    if (!Number.isSafeInteger(sequence) || sequence <= 0)
      throw BackplaneError.badParameter(`an event's sequence is a positive integer, got ${sequence}`);
    await ack(sequence);
  }

  private subscribed(id: string): Subscribed {
    const s = this.subscriptions.get(id);
    if (!s)
      throw BackplaneError.notFound('no such subscription on this node', {
        reason: 'SUBSCRIPTION_NOT_FOUND',
      });
    return s;
  }

  get subscriptionCount(): number {
    return this.subscriptions.size;
  }

  async close(): Promise<void> {
    await this.ring.close();
    await this.events.close();
    await this.properties.close();
  }
}

const UNSUBSCRIBED = BackplaneError.of('CANCELLED', 'unsubscribed');

/** A fresh node id. */
export const newNodeId = () => randomBytes(6).toString('hex');
