import { mkdirSync } from 'node:fs';
import { type FileHandle, open, readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import {
  AsyncLock,
  BackplaneError,
  Condition,
  type Logger,
  prefixEnd,
  type Store,
  silentLogger,
} from '@backplane/runtime';
import {
  type CapKind,
  formatCapability,
  hashKey,
  keyMatches,
  newAllocationId,
  newKey,
  parseCapability,
} from './capability';
import { type Chunk, exactly } from './chunks';
import { FileCache } from './file-cache';
import { type ChunkAllocator, rangeRead, ringRead, ringWrite, writeFully } from './files';
import {
  clearInline,
  type DataOp,
  dataOp,
  gather,
  INLINE_MAX,
  inlineable,
  inlineExtents,
  inlineKeys,
  readInline,
  sweepInline,
} from './inline';
import { type PoolConfig, type PoolStatus, Pools } from './pools';
import {
  type AllocationRecord,
  type AllocationType,
  type DerivedCap,
  isQueue,
  type PoolName,
  type Reliability,
} from './records';

export interface DepotOptions {
  store: Store;
  pools: Record<PoolName, PoolConfig>;
  /** Longest duration from now, in seconds. */
  maxDurationSeconds: number;
  log?: Logger;
  now?: () => number;
  reaperIntervalMs?: number;
  /** Buffers that read chunks go into (the gRPC layer frames them in place). */
  chunkAllocator?: ChunkAllocator;
  /** BYTE_ARRAY areas of at most this many bytes keep their data in level (default INLINE_MAX; 0 = none). */
  inlineMaxBytes?: number;
}

export interface Attributes {
  /** Absolute expiry in seconds since the epoch; 0 = permanent. */
  duration: number;
  reliability: Reliability;
  type: AllocationType;
}

export interface CapSet {
  readCap: string;
  writeCap: string;
  manageCap: string;
}

export interface Probe {
  readRefCount: number;
  writeRefCount: number;
  currentSize: number;
  maxSize: number;
  attributes: Attributes;
  /** Seconds until purge; -1 = permanent. */
  timeLeft: number;
}

/** What a store reports: bytes stored, the area's size after it, and the CRC-32 of the stored bytes. */
export interface StoreResult {
  stored: number;
  currentSize: number;
  crc32: number;
}

export type ManageCommand = 'INCR' | 'DECR' | 'PROBE' | 'CHNG';

export type { Chunk } from './chunks';

export interface ReadHooks {
  /** Called with the number of bytes the read will yield, before the first chunk. */
  onLength?: (length: number) => void;
  /** Awaited after the last chunk and before a FIFO or circular queue consumes what was read. */
  beforeConsume?: () => Promise<void>;
}

/** An area in memory: its record and the queues of the seed's blocking rules. */
interface Live {
  rec: AllocationRecord;
  /** One active writer; the others queue in arrival order. */
  writer: AsyncLock;
  /** One reader at a time of a FIFO or circular queue. */
  reader: AsyncLock;
  /** Signalled when data arrives (a blocked FIFO read re-checks). */
  data: Condition;
  /** Metadata writes, in order. */
  saving: Promise<void>;
  /**
   * An inline area with a STABLE store in flight: the bytes readers may see (the store's are in level only
   * once its batch is committed); undefined = all of rec.size.
   */
  readable?: number;
  /** A circular-queue update that was staged and recorded but not yet written into the ring. */
  pendingRedo?: Redo;
  freed: boolean;
}

const KEY = (id: string) => `alloc!${id}`;
/** Checksummed extents of BYTE_ARRAY and BUFFER data: one per store, keyed by offset. */
const EXTENT_PREFIX = (id: string) => `sum!${id}!`;

type StoreOp = { type: 'put'; key: string; value: string } | { type: 'del'; key: string } | DataOp;

/** A circular-queue store in progress: where the staged bytes go and the state after them. */
interface Redo {
  tail: number;
  total: number;
  head: number;
  size: number;
}
const REDO_KEY = (id: string) => `redo!${id}`;

function extentOp(id: string, offset: number, length: number, crc: number): StoreOp {
  return {
    type: 'put',
    key: `${EXTENT_PREFIX(id)}${String(offset).padStart(16, '0')}`,
    value: JSON.stringify({ length, crc }),
  };
}
const CLEAN_KEY = 'meta!clean';
const MAX_ALLOCATION = Number.MAX_SAFE_INTEGER;
/** During a STABLE store, data is flushed to disk in the background every this many bytes. */
const EARLY_FLUSH_BYTES = 64 * 1024 * 1024;
/** classic-level's write option: fsync the log before the write returns. */
const SYNC = { sync: true } as never;

function exceeded(message: string): BackplaneError {
  return BackplaneError.of('RESOURCE_EXHAUSTED', message, { reason: 'IBP_E_WOULD_EXCEED_LIMIT' });
}

/**
 * An IBP depot: storage areas in files of two pools, metadata in level, capabilities checked against
 * stored key hashes. STABLE data is fsynced before a store is acknowledged.
 */
export class Depot {
  private readonly areas = new Map<string, Live>();
  private readonly pools: Pools;
  private readonly files = new FileCache();
  private readonly volatilePending = new Map<string, { snapshot: string; ops: StoreOp[] }>();
  private volatileTimer: NodeJS.Timeout | undefined;
  private volatileFlush: Promise<void> = Promise.resolve();
  /** STABLE metadata writes waiting for the next group commit, and whether one is in flight. */
  private stableQueue: Array<{ live: Live; ops: StoreOp[]; done: (err?: unknown) => void }> = [];
  private stableCommitting = false;
  private readonly log: Logger;
  private readonly now: () => number;
  private reaper: NodeJS.Timeout | undefined;
  private capHost = '127.0.0.1';
  private capPort = 6714;
  private closed = false;

  private constructor(private readonly options: DepotOptions) {
    this.pools = new Pools(options.pools);
    this.log = options.log ?? silentLogger();
    this.now = options.now ?? Date.now;
  }

  static async open(options: DepotOptions): Promise<Depot> {
    const depot = new Depot(options);
    for (const p of Object.values(options.pools)) mkdirSync(p.dir, { recursive: true });
    await depot.load();
    depot.reaper = setInterval(() => void depot.reap(), options.reaperIntervalMs ?? 1000);
    depot.reaper.unref();
    return depot;
  }

  /** Where clients reach this depot: put in every capability it issues. */
  setAddress(host: string, port: number): void {
    this.capHost = host;
    this.capPort = port;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.reaper) clearInterval(this.reaper);
    await this.flushVolatile();
    await Promise.all([...this.areas.values()].map((l) => l.saving));
    await this.files.closeAll();
    await this.options.store.put(CLEAN_KEY, '1', SYNC);
  }

  // ---- start-up -----------------------------------------------------------------------------------

  private async load(): Promise<void> {
    const db = this.options.store;
    const clean = (await db.get(CLEAN_KEY)) === '1';
    await db.del(CLEAN_KEY, SYNC);
    const lost: string[] = [];
    for await (const [key, value] of db.iterator({ gte: 'alloc!', lt: 'alloc"' })) {
      const rec = JSON.parse(value) as AllocationRecord;
      if (rec.inline) {
        // its bytes were written before or with its record: nothing to check against a file
        this.areas.set(rec.id, this.live(rec));
        this.pools.add(rec);
        continue;
      }
      const path = this.path(rec);
      // an area that was never written has no file yet: that is length 0, not a loss
      const length = await stat(path).then(
        (st) => st.size,
        () => 0,
      );
      const needed = isQueue(rec.type) ? Math.min(rec.maxSize, rec.head + rec.size) : rec.size;
      if (length < needed) {
        if (rec.reliability === 'VOLATILE') {
          lost.push(rec.id);
          await db.del(String(key));
          await rm(path, { force: true });
          continue;
        }
        this.log.error({ id: rec.id, length, needed }, 'stable area shorter than its metadata says');
      }
      this.areas.set(rec.id, this.live(rec));
      this.pools.add(rec);
    }
    for await (const [key, value] of db.iterator({ gte: 'redo!', lt: 'redo"' })) {
      const live = this.areas.get(String(key).slice(5));
      const done = live ? await this.replayRedo(live, JSON.parse(value) as Redo) : false;
      if (!done) {
        await db.del(String(key));
        if (live) {
          lost.push(live.rec.id);
          await this.free(live);
        }
      }
    }
    await this.removeOrphans();
    const swept = await sweepInline(db, (id) => {
      const rec = this.areas.get(id)?.rec;
      return rec?.inline ? rec.size : undefined;
    });
    if (swept > 0) this.log.info({ extents: swept }, 'removed inline data no area owns');
    if (!clean && this.areas.size + lost.length > 0) {
      this.log.warn(
        { lostVolatileAreas: lost.length },
        'the depot did not shut down cleanly: VOLATILE areas may have lost data written before the crash',
      );
    }
    if (lost.length > 0) this.log.warn({ ids: lost }, 'VOLATILE areas lost in the crash were removed');
    await this.reap();
  }

  /**
   * Removes files no area owns: data of VOLATILE areas whose metadata a crash lost, BUFFER generations a
   * crash left behind, stage files of stores that never finished.
   */
  private async removeOrphans(): Promise<void> {
    let removed = 0;
    for (const pool of ['stable', 'volatile'] as const) {
      const dir = this.options.pools[pool].dir;
      for (const name of await readdir(dir).catch(() => [] as string[])) {
        const live = this.areas.get(name.split('.')[0] as string);
        // (an inline area owns no file: one left by a move into a file that a crash interrupted goes)
        if (live && !live.rec.inline && live.rec.pool === pool && join(dir, name) === this.path(live.rec))
          continue;
        await rm(join(dir, name), { force: true });
        removed++;
      }
    }
    if (removed > 0) this.log.info({ removed }, 'removed files that no area owns');
  }

  private live(rec: AllocationRecord): Live {
    return {
      rec,
      writer: new AsyncLock(),
      reader: new AsyncLock(),
      data: new Condition(),
      saving: Promise.resolve(),
      freed: false,
    };
  }

  private path(rec: AllocationRecord, generation?: number): string {
    const dir = this.options.pools[rec.pool].dir;
    // a BUFFER is rewritten whole into a new file per store, so its file name carries a generation
    return rec.type === 'BUFFER' ? join(dir, `${rec.id}.${generation ?? rec.generation}`) : join(dir, rec.id);
  }

  // ---- capabilities -------------------------------------------------------------------------------

  /**
   * Throws what the operation would throw for this capability (malformed, wrong kind, unknown): calls that
   * reach out to another host (Deliver, RemoteStore) check first, so a bad capability opens no connection.
   */
  check(cap: string, kind: CapKind, what: string): void {
    this.authorizeWithLimit(cap, kind, what);
  }

  private authorize(cap: string, kind: CapKind, what: string): Live {
    return this.authorizeWithLimit(cap, kind, what).live;
  }

  /** Checks a capability; a derived read capability comes back with the limits it carries. */
  private authorizeWithLimit(cap: string, kind: CapKind, what: string): { live: Live; limit?: DerivedCap } {
    const c = parseCapability(cap, what);
    if (c.kind !== kind) {
      throw BackplaneError.of(
        'INCORRECT_STATE',
        `${what} must be a ${kind} capability, got a ${c.kind} capability`,
        {
          reason: 'IBP_E_WRONG_CAP_TYPE',
        },
      );
    }
    const now = this.now();
    const live = this.areas.get(c.id);
    const usable = live && !live.freed && (live.rec.expiresAt === 0 || live.rec.expiresAt > now);
    if (usable && keyMatches(c.key, live.rec.keyHashes[kind])) return { live };
    const limit =
      usable && kind === 'READ'
        ? live.rec.derived?.find((d) => keyMatches(c.key, d.hash) && (d.expiresAt === 0 || d.expiresAt > now))
        : undefined;
    if (live && limit) return { live, limit };
    throw BackplaneError.notFound(
      `no storage area for this ${kind} capability (freed, expired, reclaimed, revoked or never issued here)`,
      {
        reason: 'IBP_E_CAP_NOT_FOUND',
      },
    );
  }

  /**
   * Writes the record (with `extra` operations in the same batch), in order. A STABLE area's write is
   * fsynced and awaited before anything is acknowledged. A VOLATILE area promises no durability, so its
   * writes are gathered and committed together a few milliseconds later (one level batch for many areas).
   */
  private save(live: Live, extra: StoreOp[] = []): Promise<void> {
    // a freed area's record is gone for good: a late write (a store or CHNG that finished after the free)
    // must not bring it back
    if (live.freed) return Promise.resolve();
    live.rec.version += 1;
    const id = live.rec.id;
    const snapshot = JSON.stringify(live.rec);
    if (live.rec.reliability === 'VOLATILE') {
      const pending = this.volatilePending.get(id) ?? { snapshot, ops: [] };
      pending.snapshot = snapshot;
      pending.ops.push(...extra);
      this.volatilePending.set(id, pending);
      this.volatileTimer ??= setTimeout(() => void this.flushVolatile(), 20);
      if (this.volatilePending.size >= 1024) void this.flushVolatile();
      return Promise.resolve();
    }
    // a pending VOLATILE write of this area (it was VOLATILE until now) is folded into this one
    const pending = this.volatilePending.get(id);
    this.volatilePending.delete(id);
    const ops: StoreOp[] = [
      ...(pending?.ops ?? []),
      ...extra,
      { type: 'put', key: KEY(id), value: snapshot },
    ];
    const write = new Promise<void>((resolve, reject) => {
      if (this.stableQueue.length === 0 && !this.stableCommitting)
        setImmediate(() => void this.commitStable());
      this.stableQueue.push({ live, ops, done: (err) => (err === undefined ? resolve() : reject(err)) });
    });
    live.saving = write.catch((err: unknown) => this.log.error({ err, id }, 'metadata write failed'));
    return write;
  }

  /**
   * Group commit of STABLE metadata: the writes asked for while one fsynced batch is in flight go
   * together in the next (in the order asked, so an area's writes stay in order), one fsync for all of
   * them instead of one each. An area freed meanwhile is not written again.
   */
  private async commitStable(): Promise<void> {
    if (this.stableCommitting) return;
    this.stableCommitting = true;
    try {
      while (this.stableQueue.length > 0) {
        const group = this.stableQueue;
        this.stableQueue = [];
        await this.volatileFlush;
        const ops = group.flatMap((g) => (g.live.freed ? [] : g.ops));
        const failed = await (ops.length > 0
          ? this.options.store.batch<string, string | Buffer>(ops, SYNC)
          : Promise.resolve()
        ).then(
          () => undefined,
          (err: unknown) => err ?? new Error('metadata write failed'),
        );
        for (const g of group) g.done(failed);
      }
    } finally {
      this.stableCommitting = false;
    }
  }

  /** Commits the gathered VOLATILE metadata writes in one batch, after the previous one. */
  private flushVolatile(): Promise<void> {
    if (this.volatileTimer) clearTimeout(this.volatileTimer);
    this.volatileTimer = undefined;
    if (this.volatilePending.size === 0) return this.volatileFlush;
    const ops: StoreOp[] = [];
    for (const [id, p] of this.volatilePending)
      ops.push(...p.ops, { type: 'put', key: KEY(id), value: p.snapshot });
    this.volatilePending.clear();
    this.volatileFlush = this.volatileFlush
      .then(() => this.options.store.batch<string, string | Buffer>(ops, {}))
      .catch((err: unknown) => this.log.error({ err }, 'volatile metadata write failed'));
    return this.volatileFlush;
  }

  // ---- IBP_allocate -------------------------------------------------------------------------------

  private validateDuration(duration: number): number {
    if (!Number.isInteger(duration) || duration < 0) {
      throw BackplaneError.badParameter(
        `duration must be 0 (permanent) or seconds since the epoch, got ${duration}`,
      );
    }
    if (duration === 0) return 0;
    const nowS = this.now() / 1000;
    if (duration <= nowS)
      throw BackplaneError.badParameter(`duration ${duration} is in the past (now is ${Math.floor(nowS)})`);
    if (duration - nowS > this.options.maxDurationSeconds) {
      throw BackplaneError.badParameter(
        `duration is ${Math.round(duration - nowS)} s from now; this depot allows at most ${this.options.maxDurationSeconds} s`,
        { reason: 'IBP_E_INV_PAR_DURATION' },
      );
    }
    return duration * 1000;
  }

  async allocate(size: number, attributes: Attributes): Promise<CapSet> {
    return (await this.reserve(size, attributes, true)).caps;
  }

  /**
   * Makes the area and its capabilities; `persist` writes its record before returning (allocateWith
   * leaves that to the store that follows, which writes the record with its first extent: one durable
   * write fewer, and a crash in between leaves only a file no record owns, which startup removes).
   */
  private async reserve(
    size: number,
    attributes: Attributes,
    persist: boolean,
  ): Promise<{ caps: CapSet; live: Live }> {
    if (this.closed) throw BackplaneError.unavailable('the depot is shutting down');
    if (!Number.isSafeInteger(size) || size < 0 || size > MAX_ALLOCATION) {
      throw BackplaneError.badParameter(`size must be a non-negative integer, got ${size}`, {
        reason: 'IBP_E_INV_PAR_SIZE',
      });
    }
    if (isQueue(attributes.type) && size === 0) {
      throw BackplaneError.badParameter(`a ${attributes.type} needs a size of at least 1 byte`, {
        reason: 'IBP_E_INV_PAR_SIZE',
      });
    }
    const expiresAt = this.validateDuration(attributes.duration);
    const { pool, reclaim } = this.pools.place(size, attributes.reliability, () =>
      [...this.areas.values()].map((l) => l.rec),
    );
    // start freeing the victims and reserve the space in the same tick: a concurrent allocation must see
    // the pool as it will be, not borrow the room being reclaimed
    const reclaiming: Promise<void>[] = [];
    for (const victim of reclaim) {
      const l = this.areas.get(victim.id);
      if (!l || l.freed) continue;
      this.log.info(
        { id: victim.id, size: victim.maxSize },
        'reclaiming a VOLATILE area for a STABLE allocation',
      );
      reclaiming.push(this.free(l));
    }
    const keys = { READ: newKey(), WRITE: newKey(), MANAGE: newKey() };
    const rec: AllocationRecord = {
      id: newAllocationId(),
      type: attributes.type,
      reliability: attributes.reliability,
      pool,
      maxSize: size,
      expiresAt,
      createdAt: this.now(),
      readRefs: 1,
      writeRefs: 1,
      keyHashes: { READ: hashKey(keys.READ), WRITE: hashKey(keys.WRITE), MANAGE: hashKey(keys.MANAGE) },
      size: 0,
      head: 0,
      generation: 0,
      version: 0,
    };
    if (inlineable(rec.type, size, this.options.inlineMaxBytes ?? INLINE_MAX)) rec.inline = true;
    this.pools.add(rec);
    const live = this.live(rec);
    this.areas.set(rec.id, live);
    if (!rec.inline) this.files.markFresh(this.path(rec));
    try {
      await Promise.all(reclaiming);
      if (persist) await this.save(live);
    } catch (err) {
      this.areas.delete(rec.id);
      this.pools.remove(rec);
      throw err;
    }
    const cap = (kind: CapKind) => formatCapability(this.capHost, this.capPort, rec.id, keys[kind], kind);
    return { caps: { readCap: cap('READ'), writeCap: cap('WRITE'), manageCap: cap('MANAGE') }, live };
  }

  /**
   * IBP_allocate with initial contents, stored as by store() before this resolves: one round trip for a
   * small object. When the contents cannot be stored, the area is freed again and the error is thrown.
   */
  async allocateWith(
    size: number,
    attributes: Attributes,
    initial: Chunk,
    signal?: AbortSignal,
  ): Promise<{ caps: CapSet; stored: StoreResult }> {
    const data = Buffer.isBuffer(initial) ? initial : initial.data;
    if (data.length > size) {
      throw exceeded(`the initial ${data.length} bytes do not fit an area of ${size} bytes`);
    }
    // the store writes the record with its first extent; persisted here when no store would (no bytes) or
    // when its store goes through a redo record first (a circular queue)
    const persist = data.length === 0 || attributes.type === 'CIRCULAR_QUEUE';
    const { caps, live } = await this.reserve(size, attributes, persist);
    try {
      return { caps, stored: await this.store(caps.writeCap, data.length, [initial], signal) };
    } catch (err) {
      if (!live.freed) await this.free(live);
      throw err;
    }
  }

  // ---- IBP_store ----------------------------------------------------------------------------------

  /** Stores exactly `total` bytes from `chunks`; nothing is applied unless all of them arrive. */
  async store(
    writeCap: string,
    total: number,
    chunks: AsyncIterable<Chunk> | Iterable<Chunk>,
    signal?: AbortSignal,
  ): Promise<StoreResult> {
    const live = this.authorize(writeCap, 'WRITE', 'write_cap');
    if (!Number.isSafeInteger(total) || total < 0)
      throw BackplaneError.badParameter(`size must be ≥ 0, got ${total}`);
    if (live.rec.writeRefs <= 0) {
      throw BackplaneError.permissionDenied('the write capability was released (its reference count is 0)');
    }
    const release = await live.writer.acquire(signal);
    try {
      // the area may have been freed while this store waited its turn: write nothing
      if (live.freed) throw BackplaneError.notFound('the area was freed before the store could start');
      const rec = live.rec;
      const room = rec.type === 'BYTE_ARRAY' || rec.type === 'FIFO' ? rec.maxSize - rec.size : rec.maxSize; // BUFFER, CIRCULAR_QUEUE
      if (total > room) {
        throw exceeded(
          `storing ${total} bytes would exceed the area's limit (${room} bytes of room, max size ${rec.maxSize})`,
        );
      }
      const sync = rec.reliability === 'STABLE';
      if (live.pendingRedo) {
        const releaseReader = await live.reader.acquire(signal);
        try {
          await this.finishRedo(live);
        } finally {
          releaseReader();
        }
      }
      let crc = 0;
      let inlineData: Buffer | undefined;
      switch (rec.type) {
        case 'BYTE_ARRAY':
          if (rec.inline) {
            ({ data: inlineData, crc } = await gather(total, chunks));
            break;
          }
          crc = await this.receive(
            this.path(rec),
            total,
            chunks,
            (fh, buf, at) => writeFully(fh, buf, rec.size + at),
            sync,
          );
          break;
        case 'FIFO': {
          const tail = (rec.head + rec.size) % rec.maxSize;
          crc = await this.receive(
            this.path(rec),
            total,
            chunks,
            (fh, buf, at) => ringWrite(fh, buf, (tail + at) % rec.maxSize, rec.maxSize),
            sync,
          );
          break;
        }
        case 'BUFFER': {
          const next = this.path(rec, rec.generation + 1);
          crc = await this.receive(next, total, chunks, (fh, buf, at) => writeFully(fh, buf, at), sync, 'w');
          break;
        }
        case 'CIRCULAR_QUEUE':
          crc = await this.storeCircular(live, total, chunks, sync, signal);
          break;
      }
      if (live.freed) {
        // nothing of an inline area was written yet; a file the store may have re-created is removed again
        if (rec.inline) throw BackplaneError.notFound('the area was freed while the store was in progress');
        const written = rec.type === 'BUFFER' ? this.path(rec, rec.generation + 1) : this.path(rec);
        this.files.forget(written);
        await rm(written, { force: true });
        throw BackplaneError.notFound('the area was freed while the store was in progress');
      }
      if (rec.type === 'BUFFER') {
        const old = this.path(rec);
        const before = { size: rec.size, generation: rec.generation };
        rec.size = total;
        rec.generation += 1;
        // from here on the record names the new file; its one extent replaces the old one
        try {
          await this.save(live, [extentOp(rec.id, 0, total, crc)]);
        } catch (err) {
          // not recorded: the old contents stay, the new file goes
          const written = this.path(rec);
          Object.assign(rec, before);
          this.files.forget(written);
          await rm(written, { force: true });
          throw err;
        }
        this.files.forget(old);
        await rm(old, { force: true });
      } else if (rec.type === 'BYTE_ARRAY') {
        const offset = rec.size;
        rec.size += total;
        const ops: StoreOp[] = total > 0 ? [extentOp(rec.id, offset, total, crc)] : [];
        if (inlineData && total > 0) await this.saveInline(live, offset, inlineData, ops);
        else await this.saveGrowth(live, offset, ops);
      } else if (rec.type === 'FIFO') {
        const before = rec.size;
        rec.size += total;
        await this.saveGrowth(live, before);
      }
      live.data.notifyAll();
      return { stored: total, currentSize: rec.size, crc32: crc };
    } finally {
      release();
    }
  }

  /**
   * Commits an inline store: readers see its bytes only once they are in level. A STABLE area's bytes go
   * in its record's synced batch; a VOLATILE area's record is written a little later, so its bytes are
   * written first, on their own. The reliability is the one at this moment (a CHNG may have changed it
   * while the bytes arrived).
   */
  private async saveInline(live: Live, offset: number, data: Buffer, ops: StoreOp[]): Promise<void> {
    const rec = live.rec;
    live.readable = offset;
    try {
      if (rec.reliability === 'STABLE') await this.save(live, [...ops, dataOp(rec.id, offset, data)]);
      else {
        await this.options.store.batch<string, Buffer>([dataOp(rec.id, offset, data)], {});
        if (live.freed) await clearInline(this.options.store, rec.id); // freed meanwhile: no leftovers
        await this.save(live, ops);
      }
    } catch (err) {
      rec.size = offset; // the bytes are not in level
      throw err;
    } finally {
      live.readable = undefined;
    }
  }

  /** Saves a record whose size grew from `before`: if it is not written, the size goes back (the bytes do not count). */
  private async saveGrowth(live: Live, before: number, ops: StoreOp[] = []): Promise<void> {
    try {
      await this.save(live, ops);
    } catch (err) {
      live.rec.size = before;
      throw err;
    }
  }

  /** Writes the incoming chunks with `put`, checks the byte count, fsyncs when asked; returns their CRC-32. */
  private async receive(
    path: string,
    total: number,
    chunks: AsyncIterable<Chunk> | Iterable<Chunk>,
    put: (fh: FileHandle, buf: Buffer, at: number) => Promise<void>,
    sync: boolean,
    flags = 'r+',
  ): Promise<number> {
    const cached = flags === 'r+';
    const fh = cached ? await this.files.acquire(path, 'write') : await open(path, flags);
    let crc = 0;
    let flushedAt = 0;
    let flushing: Promise<void> | undefined;
    try {
      for await (const piece of exactly(total, chunks)) {
        await put(fh, piece.chunk, piece.at);
        crc = piece.crc;
        const at = piece.at + piece.chunk.length;
        // a long STABLE store flushes as it goes, so the final fsync has little left to do
        if (sync && at - flushedAt >= EARLY_FLUSH_BYTES && !flushing) {
          flushedAt = at;
          flushing = fh.datasync().finally(() => {
            flushing = undefined;
          });
          flushing.catch(() => undefined);
        }
      }
      await flushing;
      if (sync) await fh.sync();
      return crc;
    } catch (err) {
      if (flags === 'w') await rm(path, { force: true });
      throw err;
    } finally {
      if (cached) this.files.release(fh);
      else await fh.close();
    }
  }

  /**
   * A circular queue overwrites its oldest bytes, so the data is staged first (nothing is touched if the
   * stream fails) and then written into the ring while no reader is active.
   */
  private async storeCircular(
    live: Live,
    total: number,
    chunks: AsyncIterable<Chunk> | Iterable<Chunk>,
    sync: boolean,
    signal?: AbortSignal,
  ): Promise<number> {
    const rec = live.rec;
    const stage = `${this.path(rec)}.stage`;
    const crc = await this.receive(stage, total, chunks, (fh, buf, at) => writeFully(fh, buf, at), sync, 'w');
    const releaseReader = await live.reader.acquire(signal).catch(async (err: unknown) => {
      await rm(stage, { force: true }); // the caller gave up while a reader held the ring
      throw err;
    });
    let redoWritten = false;
    try {
      // a redo record makes the ring update restartable: after a crash (or a failed write) in the middle
      // of it, the staged bytes are written again and land on the same state
      const redo: Redo = {
        tail: (rec.head + rec.size) % rec.maxSize,
        total,
        head: (rec.head + Math.max(0, rec.size + total - rec.maxSize)) % rec.maxSize,
        size: Math.min(rec.maxSize, rec.size + total),
      };
      await this.options.store.put(REDO_KEY(rec.id), JSON.stringify(redo), sync ? SYNC : {});
      redoWritten = true;
      live.pendingRedo = redo;
      await this.finishRedo(live, stage);
      return crc;
    } finally {
      releaseReader();
      // once a redo record names it, the stage is kept until the redo is finished
      if (!redoWritten || !live.pendingRedo) await rm(stage, { force: true });
    }
  }

  /**
   * Applies the pending redo of a circular queue and commits its new state. Called right after staging, and
   * again before the next store or read if that failed (e.g. the disk was full), so a failure never leaves
   * a half-written ring being served.
   */
  private async finishRedo(live: Live, stage = `${this.path(live.rec)}.stage`): Promise<void> {
    const redo = live.pendingRedo;
    if (!redo) return;
    const rec = live.rec;
    const stable = rec.reliability === 'STABLE';
    try {
      await this.applyRedo(rec, redo, stage, stable);
    } catch (err) {
      throw BackplaneError.unavailable(
        'the circular queue could not be updated (is the disk full?); try again',
        {
          cause: err,
        },
      );
    }
    rec.head = redo.head;
    rec.size = redo.size;
    live.pendingRedo = undefined;
    if (stable) await this.save(live, [{ type: 'del', key: REDO_KEY(rec.id) }]);
    else {
      await this.save(live);
      await this.options.store.del(REDO_KEY(rec.id));
    }
    await rm(stage, { force: true });
  }

  /** Writes staged bytes into a circular queue's ring at the redo record's tail. */
  private async applyRedo(rec: AllocationRecord, redo: Redo, stage: string, sync: boolean): Promise<void> {
    const src = await open(stage, 'r');
    const ringPath = this.path(rec);
    const ring = await this.files.acquire(ringPath, 'write');
    try {
      let at = 0;
      for await (const chunk of rangeRead(src, 0, redo.total)) {
        await ringWrite(ring, chunk, (redo.tail + at) % rec.maxSize, rec.maxSize);
        at += chunk.length;
      }
      if (sync) await ring.sync();
    } finally {
      await src.close();
      this.files.release(ring);
    }
  }

  /** Start-up: finishes circular-queue stores a crash interrupted (or drops the area if its stage is gone). */
  private async replayRedo(live: Live, redo: Redo): Promise<boolean> {
    const rec = live.rec;
    const stage = `${this.path(rec)}.stage`;
    const staged = await stat(stage).then(
      (st) => st.size,
      () => -1,
    );
    if (staged !== redo.total) return false;
    await this.applyRedo(rec, redo, stage, rec.reliability === 'STABLE');
    rec.head = redo.head;
    rec.size = redo.size;
    await this.save(live, [{ type: 'del', key: REDO_KEY(rec.id) }]);
    await rm(stage, { force: true });
    this.log.warn({ id: rec.id }, 'finished a circular-queue store interrupted by a crash');
    return true;
  }

  // ---- IBP_read -----------------------------------------------------------------------------------

  /**
   * Streams `size` bytes from `offset` (-1 = all). FIFO and circular-queue reads consume; a FIFO read waits
   * for all requested bytes. Bytes are consumed only once all of them were handed out.
   */
  async *read(
    readCap: string,
    offset: number,
    size: number,
    signal?: AbortSignal,
    hooks: ReadHooks = {},
  ): AsyncGenerator<Buffer> {
    const { live, limit } = this.authorizeWithLimit(readCap, 'READ', 'read_cap');
    if (!Number.isSafeInteger(offset) || offset < 0)
      throw BackplaneError.badParameter(`offset must be ≥ 0, got ${offset}`);
    if (!Number.isSafeInteger(size) || size < -1)
      throw BackplaneError.badParameter(`size must be -1 (all) or ≥ 0, got ${size}`);
    const rec = live.rec;
    if (!isQueue(rec.type)) {
      const stored = live.readable ?? rec.size;
      const available = limit ? this.limitEnd(limit, stored) : stored;
      if (limit && offset < limit.offset) {
        throw BackplaneError.permissionDenied(
          `this capability grants bytes from ${limit.offset} on, not ${offset}`,
        );
      }
      if (offset > available) {
        throw BackplaneError.badParameter(
          `offset ${offset} is past the end of the data (${available} bytes)`,
          {
            reason: 'IBP_E_INV_PAR_OFFSET',
          },
        );
      }
      const n = size === -1 ? available - offset : size;
      if (limit && offset + n > available && offset + n <= stored) {
        throw BackplaneError.permissionDenied(
          `this capability grants bytes up to ${available}, not ${offset + n}`,
        );
      }
      if (offset + n > available) {
        throw BackplaneError.badParameter(
          `reading ${n} bytes from ${offset} passes the end of the data (${available} bytes)`,
          {
            reason: 'IBP_E_INV_PAR_SIZE',
          },
        );
      }
      hooks.onLength?.(n);
      if (n === 0) return;
      if (rec.inline) {
        yield await readInline(this.options.store, rec.id, offset, n);
        return;
      }
      const path = this.path(rec);
      const fh = await this.files.acquire(path, 'read').catch((err: unknown) => {
        throw live.freed ? BackplaneError.notFound('the area was freed') : err;
      });
      try {
        yield* rangeRead(fh, offset, n, this.options.chunkAllocator);
      } finally {
        this.files.release(fh);
      }
      return;
    }
    const release = await live.reader.acquire(signal);
    try {
      await this.finishRedo(live);
      let n: number;
      if (rec.type === 'FIFO') {
        n = size === -1 ? rec.maxSize : size;
        if (n > rec.maxSize) {
          throw BackplaneError.badParameter(`a FIFO of ${rec.maxSize} bytes can never hold ${n}`, {
            reason: 'IBP_E_INV_PAR_SIZE',
          });
        }
        // the length is known before the wait: a caller that cannot take it says so now, not once it is there
        hooks.onLength?.(n);
        await live.data.waitUntil(() => live.freed || rec.size >= n, signal);
        if (live.freed) throw BackplaneError.notFound('the area was freed while the read waited');
      } else {
        n = size === -1 ? rec.size : Math.min(size, rec.size);
        hooks.onLength?.(n);
      }
      if (n > 0) {
        const path = this.path(rec);
        const fh = await this.files.acquire(path, 'read');
        try {
          yield* ringRead(fh, rec.head, n, rec.maxSize, this.options.chunkAllocator);
        } finally {
          this.files.release(fh);
        }
      }
      // consumed only once the receiver has everything (a Copy's target acknowledged, a Deliver's peer got it)
      await hooks.beforeConsume?.();
      rec.head = n === 0 ? rec.head : (rec.head + n) % rec.maxSize;
      rec.size -= n;
      await this.save(live);
    } finally {
      release();
    }
  }

  private limitEnd(limit: DerivedCap, size: number): number {
    return limit.length === -1 ? size : Math.min(size, limit.offset + limit.length);
  }

  // ---- integrity ----------------------------------------------------------------------------------

  /** Re-reads every stored extent of a BYTE_ARRAY or BUFFER and checks it against its recorded CRC-32. */
  async verify(readCap: string): Promise<{ extents: number; bytes: number; corruptOffsets: number[] }> {
    const { live, limit } = this.authorizeWithLimit(readCap, 'READ', 'read_cap');
    if (limit) throw BackplaneError.permissionDenied("verifying needs the area's own read capability");
    const rec = live.rec;
    if (isQueue(rec.type))
      throw BackplaneError.incorrectState(`a ${rec.type} keeps no checksums of consumed data`);
    const prefix = EXTENT_PREFIX(rec.id);
    // a VOLATILE area's latest checksums may still wait for their delayed write
    if (rec.reliability === 'VOLATILE') await this.flushVolatile();
    const result = { extents: 0, bytes: 0, corruptOffsets: [] as number[] };
    if (rec.inline) {
      const size = live.readable ?? rec.size;
      // a missing extent is reported as corrupt like a short file, not thrown
      const parts = await inlineExtents(this.options.store, rec.id, size, false);
      for await (const [key, value] of this.options.store.iterator({ gte: prefix, lt: prefixEnd(prefix) })) {
        const offset = Number(String(key).slice(prefix.length));
        const { length, crc } = JSON.parse(value) as { length: number; crc: number };
        if (offset + length > size) continue;
        const part = parts.get(offset);
        result.extents += 1;
        result.bytes += length;
        if (part?.length !== length || crc32(part) !== crc) result.corruptOffsets.push(offset);
      }
      return result;
    }
    const path = this.path(rec);
    const fh = await this.files.acquire(path, 'write');
    try {
      for await (const [key, value] of this.options.store.iterator({ gte: prefix, lt: prefixEnd(prefix) })) {
        const offset = Number(String(key).slice(prefix.length));
        const { length, crc } = JSON.parse(value) as { length: number; crc: number };
        if (offset + length > rec.size) continue; // an extent of an older BUFFER generation
        let actual = 0;
        try {
          for await (const chunk of rangeRead(fh, offset, length)) actual = crc32(chunk, actual);
        } catch {
          actual = -1; // the file is shorter than the extent
        }
        result.extents += 1;
        result.bytes += length;
        if (actual !== crc) result.corruptOffsets.push(offset);
      }
    } finally {
      this.files.release(fh);
    }
    return result;
  }

  // ---- attenuated capabilities --------------------------------------------------------------------

  /** A read capability for [offset, offset + length) only (length -1 = to the end), expiring no later than `duration`. */
  async derive(readCap: string, offset: number, length: number, duration: number): Promise<string> {
    const { live, limit } = this.authorizeWithLimit(readCap, 'READ', 'read_cap');
    const rec = live.rec;
    if (isQueue(rec.type))
      throw BackplaneError.incorrectState(`a ${rec.type} is consumed by reading: it cannot hand out ranges`);
    if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < -1) {
      throw BackplaneError.badParameter('offset must be ≥ 0 and length ≥ 0 or -1 (to the end)');
    }
    const end = length === -1 ? Number.POSITIVE_INFINITY : offset + length;
    if (limit) {
      const parentEnd = limit.length === -1 ? Number.POSITIVE_INFINITY : limit.offset + limit.length;
      if (offset < limit.offset || end > parentEnd) {
        throw BackplaneError.permissionDenied(
          'a derived capability can only narrow the range of the one it comes from',
        );
      }
    }
    let expiresAt = duration === 0 ? 0 : this.validateDuration(duration);
    const ceiling = Math.min(...[rec.expiresAt, limit?.expiresAt ?? 0].filter((e) => e > 0));
    if (Number.isFinite(ceiling)) expiresAt = expiresAt === 0 ? ceiling : Math.min(expiresAt, ceiling);
    const derived = rec.derived ?? [];
    if (derived.length >= 1000)
      throw BackplaneError.of('RESOURCE_EXHAUSTED', 'an area may have at most 1000 derived capabilities');
    const key = newKey();
    rec.derived = [...derived, { hash: hashKey(key), offset, length, expiresAt }];
    await this.save(live);
    return formatCapability(this.capHost, this.capPort, rec.id, key, 'READ');
  }

  /** Revokes a derived read capability; the area's own capabilities are untouched. */
  async revoke(manageCap: string, derivedCap: string): Promise<void> {
    const live = this.authorize(manageCap, 'MANAGE', 'manage_cap');
    const c = parseCapability(derivedCap, 'derived_cap');
    const derived = live.rec.derived ?? [];
    const left = c.id === live.rec.id ? derived.filter((d) => !keyMatches(c.key, d.hash)) : derived;
    if (left.length === derived.length)
      throw BackplaneError.notFound('no such derived capability on this area');
    live.rec.derived = left;
    await this.save(live);
  }

  // ---- IBP_manage ---------------------------------------------------------------------------------

  async manage(
    manageCap: string,
    command: ManageCommand,
    capType: 'READ' | 'WRITE' | undefined,
    change: { attributes?: Partial<Attributes>; size?: number } = {},
    signal?: AbortSignal,
  ): Promise<Probe> {
    const live = this.authorize(manageCap, 'MANAGE', 'manage_cap');
    const rec = live.rec;
    switch (command) {
      case 'INCR':
      case 'DECR': {
        if (!capType) throw BackplaneError.badParameter(`${command} needs cap_type READ or WRITE`);
        const field = capType === 'READ' ? 'readRefs' : 'writeRefs';
        rec[field] = Math.max(0, rec[field] + (command === 'INCR' ? 1 : -1));
        if (rec.readRefs === 0) {
          await this.free(live);
          return this.probe(rec);
        }
        await this.save(live);
        break;
      }
      case 'PROBE':
        break;
      case 'CHNG': {
        // after a store in progress (its room was checked against the old size, its fsync decided by
        // the old reliability), and before the next
        const release = await live.writer.acquire(signal);
        try {
          if (live.freed)
            throw BackplaneError.notFound('the area was freed', { reason: 'IBP_E_CAP_NOT_FOUND' });
          await this.change(live, change.attributes ?? {}, change.size ?? 0);
        } finally {
          release();
        }
        break;
      }
    }
    return this.probe(rec);
  }

  private async change(live: Live, attributes: Partial<Attributes>, size: number): Promise<void> {
    const rec = live.rec;
    if (attributes.type !== undefined && attributes.type !== rec.type) {
      throw BackplaneError.incorrectState(`the type of an area cannot change (it is ${rec.type})`);
    }
    const expiresAt =
      attributes.duration === undefined ? rec.expiresAt : this.validateDuration(attributes.duration);
    if (size !== 0 && size !== rec.maxSize) {
      if (isQueue(rec.type)) throw BackplaneError.incorrectState(`the size of a ${rec.type} cannot change`);
      if (!Number.isSafeInteger(size) || size < rec.size) {
        throw BackplaneError.badParameter(
          `the new size ${size} is below the ${rec.size} bytes already stored`,
        );
      }
      const before = rec.maxSize;
      if (!this.pools.resize(rec, size))
        throw exceeded(`the ${rec.pool} pool has no room to grow this area to ${size} bytes`);
      rec.maxSize = size;
      if (rec.inline && size > (this.options.inlineMaxBytes ?? INLINE_MAX)) {
        try {
          await this.moveToFile(live);
        } catch (err) {
          // still inline: it keeps its old size (an inline area stays small)
          this.pools.resize(rec, before);
          rec.maxSize = before;
          throw err;
        }
      }
    }
    rec.expiresAt = expiresAt;
    if (attributes.reliability !== undefined && attributes.reliability !== rec.reliability) {
      rec.reliability = attributes.reliability;
      // an inline area's bytes are in level's log: the record's synced write below covers them
      if (rec.reliability === 'STABLE' && !rec.inline) {
        const path = this.path(rec);
        const fh = await this.files.acquire(path, 'write');
        try {
          await fh.sync();
        } finally {
          this.files.release(fh);
        }
      }
    }
    await this.save(live);
  }

  /**
   * An inline area grown past INLINE_MAX gets a file: its bytes are written there (and fsynced when
   * STABLE) while no store runs, then the record says so in the same batch that drops the inline copy
   * (a crash before that batch leaves the area inline, its file removed at start-up). The caller holds
   * the area's writer lock.
   */
  private async moveToFile(live: Live): Promise<void> {
    const rec = live.rec;
    if (!rec.inline || live.freed) return; // a concurrent CHNG moved it, or it was freed
    const data = await readInline(this.options.store, rec.id, 0, rec.size);
    const path = this.path(rec);
    const fh = await open(path, 'w');
    try {
      await writeFully(fh, data, 0);
      if (rec.reliability === 'STABLE') await fh.sync();
    } finally {
      await fh.close();
    }
    if (live.freed) {
      await rm(path, { force: true });
      return;
    }
    const drop = await inlineKeys(this.options.store, rec.id);
    rec.inline = undefined;
    await this.save(
      live,
      drop.map((key) => ({ type: 'del', key })),
    );
  }

  private probe(rec: AllocationRecord): Probe {
    return {
      readRefCount: rec.readRefs,
      writeRefCount: rec.writeRefs,
      currentSize: rec.size,
      maxSize: rec.maxSize,
      attributes: {
        duration: rec.expiresAt === 0 ? 0 : Math.floor(rec.expiresAt / 1000),
        reliability: rec.reliability,
        type: rec.type,
      },
      timeLeft: rec.expiresAt === 0 ? -1 : Math.max(0, Math.floor((rec.expiresAt - this.now()) / 1000)),
    };
  }

  // ---- freeing, expiry, status ----------------------------------------------------------------------

  private async free(live: Live): Promise<void> {
    if (live.freed) return;
    live.freed = true;
    this.areas.delete(live.rec.id);
    this.pools.remove(live.rec);
    live.data.notifyAll();
    this.volatilePending.delete(live.rec.id);
    await live.saving.catch(() => undefined);
    await this.volatileFlush;
    await this.options.store.del(KEY(live.rec.id), live.rec.reliability === 'STABLE' ? SYNC : {});
    await this.options.store.clear({
      gte: EXTENT_PREFIX(live.rec.id),
      lt: prefixEnd(EXTENT_PREFIX(live.rec.id)),
    });
    if (live.rec.inline) {
      await clearInline(this.options.store, live.rec.id);
      return;
    }
    this.files.forget(this.path(live.rec));
    await rm(this.path(live.rec), { force: true });
  }

  /** Removes expired areas: they are never served again. */
  async reap(): Promise<number> {
    const now = this.now();
    const expired = [...this.areas.values()].filter((l) => l.rec.expiresAt !== 0 && l.rec.expiresAt <= now);
    for (const live of expired) {
      this.log.info({ id: live.rec.id }, 'area expired');
      await this.free(live).catch((err: unknown) =>
        this.log.error({ err }, 'could not remove an expired area'),
      );
    }
    return expired.length;
  }

  status(): { stable: PoolStatus; volatile: PoolStatus; maxDurationSeconds: number } {
    return {
      stable: this.pools.status('stable'),
      volatile: this.pools.status('volatile'),
      maxDurationSeconds: this.options.maxDurationSeconds,
    };
  }
}
