import { mkdirSync } from 'node:fs';
import { BackplaneError } from '@backplane/runtime';
import { ClassicLevel } from 'classic-level';
import { type Following, type LogEntry, NOT_APPENDED, type ReplicatedLog, type Snapshot } from './log';

/** Entry keys: 'e' + the position as 8 bytes big-endian, so that keys sort as positions do. */
const ENTRY = 0x65;
const SNAPSHOT = Buffer.from('s');

function entryKey(position: number): Buffer {
  const k = Buffer.allocUnsafe(9);
  k[0] = ENTRY;
  k.writeBigUInt64BE(BigInt(position), 1);
  return k;
}
const positionOf = (key: Uint8Array) => Number(Buffer.from(key.buffer, key.byteOffset, 9).readBigUInt64BE(1));

/** [id length u16][id utf8][data] */
function encodeEntry(id: string, data: Uint8Array): Buffer {
  const idBytes = Buffer.from(id);
  const out = Buffer.allocUnsafe(2 + idBytes.length + data.length);
  out.writeUInt16BE(idBytes.length, 0);
  idBytes.copy(out, 2);
  out.set(data, 2 + idBytes.length);
  return out;
}
function decodeEntry(position: number, value: Uint8Array): LogEntry {
  const b = Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  const n = b.readUInt16BE(0);
  return { position, id: b.toString('utf8', 2, 2 + n), data: b.subarray(2 + n) };
}

interface Waiting {
  id: string;
  data: Uint8Array;
  resolve(position: number): void;
  reject(err: unknown): void;
}

export interface LocalLogOptions {
  /** Largest entry, bytes (default 8 MiB). */
  maxEntryBytes?: number;
  /** How many recent proposal ids are remembered to tell a retried append (default 100,000). */
  dedupWindow?: number;
  /** fsync every batch (default true): an acknowledged entry survives a power loss, not only kill -9. */
  sync?: boolean;
}

/**
 * The log of the embedded engine: entries in a level store of their own, group-committed (the appends of a
 * moment are one fsynced batch). Positions are given when a batch is written, never before, so a failed
 * write leaves no gap. One process reads it, so its last position is a read barrier without a round trip.
 */
export class LocalLog implements ReplicatedLog {
  readonly kind = 'local' as const;
  readonly maxEntryBytes: number;
  private head = 0;
  private queue: Waiting[] = [];
  private writing: Promise<void> | undefined;
  private readonly followers = new Set<(e: LogEntry) => void>();
  /** id → position of the recent entries (insertion order: the oldest is dropped first). */
  private readonly recent = new Map<string, number>();
  /** Appends queued or being written, by id: the same id appended again meanwhile shares them. */
  private readonly inFlight = new Map<string, Promise<number>>();
  private closed = false;
  /** The latest snapshot's position, once read or written. */
  private savedAt: number | undefined;

  private constructor(
    /** The level store the entries are in (tests hold or fail its batches). */
    readonly db: ClassicLevel<Buffer, Buffer>,
    private readonly options: LocalLogOptions,
  ) {
    this.maxEntryBytes = options.maxEntryBytes ?? 8 * 1024 * 1024;
  }

  static async open(dir: string, options: LocalLogOptions = {}): Promise<LocalLog> {
    mkdirSync(dir, { recursive: true });
    const db = new ClassicLevel<Buffer, Buffer>(dir, { keyEncoding: 'buffer', valueEncoding: 'buffer' });
    await db.open();
    const log = new LocalLog(db, options);
    for await (const key of db.keys({
      gte: entryKey(0),
      lte: entryKey(Number.MAX_SAFE_INTEGER),
      reverse: true,
      limit: 1,
    }))
      log.head = positionOf(key);
    if (log.head === 0) log.head = (await log.loadSnapshot())?.position ?? 0;
    // the recent proposal ids, so that a request retried across a restart is not appended twice
    const recent: Array<[string, number]> = [];
    for await (const [key, value] of db.iterator({
      gte: entryKey(0),
      lte: entryKey(log.head),
      reverse: true,
      limit: options.dedupWindow ?? 100_000,
    })) {
      const e = decodeEntry(positionOf(key), value);
      recent.push([e.id, e.position]);
    }
    for (const [id, position] of recent.reverse()) log.recent.set(id, position);
    return log;
  }

  append(id: string, data: Uint8Array): Promise<number> {
    if (this.closed) return Promise.reject(BackplaneError.unavailable('the log is closed'));
    const known = this.recent.get(id);
    if (known !== undefined) return Promise.resolve(known);
    const queued = this.inFlight.get(id);
    if (queued) return queued;
    if (data.length > this.maxEntryBytes)
      return Promise.reject(
        BackplaneError.badParameter(
          `a log entry is at most ${this.maxEntryBytes} bytes, got ${data.length}`,
          {
            reason: 'PROPOSAL_TOO_LARGE',
          },
        ),
      );
    const appended = new Promise<number>((resolve, reject) => {
      this.queue.push({ id, data, resolve, reject });
      this.writing ??= this.drain();
    }).finally(() => this.inFlight.delete(id));
    this.inFlight.set(id, appended);
    return appended;
  }

  /** Writes what is queued, a batch at a time; the appends of one turn of the event loop go together. */
  private async drain(): Promise<void> {
    await Promise.resolve();
    while (this.queue.length > 0) {
      const group = this.queue;
      this.queue = [];
      const first = this.head + 1;
      const entries = group.map((w, i) => ({ position: first + i, id: w.id, data: w.data }));
      try {
        await this.db.batch(
          entries.map((e) => ({
            type: 'put' as const,
            key: entryKey(e.position),
            value: encodeEntry(e.id, e.data),
          })),
          { sync: this.options.sync ?? true },
        );
      } catch (err) {
        // nothing of the batch is in the log: a definite failure, not an unknown outcome
        for (const w of group)
          w.reject(
            BackplaneError.unavailable(`the log could not be written: ${(err as Error).message}`, {
              cause: err,
              reason: NOT_APPENDED,
            }),
          );
        continue;
      }
      this.head = first + entries.length - 1;
      for (const e of entries) this.remember(e.id, e.position);
      for (const e of entries) for (const f of this.followers) f(e);
      group.forEach((w, i) => {
        w.resolve(first + i);
      });
    }
    this.writing = undefined;
  }

  private remember(id: string, position: number): void {
    this.recent.set(id, position);
    if (this.recent.size > (this.options.dedupWindow ?? 100_000)) {
      const oldest = this.recent.keys().next().value as string;
      this.recent.delete(oldest);
    }
  }

  /** One node, one writer: the last position is already a linearizable barrier. */
  readBarrier(): Promise<number> {
    return this.lastPosition();
  }

  async lastPosition(): Promise<number> {
    return this.head;
  }

  async follow(
    after: number,
    onEntry: (entry: LogEntry) => void,
    onGap: (firstHeld: number) => void,
    _onError?: (err: Error) => void,
  ): Promise<Following> {
    // entries written while the stored ones are read wait in `later`, then follow in order
    let catchingUp = true;
    const later: LogEntry[] = [];
    let last = after;
    const follower = (e: LogEntry) => {
      if (catchingUp) later.push(e);
      else if (e.position > last) {
        last = e.position;
        onEntry(e);
      }
    };
    this.followers.add(follower);
    const first = await this.firstPosition();
    if (after + 1 < first && after < this.head) {
      this.followers.delete(follower);
      onGap(first);
      return { stop: () => undefined };
    }
    for await (const [key, value] of this.db.iterator({ gt: entryKey(after), lte: entryKey(this.head) })) {
      const position = positionOf(key);
      if (position !== last + 1) break;
      last = position;
      onEntry(decodeEntry(position, value));
    }
    catchingUp = false;
    for (const e of later.splice(0)) follower(e);
    return { stop: () => this.followers.delete(follower) };
  }

  private async firstPosition(): Promise<number> {
    for await (const key of this.db.keys({
      gte: entryKey(0),
      lte: entryKey(Number.MAX_SAFE_INTEGER),
      limit: 1,
    }))
      return positionOf(key);
    return this.head + 1;
  }

  async loadSnapshot(): Promise<Snapshot | undefined> {
    const value = await this.db.get(SNAPSHOT);
    if (!value) return undefined;
    const b = Buffer.from(value.buffer, value.byteOffset, value.byteLength);
    return { position: Number(b.readBigUInt64BE(0)), data: b.subarray(8) };
  }

  async snapshotPosition(): Promise<number> {
    // one process writes the snapshots: read once, then known
    this.savedAt ??= (await this.loadSnapshot())?.position ?? 0;
    return this.savedAt;
  }

  async saveSnapshot(snapshot: Snapshot): Promise<void> {
    const value = Buffer.allocUnsafe(8 + snapshot.data.length);
    value.writeBigUInt64BE(BigInt(snapshot.position), 0);
    value.set(snapshot.data, 8);
    await this.db.put(SNAPSHOT, value, { sync: this.options.sync ?? true });
    this.savedAt = snapshot.position;
  }

  async trim(position: number): Promise<void> {
    await this.db.clear({ gte: entryKey(0), lt: entryKey(position) });
  }

  async close(): Promise<void> {
    this.closed = true;
    while (this.writing) await this.writing;
    this.followers.clear();
    await this.db.close();
  }
}
