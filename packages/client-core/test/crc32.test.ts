import { crc32 } from 'node:zlib';
import { crc32Combine } from '../src';

describe('crc32Combine', () => {
  it('gives the CRC-32 of the concatenation', () => {
    const a = Buffer.from('hello, ');
    const b = Buffer.alloc(1_000_003, 7);
    expect(crc32Combine(crc32(a), crc32(b), b.length)).toBe(crc32(Buffer.concat([a, b])));
    expect(crc32Combine(0, crc32(b), b.length)).toBe(crc32(b));
    expect(crc32Combine(crc32(a), 0, 0)).toBe(crc32(a));
    let running = 0;
    for (const part of ['x', 'yz', '', 'abc'.repeat(1000)])
      running = crc32Combine(running, crc32(part), Buffer.byteLength(part));
    expect(running).toBe(crc32(`xyz${'abc'.repeat(1000)}`));
  });
});
