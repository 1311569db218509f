import { BackplaneError, type CallOptions, serverStream, unary } from '@backplane/client-core';
import {
  type PublishRequest,
  SharingServiceService,
  SubscribeRequest,
  UnsubscribeRequest,
} from '@backplane/proto/sharing';
import { isUnavailable, RETRY_FIRST_MS, retryPause, type SharingConnection } from './connection';

export interface SharedEvent {
  topic: string;
  /** The event as text (the seed's string events); for bytes events, their UTF-8 decoding. */
  value: string;
  /** The raw payload. */
  data: Buffer;
  /** Whether it was published as text. */
  isText: boolean;
}

/** The seed's Callback: `cb(se, topic, value)`; a plain function works too. */
export type Callback =
  | ((events: SharedEvents, topic: string, value: string, event: SharedEvent) => void)
  | { cb(events: SharedEvents, topic: string, value: string, event: SharedEvent): void };

/** A running subscription. */
export class Subscription {
  private readonly ac = new AbortController();
  /** The server's id, once subscribed. */
  id = '';
  /** Resolves when the subscription is in place; rejects if it could not be made. */
  readonly ready: Promise<void>;
  /** Resolves when it ends (unsubscribe, or an error other than a node going away). */
  readonly done: Promise<void>;
  private markReady!: () => void;
  private failReady!: (err: unknown) => void;

  constructor(
    readonly topic: string,
    private readonly events: SharedEvents,
    private readonly onEvent: (e: SharedEvent) => void,
    private readonly onError?: (err: unknown) => void,
  ) {
    this.ready = new Promise((res, rej) => {
      this.markReady = res;
      this.failReady = rej;
    });
    this.ready.catch(() => undefined);
    this.done = this.run().catch((err) => {
      this.failReady(err);
      this.onError?.(err);
    });
    const onClose = () => this.ac.abort();
    events.connection.closeSignal.addEventListener('abort', onClose, { once: true });
    void this.done.then(() => events.connection.closeSignal.removeEventListener('abort', onClose));
  }

  private async run(): Promise<void> {
    const conn = this.events.connection;
    let first = true;
    let pause = RETRY_FIRST_MS;
    for (;;) {
      if (this.ac.signal.aborted) return;
      const stub = conn.stub;
      try {
        for await (const m of serverStream(
          stub.subscribe.bind(stub),
          SubscribeRequest.fromPartial({ topic: this.topic }),
          conn.callOptions({ signal: this.ac.signal }),
        )) {
          pause = RETRY_FIRST_MS;
          if (m.message?.$case === 'subscriptionId') {
            this.id = m.message.subscriptionId;
            if (first) this.markReady();
            first = false;
          } else if (m.message?.$case === 'event') {
            const ev = m.message.event;
            const data =
              ev.payload?.$case === 'data'
                ? ev.payload.data
                : Buffer.from(ev.payload?.$case === 'text' ? ev.payload.text : '');
            this.onEvent({
              topic: ev.topic,
              value: ev.payload?.$case === 'text' ? ev.payload.text : data.toString('utf8'),
              data,
              isText: ev.payload?.$case === 'text',
            });
          }
        }
        return;
      } catch (err) {
        if (this.ac.signal.aborted) return;
        // the node went away: subscribe again on another one (events published meanwhile are missed)
        if (isUnavailable(err) && !first) {
          conn.failover(stub);
          pause = await retryPause(pause, this.ac.signal);
          continue;
        }
        if (isUnavailable(err) && first && conn.knownNodes.length > 1) {
          conn.failover(stub);
          pause = await retryPause(pause, this.ac.signal);
          continue;
        }
        this.failReady(err);
        this.onError?.(err);
        return;
      }
    }
  }

  /** Ends the subscription. */
  async unsubscribe(): Promise<void> {
    if (this.id)
      await unary(
        this.events.connection.stub.unsubscribe.bind(this.events.connection.stub),
        UnsubscribeRequest.fromPartial({ subscriptionId: this.id }),
        this.events.connection.callOptions({ timeoutMs: 5000 }),
      ).catch(() => undefined);
    this.ac.abort();
    await this.done;
  }
}

/** The seed's SharedEvents: publish on topics, subscribe with a callback (or iterate). */
export class SharedEvents {
  private readonly subscriptions = new Map<string, Set<Subscription>>();

  constructor(readonly connection: SharingConnection) {}

  /** Publishes a string (the seed's events) or bytes on a topic. */
  async publish(topic: string, event: string | Uint8Array, opts?: CallOptions): Promise<void> {
    const req: PublishRequest = {
      topic,
      payload:
        typeof event === 'string'
          ? { $case: 'text', text: event }
          : { $case: 'data', data: Buffer.from(event) },
    };
    await this.connection.unary(SharingServiceService.publish, (s) => s.publish, req, opts);
  }

  /**
   * Calls `callback(events, topic, value)` for every event on `topic` (a topic or a pattern with '*'
   * and '>') published after the returned promise resolves.
   */
  async subscribe(
    topic: string,
    callback: Callback,
    onError?: (err: unknown) => void,
  ): Promise<Subscription> {
    const call = typeof callback === 'function' ? callback : callback.cb.bind(callback);
    const sub = new Subscription(topic, this, (e) => call(this, e.topic, e.value, e), onError);
    let set = this.subscriptions.get(topic);
    if (!set) {
      set = new Set();
      this.subscriptions.set(topic, set);
    }
    set.add(sub);
    void sub.done.finally(() => set.delete(sub));
    await sub.ready;
    return sub;
  }

  /**
   * The events of `topic` as an async iterator (ends when `signal` aborts). A consumer more than
   * `maxQueued` events (default 10,000) behind gets the ones queued, then RESOURCE_EXHAUSTED (memory stays
   * bounded; it can subscribe again).
   */
  async *events(
    topic: string,
    opts: { signal?: AbortSignal; maxQueued?: number } = {},
  ): AsyncGenerator<SharedEvent> {
    const max = opts.maxQueued ?? 10_000;
    const queue: SharedEvent[] = [];
    let wake: (() => void) | undefined;
    let failure: unknown;
    let sub: Subscription | undefined;
    sub = await this.subscribe(
      topic,
      (_se, _t, _v, e) => {
        if (failure) return;
        if (queue.length >= max) {
          failure = BackplaneError.of(
            'RESOURCE_EXHAUSTED',
            `the consumer fell more than ${max} events behind`,
          );
          void sub?.unsubscribe();
        } else queue.push(e);
        wake?.();
      },
      (err) => {
        failure = err;
        wake?.();
      },
    );
    const onAbort = () => wake?.();
    opts.signal?.addEventListener('abort', onAbort);
    try {
      for (;;) {
        const e = queue.shift();
        if (e) {
          yield e;
          continue;
        }
        if (failure) throw failure;
        if (opts.signal?.aborted) return;
        await new Promise<void>((r) => {
          wake = r;
        });
        wake = undefined;
      }
    } finally {
      opts.signal?.removeEventListener('abort', onAbort);
      await sub.unsubscribe();
    }
  }

  /** The seed's unsubscribe(topic): ends every subscription of this object to `topic`. */
  async unsubscribe(topic: string | Subscription): Promise<void> {
    if (typeof topic !== 'string') return topic.unsubscribe();
    await Promise.all([...(this.subscriptions.get(topic) ?? [])].map((s) => s.unsubscribe()));
  }
}
