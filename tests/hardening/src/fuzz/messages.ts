import { type DescEnum, type DescField, type DescMessage, ScalarType } from '@bufbuild/protobuf';
import { hostileBytes, hostileDouble, hostileInteger, hostileString } from './hostile';
import type { Random } from './random';
import { Wire, zigzag } from './wire';

/** Known-good values by proto field name (e.g. `read_cap`), so some inputs get past the first check. */
export type Corpus = Map<string, string[]>;

const MAX_DEPTH = 4;
/** Requests above this many bytes are not grown further (the servers accept 8 MiB). */
const SIZE_BUDGET = 3 * 1024 * 1024;

function isVarint(t: ScalarType): boolean {
  return [
    ScalarType.INT32,
    ScalarType.INT64,
    ScalarType.UINT32,
    ScalarType.UINT64,
    ScalarType.BOOL,
    ScalarType.SINT32,
    ScalarType.SINT64,
  ].includes(t);
}

function fixed(rng: Random, bytes: 4 | 8, floating: boolean): Buffer {
  const b = Buffer.alloc(bytes);
  if (floating) {
    const v = hostileDouble(rng);
    if (bytes === 4) b.writeFloatLE(v);
    else b.writeDoubleLE(v);
  } else if (bytes === 4) {
    b.writeUInt32LE(Number(BigInt.asUintN(32, hostileInteger(rng))));
  } else {
    b.writeBigUInt64LE(BigInt.asUintN(64, hostileInteger(rng)));
  }
  return b;
}

function enumValue(rng: Random, e: DescEnum): bigint {
  if (rng.chance(0.75)) return BigInt(rng.pick(e.values).number);
  return rng.pick([-1n, 99n, 2n ** 31n - 1n, BigInt(e.values.length)]);
}

/**
 * Builds structurally valid but hostile encodings of any message: every field may be missing, at an
 * edge value, huge, repeated thousands of times, invalid UTF-8, of the wrong wire type, or followed by
 * unknown fields; messages that contain themselves are sometimes nested thousands deep.
 */
export class MessageFuzzer {
  constructor(
    private readonly rng: Random,
    private readonly corpus: Corpus = new Map(),
  ) {}

  message(desc: DescMessage, depth = 0, budget = { left: SIZE_BUDGET }): Buffer {
    const rng = this.rng;
    const w = new Wire();
    const oneofsSet = new Set<string>();
    for (const field of desc.fields) {
      if (budget.left <= 0) break;
      const present = depth === 0 ? rng.chance(0.75) : rng.chance(0.5);
      if (!present) continue;
      if (field.oneof && oneofsSet.has(field.oneof.name) && !rng.chance(0.1)) continue;
      if (field.oneof) oneofsSet.add(field.oneof.name);
      const before = w.size;
      if (rng.chance(0.02)) this.wrongWireType(w, field.number);
      else this.field(w, field, depth, budget);
      budget.left -= w.size - before;
    }
    if (rng.chance(0.05)) this.unknownFields(w);
    if (depth === 0 && rng.chance(0.01)) return this.deepNest(desc) ?? w.finish();
    return w.finish();
  }

  /** Flips, cuts or extends an encoding: the bytes are no longer a well-formed message. */
  mangle(bytes: Buffer): Buffer {
    const rng = this.rng;
    const b = Buffer.from(bytes);
    switch (rng.int(4)) {
      case 0:
        for (let i = 0; i < 1 + rng.int(4) && b.length > 0; i += 1) b[rng.int(b.length)] = rng.int(256);
        return b;
      case 1:
        return b.subarray(0, rng.int(b.length + 1));
      case 2:
        return Buffer.concat([b, rng.bytes(1 + rng.int(16))]);
      default:
        // a length prefix claiming far more bytes than follow
        return Buffer.concat([b, Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]), rng.bytes(3)]);
    }
  }

  private field(w: Wire, field: DescField, depth: number, budget: { left: number }): void {
    const rng = this.rng;
    switch (field.fieldKind) {
      case 'scalar':
        this.scalar(w, field.number, field.scalar, field.name);
        return;
      case 'enum':
        w.tag(field.number, 0).varint(enumValue(rng, field.enum));
        return;
      case 'message':
        if (depth < MAX_DEPTH)
          w.lengthDelimited(field.number, this.message(field.message, depth + 1, budget));
        else w.lengthDelimited(field.number, Buffer.alloc(0));
        return;
      case 'list': {
        const count = rng.chance(0.04) ? 500 + rng.int(10_000) : rng.int(4);
        if (
          field.listKind === 'scalar' &&
          field.scalar !== ScalarType.STRING &&
          field.scalar !== ScalarType.BYTES
        ) {
          if (isVarint(field.scalar) && rng.chance(0.5)) {
            const packed = new Wire();
            for (let i = 0; i < count; i += 1) packed.varint(hostileInteger(rng));
            w.lengthDelimited(field.number, packed.finish());
            return;
          }
        }
        for (let i = 0; i < count && budget.left > 0; i += 1) {
          const before = w.size;
          if (field.listKind === 'scalar')
            this.scalar(w, field.number, field.scalar, field.name, count > 100);
          else if (field.listKind === 'enum') w.tag(field.number, 0).varint(enumValue(rng, field.enum));
          else if (depth < MAX_DEPTH)
            w.lengthDelimited(field.number, this.message(field.message, depth + 1, budget));
          budget.left -= w.size - before;
        }
        return;
      }
      case 'map': {
        const count = rng.chance(0.04) ? 200 + rng.int(5000) : rng.int(4);
        for (let i = 0; i < count && budget.left > 0; i += 1) {
          const entry = new Wire();
          this.scalar(entry, 1, field.mapKey, `${field.name}.key`, true);
          if (field.mapKind === 'scalar') this.scalar(entry, 2, field.scalar, `${field.name}.value`, true);
          else if (field.mapKind === 'enum') entry.tag(2, 0).varint(enumValue(rng, field.enum));
          else if (depth < MAX_DEPTH)
            entry.lengthDelimited(2, this.message(field.message, depth + 1, budget));
          const bytes = entry.finish();
          budget.left -= bytes.length;
          w.lengthDelimited(field.number, bytes);
        }
        return;
      }
    }
  }

  private scalar(w: Wire, no: number, type: ScalarType, name: string, small = false): void {
    const rng = this.rng;
    switch (type) {
      case ScalarType.STRING:
        w.lengthDelimited(no, hostileString(rng, this.corpus.get(name), !small));
        return;
      case ScalarType.BYTES:
        w.lengthDelimited(no, hostileBytes(rng, !small));
        return;
      case ScalarType.DOUBLE:
        w.fixed64(no, fixed(rng, 8, true));
        return;
      case ScalarType.FLOAT:
        w.fixed32(no, fixed(rng, 4, true));
        return;
      case ScalarType.FIXED32:
      case ScalarType.SFIXED32:
        w.fixed32(no, fixed(rng, 4, false));
        return;
      case ScalarType.FIXED64:
      case ScalarType.SFIXED64:
        w.fixed64(no, fixed(rng, 8, false));
        return;
      case ScalarType.SINT32:
      case ScalarType.SINT64:
        w.tag(no, 0).varint(zigzag(hostileInteger(rng)));
        return;
      case ScalarType.BOOL:
        w.tag(no, 0).varint(rng.chance(0.9) ? BigInt(rng.int(2)) : rng.pick([2n, 2n ** 63n]));
        return;
      default:
        w.tag(no, 0).varint(hostileInteger(rng));
    }
  }

  private wrongWireType(w: Wire, no: number): void {
    const rng = this.rng;
    const t = rng.int(4);
    if (t === 0) w.tag(no, 0).varint(hostileInteger(rng));
    else if (t === 1) w.lengthDelimited(no, rng.bytes(rng.int(32)));
    else if (t === 2) w.fixed32(no, rng.bytes(4));
    else w.fixed64(no, rng.bytes(8));
  }

  private unknownFields(w: Wire): void {
    const rng = this.rng;
    for (let i = 0; i < 1 + rng.int(3); i += 1) {
      const no = 1000 + rng.int(100_000);
      if (rng.chance(0.5)) w.tag(no, 0).varint(hostileInteger(rng));
      else w.lengthDelimited(no, rng.bytes(rng.int(64)));
    }
  }

  /** A message field that leads back to `desc`, nested a few thousand times (stack depth attacks). */
  private deepNest(desc: DescMessage): Buffer | undefined {
    const path = findSelfPath(desc, new Set());
    if (!path) return undefined;
    let inner: Buffer = Buffer.alloc(0);
    const levels = 100 + this.rng.int(5000);
    for (let i = 0; i < levels && inner.length < SIZE_BUDGET; i += 1) {
      for (const field of [...path].reverse())
        inner = new Wire().lengthDelimited(field.number, inner).finish();
    }
    return inner;
  }
}

/** The chain of message fields from `desc` back to itself, if the message is recursive. */
function findSelfPath(
  start: DescMessage,
  seen: Set<string>,
  at: DescMessage = start,
): DescField[] | undefined {
  for (const f of at.fields) {
    const child =
      f.fieldKind === 'message' || (f.fieldKind === 'list' && f.listKind === 'message')
        ? f.message
        : undefined;
    if (!child) continue;
    if (child.typeName === start.typeName) return [f];
    if (seen.has(child.typeName)) continue;
    seen.add(child.typeName);
    const rest = findSelfPath(start, seen, child);
    if (rest) return [f, ...rest];
  }
  return undefined;
}
