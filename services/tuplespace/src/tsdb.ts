import { ExpiryHeap } from '@backplane/runtime';
import { indexKeysOf, indexKeysOfTuple, matches, type Template, type Tuple } from './tuple';

/** A tuple in a space. */
export interface Entry {
  readonly id: number;
  tuple: Tuple;
  /** ms since the epoch; 0 = never. */
  expiresAt: number;
  /** Written inside this transaction, not committed yet: only that transaction sees it. */
  writtenBy?: string;
  /** Taken inside this transaction, not committed yet: nobody sees it (it comes back on abort). */
  takenBy?: string;
}

/** Either one id or a set of them: most index keys name one tuple, and a Set per tuple costs memory. */
type Posting = number | Set<number>;

/**
 * The tuple database (the seed's TSDB) of one space: tuples by id, in write order, plus an index from
 * first-field value (per arity) and from named-field value to ids, so a template with an actual first
 * field or an actual named field is answered from its postings, not by scanning the space.
 */
export class TupleDB {
  private readonly entries = new Map<number, Entry>();
  private readonly index = new Map<string, Posting>();
  /** Expiry times, soonest first (lazy: entries that changed are skipped when popped). */
  private readonly expiries = new ExpiryHeap<number>();
  nextId = 1;

  get size(): number {
    return this.entries.size;
  }

  get(id: number): Entry | undefined {
    return this.entries.get(id);
  }

  insert(e: Entry): void {
    this.entries.set(e.id, e);
    if (e.id >= this.nextId) this.nextId = e.id + 1;
    this.addPostings(e);
    if (e.expiresAt > 0) this.expiries.push(e.expiresAt, e.id);
  }

  remove(id: number): Entry | undefined {
    const e = this.entries.get(id);
    if (!e) return undefined;
    this.entries.delete(id);
    this.removePostings(e);
    return e;
  }

  /** Replaces the tuple and expiry of an entry in place (its id and its age stay). */
  replace(id: number, tuple: Tuple, expiresAt: number): Entry | undefined {
    const e = this.entries.get(id);
    if (!e) return undefined;
    this.removePostings(e);
    e.tuple = tuple;
    this.addPostings(e);
    if (expiresAt !== e.expiresAt) {
      e.expiresAt = expiresAt;
      if (expiresAt > 0) this.expiries.push(expiresAt, id);
    }
    return e;
  }

  private addPostings(e: Entry): void {
    for (const k of indexKeysOfTuple(e.tuple)) {
      const p = this.index.get(k);
      if (p === undefined) this.index.set(k, e.id);
      else if (typeof p === 'number') this.index.set(k, new Set([p, e.id]));
      else p.add(e.id);
    }
  }

  private removePostings(e: Entry): void {
    for (const k of indexKeysOfTuple(e.tuple)) {
      const p = this.index.get(k);
      if (p === e.id) this.index.delete(k);
      else if (p instanceof Set) {
        p.delete(e.id);
        if (p.size === 1) this.index.set(k, p.values().next().value as number);
      }
    }
  }

  /** Is the entry live for a caller in transaction `txn` (or none) at time `now`? */
  static visible(e: Entry, txn: string | undefined, now: number): boolean {
    if (e.takenBy !== undefined) return false;
    if (e.writtenBy !== undefined && e.writtenBy !== txn) return false;
    return e.expiresAt === 0 || e.expiresAt > now;
  }

  /** Entries that may match the template, oldest first: from the smallest posting, or every entry. */
  private *candidates(template: Template): Iterable<Entry> {
    let best: Posting | undefined;
    let bestSize = Number.POSITIVE_INFINITY;
    let indexed = false;
    for (const k of indexKeysOf(template)) {
      indexed = true;
      const p = this.index.get(k);
      const size = p === undefined ? 0 : typeof p === 'number' ? 1 : p.size;
      if (size < bestSize) {
        best = p;
        bestSize = size;
      }
    }
    if (!indexed) {
      yield* this.entries.values();
      return;
    }
    if (best === undefined) return;
    if (typeof best === 'number') {
      const e = this.entries.get(best);
      if (e) yield e;
      return;
    }
    // ids are ages; a posting's insertion order can differ from id order after an update: sort small ones
    const ids = best.size <= 4096 ? [...best].sort((a, b) => a - b) : best;
    for (const id of ids) {
      const e = this.entries.get(id);
      if (e) yield e;
    }
  }

  /** Matching live entries, oldest first, at most `limit`. */
  find(template: Template, txn: string | undefined, now: number, limit = Number.POSITIVE_INFINITY): Entry[] {
    const out: Entry[] = [];
    if (limit <= 0) return out;
    for (const e of this.candidates(template)) {
      if (TupleDB.visible(e, txn, now) && matches(template, e.tuple)) {
        out.push(e);
        if (out.length >= limit) break;
      }
    }
    return out;
  }

  first(template: Template, txn: string | undefined, now: number): Entry | undefined {
    return this.find(template, txn, now, 1)[0];
  }

  count(template: Template, txn: string | undefined, now: number): number {
    let n = 0;
    for (const e of this.candidates(template))
      if (TupleDB.visible(e, txn, now) && matches(template, e.tuple)) n++;
    return n;
  }

  /** Every entry, in write order (for loading checks and deletes of a whole space). */
  all(): IterableIterator<Entry> {
    return this.entries.values();
  }

  /** Entries whose expiry time has passed (committed, not held by a transaction), removed from the heap. */
  popExpired(now: number): Entry[] {
    const out: Entry[] = [];
    const held: Array<{ at: number; id: number }> = [];
    for (let top = this.expiries.peek(); top && top.at <= now; top = this.expiries.peek()) {
      this.expiries.pop();
      const e = this.entries.get(top.id);
      if (!e || e.expiresAt !== top.at) continue;
      if (e.takenBy !== undefined || e.writtenBy !== undefined) {
        held.push(top); // a transaction holds it: look again next time
        continue;
      }
      out.push(e);
    }
    for (const { at, id } of held) this.expiries.push(at, id);
    return out;
  }
}
