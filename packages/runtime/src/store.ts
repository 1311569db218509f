import { mkdirSync } from 'node:fs';
import type { AbstractLevel } from 'abstract-level';
import { ClassicLevel } from 'classic-level';

/** The key-value store every embedded engine uses: string keys, JSON-encoded values. */
export type Store = AbstractLevel<string | Uint8Array | Buffer, string, string>;

/**
 * Opens (creating if needed) a LevelDB store at `dir`. Writes are durable against a process crash
 * (kill -9) once acknowledged; pass `{ sync: true }` to a write for durability against power loss.
 */
export async function openStore(dir: string): Promise<Store> {
  mkdirSync(dir, { recursive: true });
  const db = new ClassicLevel<string, string>(dir, { keyEncoding: 'utf8', valueEncoding: 'utf8' });
  try {
    await db.open();
  } catch (err) {
    const cause = (err as { cause?: { message?: string } }).cause;
    throw new Error(`cannot open store at ${dir}: ${cause?.message ?? (err as Error).message}`, {
      cause: err,
    });
  }
  return db as unknown as Store;
}

/** The smallest key above every key that starts with `prefix` (for range scans). */
export function prefixEnd(prefix: string): string {
  return prefix.slice(0, -1) + String.fromCharCode(prefix.charCodeAt(prefix.length - 1) + 1);
}

/** One write of a batch. */
export type StoreOp = { type: 'put'; key: string; value: string } | { type: 'del'; key: string };

/**
 * Group commit: every change is one level batch, and the batches asked for while one is being written
 * go together in the next. A change is acknowledged only once its batch is in the store, so nothing
 * acknowledged is lost to a crash (level's log is written before the batch resolves).
 */
export class GroupCommitter {
  private pending: Array<{ ops: StoreOp[]; resolve: () => void; reject: (err: unknown) => void }> = [];
  private writing: Promise<void> | undefined;

  constructor(private readonly store: Store) {}

  commit(ops: StoreOp[]): Promise<void> {
    if (ops.length === 0) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      this.pending.push({ ops, resolve, reject });
      if (!this.writing) this.writing = this.drain();
    });
  }

  private async drain(): Promise<void> {
    // the calls of this turn of the event loop join the first batch; later ones gather behind it
    await Promise.resolve();
    while (this.pending.length > 0) {
      const group = this.pending;
      this.pending = [];
      try {
        await this.store.batch(group.flatMap((g) => g.ops));
        for (const g of group) g.resolve();
      } catch (err) {
        for (const g of group) g.reject(err);
      }
    }
    this.writing = undefined;
  }

  /** Resolves when the committer is idle: everything asked for so far, and since, is written. */
  async flush(): Promise<void> {
    while (this.writing) await this.writing;
  }

  /**
   * Resolves once everything asked for before this call is written (or failed), however busy the
   * committer stays after it (flush() waits for idle, which a steady load may never give).
   */
  barrier(): Promise<void> {
    if (!this.writing && this.pending.length === 0) return Promise.resolve();
    return new Promise<void>((resolve) => {
      this.pending.push({ ops: [], resolve, reject: () => resolve() });
      if (!this.writing) this.writing = this.drain();
    });
  }
}
