import { startNats } from '@backplane/runtime/testing';
import { connect } from '@nats-io/transport-node';
import { NatsRing } from '../src/ring';

describe('NatsRing', () => {
  it('lists every announced node, and answers with the last ring read when the bucket is unreachable', async () => {
    const nats = await startNats();
    const [ncA, ncB] = await Promise.all([connect({ servers: nats.url }), connect({ servers: nats.url })]);
    const a = await NatsRing.join(ncA, 'ring-test', { id: 'a', address: '10.0.0.1:8400' });
    const b = await NatsRing.join(ncB, 'ring-test', { id: 'b', address: '10.0.0.2:8400' });
    try {
      const both = [
        { id: 'a', address: '10.0.0.1:8400' },
        { id: 'b', address: '10.0.0.2:8400' },
      ];
      expect(await a.nodes()).toEqual(both);

      await b.close(); // a stopping node leaves at once
      expect(await a.nodes()).toEqual([both[0]]);
      await b.close();
      const b2 = await NatsRing.join(ncB, 'ring-test', { id: 'b', address: '10.0.0.2:8400' });
      expect(await a.nodes()).toEqual(both);

      await nats.kill(); // the bucket is gone with its server
      let started = Date.now();
      expect(await a.nodes()).toEqual(both);
      expect(Date.now() - started).toBeLessThan(2500);
      started = Date.now();
      await Promise.all([a.close(), b2.close()]); // leaving is bounded too
      expect(Date.now() - started).toBeLessThan(2500);
    } finally {
      await Promise.all([a.close(), b.close(), ncA.close(), ncB.close()]);
      await nats.stop();
    }
  }, 30_000);
});
