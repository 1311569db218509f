import { type Server, Socket } from 'node:net';

/**
 * Reads of relayed client connections into buffers the relay reuses. A socket that Node reads for us
 * allocates a fresh 64 KiB buffer per read: at hundreds of MB/s that churn is what V8's collector spends
 * its time on, and 64 KiB reads cost a system call and a JS callback each. Node's `onread` lets a socket
 * read into buffers we supply, as large as we like, but only sockets Node creates for `connect()`;
 * `adoptForReads` re-creates an accepted socket around its handle with it, the way net.Server creates its
 * sockets. Where that is not possible (TLS, or a Node whose sockets are built differently) the socket
 * stays as it is and is read the ordinary way.
 */

/** Read sizes: a connection's next read buffer grows while reads fill it and shrinks when they do not. */
const CLASSES = [1024, 16 * 1024, 256 * 1024, 1024 * 1024];
/** Spare buffers kept for reuse, per size. */
const SPARE = [256, 64, 16, 8];

/**
 * Reused read buffers. Every adopted socket holds the buffer its next read goes into, idle or not; those
 * above the smallest size are bounded by `waitingBudget` bytes in all, so ten thousand connections that
 * went quiet right after a burst do not each keep a large one (past the budget, reads use smaller ones).
 */
export class ReadBuffers {
  private readonly spare: Buffer[][] = CLASSES.map(() => []);
  private waiting = 0;

  constructor(private readonly waitingBudget = 64 * 1024 * 1024) {}

  /** Bytes of larger-than-smallest buffers held by sockets for their next read. */
  get waitingBytes(): number {
    return this.waiting;
  }

  /** A buffer for a socket's next read: of size class `cls`, or smaller while the budget is spent. */
  assign(cls: number): Buffer {
    let c = cls;
    while (c > 0 && this.waiting + (CLASSES[c] as number) > this.waitingBudget) c--;
    if (c > 0) this.waiting += CLASSES[c] as number;
    return this.take(c);
  }

  /** The read into an assigned buffer happened, or its socket closed before one did. */
  unassign(buf: Buffer): void {
    if (buf.length > (CLASSES[0] as number)) this.waiting -= buf.length;
  }

  private take(cls: number): Buffer {
    return this.spare[cls]?.pop() ?? Buffer.allocUnsafeSlow(CLASSES[cls] as number);
  }

  give(buf: Buffer): void {
    const cls = CLASSES.indexOf(buf.length);
    const spare = this.spare[cls];
    if (spare && spare.length < (SPARE[cls] as number)) spare.push(buf);
  }
}

/** The size class for the read after one of `n` bytes into a buffer of class `cls`. */
function nextClass(cls: number, n: number): number {
  if (n === CLASSES[cls]) return Math.min(cls + 1, CLASSES.length - 1);
  let next = 0;
  while (next < cls && (CLASSES[next] as number) < n) next++;
  return next;
}

/**
 * Where an adopted socket's bytes go: `chunk` stays valid until `release` is called (after the write
 * that took it completed); returning false pauses the socket until resume().
 */
export type ChunkSink = (chunk: Buffer, release: () => void) => boolean;

/** The chunk receiver of an adopted socket: set by whoever relays its bytes. */
export interface ChunkReader {
  sink: ChunkSink | undefined;
  /** Bytes read before a sink was set (copies), for it to take first. */
  early: Buffer[];
}

const readers = new WeakMap<Socket, ChunkReader>();

/** The reader of a socket made by adoptForReads (undefined: read it with 'data' events). */
export function chunkReader(socket: Socket): ChunkReader | undefined {
  return readers.get(socket);
}

interface SocketInternals {
  _handle?: { useUserBuffer?: unknown; readStop?: unknown } | null;
  _server?: Server | null;
  server?: Server | null;
  encrypted?: boolean;
}

/**
 * An accepted, paused, plain TCP socket re-created around its handle to read into `buffers`; the
 * original socket object is retired. Returns the socket unchanged when it cannot be adopted.
 */
export function adoptForReads(socket: Socket, buffers: ReadBuffers, highWaterMark: number): Socket {
  const old = socket as unknown as SocketInternals;
  const handle = old._handle;
  if (!handle || typeof handle.useUserBuffer !== 'function' || old.encrypted) return socket;
  const reader: ChunkReader = { sink: undefined, early: [] };
  let cls = 0;
  /** The buffer the next read goes into. */
  let waiting: Buffer | undefined;
  let adopted: Socket;
  try {
    adopted = new Socket({
      handle,
      allowHalfOpen: true,
      readable: true,
      writable: true,
      pauseOnCreate: true,
      highWaterMark,
      onread: {
        buffer: () => {
          waiting = buffers.assign(cls);
          return waiting;
        },
        callback: (n: number, buf: Uint8Array) => {
          const b = buf as Buffer;
          buffers.unassign(b);
          waiting = undefined;
          cls = nextClass(cls, n);
          const sink = reader.sink;
          if (sink) return sink(b.subarray(0, n), () => buffers.give(b));
          reader.early.push(Buffer.from(b.subarray(0, n)));
          buffers.give(b);
          return false;
        },
      },
    } as ConstructorParameters<typeof Socket>[0]);
  } catch {
    return socket;
  }
  // the server counts its connections by their sockets' close: the new socket takes over that count
  const server = old._server ?? null;
  old._handle = null;
  old._server = null;
  old.server = null;
  const next = adopted as unknown as SocketInternals;
  next._server = server;
  next.server = server;
  socket.destroy();
  adopted.once('close', () => {
    if (waiting) buffers.unassign(waiting);
    waiting = undefined;
  });
  readers.set(adopted, reader);
  return adopted;
}

/**
 * The first `size` bytes of an adopted socket (a data connection's token); what follows stays in the
 * reader's `early` for the relay, and the socket is left paused. Undefined if the socket ends or stays
 * silent for `timeoutMs` first.
 */
export function readHeaderChunks(
  socket: Socket,
  reader: ChunkReader,
  size: number,
  timeoutMs: number,
): Promise<Buffer | undefined> {
  return new Promise((resolve) => {
    const parts: Buffer[] = [];
    let have = 0;
    const finish = (value: Buffer | undefined) => {
      clearTimeout(timer);
      socket.off('end', onEnd);
      socket.off('close', onEnd);
      reader.sink = undefined;
      socket.pause();
      resolve(value);
    };
    const onEnd = () => finish(undefined);
    reader.sink = (chunk, release) => {
      const copy = Buffer.from(chunk);
      release();
      parts.push(copy);
      have += copy.length;
      if (have < size) return true;
      const all = Buffer.concat(parts, have);
      if (have > size) reader.early.push(all.subarray(size));
      finish(all.subarray(0, size));
      return false;
    };
    const timer = setTimeout(() => finish(undefined), timeoutMs);
    timer.unref();
    socket.once('end', onEnd);
    socket.once('close', onEnd);
    socket.resume();
  });
}
