import { join } from 'node:path';
import { type Template, type Tuple, TupleSpaceServiceClient } from '@backplane/proto/tuplespace';
import { unary } from '@backplane/runtime';
import { startServiceBinary, tempDir } from '@backplane/runtime/testing';
import { credentials, Metadata } from '@grpc/grpc-js';

const MAIN = join(__dirname, '..', 'dist', 'main.js');
const PASSWORD = 'process-test-password';

function start(dataDir: string, port?: number) {
  return startServiceBinary(MAIN, {
    dataDir,
    port,
    env: { BACKPLANE_NAMESERVER: '', BACKPLANE_TS_ADMIN_PASSWORD: PASSWORD },
    ready: /tuple space server ready/,
  });
}

const t = (n: number): Tuple => ({
  fields: [
    { name: '', value: { kind: { $case: 'stringValue', stringValue: 'k' } } },
    { name: '', value: { kind: { $case: 'intValue', intValue: n } } },
  ],
});
const all: Template = {
  fields: [
    { name: '', kind: { $case: 'actual', actual: { kind: { $case: 'stringValue', stringValue: 'k' } } } },
    { name: '', kind: { $case: 'formal', formal: 2 } },
  ],
};

describe('tuplespace process', () => {
  it('loses nothing acknowledged when killed -9 during a stream of writes and takes', async () => {
    const dir = tempDir();
    let server = await start(dir.path);
    const port = server.port;
    let client = new TupleSpaceServiceClient(server.address, credentials.createInsecure());
    const md = new Metadata();
    md.set('authorization', `Basic ${Buffer.from(`admin:${PASSWORD}`).toString('base64')}`);
    try {
      await unary(
        client.createSpace.bind(client),
        { space: 'durable', acl: [], ifNotExists: false },
        { metadata: md },
      );
      const written = new Set<number>();
      const taken = new Set<number>();
      let stop = false;
      const writer = (async () => {
        for (let n = 0; !stop; n++) {
          try {
            await unary(
              client.write.bind(client),
              { space: 'durable', tuple: t(n), ttlMs: 0, txnId: '' },
              { metadata: md },
            );
            written.add(n);
            if (n % 3 === 0) {
              const r = await unary(
                client.take.bind(client),
                { space: 'durable', template: all, txnId: '' },
                { metadata: md },
              );
              if (r.found)
                taken.add(
                  Number(
                    r.record?.tuple?.fields[1]?.value?.kind?.$case === 'intValue'
                      ? r.record.tuple.fields[1].value.kind.intValue
                      : -1,
                  ),
                );
            }
          } catch {
            return;
          }
        }
      })();
      await new Promise((r) => setTimeout(r, 700));
      await server.proc.kill();
      stop = true;
      await writer;
      client.close();
      expect(written.size).toBeGreaterThan(20);

      server = await start(dir.path, port);
      client = new TupleSpaceServiceClient(server.address, credentials.createInsecure());
      const found = new Set<number>();
      for await (const m of client.scan({ space: 'durable', template: all, limit: 0, txnId: '' }, md)) {
        for (const r of m.records) {
          const v = r.tuple?.fields[1]?.value?.kind;
          if (v?.$case === 'intValue') found.add(v.intValue);
        }
      }
      // every acknowledged write is there unless an acknowledged take removed it
      for (const n of written) if (!taken.has(n)) expect(found.has(n)).toBe(true);
      for (const n of taken) expect(found.has(n)).toBe(false);
    } finally {
      client.close();
      await server.proc.stop();
      dir.remove();
    }
  });

  it('stops cleanly on SIGTERM, ending blocked waiters with UNAVAILABLE', async () => {
    const dir = tempDir();
    const server = await start(dir.path);
    const client = new TupleSpaceServiceClient(server.address, credentials.createInsecure());
    try {
      const waiting = unary(
        client.waitToTake.bind(client),
        { space: 'default', template: all, txnId: '' },
        {},
      );
      await new Promise((r) => setTimeout(r, 200));
      const code = server.proc.stop('SIGTERM');
      await expect(waiting).rejects.toMatchObject({ code: 14 });
      expect(await code).toBe(0);
    } finally {
      client.close();
      dir.remove();
    }
  });
});
