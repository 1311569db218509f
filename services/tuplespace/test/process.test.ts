import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  CommandRequest,
  type Template,
  type Tuple,
  TupleSpaceServiceClient,
} from '@backplane/proto/tuplespace';
import { unary } from '@backplane/runtime';
import { startServiceBinary, tempDir } from '@backplane/runtime/testing';
import { credentials, Metadata } from '@grpc/grpc-js';

const MAIN = join(__dirname, '..', 'dist', 'main.js');
const PASSWORD = 'process-test-password';

function start(dataDir: string, port?: number, env: Record<string, string> = {}) {
  return startServiceBinary(MAIN, {
    dataDir,
    port,
    env: { BACKPLANE_NAMESERVER: '', BACKPLANE_TS_ADMIN_PASSWORD: PASSWORD, ...env },
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
      // a take cut off by the kill may have removed a tuple without its answer arriving
      let takeInFlight = false;
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
              takeInFlight = true;
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
              takeInFlight = false;
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
      // every acknowledged write is there unless an acknowledged take removed it (or the one take the
      // kill cut off, whose answer never came)
      const missing = [...written].filter((n) => !taken.has(n) && !found.has(n));
      expect(missing.length).toBeLessThanOrEqual(takeInFlight ? 1 : 0);
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

  it('loads a factory from the plugins directory and keeps the whole stack (and START) across kill -9', async () => {
    const dir = tempDir();
    const plugins = tempDir();
    // an operator's plugin: SHOUT(text) → (TEXT), needing READ
    writeFileSync(
      join(plugins.path, 'shout.js'),
      `const handler = {
        attributes: () => ['READ'],
        command: async (ts, command, inv) => {
          const text = inv.arg.fields[0].value.kind.stringValue;
          return { result: { fields: [{ name: '', value: { kind: { $case: 'stringValue', stringValue: text.toUpperCase() } } }] } };
        },
      };
      exports.factories = { shout: () => ({ name: 'shout', handles: (c) => (c === 'SHOUT' ? handler : undefined) }) };`,
    );
    const env = { BACKPLANE_TS_PLUGINS_DIR: plugins.path };
    let server = await start(dir.path, undefined, env);
    const port = server.port;
    let client = new TupleSpaceServiceClient(server.address, credentials.createInsecure());
    const md = new Metadata();
    md.set('authorization', `Basic ${Buffer.from(`admin:${PASSWORD}`).toString('base64')}`);
    const call = <Req, Res>(
      fn: (req: Req, md: Metadata, cb: (e: Error | null, r: Res) => void) => unknown,
      req: Req,
    ) => unary(fn.bind(client) as never, req, { metadata: md }) as Promise<Res>;
    const shout = (text: string) =>
      call(
        client.command,
        CommandRequest.fromPartial({
          space: 'plug',
          command: 'SHOUT',
          arg: { fields: [{ name: '', value: { kind: { $case: 'stringValue', stringValue: text } } }] },
        }),
      );
    const staleTemplate: Template = {
      fields: [{ name: 'staleAt', kind: { $case: 'formal', formal: 6 } }],
    };
    try {
      await call(client.createSpace, { space: 'plug', acl: [], ifNotExists: false });
      await call(client.addFactory, { space: 'plug', factory: 'shout' });
      await call(client.addFactory, { space: 'plug', factory: 'extendable' });
      await call(client.addHandler, { space: 'plug', command: 'WRITE', handler: 'stale-tuple' });
      await call(client.addHandler, { space: 'plug', command: 'START', handler: 'stale-tuple' });
      await call(
        client.command,
        CommandRequest.fromPartial({
          space: 'plug',
          command: 'START',
          arg: { fields: [{ name: '', value: { kind: { $case: 'intValue', intValue: 20 } } }] },
        }),
      );
      expect((await shout('hello')) as unknown).toMatchObject({
        result: { fields: [{ value: { kind: { stringValue: 'HELLO' } } }] },
      });

      await server.proc.kill();
      client.close();
      server = await start(dir.path, port, env);
      client = new TupleSpaceServiceClient(server.address, credentials.createInsecure());

      const stack = (await call(client.listFactories, { space: 'plug' })) as {
        factories: Array<{ name: string; handlers: Record<string, string> }>;
      };
      expect(stack.factories.map((f) => f.name)).toEqual(['extendable', 'shout', 'basic']);
      expect(stack.factories[0]?.handlers).toEqual({ WRITE: 'stale-tuple', START: 'stale-tuple' });
      expect((await shout('again')) as unknown).toMatchObject({
        result: { fields: [{ value: { kind: { stringValue: 'AGAIN' } } }] },
      });
      // START came back by itself: WRITE stamps, and the deleter removes the tuple once stale
      const written = (await call(client.write, {
        space: 'plug',
        tuple: {
          fields: [
            // long enough that the count right after the write sees it however busy the machine is
            { name: 'staleTtl', value: { kind: { $case: 'intValue', intValue: 1500 } } },
            { name: '', value: { kind: { $case: 'stringValue', stringValue: 'x' } } },
          ],
        },
        ttlMs: 0,
        txnId: '',
      })) as { id: number };
      expect(written.id).toBeGreaterThan(0);
      const count = async () =>
        (
          (await call(client.count, { space: 'plug', template: staleTemplate, txnId: '' })) as {
            count: number;
          }
        ).count;
      expect(await count()).toBe(1);
      const deadline = Date.now() + 8000;
      while ((await count()) > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
      expect(await count()).toBe(0);

      // the module is gone: the space refuses commands instead of running without it, until it is removed
      await server.proc.kill();
      client.close();
      rmSync(join(plugins.path, 'shout.js'));
      server = await start(dir.path, port, env);
      client = new TupleSpaceServiceClient(server.address, credentials.createInsecure());
      await expect(shout('gone')).rejects.toMatchObject({ code: 9 });
      await expect(
        call(client.count, { space: 'plug', template: staleTemplate, txnId: '' }),
      ).rejects.toMatchObject({
        code: 9,
      });
      await call(client.removeFactory, { space: 'plug', index: 1 });
      expect(await count()).toBe(0);
      await expect(shout('gone')).rejects.toMatchObject({ code: 3 }); // INVALID_ARGUMENT UNKNOWN_COMMAND
    } finally {
      client.close();
      await server.proc.stop();
      dir.remove();
      plugins.remove();
    }
  }, 60_000);
});
