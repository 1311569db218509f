import { BackplaneError, type Logger, retryJetStream } from '@backplane/runtime';
import {
  AckPolicy,
  type ConsumerConfig,
  type ConsumerMessages,
  DeliverPolicy,
  DiscardPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
  jetstream,
  jetstreamManager,
  RetentionPolicy,
  StorageType,
} from '@nats-io/jetstream';
import { type MsgHdrs, type NatsConnection, nanos } from '@nats-io/transport-node';

/** Where a durable subscription starts the first time it is made (afterwards: where it left off). */
export interface DurableStart {
  /** 1-64 characters of A-Z a-z 0-9 _ -. */
  name: string;
  fromSequence?: number;
  /** ms since the epoch. */
  fromTimeMs?: number;
}

export interface EventStoreOptions {
  /** The events stream (BP_<bucket>_events). */
  stream: string;
  /** The subjects' prefix: the stream keeps `<prefix>.>`. */
  prefix: string;
  /** How long an event is kept; also how long a durable subscription nobody uses is kept. */
  retentionS: number;
  replicas: number;
  /** How long a delivered event waits for its ack before it is delivered again. */
  ackWaitMs: number;
  /** Events a durable subscription may have delivered and not acknowledged. */
  maxUnacked: number;
  log?: Logger | undefined;
}

const DURABLE_NAME = /^[A-Za-z0-9_-]{1,64}$/;

/** Checks a durable subscription's name (it names a JetStream consumer). */
export function validateDurableName(name: string): void {
  if (!DURABLE_NAME.test(name))
    throw BackplaneError.badParameter(
      `a durable subscription's name is 1-64 characters of A-Z a-z 0-9 _ -, got ${JSON.stringify(name)}`,
      { reason: 'BAD_DURABLE_NAME' },
    );
}

/**
 * SharedEvents kept for a while (durable events): a JetStream stream holds every event published under
 * the prefix for `retentionS`, a publish returns once the event is stored (its sequence), and a durable
 * subscription is a named JetStream consumer with explicit acks, so a subscriber that goes away and comes
 * back (at any node) gets every event it did not acknowledge and every later one.
 */
export class EventStore {
  private constructor(
    private readonly options: EventStoreOptions,
    private readonly js: JetStreamClient,
    private readonly jsm: JetStreamManager,
  ) {}

  static async open(nc: NatsConnection, options: EventStoreOptions): Promise<EventStore> {
    const retry = { log: options.log };
    const jsm = await retryJetStream('JetStream manager', () => jetstreamManager(nc), retry);
    const store = new EventStore(options, jetstream(nc), jsm);
    await retryJetStream(`stream ${options.stream}`, () => store.ensureStream(), retry);
    return store;
  }

  private async ensureStream(): Promise<void> {
    const { stream, prefix, retentionS, replicas } = this.options;
    try {
      const info = await this.jsm.streams.info(stream);
      if (info.config.max_age !== nanos(retentionS * 1000))
        await this.jsm.streams.update(stream, { max_age: nanos(retentionS * 1000) });
    } catch (err) {
      if (!(err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamNotFound)) throw err;
      await this.jsm.streams.add({
        name: stream,
        subjects: [`${prefix}.>`],
        storage: StorageType.File,
        retention: RetentionPolicy.Limits,
        discard: DiscardPolicy.Old,
        max_age: nanos(retentionS * 1000),
        num_replicas: replicas,
      });
    }
  }

  /** Stores an event; resolves with its sequence. */
  async publish(subject: string, data: Uint8Array | string, headers?: MsgHdrs): Promise<number> {
    try {
      const ack = await this.js.publish(subject, data, headers ? { headers } : undefined);
      return ack.seq;
    } catch (err) {
      throw BackplaneError.unavailable(`NATS: the event was not stored: ${(err as Error).message}`, {
        cause: err,
        reason: err instanceof JetStreamApiError ? 'EVENT_NOT_STORED' : 'NO_SUCCESS',
      });
    }
  }

  /**
   * The durable subscription `start.name` on `subject` (made the first time, from `start`): its
   * messages, which the caller acknowledges. A name already used for another topic is refused.
   */
  async consume(subject: string, start: DurableStart): Promise<ConsumerMessages> {
    validateDurableName(start.name);
    const config = this.consumerConfig(subject, start);
    try {
      await this.ensureConsumer(config);
      const consumer = await this.js.consumers.get(this.options.stream, start.name);
      return await consumer.consume({ max_messages: Math.min(256, this.options.maxUnacked) });
    } catch (err) {
      if (err instanceof BackplaneError) throw err;
      throw BackplaneError.unavailable(`NATS: ${(err as Error).message}`, { cause: err });
    }
  }

  private consumerConfig(subject: string, start: DurableStart): Partial<ConsumerConfig> {
    const from =
      start.fromSequence && start.fromSequence > 0
        ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: start.fromSequence }
        : start.fromTimeMs && start.fromTimeMs > 0
          ? {
              deliver_policy: DeliverPolicy.StartTime,
              opt_start_time: new Date(start.fromTimeMs).toISOString(),
            }
          : { deliver_policy: DeliverPolicy.New };
    return {
      durable_name: start.name,
      filter_subject: subject,
      ack_policy: AckPolicy.Explicit,
      ack_wait: nanos(this.options.ackWaitMs),
      max_ack_pending: this.options.maxUnacked,
      // a durable subscription nobody comes back to is dropped with the events it would have got
      inactive_threshold: nanos(this.options.retentionS * 1000),
      ...from,
    };
  }

  private async ensureConsumer(config: Partial<ConsumerConfig>): Promise<void> {
    const name = config.durable_name as string;
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const info = await this.jsm.consumers.info(this.options.stream, name);
        if (info.config.filter_subject !== config.filter_subject)
          throw BackplaneError.incorrectState(
            `the durable subscription ${name} is on ${this.topicOf(info.config.filter_subject)}, not ` +
              `${this.topicOf(config.filter_subject)}: use another name`,
            { reason: 'DURABLE_TOPIC_MISMATCH' },
          );
        return;
      } catch (err) {
        if (!(err instanceof JetStreamApiError && err.code === JetStreamApiCodes.ConsumerNotFound)) throw err;
      }
      try {
        await this.jsm.consumers.add(this.options.stream, config);
        return;
      } catch (err) {
        // made by another node at the same moment: read it again
        if (!(err instanceof JetStreamApiError) || attempt > 0) throw err;
      }
    }
  }

  private topicOf(subject: string | undefined): string {
    return (subject ?? '').slice(this.options.prefix.length + 1);
  }
}

/** A delivered durable event's acknowledgement, confirmed by the server. */
export async function ackEvent(m: JsMsg, timeoutMs = 5000): Promise<void> {
  try {
    await m.ackAck({ timeout: timeoutMs });
  } catch (err) {
    throw BackplaneError.unavailable(`NATS: the ack was not confirmed: ${(err as Error).message}`, {
      cause: err,
    });
  }
}
