import { EventKind, type TupleRecord } from '@backplane/proto/tuplespace';
import type { GroupCommitter, StoreOp } from '@backplane/runtime';
import { BackplaneError } from '@backplane/runtime';
import type { SpaceEvent } from './command';
import { EventHub } from './events';
import { delTuple, keys, putTuple } from './persistence';
import type { Txn } from './transactions';
import { type Entry, TupleDB } from './tsdb';
import { matches, type Template, type Tuple } from './tuple';

interface Waiter {
  template: Template;
  take: boolean;
  txn: Txn | undefined;
  resolve: (e: Entry) => void;
  reject: (err: unknown) => void;
}

export const toRecord = (e: Entry): TupleRecord => ({ id: e.id, tuple: e.tuple, expiresAt: e.expiresAt });

/** Tuple ids are reserved in the store this many at a time. */
const ID_BLOCK = 1024;

/**
 * The data side of one TupleSpace: its TSDB, the callers blocked in WAIT_TO_READ/WAIT_TO_TAKE, its event
 * registrations and their sequence numbers, and the transactional visibility rules. Every change is in
 * the store before it is visible or acknowledged.
 */
export class SpaceData {
  readonly db = new TupleDB();
  readonly events = new EventHub();
  private readonly waiters: Waiter[] = [];
  /** Last event sequence number handed out (persisted with the change it numbers). */
  seq = 0;

  constructor(
    readonly name: string,
    private readonly committer: GroupCommitter,
    private readonly now: () => number = Date.now,
  ) {}

  get waiting(): number {
    return this.waiters.length;
  }

  private expiry(ttlMs: number | undefined): number {
    return ttlMs && ttlMs > 0 ? this.now() + ttlMs : 0;
  }

  /** The op that keeps the next tuple id (written with every batch that adds tuples). */
  private nextIdOp(): StoreOp[] {
    if (this.db.nextId <= this.idHigh) return [];
    // ids are reserved in blocks: one small write per ID_BLOCK tuples (a restart skips the rest of a block)
    this.idHigh = this.db.nextId + ID_BLOCK;
    return [{ type: 'put', key: keys.nextId(this.name), value: String(this.idHigh) }];
  }

  /** The next-id mark in the store: ids below it may have been given out (set at load). */
  idHigh = 0;
  /** Deleted, or the server is stopping. */
  private closed = false;

  /** Reserves sequence numbers for `n` events and the op that persists the counter. */
  private reserve(n: number): { first: number; op: StoreOp[] } {
    if (n === 0) return { first: this.seq + 1, op: [] };
    const first = this.seq + 1;
    this.seq += n;
    return { first, op: [{ type: 'put', key: keys.seq(this.name), value: String(this.seq) }] };
  }

  private emit(seq: number, kind: EventKind, e: Entry): void {
    this.events.publish(seq, kind, e);
  }

  // ---- writes ------------------------------------------------------------------------------------

  /** WRITE / MULTI_WRITE: all tuples or none. Inside a transaction they stay private until commit. */
  async write(tuples: Tuple[], ttlMs: number | undefined, txn: Txn | undefined): Promise<Entry[]> {
    const expiresAt = this.expiry(ttlMs);
    const entries: Entry[] = tuples.map((tuple) => ({ id: this.db.nextId++, tuple, expiresAt }));
    if (txn) {
      for (const e of entries) {
        e.writtenBy = txn.id;
        this.db.insert(e);
        txn.wrote(this, e.id);
        this.offer(e);
      }
      return entries;
    }
    const high = this.idHigh;
    try {
      await this.commitWrites(entries, this.nextIdOp());
    } catch (err) {
      this.idHigh = Math.min(this.idHigh, high); // its mark was not written either
      throw err;
    }
    return entries;
  }

  /**
   * Writes tuples (new ones, or ones put back with their ids) to the store, then makes them visible,
   * announces them as writes and offers them to waiters.
   */
  private async commitWrites(entries: Entry[], extra: StoreOp[] = []): Promise<void> {
    const { first, op } = this.reserve(entries.length);
    await this.committer.commit([...entries.map((e) => putTuple(this.name, e)), ...op, ...extra]);
    entries.forEach((e, i) => {
      if (!this.db.get(e.id)) this.db.insert(e);
      this.emit(first + i, EventKind.EVENT_KIND_WRITE, e);
    });
    for (const e of entries) this.offer(e);
  }

  /** UPDATE: replaces a tuple (same id); ttlMs 0 keeps the expiry, -1 clears it. */
  async update(id: number, tuple: Tuple, ttlMs: number, txn: Txn | undefined): Promise<Entry> {
    const e = this.db.get(id);
    const now = this.now();
    if (!e || !TupleDB.visible(e, txn?.id, now))
      throw BackplaneError.notFound(`no tuple ${id} in space ${this.name}`, { reason: 'TUPLE_NOT_FOUND' });
    const expiresAt = ttlMs === 0 ? e.expiresAt : ttlMs < 0 ? 0 : now + ttlMs;
    if (txn) {
      if (e.writtenBy !== txn.id)
        throw BackplaneError.incorrectState(
          'inside a transaction, UPDATE changes only tuples written in that transaction (take and write instead)',
        );
      this.db.replace(id, tuple, expiresAt);
      return e;
    }
    const next: Entry = { id, tuple, expiresAt };
    const { first, op } = this.reserve(1);
    await this.committer.commit([putTuple(this.name, next), ...op]);
    const current = this.db.get(id);
    if (!current) {
      // taken while the update was being written: it stays taken (the newer change wins), the store follows
      await this.committer.commit([delTuple(this.name, id)]);
      throw BackplaneError.notFound(`tuple ${id} was taken during the update`, { reason: 'TUPLE_NOT_FOUND' });
    }
    this.db.replace(id, tuple, expiresAt);
    this.emit(first, EventKind.EVENT_KIND_WRITE, current);
    this.offer(current);
    return current;
  }

  // ---- reads -------------------------------------------------------------------------------------

  read(template: Template, txn: Txn | undefined): Entry | undefined {
    return this.db.first(template, txn?.id, this.now());
  }

  scan(template: Template, txn: Txn | undefined, limit: number): Entry[] {
    return this.db.find(template, txn?.id, this.now(), limit);
  }

  count(template: Template, txn: Txn | undefined): number {
    return this.db.count(template, txn?.id, this.now());
  }

  readById(id: number, txn: Txn | undefined): Entry | undefined {
    const e = this.db.get(id);
    return e && TupleDB.visible(e, txn?.id, this.now()) ? e : undefined;
  }

  // ---- takes -------------------------------------------------------------------------------------

  /**
   * Removes the entries (already found visible) for `txn`, or for good: out of sight at once (no other
   * caller can take them), in the store before the caller hears of it; put back if the store fails.
   */
  async removeEntries(found: Entry[], kind: EventKind, txn: Txn | undefined): Promise<Entry[]> {
    if (found.length === 0) return found;
    if (txn) {
      for (const e of found) {
        if (e.writtenBy === txn.id) {
          // never seen outside the transaction: it simply ceases to exist
          this.db.remove(e.id);
          txn.forgetWrite(this, e.id);
        } else {
          e.takenBy = txn.id;
          txn.took(this, e.id, kind);
        }
      }
      return found;
    }
    for (const e of found) this.db.remove(e.id);
    await this.commitRemoval(found, kind);
    return found;
  }

  /**
   * Makes the removal of entries already out of sight final: deleted from the store with their event
   * numbers, then announced in order. If the store fails they come back.
   */
  private async commitRemoval(gone: Entry[], kind: EventKind): Promise<void> {
    const { first, op } = this.reserve(gone.length);
    try {
      await this.committer.commit([...gone.map((e) => delTuple(this.name, e.id)), ...op]);
    } catch (err) {
      for (const e of gone) this.restore(e);
      throw err;
    }
    gone.forEach((e, i) => {
      this.emit(first + i, kind, e);
    });
  }

  async take(template: Template, txn: Txn | undefined): Promise<Entry | undefined> {
    const e = this.read(template, txn);
    if (!e) return undefined;
    await this.removeEntries([e], EventKind.EVENT_KIND_TAKE, txn);
    return e;
  }

  /**
   * Writes back entries whose removal is already in the store, with their ids (a taker that went away
   * before it could be answered): they are in the space again, announced as writes.
   */
  async putBack(entries: Entry[]): Promise<void> {
    // a deleted space takes nothing back (its tuples are being cleared from the store)
    if (entries.length === 0 || this.closed) return;
    await this.commitWrites(entries);
  }

  /** Puts an entry back (a failed store write, a waiter that went away after it was handed the tuple). */
  restore(e: Entry): void {
    if (!this.db.get(e.id)) this.db.insert(e);
    this.offer(e);
  }

  // ---- waiting -----------------------------------------------------------------------------------

  /**
   * Resolves with a match as soon as there is one (taken for a taker); rejects when `signal` aborts.
   * Waiters are served in arrival order; one write wakes every matching reader but one taker.
   */
  wait(template: Template, take: boolean, txn: Txn | undefined, signal?: AbortSignal): Promise<Entry> {
    return new Promise<Entry>((resolve, reject) => {
      const waiter: Waiter = {
        template,
        take,
        txn,
        resolve: (e) => {
          signal?.removeEventListener('abort', onAbort);
          resolve(e);
        },
        reject: (err) => {
          signal?.removeEventListener('abort', onAbort);
          reject(err);
        },
      };
      const onAbort = () => {
        const i = this.waiters.indexOf(waiter);
        if (i >= 0) this.waiters.splice(i, 1);
        reject(signal?.reason ?? BackplaneError.of('CANCELLED', 'cancelled'));
      };
      if (signal?.aborted) return onAbort();
      this.waiters.push(waiter);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /**
   * A tuple became visible to someone: every waiting reader it matches gets a copy, then the first
   * waiting taker it matches (in arrival order) takes it.
   */
  offer(e: Entry): void {
    if (this.waiters.length === 0) return;
    const now = this.now();
    const wants = (w: Waiter) => TupleDB.visible(e, w.txn?.id, now) && matches(w.template, e.tuple);
    if (!this.db.get(e.id) || e.takenBy !== undefined) return;
    let taker: Waiter | undefined;
    const readers: Waiter[] = [];
    for (const w of this.waiters) {
      if (!wants(w)) continue;
      if (!w.take) readers.push(w);
      else taker ??= w;
    }
    if (readers.length === 0 && !taker) return;
    const served = new Set<Waiter>(readers);
    if (taker) served.add(taker);
    for (let i = this.waiters.length - 1; i >= 0; i--)
      if (served.has(this.waiters[i] as Waiter)) this.waiters.splice(i, 1);
    for (const r of readers) r.resolve(e);
    if (!taker) return;
    // the taker owns it from here: out of sight now, removed from the store by the taker's handler
    if (taker.txn) {
      if (e.writtenBy === taker.txn.id) {
        this.db.remove(e.id);
        taker.txn.forgetWrite(this, e.id);
      } else {
        e.takenBy = taker.txn.id;
        taker.txn.took(this, e.id, EventKind.EVENT_KIND_TAKE);
      }
    } else {
      this.db.remove(e.id);
    }
    taker.resolve(e);
  }

  /** A waiter that was handed a tuple (already out of sight) makes the removal final. */
  async finishWaitTake(e: Entry, txn: Txn | undefined): Promise<void> {
    if (txn) return;
    await this.commitRemoval([e], EventKind.EVENT_KIND_TAKE);
  }

  /** Ends every waiter and registration (the space is deleted or the server stops). */
  close(reason: BackplaneError): void {
    this.closed = true;
    const waiters = this.waiters.splice(0);
    for (const w of waiters) w.reject(reason);
    this.events.closeAll(reason);
  }

  subscribe(template: Template, kinds: EventKind[], signal?: AbortSignal): AsyncIterable<SpaceEvent> {
    return this.events.subscribe(template, kinds, signal);
  }

  // ---- transactions ------------------------------------------------------------------------------

  /**
   * The store ops that make a transaction's changes here final. `idHighBefore` puts the id mark back if
   * they are not written.
   */
  commitOps(
    writes: Iterable<number>,
    takes: Iterable<number>,
  ): { ops: StoreOp[]; seqFirst: number; idHighBefore: number } {
    const idHighBefore = this.idHigh;
    const ops: StoreOp[] = [];
    let n = 0;
    for (const id of writes) {
      const e = this.db.get(id);
      if (!e) continue;
      ops.push(putTuple(this.name, e));
      n++;
    }
    for (const id of takes) {
      ops.push(delTuple(this.name, id));
      n++;
    }
    const { first, op } = this.reserve(n);
    return { ops: [...ops, ...op, ...this.nextIdOp()], seqFirst: first, idHighBefore };
  }

  /** After the commit's batch is written: writes become visible, takes final; events in order. */
  applyCommit(
    txnId: string,
    writes: Iterable<number>,
    takes: Iterable<[number, EventKind]>,
    seqFirst: number,
  ): void {
    let seq = seqFirst;
    const visible: Entry[] = [];
    for (const id of writes) {
      const e = this.db.get(id);
      if (!e || e.writtenBy !== txnId) continue;
      e.writtenBy = undefined;
      this.emit(seq++, EventKind.EVENT_KIND_WRITE, e);
      visible.push(e);
    }
    for (const [id, kind] of takes) {
      const e = this.db.get(id);
      if (!e || e.takenBy !== txnId) continue;
      this.db.remove(id);
      this.emit(seq++, kind, e);
    }
    for (const e of visible) this.offer(e);
  }

  /** Drops a transaction's writes and puts back what it took. */
  applyAbort(txnId: string, writes: Iterable<number>, takes: Iterable<number>): void {
    for (const id of writes) {
      const e = this.db.get(id);
      if (e?.writtenBy === txnId) this.db.remove(id);
    }
    for (const id of takes) {
      const e = this.db.get(id);
      if (e?.takenBy !== txnId) continue;
      e.takenBy = undefined;
      this.offer(e);
    }
  }

  // ---- expiry ------------------------------------------------------------------------------------

  /** Removes expired tuples (they already never match) and tells registrations (EXPIRE). */
  async reapExpired(): Promise<number> {
    const expired = this.db.popExpired(this.now());
    if (expired.length === 0) return 0;
    for (const e of expired) this.db.remove(e.id);
    await this.commitRemoval(expired, EventKind.EVENT_KIND_EXPIRE);
    return expired.length;
  }
}
