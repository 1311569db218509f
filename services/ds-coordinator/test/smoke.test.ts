import { attachNode, connectClient, readBytes, startCoordinator, write } from './helpers';

describe('ds smoke', () => {
  it('relays and hands off', async () => {
    const c = await startCoordinator();
    const a = await attachNode(c);
    const b = await attachNode(c);
    const client = await connectClient(c.address, '127.0.0.2');
    const s = await a.serve(5000);
    await write(client, 'hello');
    expect((await readBytes(s, 5)).toString()).toBe('hello');
    await write(s, 'world');
    expect((await readBytes(client, 5)).toString()).toBe('world');
    await write(client, 'unread');
    await new Promise((r) => setTimeout(r, 50));
    const dc = a.getClient(s);
    dc.setMessage('msg');
    await a.handoffTo(b.url, dc, 5000);
    const got = await b.receiveHandoff(5000);
    expect(got.getMessage()?.toString()).toBe('msg');
    const [s2] = got.getStreams();
    if (!s2) throw new Error('no stream');
    expect((await readBytes(s2, 6)).toString()).toBe('unread');
    await write(client, 'more');
    expect((await readBytes(s2, 4)).toString()).toBe('more');
    await write(s2, 'fromB');
    expect((await readBytes(client, 5)).toString()).toBe('fromB');
    client.destroy();
    await a.close();
    await b.close();
    await c.stop();
  });
});
