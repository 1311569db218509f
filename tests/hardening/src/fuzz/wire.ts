/** A minimal protobuf wire writer that, unlike a real encoder, writes any value into any field. */
export class Wire {
  private chunks: Buffer[] = [];
  private length = 0;

  get size(): number {
    return this.length;
  }

  private push(b: Buffer): this {
    this.chunks.push(b);
    this.length += b.length;
    return this;
  }

  /** A varint of any 64-bit value (negative numbers as two's complement, 10 bytes). */
  varint(value: bigint): this {
    let v = BigInt.asUintN(64, value);
    const out: number[] = [];
    while (v >= 0x80n) {
      out.push(Number(v & 0x7fn) | 0x80);
      v >>= 7n;
    }
    out.push(Number(v));
    return this.push(Buffer.from(out));
  }

  tag(field: number, wireType: number): this {
    return this.varint(BigInt((field << 3) | wireType));
  }

  lengthDelimited(field: number, data: Buffer): this {
    this.tag(field, 2).varint(BigInt(data.length));
    return this.push(data);
  }

  fixed32(field: number, data: Buffer): this {
    return this.tag(field, 5).push(data);
  }

  fixed64(field: number, data: Buffer): this {
    return this.tag(field, 1).push(data);
  }

  raw(data: Buffer): this {
    return this.push(data);
  }

  finish(): Buffer {
    return Buffer.concat(this.chunks, this.length);
  }
}

export function zigzag(v: bigint): bigint {
  return BigInt.asUintN(64, (v << 1n) ^ (v >> 63n));
}
