import { BackplaneError, prefixEnd, type Store } from '@backplane/runtime';
import { type Chunk, exactly } from './chunks';

/**
 * Small BYTE_ARRAY areas keep their bytes in level next to their metadata instead of in a file of their
 * pool: a STABLE store of a few KiB is then one group-committed level batch (data, checksum and record
 * together, one fsync shared with every store of the same moment) instead of a file created, written and
 * fsynced on its own, and a crash can never leave data without metadata or the reverse.
 */
export const INLINE_MAX = 64 * 1024;

/** One extent of an inline area's bytes per store, keyed by its offset (like the checksummed extents). */
const DATA_PREFIX = (id: string) => `dat!${id}!`;
const dataKey = (id: string, offset: number) => `${DATA_PREFIX(id)}${String(offset).padStart(16, '0')}`;
const BUFFER = { valueEncoding: 'buffer' } as const;

export type DataOp = { type: 'put'; key: string; value: Buffer; valueEncoding: 'buffer' };

/** Whether a new area keeps its bytes inline; `max` 0 = never. */
export function inlineable(type: string, size: number, max: number): boolean {
  return type === 'BYTE_ARRAY' && max > 0 && size <= max;
}

export function dataOp(id: string, offset: number, data: Buffer): DataOp {
  return { type: 'put', key: dataKey(id, offset), value: data, ...BUFFER };
}

/** Every byte of a store's stream, in one buffer of exactly `total` bytes, and its CRC-32. */
export async function gather(
  total: number,
  chunks: AsyncIterable<Chunk> | Iterable<Chunk>,
): Promise<{ data: Buffer; crc: number }> {
  const parts: Buffer[] = [];
  let crc = 0;
  for await (const piece of exactly(total, chunks)) {
    parts.push(piece.chunk);
    crc = piece.crc;
  }
  const data = parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts, total);
  return { data, crc };
}

/**
 * The extents that make up the first `size` bytes, in order: each starts where the one before ended (an
 * extent left by a store whose record a crash lost, or one the next store replaced, is skipped).
 */
export async function inlineExtents(
  store: Store,
  id: string,
  size: number,
  strict = true,
): Promise<Map<number, Buffer>> {
  const prefix = DATA_PREFIX(id);
  const entries = await store
    .iterator<string, Buffer>({ gte: prefix, lt: prefixEnd(prefix), ...BUFFER })
    .all();
  const chain = new Map<number, Buffer>();
  let pos = 0;
  for (const [key, value] of entries) {
    if (pos >= size) break;
    const offset = Number(key.slice(prefix.length));
    if (offset !== pos) continue;
    const part = value.subarray(0, Math.min(value.length, size - pos));
    chain.set(offset, part);
    pos += part.length;
  }
  if (strict && pos < size)
    throw BackplaneError.of('DATA_LOSS', `area ${id} holds ${pos} of its ${size} bytes`);
  return chain;
}

/** Bytes [offset, offset + length) of an inline area. */
export async function readInline(store: Store, id: string, offset: number, length: number): Promise<Buffer> {
  const out = Buffer.allocUnsafe(length);
  const end = offset + length;
  for (const [at, part] of await inlineExtents(store, id, end)) {
    const from = Math.max(offset, at);
    const to = Math.min(end, at + part.length);
    if (from < to) part.copy(out, from - offset, from - at, to - at);
  }
  return out;
}

/** The keys of an inline area's bytes. */
export async function inlineKeys(store: Store, id: string): Promise<string[]> {
  const prefix = DATA_PREFIX(id);
  const keys: string[] = [];
  for await (const key of store.keys({ gte: prefix, lt: prefixEnd(prefix) })) keys.push(String(key));
  return keys;
}

/** Removes every extent of an inline area's bytes. */
export function clearInline(store: Store, id: string): Promise<void> {
  const prefix = DATA_PREFIX(id);
  return store.clear({ gte: prefix, lt: prefixEnd(prefix) });
}

/**
 * Start-up: removes inline bytes no inline area owns and extents past the end of their area's data (a
 * store whose record a crash lost); `sizeOf` gives an inline area's data length, undefined for none.
 */
export async function sweepInline(store: Store, sizeOf: (id: string) => number | undefined): Promise<number> {
  const stale: string[] = [];
  for await (const key of store.keys({ gte: 'dat!', lt: 'dat"' })) {
    const k = String(key);
    const bang = k.indexOf('!', 4);
    const size = sizeOf(k.slice(4, bang));
    if (size === undefined || Number(k.slice(bang + 1)) >= size) stale.push(k);
  }
  if (stale.length > 0) await store.batch(stale.map((key) => ({ type: 'del' as const, key })));
  return stale.length;
}
