import {
  GetRequest,
  PutRequest,
  SharingServiceClient,
  SubscribeRequest,
  WatchRequest,
} from '@backplane/proto/sharing';
import { serverStream, unary } from '@backplane/runtime';
import { healthCheck, type NatsCluster, startNatsCluster, tempDir } from '@backplane/runtime/testing';
import { credentials } from '@grpc/grpc-js';
import { type RunningSharingServer, startSharingServer } from '../src/embedded';

/** Longer than nats.js's default reconnect budget (10 attempts, 2 s apart), after which it gave up. */
const OUTAGE_MS = Number(process.env.OUTAGE_MS ?? 60_000);

const put = (client: SharingServiceClient, key: string, value: string, timeoutMs = 2000) =>
  unary(client.put.bind(client), PutRequest.fromPartial({ key, value: Buffer.from(value) }), { timeoutMs });

describe('sharing node through a NATS outage', () => {
  let cluster: NatsCluster;
  let node: RunningSharingServer;
  let client: SharingServiceClient;
  const dir = tempDir();

  beforeAll(async () => {
    cluster = await startNatsCluster();
    node = await startSharingServer({ natsUrl: cluster.urls, dataDir: dir.path, port: 0, bucket: 'outage' });
    client = new SharingServiceClient(node.address, credentials.createInsecure());
    // startNatsCluster waits up to 120 s for the cluster to form (a busy machine)
  }, 180_000);

  afterAll(async () => {
    client?.close();
    await node?.close();
    await cluster?.stop();
    dir.remove();
  });

  it('reports NOT_SERVING while every nats-server is down for 60 s, and serves within 10 s of their return', async () => {
    // a cluster that has just formed may still be electing its JetStream leaders
    const started = Date.now();
    for (;;) {
      try {
        await put(client, 'k', 'before');
        break;
      } catch (err) {
        if (Date.now() - started > 30_000) throw err;
        await new Promise((r) => setTimeout(r, 250));
      }
    }
    expect(await healthCheck(node.address)).toBe('SERVING');
    expect(await healthCheck(node.address, 'backplane.sharing.v1.SharingService')).toBe('SERVING');
    const watch = serverStream(client.watch.bind(client), WatchRequest.fromPartial({ key: 'k' }));
    // the current value, then the marker that live changes follow
    expect((await watch.next()).value?.entry?.key).toBe('k');
    expect((await watch.next()).value?.synced).toBe(true);
    const events = serverStream(client.subscribe.bind(client), SubscribeRequest.fromPartial({ topic: 't' }));
    expect((await events.next()).value?.message?.$case).toBe('subscriptionId');

    const down = Date.now();
    await Promise.all(cluster.servers.map((s) => s.kill()));
    // the node notices at once, ends its watches and subscriptions, and says so on its health check
    await expect(watch.next()).rejects.toMatchObject({ code: 14 });
    await expect(events.next()).rejects.toMatchObject({ code: 14 });
    await expect(healthCheck(node.address)).resolves.toBe('NOT_SERVING');
    // calls fail fast with UNAVAILABLE and say why, for as long as the outage lasts
    const failures: number[] = [];
    while (Date.now() - down < OUTAGE_MS) {
      const t0 = Date.now();
      await expect(put(client, 'k', 'during')).rejects.toMatchObject({
        code: 14,
        reason: 'NATS_DISCONNECTED',
      });
      failures.push(Date.now() - t0);
      expect(await healthCheck(node.address, 'backplane.sharing.v1.SharingService')).toBe('NOT_SERVING');
      await new Promise((r) => setTimeout(r, 5000));
    }
    expect(failures.length).toBeGreaterThanOrEqual(Math.floor(OUTAGE_MS / 6000));
    expect(Math.max(...failures)).toBeLessThan(1000);

    await Promise.all(cluster.servers.map((s) => s.restart()));
    const back = Date.now();
    let served = 0;
    while (!served) {
      try {
        await put(client, 'k', 'after');
        served = Date.now() - back;
      } catch (err) {
        if (Date.now() - back > 10_000) throw err;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    expect(served).toBeLessThan(10_000);
    expect(await healthCheck(node.address)).toBe('SERVING');
    const got = await unary(client.get.bind(client), GetRequest.fromPartial({ key: 'k' }));
    expect(Buffer.from(got.entry?.value ?? []).toString()).toBe('after');
    // watches resume from the last revision seen
    const lastSeen = got.entry?.revision ?? 0;
    await put(client, 'k', 'later');
    const resumed = serverStream(
      client.watch.bind(client),
      WatchRequest.fromPartial({ key: 'k', fromRevision: lastSeen + 1 }),
      { timeoutMs: 5000 },
    );
    const change = (await resumed.next()).value;
    expect(Buffer.from(change?.entry?.value ?? []).toString()).toBe('later');
    await resumed.return();
    console.log(`NATS outage of ${OUTAGE_MS} ms: the node served again ${served} ms after NATS came back`);
  }, 150_000);
});
