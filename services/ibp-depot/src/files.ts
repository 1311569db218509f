import type { FileHandle } from 'node:fs/promises';

/** Largest chunk a read yields (and a ring write splits into). */
export const CHUNK = 1024 * 1024;

export async function writeFully(fh: FileHandle, data: Buffer, position: number): Promise<void> {
  let done = 0;
  while (done < data.length) {
    const { bytesWritten } = await fh.write(data, done, data.length - done, position + done);
    done += bytesWritten;
  }
}

export async function readFully(fh: FileHandle, length: number, position: number): Promise<Buffer> {
  const buf = Buffer.allocUnsafe(length);
  let done = 0;
  while (done < length) {
    const { bytesRead } = await fh.read(buf, done, length - done, position + done);
    if (bytesRead === 0)
      throw new Error(`short read: file ends at ${position + done}, wanted ${position + length}`);
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

/** Reads `length` bytes of a ring from position `start`, in chunks of at most CHUNK bytes. */
export async function* ringRead(
  fh: FileHandle,
  start: number,
  length: number,
  ringSize: number,
): AsyncGenerator<Buffer> {
  let pos = start;
  let left = length;
  while (left > 0) {
    const n = Math.min(left, CHUNK, ringSize - pos);
    yield await readFully(fh, n, pos);
    left -= n;
    pos = (pos + n) % ringSize;
  }
}

/** Reads `length` bytes from `offset` of a flat file, in chunks of at most CHUNK bytes. */
export async function* rangeRead(fh: FileHandle, offset: number, length: number): AsyncGenerator<Buffer> {
  let done = 0;
  while (done < length) {
    const n = Math.min(CHUNK, length - done);
    yield await readFully(fh, n, offset + done);
    done += n;
  }
}
