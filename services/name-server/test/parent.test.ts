import { createServer, type Socket } from 'node:net';
import { unary } from '@backplane/runtime';
import { status } from '@grpc/grpc-js';
import { startNameServer } from '../src';
import { ParentNameServer } from '../src/parent';
import { expectCode, memoryStore, namingClient } from './helpers';

const loc = (port: number) => ({ host: '127.0.0.1', port, metadata: {} });
const bindReq = (name: string, port: number, types: string[] = ['moose.FileServer']) => ({
  scope: '',
  name,
  types,
  location: loc(port),
  leaseTtlMs: 0,
  addressId: '',
  ownerSecret: '',
});

describe('a name server with a parent name server (another process)', () => {
  it('delegates misses to the parent, answers hits itself, and says who answered', async () => {
    const parent = await startNameServer({ port: 0, store: memoryStore() });
    const child = await startNameServer({ port: 0, store: memoryStore(), parentNameServer: parent.address });
    const p = namingClient(parent.address);
    const c = namingClient(child.address);
    try {
      await unary(p.bind.bind(p), bindReq('fs', 9001));
      await unary(p.bind.bind(p), bindReq('printer', 9002, ['moose.Printer']));
      await unary(c.bind.bind(c), bindReq('fs', 9100, ['moose.FileServer', 'moose.EncryptingFileServer']));

      const printer = await unary(c.resolve.bind(c), {
        scope: '',
        name: 'printer',
        expectedType: 'moose.Printer',
      });
      expect(printer.nameServer).toBe(parent.address);
      expect(printer.binding?.location?.port).toBe(9002);

      const fs = await unary(c.resolve.bind(c), { scope: '', name: 'fs', expectedType: 'moose.FileServer' });
      expect(fs.nameServer).toBe(child.address);
      expect(fs.binding?.location?.port).toBe(9100);

      // the parent's refusals come through with their own codes
      await expectCode(
        unary(c.resolve.bind(c), { scope: '', name: 'printer', expectedType: 'moose.FileServer' }),
        status.FAILED_PRECONDITION,
      );
      await expectCode(
        unary(c.resolve.bind(c), { scope: '', name: 'nowhere', expectedType: '' }),
        status.NOT_FOUND,
      );

      // an unreachable parent is UNAVAILABLE, not NOT_FOUND
      await parent.close();
      const down = await expectCode(
        unary(c.resolve.bind(c), { scope: '', name: 'printer', expectedType: '' }),
        status.UNAVAILABLE,
      );
      expect(down.message).toContain('parent name server');
    } finally {
      p.close();
      c.close();
      await child.close();
      await parent.close();
    }
  });

  it("keeps to the caller's deadline when the parent does not answer", async () => {
    // a parent that accepts connections and never says anything
    const held: Socket[] = [];
    const silent = createServer((sock) => held.push(sock));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', () => r()));
    const port = (silent.address() as { port: number }).port;
    const parent = new ParentNameServer(`127.0.0.1:${port}`, '');
    try {
      const t0 = Date.now();
      const err = await parent
        .resolve('nowhere', '', { deadline: Date.now() + 300 })
        .catch((e: { code: number }) => e);
      expect((err as { code: number }).code).toBe(status.UNAVAILABLE);
      expect(Date.now() - t0).toBeLessThan(2000); // not the delegation's own 5 s
      // and the caller's cancellation ends it at once
      const ac = new AbortController();
      const cancelled = parent
        .resolve('nowhere', '', { signal: ac.signal })
        .catch((e: { code: number }) => e);
      setTimeout(() => ac.abort(), 100);
      const t1 = Date.now();
      expect(((await cancelled) as { code: number }).code).toBe(status.CANCELLED);
      expect(Date.now() - t1).toBeLessThan(2000);
    } finally {
      parent.close();
      for (const s of held) s.destroy();
      silent.close();
    }
  });
});
