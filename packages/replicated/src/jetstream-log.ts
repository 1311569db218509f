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
import { headers, type NatsConnection, nanos } from '@nats-io/transport-node';
import {
  BARRIER_ID,
  type Following,
  type LogEntry,
  NOT_APPENDED,
  type ReplicatedLog,
  type Snapshot,
} from './log';

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
const BARRIER_HEADER = 'Bp-Barrier';
const EMPTY = new Uint8Array(0);
/** A delivered message's entry id: the barrier marker, or the proposal's Nats-Msg-Id. */
const entryId = (h: { get(k: string): string } | undefined) =>
  h?.get(BARRIER_HEADER) ? BARRIER_ID : (h?.get('Nats-Msg-Id') ?? '');
/** How long a waited-for position may take to arrive through the consumer before it is read directly. */
const CATCH_UP_AFTER_MS = 250;
/** Entries read at once when a follower catches up by reading the stream. */
const CATCH_UP_WINDOW = 128;
/** A follower that received nothing for this long asks whether the stream grew. */
const IDLE_CHECK_MS = 2000;

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
  /** Reads by sequence when a follower catches up: short timeouts, tried again. */
  private readonly reader: JetStreamManager;
  private readonly subject: string;
  private readonly stream: string;
  private readonly log: Logger;
  private snapshots: ObjectStore | undefined;

  private constructor(
    private readonly options: JetStreamLogOptions,
    private readonly jsm: JetStreamManager,
    reader: JetStreamManager,
  ) {
    this.reader = reader;
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
      const reader = await jetstreamManager(options.nc, { timeout: 1000, checkAPI: false });
      const log = new JetStreamLog(options, jsm, reader);
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

  /** Publishes waiting for the end of this event-loop turn. */
  private publishing: Array<{
    data: Uint8Array;
    opts: Parameters<JetStreamClient['publish']>[2];
    resolve(ack: Awaited<ReturnType<JetStreamClient['publish']>>): void;
    reject(err: unknown): void;
  }> = [];

  /**
   * A JetStream publish, sent with the others of this event-loop turn: nats.js writes what is published
   * in one synchronous run as one socket write, and the appends of a busy node arrive in many turns'
   * microtasks (one per call), each of which would otherwise be a write of its own.
   */
  private publish(
    data: Uint8Array,
    opts: Parameters<JetStreamClient['publish']>[2],
  ): Promise<Awaited<ReturnType<JetStreamClient['publish']>>> {
    return new Promise((resolve, reject) => {
      this.publishing.push({ data, opts, resolve, reject });
      if (this.publishing.length === 1)
        setImmediate(() => {
          const batch = this.publishing;
          this.publishing = [];
          for (const p of batch) this.js.publish(this.subject, p.data, p.opts).then(p.resolve, p.reject);
        });
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
      ack = await this.publish(data, { msgID: id });
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

  /**
   * Appends an empty entry marked as a barrier (header Bp-Barrier, no Nats-Msg-Id: a retry may append a
   * second one, which is harmless, and JetStream keeps no dedup record for it) and returns its position.
   * The stream's leader answers the append only once a majority stored it, so the position is at or after
   * every entry acknowledged before: STREAM.INFO, answered by whichever server still believes it leads,
   * is not (the partition Jepsen run read a stale value through a cut-off leader that way).
   */
  async readBarrier(): Promise<number> {
    const h = headers();
    h.set(BARRIER_HEADER, '1');
    try {
      return (await this.publish(EMPTY, { headers: h })).seq;
    } catch (err) {
      throw unavailable(err);
    }
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
    let stopped = false;
    /** The consumer fell behind a wait: until it delivers a new entry itself, waits read at once. */
    let stalled = false;
    let lastDelivery = Date.now();
    let messages:
      | Awaited<ReturnType<Awaited<ReturnType<JetStreamClient['consumers']['getPushConsumer']>>['consume']>>
      | undefined;
    let timer: NodeJS.Timeout | undefined;
    let idle: NodeJS.Timeout | undefined;
    const stop = (): void => {
      stopped = true;
      if (idle) clearInterval(idle);
      if (timer) clearTimeout(timer);
      void messages?.stop();
    };
    const deliver = (seq: number, id: string, data: Uint8Array): void => {
      if (stopped || seq < expected) return; // delivered already (by the other path, or before a reset)
      if (seq > expected) {
        // entries between were purged: the consumer skipped them (a follower that fell behind a trim)
        stop();
        onGap(seq);
        return;
      }
      expected = seq + 1;
      lastDelivery = Date.now();
      onEntry({ position: seq, id, data });
    };
    const consumer = await this.js.consumers.getPushConsumer(this.stream, {
      deliver_policy: DeliverPolicy.StartSequence,
      opt_start_seq: expected,
    });
    messages = await consumer.consume({
      callback: (m: JsMsg) => {
        // the consumer delivers new entries again: waits go back to it
        if (m.seq === expected) stalled = false;
        deliver(m.seq, entryId(m.headers), m.data);
      },
    });
    const fail = (err: unknown): void => {
      if (stopped) return;
      stop();
      onError(err instanceof Error ? err : new Error(String(err)));
    };
    void messages.closed().then((err) => {
      if (err) fail(err);
    });
    // The consumer is one ephemeral consumer on one server. When that server is cut off from this node
    // (a partition, a frozen process) while this node's side still has, or elects, the stream's leader,
    // entries are appended but not delivered until the client makes a new consumer, which needs the
    // JetStream meta leader (its election can take longer, or it can be on the other side). So when a
    // caller waits for a position that has not arrived after CATCH_UP_AFTER_MS, or nothing arrived for a
    // while although the stream grew, the entries are read by sequence from the stream's leader: the
    // server that just acknowledged the append, so reachable whenever appends work. (A direct get, which
    // any replica answers, was tried first: its queue group spreads requests over all replicas, so with
    // one frozen, every other one waited for a timeout.)
    let needed = 0;
    let catchingUp = false;
    const get = (seq: number) =>
      this.reader.streams.getMessage(this.stream, { seq }).then(
        (m) => m ?? undefined,
        () => undefined,
      );
    const catchUp = async (): Promise<void> => {
      catchingUp = true;
      let misses = 0;
      try {
        // reads in flight (at most `window`, which starts at one after a miss and doubles with each
        // entry read, up to CATCH_UP_WINDOW), delivered in order; the map holds them in ascending order
        const inFlight = new Map<number, ReturnType<typeof get>>();
        let window = CATCH_UP_WINDOW;
        let ask = expected;
        while (!stopped && expected <= needed) {
          // reads the consumer made unnecessary meanwhile
          for (const s of inFlight.keys()) {
            if (s >= expected) break;
            inFlight.delete(s);
          }
          if (ask < expected) ask = expected;
          for (; ask <= needed && ask < expected + window; ask += 1) inFlight.set(ask, get(ask));
          const seq = expected;
          const m = await inFlight.get(seq);
          inFlight.delete(seq);
          if (stopped) return;
          if (m) {
            misses = 0;
            window = Math.min(window * 2, CATCH_UP_WINDOW);
            // only a read that was first (not one the consumer had delivered meanwhile) says it is behind
            if (expected === seq) stalled = true;
            deliver(m.seq, entryId(m.header), m.data);
            continue;
          }
          if (expected !== seq) continue; // the consumer delivered it meanwhile
          // no leader yet, or the entry is gone: ask for this one entry alone until it comes, after a
          // short wait; now and then check whether it was trimmed away
          inFlight.clear();
          ask = expected;
          window = 1;
          misses += 1;
          if (misses % 10 === 0) {
            const first = await this.firstPosition().catch(() => 0);
            if (stopped) return;
            if (first > expected) {
              // trimmed below a snapshot while this node was behind: it loads the snapshot instead
              stop();
              onGap(first);
              return;
            }
          }
          await new Promise((r) => setTimeout(r, Math.min(50 * misses, 500)).unref());
        }
      } finally {
        catchingUp = false;
      }
    };
    const startCatchUp = (): void => {
      void catchUp().catch(fail);
    };
    const check = (): void => {
      timer = undefined;
      if (stopped || catchingUp || expected > needed) return;
      startCatchUp();
    };
    const need = (position: number): void => {
      if (stopped || position < expected) return;
      needed = Math.max(needed, position);
      if (catchingUp) return;
      if (stalled) startCatchUp();
      else if (!timer) {
        timer = setTimeout(check, CATCH_UP_AFTER_MS);
        timer.unref();
      }
    };
    // an idle follower asks now and then whether the stream grew without it
    idle = setInterval(() => {
      if (stopped || catchingUp || Date.now() - lastDelivery < IDLE_CHECK_MS) return;
      void this.lastPosition().then(
        (last) => {
          lastDelivery = Date.now();
          need(last);
        },
        () => undefined,
      );
    }, IDLE_CHECK_MS);
    idle.unref();
    return { stop, need };
  }

  private async firstPosition(): Promise<number> {
    return (await this.jsm.streams.info(this.stream)).state.first_seq;
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
