import { unary } from '@backplane/runtime';
import { healthCheck, reflectionListServices, spawnProcess, waitFor } from '@backplane/runtime/testing';
import { status } from '@grpc/grpc-js';
import { MAIN, namingClient, startBinary, tempDir } from './helpers';

const loc = (port: number) => ({ host: '127.0.0.1', port, metadata: {} });

describe('name-server process', () => {
  it('keeps every acknowledged binding across a kill -9 that lands with binds in flight', async () => {
    const dir = tempDir();
    let server = await startBinary(dir.path, undefined, { BACKPLANE_LEASE_GRACE_MS: '5000' });
    const port = server.port;
    let client = namingClient(server.address);
    try {
      await unary(client.createScope.bind(client), { name: 'app', parent: 'default' });
      // four writers bind names as fast as they are answered; the kill lands while their binds are in flight
      const acked = new Map<string, number>();
      const failed: string[] = [];
      let stop = false;
      const writers = Array.from({ length: 4 }, (_, w) =>
        (async () => {
          for (let n = 0; !stop; n++) {
            const name = `svc-${w}-${n}`;
            const p = 10_000 + ((w * 1000 + n) % 50_000);
            try {
              await unary(client.bind.bind(client), {
                scope: n % 2 ? 'app' : '',
                name,
                types: ['demo.v1.Demo'],
                location: loc(p),
                leaseTtlMs: n === 0 ? 1000 : 0,
                addressId: '',
                ownerSecret: '',
              });
              acked.set(name, p);
            } catch {
              failed.push(name);
              return;
            }
          }
        })(),
      );
      await waitFor(() => acked.size >= 200, 20_000);
      await server.proc.kill();
      stop = true;
      await Promise.all(writers);
      client.close();
      // the kill cut binds off mid-call (each writer's last one failed), not after they were all answered
      expect(failed.length).toBe(4);

      server = await startBinary(dir.path, port, { BACKPLANE_LEASE_GRACE_MS: '5000' });
      client = namingClient(server.address);
      for (const [name, p] of acked) {
        const r = await unary(client.resolve.bind(client), {
          scope: 'app',
          name,
          expectedType: 'demo.v1.Demo',
        });
        expect(r.binding?.location?.port).toBe(p);
      }
      // the name server publishes itself in its own default scope
      const self = await unary(client.resolve.bind(client), {
        scope: '',
        name: 'name-server',
        expectedType: 'backplane.naming.v1.NamingService',
      });
      expect(self.binding?.location?.port).toBe(server.port);
      await expect(healthCheck(server.address)).resolves.toBe('SERVING');
      expect(await reflectionListServices(server.address)).toContain('backplane.naming.v1.NamingService');
      client.close();

      // SIGTERM: a clean stop
      const code = await server.proc.stop('SIGTERM');
      expect(code).toBe(0);
      expect(server.proc.output()).toContain('"msg":"stopped"');
    } finally {
      client.close();
      await server.proc.kill();
      dir.remove();
    }
  }, 60_000);

  it('after a kill -9 and restart, keeps leased bindings for the grace period, then unbinds the servers that did not renew', async () => {
    const GRACE_MS = 2000;
    const env = { BACKPLANE_LEASE_GRACE_MS: String(GRACE_MS) };
    const dir = tempDir();
    let server = await startBinary(dir.path, undefined, env);
    const port = server.port;
    let client = namingClient(server.address);
    const bind = (name: string) =>
      unary(client.bind.bind(client), {
        scope: '',
        name,
        types: [],
        location: loc(1),
        leaseTtlMs: 500,
        addressId: '',
        ownerSecret: '',
      });
    const resolves = async (name: string) => {
      try {
        await unary(client.resolve.bind(client), { scope: '', name, expectedType: '' });
        return true;
      } catch (err) {
        if ((err as { code?: number }).code !== status.NOT_FOUND) throw err;
        return false;
      }
    };
    let renewing = true;
    try {
      // a server that dies with the name server and never renews, and one that keeps renewing throughout
      await bind('killed-server');
      const live = await bind('live-server');
      const renewals = (async () => {
        while (renewing) {
          await unary(
            client.keepAlive.bind(client),
            { addressId: live.addressId, ownerSecret: live.ownerSecret },
            { timeoutMs: 500 },
          ).catch(() => undefined); // the name server is down for a moment
          await new Promise((r) => setTimeout(r, 100));
        }
      })();
      await server.proc.kill();
      // down for longer than the lease: the killed server's lease ran out meanwhile
      await new Promise((r) => setTimeout(r, 700));
      server = await startBinary(dir.path, port, env);
      const back = Date.now();
      client.close();
      client = namingClient(server.address);
      // within the grace period both still resolve: a live server gets the time to renew
      expect(await resolves('killed-server')).toBe(true);
      expect(await resolves('live-server')).toBe(true);
      await waitFor(async () => !(await resolves('killed-server')), GRACE_MS + 5000, 50);
      const unboundAfter = Date.now() - back;
      // not before the grace period ran out (measured from when the restarted server said it was ready,
      // after it loaded the registry and started the grace period)
      expect(unboundAfter).toBeGreaterThanOrEqual(GRACE_MS - 500);
      expect(await resolves('live-server')).toBe(true);
      renewing = false;
      await renewals;
    } finally {
      renewing = false;
      client.close();
      await server.proc.stop();
      dir.remove();
    }
  }, 60_000);

  it('refuses a bad setting with a message that names it', async () => {
    const proc = spawnProcess(process.execPath, [MAIN], { env: { ...process.env, BACKPLANE_PORT: 'abc' } });
    expect(await proc.exited).toBe(2);
    expect(proc.output()).toContain('invalid BACKPLANE_PORT');
  });
});
