import { unary } from '@backplane/runtime';
import { healthCheck, reflectionListServices, spawnProcess } from '@backplane/runtime/testing';
import { status } from '@grpc/grpc-js';
import { expectCode, MAIN, namingClient, startBinary, tempDir } from './helpers';

const loc = (port: number) => ({ host: '127.0.0.1', port, metadata: {} });

describe('name-server process', () => {
  it('keeps every acknowledged binding across kill -9 and restart', async () => {
    const dir = tempDir();
    let server = await startBinary(dir.path, undefined, { BACKPLANE_LEASE_GRACE_MS: '5000' });
    try {
      let client = namingClient(server.address);
      await unary(client.createScope.bind(client), { name: 'app', parent: 'default' });
      const acked: string[] = [];
      for (let i = 0; i < 50; i++) {
        await unary(client.bind.bind(client), {
          scope: i % 2 ? 'app' : '',
          name: `svc-${i}`,
          types: ['demo.v1.Demo'],
          location: loc(10_000 + i),
          leaseTtlMs: i === 0 ? 1000 : 0,
          addressId: '',
          ownerSecret: '',
        });
        acked.push(`svc-${i}`);
      }
      client.close();
      await server.proc.kill();

      server = await startBinary(dir.path, server.port, { BACKPLANE_LEASE_GRACE_MS: '5000' });
      client = namingClient(server.address);
      for (const [i, name] of acked.entries()) {
        const r = await unary(client.resolve.bind(client), {
          scope: 'app',
          name,
          expectedType: 'demo.v1.Demo',
        });
        expect(r.binding?.location?.port).toBe(10_000 + i);
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
      await server.proc.kill();
      dir.remove();
    }
  }, 60_000);

  it('unbinds a killed server when its lease runs out after a restart grace period', async () => {
    const dir = tempDir();
    const server = await startBinary(dir.path, undefined, { BACKPLANE_LEASE_GRACE_MS: '0' });
    try {
      const client = namingClient(server.address);
      await unary(client.bind.bind(client), {
        scope: '',
        name: 'short-lived',
        types: [],
        location: loc(1),
        leaseTtlMs: 600,
        addressId: '',
        ownerSecret: '',
      });
      await new Promise((r) => setTimeout(r, 1200));
      await expectCode(
        unary(client.resolve.bind(client), { scope: '', name: 'short-lived', expectedType: '' }),
        status.NOT_FOUND,
      );
      client.close();
    } finally {
      await server.proc.stop();
      dir.remove();
    }
  }, 30_000);

  it('refuses a bad setting with a message that names it', async () => {
    const proc = spawnProcess(process.execPath, [MAIN], { env: { ...process.env, BACKPLANE_PORT: 'abc' } });
    expect(await proc.exited).toBe(2);
    expect(proc.output()).toContain('invalid BACKPLANE_PORT');
  });
});
