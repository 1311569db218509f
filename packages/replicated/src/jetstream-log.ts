import { BackplaneError, type Logger, retryJetStream, silentLogger } from '@backplane/runtime';
import {
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
import { type ObjectStore, Objm } from '@nats-io/obj';
import { type NatsConnection, nanos } from '@nats-io/transport-node';
import { type Following, type LogEntry, NOT_APPENDED, type ReplicatedLog, type Snapshot } from './log';

export interface JetStreamLogOptions {
  nc: NatsConnection;
  /** The log's name: stream BP_<name> on subject bp.<name>.log, snapshots in object store BP_<name>_snap. */
  name: string;
  /** Stream replicas when created: 1 on one server, 3 on a cluster. */
  replicas?: number;
  /** How long JetStream remembers a proposal id (a retry within it is not appended twice); default 2 min. */
  duplicateWindowMs?: number;
  /** How long an append or a position request may take before it counts as unknown (default 5 s). */
  timeoutMs?: number;
  log?: Logger;
  /** How long open() waits for JetStream (a cluster that has just started elects its leaders). */
  startTimeoutMs?: number;
}

const SNAPSHOT = 'latest';

/**
 * The distributed log: a JetStream stream (file storage, R1 on one server, R3 on a cluster), whose
 * sequence numbers are the positions. A proposal's id is its Nats-Msg-Id, so an append retried after a
 * timeout is acknowledged with the first one's sequence instead of being appended twice. The last position
 * comes from the stream's leader (stream info): the read barrier. Snapshots go to an object store with
 * the same replicas, and trimming is a purge below a snapshot.
 */
export class JetStreamLog implements ReplicatedLog {
  readonly kind = 'jetstream' as const;
  readonly maxEntryBytes: number;
  private readonly js: JetStreamClient;
  private readonly subject: string;
  private readonly stream: string;
  private readonly log: Logger;
  private snapshots: ObjectStore | undefined;

  private constructor(
    private readonly options: JetStreamLogOptions,
    private readonly jsm: JetStreamManager,
  ) {
    this.js = jetstream(options.nc, { timeout: options.timeoutMs ?? 5000 });
    this.stream = `BP_${options.name}`;
    this.subject = `bp.${options.name}.log`;
    this.log = options.log ?? silentLogger();
    // the server's largest message, less room for the headers (Nats-Msg-Id and JetStream's own)
    this.maxEntryBytes = (options.nc.info?.max_payload ?? 1024 * 1024) - 1024;
  }

  static async open(options: JetStreamLogOptions): Promise<JetStreamLog> {
    const retry = { deadlineMs: options.startTimeoutMs ?? 60_000, log: options.log };
    try {
      const jsm = await retryJetStream(
        'JetStream manager',
        () => jetstreamManager(options.nc, { timeout: options.timeoutMs ?? 5000 }),
        retry,
      );
      const log = new JetStreamLog(options, jsm);
      await retryJetStream(`stream BP_${options.name}`, () => log.ensureStream(), retry);
      await retryJetStream(`object store BP_${options.name}_snap`, () => log.ensureSnapshots(), retry);
      return log;
    } catch (err) {
      throw err instanceof BackplaneError ? err : unavailable(err);
    }
  }

  private async ensureStream(): Promise<void> {
    const replicas = this.options.replicas ?? 1;
    const config = {
      name: this.stream,
      subjects: [this.subject],
      storage: StorageType.File,
      retention: RetentionPolicy.Limits,
      discard: DiscardPolicy.Old,
      num_replicas: replicas,
      duplicate_window: nanos(this.options.duplicateWindowMs ?? 120_000),
      max_msg_size: this.maxEntryBytes + 1024,
    };
    try {
      const info = await this.jsm.streams.info(this.stream);
      if (info.config.num_replicas !== replicas)
        this.log.warn(
          { stream: this.stream, replicas: info.config.num_replicas, wanted: replicas },
          'the log stream exists with other replicas; keeping them',
        );
    } catch (err) {
      if (!(err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamNotFound)) throw err;
      await this.jsm.streams.add(config);
    }
  }

  private async ensureSnapshots(): Promise<void> {
    const replicas = this.options.replicas ?? 1;
    this.snapshots = await new Objm(this.options.nc).create(`${this.stream}_snap`, {
      replicas,
      storage: StorageType.File,
    });
  }

  async append(id: string, data: Uint8Array): Promise<number> {
    if (data.length > this.maxEntryBytes)
      throw BackplaneError.badParameter(
        `a log entry is at most ${this.maxEntryBytes} bytes (the NATS server's max_payload), got ${data.length}`,
        { reason: 'PROPOSAL_TOO_LARGE' },
      );
    let ack: Awaited<ReturnType<JetStreamClient['publish']>>;
    try {
      ack = await this.js.publish(this.subject, data, { msgID: id });
    } catch (err) {
      // refused by JetStream, or no server had the stream's subject: nothing was appended; anything else
      // (a timeout, a lost connection) may have been
      const definite = err instanceof JetStreamApiError || (err as Error)?.name === 'NoRespondersError';
      throw BackplaneError.unavailable(`NATS: ${(err as Error).message}`, {
        cause: err,
        reason: definite ? NOT_APPENDED : 'NO_SUCCESS',
      });
    }
    // a duplicate of an append the stream has not stored yet has no sequence: ask again shortly
    if (ack.seq <= 0)
      throw BackplaneError.unavailable('the first append of this id is not stored yet', {
        reason: 'NO_SUCCESS',
      });
    return ack.seq;
  }

  async lastPosition(): Promise<number> {
    try {
      return (await this.jsm.streams.info(this.stream)).state.last_seq;
    } catch (err) {
      throw unavailable(err);
    }
  }

  async follow(
    after: number,
    onEntry: (entry: LogEntry) => void,
    onGap: (firstHeld: number) => void,
    onError: (err: Error) => void,
  ): Promise<Following> {
    const state = (await this.jsm.streams.info(this.stream)).state;
    // trimmed below what this node needs: it loads a snapshot instead
    if (state.messages > 0 && after + 1 < state.first_seq) {
      onGap(state.first_seq);
      return { stop: () => undefined };
    }
    let expected = after + 1;
    const consumer = await this.js.consumers.getPushConsumer(this.stream, {
      deliver_policy: DeliverPolicy.StartSequence,
      opt_start_seq: expected,
    });
    let stopped = false;
    const messages = await consumer.consume({
      callback: (m: JsMsg) => {
        if (stopped) return;
        if (m.seq < expected) return; // redelivered after a reset of the ordered consumer
        if (m.seq > expected) {
          // entries between were purged: the consumer skipped them (a follower that fell behind a trim)
          stopped = true;
          void messages.stop();
          onGap(m.seq);
          return;
        }
        expected = m.seq + 1;
        onEntry({ position: m.seq, id: m.headers?.get('Nats-Msg-Id') ?? '', data: m.data });
      },
    });
    void messages.closed().then((err) => {
      if (!stopped && err) onError(err instanceof Error ? err : new Error(String(err)));
    });
    return {
      stop: () => {
        stopped = true;
        void messages.stop();
      },
    };
  }

  async loadSnapshot(): Promise<Snapshot | undefined> {
    const store = this.snapshots as ObjectStore;
    const info = await store.info(SNAPSHOT);
    if (!info || info.deleted) return undefined;
    const data = await store.getBlob(SNAPSHOT);
    if (!data) return undefined;
    return { position: Number(info.description), data };
  }

  async snapshotPosition(): Promise<number> {
    const info = await (this.snapshots as ObjectStore).info(SNAPSHOT);
    return info && !info.deleted ? Number(info.description) : 0;
  }

  async saveSnapshot(snapshot: Snapshot): Promise<void> {
    const store = this.snapshots as ObjectStore;
    const current = await store.info(SNAPSHOT);
    // a node that saves an older snapshot than another did leaves the newer one
    if (current && !current.deleted && Number(current.description) >= snapshot.position) return;
    await store.putBlob({ name: SNAPSHOT, description: String(snapshot.position) }, snapshot.data);
  }

  async trim(position: number): Promise<void> {
    await this.jsm.streams.purge(this.stream, { seq: position });
  }

  async close(): Promise<void> {
    // the connection belongs to the caller
  }
}

function unavailable(err: unknown): BackplaneError {
  if (err instanceof BackplaneError) return err;
  return BackplaneError.unavailable(`NATS: ${(err as Error).message}`, { cause: err });
}
