import type { Socket } from 'node:net';
import { chunkReader } from './read-buffers';

/** A promise with its resolver, for "this happened" signals. */
export class Signal {
  readonly promise: Promise<void>;
  private resolver!: () => void;
  constructor() {
    this.promise = new Promise<void>((resolve) => {
      this.resolver = resolve;
    });
  }
  resolve(): void {
    this.resolver();
  }
}

/** Where a stream's relayed bytes are counted: the node it is at. */
export interface ByteCounters {
  toNode: number;
  fromNode: number;
}

/**
 * One client connection held by the coordinator and relayed, byte for byte, to the node the client is at
 * through that node's data connection for this stream. The client's bytes are read by one data connection
 * at a time: a handoff stops reading the client, ends the old data connection (the node reads to its end
 * and returns what its application did not read), and the next data connection gets those unread bytes
 * first, then the client's. Output from the next node reaches the client only after all of the old node's.
 */
export class RelayStream {
  /** The data connection in use, once the node dialled it. */
  data: Socket | undefined;
  /** Bytes the next data connection gets before the client's: the previous node's unread bytes. */
  prefix: Buffer[] = [];
  /** Resolves when everything the previous node wrote has gone to the client. */
  previousOutput: Promise<void> = Promise.resolve();
  /** The client ended writing (its FIN was read). */
  clientEnded = false;
  /** The client's write side was ended for it (the node's application ended writing). */
  writeClosed = false;
  /** A released node had ended writing: the client's write side closes once its output is relayed. */
  private writeClosing = false;
  closed = false;
  counters: ByteCounters | undefined;
  /** The data connection's byte counts when it was attached (its token is not relayed bytes). */
  private dataBase = { written: 0, read: 0 };
  /** A data connection was granted and not dialled yet. */
  awaitingDial = false;
  /** The number of the latest grant (an older one failing does not concern the stream any more). */
  private grantSeq = 0;
  private readonly closedSignal = new Signal();
  /** Resolves once the client's connection has closed. */
  readonly gone = this.closedSignal.promise;
  /** Set by close(): what finishes closing the client once the node's output is relayed. */
  private closing: (() => void) | undefined;
  /** The node's application ended writing / closed the stream (StreamClosed), and its data EOF arrived. */
  private appEnded: 'write' | 'all' | undefined;
  private dataEnded = false;
  private releasing: Signal | undefined;

  /** The client's connection. */
  readonly socket: Socket;
  /** The data connection the client's bytes go to now (none while paused for a handoff or a dial). */
  private input: Socket | undefined;
  /** Client bytes read while no data connection took them (they go first to the next one). */
  private held: Buffer[] = [];

  constructor(
    readonly id: string,
    client: Socket,
    private readonly onClose: (stream: RelayStream) => void,
  ) {
    this.socket = client;
    const reader = chunkReader(client);
    if (reader) {
      reader.sink = (chunk, release) => this.clientBytes(chunk, release);
      for (const chunk of reader.early.splice(0)) this.clientBytes(chunk);
    } else {
      client.on('data', (chunk: Buffer) => {
        if (!this.clientBytes(chunk)) client.pause();
      });
    }
    client.setNoDelay(true);
    client.pause();
    client.on('end', () => {
      this.clientEnded = true;
      this.input?.end();
    });
    client.on('error', () => {});
    client.on('close', (hadError) => this.clientClosed(hadError));
  }

  /**
   * Bytes from the client: to the data connection in use; false = stop reading for now. `release` gives
   * a reused read buffer back once written (a chunk held for later is not given back: it is simply dropped
   * when done).
   */
  private clientBytes(chunk: Buffer, release?: () => void): boolean {
    const target = this.input;
    if (!target) {
      this.held.push(chunk);
      return false;
    }
    if (target.write(chunk, release)) return true;
    target.once('drain', () => {
      if (this.input === target) this.socket.resume();
    });
    return false;
  }

  /** The client's bytes (those held first) go to `data` from now on. */
  private startInput(data: Socket): void {
    this.input = data;
    for (const chunk of this.held) data.write(chunk);
    this.held = [];
    if (this.clientEnded) data.end();
    else this.socket.resume();
  }

  /** No more client bytes to the data connection in use (what it was given still reaches it). */
  private stopInput(): void {
    this.input = undefined;
    this.socket.pause();
  }

  /** Connects the node's data connection: the pending prefix, then the client's bytes and the node's output. */
  attachData(data: Socket): void {
    this.data = data;
    data.setNoDelay(true);
    const counters = this.counters;
    const bytesAtStart = { written: data.bytesWritten, read: data.bytesRead };
    this.dataBase = bytesAtStart;
    data.on('error', () => {});
    data.on('end', () => this.dataEnd(data));
    data.on('close', () => {
      if (counters) {
        counters.toNode += data.bytesWritten - bytesAtStart.written;
        counters.fromNode += data.bytesRead - bytesAtStart.read;
      }
      this.dataClose(data);
    });
    this.awaitingDial = false;
    for (const chunk of this.prefix) data.write(chunk);
    this.prefix = [];
    // the node's output goes to the client once the previous node's has — also when this connection is
    // released or closed meanwhile (its EOF then ends the release)
    void this.previousOutput.then(() => this.relayOutput(data));
    if (this.closing) {
      this.afterNodeEnd(data, this.closing);
      return;
    }
    if (this.releasing) {
      // a handoff started before the node dialled: the node gets no more, and returns what it got
      const signal = this.releasing;
      this.afterNodeEnd(data, () => signal.resolve());
      return;
    }
    this.startInput(data);
  }

  /** The node's output on `data` goes to the client from now on (or is dropped once its write side is closed). */
  private relayOutput(data: Socket): void {
    const reader = chunkReader(data);
    if (!reader) {
      if (this.writeClosed) data.resume();
      else data.pipe(this.socket, { end: false });
      return;
    }
    const client = this.socket;
    reader.sink = (chunk, release) => {
      if (this.writeClosed || client.destroyed) {
        release();
        return true;
      }
      if (client.write(chunk, release)) return true;
      client.once('drain', () => data.resume());
      return false;
    };
    let flowing = true;
    for (const chunk of reader.early.splice(0)) flowing = reader.sink(chunk, () => {}) && flowing;
    if (flowing) data.resume(); // else the client's drain resumes it
  }

  /**
   * Ends the node's input on `data` and calls `then` once the node's output has all been relayed (its
   * EOF) or the connection is gone (a release or a close waits for this).
   */
  private afterNodeEnd(data: Socket, then: () => void): void {
    if (data.readableEnded || data.destroyed) {
      then();
      return;
    }
    data.once('end', then);
    data.once('close', then);
    data.end();
  }

  /** Live bytes of the data connection in use, for status. */
  liveBytes(): { toNode: number; fromNode: number } {
    const data = this.data;
    if (!data) return { toNode: 0, fromNode: 0 };
    return {
      toNode: data.bytesWritten - this.dataBase.written,
      fromNode: data.bytesRead - this.dataBase.read,
    };
  }

  /**
   * Handoff, first half: stop reading the client and end the node's data connection. Resolves when the
   * node's output has all been relayed (its EOF) or the connection is gone.
   */
  beginRelease(): Promise<void> {
    const signal = new Signal();
    this.releasing = signal;
    const data = this.data;
    this.stopInput();
    if (data) this.afterNodeEnd(data, () => signal.resolve());
    // not dialled yet: attachData releases it when the node dials, or dialFailed() gives up
    if (this.closed) signal.resolve();
    return signal.promise;
  }

  /**
   * Handoff, second half: the old node's unread bytes go first on the next data connection, whose output
   * waits for the old node's. `writeClosed`: the old node's application had ended writing.
   */
  completeRelease(unread: Buffer[], writeClosed: boolean, oldOutput: Promise<void>): void {
    // never dialled by the old node: it has no output for the client (a late dial is refused)
    if (!this.data) this.releasing?.resolve();
    this.prefix = [...unread, ...this.prefix];
    if (writeClosed) this.writeClosing = true;
    this.previousOutput = oldOutput.then(() => {
      if (writeClosed) this.endClientWrite();
    });
    this.releasing = undefined;
    this.data = undefined;
    this.dataEnded = false;
    this.appEnded = undefined;
  }

  /** The client's write side is (or will be, once earlier output is relayed) closed: the next node must not write. */
  get outputClosed(): boolean {
    return this.writeClosed || this.writeClosing;
  }

  /** A data connection is granted for the stream; returns the grant's number (for dialFailed). */
  granted(): number {
    this.awaitingDial = true;
    return ++this.grantSeq;
  }

  /**
   * Grant `seq` was never dialled. If it is the latest, no node holds the stream: a release waiting for it
   * goes on without it (the handoff's target gets the stream), a close finishes, and otherwise the client's
   * connection is closed, as nothing would ever relay it.
   */
  dialFailed(seq: number): void {
    if (seq !== this.grantSeq || this.closed) return;
    this.awaitingDial = false;
    if (this.releasing) this.releasing.resolve();
    else if (this.closing) this.closing();
    else {
      this.stopInput();
      this.endClientWrite();
      this.socket.destroySoon();
    }
  }

  /** The node failed: drop its data connection; the stream waits for the next node. */
  detachForFailure(): void {
    const data = this.data;
    // a grant the failed node never dialled no longer concerns the stream (its timeout must not close it)
    this.awaitingDial = false;
    this.grantSeq++;
    this.stopInput();
    data?.destroy();
    this.releasing?.resolve();
    this.releasing = undefined;
    this.data = undefined;
    this.dataEnded = false;
    this.appEnded = undefined;
  }

  /** The node's application ended writing (write) or closed the stream (all); acts once its EOF is in. */
  appClosed(kind: 'write' | 'all'): void {
    this.appEnded = kind === 'all' || this.appEnded === 'all' ? 'all' : 'write';
    this.maybeEnd();
  }

  /**
   * Closes the client's connection (the node detached): the node's output still in flight is relayed
   * first (up to its EOF — after it dials, if it has not yet — at most `graceMs`), then the client's
   * socket is ended and closed.
   */
  close(graceMs = 2000): void {
    if (this.closed || this.closing) return;
    this.closing = () => {
      clearTimeout(timer);
      this.endClientWrite();
      this.socket.destroySoon();
      this.data?.destroy();
    };
    const timer = setTimeout(this.closing, graceMs);
    timer.unref();
    this.stopInput();
    if (this.data) this.afterNodeEnd(this.data, this.closing);
    else if (!this.awaitingDial) this.closing();
  }

  get isClosing(): boolean {
    return this.closing !== undefined;
  }

  /** Destroys both connections at once (coordinator shutdown). */
  destroy(): void {
    this.data?.destroy();
    this.socket.destroy();
  }

  private dataEnd(data: Socket): void {
    // a released connection's EOF ends its release (afterNodeEnd), not the client's stream
    if (data !== this.data || this.releasing) return;
    this.dataEnded = true;
    this.maybeEnd();
  }

  private dataClose(data: Socket): void {
    if (data !== this.data || this.releasing) return;
    // without StreamClosed this is a failing node: the session's end re-homes the stream
    this.dataEnded = true;
    this.maybeEnd();
  }

  private maybeEnd(): void {
    if (!this.dataEnded || !this.appEnded) return;
    this.endClientWrite();
    if (this.appEnded === 'all') {
      this.socket.destroySoon();
      this.data?.destroy();
    }
  }

  private endClientWrite(): void {
    if (this.writeClosed) return;
    this.writeClosed = true;
    this.socket.end();
  }

  private clientClosed(hadError: boolean): void {
    this.closed = true;
    this.closedSignal.resolve();
    this.releasing?.resolve();
    const data = this.data;
    if (data) {
      if (hadError || !this.clientEnded) data.destroy();
      else data.end();
    }
    this.onClose(this);
  }
}
