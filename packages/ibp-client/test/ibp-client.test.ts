import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { type RunningDepot, startDepot } from '@backplane/ibp-depot';
import { tempDir } from '@backplane/runtime/testing';
import { status } from '@grpc/grpc-js';
import { IbpClient } from '../src';

describe('IbpClient', () => {
  const dir = tempDir('ibp-client-');
  let a: RunningDepot;
  let b: RunningDepot;
  let ibp: IbpClient;

  beforeAll(async () => {
    a = await startDepot({ port: 0, dataDir: join(dir.path, 'a'), stableSizeMb: 64, volatileSizeMb: 8 });
    b = await startDepot({ port: 0, dataDir: join(dir.path, 'b'), stableSizeMb: 64, volatileSizeMb: 8 });
    ibp = new IbpClient({ depot: a.address });
  });
  afterAll(async () => {
    ibp.close();
    await Promise.all([a.close(), b.close()]);
    dir.remove();
  });

  it('stores from a Buffer, a file and a stream, and reads into a Buffer, a file and a stream', async () => {
    const caps = await ibp.allocate(10 * 1024 * 1024, { duration: 3600 });
    const big = Buffer.alloc(3 * 1024 * 1024 + 3, 'b');
    const progress: number[] = [];
    await ibp.store(caps.writeCap, big, { onProgress: (done) => progress.push(done) });
    expect(progress.at(-1)).toBe(big.length);
    const file = join(dir.path, 'input.bin');
    writeFileSync(file, 'from a file;');
    await ibp.store(caps.writeCap, file);
    await ibp.store(caps.writeCap, Readable.from([Buffer.from('from '), Buffer.from('a stream')]), {
      size: 13,
    });
    await expect(ibp.store(caps.writeCap, Readable.from([Buffer.from('x')]))).rejects.toMatchObject({
      code: status.INVALID_ARGUMENT,
    });

    const all = await ibp.read(caps.readCap);
    expect(all.length).toBe(big.length + 12 + 13);
    expect(all.subarray(big.length).toString()).toBe('from a file;from a stream');
    const out = join(dir.path, 'output.bin');
    expect(await ibp.read(caps.readCap, { offset: big.length }, out)).toBe(25);
    expect(readFileSync(out, 'utf8')).toBe('from a file;from a stream');
    const sink = new PassThrough();
    const got: Buffer[] = [];
    sink.on('data', (d: Buffer) => got.push(d));
    expect(await ibp.read(caps.readCap, { offset: big.length + 12, size: 4 }, sink)).toBe(4);
    expect(Buffer.concat(got).toString()).toBe('from');
    expect(await ibp.verify(caps.readCap)).toEqual({ extents: 3, bytes: all.length, corruptOffsets: [] });
    const probe = await ibp.probe(caps.manageCap);
    expect(Number(probe.currentSize)).toBe(all.length);
    expect(Number(probe.timeLeft)).toBeGreaterThan(3500);
  });

  it('moves small objects in one call each, and falls back to streaming for a large read of everything', async () => {
    const caps = await ibp.allocate(4096, { reliability: 'VOLATILE', data: Buffer.from('first;') });
    expect(await ibp.store(caps.writeCap, Buffer.from('second'))).toEqual({ stored: 6, currentSize: 12 });
    expect((await ibp.read(caps.readCap)).toString()).toBe('first;second');
    expect((await ibp.read(caps.readCap, { offset: 6, size: 3 })).toString()).toBe('sec');
    await expect(ibp.allocate(4, { data: Buffer.from('too long') })).rejects.toMatchObject({
      code: status.RESOURCE_EXHAUSTED,
    });
    const big = await ibp.allocate(3 * 1024 * 1024);
    const bytes = Buffer.alloc(2 * 1024 * 1024 + 5, 'z');
    await ibp.store(big.writeCap, bytes);
    expect((await ibp.read(big.readCap)).equals(bytes)).toBe(true);
  });

  it('copies between depots, manages and reports status', async () => {
    const src = await ibp.allocate(1024);
    const dst = await ibp.allocate(1024, { reliability: 'VOLATILE' }, b.address);
    expect(dst.writeCap).toContain(b.address);
    await ibp.store(src.writeCap, Buffer.from('third-party transfer'));
    expect(await ibp.copy(src.readCap, dst.writeCap)).toBe(20);
    expect((await ibp.read(dst.readCap)).toString()).toBe('third-party transfer');
    const changed = await ibp.manage(dst.manageCap, 'CHNG', { reliability: 'STABLE' });
    expect(Number(changed.timeLeft)).toBe(-1); // duration kept (permanent)
    await ibp.manage(dst.manageCap, 'DECR', { capType: 'READ' });
    await expect(ibp.read(dst.readCap)).rejects.toMatchObject({ code: status.NOT_FOUND });
    const ranged = await ibp.derive(src.readCap, { offset: 12, length: 8 });
    expect((await ibp.read(ranged, { offset: 12 })).toString()).toBe('transfer');
    await ibp.revoke(src.manageCap, ranged);
    await expect(ibp.read(ranged, { offset: 12 })).rejects.toMatchObject({ code: status.NOT_FOUND });
    const st = await ibp.status(b.address);
    expect(st.volatile?.allocations).toBe(0);
  });

  it('sends its bearer token only to its own depot and the ones it was told to trust', async () => {
    const token = 'depot-token-0123456789';
    const guarded = await startDepot({
      port: 0,
      dataDir: join(dir.path, 'guarded'),
      stableSizeMb: 8,
      volatileSizeMb: 8,
      authToken: token,
    });
    try {
      const owner = new IbpClient({ depot: guarded.address, token });
      const caps = await owner.allocate(16);
      await owner.store(caps.writeCap, Buffer.from('secret'));
      // a client whose own depot is elsewhere does not hand the token to the depot a capability names
      const elsewhere = new IbpClient({ depot: a.address, token });
      await expect(elsewhere.read(caps.readCap)).rejects.toMatchObject({ code: status.UNAUTHENTICATED });
      const trusting = new IbpClient({ depot: a.address, token, tokenDepots: [guarded.address] });
      expect((await trusting.read(caps.readCap)).toString()).toBe('secret');
      for (const c of [owner, elsewhere, trusting]) c.close();
    } finally {
      await guarded.close();
    }
  });
});
