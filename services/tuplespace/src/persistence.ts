import { TupleRecord } from '@backplane/proto/tuplespace';
import type { StoreOp } from '@backplane/runtime';
import type { Entry } from './tsdb';

/**
 * Keys: spaces `s/<name>`, tuples `t/<space>/<id, 16 digits>`, event sequence `q/<space>`, a mark above
 * every tuple id given out `n/<space>` (ids are reserved in blocks and never reused, also after the
 * highest ones were taken and the server restarted),
 * users `u/<name>`.
 */
export const keys = {
  space: (name: string) => `s/${name}`,
  tuplePrefix: (space: string) => `t/${space}/`,
  tuple: (space: string, id: number) => `t/${space}/${String(id).padStart(16, '0')}`,
  seq: (space: string) => `q/${space}`,
  nextId: (space: string) => `n/${space}`,
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

export const putTuple = (space: string, e: Entry): StoreOp => ({
  type: 'put',
  key: keys.tuple(space, e.id),
  value: encodeEntry(e),
});
export const delTuple = (space: string, id: number): StoreOp => ({ type: 'del', key: keys.tuple(space, id) });
