import { closeSync, existsSync, openSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { BackplaneError } from '@backplane/runtime';
import { status } from '@grpc/grpc-js';
import type { Depot } from '../src';
import { attrs, chunked, collect, failure, KB, openTestDepot, type TestDepot } from './helpers';

// every case runs twice: small BYTE_ARRAY areas with their data in level (the default), and every area in files
describe.each([
  ['small byte arrays inline', undefined],
  ['every area in files', 0],
])('Depot (%s)', (_mode, inlineMaxBytes) => {
  let t: TestDepot;
  let depot: Depot;

  beforeEach(async () => {
    t = await openTestDepot({ inlineMaxBytes });
    depot = t.depot;
  });
  afterEach(() => t.close());

  const store = (cap: string, data: string | Buffer) =>
    depot.store(cap, Buffer.byteLength(data), chunked(data, 3));
  const read = (cap: string, offset = 0, size = -1, signal?: AbortSignal) =>
    collect(depot.read(cap, offset, size, signal)).then((b) => b.toString());

  it('issues capability URLs and keeps only hashes of their keys', async () => {
    const caps = await depot.allocate(100, attrs('BYTE_ARRAY'));
    for (const [cap, kind] of [
      [caps.readCap, 'READ'],
      [caps.writeCap, 'WRITE'],
      [caps.manageCap, 'MANAGE'],
    ] as const) {
      expect(cap).toMatch(
        new RegExp(`^ibp://127\\.0\\.0\\.1:6714/[A-Za-z0-9_-]{22}#[A-Za-z0-9_-]{43}/${kind}$`),
      );
    }
    const dump: string[] = [];
    for await (const [, v] of t.store.iterator()) dump.push(v);
    const keys = [caps.readCap, caps.writeCap, caps.manageCap].map(
      (c) => (c.split('#')[1] as string).split('/')[0] as string,
    );
    for (const key of keys) expect(dump.join('\n')).not.toContain(key);
  });

  it('appends to a BYTE_ARRAY and reads any range of it', async () => {
    const caps = await depot.allocate(100, attrs('BYTE_ARRAY'));
    await store(caps.writeCap, 'hello');
    const r = await store(caps.writeCap, ' world');
    expect(r).toMatchObject({ stored: 6, currentSize: 11 });
    expect(await read(caps.readCap)).toBe('hello world');
    expect(await read(caps.readCap, 6, 5)).toBe('world');
    expect(await read(caps.readCap, 11, -1)).toBe('');
    expect((await failure(read(caps.readCap, 12))).reason).toBe('IBP_E_INV_PAR_OFFSET');
    expect((await failure(read(caps.readCap, 6, 6))).code).toBe(status.INVALID_ARGUMENT);
  });

  it('overwrites a BUFFER from the start', async () => {
    const caps = await depot.allocate(100, attrs('BUFFER'));
    await store(caps.writeCap, 'hello world');
    await store(caps.writeCap, 'bye');
    expect(await read(caps.readCap)).toBe('bye');
  });

  it('refuses a store past the limit with nothing partially applied', async () => {
    const caps = await depot.allocate(10, attrs('BYTE_ARRAY'));
    await store(caps.writeCap, '123456');
    const err = await failure(store(caps.writeCap, 'abcdef'));
    expect(err).toMatchObject({ code: status.RESOURCE_EXHAUSTED, reason: 'IBP_E_WOULD_EXCEED_LIMIT' });
    expect(await read(caps.readCap)).toBe('123456');
    // a stream shorter or longer than announced changes nothing either
    expect((await failure(depot.store(caps.writeCap, 4, chunked('ab')))).code).toBe(status.INVALID_ARGUMENT);
    expect((await failure(depot.store(caps.writeCap, 1, chunked('ab')))).code).toBe(status.INVALID_ARGUMENT);
    expect(await read(caps.readCap)).toBe('123456');
    const buf = await depot.allocate(4, attrs('BUFFER'));
    await store(buf.writeCap, 'keep');
    expect((await failure(depot.store(buf.writeCap, 4, chunked('xy')))).code).toBe(status.INVALID_ARGUMENT);
    expect(await read(buf.readCap)).toBe('keep');
  });

  it('consumes a FIFO in order and ignores the offset', async () => {
    const caps = await depot.allocate(8, attrs('FIFO'));
    await store(caps.writeCap, 'abc');
    await store(caps.writeCap, 'defgh');
    expect((await failure(store(caps.writeCap, 'i'))).code).toBe(status.RESOURCE_EXHAUSTED);
    expect(await read(caps.readCap, 99, 4)).toBe('abcd');
    await store(caps.writeCap, 'ijk'); // wraps around the ring
    expect(await read(caps.readCap, 0, 7)).toBe('efghijk');
  });

  it('blocks a FIFO read until a later store supplies the bytes, and honours the deadline', async () => {
    const caps = await depot.allocate(16, attrs('FIFO'));
    const pending = read(caps.readCap, 0, 5);
    await new Promise((r) => setTimeout(r, 50));
    await store(caps.writeCap, 'ab');
    await store(caps.writeCap, 'cdef');
    expect(await pending).toBe('abcde');
    // the signal a call's deadline aborts (the runtime's CallContext), 100 ms from now
    const deadline = new AbortController();
    setTimeout(() => deadline.abort(BackplaneError.of('TIMEOUT', 'deadline exceeded')), 100);
    const started = Date.now();
    const err = await failure(read(caps.readCap, 0, 10, deadline.signal));
    expect(err.code).toBe(status.DEADLINE_EXCEEDED);
    expect(Date.now() - started).toBeGreaterThanOrEqual(90);
    expect(Date.now() - started).toBeLessThan(2000);
    // the timed-out read consumed nothing
    expect(await read(caps.readCap, 0, 1)).toBe('f');
  });

  it('queues FIFO readers and writers in arrival order, each honouring its own deadline', async () => {
    const caps = await depot.allocate(16, attrs('FIFO'));
    const first = read(caps.readCap, 0, 3);
    const second = read(caps.readCap, 0, 3);
    await new Promise((r) => setTimeout(r, 20));
    await store(caps.writeCap, 'abcdef');
    expect([await first, await second]).toEqual(['abc', 'def']);
    // a writer queued behind a slow one gives up at its deadline and writes nothing
    const slow = (async function* () {
      await new Promise((r) => setTimeout(r, 300));
      yield Buffer.from('slow');
    })();
    const holding = depot.store(caps.writeCap, 4, slow);
    await new Promise((r) => setTimeout(r, 20));
    const queued = depot.store(caps.writeCap, 4, chunked('late'), AbortSignal.timeout(50));
    await expect(queued).rejects.toBeDefined();
    await holding;
    expect(await read(caps.readCap, 0, 4)).toBe('slow');
  });

  it('lets a CIRCULAR_QUEUE overwrite its oldest bytes', async () => {
    const caps = await depot.allocate(8, attrs('CIRCULAR_QUEUE'));
    await store(caps.writeCap, '12345678');
    await store(caps.writeCap, 'ab');
    expect(await read(caps.readCap, 0, -1)).toBe('345678ab');
    await store(caps.writeCap, 'xyz');
    expect(await read(caps.readCap, 0, 2)).toBe('xy');
    expect(await read(caps.readCap)).toBe('z');
    expect((await failure(store(caps.writeCap, '123456789'))).code).toBe(status.RESOURCE_EXHAUSTED);
  });

  it('refuses capabilities of the wrong kind, forged and truncated ones', async () => {
    const caps = await depot.allocate(10, attrs('BYTE_ARRAY'));
    expect(await failure(store(caps.readCap, 'x'))).toMatchObject({
      code: status.FAILED_PRECONDITION,
      reason: 'IBP_E_WRONG_CAP_TYPE',
    });
    expect((await failure(read(caps.writeCap))).code).toBe(status.FAILED_PRECONDITION);
    expect((await failure(depot.manage(caps.readCap, 'PROBE', undefined))).code).toBe(
      status.FAILED_PRECONDITION,
    );
    const forged = caps.readCap.replace(/#[^/]+/, `#${'A'.repeat(43)}`);
    expect(await failure(read(forged))).toMatchObject({
      code: status.NOT_FOUND,
      reason: 'IBP_E_CAP_NOT_FOUND',
    });
    expect((await failure(read(caps.readCap.slice(0, -10)))).code).toBe(status.INVALID_ARGUMENT);
    expect((await failure(read(''))).code).toBe(status.INVALID_ARGUMENT);
    expect((await failure(read('ibp://x:1/zz#yy/READ'))).code).toBe(status.INVALID_ARGUMENT);
  });

  it('manages reference counts: the read count reaching 0 frees the space', async () => {
    const caps = await depot.allocate(1000, attrs('BYTE_ARRAY'));
    await store(caps.writeCap, 'data');
    const probe = await depot.manage(caps.manageCap, 'PROBE', undefined);
    expect(probe).toMatchObject({
      readRefCount: 1,
      writeRefCount: 1,
      currentSize: 4,
      maxSize: 1000,
      timeLeft: -1,
    });
    expect(depot.status().stable.used).toBe(1000);
    await depot.manage(caps.manageCap, 'INCR', 'READ');
    await depot.manage(caps.manageCap, 'DECR', 'READ');
    expect(await read(caps.readCap)).toBe('data');
    await depot.manage(caps.manageCap, 'DECR', 'WRITE');
    expect((await failure(store(caps.writeCap, 'x'))).code).toBe(status.PERMISSION_DENIED);
    await depot.manage(caps.manageCap, 'DECR', 'READ');
    expect((await failure(read(caps.readCap))).code).toBe(status.NOT_FOUND);
    expect(depot.status().stable).toMatchObject({ used: 0, allocations: 0 });
    expect((await failure(depot.manage(caps.manageCap, 'INCR', undefined))).code).toBe(status.NOT_FOUND);
  });

  it('changes duration, reliability and size with CHNG, within limits', async () => {
    const caps = await depot.allocate(10, attrs('BYTE_ARRAY'));
    await store(caps.writeCap, '12345');
    const until = Math.floor(t.clock.now / 1000) + 600;
    const p = await depot.manage(caps.manageCap, 'CHNG', undefined, {
      attributes: { duration: until, reliability: 'VOLATILE' },
      size: 20,
    });
    expect(p).toMatchObject({
      maxSize: 20,
      attributes: { duration: until, reliability: 'VOLATILE', type: 'BYTE_ARRAY' },
    });
    expect(p.timeLeft).toBeGreaterThan(590);
    expect((await failure(depot.manage(caps.manageCap, 'CHNG', undefined, { size: 3 }))).code).toBe(
      status.INVALID_ARGUMENT,
    );
    expect(
      (await failure(depot.manage(caps.manageCap, 'CHNG', undefined, { attributes: { type: 'FIFO' } }))).code,
    ).toBe(status.FAILED_PRECONDITION);
    const tooLong = Math.floor(t.clock.now / 1000) + 7200;
    expect(
      await failure(depot.manage(caps.manageCap, 'CHNG', undefined, { attributes: { duration: tooLong } })),
    ).toMatchObject({
      code: status.INVALID_ARGUMENT,
      reason: 'IBP_E_INV_PAR_DURATION',
    });
  });

  it('expires areas: never served after their duration, removed by the reaper', async () => {
    const until = Math.floor(t.clock.now / 1000) + 60;
    const caps = await depot.allocate(10, attrs('BYTE_ARRAY', 'STABLE', until));
    await store(caps.writeCap, 'soon gone');
    t.clock.now += 61_000;
    expect((await failure(read(caps.readCap))).code).toBe(status.NOT_FOUND);
    expect(await depot.reap()).toBe(1);
    expect(depot.status().stable.allocations).toBe(0);
    expect((await failure(depot.allocate(1, attrs('BYTE_ARRAY', 'STABLE', 1)))).code).toBe(
      status.INVALID_ARGUMENT,
    );
  });

  it('handles zero-size and pool-size allocations and refuses more than the pool holds', async () => {
    const zero = await depot.allocate(0, attrs('BYTE_ARRAY'));
    await store(zero.writeCap, '');
    expect(await read(zero.readCap)).toBe('');
    expect((await failure(store(zero.writeCap, 'x'))).code).toBe(status.RESOURCE_EXHAUSTED);
    expect((await failure(depot.allocate(0, attrs('FIFO')))).code).toBe(status.INVALID_ARGUMENT);
    expect((await failure(depot.allocate(-1, attrs('BYTE_ARRAY')))).code).toBe(status.INVALID_ARGUMENT);
    const small = await openTestDepot({ stable: 4 * KB, volatile: 0, inlineMaxBytes });
    try {
      const max = await small.depot.allocate(4 * KB, attrs('BYTE_ARRAY'));
      await small.depot.store(max.writeCap, 4 * KB, chunked(Buffer.alloc(4 * KB, 7), 1000));
      expect((await collect(small.depot.read(max.readCap, 0, -1))).length).toBe(4 * KB);
      expect((await failure(small.depot.allocate(1, attrs('BYTE_ARRAY')))).code).toBe(
        status.RESOURCE_EXHAUSTED,
      );
    } finally {
      await small.close();
    }
  });

  it('reclaims VOLATILE areas, oldest first, to make room for STABLE ones', async () => {
    const small = await openTestDepot({ stable: 1000, volatile: 1000, inlineMaxBytes });
    try {
      const old = await small.depot.allocate(400, attrs('BYTE_ARRAY', 'VOLATILE'));
      small.clock.now += 1;
      const young = await small.depot.allocate(400, attrs('BYTE_ARRAY', 'VOLATILE'));
      await small.depot.allocate(1000, attrs('BYTE_ARRAY', 'STABLE')); // fills the stable pool
      expect((await failure(small.depot.allocate(300, attrs('BYTE_ARRAY', 'VOLATILE')))).code).toBe(
        status.RESOURCE_EXHAUSTED,
      );
      await small.depot.allocate(500, attrs('BYTE_ARRAY', 'STABLE')); // needs one volatile area reclaimed
      expect((await failure(collect(small.depot.read(old.readCap, 0, -1)))).code).toBe(status.NOT_FOUND);
      await expect(collect(small.depot.read(young.readCap, 0, -1))).resolves.toBeDefined();
      expect(small.depot.status().volatile).toMatchObject({ capacity: 1000, used: 900, allocations: 2 });
    } finally {
      await small.close();
    }
  });

  it('serialises concurrent writers without interleaving their bytes', async () => {
    const caps = await depot.allocate(64 * KB, attrs('BYTE_ARRAY'));
    const slow = async function* (ch: string) {
      for (let i = 0; i < 8; i++) {
        await new Promise((r) => setTimeout(r, 5));
        yield Buffer.alloc(KB, ch);
      }
    };
    await Promise.all(['a', 'b', 'c'].map((ch) => depot.store(caps.writeCap, 8 * KB, slow(ch))));
    const data = await read(caps.readCap);
    expect(data).toHaveLength(24 * KB);
    expect(data).toMatch(/^(a{8192}|b{8192}|c{8192}){3}$/);
  });

  it('derives attenuated read capabilities limited to a range and an expiry, and revokes them', async () => {
    const caps = await depot.allocate(100, attrs('BYTE_ARRAY'));
    await store(caps.writeCap, 'hello world');
    const world = await depot.derive(caps.readCap, 6, 5, 0);
    expect(world).toMatch(/\/READ$/);
    expect(await read(world, 6)).toBe('world');
    expect(await read(world, 7, 2)).toBe('or');
    expect((await failure(read(world, 0))).code).toBe(status.PERMISSION_DENIED);
    await store(caps.writeCap, '!!!');
    expect((await failure(read(world, 6, 6))).code).toBe(status.PERMISSION_DENIED);
    expect(await read(world, 6)).toBe('world');
    // a derived capability can only narrow
    const or = await depot.derive(world, 7, 2, 0);
    expect(await read(or, 7)).toBe('or');
    expect((await failure(depot.derive(world, 0, 5, 0))).code).toBe(status.PERMISSION_DENIED);
    // an earlier expiry ends it while the original lives on
    const brief = await depot.derive(caps.readCap, 0, -1, Math.floor(t.clock.now / 1000) + 30);
    expect(await read(brief)).toBe('hello world!!!');
    t.clock.now += 31_000;
    expect((await failure(read(brief))).code).toBe(status.NOT_FOUND);
    // revocation needs the manage capability and leaves the original alone
    expect((await failure(depot.revoke(caps.readCap, world))).code).toBe(status.FAILED_PRECONDITION);
    await depot.revoke(caps.manageCap, world);
    expect((await failure(read(world, 6))).code).toBe(status.NOT_FOUND);
    expect((await failure(depot.revoke(caps.manageCap, world))).code).toBe(status.NOT_FOUND);
    expect(await read(caps.readCap)).toBe('hello world!!!');
    const fifo = await depot.allocate(8, attrs('FIFO'));
    expect((await failure(depot.derive(fifo.readCap, 0, 1, 0))).code).toBe(status.FAILED_PRECONDITION);
  });

  it('records a CRC-32 per store and finds bytes that rotted on disk', async () => {
    const caps = await depot.allocate(1000, attrs('BYTE_ARRAY'));
    const a = await store(caps.writeCap, 'first extent;');
    expect(a.crc32).toBe(crc32('first extent;'));
    await store(caps.writeCap, 'second extent');
    expect(await depot.verify(caps.readCap)).toEqual({ extents: 2, bytes: 26, corruptOffsets: [] });
    const id = (caps.readCap.split('/')[3] as string).split('#')[0] as string;
    if (inlineMaxBytes === undefined) {
      // the second extent's bytes, as level holds them
      const key = `dat!${id}!${String(13).padStart(16, '0')}`;
      const rotted = Buffer.from('second extent');
      rotted[2] = 0x58;
      await t.store.put(key, rotted as never, { valueEncoding: 'buffer' } as never);
    } else {
      const fd = openSync(join(t.dir, 'stable', id), 'r+');
      writeSync(fd, Buffer.from('X'), 0, 1, 15); // inside the second extent
      closeSync(fd);
    }
    expect(await depot.verify(caps.readCap)).toEqual({ extents: 2, bytes: 26, corruptOffsets: [13] });
    const buf = await depot.allocate(100, attrs('BUFFER'));
    await store(buf.writeCap, 'old');
    await store(buf.writeCap, 'new data');
    expect(await depot.verify(buf.readCap)).toEqual({ extents: 1, bytes: 8, corruptOffsets: [] });
    const fifo = await depot.allocate(10, attrs('FIFO'));
    expect((await failure(depot.verify(fifo.readCap))).code).toBe(status.FAILED_PRECONDITION);
  });

  it('finishes a circular-queue store that a crash interrupted, from its redo record', async () => {
    const caps = await depot.allocate(8, attrs('CIRCULAR_QUEUE'));
    await store(caps.writeCap, '123456');
    // what a crash between "redo record written" and "ring updated" leaves behind
    const id = (caps.readCap.split('/')[3] as string).split('#')[0] as string;
    writeFileSync(join(t.dir, 'stable', `${id}.stage`), 'abcd');
    await t.store.put(`redo!${id}`, JSON.stringify({ tail: 6, total: 4, head: 2, size: 8 }));
    t = await t.reopen();
    depot = t.depot;
    expect(await read(caps.readCap)).toBe('3456abcd');
    // a redo whose staged bytes are gone cannot be finished: the area is dropped, not served half-written
    const other = await depot.allocate(8, attrs('CIRCULAR_QUEUE'));
    await store(other.writeCap, 'xy');
    const otherId = (other.readCap.split('/')[3] as string).split('#')[0] as string;
    await t.store.put(`redo!${otherId}`, JSON.stringify({ tail: 2, total: 4, head: 0, size: 6 }));
    t = await t.reopen();
    depot = t.depot;
    expect((await failure(read(other.readCap))).code).toBe(status.NOT_FOUND);
  });

  it('keeps areas that were never written across a clean restart', async () => {
    const vol = await depot.allocate(10, attrs('BYTE_ARRAY', 'VOLATILE'));
    const stab = await depot.allocate(10, attrs('FIFO'));
    t = await t.reopen();
    depot = t.depot;
    expect((await depot.manage(vol.manageCap, 'PROBE', undefined)).maxSize).toBe(10);
    expect((await depot.manage(stab.manageCap, 'PROBE', undefined)).maxSize).toBe(10);
  });

  it('never overfills a pool when allocations race for reclaimed space', async () => {
    const small = await openTestDepot({ stable: 100, volatile: 100, inlineMaxBytes });
    try {
      await small.depot.allocate(60, attrs('BYTE_ARRAY', 'VOLATILE'));
      await small.depot.allocate(40, attrs('BYTE_ARRAY', 'VOLATILE'));
      await small.depot.allocate(100, attrs('BYTE_ARRAY', 'STABLE'));
      const results = await Promise.allSettled([
        small.depot.allocate(50, attrs('BYTE_ARRAY', 'STABLE')),
        small.depot.allocate(50, attrs('BYTE_ARRAY', 'STABLE')),
        small.depot.allocate(50, attrs('BYTE_ARRAY', 'STABLE')),
      ]);
      for (const r of results) {
        if (r.status === 'rejected')
          expect((r.reason as { code: number }).code).toBe(status.RESOURCE_EXHAUSTED);
      }
      expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(2);
      const st = small.depot.status();
      expect(st.volatile.used).toBeLessThanOrEqual(st.volatile.capacity);
    } finally {
      await small.close();
    }
  });

  it('writes nothing for stores that were queued when their area was freed', async () => {
    const caps = await depot.allocate(1000, attrs('BYTE_ARRAY'));
    const slow = (async function* () {
      await new Promise((r) => setTimeout(r, 100));
      yield Buffer.from('first');
    })();
    const holding = depot.store(caps.writeCap, 5, slow);
    await new Promise((r) => setTimeout(r, 10));
    const queued = depot.store(caps.writeCap, 6, chunked('second'));
    await depot.manage(caps.manageCap, 'DECR', 'READ');
    expect((await failure(holding)).code).toBe(status.NOT_FOUND);
    expect((await failure(queued)).code).toBe(status.NOT_FOUND);
    const id = (caps.readCap.split('/')[3] as string).split('#')[0] as string;
    expect(existsSync(join(t.dir, 'stable', id))).toBe(false);
    expect(depot.status().stable.used).toBe(0);
  });

  it('removes files no area owns at start-up, and keeps the ones it does', async () => {
    const caps = await depot.allocate(100, attrs('BYTE_ARRAY'));
    await store(caps.writeCap, 'owned');
    const stray = join(t.dir, 'volatile', 'AAAAAAAAAAAAAAAAAAAAAA');
    writeFileSync(stray, 'left by a crash');
    t = await t.reopen();
    depot = t.depot;
    expect(existsSync(stray)).toBe(false);
    expect(await read(caps.readCap)).toBe('owned');
  });

  it('keeps areas, data and capabilities across a restart', async () => {
    const ba = await depot.allocate(100, attrs('BYTE_ARRAY'));
    const fifo = await depot.allocate(8, attrs('FIFO'));
    const buf = await depot.allocate(8, attrs('BUFFER'));
    await store(ba.writeCap, 'persist me');
    await store(fifo.writeCap, 'abcdef');
    expect(await read(fifo.readCap, 0, 2)).toBe('ab');
    await store(buf.writeCap, 'first');
    await store(buf.writeCap, 'second');
    t = await t.reopen();
    depot = t.depot;
    expect(await read(ba.readCap)).toBe('persist me');
    expect(await read(fifo.readCap, 0, 4)).toBe('cdef');
    expect(await read(buf.readCap)).toBe('second');
    expect(depot.status().stable.allocations).toBe(3);
  });

  it('commits the STABLE metadata written at the same time together, each area in order', async () => {
    const batch = jest.spyOn(t.store, 'batch');
    const synced = () =>
      batch.mock.calls.filter(
        (args) => (args as unknown[])[1] !== undefined && ((args as unknown[])[1] as { sync?: boolean }).sync,
      ).length;
    const areas = await Promise.all(
      Array.from({ length: 20 }, () => depot.allocate(16, attrs('BYTE_ARRAY'))),
    );
    expect(synced()).toBeLessThan(5);
    // (stores reach their metadata write after their own fsync, at different times: no count for them)
    await Promise.all(areas.map((a, i) => store(a.writeCap, `a${i}`).then(() => store(a.writeCap, `b${i}`))));
    batch.mockRestore();
    t = await t.reopen();
    depot = t.depot;
    for (const [i, a] of areas.entries()) expect(await read(a.readCap)).toBe(`a${i}b${i}`);
  });

  it('keeps areas allocated with their initial bytes across a restart, of every type', async () => {
    const made = await Promise.all(
      (['BYTE_ARRAY', 'FIFO', 'BUFFER', 'CIRCULAR_QUEUE'] as const).map(async (type) => ({
        type,
        ...(await depot.allocateWith(16, attrs(type), Buffer.from(`${type[0]}-initial`))),
      })),
    );
    const empty = await depot.allocateWith(16, attrs('BYTE_ARRAY'), Buffer.alloc(0));
    // a store that fails frees the area again: nothing of it is kept
    const ac = new AbortController();
    ac.abort();
    await expect(
      depot.allocateWith(16, attrs('BYTE_ARRAY'), Buffer.from('never'), ac.signal),
    ).rejects.toThrow();
    t = await t.reopen();
    depot = t.depot;
    for (const m of made) expect(await read(m.caps.readCap, 0, 9)).toBe(`${m.type[0]}-initial`);
    expect(await read(empty.caps.readCap)).toBe('');
    expect(depot.status().stable.allocations).toBe(5);
  });
});
