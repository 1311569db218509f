import { ReadResponse, StoreRequest } from '../src/gen/backplane/ibp/v1/ibp';
import {
  bufferWithRoom,
  decodeReadResponse,
  decodeStoreRequest,
  encodeReadResponse,
  encodeStoreRequest,
} from '../src/ibp-wire';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

describe('IBP bulk codecs', () => {
  const big = Buffer.alloc(300_000, 9);
  const reads: ReadResponse[] = [
    { data: Buffer.from('abc'), crc32: 0xdeadbeef },
    { data: Buffer.alloc(0), crc32: 0 },
    { data: big, crc32: 1 },
    { data: Buffer.from('x'), crc32: 0 },
  ];
  const stores: StoreRequest[] = [
    { writeCap: 'ibp://h:1/x#y/WRITE', size: 2 ** 40, data: Buffer.from('abc'), crc32: 5 },
    { writeCap: '', size: 0, data: big, crc32: undefined },
    { writeCap: '', size: 0, data: Buffer.alloc(0), crc32: 0 },
  ];

  it('encodes exactly what the generated code encodes', () => {
    for (const m of reads) expect(hex(encodeReadResponse(m))).toBe(hex(ReadResponse.encode(m).finish()));
    for (const m of stores) expect(hex(encodeStoreRequest(m))).toBe(hex(StoreRequest.encode(m).finish()));
  });

  it('decodes what the generated code encodes, without copying the data', () => {
    for (const m of reads) {
      const wire = Buffer.from(ReadResponse.encode(m).finish());
      const back = decodeReadResponse(wire);
      expect(hex(back.data)).toBe(hex(m.data));
      expect(back.crc32).toBe(m.crc32);
      if (m.data.length > 0) expect(back.data.buffer).toBe(wire.buffer);
    }
    for (const m of stores) {
      const back = decodeStoreRequest(Buffer.from(StoreRequest.encode(m).finish()));
      expect(back).toMatchObject({ writeCap: m.writeCap, size: m.size, crc32: m.crc32 });
      expect(hex(back.data)).toBe(hex(m.data));
    }
  });

  it('frames a chunk with room around it in place, with the same bytes', () => {
    for (const [len, crc] of [
      [1, 0],
      [200, 7],
      [300_000, 0xffffffff],
    ] as const) {
      const data = bufferWithRoom(len);
      data.fill(3);
      const expected = hex(ReadResponse.encode({ data: Buffer.from(data), crc32: crc }).finish());
      const framed = encodeReadResponse({ data, crc32: crc });
      expect(hex(framed)).toBe(expected);
      expect(framed.buffer).toBe(data.buffer);
    }
  });

  it('throws on truncated input', () => {
    const wire = encodeStoreRequest({ writeCap: 'c', size: 3, data: Buffer.from('abc'), crc32: 1 });
    expect(() => decodeStoreRequest(wire.subarray(0, wire.length - 4))).toThrow();
    expect(() =>
      decodeReadResponse(encodeReadResponse({ data: Buffer.from('abcdef'), crc32: 0 }).subarray(0, 4)),
    ).toThrow();
  });
});
