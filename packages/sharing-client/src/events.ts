import { BackplaneError, type CallOptions, serverStream, unary } from '@backplane/client-core';
import {
  AckRequest,
  type PublishRequest,
  type SharingServiceClient,
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
  /** In a durable subscription: the event's sequence in the events stream. */
  sequence?: number;
  /** In a durable subscription: delivered before and not acknowledged in time. */
  redelivered?: boolean;
}

/**
 * The seed's Callback: `cb(se, topic, value)`; a plain function works too. In a durable subscription the
 * event is acknowledged once the callback returns (or its promise resolves); one that throws (or rejects)
 * leaves it unacknowledged, so it comes again after the ack wait.
 */
export type Callback =
  | ((events: SharedEvents, topic: string, value: string, event: SharedEvent) => unknown)
  | {
      cb(events: SharedEvents, topic: string, value: string, event: SharedEvent): unknown;
    };

/** How to subscribe (beyond the seed's topic and callback). */
export interface SubscribeOptions {
  /** Called when the subscription ends with an error (not when a node goes away: it moves to another). */
  onError?: (err: unknown) => void;
  /**
   * A durable subscription of this name (1-64 characters of A-Z a-z 0-9 _ -; the server must keep events:
   * NATS engine, BACKPLANE_SHARING_EVENT_RETENTION_S > 0). Events come in order, one callback at a time,
   * each acknowledged after its callback; a subscriber that stops and subscribes again under the same
   * name (from any process) gets every event it did not acknowledge and every later one.
   */
  durable?: string;
  /** For a durable subscription made for the first time: start at this sequence. */
  fromSequence?: number;
  /** For a durable subscription made for the first time: start at the events published since then. */
  fromTime?: Date | number;
}

/** An acknowledgement's error: reported, not fatal (the event comes again after the ack wait). */
const ACK_TIMEOUT_MS = 5000;

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

  /** Events whose callback failed (left unacknowledged, so delivered again) and acks that failed. */
  unacknowledged = 0;
  /** Acks on their way (a durable subscription's). */
  private readonly acks = new Set<Promise<void>>();

  constructor(
    readonly topic: string,
    private readonly events: SharedEvents,
    private readonly onEvent: (e: SharedEvent) => unknown,
    private readonly options: SubscribeOptions = {},
  ) {
    const onError = options.onError;
    this.ready = new Promise((res, rej) => {
      this.markReady = res;
      this.failReady = rej;
    });
    this.ready.catch(() => undefined);
    this.done = this.run().catch((err) => {
      this.failReady(err);
      onError?.(err);
    });
    const onClose = () => this.ac.abort();
    events.connection.closeSignal.addEventListener('abort', onClose, { once: true });
    void this.done.then(() => events.connection.closeSignal.removeEventListener('abort', onClose));
  }

  private request(): SubscribeRequest {
    const { durable, fromSequence, fromTime } = this.options;
    return SubscribeRequest.fromPartial({
      topic: this.topic,
      ...(durable
        ? {
            durableName: durable,
            fromSequence: fromSequence ?? 0,
            fromTimeMs:
              fromTime === undefined ? 0 : typeof fromTime === 'number' ? fromTime : fromTime.getTime(),
          }
        : {}),
    });
  }

  /** Runs the callback; a durable event is acknowledged, at the node that delivered it, once it returns. */
  private async deliver(stub: SharingServiceClient, id: string, e: SharedEvent): Promise<void> {
    if (!this.options.durable || !e.sequence) {
      // fire and forget: a callback's promise is not awaited (a rejection is reported, not fatal)
      const done = this.onEvent(e);
      if (done instanceof Promise) done.catch((err: unknown) => this.options.onError?.(err));
      return;
    }
    try {
      await this.onEvent(e);
    } catch {
      this.unacknowledged++;
      return;
    }
    // not awaited: the next event's callback runs while this ack travels; unsubscribe waits for it
    const ack = unary(
      stub.ack.bind(stub),
      AckRequest.fromPartial({ subscriptionId: id, sequence: e.sequence }),
      this.events.connection.callOptions({ timeoutMs: ACK_TIMEOUT_MS }),
    )
      .then(() => undefined)
      .catch(() => {
        this.unacknowledged++;
      })
      .finally(() => this.acks.delete(ack));
    this.acks.add(ack);
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
          this.request(),
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
            const event: SharedEvent = {
              topic: ev.topic,
              value: ev.payload?.$case === 'text' ? ev.payload.text : data.toString('utf8'),
              data,
              isText: ev.payload?.$case === 'text',
            };
            if (ev.sequence) {
              event.sequence = ev.sequence;
              event.redelivered = ev.redelivered;
            }
            await this.deliver(stub, this.id, event);
          }
        }
        return;
      } catch (err) {
        if (this.ac.signal.aborted) return;
        // the node went away: subscribe again on another one (events published meanwhile are missed,
        // unless the subscription is durable: then they come, with those not acknowledged)
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
        this.options.onError?.(err);
        return;
      }
    }
  }

  /** Ends the subscription. */
  async unsubscribe(): Promise<void> {
    // the events handled so far are acknowledged before the server forgets the subscription
    await Promise.all([...this.acks]);
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

  /**
   * Publishes a string (the seed's events) or bytes on a topic. Resolves with the event's sequence when
   * the server keeps events (durable events on), else with undefined.
   */
  async publish(topic: string, event: string | Uint8Array, opts?: CallOptions): Promise<number | undefined> {
    const req: PublishRequest = {
      topic,
      payload:
        typeof event === 'string'
          ? { $case: 'text', text: event }
          : { $case: 'data', data: Buffer.from(event) },
    };
    const res = await this.connection.unary(SharingServiceService.publish, (s) => s.publish, req, opts);
    return res.sequence || undefined;
  }

  /**
   * Calls `callback(events, topic, value)` for every event on `topic` (a topic or a pattern with '*'
   * and '>') published after the returned promise resolves. `options` may be an onError callback (called
   * when the subscription ends with an error) or SubscribeOptions, for a durable subscription.
   */
  async subscribe(
    topic: string,
    callback: Callback,
    options?: ((err: unknown) => void) | SubscribeOptions,
  ): Promise<Subscription> {
    const call = typeof callback === 'function' ? callback : callback.cb.bind(callback);
    const opts = typeof options === 'function' ? { onError: options } : (options ?? {});
    const sub = new Subscription(topic, this, (e) => call(this, e.topic, e.value, e), opts);
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
