import { connect } from '@nats-io/transport-node';
import { startNats, startNatsCluster } from '../src/testing';

describe('nats test helpers', () => {
  it('starts a real JetStream nats-server on a free port and stops it', async () => {
    const nats = await startNats();
    try {
      const nc = await connect({ servers: nats.url });
      const sub = nc.subscribe('hello', { max: 1 });
      nc.publish('hello', 'world');
      for await (const m of sub) expect(m.string()).toBe('world');
      const info = await nc.request('$JS.API.INFO', '', { timeout: 2000 });
      expect(info.json<{ type: string }>().type).toBe('io.nats.jetstream.api.v1.account_info_response');
      await nc.close();
    } finally {
      await nats.stop();
    }
    expect(nats.process.child.exitCode !== null || nats.process.child.signalCode !== null).toBe(true);
  });

  it('starts a three-node cluster whose members route messages to each other', async () => {
    const cluster = await startNatsCluster();
    try {
      const [a, b] = cluster.servers;
      const pub = await connect({ servers: a!.url });
      const sub = await connect({ servers: b!.url });
      const s = sub.subscribe('across', { max: 1 });
      await sub.flush();
      // routes may take a moment to form: publish until the other side receives
      const got = (async () => {
        for await (const m of s) return m.string();
        return undefined;
      })();
      const timer = setInterval(() => pub.publish('across', 'hop'), 100);
      await expect(got).resolves.toBe('hop');
      clearInterval(timer);
      await pub.close();
      await sub.close();
    } finally {
      await cluster.stop();
    }
  }, 30_000);
});
