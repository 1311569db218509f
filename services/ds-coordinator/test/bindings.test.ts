import { memoryStore } from '@backplane/runtime/testing';
import { Bindings } from '../src/bindings';
import { attachNode, connectClient, startCoordinator } from './helpers';

describe('Bindings', () => {
  it('forgets a client idle for the TTL, keeps one with connections, and survives a reopen otherwise', async () => {
    const store = memoryStore();
    await store.open();
    const clock = { now: 1_000_000 };
    const now = () => clock.now;
    let b = await Bindings.open(store, { ttlMs: 60_000, now });
    // a client connects, is bound, and leaves; another stays connected
    b.active('svc', 'ipv6://[::ffff:127.0.0.2]');
    await b.bind('svc', 'ipv6://[::ffff:127.0.0.2]', 'node-a');
    b.idle('svc', 'ipv6://[::ffff:127.0.0.2]');
    b.active('svc', 'ipv6://[::ffff:127.0.0.3]');
    await b.bind('svc', 'ipv6://[::ffff:127.0.0.3]', 'node-b');
    clock.now += 59_000;
    expect(await b.expire()).toBe(0);
    clock.now += 2_000;
    expect(await b.expire()).toBe(1);
    expect(b.get('svc', 'ipv6://[::ffff:127.0.0.2]')).toBeUndefined();
    expect(b.get('svc', 'ipv6://[::ffff:127.0.0.3]')).toBe('node-b');
    b.close();
    // read back after a restart: the expired one is gone from the store too; the clock starts again
    b = await Bindings.open(store, { ttlMs: 60_000, now });
    expect([...b.entries()]).toEqual([['svc', 'ipv6://[::ffff:127.0.0.3]', 'node-b']]);
    clock.now += 30_000;
    b.active('svc', 'ipv6://[::ffff:127.0.0.3]'); // it reconnected
    clock.now += 120_000;
    expect(await b.expire()).toBe(0);
    b.idle('svc', 'ipv6://[::ffff:127.0.0.3]');
    clock.now += 60_000;
    expect(await b.expire()).toBe(1);
    expect(b.size).toBe(0);
    b.close();
    // TTL 0: never
    const forever = await Bindings.open(store, { ttlMs: 0, now });
    await forever.bind('svc', 'ipv6://[::ffff:127.0.0.4]', 'node-a');
    forever.idle('svc', 'ipv6://[::ffff:127.0.0.4]');
    clock.now += 10 ** 9;
    expect(await forever.expire()).toBe(0);
    forever.close();
    await store.close();
  });

  it('in a running coordinator: a client that left loses its binding after the TTL, a connected one keeps it', async () => {
    const c = await startCoordinator({ bindingTtlMs: 1000 });
    const node = await attachNode(c);
    try {
      const leaving = await connectClient(c.address, '127.0.0.21');
      const staying = await connectClient(c.address, '127.0.0.22');
      const streams = [await node.serve(5000), await node.serve(5000)];
      expect(c.running.coordinator.bindingCount).toBe(2);
      // the leaving client's connection closes at both ends
      const left = streams.find((s) => node.getClient(s).getUrl().endsWith('127.0.0.21]'));
      expect(left).toBeDefined();
      leaving.destroy();
      left?.destroy();
      const deadline = Date.now() + 5000;
      while (c.running.coordinator.bindingCount > 1 && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 100));
      expect(c.running.coordinator.bindingCount).toBe(1);
      await new Promise((r) => setTimeout(r, 1500));
      expect(c.running.coordinator.bindingCount).toBe(1); // the connected client's stays
      staying.destroy();
    } finally {
      await node.close();
      await c.stop();
    }
  }, 20_000);
});
