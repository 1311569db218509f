import { BackplaneError, openStore, type Store } from '@backplane/runtime';
import { memoryStore, tempDir, waitFor } from '@backplane/runtime/testing';
import { status } from '@grpc/grpc-js';
import type { Change } from '../src/records';
import { Registry } from '../src/registry';

const FS = 'moose.FileServer';
const ENC_FS = 'moose.EncryptingFileServer';
const loc = (port: number, host = '127.0.0.1') => ({ host, port, metadata: {} });

async function rejection(p: Promise<unknown>): Promise<BackplaneError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(err instanceof BackplaneError)) throw new Error(`expected a BackplaneError, got ${String(err)}`);
  return err;
}

describe('Registry', () => {
  let store: Store;
  let registry: Registry;

  beforeEach(async () => {
    store = memoryStore();
    registry = await Registry.open({ store, self: 'test:7000', expiryIntervalMs: 20 });
  });

  afterEach(async () => {
    await registry.close();
    await store.close();
  });

  it('binds a name and resolves it to its location and types', async () => {
    const bound = await registry.bind({
      scope: '',
      name: 'fs',
      types: [FS],
      location: loc(9001),
      leaseTtlMs: 0,
    });
    expect(bound.ownerSecret).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const r = await registry.resolve('', 'fs', FS);
    expect(r.binding).toMatchObject({
      scope: 'default',
      name: 'fs',
      addressId: bound.addressId,
      location: loc(9001),
    });
    expect(r.nameServer).toBe('test:7000');
  });

  it('denies a name already bound in the scope (ALREADY_EXISTS), and allows it in another scope', async () => {
    await registry.bind({ scope: '', name: 'fs', types: [FS], location: loc(9001), leaseTtlMs: 0 });
    const err = await rejection(
      registry.bind({ scope: '', name: 'fs', types: [FS], location: loc(9002), leaseTtlMs: 0 }),
    );
    expect(err.code).toBe(status.ALREADY_EXISTS);
    expect(err.message).toContain('denied');
    await registry.createScope('app', '');
    await expect(
      registry.bind({ scope: 'app', name: 'fs', types: [FS], location: loc(9002), leaseTtlMs: 0 }),
    ).resolves.toBeDefined();
    expect((await registry.resolve('', 'fs', '')).binding.location.port).toBe(9001);
  });

  it('refuses a server of the wrong type with FAILED_PRECONDITION / TYPE_MISMATCH', async () => {
    await registry.bind({
      scope: '',
      name: 'printer',
      types: ['moose.Printer'],
      location: loc(9003),
      leaseTtlMs: 0,
    });
    const err = await rejection(registry.resolve('', 'printer', FS));
    expect(err).toMatchObject({ code: status.FAILED_PRECONDITION, reason: 'TYPE_MISMATCH' });
    expect(err.message).toContain('type mismatch');
    await expect(registry.resolve('', 'printer', 'moose.Printer')).resolves.toBeDefined();
    await expect(registry.resolve('', 'printer', '')).resolves.toBeDefined();
  });

  it('falls through to the parent scope, and a child binding overrides the parent (the application file server)', async () => {
    await registry.bind({ scope: '', name: 'fs', types: [FS], location: loc(9001), leaseTtlMs: 0 });
    await registry.bind({
      scope: '',
      name: 'printer',
      types: ['moose.Printer'],
      location: loc(9003),
      leaseTtlMs: 0,
    });
    await registry.createScope('app', 'default');
    await registry.createScope('app.sub', 'app');
    // fall-through: the child scope has no printer of its own
    const printer = await registry.resolve('app.sub', 'printer', '');
    expect(printer.binding).toMatchObject({ scope: 'default', location: loc(9003) });
    // override: the application binds its own encrypting file server
    await registry.bind({
      scope: 'app',
      name: 'fs',
      types: [FS, ENC_FS],
      location: loc(9100),
      leaseTtlMs: 0,
    });
    expect((await registry.resolve('app.sub', 'fs', FS)).binding).toMatchObject({
      scope: 'app',
      location: loc(9100),
    });
    expect((await registry.resolve('app', 'fs', ENC_FS)).binding.scope).toBe('app');
    // the default scope still answers with its own
    expect((await registry.resolve('', 'fs', FS)).binding).toMatchObject({
      scope: 'default',
      location: loc(9001),
    });
    // a miss everywhere says where it looked
    const miss = await rejection(registry.resolve('app.sub', 'nothing', ''));
    expect(miss.code).toBe(status.NOT_FOUND);
    expect(miss.message).toContain('app.sub → app → default');
  });

  it('delegates a miss to the parent name server when one is configured', async () => {
    const parent = {
      resolve: jest.fn(async (name: string) => ({
        binding: { scope: 'default', name, addressId: 'p', types: [FS], location: loc(9999), revision: 1 },
        nameServer: 'parent:7000',
      })),
    };
    const child = await Registry.open({ store: memoryStore(), parent });
    try {
      const r = await child.resolve('', 'fs', FS);
      expect(r.nameServer).toBe('parent:7000');
      expect(parent.resolve).toHaveBeenCalledWith('fs', FS, undefined);
      // the caller's deadline and cancellation go with the delegation
      const call = { deadline: Date.now() + 1000, signal: new AbortController().signal };
      await child.resolve('', 'fs', FS, call);
      expect(parent.resolve).toHaveBeenLastCalledWith('fs', FS, call);
    } finally {
      await child.close();
    }
  });

  it('migrates an address: every name bound to it moves at once and stays valid', async () => {
    const a = await registry.bind({ scope: '', name: 'fs', types: [FS], location: loc(9001), leaseTtlMs: 0 });
    await registry.createScope('app', '');
    await registry.bind({
      scope: '',
      name: 'files',
      addressId: a.addressId,
      ownerSecret: a.ownerSecret as string,
    });
    await registry.bind({
      scope: 'app',
      name: 'storage',
      addressId: a.addressId,
      ownerSecret: a.ownerSecret as string,
    });
    const moved = await registry.migrate(a.addressId, a.ownerSecret as string, loc(9500, '127.0.0.5'));
    expect(moved.map((b) => `${b.scope}/${b.name}`).sort()).toEqual([
      'app/storage',
      'default/files',
      'default/fs',
    ]);
    for (const [scope, name] of [
      ['', 'fs'],
      ['', 'files'],
      ['app', 'storage'],
    ] as const) {
      expect((await registry.resolve(scope, name, '')).binding.location).toEqual(loc(9500, '127.0.0.5'));
    }
  });

  it('requires the owner secret for unbind, migrate, keepalive and aliases', async () => {
    const a = await registry.bind({ scope: '', name: 'fs', types: [FS], location: loc(9001), leaseTtlMs: 0 });
    const wrong = 'x'.repeat(43);
    expect((await rejection(registry.unbind('', 'fs', wrong))).code).toBe(status.PERMISSION_DENIED);
    expect((await rejection(registry.migrate(a.addressId, wrong, loc(1)))).code).toBe(
      status.PERMISSION_DENIED,
    );
    expect(() => registry.keepAlive(a.addressId, wrong)).toThrow(
      expect.objectContaining({ code: status.PERMISSION_DENIED }),
    );
    expect(
      (await rejection(registry.bind({ scope: '', name: 'x', addressId: a.addressId, ownerSecret: wrong })))
        .code,
    ).toBe(status.PERMISSION_DENIED);
    expect((await rejection(registry.unbind('', 'fs', ''))).code).toBe(status.INVALID_ARGUMENT);
    await registry.unbind('', 'fs', a.ownerSecret as string);
    expect((await rejection(registry.resolve('', 'fs', ''))).code).toBe(status.NOT_FOUND);
    // the address went with its last name
    expect(registry.stats().addresses).toBe(0);
  });

  it('answers bad input with INVALID_ARGUMENT or NOT_FOUND and a reason', async () => {
    const bind = (over: Record<string, unknown>) =>
      rejection(
        registry.bind({
          scope: '',
          name: 'ok',
          types: [FS],
          location: loc(9001),
          leaseTtlMs: 0,
          ...over,
        } as never),
      );
    expect(await bind({ name: '' })).toMatchObject({
      code: status.INVALID_ARGUMENT,
      message: 'name must not be empty',
    });
    expect((await bind({ name: 'x'.repeat(257) })).message).toContain('at most 256');
    expect((await bind({ name: 'caf\ufffd' })).message).toContain('not valid UTF-8');
    expect((await bind({ name: 'a\u0000b' })).message).toContain('control characters');
    expect((await bind({ leaseTtlMs: -5 })).message).toContain('lease_ttl_ms');
    expect((await bind({ leaseTtlMs: 10 })).code).toBe(status.INVALID_ARGUMENT);
    expect((await bind({ types: ['not a type'] })).code).toBe(status.INVALID_ARGUMENT);
    expect((await bind({ location: undefined })).message).toContain('location is required');
    expect((await bind({ location: loc(0) })).message).toContain('location.port');
    expect((await bind({ location: loc(70000) })).code).toBe(status.INVALID_ARGUMENT);
    expect((await bind({ scope: 'no such' })).code).toBe(status.INVALID_ARGUMENT);
    expect(await bind({ scope: 'nosuch' })).toMatchObject({
      code: status.NOT_FOUND,
      reason: 'SCOPE_NOT_FOUND',
    });
    expect((await rejection(registry.resolve('nosuch', 'x', ''))).reason).toBe('SCOPE_NOT_FOUND');
    expect((await rejection(registry.resolve('', 'x', 'bad type'))).code).toBe(status.INVALID_ARGUMENT);
    expect((await rejection(registry.list('', '', -1, '', false))).code).toBe(status.INVALID_ARGUMENT);
    expect((await rejection(registry.list('', '', 10, '!!!', false))).code).toBe(status.INVALID_ARGUMENT);
    // nothing was stored by any of these
    expect(registry.stats().bindings).toBe(0);
  });

  it('manages scopes: duplicates, missing parents, children and bindings block deletion', async () => {
    await registry.createScope('app', '');
    expect((await rejection(registry.createScope('app', ''))).code).toBe(status.ALREADY_EXISTS);
    expect((await rejection(registry.createScope('x', 'missing'))).code).toBe(status.NOT_FOUND);
    await registry.createScope('child', 'app');
    expect((await rejection(registry.deleteScope('app', true))).code).toBe(status.FAILED_PRECONDITION);
    expect((await rejection(registry.deleteScope('default', true))).code).toBe(status.FAILED_PRECONDITION);
    await registry.bind({ scope: 'child', name: 'n', types: [], location: loc(1), leaseTtlMs: 0 });
    expect((await rejection(registry.deleteScope('child', false))).code).toBe(status.FAILED_PRECONDITION);
    await registry.deleteScope('child', true);
    await registry.deleteScope('app', false);
    expect((await rejection(registry.resolve('child', 'n', ''))).reason).toBe('SCOPE_NOT_FOUND');
    expect(registry.stats()).toMatchObject({ scopes: 1, bindings: 0, addresses: 0 });
  });

  it('lists a scope in name order, page by page, optionally with inherited names', async () => {
    await registry.createScope('app', '');
    for (const n of ['c', 'a', 'e', 'b', 'd']) {
      await registry.bind({ scope: '', name: `svc/${n}`, types: [], location: loc(1), leaseTtlMs: 0 });
    }
    await registry.bind({ scope: '', name: 'other', types: [], location: loc(1), leaseTtlMs: 0 });
    const page1 = await registry.list('', 'svc/', 2, '', false);
    expect(page1.bindings.map((b) => b.name)).toEqual(['svc/a', 'svc/b']);
    const page2 = await registry.list('', 'svc/', 2, page1.nextPageToken, false);
    expect(page2.bindings.map((b) => b.name)).toEqual(['svc/c', 'svc/d']);
    const page3 = await registry.list('', 'svc/', 2, page2.nextPageToken, false);
    expect(page3.bindings.map((b) => b.name)).toEqual(['svc/e']);
    expect(page3.nextPageToken).toBe('');
    expect((await registry.list('app', '', 0, '', false)).bindings).toEqual([]);
    await registry.createScope('kid', 'default');
    await registry.bind({ scope: 'kid', name: 'svc/b', types: [], location: loc(2), leaseTtlMs: 0 });
    const merged = await registry.list('kid', 'svc/', 10, '', true);
    expect(merged.bindings.map((b) => `${b.scope}:${b.name}`)).toEqual([
      'default:svc/a',
      'kid:svc/b',
      'default:svc/c',
      'default:svc/d',
      'default:svc/e',
    ]);
  });

  it('unbinds a server whose lease is not renewed, and keeps one that renews', async () => {
    const dead = await registry.bind({
      scope: '',
      name: 'dead',
      types: [],
      location: loc(1),
      leaseTtlMs: 500,
    });
    const live = await registry.bind({
      scope: '',
      name: 'live',
      types: [],
      location: loc(2),
      leaseTtlMs: 500,
    });
    await registry.bind({
      scope: '',
      name: 'dead-alias',
      addressId: dead.addressId,
      ownerSecret: dead.ownerSecret as string,
    });
    const renew = setInterval(() => registry.keepAlive(live.addressId, live.ownerSecret as string), 100);
    try {
      await waitFor(
        async () => (await registry.resolve('', 'dead', '').catch(() => 'gone')) === 'gone',
        3000,
      );
      expect((await rejection(registry.resolve('', 'dead-alias', ''))).code).toBe(status.NOT_FOUND);
      expect(() => registry.keepAlive(dead.addressId, dead.ownerSecret as string)).toThrow(
        expect.objectContaining({ code: status.NOT_FOUND }),
      );
      await expect(registry.resolve('', 'live', '')).resolves.toBeDefined();
      // renewals do not pile up in the lease heap: one entry per address, put back when it comes up
      const heap = (registry as unknown as { leases: { size: number } }).leases;
      const before = heap.size;
      for (let i = 0; i < 10_000; i++) registry.keepAlive(live.addressId, live.ownerSecret as string);
      expect(heap.size).toBe(before);
      expect(before).toBeLessThanOrEqual(2);
    } finally {
      clearInterval(renew);
    }
  });

  it('sends watchers the current state, then bind, migrate, unbind and expiry, in revision order', async () => {
    const a = await registry.bind({ scope: '', name: 'svc/a', types: [], location: loc(1), leaseTtlMs: 0 });
    const changes: Change[] = [];
    const sub = await registry.watch(
      { scope: '', name: 'svc/', prefix: true, includeInherited: false },
      (c) => changes.push(c),
    );
    expect(sub.snapshot.map((b) => b.name)).toEqual(['svc/a']);
    const b = await registry.bind({ scope: '', name: 'svc/b', types: [], location: loc(2), leaseTtlMs: 500 });
    await registry.bind({ scope: '', name: 'unrelated', types: [], location: loc(3), leaseTtlMs: 0 });
    await registry.migrate(a.addressId, a.ownerSecret as string, loc(11));
    await registry.unbind('', 'svc/a', a.ownerSecret as string);
    await waitFor(() => changes.some((c) => c.type === 'EXPIRED'), 3000);
    sub.unsubscribe();
    expect(changes.map((c) => `${c.type} ${c.binding.name}`)).toEqual([
      'BOUND svc/b',
      'MIGRATED svc/a',
      'UNBOUND svc/a',
      'EXPIRED svc/b',
    ]);
    const revisions = changes.map((c) => c.revision);
    expect([...revisions].sort((x, y) => x - y)).toEqual(revisions);
    expect(revisions[0]).toBeGreaterThan(sub.revision);
    void b;
  });

  it('keeps committing when a watch races the deletion of its scope', async () => {
    await registry.createScope('doomed', 'default');
    const del = registry.deleteScope('doomed', true);
    const watch = registry.watch(
      { scope: 'doomed', name: '', prefix: true, includeInherited: true },
      () => undefined,
    );
    await del;
    const w = await watch.then(
      (sub) => {
        sub.unsubscribe();
        return 'subscribed';
      },
      (e: BackplaneError) => e.reason,
    );
    expect(['subscribed', 'SCOPE_NOT_FOUND']).toContain(w);
    await expect(
      registry.bind({ scope: '', name: 'after-race', types: [], location: loc(1), leaseTtlMs: 0 }),
    ).resolves.toBeDefined();
  });

  it('commits concurrent binds of one name exactly once', async () => {
    const results = await Promise.allSettled(
      Array.from({ length: 20 }, (_, i) =>
        registry.bind({ scope: '', name: 'race', types: [], location: loc(1000 + i), leaseTtlMs: 0 }),
      ),
    );
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    expect(
      results.filter(
        (r) => r.status === 'rejected' && (r.reason as BackplaneError).code === status.ALREADY_EXISTS,
      ),
    ).toHaveLength(19);
  });
});

describe('Registry persistence', () => {
  it('keeps scopes and bindings across a reopen, with leases given a grace period', async () => {
    const dir = tempDir();
    try {
      let store = await openStore(dir.path);
      let registry = await Registry.open({ store });
      await registry.createScope('app', 'default');
      const a = await registry.bind({
        scope: 'app',
        name: 'fs',
        types: [FS],
        location: loc(9001),
        leaseTtlMs: 600,
      });
      await registry.bind({ scope: '', name: 'static', types: [], location: loc(9002), leaseTtlMs: 0 });
      await registry.close();
      await store.close();
      // the lease (600 ms) is long gone by the time of the restart, but the grace period keeps it
      await new Promise((r) => setTimeout(r, 700));
      store = await openStore(dir.path);
      registry = await Registry.open({ store, leaseGraceMs: 5000 });
      const r = await registry.resolve('app', 'fs', FS);
      expect(r.binding.addressId).toBe(a.addressId);
      expect(r.binding.leaseExpiresAt).toBeGreaterThan(Date.now() + 3000);
      expect(registry.keepAlive(a.addressId, a.ownerSecret as string).leaseTtlMs).toBe(600);
      expect((await registry.resolve('app', 'static', '')).binding.scope).toBe('default');
      const before = registry.stats().revision;
      await registry.bind({ scope: '', name: 'later', types: [], location: loc(1), leaseTtlMs: 0 });
      expect(registry.stats().revision).toBe(before + 1);
      await registry.close();
      await store.close();
    } finally {
      dir.remove();
    }
  });
});
