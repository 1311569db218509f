import type { Socket } from 'node:net';
import { Duplex } from 'node:stream';

/** What a stream tells its service: the application ended writing, or closed the stream. */
export type StreamClosedKind = 'write' | 'all';

/** What a released stream leaves for the next node. */
export interface ReleasedStream {
  /** Bytes the stream received that the application did not read, in order. */
  unread: Buffer[];
  /** The application had ended writing before the handoff. */
  writeClosed: boolean;
}

/**
 * One client stream at this node, as the application sees it: a Node Duplex over the stream's data
 * connection to the coordinator. Bytes count as read by the application once it receives them ('data',
 * read(), an async iterator); a handoff takes back everything else — what is still in the data
 * connection, what this stream holds and what sits unread in its readable buffer — for the next node.
 */
export class DsStream extends Duplex {
  private releasing = false;
  private released = false;
  private endPushed = false;
  private readonly late: Buffer[] = [];
  private readonly socketDone: Promise<void>;

  constructor(
    readonly id: string,
    readonly clientUrl: string,
    private readonly socket: Socket,
    private readonly onClosed: (stream: DsStream, kind: StreamClosedKind) => void,
    highWaterMark = 64 * 1024,
  ) {
    super({ allowHalfOpen: true, highWaterMark });
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => {
      if (!this.fromCoordinator(chunk)) socket.pause();
    });
    this.socketDone = new Promise<void>((resolve) => {
      socket.once('end', resolve);
      socket.once('close', resolve);
    });
    socket.on('end', () => {
      if (!this.releasing) this.pushEnd();
    });
    socket.on('error', () => {});
    socket.on('close', (hadError) => {
      if (this.releasing || this.released) return;
      this.pushEnd();
      if (hadError && !this.destroyed)
        this.destroy(new Error('the data connection to the coordinator failed'));
    });
  }

  /** Bytes from the data connection; false = stop reading until the application reads more. */
  private fromCoordinator(chunk: Buffer): boolean {
    if (this.releasing) {
      this.late.push(chunk);
      return true;
    }
    return this.push(chunk);
  }

  private pushEnd(): void {
    if (this.endPushed) return;
    this.endPushed = true;
    this.push(null);
  }

  override _read(): void {
    if (!this.releasing) this.socket.resume();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    if (this.socket.destroyed) {
      callback(new Error('the stream is closed'));
      return;
    }
    if (this.socket.write(chunk)) callback();
    else this.socket.once('drain', () => callback());
  }

  override _final(callback: (error?: Error | null) => void): void {
    if (!this.releasing) this.onClosed(this, 'write');
    this.socket.end(callback);
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    if (!this.releasing && !this.released) {
      this.onClosed(this, 'all');
      this.socket.end();
    }
    callback(error);
  }

  /**
   * Handoff: the coordinator has stopped the client's bytes and ends the data connection. Reads it to
   * its end, takes back what the application has not read, ends the application's side and returns the
   * unread bytes. It does not wait for the application's output to drain: a client that is not reading
   * must not hold up the handoff (the coordinator relays that output before the next node's).
   */
  async release(): Promise<ReleasedStream> {
    const writeClosed = this.writableEnded;
    this.releasing = true;
    this.socket.resume();
    await this.socketDone;
    const reclaimed: Buffer[] = [];
    if (this.readableFlowing !== true && this.readableLength > 0) {
      const listeners = this.listeners('data') as Array<(chunk: Buffer) => void>;
      this.removeAllListeners('data');
      for (let chunk = this.read() as Buffer | null; chunk !== null; chunk = this.read() as Buffer | null) {
        reclaimed.push(chunk);
      }
      for (const l of listeners) this.on('data', l);
    }
    this.pushEnd();
    // the application's side ends; what it wrote still flushes to the coordinator in the background, and
    // the data connection's end after it tells the coordinator the next node's output may follow
    if (!this.writableEnded && !this.destroyed) this.end();
    this.released = true;
    return { unread: [...reclaimed, ...this.late], writeClosed };
  }
}
