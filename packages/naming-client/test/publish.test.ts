import { join } from 'node:path';
import type { RunningNameServer } from '@backplane/name-server';
import { startNameServer } from '@backplane/name-server';
import { freePort, spawnProcess, waitFor } from '@backplane/runtime/testing';
import { status } from '@grpc/grpc-js';
import { NamingClient, publish } from '../src';
import { ECHO, memoryStore, startTestNameServer } from './helpers';

describe('publish()', () => {
  let ns: RunningNameServer;
  let client: NamingClient;

  beforeAll(async () => {
    ns = await startTestNameServer();
    client = new NamingClient({ nameServer: ns.address });
  });

  afterAll(async () => {
    client.close();
    await ns.close();
  });

  it('keeps the lease alive beyond its TTL and unbinds on close', async () => {
    const pub = await publish(
      { host: '127.0.0.1', port: 9001 },
      { name: 'kept', types: [ECHO], nameServer: ns.address, leaseTtlMs: 600 },
    );
    await new Promise((r) => setTimeout(r, 1500));
    const r = await client.resolve('kept', { expectedType: ECHO });
    expect(r.binding?.addressId).toBe(pub.addressId());
    await pub.close();
    await expect(client.resolve('kept')).rejects.toMatchObject({ code: status.NOT_FOUND });
  });

  it('binds again after a name server restart that lost its data', async () => {
    const port = await freePort();
    let other = await startNameServer({ port, store: memoryStore(), shutdownTimeoutMs: 500 });
    const pub = await publish(
      { host: '127.0.0.1', port: 9002 },
      { name: 'again', nameServer: other.address, leaseTtlMs: 600 },
    );
    const first = pub.addressId();
    await other.close();
    other = await startNameServer({ port, store: memoryStore(), shutdownTimeoutMs: 500 });
    const fresh = new NamingClient({ nameServer: other.address });
    try {
      await waitFor(
        async () =>
          (await fresh.resolve('again').catch(() => undefined))?.binding?.addressId === pub.addressId(),
        5000,
      );
      expect(pub.addressId()).not.toBe(first);
      await pub.close();
    } finally {
      fresh.close();
      await other.close();
    }
  });

  it('lets the lease of a killed server expire, so it does not stay published', async () => {
    const script = `
      const { publish } = require(${JSON.stringify(join(__dirname, '..', 'dist', 'index.js'))});
      publish({ host: '127.0.0.1', port: 9003 }, { name: 'doomed', nameServer: ${JSON.stringify(ns.address)}, leaseTtlMs: 600 })
        .then(() => console.log('published'));
      setInterval(() => {}, 1000);
    `;
    const child = spawnProcess(process.execPath, ['-e', script]);
    await child.waitForOutput(/published/);
    await new Promise((r) => setTimeout(r, 1000));
    await expect(client.resolve('doomed')).resolves.toBeDefined();
    await child.kill();
    await waitFor(
      async () =>
        (await client.resolve('doomed').catch((e: { code: number }) => e.code)) === status.NOT_FOUND,
      3000,
    );
  });
});
