import {
  AsyncQueue,
  BackplaneError,
  ExpiryHeap,
  type Logger,
  NatsLink,
  silentLogger,
} from '@backplane/runtime';
import {
  AckPolicy,
  DeliverPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
  jetstream,
  jetstreamManager,
} from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { headers, type MsgHdrs, type NatsConnection, nanos } from '@nats-io/transport-node';
import { DirectGetter, type StreamMsg as Msg } from './direct-get';
import {
  type Change,
  type CommitResult,
  type Entry,
  type PropertiesEngine,
  type PutOptions,
  revisionMismatch,
  type Transaction,
  WATCH_ITEM_BYTES,
  type WatchItem,
  type WatchOptions,
  watchCovers,
} from './engine';

/** NATS KV's own headers, plus ours: when a key expires, and why a delete happened. */
const KV_OPERATION = 'KV-Operation';
const EXPIRES = 'Backplane-Expires';
const REASON = 'Backplane-Reason';

export interface NatsPropertiesOptions {
  nc: NatsConnection;
  /** The connection's state (default: followed here): calls fail fast and watches end while it is lost. */
  link?: NatsLink;
  /** The JetStream KV bucket (stream KV_<bucket>); created when missing. */
  bucket: string;
  replicas?: number;
  /** Values kept per key (NATS KV history): what a watch resuming from an old revision can see. */
  history?: number;
  log?: Logger;
  reapEveryMs?: number;
  watchQueue?: number;
  /** How long open() waits for JetStream to be ready. */
  startTimeoutMs?: number;
}

/**
 * The distributed engine: SharedProperties in a NATS JetStream KV bucket, written and read through
 * JetStream directly (same subjects and headers as NATS KV, so `nats kv` tools see the same bucket) so
 * the service can add what nats-server 2.9 lacks: a per-key time to live is a `Backplane-Expires`
 * header that every read honours, and every node deletes keys whose time has passed, conditionally on
 * their revision (one node wins, the others' deletes are refused). Compare-and-set is JetStream's
 * expected-last-subject-sequence check. The node holds no state of its own.
 */
export class NatsProperties implements PropertiesEngine {
  readonly kind = 'nats' as const;
  private readonly js: JetStreamClient;
  private readonly direct: DirectGetter;
  private readonly log: Logger;
  private readonly stream: string;
  private readonly prefix: string;
  private readonly expiry = new ExpiryHeap();
  /** key → expiry and revision of its current value, for the keys that have a time to live. */
  private readonly expiring = new Map<string, { at: number; revision: number }>();
  private reaper: NodeJS.Timeout | undefined;
  private stopReaperWatch: (() => void) | undefined;
  private readonly link: NatsLink;
  private readonly ownLink: boolean;
  private readonly stopFollowing: () => void;
  /** The queues of the watches in progress: ended with UNAVAILABLE when the NATS connection is lost. */
  private readonly watches = new Set<AsyncQueue<WatchItem>>();

  private constructor(
    private readonly options: NatsPropertiesOptions,
    private readonly jsm: JetStreamManager,
  ) {
    this.js = jetstream(options.nc);
    this.direct = new DirectGetter(options.nc);
    this.log = options.log ?? silentLogger();
    this.stream = `KV_${options.bucket}`;
    this.prefix = `$KV.${options.bucket}.`;
    this.ownLink = !options.link;
    this.link = options.link ?? new NatsLink(options.nc);
    this.stopFollowing = this.link.onChange((state) => {
      if (!state.connected) this.lost();
      else if (state.ready) this.reconnected();
    });
  }

  /**
   * The connection is lost: watches end with UNAVAILABLE, so their clients resume from the last revision
   * they saw (on another node, or here once NATS is back) rather than wait on a consumer that may be gone.
   */
  private lost(): void {
    const err = BackplaneError.unavailable('this node lost its NATS connection: resume the watch', {
      reason: 'NATS_DISCONNECTED',
    });
    for (const q of this.watches) q.fail(err);
  }

  /** JetStream answers again: the reaper follows the bucket again from each key's last message. */
  private reconnected(): void {
    if (!this.reaper) return;
    this.stopReaperWatch?.();
    this.stopReaperWatch = undefined;
    this.followExpiries().catch((err) => this.log.warn({ err }, 'following expiries again failed'));
  }

  static async open(options: NatsPropertiesOptions): Promise<NatsProperties> {
    const version = options.nc.info?.version ?? '0.0.0';
    if ((options.replicas ?? 1) > 1 && !safeConditionalWrites(version))
      throw BackplaneError.incorrectState(
        `nats-server ${version} does not serialize conditional writes on replicated streams ` +
          '(nats-io/nats-server#4320, fixed in 2.9.21): concurrent compare-and-sets could both succeed. ' +
          'Use BACKPLANE_SHARING_REPLICAS=1 or nats-server >= 2.9.21.',
        { reason: 'UNSAFE_NATS_SERVER' },
      );
    // a cluster that has just started may still be electing its JetStream leader: wait for it
    const deadline = Date.now() + (options.startTimeoutMs ?? 60_000);
    let jsm: JetStreamManager;
    for (let attempt = 1; ; attempt++) {
      try {
        jsm = await jetstreamManager(options.nc);
        await new Kvm(options.nc).create(options.bucket, {
          replicas: options.replicas ?? 1,
          history: options.history ?? 16,
        });
        break;
      } catch (err) {
        if (Date.now() > deadline) throw unavailable(err);
        options.log?.info({ err: (err as Error).message, attempt }, 'JetStream not ready yet; retrying');
        await new Promise((r) => setTimeout(r, 250));
      }
    }
    const p = new NatsProperties(options, jsm);
    await p.startReaper();
    return p;
  }

  private toEntry(m: Msg, now = Date.now()): Entry | undefined {
    const op = m.headers?.get(KV_OPERATION);
    if (op === 'DEL' || op === 'PURGE') return undefined;
    const expiresAt = Number(m.headers?.get(EXPIRES) || 0);
    if (expiresAt && expiresAt <= now) return undefined;
    return { key: m.subject.slice(this.prefix.length), value: m.data, revision: m.seq, expiresAt };
  }

  private async last(key: string): Promise<Msg | null> {
    this.link.ensureReady();
    try {
      // a direct get, as NATS KV's own get (served by any replica: on R3 a read can trail a write on
      // another node by the replication delay, exactly as with the raw KV client)
      return await this.direct.last(this.stream, this.prefix + key);
    } catch (err) {
      throw unavailable(err);
    }
  }

  async get(key: string): Promise<Entry | undefined> {
    const m = await this.last(key);
    return m ? this.toEntry(m) : undefined;
  }

  /** Publishes a value or a delete marker, optionally only if the key's last message is at `expect`. */
  private async publish(
    key: string,
    data: Uint8Array,
    h: MsgHdrs | undefined,
    expect?: number,
  ): Promise<number> {
    this.link.ensureReady();
    try {
      const ack = await this.js.publish(this.prefix + key, data, {
        headers: h,
        expect: expect === undefined ? undefined : { lastSubjectSequence: expect },
      });
      return ack.seq;
    } catch (err) {
      if (
        err instanceof JetStreamApiError &&
        (err.code === JetStreamApiCodes.StreamWrongLastSequence ||
          err.code === JetStreamApiCodes.StreamWrongLastSequenceUnknown)
      )
        throw new RevisionMoved();
      throw unavailable(err);
    }
  }

  async put(key: string, value: Uint8Array, options: PutOptions = {}): Promise<number> {
    let h: MsgHdrs | undefined;
    if (options.ttlMs) {
      h = headers();
      h.set(EXPIRES, String(Date.now() + options.ttlMs));
    }
    const expected = options.expectRevision;
    if (expected === undefined) return this.publish(key, value, h);
    for (let attempt = 0; ; attempt++) {
      try {
        if (expected > 0) return await this.publish(key, value, h, expected);
        // "absent": no message at all, or a delete marker / an expired value (at its revision)
        const last = await this.last(key);
        const absentAt = !last ? 0 : this.toEntry(last) ? -1 : last.seq;
        if (absentAt < 0) throw new RevisionMoved();
        return await this.publish(key, value, h, absentAt);
      } catch (err) {
        if (!(err instanceof RevisionMoved)) throw err;
        const now = await this.get(key);
        // the key really is at another revision (or, for "absent", exists): that is the caller's conflict
        if (attempt >= 3 || (now?.revision ?? 0) !== expected)
          throw revisionMismatch(key, expected, now?.revision ?? 0);
      }
    }
  }

  async remove(key: string, expectRevision?: number): Promise<number | undefined> {
    for (;;) {
      const now = await this.get(key);
      if (expectRevision !== undefined && (now?.revision ?? 0) !== expectRevision)
        throw revisionMismatch(key, expectRevision, now?.revision ?? 0);
      if (!now) return undefined;
      const h = headers();
      h.set(KV_OPERATION, 'DEL');
      try {
        // conditional on the value we saw, so a put in between is not deleted unseen
        return await this.publish(key, new Uint8Array(0), h, now.revision);
      } catch (err) {
        if (!(err instanceof RevisionMoved)) throw err;
      }
    }
  }

  /** An ordered push consumer over the bucket; calls `onMsg` with `pending` (0 = caught up). */
  private async consume(
    filter: string,
    opts: { from: 'last-per-key' | 'new' | number; headersOnly?: boolean },
    onMsg: (m: JsMsg, pending: number) => void,
  ): Promise<{ initial: number; stop: () => void; closed: Promise<unknown> }> {
    const consumer = await this.js.consumers.getPushConsumer(this.stream, {
      filter_subject: this.prefix + filter,
      deliver_policy:
        opts.from === 'last-per-key'
          ? DeliverPolicy.LastPerSubject
          : opts.from === 'new'
            ? DeliverPolicy.New
            : DeliverPolicy.StartSequence,
      opt_start_seq: typeof opts.from === 'number' ? opts.from : undefined,
      ack_policy: AckPolicy.None,
      headers_only: opts.headersOnly ?? false,
      flow_control: true,
      idle_heartbeat: nanos(5000),
    } as never);
    const info = await consumer.info(true);
    const messages = await consumer.consume({ callback: (m: JsMsg) => onMsg(m, m.info.pending) });
    return { initial: info.num_pending, stop: () => void messages.stop(), closed: messages.closed() };
  }

  private asMsg(m: JsMsg): Msg {
    return { subject: m.subject, seq: m.seq, headers: m.headers, data: m.data };
  }

  /**
   * A page of the keys under `prefix` after `startAfter`. The keys come from the stream's subject index
   * (STREAM.INFO with a subject filter, answered by the stream's own server), the values from direct gets
   * of just the page's keys: no consumer is made, so a page costs one index read plus `limit` gets, and
   * List works whenever the stream's server does, even while the JetStream meta leader is being elected.
   */
  async list(
    prefix: string,
    startAfter: string,
    limit: number,
  ): Promise<{ entries: Entry[]; more: boolean }> {
    const keys = (await this.keysUnder(prefix)).filter((k) => k.startsWith(prefix) && k > startAfter).sort();
    const entries: Entry[] = [];
    const now = Date.now();
    let next = 0;
    // deleted and expired keys are in the index too: fetch until the page is full (and one more, for `more`)
    while (entries.length <= limit && next < keys.length) {
      const batch = keys.slice(next, next + limit + 1 - entries.length);
      next += batch.length;
      for (const m of await Promise.all(batch.map((k) => this.last(k)))) {
        const e = m ? this.toEntry(m, now) : undefined;
        if (e) entries.push(e);
      }
    }
    return { entries: entries.slice(0, limit), more: entries.length > limit || next < keys.length };
  }

  /** Every key with a message in the stream under `prefix`'s subject filter (deleted ones included). */
  private async keysUnder(prefix: string): Promise<string[]> {
    this.link.ensureReady();
    try {
      const info = await this.jsm.streams.info(this.stream, {
        subjects_filter: this.prefix + subjectFilter(prefix),
      });
      return Object.keys(info.state.subjects ?? {}).map((s) => s.slice(this.prefix.length));
    } catch (err) {
      throw unavailable(err);
    }
  }

  async *watch(key: string, options: WatchOptions): AsyncIterable<WatchItem> {
    this.link.ensureReady();
    const queue = new AsyncQueue<WatchItem>(
      this.options.watchQueue ?? 10_000,
      'watcher too slow: more than 10000 changes behind',
      WATCH_ITEM_BYTES,
    );
    const initialPhase = options.fromRevision === 0;
    let delivered = 0;
    let initial = Number.POSITIVE_INFINITY;
    const filter = options.prefix ? subjectFilter(key) : key;
    const onMsg = (m: JsMsg) => {
      delivered++;
      const change = this.toChange(this.asMsg(m));
      if (watchCovers(key, options.prefix, change.key)) {
        // the current values leave out deleted and expired keys
        const skip = initialPhase && delivered <= initial && change.kind !== 'PUT';
        if (!skip) queue.push({ change });
      }
      if (initialPhase && delivered === initial) queue.push({ synced: true });
    };
    const c = await this.consume(
      filter,
      { from: initialPhase ? 'last-per-key' : options.fromRevision },
      onMsg,
    ).catch((err) => {
      throw unavailable(err);
    });
    initial = c.initial;
    if (initialPhase && (initial === 0 || delivered >= initial)) queue.push({ synced: true });
    void c.closed.then(() => queue.fail(BackplaneError.unavailable('the NATS watch ended')));
    this.watches.add(queue);
    // lost between the check above and now: the consumer may never deliver
    if (!this.link.connected) this.lost();
    try {
      yield* queue.drain(options.signal);
    } finally {
      this.watches.delete(queue);
      c.stop();
    }
  }

  private toChange(m: Msg): Change {
    const key = m.subject.slice(this.prefix.length);
    const op = m.headers?.get(KV_OPERATION);
    if (op === 'DEL' || op === 'PURGE')
      return {
        kind: m.headers?.get(REASON) === 'expired' ? 'EXPIRE' : 'DELETE',
        key,
        revision: m.seq,
        expiresAt: 0,
      };
    const expiresAt = Number(m.headers?.get(EXPIRES) || 0);
    return { kind: 'PUT', key, revision: m.seq, value: m.data, expiresAt };
  }

  async commit(txn: Transaction): Promise<CommitResult> {
    const keys = new Set([...txn.reads.map((r) => r.key), ...txn.puts.map((p) => p.key), ...txn.removes]);
    if (keys.size > 1 || txn.puts.length + txn.removes.length > 1)
      throw BackplaneError.incorrectState(
        'multi-key transactions are not available on the NATS engine (nats-server 2.9 has no atomic batch publish); ' +
          'a transaction over one key works, and the embedded engine commits any transaction',
        { reason: 'NOT_SUPPORTED_BY_ENGINE' },
      );
    const read = txn.reads[0];
    const put = txn.puts[0];
    const removed = txn.removes[0];
    try {
      if (put) {
        const revision = await this.put(put.key, put.value, {
          ttlMs: put.ttlMs,
          expectRevision: read?.revision,
        });
        return { committed: true, revision };
      }
      if (removed !== undefined) {
        const revision = await this.remove(removed, read?.revision);
        return { committed: true, revision: revision ?? read?.revision ?? 0 };
      }
      if (read) {
        const actual = (await this.get(read.key))?.revision ?? 0;
        if (actual !== read.revision)
          return { committed: false, conflicts: [{ key: read.key, expected: read.revision, actual }] };
      }
      return { committed: true, revision: read?.revision ?? 0 };
    } catch (err) {
      const e = BackplaneError.from(err);
      if (e.reason !== 'REVISION_MISMATCH' || !read) throw err;
      const actual = (await this.get(read.key))?.revision ?? 0;
      return { committed: false, conflicts: [{ key: read.key, expected: read.revision, actual }] };
    }
  }

  /**
   * Every node follows the bucket's headers and deletes the keys whose time has passed, each delete
   * conditional on the revision that carried the expiry (so a key rewritten meanwhile survives).
   */
  private async startReaper(): Promise<void> {
    await this.followExpiries();
    this.reaper = setInterval(() => void this.reap(), this.options.reapEveryMs ?? 250);
    this.reaper.unref();
  }

  /** Follows the bucket's headers from each key's last message, noting which keys expire and when. */
  private async followExpiries(): Promise<void> {
    const c = await this.consume('>', { from: 'last-per-key', headersOnly: true }, (m) => {
      const change = this.toChange(this.asMsg(m));
      if (change.kind === 'PUT' && change.expiresAt) {
        this.expiring.set(change.key, { at: change.expiresAt, revision: change.revision });
        this.expiry.push(change.expiresAt, change.key);
      } else this.expiring.delete(change.key);
    });
    this.stopReaperWatch = c.stop;
  }

  private async reap(): Promise<void> {
    if (!this.link.ready) return;
    const now = Date.now();
    for (let top = this.expiry.peek(); top && top.at <= now; top = this.expiry.peek()) {
      this.expiry.pop();
      const e = this.expiring.get(top.id);
      if (!e || e.at !== top.at) continue;
      this.expiring.delete(top.id);
      const h = headers();
      h.set(KV_OPERATION, 'DEL');
      h.set(REASON, 'expired');
      await this.publish(top.id, new Uint8Array(0), h, e.revision).catch((err) => {
        if (!(err instanceof RevisionMoved))
          this.log.warn({ err, key: top.id }, 'deleting an expired key failed');
      });
    }
  }

  async close(): Promise<void> {
    clearInterval(this.reaper);
    this.reaper = undefined;
    this.stopFollowing();
    if (this.ownLink) this.link.stop();
    this.stopReaperWatch?.();
    this.direct.close();
  }
}

class RevisionMoved extends Error {}

/** Whether a nats-server checks expected-last-subject-sequence atomically on replicated streams. */
export function safeConditionalWrites(version: string): boolean {
  const [major = 0, minor = 0, patch = 0] = version.split(/[.-]/).map(Number);
  return major > 2 || (major === 2 && (minor > 9 || (minor === 9 && patch >= 21)));
}

function unavailable(err: unknown): BackplaneError {
  if (err instanceof BackplaneError) return err;
  return BackplaneError.unavailable(`NATS: ${(err as Error).message}`, { cause: err });
}

/** The subject filter that covers every key starting with `prefix` (then filtered exactly). */
export function subjectFilter(prefix: string): string {
  if (prefix === '') return '>';
  if (prefix.endsWith('.')) return `${prefix}>`;
  const dot = prefix.lastIndexOf('.');
  return dot < 0 ? '>' : `${prefix.slice(0, dot + 1)}>`;
}
