import { join } from 'node:path';
import { GetRequest, PutRequest, SharingServiceClient, SubscribeRequest } from '@backplane/proto/sharing';
import { serverStream, unary } from '@backplane/runtime';
import { startServiceBinary, tempDir } from '@backplane/runtime/testing';
import { credentials } from '@grpc/grpc-js';

const MAIN = join(__dirname, '..', 'dist', 'main.js');
const start = (dataDir: string, port?: number) =>
  startServiceBinary(MAIN, { dataDir, port, env: { BACKPLANE_NAMESERVER: '' }, ready: /sharing node ready/ });

describe('sharing process', () => {
  it('loses no acknowledged put when killed -9 during a stream of puts', async () => {
    const dir = tempDir();
    let server = await start(dir.path);
    const port = server.port;
    let client = new SharingServiceClient(server.address, credentials.createInsecure());
    const acked = new Map<string, number>();
    try {
      let stop = false;
      const writers = Array.from({ length: 4 }, (_, w) =>
        (async () => {
          for (let n = 0; !stop; n++) {
            const key = `k.w${w}.n${n % 50}`;
            try {
              const r = await unary(
                client.put.bind(client),
                PutRequest.fromPartial({ key, value: Buffer.from(`${n}`) }),
              );
              acked.set(key, Math.max(acked.get(key) ?? 0, r.revision));
            } catch {
              return;
            }
          }
        })(),
      );
      await new Promise((r) => setTimeout(r, 600));
      await server.proc.kill();
      stop = true;
      await Promise.all(writers);
      client.close();
      expect(acked.size).toBeGreaterThan(20);
      server = await start(dir.path, port);
      client = new SharingServiceClient(server.address, credentials.createInsecure());
      for (const [key, revision] of acked) {
        const got = await unary(client.get.bind(client), GetRequest.fromPartial({ key }));
        expect(got.found).toBe(true);
        expect(got.entry?.revision).toBeGreaterThanOrEqual(revision);
      }
    } finally {
      client.close();
      await server.proc.stop();
      dir.remove();
    }
  });

  it('stops cleanly on SIGTERM, ending subscriptions with UNAVAILABLE', async () => {
    const dir = tempDir();
    const server = await start(dir.path);
    const client = new SharingServiceClient(server.address, credentials.createInsecure());
    try {
      const it = serverStream(client.subscribe.bind(client), SubscribeRequest.fromPartial({ topic: 'a.>' }));
      expect((await it.next()).value?.message?.$case).toBe('subscriptionId');
      const code = server.proc.stop('SIGTERM');
      await expect(it.next()).rejects.toMatchObject({ code: 14 });
      expect(await code).toBe(0);
    } finally {
      client.close();
      dir.remove();
    }
  });
});
