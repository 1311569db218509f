import { randomBytes } from 'node:crypto';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { adoptForReads, chunkReader, ReadBuffers, readHeaderChunks } from '../src/read-buffers';

function listen(server: Server): Promise<number> {
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port)),
  );
}

describe('adoptForReads', () => {
  it('reads an accepted socket into reused buffers: every byte, in order, then the end; the server still counts it', async () => {
    const buffers = new ReadBuffers();
    const server = createServer({ pauseOnConnect: true, allowHalfOpen: true });
    const accepted = new Promise<Socket>((resolve) => {
      server.once('connection', (s: Socket) => resolve(adoptForReads(s, buffers, 256 * 1024)));
    });
    const port = await listen(server);
    const payload = randomBytes(8 * 1024 * 1024);
    const client = connect({ port, host: '127.0.0.1' });
    client.end(payload);
    const socket = await accepted;
    const reader = chunkReader(socket);
    expect(reader).toBeDefined();
    expect(socket.remoteAddress).toBe('127.0.0.1');

    const got: Buffer[] = [];
    let largest = 0;
    let released = 0;
    let held: Array<() => void> = [];
    let reads = 0;
    (reader as NonNullable<typeof reader>).sink = (chunk, release) => {
      got.push(Buffer.from(chunk)); // the chunk's memory is reused once released
      largest = Math.max(largest, chunk.length);
      held.push(() => {
        released++;
        release();
      });
      // every fourth read pauses the socket for a while: the kernel piles up more than 64 KiB meanwhile
      if (++reads % 4 !== 0) return true;
      setTimeout(() => {
        for (const r of held) r();
        held = [];
        socket.resume();
      }, 5);
      return false;
    };
    const ended = new Promise<void>((resolve) => socket.once('end', resolve));
    socket.resume();
    await ended;
    for (const r of held) r();
    expect(Buffer.concat(got).equals(payload)).toBe(true);
    expect(largest).toBeGreaterThan(64 * 1024);
    expect(released).toBe(got.length);
    expect(await new Promise((r) => server.getConnections((_e, n) => r(n)))).toBe(1);
    // the server's close waits for the adopted socket, and completes once it is gone
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    const socketClosed = new Promise((resolve) => socket.once('close', resolve));
    socket.end();
    socket.destroy();
    await socketClosed;
    client.destroy();
    await closed;
    // the buffer the closed socket held for its next read counts no more
    expect(buffers.waitingBytes).toBe(0);
  });

  it('reads into small buffers once the budget for waiting buffers is spent', async () => {
    const buffers = new ReadBuffers(0);
    const server = createServer({ pauseOnConnect: true });
    const accepted = new Promise<Socket>((resolve) => {
      server.once('connection', (s: Socket) => resolve(adoptForReads(s, buffers, 16384)));
    });
    const port = await listen(server);
    const payload = randomBytes(512 * 1024);
    const client = connect({ port, host: '127.0.0.1' });
    client.end(payload);
    const socket = await accepted;
    const got: Buffer[] = [];
    (chunkReader(socket) as NonNullable<ReturnType<typeof chunkReader>>).sink = (chunk, release) => {
      got.push(Buffer.from(chunk));
      release();
      return true;
    };
    const ended = new Promise<void>((resolve) => socket.once('end', resolve));
    socket.resume();
    await ended;
    expect(Buffer.concat(got).equals(payload)).toBe(true);
    expect(Math.max(...got.map((c) => c.length))).toBeLessThanOrEqual(1024);
    expect(buffers.waitingBytes).toBe(0);
    socket.destroy();
    client.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it('keeps bytes read before anyone relays them, and hands them over first', async () => {
    const server = createServer({ pauseOnConnect: true });
    const accepted = new Promise<Socket>((resolve) => {
      server.once('connection', (s: Socket) => resolve(adoptForReads(s, new ReadBuffers(), 16384)));
    });
    const port = await listen(server);
    const client = connect({ port, host: '127.0.0.1' });
    client.end('early bytes');
    const socket = await accepted;
    const reader = chunkReader(socket) as NonNullable<ReturnType<typeof chunkReader>>;
    socket.resume(); // read with no sink: the bytes wait in `early`
    await new Promise((r) => setTimeout(r, 50));
    expect(Buffer.concat(reader.early).toString()).toBe('early bytes');
    socket.destroy();
    client.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it('reads a header that arrives in pieces and leaves the bytes after it for the relay', async () => {
    const server = createServer({ pauseOnConnect: true });
    const accepted = new Promise<Socket>((resolve) => {
      server.once('connection', (s: Socket) => resolve(adoptForReads(s, new ReadBuffers(), 16384)));
    });
    const port = await listen(server);
    const client = connect({ port, host: '127.0.0.1' });
    client.setNoDelay(true);
    const socket = await accepted;
    const reader = chunkReader(socket) as NonNullable<ReturnType<typeof chunkReader>>;
    const header = readHeaderChunks(socket, reader, 16, 5000);
    client.write('0123456789');
    await new Promise((r) => setTimeout(r, 20));
    client.write('abcdef and the rest');
    expect((await header)?.toString()).toBe('0123456789abcdef');
    await new Promise((r) => setTimeout(r, 20));
    expect(Buffer.concat(reader.early).toString()).toBe(' and the rest');
    // a connection that ends before its header gives none
    const second = new Promise<Socket>((resolve) => {
      server.once('connection', (s: Socket) => resolve(adoptForReads(s, new ReadBuffers(), 16384)));
    });
    const short = connect({ port, host: '127.0.0.1' });
    short.end('0123');
    const s2 = await second;
    expect(
      await readHeaderChunks(s2, chunkReader(s2) as NonNullable<ReturnType<typeof chunkReader>>, 16, 5000),
    ).toBeUndefined();
    for (const s of [socket, s2, client, short]) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
});
