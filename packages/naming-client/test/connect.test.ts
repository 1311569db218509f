import type { RunningNameServer } from '@backplane/name-server';
import { EchoServiceClient } from '@backplane/proto/echo';
import { BackplaneError, type RunningService, unary } from '@backplane/runtime';
import { waitFor } from '@backplane/runtime/testing';
import { status } from '@grpc/grpc-js';
import { connect, lookup, nameCache, publish } from '../src';
import { ECHO, startLabelledEcho, startTestNameServer } from './helpers';

describe('connect()', () => {
  let ns: RunningNameServer;
  let a: RunningService;
  let b: RunningService;

  beforeAll(async () => {
    ns = await startTestNameServer();
    a = await startLabelledEcho('A');
    b = await startLabelledEcho('B');
  });

  afterAll(async () => {
    nameCache.close();
    await Promise.all([a.close(), b.close()]);
    await ns.close();
  });

  it('gives a typed client that follows a migration while calls continue', async () => {
    const pub = await publish(
      { host: '127.0.0.1', port: a.port },
      { name: 'echo', types: [ECHO], nameServer: ns.address, leaseTtlMs: 3000 },
    );
    const client = await connect(EchoServiceClient, 'echo', { nameServer: ns.address, expectedType: ECHO });
    const rpcsAfterConnect = nameCache.stats.resolveRpcs;

    const seen: string[] = [];
    const failures: unknown[] = [];
    let stop = false;
    const loops = Array.from({ length: 8 }, async () => {
      while (!stop) {
        try {
          const res = await unary(
            client.echo.bind(client),
            { payload: Buffer.from('x') },
            { timeoutMs: 5000 },
          );
          seen.push(res.payload.toString().slice(0, 1));
        } catch (err) {
          failures.push(err);
        }
      }
    });
    await waitFor(() => seen.length > 200);
    expect(new Set(seen)).toEqual(new Set(['A']));

    await pub.migrate({ host: '127.0.0.1', port: b.port });
    const mark = seen.length;
    await waitFor(() => seen.slice(mark).includes('B'), 5000);
    // once the channel has switched, A can go away: nothing fails
    await waitFor(() => seen.slice(-50).every((s) => s === 'B') && seen.length > mark + 100, 5000);
    await a.close();
    const afterStop = seen.length;
    await waitFor(() => seen.length > afterStop + 200, 5000);
    stop = true;
    await Promise.all(loops);

    expect(failures).toEqual([]);
    expect(seen.slice(afterStop).every((s) => s === 'B')).toBe(true);
    // thousands of calls and a migration cost one Resolve for the migration, none per call
    expect(nameCache.stats.resolveRpcs - rpcsAfterConnect).toBeLessThanOrEqual(2);
    client.close();
    await pub.close();
  }, 30_000);

  it('costs no RPC for a cached resolution', async () => {
    const pub = await publish(
      { host: '127.0.0.1', port: b.port },
      { name: 'cached', types: [ECHO], nameServer: ns.address },
    );
    const first = await connect(EchoServiceClient, 'cached', { nameServer: ns.address });
    const before = { ...nameCache.stats };
    const clients = await Promise.all(
      Array.from({ length: 10 }, () => connect(EchoServiceClient, 'cached', { nameServer: ns.address })),
    );
    await lookup('cached', { nameServer: ns.address });
    expect(nameCache.stats).toEqual(before);
    for (const c of [first, ...clients]) c.close();
    await pub.close();
  });

  it('stops following names that no channel uses any more', async () => {
    const pub = await publish(
      { host: '127.0.0.1', port: b.port },
      { name: 'transient', types: [ECHO], nameServer: ns.address },
    );
    const client = await connect(EchoServiceClient, 'transient', { nameServer: ns.address });
    await unary(client.echo.bind(client), { payload: Buffer.from('x') });
    nameCache.sweep(Date.now() + 3_600_000); // names of earlier tests, whose clients are closed
    expect(nameCache.sweep(Date.now() + 3_600_000)).toBe(0); // this one's channel still follows it
    client.close();
    await waitFor(() => nameCache.sweep(Date.now() + 3_600_000) >= 1);
    await pub.close();
  });

  it('fails with NOT_FOUND for an unknown name and TYPE_MISMATCH for a server of the wrong type', async () => {
    const missing = await connect(EchoServiceClient, 'nobody', { nameServer: ns.address }).catch(
      (e: unknown) => e,
    );
    expect(missing).toBeInstanceOf(BackplaneError);
    expect((missing as BackplaneError).code).toBe(status.NOT_FOUND);
    const pub = await publish(
      { host: '127.0.0.1', port: b.port },
      { name: 'printer', types: ['moose.Printer'], nameServer: ns.address },
    );
    const wrong = await connect(EchoServiceClient, 'printer', {
      nameServer: ns.address,
      expectedType: ECHO,
    }).catch((e: unknown) => e);
    expect(wrong).toMatchObject({ code: status.FAILED_PRECONDITION, reason: 'TYPE_MISMATCH' });
    await pub.close();
  });

  it('picks up a binding that appears in an application scope and overrides the default one', async () => {
    await ns.registry.createScope('app', 'default');
    const pubA = await publish(
      { host: '127.0.0.1', port: b.port },
      { name: 'fs', types: [ECHO], nameServer: ns.address },
    );
    const client = await connect(EchoServiceClient, 'fs', { nameServer: ns.address, scope: 'app' });
    const first = await unary(client.echo.bind(client), { payload: Buffer.from('1') });
    expect(first.payload.toString()).toBe('B:1');
    const c = await startLabelledEcho('C');
    const pubC = await publish(
      { host: '127.0.0.1', port: c.port },
      { name: 'fs', scope: 'app', types: [ECHO], nameServer: ns.address },
    );
    await waitFor(
      async () =>
        (await unary(client.echo.bind(client), { payload: Buffer.from('2') })).payload.toString() === 'C:2',
    );
    client.close();
    await pubC.close();
    await pubA.close();
    await c.close();
  });
});
