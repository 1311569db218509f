import type { StateMachine } from '@backplane/replicated';
import { ExpiryHeap } from '@backplane/runtime';
import type { PropertiesCommand } from './commands';
import type { Change, Conflict, Entry } from './engine';
import { decodeSnapshot, encodeSnapshot } from './snapshot-codec';

/** What applying a command gave: the revision of its changes, or the conflicts that refused it. */
export interface PropertiesResult {
  /** The command's position when it changed something, else the revision of the last change before it. */
  revision: number;
  /** Set when a compare-and-set, a conditional remove or a transaction's reads did not match. */
  conflicts?: Conflict[];
  /** Set by a remove: whether there was something to remove. */
  removed?: boolean;
  /** What the command changed, in order: what watchers are told. */
  changes: Change[];
}

export interface HistoryLimits {
  /** Most changes kept for watches that resume from a revision. */
  changes: number;
  /** Most bytes (values and keys) they may hold. */
  bytes: number;
}

const changeBytes = (c: Change) => 64 + c.key.length * 2 + (c.value?.length ?? 0);

/**
 * SharedProperties as a deterministic state machine: every key's value, revision and expiry, and a bounded
 * history of changes (what a watch from a revision replays). Revisions are log positions: every change a
 * command makes has the command's position, so a transaction's writes share one revision, as in etcd.
 * Nothing here reads a clock: a command carries its proposer's time, and a key expires when an `expire`
 * command whose time has passed the key's expiry is applied. Every node that applies the same log holds
 * the same state and answers every command the same way.
 */
export class PropertiesMachine implements StateMachine<PropertiesCommand, PropertiesResult> {
  readonly entries = new Map<string, Entry>();
  private expiry = new ExpiryHeap();
  /** The revision of the last change (0 before the first). */
  revision = 0;
  /** Changes after `compacted`, oldest first, from `start` on (the array is shifted in bulk). */
  private history: Change[] = [];
  private start = 0;
  private historyBytes = 0;
  /** Watches from this revision or before it are refused (COMPACTED): their changes are gone. */
  compacted = 0;
  private sorted: string[] | undefined;

  constructor(private readonly limits: HistoryLimits = { changes: 100_000, bytes: 64 * 1024 * 1024 }) {}

  apply(c: PropertiesCommand, position: number): PropertiesResult {
    switch (c.t) {
      case 'put': {
        const actual = this.live(c.key, c.now)?.revision ?? 0;
        if (c.expect !== undefined && actual !== c.expect)
          return this.refused([{ key: c.key, expected: c.expect, actual }]);
        return this.changed(position, [this.put(c.key, c.value, c.ttlMs, c.now, position)]);
      }
      case 'del': {
        const actual = this.entries.get(c.key)?.revision ?? 0;
        if (c.expect !== undefined && actual !== c.expect)
          return this.refused([{ key: c.key, expected: c.expect, actual }]);
        if (!actual) return { revision: this.revision, removed: false, changes: [] };
        return { ...this.changed(position, [this.remove(c.key, 'DELETE', position)]), removed: true };
      }
      case 'txn': {
        const conflicts: Conflict[] = [];
        for (const r of c.reads) {
          const actual = this.live(r.key, c.now)?.revision ?? 0;
          if (actual !== r.revision) conflicts.push({ key: r.key, expected: r.revision, actual });
        }
        if (conflicts.length > 0) return this.refused(conflicts);
        const changes = c.puts.map((p) => this.put(p.key, p.value, p.ttlMs, c.now, position));
        for (const k of c.removes) if (this.entries.has(k)) changes.push(this.remove(k, 'DELETE', position));
        return changes.length > 0 ? this.changed(position, changes) : { revision: this.revision, changes };
      }
      case 'expire': {
        const due = new Set<string>();
        for (let top = this.expiry.peek(); top && top.at <= c.now; top = this.expiry.peek()) {
          this.expiry.pop();
          const e = this.entries.get(top.id);
          // a stale heap item (the key was rewritten or removed since) is dropped
          if (e && e.expiresAt === top.at) due.add(top.id);
        }
        if (due.size === 0) return { revision: this.revision, changes: [] };
        // in key order, so that every node reports them alike
        const changes = [...due].sort().map((k) => this.remove(k, 'EXPIRE', position));
        return this.changed(position, changes);
      }
    }
  }

  private refused(conflicts: Conflict[]): PropertiesResult {
    return { revision: this.revision, conflicts, changes: [] };
  }

  private put(key: string, value: Uint8Array, ttlMs: number, now: number, position: number): Change {
    const before = this.entries.get(key);
    const live = before && (before.expiresAt === 0 || before.expiresAt > now);
    const expiresAt = ttlMs > 0 ? now + ttlMs : 0;
    const createRevision = live ? before.createRevision : position;
    if (!before) this.sorted = undefined;
    this.entries.set(key, { key, value, revision: position, createRevision, expiresAt });
    if (expiresAt) this.expiry.push(expiresAt, key);
    return { kind: 'PUT', key, revision: position, value, createRevision, expiresAt };
  }

  private remove(key: string, kind: 'DELETE' | 'EXPIRE', position: number): Change {
    this.entries.delete(key);
    this.sorted = undefined;
    return { kind, key, revision: position, expiresAt: 0 };
  }

  private changed(position: number, changes: Change[]): PropertiesResult {
    this.revision = position;
    for (const ch of changes) {
      this.history.push(ch);
      this.historyBytes += changeBytes(ch);
    }
    while (
      this.history.length - this.start > this.limits.changes ||
      (this.historyBytes > this.limits.bytes && this.history.length - this.start > 1)
    ) {
      const dropped = this.history[this.start++] as Change;
      this.historyBytes -= changeBytes(dropped);
      this.compacted = dropped.revision;
    }
    if (this.start > 1024 && this.start * 2 > this.history.length) {
      this.history = this.history.slice(this.start);
      this.start = 0;
    }
    return { revision: position, changes };
  }

  /** The key's entry unless it has expired by `now`. */
  live(key: string, now: number): Entry | undefined {
    const e = this.entries.get(key);
    return e && (e.expiresAt === 0 || e.expiresAt > now) ? e : undefined;
  }

  /** Keys under `prefix` after `startAfter`, in key order, that have not expired by `now`. */
  list(prefix: string, startAfter: string, limit: number, now: number): { entries: Entry[]; more: boolean } {
    this.sorted ??= [...this.entries.keys()].sort();
    const keys = this.sorted;
    const from = startAfter >= prefix ? startAfter : prefix;
    // the first key at or after `from` (after it when it is startAfter)
    let lo = 0;
    let hi = keys.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      const k = keys[mid] as string;
      if (k < from || (k === startAfter && startAfter >= prefix)) lo = mid + 1;
      else hi = mid;
    }
    const out: Entry[] = [];
    for (let i = lo; i < keys.length; i++) {
      const k = keys[i] as string;
      if (!k.startsWith(prefix)) break;
      const e = this.live(k, now);
      if (!e) continue;
      if (out.length === limit) return { entries: out, more: true };
      out.push(e);
    }
    return { entries: out, more: false };
  }

  /** The changes from `fromRevision` on, or undefined when some of them are compacted away. */
  changesFrom(fromRevision: number): Change[] | undefined {
    if (fromRevision <= this.compacted) return undefined;
    const out: Change[] = [];
    // revisions increase along the history: find the first change at or after fromRevision
    let lo = this.start;
    let hi = this.history.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if ((this.history[mid] as Change).revision < fromRevision) lo = mid + 1;
      else hi = mid;
    }
    for (let i = lo; i < this.history.length; i++) out.push(this.history[i] as Change);
    return out;
  }

  /** The earliest expiry of a live key (or a stale heap item at or before it), or undefined. */
  nextExpiry(): number | undefined {
    return this.expiry.peek()?.at;
  }

  /** Records a snapshot holds (keys and changes kept): what it costs to write one. */
  size(): number {
    return this.entries.size + this.history.length - this.start;
  }

  snapshot(): Uint8Array {
    return encodeSnapshot(
      {
        revision: this.revision,
        compacted: this.compacted,
        entries: this.entries.values(),
        history: this.history,
      },
      { from: this.start },
    );
  }

  restore(data: Uint8Array): void {
    const s = decodeSnapshot(data);
    this.entries.clear();
    this.expiry = new ExpiryHeap();
    this.sorted = undefined;
    for (const e of s.entries) {
      this.entries.set(e.key, e);
      if (e.expiresAt) this.expiry.push(e.expiresAt, e.key);
    }
    this.revision = s.revision;
    this.compacted = s.compacted;
    this.history = s.history;
    this.start = 0;
    this.historyBytes = this.history.reduce((n, c) => n + changeBytes(c), 0);
  }
}
