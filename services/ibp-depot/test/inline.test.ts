import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Depot } from '../src';
import { INLINE_MAX } from '../src/inline';
import { attrs, chunked, collect, openTestDepot, type TestDepot } from './helpers';

const idOf = (cap: string) => (cap.split('/')[3] as string).split('#')[0] as string;

describe('Depot: small BYTE_ARRAY areas inline in level', () => {
  let t: TestDepot;
  let depot: Depot;

  beforeEach(async () => {
    t = await openTestDepot();
    depot = t.depot;
  });
  afterEach(() => t.close());

  const store = (cap: string, data: string | Buffer) =>
    depot.store(cap, Buffer.byteLength(data), chunked(data, 3));
  const read = (cap: string, offset = 0, size = -1) =>
    collect(depot.read(cap, offset, size)).then((b) => b.toString());
  const dataKeys = async (id: string) => {
    const keys: string[] = [];
    for await (const k of t.store.keys({ gte: `dat!${id}!`, lt: `dat!${id}"` })) keys.push(String(k));
    return keys;
  };

  it('keeps the bytes of a STABLE store in the one synced batch that writes its record', async () => {
    const caps = await depot.allocate(4096, attrs('BYTE_ARRAY', 'STABLE'));
    const batch = jest.spyOn(t.store, 'batch');
    await store(caps.writeCap, 'durable bytes');
    const calls = batch.mock.calls as unknown as Array<[Array<{ key: string }>, { sync?: boolean }]>;
    batch.mockRestore();
    expect(calls).toHaveLength(1);
    const [ops, options] = calls[0] as [Array<{ key: string }>, { sync?: boolean }];
    expect(options.sync).toBe(true);
    const id = idOf(caps.readCap);
    expect(ops.map((o) => o.key.split('!')[0]).sort()).toEqual(['alloc', 'dat', 'sum']);
    // no file in either pool
    expect(readdirSync(join(t.dir, 'stable'))).toEqual([]);
    t = await t.reopen();
    depot = t.depot;
    expect(await read(caps.readCap)).toBe('durable bytes');
    expect(await dataKeys(id)).toHaveLength(1);
  });

  it('shows readers a STABLE store only once its batch is committed', async () => {
    const caps = await depot.allocate(100, attrs('BYTE_ARRAY', 'STABLE'));
    await store(caps.writeCap, 'old');
    // hold the store's synced batch until the reads below are done
    const original = t.store.batch.bind(t.store) as (...args: unknown[]) => Promise<void>;
    let open!: () => void;
    const gate = new Promise<void>((r) => {
      open = r;
    });
    let held = 0;
    const batch = jest.spyOn(t.store, 'batch').mockImplementation((async (...args: unknown[]) => {
      held++;
      await gate;
      return original(...args);
    }) as never);
    const storing = store(caps.writeCap, '+new');
    try {
      while (held === 0) await new Promise((r) => setImmediate(r));
      expect(await read(caps.readCap)).toBe('old');
      expect(await depot.verify(caps.readCap)).toEqual({ extents: 1, bytes: 3, corruptOffsets: [] });
    } finally {
      open();
      await storing;
      batch.mockRestore();
    }
    expect(await read(caps.readCap)).toBe('old+new');
  });

  it('answers a VOLATILE store readable at once, and keeps it across a clean restart', async () => {
    const caps = await depot.allocate(100, attrs('BYTE_ARRAY', 'VOLATILE'));
    await store(caps.writeCap, 'quick');
    expect(await read(caps.readCap)).toBe('quick');
    await store(caps.writeCap, ' and more');
    expect(await read(caps.readCap, 3, 6)).toBe('ck and');
    t = await t.reopen();
    depot = t.depot;
    expect(await read(caps.readCap)).toBe('quick and more');
  });

  it('moves an area grown past the inline limit into a file, bytes intact', async () => {
    const caps = await depot.allocate(100, attrs('BYTE_ARRAY', 'STABLE'));
    await store(caps.writeCap, 'first;');
    await store(caps.writeCap, 'second;');
    const id = idOf(caps.readCap);
    await depot.manage(caps.manageCap, 'CHNG', undefined, { size: INLINE_MAX + 1 });
    expect(existsSync(join(t.dir, 'stable', id))).toBe(true);
    expect(await dataKeys(id)).toEqual([]);
    await store(caps.writeCap, 'third');
    expect(await read(caps.readCap)).toBe('first;second;third');
    expect(await depot.verify(caps.readCap)).toEqual({ extents: 3, bytes: 18, corruptOffsets: [] });
    t = await t.reopen();
    depot = t.depot;
    expect(await read(caps.readCap)).toBe('first;second;third');
  });

  it('removes inline bytes no area owns at start-up, and extents past the end of an area', async () => {
    const caps = await depot.allocate(100, attrs('BYTE_ARRAY', 'STABLE'));
    await store(caps.writeCap, 'kept');
    const id = idOf(caps.readCap);
    const put = (key: string, value: string) =>
      t.store.put(key, Buffer.from(value) as never, { valueEncoding: 'buffer' } as never);
    // what a crash leaves: bytes of an area whose record never made it, a store whose record was lost
    await put(`dat!AAAAAAAAAAAAAAAAAAAAAA!${'0'.padStart(16, '0')}`, 'orphan');
    await put(`dat!${id}!${'4'.padStart(16, '0')}`, 'lost');
    t = await t.reopen();
    depot = t.depot;
    expect(await dataKeys('AAAAAAAAAAAAAAAAAAAAAA')).toEqual([]);
    expect(await dataKeys(id)).toHaveLength(1);
    expect(await read(caps.readCap)).toBe('kept');
    await store(caps.writeCap, '+new');
    expect(await read(caps.readCap)).toBe('kept+new');
  });

  it('drops the bytes with the area when it is freed', async () => {
    const caps = await depot.allocate(100, attrs('BYTE_ARRAY', 'STABLE'));
    await store(caps.writeCap, 'gone soon');
    await depot.manage(caps.manageCap, 'DECR', 'READ');
    expect(await dataKeys(idOf(caps.readCap))).toEqual([]);
  });

  it('moves a VOLATILE area into a file with one batch that names the file and drops the inline copy', async () => {
    const caps = await depot.allocate(100, attrs('BYTE_ARRAY', 'VOLATILE'));
    await store(caps.writeCap, 'volatile bytes');
    const id = idOf(caps.readCap);
    const batch = jest.spyOn(t.store, 'batch');
    await depot.manage(caps.manageCap, 'CHNG', undefined, { size: INLINE_MAX * 2 });
    expect(await read(caps.readCap)).toBe('volatile bytes');
    t = await t.reopen(); // a clean close flushes the VOLATILE record
    depot = t.depot;
    const calls = batch.mock.calls as unknown as Array<
      [Array<{ type: string; key: string; value?: string }>]
    >;
    batch.mockRestore();
    const together = calls.find(([ops]) =>
      ops.some((o) => o.type === 'del' && o.key.startsWith(`dat!${id}!`)),
    );
    expect(together).toBeDefined();
    const record = together?.[0].find((o) => o.key === `alloc!${id}`);
    expect(record && JSON.parse(record.value as string).inline).toBeUndefined();
    expect(await read(caps.readCap)).toBe('volatile bytes');
    expect(await dataKeys(id)).toEqual([]);
  });

  it('lets two CHNG growths race: one moves the area, both succeed', async () => {
    const caps = await depot.allocate(100, attrs('BYTE_ARRAY', 'STABLE'));
    await store(caps.writeCap, 'grow me');
    await Promise.all([
      depot.manage(caps.manageCap, 'CHNG', undefined, { size: INLINE_MAX + 10 }),
      depot.manage(caps.manageCap, 'CHNG', undefined, { size: INLINE_MAX + 20 }),
    ]);
    expect(await read(caps.readCap)).toBe('grow me');
    expect((await depot.manage(caps.manageCap, 'PROBE', undefined)).maxSize).toBe(INLINE_MAX + 20);
  });

  it('keeps an area inline at its old size when the move into a file fails', async () => {
    const caps = await depot.allocate(100, attrs('BYTE_ARRAY', 'STABLE'));
    await store(caps.writeCap, 'stays');
    const used = depot.status().stable.used;
    mkdirSync(join(t.dir, 'stable', idOf(caps.readCap))); // the file cannot be made: a directory is in the way
    await expect(depot.manage(caps.manageCap, 'CHNG', undefined, { size: INLINE_MAX + 1 })).rejects.toThrow();
    expect((await depot.manage(caps.manageCap, 'PROBE', undefined)).maxSize).toBe(100);
    expect(depot.status().stable.used).toBe(used);
    expect(await read(caps.readCap)).toBe('stays');
  });

  it('answers reads at once after a store whose area is made VOLATILE while its bytes arrive (the CHNG waits for it)', async () => {
    const caps = await depot.allocate(100, attrs('BYTE_ARRAY', 'STABLE'));
    let go!: () => void;
    const gate = new Promise<void>((r) => {
      go = r;
    });
    async function* slow() {
      yield Buffer.from('first half,');
      await gate;
      yield Buffer.from(' second half');
    }
    const storing = depot.store(caps.writeCap, 23, slow());
    await new Promise((r) => setTimeout(r, 10));
    const changing = depot.manage(caps.manageCap, 'CHNG', undefined, {
      attributes: { reliability: 'VOLATILE' },
    });
    go();
    await storing;
    expect((await changing).attributes.reliability).toBe('VOLATILE');
    expect(await read(caps.readCap)).toBe('first half, second half');
    expect(await depot.verify(caps.readCap)).toEqual({ extents: 1, bytes: 23, corruptOffsets: [] });
  });

  it('reports a missing inline extent as corrupt in Verify', async () => {
    const caps = await depot.allocate(100, attrs('BYTE_ARRAY', 'STABLE'));
    await store(caps.writeCap, 'one;');
    await store(caps.writeCap, 'two');
    const id = idOf(caps.readCap);
    await t.store.del(`dat!${id}!${String(4).padStart(16, '0')}`);
    expect(await depot.verify(caps.readCap)).toEqual({ extents: 2, bytes: 7, corruptOffsets: [4] });
  });
});
