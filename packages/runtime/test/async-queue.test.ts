import { AsyncQueue } from '../src';

describe('AsyncQueue', () => {
  it('ends a consumer with RESOURCE_EXHAUSTED beyond its byte budget, counting what it has taken out', async () => {
    const q = new AsyncQueue<Buffer>(1000, 'too many', { max: 10, sizeOf: (b) => b.length });
    q.push(Buffer.alloc(4));
    q.push(Buffer.alloc(4));
    const it = q.drain();
    expect((await it.next()).value).toHaveLength(4); // 4 bytes waiting now
    q.push(Buffer.alloc(6)); // 10: fits
    q.push(Buffer.alloc(1)); // 11: over
    await expect(it.next()).rejects.toMatchObject({ code: 8 });
  });

  it('takes one item larger than the budget when nothing else waits', async () => {
    const q = new AsyncQueue<Buffer>(1000, 'too many', { max: 10, sizeOf: (b) => b.length });
    q.push(Buffer.alloc(50));
    q.end();
    const got = [];
    for await (const b of q.drain()) got.push(b.length);
    expect(got).toEqual([50]);
  });
});
