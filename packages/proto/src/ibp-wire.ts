import { BinaryReader } from '@bufbuild/protobuf/wire';
import { makeGenericClientConstructor } from '@grpc/grpc-js';
import {
  type DepotServiceClient,
  DepotServiceService,
  type ReadResponse,
  type StoreRequest,
} from './gen/backplane/ibp/v1/ibp';

/**
 * Hand-written codecs for the two bulk messages of the IBP depot, byte-for-byte the same protobuf as the
 * generated ones (tests compare them), minus the copies: the generated encoder copies a chunk into its
 * writer and again into a Buffer, the generated decoder copies it out of the frame. At 1 MiB per message
 * those copies and the garbage they leave dominated transfer time.
 */

function varintLength(n: number): number {
  let len = 1;
  while (n > 127) {
    n = Math.floor(n / 128);
    len++;
  }
  return len;
}

function putVarint(buf: Buffer, at: number, n: number): number {
  while (n > 127) {
    buf[at++] = (n & 127) | 128;
    n = Math.floor(n / 128);
  }
  buf[at++] = n;
  return at;
}

function lengthDelimited(payload: Buffer): number {
  return payload.length === 0 ? 0 : 1 + varintLength(payload.length) + payload.length;
}

/** Bytes reserved before and after a chunk made by bufferWithRoom(): a tag and a varint length, a crc32 field. */
const HEAD_ROOM = 6;
const TAIL_ROOM = 6;
const roomy = new WeakSet<Buffer>();

/**
 * A buffer of `length` bytes with private room around it, so encodeReadResponse() can frame it in place
 * instead of copying it. Fill it, then send it as ReadResponse.data.
 */
export function bufferWithRoom(length: number): Buffer {
  const whole = Buffer.allocUnsafe(HEAD_ROOM + length + TAIL_ROOM);
  const data = whole.subarray(HEAD_ROOM, HEAD_ROOM + length);
  roomy.add(data);
  return data;
}

/** Frames a bufferWithRoom() chunk where it lies: the message shares its memory. */
function encodeInPlace(data: Buffer, crc: number): Buffer {
  const whole = Buffer.from(data.buffer, data.byteOffset - HEAD_ROOM, HEAD_ROOM + data.length + TAIL_ROOM);
  const head = 1 + varintLength(data.length);
  let at = HEAD_ROOM - head;
  const start = at;
  whole[at++] = 0x0a;
  putVarint(whole, at, data.length);
  let end = HEAD_ROOM + data.length;
  if (crc !== 0) {
    whole[end++] = 0x10;
    end = putVarint(whole, end, crc);
  }
  return whole.subarray(start, end);
}

/** ReadResponse { bytes data = 1; uint32 crc32 = 2; } in one allocation and one copy (none for bufferWithRoom()). */
export function encodeReadResponse(m: ReadResponse): Buffer {
  if (m.data.length > 0 && roomy.has(m.data)) return encodeInPlace(m.data, m.crc32 >>> 0);
  const crc = m.crc32 >>> 0;
  const size = lengthDelimited(m.data) + (crc === 0 ? 0 : 1 + varintLength(crc));
  const out = Buffer.allocUnsafe(size);
  let at = 0;
  if (m.data.length > 0) {
    out[at++] = 0x0a;
    at = putVarint(out, at, m.data.length);
    at += m.data.copy(out, at);
  }
  if (crc !== 0) {
    out[at++] = 0x10;
    putVarint(out, at, crc);
  }
  return out;
}

/** ReadResponse without copying `data` out of the received frame. */
export function decodeReadResponse(buf: Buffer): ReadResponse {
  const r = new BinaryReader(buf);
  const m: ReadResponse = { data: Buffer.alloc(0), crc32: 0 };
  while (r.pos < r.len) {
    const [field, wire] = r.tag();
    if (field === 1 && wire === 2) {
      const len = r.uint32();
      if (r.pos + len > r.len) throw new RangeError('premature EOF');
      m.data = buf.subarray(r.pos, r.pos + len);
      r.pos += len;
    } else if (field === 2 && wire === 0) m.crc32 = r.uint32();
    else r.skip(wire);
  }
  return m;
}

/** StoreRequest { string write_cap = 1; uint64 size = 2; bytes data = 3; optional uint32 crc32 = 4; }. */
export function encodeStoreRequest(m: StoreRequest): Buffer {
  const cap = Buffer.from(m.writeCap, 'utf8');
  const size =
    lengthDelimited(cap) +
    (m.size === 0 ? 0 : 1 + varintLength(m.size)) +
    lengthDelimited(m.data) +
    (m.crc32 === undefined ? 0 : 1 + varintLength(m.crc32 >>> 0));
  const out = Buffer.allocUnsafe(size);
  let at = 0;
  if (cap.length > 0) {
    out[at++] = 0x0a;
    at = putVarint(out, at, cap.length);
    at += cap.copy(out, at);
  }
  if (m.size !== 0) {
    out[at++] = 0x10;
    at = putVarint(out, at, m.size);
  }
  if (m.data.length > 0) {
    out[at++] = 0x1a;
    at = putVarint(out, at, m.data.length);
    at += m.data.copy(out, at);
  }
  if (m.crc32 !== undefined) {
    out[at++] = 0x20;
    putVarint(out, at, m.crc32 >>> 0);
  }
  return out;
}

/** StoreRequest without copying `data` out of the received frame. Malformed input throws. */
export function decodeStoreRequest(buf: Buffer): StoreRequest {
  const r = new BinaryReader(buf);
  const m: StoreRequest = { writeCap: '', size: 0, data: Buffer.alloc(0), crc32: undefined };
  while (r.pos < r.len) {
    const [field, wire] = r.tag();
    if (field === 1 && wire === 2) m.writeCap = r.string();
    else if (field === 2 && wire === 0) m.size = Number(r.uint64());
    else if (field === 3 && wire === 2) {
      const len = r.uint32();
      if (r.pos + len > r.len) throw new RangeError('premature EOF');
      m.data = buf.subarray(r.pos, r.pos + len);
      r.pos += len;
    } else if (field === 4 && wire === 0) m.crc32 = r.uint32();
    else r.skip(wire);
  }
  return m;
}

/** DepotServiceService with the bulk codecs swapped in; use it for servers and clients alike. */
export const FastDepotServiceService = {
  ...DepotServiceService,
  store: {
    ...DepotServiceService.store,
    requestSerialize: encodeStoreRequest,
    requestDeserialize: decodeStoreRequest,
  },
  read: {
    ...DepotServiceService.read,
    responseSerialize: encodeReadResponse,
    responseDeserialize: decodeReadResponse,
  },
  // ReadSmallResponse has ReadResponse's fields and numbers
  readSmall: {
    ...DepotServiceService.readSmall,
    responseSerialize: encodeReadResponse,
    responseDeserialize: decodeReadResponse,
  },
} as const satisfies typeof DepotServiceService;

/** A DepotServiceClient that uses the bulk codecs. */
export const FastDepotServiceClient = makeGenericClientConstructor(
  FastDepotServiceService,
  'backplane.ibp.v1.DepotService',
) as unknown as typeof DepotServiceClient;
