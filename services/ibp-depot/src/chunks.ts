import { crc32 } from 'node:zlib';
import { BackplaneError, crc32Combine } from '@backplane/runtime';

/** A piece of a Store: bytes, optionally with the CRC-32 already verified for them. */
export type Chunk = Buffer | { data: Buffer; crc32?: number };

/**
 * The non-empty pieces of a store's stream, each with where it starts in the stream and the CRC-32 of
 * the stream up to its end. Throws before a piece that would pass `total` bytes, and after the last one
 * if they fall short of it: a store applies nothing unless exactly `total` bytes arrive.
 */
export async function* exactly(
  total: number,
  chunks: AsyncIterable<Chunk> | Iterable<Chunk>,
): AsyncGenerator<{ chunk: Buffer; at: number; crc: number }> {
  let at = 0;
  let crc = 0;
  for await (const item of chunks) {
    const chunk = Buffer.isBuffer(item) ? item : item.data;
    if (chunk.length === 0) continue;
    if (at + chunk.length > total) {
      throw BackplaneError.badParameter(`the stream carries more than the announced ${total} bytes`);
    }
    const known = Buffer.isBuffer(item) ? undefined : item.crc32;
    // a chunk whose CRC was already checked on arrival is folded in without reading it again
    crc =
      known !== undefined && chunk.length >= 65536
        ? crc32Combine(crc, known, chunk.length)
        : crc32(chunk, crc);
    yield { chunk, at, crc };
    at += chunk.length;
  }
  if (at !== total)
    throw BackplaneError.badParameter(`the stream ended after ${at} of the announced ${total} bytes`);
}
