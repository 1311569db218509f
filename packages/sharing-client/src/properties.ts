import { randomUUID } from 'node:crypto';
import { BackplaneError, type CallOptions, serverStream } from '@backplane/client-core';
import {
  CommitRequest,
  CompareAndSetRequest,
  Consistency,
  GetRequest,
  ListRequest,
  type Entry as PbEntry,
  PutRequest,
  RemoveRequest,
  SharingServiceService,
  WatchRequest,
  WatchResponse_Kind,
} from '@backplane/proto/sharing';
import { isUnavailable, RETRY_FIRST_MS, retryPause, type SharingConnection } from './connection';

export type Value = string | Uint8Array;

const bytes = (v: Value): Buffer => (typeof v === 'string' ? Buffer.from(v) : Buffer.from(v));

/** A key's value with its revision. */
export class Property {
  constructor(
    readonly key: string,
    readonly value: Buffer,
    readonly revision: number,
    /** ms since the epoch; 0 = never expires. */
    readonly expiresAt: number,
    /** The revision that created the key (= revision when this value created it; 0 from older servers). */
    readonly createRevision = 0,
  ) {}

  /** Whether this value created the key (a watch's CREATE) rather than changed it (MODIFY). */
  get created(): boolean {
    return this.createRevision === this.revision;
  }

  /** The value as UTF-8 text (the seed's string values). */
  text(): string {
    return this.value.toString('utf8');
  }

  json<T = unknown>(): T {
    return JSON.parse(this.text()) as T;
  }
}

const fromPb = (e: PbEntry) => new Property(e.key, e.value, e.revision, e.expiresAtMs, e.createRevision);

export type ChangeKind = 'PUT' | 'DELETE' | 'EXPIRE';

export interface PropertyChange {
  kind: ChangeKind;
  key: string;
  revision: number;
  /** For PUT. */
  property?: Property;
}

export interface WatchOptions extends CallOptions {
  /** Watch every key that starts with `key`. */
  prefix?: boolean;
  /** Every change from this revision on (instead of the current values first). */
  fromRevision?: number;
  /** Called when the current values have all been sent (watches without fromRevision). */
  onSynced?: () => void;
}

const KINDS: Record<number, ChangeKind> = {
  [WatchResponse_Kind.KIND_PUT]: 'PUT',
  [WatchResponse_Kind.KIND_DELETE]: 'DELETE',
  [WatchResponse_Kind.KIND_EXPIRE]: 'EXPIRE',
};

/** Commit failed: these keys are no longer at the revisions the transaction read. */
export class TransactionConflict extends BackplaneError {
  override readonly name: string = 'TransactionConflict';
  constructor(readonly conflicts: Array<{ key: string; expectedRevision: number; actualRevision: number }>) {
    super(9, 'TRANSACTION_CONFLICT', `transaction conflict on ${conflicts.map((c) => c.key).join(', ')}`);
  }
}

/**
 * An optimistic transaction: get() records what was read; commit() applies every put and remove at
 * once if nothing read has changed since, or throws TransactionConflict and applies nothing.
 */
export class PropertiesTransaction {
  private readonly reads = new Map<string, number>();
  private readonly puts = new Map<string, { value: Buffer; ttlMs: number }>();
  private readonly removes = new Set<string>();

  constructor(private readonly props: SharedProperties) {}

  /**
   * Reads `key` and records its revision, which commit() requires to be unchanged. The read is
   * serializable by default (the node's own state, no read barrier): a stale value has an old revision,
   * so the commit that depends on it fails with TransactionConflict, and a commit that succeeds read
   * current values (as etcd's STM does). A caller who acts on what it read without committing can ask
   * for `consistency: 'linearizable'`.
   */
  async get(key: string, opts: CallOptions & ReadOptions = {}): Promise<Property | undefined> {
    const p = await this.props.get(key, { ...opts, consistency: opts.consistency ?? 'serializable' });
    if (!this.reads.has(key)) this.reads.set(key, p?.revision ?? 0);
    return p;
  }

  /** Requires `key` to be at `revision` (0 = absent) at commit, without reading it. */
  expect(key: string, revision: number): this {
    this.reads.set(key, revision);
    return this;
  }

  put(key: string, value: Value, opts: { ttlMs?: number } = {}): this {
    this.removes.delete(key);
    this.puts.set(key, { value: bytes(value), ttlMs: opts.ttlMs ?? 0 });
    return this;
  }

  remove(key: string): this {
    this.puts.delete(key);
    this.removes.add(key);
    return this;
  }

  /** Resolves with the revision of the writes. */
  async commit(opts?: CallOptions): Promise<number> {
    const request = CommitRequest.fromPartial({
      reads: [...this.reads].map(([key, revision]) => ({ key, revision })),
      puts: [...this.puts].map(([key, p]) => ({ key, value: p.value, ttlMs: p.ttlMs })),
      removes: [...this.removes],
      requestId: newRequestId(),
    });
    // through the call pipeline, as every other small call (a large one goes as a plain call by itself)
    const res = await this.props.connection.unary(
      SharingServiceService.commit,
      (s) => s.commit,
      request,
      opts,
      this.reads.size > 0,
    );
    if (!res.committed) throw new TransactionConflict(res.conflicts);
    return res.revision;
  }
}

/** A write's request id: every retry of the write sends the same one (see SharingConnection.withFailover). */
const newRequestId = () => randomUUID();

/** How fresh a read must be: linearizable (the default) or serializable (the node's own state at once). */
export interface ReadOptions {
  consistency?: 'linearizable' | 'serializable';
}

const consistencyOf = (o: ReadOptions) =>
  o.consistency === 'serializable'
    ? Consistency.CONSISTENCY_SERIALIZABLE
    : o.consistency === 'linearizable'
      ? Consistency.CONSISTENCY_LINEARIZABLE
      : Consistency.CONSISTENCY_UNSPECIFIED;

/** The seed's SharedProperties: put, get, remove, plus revisions, compare-and-set, list, watch, transactions. */
export class SharedProperties {
  constructor(readonly connection: SharingConnection) {}

  /** Sets a key; resolves with its new revision. */
  async put(key: string, value: Value, opts: CallOptions & { ttlMs?: number } = {}): Promise<number> {
    const res = await this.connection.unary(
      SharingServiceService.put,
      (s) => s.put,
      PutRequest.fromPartial({ key, value: bytes(value), ttlMs: opts.ttlMs ?? 0, requestId: newRequestId() }),
      opts,
    );
    return (res as { revision: number }).revision;
  }

  /**
   * The key's value, or undefined. Linearizable by default (it reflects every write acknowledged before
   * the call, at any node); `consistency: 'serializable'` answers from the node's own state at once, which
   * may trail writes made at other nodes.
   */
  async get(key: string, opts: CallOptions & ReadOptions = {}): Promise<Property | undefined> {
    const res = (await this.connection.unary(
      SharingServiceService.get,
      (s) => s.get,
      GetRequest.fromPartial({ key, consistency: consistencyOf(opts) }),
      opts,
    )) as {
      found: boolean;
      entry?: PbEntry;
    };
    return res.found && res.entry ? fromPb(res.entry) : undefined;
  }

  /** Removes a key (only at `expectedRevision` when given); false when it did not exist. */
  async remove(key: string, opts: CallOptions & { expectedRevision?: number } = {}): Promise<boolean> {
    const res = (await this.connection.unary(
      SharingServiceService.remove,
      (s) => s.remove,
      RemoveRequest.fromPartial({
        key,
        expectedRevision: opts.expectedRevision ?? 0,
        requestId: newRequestId(),
      }),
      opts,
      (opts.expectedRevision ?? 0) > 0,
    )) as { removed: boolean };
    return res.removed;
  }

  /** Sets `key` only if it is at `expectedRevision` (0 = absent); FAILED_PRECONDITION otherwise. */
  async compareAndSet(
    key: string,
    expectedRevision: number,
    value: Value,
    opts: CallOptions & { ttlMs?: number } = {},
  ): Promise<number> {
    const res = (await this.connection.unary(
      SharingServiceService.compareAndSet,
      (s) => s.compareAndSet,
      CompareAndSetRequest.fromPartial({
        key,
        expectedRevision,
        value: bytes(value),
        ttlMs: opts.ttlMs ?? 0,
        requestId: newRequestId(),
      }),
      opts,
      true,
    )) as { revision: number };
    return res.revision;
  }

  /** Every key under `prefix`, in key order, fetched a page at a time. */
  async *list(
    prefix = '',
    opts: CallOptions & ReadOptions & { pageSize?: number; keysOnly?: boolean } = {},
  ): AsyncGenerator<Property> {
    let pageToken = '';
    do {
      const res = (await this.connection.unary(
        SharingServiceService.list,
        (s) => s.list,
        ListRequest.fromPartial({
          prefix,
          pageSize: opts.pageSize ?? 0,
          pageToken,
          keysOnly: opts.keysOnly ?? false,
          consistency: consistencyOf(opts),
        }),
        opts,
      )) as { entries: PbEntry[]; nextPageToken: string };
      for (const e of res.entries) yield fromPb(e);
      pageToken = res.nextPageToken;
    } while (pageToken);
  }

  /**
   * The current values (unless fromRevision) and then every change, until the signal aborts. If the
   * node goes away the watch continues on another node from the last revision seen, so nothing is missed.
   */
  async *watch(key: string, opts: WatchOptions = {}): AsyncGenerator<PropertyChange> {
    let from = opts.fromRevision ?? 0;
    let synced = from > 0;
    let maxSeen = from - 1;
    // a transaction's changes share one revision: a resumed watch starts at the last revision seen and
    // skips the changes of it already given
    let seenAtMax = new Set<string>();
    let pause = RETRY_FIRST_MS;
    for (;;) {
      const stub = this.connection.stub;
      try {
        for await (const m of serverStream(
          stub.watch.bind(stub),
          WatchRequest.fromPartial({ key, prefix: opts.prefix ?? false, fromRevision: from }),
          this.connection.callOptions({
            ...opts,
            signal: opts.signal
              ? AbortSignal.any([opts.signal, this.connection.closeSignal])
              : this.connection.closeSignal,
          }),
        )) {
          pause = RETRY_FIRST_MS;
          if (m.synced) {
            synced = true;
            opts.onSynced?.();
            continue;
          }
          const e = m.entry;
          if (!e) continue;
          // (the current values come in key order, any revisions; changes after them in revision order)
          if (synced && (e.revision < maxSeen || (e.revision === maxSeen && seenAtMax.has(e.key)))) continue;
          if (e.revision > maxSeen) {
            maxSeen = e.revision;
            seenAtMax = new Set();
          }
          seenAtMax.add(e.key);
          const kind = KINDS[m.kind] ?? 'PUT';
          yield { kind, key: e.key, revision: e.revision, property: kind === 'PUT' ? fromPb(e) : undefined };
        }
        return;
      } catch (err) {
        if (!isUnavailable(err) || opts.signal?.aborted) throw err;
        this.connection.failover(stub);
        // once the current values are all in, carry on after the last revision seen; before that,
        // start over (the current values come again)
        from = synced ? Math.max(maxSeen, 1) : 0;
        // no node answers: wait before the next try (growing), instead of spinning on fast failures
        pause = await retryPause(pause, opts.signal);
      }
    }
  }

  transaction(): PropertiesTransaction {
    return new PropertiesTransaction(this);
  }
}
