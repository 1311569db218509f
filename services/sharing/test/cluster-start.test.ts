import { GetRequest, PutRequest, SharingServiceClient } from '@backplane/proto/sharing';
import { unary } from '@backplane/runtime';
import { type NatsCluster, startNatsCluster, tempDir } from '@backplane/runtime/testing';
import { credentials } from '@grpc/grpc-js';
import { type RunningSharingServer, startSharingServer } from '../src/embedded';

/**
 * Three nodes started at the same moment on a cluster that has just formed (what `backplane up --nats
 * --cluster 3` and compose do): each creates or finds the R3 log, snapshots and ring while the others do
 * the same and while JetStream still elects the streams' leaders. Before the fix two of three died with
 * "TimeoutError: timeout" while following the log.
 */
describe('three sharing nodes starting at once on a new NATS cluster', () => {
  let cluster: NatsCluster;
  const dirs = [tempDir(), tempDir(), tempDir()];
  let nodes: RunningSharingServer[] = [];

  beforeAll(async () => {
    cluster = await startNatsCluster(3);
    // startNatsCluster waits up to 120 s for the cluster to place a stream on every server
  }, 130_000);

  afterAll(async () => {
    await Promise.all(nodes.map((n) => n.close()));
    await cluster?.stop();
    for (const d of dirs) d.remove();
  });

  it('all start and serve one store', async () => {
    const urls = cluster.urls.split(',');
    const started = await Promise.allSettled(
      dirs.map((dir, i) =>
        startSharingServer({
          // each node prefers its own server, as `backplane up` starts them
          natsUrl: [...urls.slice(i), ...urls.slice(0, i)].join(','),
          dataDir: dir.path,
          port: 0,
          bucket: 'concurrent-start',
          replicas: 3,
        }),
      ),
    );
    nodes = started.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
    expect(started.map((s) => (s.status === 'rejected' ? String(s.reason) : 'started'))).toEqual([
      'started',
      'started',
      'started',
    ]);
    const clients = nodes.map((n) => new SharingServiceClient(n.address, credentials.createInsecure()));
    try {
      for (const [i, c] of clients.entries())
        await unary(c.put.bind(c), PutRequest.fromPartial({ key: `k${i}`, value: Buffer.from(`v${i}`) }), {
          timeoutMs: 10_000,
        });
      // every write is read at every node (linearizable reads)
      for (const c of clients)
        for (const i of [0, 1, 2]) {
          const res = await unary(c.get.bind(c), GetRequest.fromPartial({ key: `k${i}` }), {
            timeoutMs: 10_000,
          });
          expect(Buffer.from(res.entry?.value ?? []).toString()).toBe(`v${i}`);
        }
      expect((await nodes[0]?.sharing.ring.nodes())?.length).toBe(3);
    } finally {
      for (const c of clients) c.close();
    }
  }, 120_000);
});
