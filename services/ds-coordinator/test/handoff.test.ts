import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { PickFirstHandoffPolicy } from '@backplane/ds-client';
import { waitFor } from '@backplane/runtime/testing';
import { readBytes, startCoordinator, type TestCoordinator, tracker, write } from './helpers';

/** A deterministic byte sequence: byte i of stream `seed`. */
function pattern(seed: number, from: number, length: number): Buffer {
  const out = Buffer.alloc(length);
  for (let i = 0; i < length; i++) {
    const n = from + i;
    out[i] = (n * 31 + (n >>> 8) * 7 + seed * 13) & 0xff;
  }
  return out;
}

/** Everything until the end of the stream. */
function readToEnd(stream: Duplex | Socket, timeoutMs = 20_000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    const timer = setTimeout(() => reject(new Error(`no end in ${timeoutMs} ms`)), timeoutMs);
    stream.on('data', (c: Buffer) => parts.push(c));
    stream.once('end', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(parts));
    });
    stream.once('error', reject);
  });
}

describe('DsService handoff', () => {
  let c: TestCoordinator;
  const t = tracker(() => c);
  const { node, client } = t;

  beforeEach(async () => {
    c = await startCoordinator();
  });
  afterEach(async () => {
    await t.cleanup();
    await c.stop();
  });

  it('keeps a continuous stream byte-for-byte in both directions through two handoffs, unread bytes included', async () => {
    const a = await node({ policy: new PickFirstHandoffPolicy() });
    const sock = await client('127.0.0.2');
    const sa = await a.serve(5000);
    const b = await node();
    const third = await node();

    // the client streams 4 MiB in uneven chunks, respecting backpressure, then ends
    const total = 4 * 1024 * 1024;
    const sent = (async () => {
      let at = 0;
      while (at < total) {
        const n = Math.min(total - at, 1 + ((at * 7919) % 65536));
        if (!sock.write(pattern(1, at, n))) await new Promise((r) => sock.once('drain', r));
        at += n;
      }
      sock.end();
    })();
    const fromNodes = readToEnd(sock);

    // node A reads 1 MiB, writes its part of the reply without waiting for it, and hands off with
    // everything else it received still unread
    const readA = await readBytes(sa, 1024 * 1024);
    sa.write(pattern(2, 0, 300_000));
    const toB = a.getClient(sa);
    toB.setMessage('from A');
    await a.handoffTo(b.url, toB, 10_000);
    expect(() => toB.getUrl()).toThrow(expect.objectContaining({ code: 9 }));

    const atB = await b.receiveHandoff(10_000);
    expect(atB.getMessage()?.toString()).toBe('from A');
    expect(atB.arrival).toEqual({ reason: 'application', from: a.url });
    const [sb] = atB.getStreams();
    if (!sb) throw new Error('no stream at B');
    const readB = await readBytes(sb, 1024 * 1024 + 12_345);
    sb.write(pattern(2, 300_000, 500_000));
    await b.handoffTo(third.url, atB, 10_000);

    const atC = await third.receiveHandoff(10_000);
    const [sc] = atC.getStreams();
    if (!sc) throw new Error('no stream at C');
    const writeC = pattern(2, 800_000, 200_000);
    const readC = readToEnd(sc);
    await sent;
    const rest = await readC;
    sc.end(writeC);

    const received = Buffer.concat([readA, readB, rest]);
    expect(received.length).toBe(total);
    expect(received.equals(pattern(1, 0, total))).toBe(true);
    const back = await fromNodes;
    expect(back.length).toBe(1_000_000);
    expect(back.equals(pattern(2, 0, 1_000_000))).toBe(true);
  });

  it('moves every connection of a client together, and its new connections follow the binding', async () => {
    const a = await node();
    const socks = [await client('127.0.0.3'), await client('127.0.0.3'), await client('127.0.0.3')];
    const served = [await a.serve(5000), await a.serve(5000), await a.serve(5000)];
    const b = await node();
    for (const [i, s] of socks.entries()) await write(s, `conn-${i};`);
    // the node matches its streams to connections by what each one said
    const byName = new Map<string, Duplex>();
    for (const s of served) byName.set((await readBytes(s, 7)).toString(), s);
    const dc = a.getClient(served[0] as Duplex);
    expect(dc.getUrl()).toBe('ipv6://[::ffff:127.0.0.3]');
    expect(dc.getStreams()).toHaveLength(3);
    await a.handoffTo(b.url, dc, 5000);
    const moved = await b.receiveHandoff(5000);
    expect(moved.getStreams()).toHaveLength(3);
    for (const [i, s] of socks.entries()) await write(s, `again-${i}`);
    const got = await Promise.all(moved.getStreams().map((s) => readBytes(s, 7)));
    expect(got.map(String).sort()).toEqual(['again-0', 'again-1', 'again-2']);
    for (const s of moved.getStreams()) await write(s, 'B');
    for (const s of socks) expect((await readBytes(s, 1)).toString()).toBe('B');
    expect(a.getAllClients()).toHaveLength(0);

    // a new connection of the same client goes to the node it is bound to now
    await client('127.0.0.3');
    const next = await b.serve(5000);
    expect(b.getClient(next).getStreams()).toHaveLength(4);
    await expect(a.serve(0)).rejects.toMatchObject({ code: 4 });
  });

  it('places new clients by least clients and keeps or resets bindings on close', async () => {
    const a = await node({ node: 'node-a' });
    const b = await node({ node: 'node-b' });
    await client('127.0.0.4');
    await client('127.0.0.5');
    const first = await Promise.race([a.serve(5000), b.serve(5000)]);
    void first;
    await waitFor(() => a.getAllClients().length === 1 && b.getAllClients().length === 1);

    // close without binding reset: the clients' streams close, their bindings stay
    const aClient = (a.getAllClients()[0] as { getUrl(): string }).getUrl();
    const from = aClient === 'ipv6://[::ffff:127.0.0.4]' ? '127.0.0.4' : '127.0.0.5';
    const aStream = a.getAllStreams()[0] as Duplex;
    void aStream;
    await a.close(false);
    t.forget(a);
    const bound = (await c.running.coordinator.clientList()).find((x) => x.url === aClient);
    expect(bound?.nodeUrl).toBe('ds://node-a/default');
    // node-a comes back (same id): the client's next connection goes to it, not to the other node
    const a2 = await node({ node: 'node-a' });
    await client(from);
    const back = await a2.serve(5000);
    expect(a2.getClient(back).getUrl()).toBe(aClient);

    // close with binding reset: the binding is gone and the next connection is the default choice
    await a2.close(true);
    t.forget(a2);
    expect(c.running.coordinator.clientList().find((x) => x.url === aClient)?.nodeUrl ?? '').not.toBe(
      'ds://node-a/default',
    );
    await client(from);
    const moved = await b.serve(5000);
    expect(b.getClient(moved).getUrl()).toBe(aClient);
  });

  it('closes the client connections of a closed node', async () => {
    const a = await node();
    const sock = await client('127.0.0.6');
    const s = await a.serve(5000);
    await write(s, 'bye');
    const ended = readToEnd(sock);
    await a.close(true);
    t.forget(a);
    expect((await ended).toString()).toBe('bye');
  });

  it('passes end-of-file both ways and closes the client when the node closes a stream', async () => {
    const a = await node();
    const sock = await client('127.0.0.7');
    const s = await a.serve(5000);
    const atNode = readToEnd(s);
    sock.end('client done');
    expect((await atNode).toString()).toBe('client done');
    const atClient = readToEnd(sock);
    s.end('node done');
    expect((await atClient).toString()).toBe('node done');
    await new Promise<void>((resolve) => (sock.destroyed ? resolve() : sock.once('close', () => resolve())));
  });

  it("relays the old node's whole backlog before the new node's output, for a client that is not reading", async () => {
    const a = await node();
    const sock = await client('127.0.0.12');
    const s = await a.serve(5000);
    const b = await node();
    sock.pause();
    const backlog = pattern(3, 0, 8 * 1024 * 1024);
    s.write(backlog);
    await a.handoffTo(b.url, a.getClient(s), 10_000);
    const [sb] = (await b.receiveHandoff(5000)).getStreams();
    (sb as Duplex).write('B-HELLO');
    sock.resume();
    const got = await readBytes(sock, backlog.length + 7, 20_000);
    expect(got.subarray(0, backlog.length).equals(backlog)).toBe(true);
    expect(got.subarray(backlog.length).toString()).toBe('B-HELLO');
  });

  it('keeps what a node wrote before its first handoff, even right after serve()', async () => {
    for (let i = 0; i < 5; i++) {
      const a = await node();
      const sock = await client(`127.0.3.${i + 1}`);
      const s = await a.serve(5000);
      const b = await node();
      s.write('HELLO');
      await a.handoffTo(b.url, a.getClient(s), 5000);
      const [sb] = (await b.receiveHandoff(5000)).getStreams();
      (sb as Duplex).write('-B');
      expect((await readBytes(sock, 7)).toString()).toBe('HELLO-B');
      await a.close();
      await b.close();
      t.forget(a);
      t.forget(b);
    }
  });

  it("ends the client's stream when a node ends it right after serve()", async () => {
    const a = await node();
    for (let i = 0; i < 5; i++) {
      const sock = await client('127.0.0.13');
      const s = await a.serve(5000);
      s.end('bye');
      expect((await readToEnd(sock, 5000)).toString()).toBe('bye');
    }
  });

  it('gives the next node a stream whose writing is closed when the old node had ended it', async () => {
    const a = await node();
    const sock = await client('127.0.0.14');
    const s = await a.serve(5000);
    const b = await node();
    const atClient = readToEnd(sock);
    s.end('last words');
    await a.handoffTo(b.url, a.getClient(s), 5000);
    const [sb] = (await b.receiveHandoff(5000)).getStreams();
    expect((sb as Duplex).writableEnded).toBe(true);
    expect((await atClient).toString()).toBe('last words');
    // the client can still send: the node reads it
    await write(sock, 'more');
    expect((await readBytes(sb as Duplex, 4)).toString()).toBe('more');
  });

  it('moves every unread byte even when the handoff timeout is shorter than the move', async () => {
    const a = await node();
    const sock = await client('127.0.0.15');
    const s = await a.serve(5000);
    const b = await node();
    const total = 16 * 1024 * 1024;
    const data = pattern(4, 0, total);
    const sent = new Promise<void>((resolve) => sock.write(data, () => resolve()));
    await new Promise((r) => setTimeout(r, 200));
    const moved = a.handoffTo(b.url, a.getClient(s), 30).catch((err: { code: number }) => {
      expect(err.code).toBe(4);
    });
    const [sb] = (await b.receiveHandoff(10_000)).getStreams();
    const got = await readBytes(sb as Duplex, total, 20_000);
    await sent;
    expect(got.equals(data)).toBe(true);
    await moved;
  });

  it('drains a node: every client moves to the others and keeps its connection', async () => {
    const a = await node();
    const socks = [await client('127.0.0.8'), await client('127.0.0.9'), await client('127.0.0.10')];
    const served = await Promise.all(socks.map(() => a.serve(5000)));
    const b = await node();
    const received: Promise<Duplex[]>[] = [];
    for (let i = 0; i < 3; i++) {
      received.push(
        b.receiveHandoff(10_000).then((h) => {
          expect(h.arrival).toEqual({ reason: 'drain', from: a.url });
          return h.getStreams();
        }),
      );
    }
    const { DsAdmin } = await import('@backplane/ds-client');
    const admin = new DsAdmin(c.running.address);
    const moved = [];
    for await (const m of admin.drain(a.url, 100)) moved.push(m);
    admin.close();
    expect(moved.map((m) => m.targetUrl)).toEqual([b.url, b.url, b.url]);
    expect(moved.every((m) => m.error === '')).toBe(true);
    const streams = (await Promise.all(received)).flat();
    for (const [i, s] of socks.entries()) await write(s, `c${i}`);
    const said = await Promise.all(streams.map((s) => readBytes(s, 2)));
    expect(said.map(String).sort()).toEqual(['c0', 'c1', 'c2']);
    void served;
    expect(a.getAllClients()).toHaveLength(0);
  });

  it('reports nodes, clients, bytes and handoff latency', async () => {
    const a = await node();
    const sock = await client('127.0.0.11');
    const s = await a.serve(5000);
    const b = await node();
    const { DsAdmin: Admin } = await import('@backplane/ds-client');
    const early = new Admin(c.running.address);
    // the data connection's token is not counted as relayed bytes
    expect((await early.status()).nodes.find((n) => n.nodeUrl === a.url)).toMatchObject({
      bytesToNode: 0,
      bytesFromNode: 0,
    });
    early.close();
    await write(sock, Buffer.alloc(10_000, 1));
    await readBytes(s, 10_000);
    await write(s, Buffer.alloc(2_000, 2));
    await readBytes(sock, 2_000);
    await a.handoffTo(b.url, a.getClient(s), 5000);
    await b.receiveHandoff(5000);
    const { DsAdmin } = await import('@backplane/ds-client');
    const admin = new DsAdmin(c.running.address);
    const status = await admin.status();
    const clients = await admin.clients({ name: 'default' });
    admin.close();
    const na = status.nodes.find((n) => n.nodeUrl === a.url);
    const nb = status.nodes.find((n) => n.nodeUrl === b.url);
    expect(na).toMatchObject({ clients: 0, handoffsOut: 1, bytesToNode: 10_000, bytesFromNode: 2_000 });
    expect(na?.handoffP99Ms).toBeGreaterThan(0);
    expect(nb).toMatchObject({ clients: 1, streams: 1, handoffsIn: 1 });
    expect(status.services).toEqual([{ name: 'default', address: c.address, pendingStreams: 0 }]);
    expect(clients).toEqual([
      { clientUrl: 'ipv6://[::ffff:127.0.0.11]', name: 'default', nodeUrl: b.url, streams: 1 },
    ]);
  });
});
