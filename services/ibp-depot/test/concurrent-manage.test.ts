import type { Depot } from '../src';
import { attrs, chunked, collect, failure, openTestDepot, type TestDepot } from './helpers';

/** Bytes that arrive only when `open()` is called: a store held in flight. */
function gated(data: Buffer) {
  let open!: () => void;
  const gate = new Promise<void>((r) => {
    open = r;
  });
  async function* chunks(): AsyncGenerator<Buffer> {
    yield data.subarray(0, 1);
    await gate;
    yield data.subarray(1);
  }
  return { chunks: chunks(), open };
}

describe('Depot: manage and free while a store is in flight', () => {
  let t: TestDepot;
  let depot: Depot;

  beforeEach(async () => {
    t = await openTestDepot();
    depot = t.depot;
  });
  afterEach(() => t.close());

  it.each([
    ['inline', 64],
    ['file', 256 * 1024],
  ])('a VOLATILE %s area freed during a store stays gone after a restart', async (_, size) => {
    const caps = await depot.allocate(size, attrs('BYTE_ARRAY', 'VOLATILE'));
    const g = gated(Buffer.from('12345'));
    const storing = depot.store(caps.writeCap, 5, g.chunks).catch((err: unknown) => err);
    await new Promise((r) => setTimeout(r, 20));
    await depot.manage(caps.manageCap, 'DECR', 'READ');
    g.open();
    await storing;
    t = await t.reopen();
    depot = t.depot;
    expect((await failure(depot.manage(caps.manageCap, 'PROBE', undefined))).code).toBe(5); // NOT_FOUND
  });

  it('a CHNG that shrinks the area waits for the store in flight, and then cannot go below it', async () => {
    const caps = await depot.allocate(1024 * 1024, attrs('BYTE_ARRAY', 'STABLE'));
    const g = gated(Buffer.alloc(2000, 7));
    const storing = depot.store(caps.writeCap, 2000, g.chunks);
    await new Promise((r) => setTimeout(r, 20));
    const shrinking = failure(depot.manage(caps.manageCap, 'CHNG', undefined, { size: 1 }));
    g.open();
    await storing;
    expect((await shrinking).code).toBe(3); // INVALID_ARGUMENT: below the bytes stored
    const probe = await depot.manage(caps.manageCap, 'PROBE', undefined);
    expect({ size: probe.currentSize, max: probe.maxSize }).toEqual({ size: 2000, max: 1024 * 1024 });
  });

  it.each(['BYTE_ARRAY', 'FIFO', 'BUFFER'] as const)(
    'a %s store whose record cannot be written leaves the area as it was',
    async (type) => {
      const caps = await depot.allocate(512 * 1024, attrs(type, 'STABLE'));
      await depot.store(caps.writeCap, 3, chunked('old'));
      const batch = jest.spyOn(t.store, 'batch').mockRejectedValueOnce(new Error('disk full') as never);
      await expect(depot.store(caps.writeCap, 100_000, chunked(Buffer.alloc(100_000, 1)))).rejects.toThrow();
      batch.mockRestore();
      const probe = await depot.manage(caps.manageCap, 'PROBE', undefined);
      expect(probe.currentSize).toBe(3);
      // and the next store goes where the failed one would have
      await depot.store(caps.writeCap, 3, chunked('new'));
      const size = (await depot.manage(caps.manageCap, 'PROBE', undefined)).currentSize;
      expect(size).toBe(type === 'BUFFER' ? 3 : 6);
      const all = (await collect(depot.read(caps.readCap, 0, size))).toString();
      expect(all).toBe(type === 'BUFFER' ? 'new' : 'oldnew');
    },
  );
});
