import { type NatsServer, startNats } from '@backplane/runtime/testing';
import { Kvm } from '@nats-io/kv';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { DirectGetter } from '../src/direct-get';

describe('DirectGetter', () => {
  let nats: NatsServer;
  let nc: NatsConnection;
  beforeAll(async () => {
    nats = await startNats();
    nc = await connect({ servers: nats.url });
  });
  afterAll(async () => {
    await nc.close();
    await nats.stop();
  });

  it("gets a subject's last message with its sequence and headers, and null when there is none", async () => {
    const kv = await new Kvm(nc).create('dg', { history: 4 });
    await kv.put('a', 'one');
    const rev = await kv.put('a', 'two');
    const getter = new DirectGetter(nc);
    try {
      const m = await getter.last('KV_dg', '$KV.dg.a');
      expect(m).toMatchObject({ subject: '$KV.dg.a', seq: rev });
      expect(Buffer.from(m?.data ?? []).toString()).toBe('two');
      expect(m?.headers?.get('Nats-Stream')).toBe('KV_dg');
      expect(await getter.last('KV_dg', '$KV.dg.missing')).toBeNull();
      // many at once, each with its own answer
      const all = await Promise.all(
        Array.from({ length: 500 }, (_, i) => getter.last('KV_dg', i % 2 ? '$KV.dg.a' : '$KV.dg.b')),
      );
      expect(all.filter((x) => x?.seq === rev)).toHaveLength(250);
      expect(all.filter((x) => x === null)).toHaveLength(250);
    } finally {
      getter.close();
    }
  });

  it('sends the requests asked for in one turn of the event loop together, and fails those it cannot send', async () => {
    const getter = new DirectGetter(nc);
    const publish = jest.spyOn(nc, 'publish');
    try {
      const pending = Array.from({ length: 20 }, () => getter.last('KV_dg', '$KV.dg.a'));
      expect(publish).not.toHaveBeenCalled();
      await new Promise((r) => setImmediate(r));
      expect(publish).toHaveBeenCalledTimes(20);
      expect((await Promise.all(pending)).every((m) => m?.subject === '$KV.dg.a')).toBe(true);
    } finally {
      publish.mockRestore();
      getter.close();
    }
    const closedConn = await connect({ servers: nats.url });
    const onClosed = new DirectGetter(closedConn);
    await closedConn.close();
    await expect(onClosed.last('KV_dg', '$KV.dg.a')).rejects.toThrow(/closed/i);
    onClosed.close();
  });

  it('fails at once when nobody answers, after its timeout when JetStream is silent, and when closed', async () => {
    const nobody = new DirectGetter(nc, 2000, 'nobody.api');
    await expect(nobody.last('KV_dg', '$KV.dg.a')).rejects.toThrow(/503/);
    nobody.close();
    // a responder that takes the request and never answers (nats-server 2.9 did that for a stream it does
    // not have; 2.10 answers 503 at once)
    const silent = nc.subscribe('silent.api.>', { callback: () => undefined });
    await nc.flush();
    const getter = new DirectGetter(nc, 300, 'silent.api');
    const t0 = Date.now();
    await expect(getter.last('KV_nothing_here', '$KV.nothing_here.a')).rejects.toThrow(/timed out/);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(250);
    expect(Date.now() - t0).toBeLessThan(1500);
    const pending = getter.last('KV_nothing_here', '$KV.nothing_here.b');
    getter.close();
    silent.unsubscribe();
    await expect(pending).rejects.toThrow(/closed/);
  });
});
