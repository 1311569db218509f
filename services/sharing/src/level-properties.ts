import {
  AsyncQueue,
  BackplaneError,
  ExpiryHeap,
  GroupCommitter,
  type Logger,
  prefixEnd,
  type Store,
  type StoreOp,
  silentLogger,
} from '@backplane/runtime';
import {
  CHANGE_BYTES,
  type Change,
  type ChangeKind,
  type CommitResult,
  type Conflict,
  type Entry,
  type PropertiesEngine,
  type PutOptions,
  revisionMismatch,
  type Transaction,
  type WatchItem,
  type WatchOptions,
  watchCovers,
} from './engine';

/** Store layout: values `v/<key>` → "rev:expiresAt:base64", history `l/<rev hex>` → "kind:expiresAt:key:base64". */
const VALUE = 'v/';
const LOG = 'l/';
const revKey = (rev: number) => `${LOG}${rev.toString(16).padStart(13, '0')}`;
const encodeValue = (e: Entry) => `${e.revision}:${e.expiresAt}:${Buffer.from(e.value).toString('base64')}`;
function decodeValue(key: string, s: string): Entry {
  const a = s.indexOf(':');
  const b = s.indexOf(':', a + 1);
  return {
    key,
    revision: Number(s.slice(0, a)),
    expiresAt: Number(s.slice(a + 1, b)),
    value: Buffer.from(s.slice(b + 1), 'base64'),
  };
}
const encodeChange = (c: Change) =>
  `${c.kind}:${c.expiresAt}:${c.key}:${c.value ? Buffer.from(c.value).toString('base64') : ''}`;
function decodeChange(rev: number, s: string): Change {
  const [kind, exp, key, value] = s.split(':') as [ChangeKind, string, string, string];
  return {
    kind,
    revision: rev,
    key,
    expiresAt: Number(exp),
    value: kind === 'PUT' ? Buffer.from(value, 'base64') : undefined,
  };
}

export interface LevelPropertiesOptions {
  store: Store;
  log?: Logger;
  /** How many revisions of history watches can resume from. */
  historyRevisions?: number;
  reapEveryMs?: number;
  /** Most changes a watcher may fall behind by before its stream ends (RESOURCE_EXHAUSTED). */
  watchQueue?: number;
}

interface Watcher {
  key: string;
  prefix: boolean;
  queue: AsyncQueue<Change>;
}

/** The entry unless it has expired by `now`. */
function unexpired(e: Entry | undefined, now: number): Entry | undefined {
  return e && (e.expiresAt === 0 || e.expiresAt > now) ? e : undefined;
}

/**
 * The embedded engine: every key in memory (the answer to get), level as the durable copy (the answer
 * to list, and the history watches resume from). Readers see only what is written: a change waits in
 * `pending` until its group-committed batch is, and only then is it in `entries`, acknowledged and shown
 * to watchers. Checks (compare-and-set, a commit's reads) compare with the latest value, pending changes
 * included, so they are decided in call order.
 */
export class LevelProperties implements PropertiesEngine {
  readonly kind = 'embedded' as const;
  private readonly entries = new Map<string, Entry>();
  private readonly expiry = new ExpiryHeap();
  private readonly watchers = new Set<Watcher>();
  private readonly committer: GroupCommitter;
  private readonly log: Logger;
  private readonly history: number;
  private readonly reaper: NodeJS.Timeout;
  /** The last revision given out (written or not). */
  private head = 0;
  /** The last revision written: what a reader has seen at most. */
  private durableHead = 0;
  /** Keys with changes not written yet: the latest of them, and how many are in flight. */
  private readonly pending = new Map<string, { entry: Entry | undefined; inFlight: number }>();
  /** The oldest revision still in the history (watches from before it are refused). */
  private oldest = 1;
  private sinceCompaction = 0;

  private constructor(private readonly options: LevelPropertiesOptions) {
    this.committer = new GroupCommitter(options.store);
    this.log = options.log ?? silentLogger();
    this.history = options.historyRevisions ?? 100_000;
    this.reaper = setInterval(() => void this.reap(), options.reapEveryMs ?? 200);
    this.reaper.unref();
  }

  static async open(options: LevelPropertiesOptions): Promise<LevelProperties> {
    const p = new LevelProperties(options);
    const store = options.store;
    for await (const [k, v] of store.iterator({ gte: VALUE, lt: prefixEnd(VALUE) })) {
      const e = decodeValue(String(k).slice(VALUE.length), v);
      p.entries.set(e.key, e);
      if (e.expiresAt) p.expiry.push(e.expiresAt, e.key);
    }
    for await (const k of store.keys({ gte: LOG, lt: prefixEnd(LOG), reverse: true, limit: 1 }))
      p.head = Number.parseInt(String(k).slice(LOG.length), 16);
    p.durableHead = p.head;
    for await (const k of store.keys({ gte: LOG, lt: prefixEnd(LOG), limit: 1 }))
      p.oldest = Number.parseInt(String(k).slice(LOG.length), 16);
    return p;
  }

  private live(key: string, now = Date.now()): Entry | undefined {
    return unexpired(this.entries.get(key), now);
  }

  async get(key: string): Promise<Entry | undefined> {
    return this.live(key);
  }

  /** The latest value, changes not written yet included: what checks compare with. */
  private latest(key: string, now = Date.now()): Entry | undefined {
    const p = this.pending.get(key);
    return unexpired(p ? p.entry : this.entries.get(key), now);
  }

  private check(key: string, expected: number | undefined): void {
    if (expected === undefined) return;
    const actual = this.latest(key)?.revision ?? 0;
    if (actual !== expected) throw revisionMismatch(key, expected, actual);
  }

  /**
   * Gives the changes their revisions and writes them; they count for checks at once and are seen by
   * readers and watchers once written. Resolves with the last revision.
   */
  private apply(changes: Array<Omit<Change, 'revision'>>): Promise<number> {
    const ops: StoreOp[] = [];
    const done: Array<{ change: Change; entry: Entry | undefined }> = [];
    for (const c of changes) {
      const change = { ...c, revision: ++this.head } as Change;
      const entry: Entry | undefined =
        change.kind === 'PUT'
          ? { key: c.key, value: c.value as Uint8Array, revision: change.revision, expiresAt: c.expiresAt }
          : undefined;
      done.push({ change, entry });
      const p = this.pending.get(c.key) ?? { entry, inFlight: 0 };
      p.entry = entry;
      p.inFlight++;
      this.pending.set(c.key, p);
      if (entry) ops.push({ type: 'put', key: VALUE + c.key, value: encodeValue(entry) });
      else ops.push({ type: 'del', key: VALUE + c.key });
      ops.push({ type: 'put', key: revKey(change.revision), value: encodeChange(change) });
    }
    this.sinceCompaction += done.length;
    if (this.sinceCompaction >= 1000 && this.head - this.history > this.oldest) {
      this.sinceCompaction = 0;
      this.oldest = this.head - this.history;
      void this.options.store
        .clear({ gte: LOG, lt: revKey(this.oldest) })
        .catch((err) => this.log.warn({ err }, 'compacting the history failed'));
    }
    const last = this.head;
    return this.committer.commit(ops).then(
      () => {
        for (const { change, entry } of done) {
          this.settle(change.key);
          if (entry) {
            this.entries.set(change.key, entry);
            if (entry.expiresAt) this.expiry.push(entry.expiresAt, entry.key);
          } else this.entries.delete(change.key);
          this.durableHead = change.revision;
          this.notify(change);
        }
        return last;
      },
      (err: unknown) => {
        // not written: nothing changes (their revisions stay unused)
        for (const { change } of done) this.settle(change.key);
        throw err;
      },
    );
  }

  private settle(key: string): void {
    const p = this.pending.get(key);
    if (p && --p.inFlight === 0) this.pending.delete(key);
  }

  async put(key: string, value: Uint8Array, options: PutOptions = {}): Promise<number> {
    this.check(key, options.expectRevision);
    const expiresAt = options.ttlMs ? Date.now() + options.ttlMs : 0;
    return this.apply([{ kind: 'PUT', key, value, expiresAt }]);
  }

  async remove(key: string, expectRevision?: number): Promise<number | undefined> {
    this.check(key, expectRevision);
    if (!this.latest(key)) return undefined;
    return this.apply([{ kind: 'DELETE', key, expiresAt: 0 }]);
  }

  async list(
    prefix: string,
    startAfter: string,
    limit: number,
  ): Promise<{ entries: Entry[]; more: boolean }> {
    const now = Date.now();
    const out: Entry[] = [];
    const from = VALUE + (startAfter > prefix ? startAfter : prefix);
    const it = this.options.store.iterator({
      [startAfter > prefix ? 'gt' : 'gte']: from,
      lt: prefixEnd(VALUE + prefix),
    });
    try {
      for await (const [k, v] of it) {
        const e = decodeValue(String(k).slice(VALUE.length), v);
        if (e.expiresAt && e.expiresAt <= now) continue;
        if (out.length === limit) return { entries: out, more: true };
        out.push(e);
      }
    } finally {
      await it.close();
    }
    return { entries: out, more: false };
  }

  async commit(txn: Transaction): Promise<CommitResult> {
    const conflicts: Conflict[] = [];
    for (const r of txn.reads) {
      const actual = this.latest(r.key)?.revision ?? 0;
      if (actual !== r.revision) conflicts.push({ key: r.key, expected: r.revision, actual });
    }
    if (conflicts.length > 0) return { committed: false, conflicts };
    const now = Date.now();
    const changes: Array<Omit<Change, 'revision'>> = [
      ...txn.puts.map((p) => ({
        kind: 'PUT' as const,
        key: p.key,
        value: p.value,
        expiresAt: p.ttlMs ? now + p.ttlMs : 0,
      })),
      ...txn.removes
        .filter((k) => this.latest(k))
        .map((key) => ({ kind: 'DELETE' as const, key, expiresAt: 0 })),
    ];
    if (changes.length === 0) return { committed: true, revision: this.durableHead };
    return { committed: true, revision: await this.apply(changes) };
  }

  async *watch(key: string, options: WatchOptions): AsyncIterable<WatchItem> {
    const watcher: Watcher = {
      key,
      prefix: options.prefix,
      queue: new AsyncQueue(
        this.options.watchQueue ?? 10_000,
        'watcher too slow: more than 10000 changes behind',
        CHANGE_BYTES,
      ),
    };
    this.watchers.add(watcher);
    try {
      let sent = 0;
      if (options.fromRevision === 0) {
        // the current values at one moment (taken at once): later changes come from the queue
        sent = this.durableHead;
        const now = Date.now();
        const keys = options.prefix
          ? [...this.entries.keys()].filter((k) => k.startsWith(key)).sort()
          : this.entries.has(key)
            ? [key]
            : [];
        const current = keys.map((k) => this.live(k, now)).filter((e): e is Entry => e !== undefined);
        for (const e of current)
          yield {
            change: { kind: 'PUT', key: e.key, revision: e.revision, value: e.value, expiresAt: e.expiresAt },
          };
        yield { synced: true };
      } else {
        if (options.fromRevision < this.oldest)
          throw BackplaneError.incorrectState(
            `revision ${options.fromRevision} is compacted; the history starts at ${this.oldest}`,
            { reason: 'COMPACTED' },
          );
        sent = options.fromRevision - 1;
        for await (const [k, v] of this.options.store.iterator({
          gte: revKey(options.fromRevision),
          lt: prefixEnd(LOG),
        })) {
          const change = decodeChange(Number.parseInt(String(k).slice(LOG.length), 16), v);
          sent = change.revision;
          if (watchCovers(key, options.prefix, change.key)) yield { change };
        }
      }
      for await (const change of watcher.queue.drain(options.signal))
        if (change.revision > sent) yield { change };
    } finally {
      this.watchers.delete(watcher);
    }
  }

  private notify(change: Change): void {
    for (const w of this.watchers) if (watchCovers(w.key, w.prefix, change.key)) w.queue.push(change);
  }

  private async reap(): Promise<void> {
    const now = Date.now();
    const expired: Array<Omit<Change, 'revision'>> = [];
    const later: Array<{ at: number; id: string }> = [];
    for (let top = this.expiry.peek(); top && top.at <= now; top = this.expiry.peek()) {
      this.expiry.pop();
      const e = this.entries.get(top.id);
      // a stale heap entry (the key was rewritten or removed since) is skipped; a key with a change in
      // flight is looked at again next time (the change may fail and leave this value)
      if (!e || e.expiresAt !== top.at) continue;
      if (this.pending.has(e.key)) later.push(top);
      else expired.push({ kind: 'EXPIRE', key: e.key, expiresAt: 0 });
    }
    for (const t of later) this.expiry.push(t.at, t.id);
    if (expired.length === 0) return;
    try {
      await this.apply(expired);
    } catch (err) {
      this.log.error({ err }, 'removing expired keys failed');
    }
  }

  async close(): Promise<void> {
    clearInterval(this.reaper);
    for (const w of this.watchers) w.queue.fail(BackplaneError.unavailable('the sharing node is stopping'));
    await this.committer.flush();
  }
}
