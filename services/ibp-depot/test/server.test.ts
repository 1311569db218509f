import { createServer, type Server, type Socket } from 'node:net';
import { crc32 } from 'node:zlib';
import { AllocationType, CapType, type DepotServiceClient, ManageCommand } from '@backplane/proto/ibp';
import { BackplaneError, serverStream, unary } from '@backplane/runtime';
import { tempDir } from '@backplane/runtime/testing';
import { status } from '@grpc/grpc-js';
import { type RunningDepot, startDepot } from '../src';
import { allocate, depotClient, readVia, storeVia } from './grpc';

function listen(onConnection: (s: Socket) => void): Promise<{ server: Server; port: number }> {
  return new Promise((resolve) => {
    const server = createServer(onConnection);
    server.listen(0, '127.0.0.1', () =>
      resolve({ server, port: (server.address() as { port: number }).port }),
    );
  });
}

describe('DepotService over gRPC', () => {
  const dir = tempDir('ibp-grpc-');
  let running: RunningDepot;
  let client: DepotServiceClient;

  beforeAll(async () => {
    running = await startDepot({
      port: 0,
      dataDir: dir.path,
      stableSizeMb: 64,
      volatileSizeMb: 16,
      shutdownTimeoutMs: 1000,
    });
    client = depotClient(running.address);
  });
  afterAll(async () => {
    client.close();
    await running.close();
    dir.remove();
  });

  it('allocates, stores in chunks and reads back a few MiB, with capabilities naming this depot', async () => {
    const caps = await allocate(client, 8 * 1024 * 1024);
    expect(caps.readCap.startsWith(`ibp://${running.address}/`)).toBe(true);
    const data = Buffer.alloc(3 * 1024 * 1024 + 17);
    for (let i = 0; i < data.length; i++) data[i] = (i * 7) & 0xff;
    const res = await storeVia(client, caps.writeCap, data);
    expect(Number(res.currentSize)).toBe(data.length);
    const back = await readVia(client, caps.readCap);
    expect(back.equals(data)).toBe(true);
    expect((await readVia(client, caps.readCap, 1000, 10)).equals(data.subarray(1000, 1010))).toBe(true);
  });

  it('answers bad requests with clear codes', async () => {
    const bad = (p: Promise<unknown>) =>
      p.then(
        () => undefined,
        (e: BackplaneError) => e,
      );
    expect((await bad(unary(client.allocate.bind(client), { size: 10, attributes: undefined })))?.code).toBe(
      status.INVALID_ARGUMENT,
    );
    expect(
      (
        await bad(
          unary(client.allocate.bind(client), {
            size: 10,
            attributes: { duration: 0, reliability: 1, type: 0 },
          }),
        )
      )?.code,
    ).toBe(status.INVALID_ARGUMENT);
    expect(
      (
        await bad(
          unary(client.allocate.bind(client), {
            size: 2 ** 40,
            attributes: { duration: 0, reliability: 1, type: 1 },
          }),
        )
      )?.code,
    ).toBe(status.RESOURCE_EXHAUSTED);
    expect((await bad(storeVia(client, 'not a cap', Buffer.from('x'))))?.code).toBe(status.INVALID_ARGUMENT);
    const caps = await allocate(client, 4);
    expect((await bad(storeVia(client, caps.writeCap, Buffer.from('too long'))))?.code).toBe(
      status.RESOURCE_EXHAUSTED,
    );
    expect((await bad(readVia(client, caps.readCap, 5)))?.code).toBe(status.INVALID_ARGUMENT);
    const probe = await unary(client.manage.bind(client), {
      manageCap: caps.manageCap,
      command: ManageCommand.MANAGE_COMMAND_PROBE,
      capType: CapType.CAP_TYPE_UNSPECIFIED,
      attributes: undefined,
      size: 0,
    });
    expect(probe).toMatchObject({ readRefCount: 1, writeRefCount: 1, maxSize: 4, timeLeft: -1 });
    const st = await unary(client.status.bind(client), {});
    expect(st.stable?.capacity).toBe(64 * 1024 * 1024);
    expect(st.stable?.allocations).toBeGreaterThanOrEqual(2);
  });

  it('refuses a store whose chunk arrives damaged, and checksums what it reads', async () => {
    const caps = await allocate(client, 64);
    const err = await new Promise<BackplaneError>((resolve) => {
      const call = client.store((e) => resolve(BackplaneError.from(e)));
      call.write({ writeCap: caps.writeCap, size: 8, data: Buffer.from('good'), crc32: crc32('good') });
      call.write({ writeCap: '', size: 0, data: Buffer.from('evil'), crc32: crc32('good') });
      call.end();
    });
    expect(err).toMatchObject({ code: status.INVALID_ARGUMENT, reason: 'CHECKSUM_MISMATCH' });
    expect((await readVia(client, caps.readCap)).length).toBe(0);
    await storeVia(client, caps.writeCap, Buffer.from('checked'));
    for await (const r of serverStream(client.read.bind(client), {
      readCap: caps.readCap,
      offset: 0,
      size: -1,
    })) {
      expect(r.crc32).toBe(crc32(r.data));
    }
    const v = await unary(client.verify.bind(client), { readCap: caps.readCap });
    expect(v).toMatchObject({ extents: 1, bytes: 7, corruptOffsets: [] });
  });

  it('stores and reads in one message (StoreSmall, ReadSmall) with the semantics of Store and Read', async () => {
    const caps = await allocate(client, 2 * 1024 * 1024);
    const a = Buffer.from('hello, ');
    const b = Buffer.from('depot');
    const r1 = await unary(client.storeSmall.bind(client), {
      writeCap: caps.writeCap,
      data: a,
      crc32: crc32(a),
    });
    expect(r1).toMatchObject({ stored: 7, currentSize: 7, crc32: crc32(a) });
    // appends, like Store on a BYTE_ARRAY
    await unary(client.storeSmall.bind(client), { writeCap: caps.writeCap, data: b });
    const all = await unary(client.readSmall.bind(client), { readCap: caps.readCap, offset: 0, size: -1 });
    expect(all.data.toString()).toBe('hello, depot');
    expect(all.crc32).toBe(crc32(all.data));
    const part = await unary(client.readSmall.bind(client), { readCap: caps.readCap, offset: 7, size: 3 });
    expect(part.data.toString()).toBe('dep');
    // a damaged message is refused before anything is applied
    const damaged = await unary(client.storeSmall.bind(client), {
      writeCap: caps.writeCap,
      data: Buffer.from('evil'),
      crc32: crc32('good'),
    }).catch((e: BackplaneError) => e);
    expect(damaged).toMatchObject({ code: status.INVALID_ARGUMENT, reason: 'CHECKSUM_MISMATCH' });
    // the wrong capability kind, as for Store
    const wrongKind = await unary(client.storeSmall.bind(client), {
      writeCap: caps.readCap,
      data: b,
    }).catch((e: BackplaneError) => e);
    expect(wrongKind).toBeInstanceOf(BackplaneError);
    // a read larger than one message is refused with READ_TOO_LARGE; Read still serves it
    const big = Buffer.alloc(1024 * 1024 + 1, 7);
    await storeVia(client, caps.writeCap, big);
    const tooLarge = await unary(client.readSmall.bind(client), {
      readCap: caps.readCap,
      offset: 0,
      size: -1,
    }).catch((e: BackplaneError) => e);
    expect(tooLarge).toMatchObject({ code: status.INVALID_ARGUMENT, reason: 'READ_TOO_LARGE' });
    expect((await readVia(client, caps.readCap)).length).toBe(12 + big.length);
    // past the limit of the area: RESOURCE_EXHAUSTED, nothing applied
    const over = await unary(client.storeSmall.bind(client), {
      writeCap: caps.writeCap,
      data: Buffer.alloc(1024 * 1024),
    }).catch((e: BackplaneError) => e);
    expect(over).toMatchObject({ code: status.RESOURCE_EXHAUSTED });
    expect((await readVia(client, caps.readCap)).length).toBe(12 + big.length);
  });

  it('refuses a too-large ReadSmall of a FIFO without consuming or waiting', async () => {
    const caps = await allocate(client, 2 * 1024 * 1024, AllocationType.ALLOCATION_TYPE_FIFO);
    await unary(client.storeSmall.bind(client), { writeCap: caps.writeCap, data: Buffer.from('abc') });
    const t0 = Date.now();
    const err = await unary(client.readSmall.bind(client), {
      readCap: caps.readCap,
      offset: 0,
      size: 2 * 1024 * 1024,
    }).catch((e: BackplaneError) => e);
    expect(err).toMatchObject({ code: status.INVALID_ARGUMENT, reason: 'READ_TOO_LARGE' });
    expect(Date.now() - t0).toBeLessThan(1000);
    const got = await unary(client.readSmall.bind(client), { readCap: caps.readCap, offset: 0, size: 3 });
    expect(got.data.toString()).toBe('abc');
  });

  it('allocates with initial data in one call, and allocates nothing when the data cannot be stored', async () => {
    const before = await unary(client.status.bind(client), {});
    const data = Buffer.from('initial contents');
    const res = await unary(client.allocate.bind(client), {
      size: 64,
      attributes: { duration: 0, reliability: 1, type: AllocationType.ALLOCATION_TYPE_BYTE_ARRAY },
      data,
      crc32: crc32(data),
    });
    expect(res.stored).toMatchObject({ stored: data.length, currentSize: data.length, crc32: crc32(data) });
    expect((await readVia(client, res.caps?.readCap ?? '')).toString()).toBe('initial contents');
    const used = Number((await unary(client.status.bind(client), {})).stable?.used);
    expect(used).toBe(Number(before.stable?.used) + 64);
    const attrs = { duration: 0, reliability: 1, type: AllocationType.ALLOCATION_TYPE_BYTE_ARRAY };
    const tooBig = await unary(client.allocate.bind(client), {
      size: 4,
      attributes: attrs,
      data,
    }).catch((e: BackplaneError) => e);
    expect(tooBig).toMatchObject({ code: status.RESOURCE_EXHAUSTED });
    const damaged = await unary(client.allocate.bind(client), {
      size: 64,
      attributes: attrs,
      data,
      crc32: crc32('other'),
    }).catch((e: BackplaneError) => e);
    expect(damaged).toMatchObject({ code: status.INVALID_ARGUMENT, reason: 'CHECKSUM_MISMATCH' });
    expect(Number((await unary(client.status.bind(client), {})).stable?.used)).toBe(used);
  });

  it('delivers bytes to a waiting TCP listener, consuming a FIFO', async () => {
    const caps = await allocate(client, 1024, AllocationType.ALLOCATION_TYPE_FIFO);
    await storeVia(client, caps.writeCap, Buffer.from('deliver these bytes'));
    const received: Buffer[] = [];
    const done = new Promise<void>((resolve) => {
      void listen((s) => {
        s.on('data', (d: Buffer) => received.push(d));
        s.on('end', () => resolve());
      }).then(({ server, port }) => {
        void unary(client.deliver.bind(client), {
          readCap: caps.readCap,
          host: '127.0.0.1',
          port,
          offset: 0,
          size: 7,
        }).then((r) => {
          expect(Number(r.delivered)).toBe(7);
          server.close();
        });
      });
    });
    await done;
    expect(Buffer.concat(received).toString()).toBe('deliver');
    expect((await readVia(client, caps.readCap, 0, 12)).toString()).toBe(' these bytes');
  });

  it('fetches bytes from a TCP peer with RemoteStore', async () => {
    const caps = await allocate(client, 1024);
    const { server, port } = await listen((s) => s.end(Buffer.from('pulled from a socket and more')));
    try {
      const r = await unary(client.remoteStore.bind(client), {
        writeCap: caps.writeCap,
        host: '127.0.0.1',
        port,
        size: 18,
      });
      expect(Number(r.stored)).toBe(18);
      expect((await readVia(client, caps.readCap)).toString()).toBe('pulled from a sock');
      // a peer that sends fewer bytes than asked stores nothing
      const short = await listen((s) => s.end(Buffer.from('tiny')));
      const err = await unary(client.remoteStore.bind(client), {
        writeCap: caps.writeCap,
        host: '127.0.0.1',
        port: short.port,
        size: 100,
      }).catch((e: BackplaneError) => e);
      expect((err as BackplaneError).code).toBe(status.UNAVAILABLE);
      short.server.close();
      expect((await readVia(client, caps.readCap)).toString()).toBe('pulled from a sock');
    } finally {
      server.close();
    }
  });

  it('copies an empty CIRCULAR_QUEUE: 0 bytes, not an error', async () => {
    const src = await allocate(client, 8, AllocationType.ALLOCATION_TYPE_CIRCULAR_QUEUE);
    const dst = await allocate(client, 64);
    const r = await unary(client.copy.bind(client), {
      sourceReadCap: src.readCap,
      targetWriteCap: dst.writeCap,
      offset: 0,
      size: -1,
    });
    expect(Number(r.copied)).toBe(0);
  });

  it.each([
    ['BYTE_ARRAY', AllocationType.ALLOCATION_TYPE_BYTE_ARRAY, 'abcdefgh', 'cdef', 'cdef', 'abcdefgh'],
    ['BUFFER', AllocationType.ALLOCATION_TYPE_BUFFER, 'abcdefgh', 'cdef', 'cdef', 'abcdefgh'],
    ['FIFO', AllocationType.ALLOCATION_TYPE_FIFO, 'abcdefgh', 'abcd', 'abcd', 'efgh'],
    ['CIRCULAR_QUEUE', AllocationType.ALLOCATION_TYPE_CIRCULAR_QUEUE, 'abcdefgh', 'abcd', 'abcd', 'efgh'],
  ] as const)(
    'copies, delivers and remote-stores with a %s area',
    async (_name, type, content, copied, delivered, left) => {
      // Copy: offset 2, 4 bytes (queues ignore the offset and consume)
      const src = await allocate(client, 8, type);
      await storeVia(client, src.writeCap, Buffer.from(content));
      const dst = await allocate(client, 64);
      const r = await unary(client.copy.bind(client), {
        sourceReadCap: src.readCap,
        targetWriteCap: dst.writeCap,
        offset: 2,
        size: 4,
      });
      expect(Number(r.copied)).toBe(4);
      expect((await readVia(client, dst.readCap)).toString()).toBe(copied);
      // Deliver the same range from a fresh area to a TCP listener
      const src2 = await allocate(client, 8, type);
      await storeVia(client, src2.writeCap, Buffer.from(content));
      const got: Buffer[] = [];
      const { server, port } = await listen((sock) => sock.on('data', (d: Buffer) => got.push(d)));
      try {
        const d = await unary(client.deliver.bind(client), {
          readCap: src2.readCap,
          host: '127.0.0.1',
          port,
          offset: 2,
          size: 4,
        });
        expect(Number(d.delivered)).toBe(4);
        await new Promise((res) => setTimeout(res, 50));
        expect(Buffer.concat(got).toString()).toBe(delivered);
      } finally {
        server.close();
      }
      const rest =
        type === AllocationType.ALLOCATION_TYPE_FIFO ||
        type === AllocationType.ALLOCATION_TYPE_CIRCULAR_QUEUE;
      // a FIFO read of -1 means "its maximum size" and would wait for more: ask for what is left
      expect((await readVia(client, src2.readCap, 0, left.length)).toString()).toBe(left);
      // RemoteStore into an area of this type
      const into = await allocate(client, 8, type);
      const peer = await listen((sock) => sock.end(Buffer.from('12345678')));
      try {
        const st = await unary(client.remoteStore.bind(client), {
          writeCap: into.writeCap,
          host: '127.0.0.1',
          port: peer.port,
          size: 8,
        });
        expect(Number(st.stored)).toBe(8);
        expect((await readVia(client, into.readCap, 0, rest ? -1 : 8)).toString()).toBe('12345678');
      } finally {
        peer.server.close();
      }
    },
  );

  it('refuses to act as an open relay outside the allowed networks', async () => {
    const caps = await allocate(client, 16);
    const err = await unary(client.deliver.bind(client), {
      readCap: caps.readCap,
      host: '10.1.2.3',
      port: 9,
      offset: 0,
      size: -1,
    }).catch((e: BackplaneError) => e);
    expect((err as BackplaneError).code).toBe(status.PERMISSION_DENIED);
    const forged = `ibp://10.1.2.3:2379/${'A'.repeat(22)}#${'B'.repeat(43)}/WRITE`;
    const err3 = await unary(client.copy.bind(client), {
      sourceReadCap: caps.readCap,
      targetWriteCap: forged,
      offset: 0,
      size: -1,
    }).catch((e: BackplaneError) => e);
    expect((err3 as BackplaneError).code).toBe(status.PERMISSION_DENIED);
    const err2 = await unary(client.remoteStore.bind(client), {
      writeCap: caps.writeCap,
      host: '192.0.2.1',
      port: 9,
      size: 1,
    }).catch((e: BackplaneError) => e);
    expect((err2 as BackplaneError).code).toBe(status.PERMISSION_DENIED);
  });
});
