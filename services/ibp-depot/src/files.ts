import type { FileHandle } from 'node:fs/promises';
import { BackplaneError } from '@backplane/runtime';

/** Largest chunk a read yields (and a ring write splits into). */
export const CHUNK = 1024 * 1024;

export async function writeFully(fh: FileHandle, data: Buffer, position: number): Promise<void> {
  let done = 0;
  while (done < data.length) {
    const { bytesWritten } = await fh.write(data, done, data.length - done, position + done);
    done += bytesWritten;
  }
}

/** Makes the buffer a chunk is read into (a transport may want room around it to frame it in place). */
export type ChunkAllocator = (length: number) => Buffer;

export async function readFully(
  fh: FileHandle,
  length: number,
  position: number,
  alloc: ChunkAllocator = Buffer.allocUnsafe,
): Promise<Buffer> {
  const buf = alloc(length);
  let done = 0;
  while (done < length) {
    const { bytesRead } = await fh.read(buf, done, length - done, position + done);
    // the record says the bytes are there and the file does not have them (lost in a crash, truncated)
    if (bytesRead === 0)
      throw BackplaneError.of(
        'DATA_LOSS',
        `short read: the area's file ends at ${position + done}, its record says ${position + length}`,
      );
    done += bytesRead;
  }
  return buf;
}

/** Writes `data` into a ring of `ringSize` bytes starting at ring position `start` (wrapping at the end). */
export async function ringWrite(
  fh: FileHandle,
  data: Buffer,
  start: number,
  ringSize: number,
): Promise<void> {
  const first = Math.min(data.length, ringSize - start);
  await writeFully(fh, data.subarray(0, first), start);
  if (first < data.length) await writeFully(fh, data.subarray(first), 0);
}

/**
 * Yields the pieces described by `spans` ([position, length] pairs), reading the next piece from disk
 * while the current one is being sent (disk and network overlap).
 */
async function* prefetching(
  fh: FileHandle,
  spans: Iterable<[number, number]>,
  alloc?: ChunkAllocator,
): AsyncGenerator<Buffer> {
  const it = spans[Symbol.iterator]();
  const start = (): Promise<Buffer> | undefined => {
    const n = it.next();
    if (n.done) return undefined;
    const p = readFully(fh, n.value[1], n.value[0], alloc);
    p.catch(() => undefined); // observed below; this only keeps an abandoned prefetch from being "unhandled"
    return p;
  };
  let next = start();
  while (next) {
    const buf = await next;
    next = start();
    yield buf;
  }
}

function* ringSpans(start: number, length: number, ringSize: number): Generator<[number, number]> {
  let pos = start;
  let left = length;
  while (left > 0) {
    const n = Math.min(left, CHUNK, ringSize - pos);
    yield [pos, n];
    left -= n;
    pos = (pos + n) % ringSize;
  }
}

function* rangeSpans(offset: number, length: number): Generator<[number, number]> {
  for (let done = 0; done < length; done += CHUNK) yield [offset + done, Math.min(CHUNK, length - done)];
}

/** Reads `length` bytes of a ring from position `start`, in chunks of at most CHUNK bytes. */
export function ringRead(
  fh: FileHandle,
  start: number,
  length: number,
  ringSize: number,
  alloc?: ChunkAllocator,
): AsyncGenerator<Buffer> {
  return prefetching(fh, ringSpans(start, length, ringSize), alloc);
}

/** Reads `length` bytes from `offset` of a flat file, in chunks of at most CHUNK bytes. */
export function rangeRead(
  fh: FileHandle,
  offset: number,
  length: number,
  alloc?: ChunkAllocator,
): AsyncGenerator<Buffer> {
  return prefetching(fh, rangeSpans(offset, length), alloc);
}
