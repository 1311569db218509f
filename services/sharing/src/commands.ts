import type { CommandCodec } from '@backplane/replicated';

/**
 * The commands of the SharedProperties state machine, as proposed to its log. Time travels inside them
 * (`now`: the proposer's clock), so that applying them never reads a clock.
 */
export type PropertiesCommand =
  | { t: 'put'; key: string; value: Uint8Array; ttlMs: number; now: number; expect?: number | undefined }
  | { t: 'del'; key: string; expect?: number | undefined }
  | {
      t: 'txn';
      reads: Array<{ key: string; revision: number }>;
      puts: Array<{ key: string; value: Uint8Array; ttlMs: number }>;
      removes: string[];
      now: number;
    }
  | { t: 'expire'; now: number };

/** The encoding's version: a node refuses entries of a version it does not know, never misreads them. */
const VERSION = 1;
const TYPES = { put: 1, del: 2, txn: 3, expire: 4 } as const;
const NONE = -1;

class Writer {
  private buf = Buffer.allocUnsafe(256);
  private at = 0;
  private room(n: number): void {
    if (this.at + n <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.at + n));
    this.buf.copy(next, 0, 0, this.at);
    this.buf = next;
  }
  u8(v: number): this {
    this.room(1);
    this.buf[this.at++] = v;
    return this;
  }
  u32(v: number): this {
    this.room(4);
    this.buf.writeUInt32BE(v, this.at);
    this.at += 4;
    return this;
  }
  /** A safe integer (revisions, times, ttls; -1 for none). */
  int(v: number): this {
    this.room(8);
    this.buf.writeDoubleBE(v, this.at);
    this.at += 8;
    return this;
  }
  str(s: string): this {
    const n = Buffer.byteLength(s);
    this.u32(n).room(n);
    this.buf.write(s, this.at);
    this.at += n;
    return this;
  }
  bytes(b: Uint8Array): this {
    this.u32(b.length).room(b.length);
    this.buf.set(b, this.at);
    this.at += b.length;
    return this;
  }
  done(): Buffer {
    return this.buf.subarray(0, this.at);
  }
}

class Reader {
  private at = 0;
  constructor(private readonly buf: Buffer) {}
  private need(n: number): void {
    if (this.at + n > this.buf.length) throw new Error('a truncated properties command');
  }
  u8(): number {
    this.need(1);
    return this.buf[this.at++] as number;
  }
  u32(): number {
    this.need(4);
    const v = this.buf.readUInt32BE(this.at);
    this.at += 4;
    return v;
  }
  int(): number {
    this.need(8);
    const v = this.buf.readDoubleBE(this.at);
    this.at += 8;
    return v;
  }
  str(): string {
    const n = this.u32();
    this.need(n);
    const s = this.buf.toString('utf8', this.at, this.at + n);
    this.at += n;
    return s;
  }
  bytes(): Buffer {
    const n = this.u32();
    this.need(n);
    const b = this.buf.subarray(this.at, this.at + n);
    this.at += n;
    return b;
  }
}

const optional = (v: number | undefined) => (v === undefined ? NONE : v);
const fromOptional = (v: number) => (v === NONE ? undefined : v);

/** A compact binary encoding: a 1,000,000-byte value fits a NATS message with room to spare. */
export const propertiesCodec: CommandCodec<PropertiesCommand> = {
  encode(c) {
    const w = new Writer().u8(VERSION).u8(TYPES[c.t]);
    switch (c.t) {
      case 'put':
        return w.str(c.key).int(c.ttlMs).int(c.now).int(optional(c.expect)).bytes(c.value).done();
      case 'del':
        return w.str(c.key).int(optional(c.expect)).done();
      case 'txn':
        w.int(c.now).u32(c.reads.length);
        for (const r of c.reads) w.str(r.key).int(r.revision);
        w.u32(c.puts.length);
        for (const p of c.puts) w.str(p.key).int(p.ttlMs).bytes(p.value);
        w.u32(c.removes.length);
        for (const k of c.removes) w.str(k);
        return w.done();
      case 'expire':
        return w.int(c.now).done();
    }
  },
  decode(data) {
    const r = new Reader(Buffer.from(data.buffer, data.byteOffset, data.byteLength));
    const version = r.u8();
    if (version !== VERSION)
      throw new Error(`a properties command of version ${version}: this node knows ${VERSION}`);
    const type = r.u8();
    switch (type) {
      case TYPES.put: {
        const key = r.str();
        const ttlMs = r.int();
        const now = r.int();
        const expect = fromOptional(r.int());
        return { t: 'put', key, ttlMs, now, expect, value: r.bytes() };
      }
      case TYPES.del: {
        const key = r.str();
        return { t: 'del', key, expect: fromOptional(r.int()) };
      }
      case TYPES.txn: {
        const now = r.int();
        const reads = Array.from({ length: r.u32() }, () => ({ key: r.str(), revision: r.int() }));
        const puts = Array.from({ length: r.u32() }, () => ({
          key: r.str(),
          ttlMs: r.int(),
          value: r.bytes(),
        }));
        const removes = Array.from({ length: r.u32() }, () => r.str());
        return { t: 'txn', now, reads, puts, removes };
      }
      case TYPES.expire:
        return { t: 'expire', now: r.int() };
      default:
        throw new Error(`an unknown properties command type ${type}`);
    }
  },
};
