import { join } from 'node:path';
import { AllocationType, Reliability } from '@backplane/proto/ibp';
import { type BackplaneError, unary } from '@backplane/runtime';
import { startServiceBinary, tempDir } from '@backplane/runtime/testing';
import { status } from '@grpc/grpc-js';
import { allocate, depotClient, readVia, storeVia } from './grpc';

const MAIN = join(__dirname, '..', 'dist', 'main.js');

function startBinary(dataDir: string, port?: number) {
  return startServiceBinary(MAIN, {
    dataDir,
    port,
    env: {
      BACKPLANE_NAMESERVER: '',
      BACKPLANE_IBP_STABLE_SIZE_MB: '64',
      BACKPLANE_IBP_VOLATILE_SIZE_MB: '16',
    },
    ready: /depot ready/,
  });
}

describe('ibp-depot processes', () => {
  it('copies between two depot processes without the data passing through the caller', async () => {
    const dirA = tempDir();
    const dirB = tempDir();
    const a = await startBinary(dirA.path);
    const b = await startBinary(dirB.path);
    const ca = depotClient(a.address);
    const cb = depotClient(b.address);
    try {
      const src = await allocate(ca, 4 * 1024 * 1024);
      const dst = await allocate(cb, 4 * 1024 * 1024);
      const data = Buffer.alloc(2 * 1024 * 1024 + 5, 'z');
      data.write('start', 0);
      await storeVia(ca, src.writeCap, data);
      const r = await unary(ca.copy.bind(ca), {
        sourceReadCap: src.readCap,
        targetWriteCap: dst.writeCap,
        offset: 0,
        size: -1,
      });
      expect(Number(r.copied)).toBe(data.length);
      expect((await readVia(cb, dst.readCap)).equals(data)).toBe(true);
      // a FIFO copied is consumed at the source
      const fifo = await allocate(ca, 64, AllocationType.ALLOCATION_TYPE_FIFO);
      await storeVia(ca, fifo.writeCap, Buffer.from('fifo-bytes'));
      const dst2 = await allocate(cb, 64);
      await unary(ca.copy.bind(ca), {
        sourceReadCap: fifo.readCap,
        targetWriteCap: dst2.writeCap,
        offset: 0,
        size: 4,
      });
      expect((await readVia(cb, dst2.readCap)).toString()).toBe('fifo');
      expect((await readVia(ca, fifo.readCap, 0, 6)).toString()).toBe('-bytes');
      // a target that refuses (too small) leaves the source FIFO untouched
      await storeVia(ca, fifo.writeCap, Buffer.from('0123456789'));
      const tiny = await allocate(cb, 2);
      const err = await unary(ca.copy.bind(ca), {
        sourceReadCap: fifo.readCap,
        targetWriteCap: tiny.writeCap,
        offset: 0,
        size: 10,
      }).catch((e: BackplaneError) => e);
      expect((err as BackplaneError).code).toBe(status.RESOURCE_EXHAUSTED);
      expect((await readVia(ca, fifo.readCap, 0, 10)).toString()).toBe('0123456789');
    } finally {
      ca.close();
      cb.close();
      await a.proc.stop();
      await b.proc.stop();
      dirA.remove();
      dirB.remove();
    }
  }, 60_000);

  it('loses nothing acknowledged when killed -9 during a stream of stores', async () => {
    const dir = tempDir();
    let depot = await startBinary(dir.path);
    try {
      let client = depotClient(depot.address);
      const caps = await allocate(client, 16 * 1024 * 1024);
      const chunk = Buffer.alloc(64 * 1024);
      let acked = 0;
      let stop = false;
      const writer = (async () => {
        while (!stop) {
          chunk.fill(acked % 251);
          try {
            await storeVia(client, caps.writeCap, chunk);
            acked++;
          } catch {
            return;
          }
        }
      })();
      // meanwhile small STABLE areas, whose bytes live in level with their records
      const small: Array<{ readCap: string; fill: number }> = [];
      const smallWriter = (async () => {
        for (let i = 0; !stop; i++) {
          try {
            const c = await allocate(client, 4096);
            await storeVia(client, c.writeCap, Buffer.alloc(4096, i % 251));
            small.push({ readCap: c.readCap, fill: i % 251 });
          } catch {
            return;
          }
        }
      })();
      await new Promise((r) => setTimeout(r, 800));
      await depot.proc.kill();
      stop = true;
      await writer;
      await smallWriter;
      client.close();
      expect(acked).toBeGreaterThan(0);

      depot = await startBinary(dir.path, depot.port);
      client = depotClient(depot.address);
      const data = await readVia(client, caps.readCap);
      // every acknowledged store is there, whole and in order; an unacknowledged one may or may not be
      expect(data.length).toBeGreaterThanOrEqual(acked * chunk.length);
      expect(data.length % chunk.length).toBe(0);
      for (let i = 0; i < data.length / chunk.length; i++) expect(data[i * chunk.length]).toBe(i % 251);
      expect(small.length).toBeGreaterThan(0);
      for (const s of small)
        expect((await readVia(client, s.readCap)).equals(Buffer.alloc(4096, s.fill))).toBe(true);
      // VOLATILE areas are announced as possibly lost after a crash
      const vol = await allocate(
        client,
        1024,
        AllocationType.ALLOCATION_TYPE_BYTE_ARRAY,
        Reliability.RELIABILITY_VOLATILE,
      );
      await storeVia(client, vol.writeCap, Buffer.from('volatile'));
      client.close();
      await depot.proc.kill();
      depot = await startBinary(dir.path, depot.port);
      expect(depot.proc.output()).toContain('did not shut down cleanly');
      expect(await depot.proc.stop()).toBe(0);
    } finally {
      await depot.proc.kill();
      dir.remove();
    }
  }, 60_000);
});
