import { TupleRecord } from '@backplane/proto/tuplespace';
import type { Store } from '@backplane/runtime';
import type { Entry } from './tsdb';

/** One write to the store. */
export type Op = { type: 'put'; key: string; value: string } | { type: 'del'; key: string };

/** Keys: spaces `s/<name>`, tuples `t/<space>/<id, 16 digits>`, event sequence `q/<space>`, users `u/<name>`. */
export const keys = {
  space: (name: string) => `s/${name}`,
  tuplePrefix: (space: string) => `t/${space}/`,
  tuple: (space: string, id: number) => `t/${space}/${String(id).padStart(16, '0')}`,
  seq: (space: string) => `q/${space}`,
  user: (name: string) => `u/${name}`,
};

export function encodeEntry(e: Entry): string {
  return Buffer.from(
    TupleRecord.encode({ id: e.id, tuple: e.tuple, expiresAt: e.expiresAt }).finish(),
  ).toString('base64');
}

export function decodeEntry(value: string): Entry {
  const r = TupleRecord.decode(Buffer.from(value, 'base64'));
  return { id: r.id, tuple: r.tuple ?? { fields: [] }, expiresAt: r.expiresAt };
}

export const putTuple = (space: string, e: Entry): Op => ({
  type: 'put',
  key: keys.tuple(space, e.id),
  value: encodeEntry(e),
});
export const delTuple = (space: string, id: number): Op => ({ type: 'del', key: keys.tuple(space, id) });

/**
 * Group commit: every change is one level batch, and the batches asked for while one is being written
 * go together in the next. A change is acknowledged only once its batch is in the store, so nothing
 * acknowledged is lost to a crash (level's log is written before the batch resolves).
 */
export class Committer {
  private pending: Array<{ ops: Op[]; resolve: () => void; reject: (err: unknown) => void }> = [];
  private writing: Promise<void> | undefined;

  constructor(private readonly store: Store) {}

  commit(ops: Op[]): Promise<void> {
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

  /** Resolves when everything asked for so far is written. */
  async flush(): Promise<void> {
    while (this.writing) await this.writing;
  }
}
