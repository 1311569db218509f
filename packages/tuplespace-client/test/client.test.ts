import { tempDir, waitFor } from '@backplane/runtime/testing';
import { type RunningTupleSpaceServer, startTupleSpaceServer } from '@backplane/tuplespace';
import { status } from '@grpc/grpc-js';
import { M, named, TupleSpaceClient, template, tuple, values, where } from '../src';

const ADMIN = { user: 'admin', password: 'admin-password-1' };

describe('TupleSpaceClient against a tuple-space server', () => {
  const dir = tempDir('ts-client-');
  let server: RunningTupleSpaceServer;
  let admin: TupleSpaceClient;
  let anon: TupleSpaceClient;

  beforeAll(async () => {
    server = await startTupleSpaceServer({
      port: 0,
      dataDir: dir.path,
      adminPassword: ADMIN.password,
      reapEveryMs: 50,
    });
    admin = new TupleSpaceClient(server.address, ADMIN);
    anon = new TupleSpaceClient(server.address);
  });
  afterAll(async () => {
    admin.close();
    anon.close();
    await server.close();
    dir.remove();
  });

  let n = 0;
  const fresh = () => admin.createSpace(`space-${++n}`);

  it('writes, reads, takes, counts, scans, updates, reads by id and deletes', async () => {
    const sp = await fresh();
    const id1 = await sp.write(tuple('job', 1, 'a'));
    const id2 = await sp.write(tuple('job', 2, 'b'));
    await sp.write(tuple('other', 3));
    expect(id2).toBeGreaterThan(id1);
    expect(values((await sp.read(template('job', Number, String)))?.tuple)).toEqual(['job', 1, 'a']);
    expect(await sp.count(template('job', undefined, undefined))).toBe(2);
    const scanned = [];
    for await (const r of sp.scan(template(String, undefined, undefined))) scanned.push(values(r.tuple));
    expect(scanned).toEqual([
      ['job', 1, 'a'],
      ['job', 2, 'b'],
    ]);
    expect(values((await sp.take(template('job', Number, String)))?.tuple)).toEqual(['job', 1, 'a']);
    expect(await sp.readById(id1)).toBeUndefined();
    const updated = await sp.update(id2, tuple('job', 2, 'B'));
    expect(values(updated.tuple)).toEqual(['job', 2, 'B']);
    expect(values((await sp.readById(id2))?.tuple)).toEqual(['job', 2, 'B']);
    expect(await sp.take(template('nothing'))).toBeUndefined();
    expect(await sp.delete(template(String, M.any(), M.any()))).toBe(1);
    expect(await sp.count(template(undefined, undefined))).toBe(1);
    await expect(sp.update(id2, tuple('x'))).rejects.toMatchObject({ code: status.NOT_FOUND });
  });

  it('writes many atomically and consumes with consumingScan, with a limit', async () => {
    const sp = await fresh();
    const ids = await sp.multiWrite([tuple('w', 1), tuple('w', 2), tuple('w', 3)]);
    expect(ids).toHaveLength(3);
    await expect(
      sp.multiWrite([tuple('w', 4), { fields: [{ name: '', value: undefined }] }]),
    ).rejects.toMatchObject({
      code: status.INVALID_ARGUMENT,
    });
    expect(await sp.count(template('w', Number))).toBe(3); // nothing of the refused batch
    const got = [];
    for await (const r of sp.consumingScan(template('w', Number), { limit: 2 })) got.push(values(r.tuple)[1]);
    expect(got).toEqual([1, 2]);
    expect(await sp.count(template('w', Number))).toBe(1);
  });

  it('matches named queries and ranges', async () => {
    const sp = await fresh();
    await sp.write(tuple(named('kind', 'task'), named('prio', 5), 'x'));
    await sp.write(tuple(named('prio', 1), named('kind', 'task')));
    const hi = await sp.read(where({ kind: 'task', prio: M.gt(3) }));
    expect(values(hi?.tuple)).toEqual(['task', 5, 'x']);
    expect(await sp.count(where({ kind: 'task' }))).toBe(2);
    expect(await sp.count(where({ prio: M.between(0, 10) }))).toBe(2);
    expect(await sp.count(template(M.prefix('ta'), M.any(), M.any()))).toBe(1);
  });

  it('wakes a blocked waitToTake with a later write, and one write wakes exactly one of many takers', async () => {
    const sp = await fresh();
    const waiting = sp.waitToTake(template('wake', Number), { timeoutMs: 5000 });
    // the waiter is blocked at the server before the write comes
    await waitFor(() => server.spaces.stats().waiting === 1);
    await sp.write(tuple('wake', 1));
    expect(values((await waiting).tuple)).toEqual(['wake', 1]);

    const controllers = Array.from({ length: 5 }, () => new AbortController());
    const takers = controllers.map((c) =>
      sp.waitToTake(template('one', Number), { signal: c.signal }).then(
        (r) => values(r.tuple)[1],
        () => 'cancelled',
      ),
    );
    const reader = sp.waitToRead(template('one', Number), { timeoutMs: 5000 });
    await waitFor(() => server.spaces.stats().waiting === 6);
    await sp.write(tuple('one', 42));
    expect(values((await reader).tuple)).toEqual(['one', 42]);
    // one taker got it (the others still wait); only then are the others cancelled
    expect(await Promise.race(takers)).toBe(42);
    expect(server.spaces.stats().waiting).toBe(4);
    for (const c of controllers) c.abort();
    const results = await Promise.all(takers);
    expect(results.filter((r) => r === 42)).toHaveLength(1);
    expect(results.filter((r) => r === 'cancelled')).toHaveLength(4);
    expect(await sp.count(template('one', Number))).toBe(0);
  });

  it('a cancelled or timed-out waiter leaves later tuples in the space', async () => {
    const sp = await fresh();
    const c = new AbortController();
    const w = sp.waitToTake(template('c', Number), { signal: c.signal });
    await waitFor(() => server.spaces.stats().waiting === 1);
    c.abort();
    await expect(w).rejects.toMatchObject({ code: status.CANCELLED });
    await expect(sp.waitToTake(template('c', Number), { timeoutMs: 100 })).rejects.toMatchObject({
      code: status.DEADLINE_EXCEEDED,
    });
    // both waiters are gone from the server before the tuple comes
    await waitFor(() => server.spaces.stats().waiting === 0);
    await sp.write(tuple('c', 1));
    expect(await sp.count(template('c', Number))).toBe(1);
  });

  it('expires tuples (they never match once expired) and reports EXPIRE events', async () => {
    const sp = await fresh();
    const events = await sp.events(template('e', Number), { kinds: ['EXPIRE'] });
    await sp.write(tuple('e', 1), { ttlMs: 100 });
    await sp.write(tuple('e', 2));
    expect(await sp.count(template('e', Number))).toBe(2);
    await waitFor(async () => (await sp.count(template('e', Number))) === 1, 5000);
    expect(await sp.count(template('e', Number))).toBe(1);
    const ev = await events.next();
    expect(ev.value).toMatchObject({ kind: 'EXPIRE' });
    expect(values(ev.value?.record.tuple)).toEqual(['e', 1]);
    await events.return(undefined);
  });

  it('streams events with consecutive sequence numbers', async () => {
    const sp = await fresh();
    const events = await sp.events(template('ev', Number));
    const id = await sp.write(tuple('ev', 1));
    await sp.write(tuple('other'));
    await sp.take(template('ev', Number));
    await sp.write(tuple('ev', 2));
    await sp.delete(template('ev', Number));
    const got = [];
    for (let k = 0; k < 4; k++) got.push((await events.next()).value);
    expect(got.map((e) => e?.kind)).toEqual(['WRITE', 'TAKE', 'WRITE', 'DELETE']);
    const seqs = got.map((e) => e?.seq as number);
    // the unmatched write took a number too: the space's sequence has no gaps, a registration's may
    expect(seqs[1]).toBe((seqs[0] as number) + 2);
    expect(seqs[3]).toBe((seqs[2] as number) + 1);
    expect(got[0]?.record.id).toBe(id);
    await events.return(undefined);
  });

  it('transactions: invisible until commit, takes restored on abort, idle transactions aborted', async () => {
    const sp = await fresh();
    await sp.write(tuple('t', 0));
    const txn = await admin.begin();
    await sp.write(tuple('t', 1), { txn });
    expect(await sp.count(template('t', Number))).toBe(1);
    expect(await sp.count(template('t', Number), { txn })).toBe(2);
    expect(values((await sp.take(template('t', 0), { txn }))?.tuple)).toEqual(['t', 0]);
    expect(await sp.read(template('t', 0))).toBeUndefined(); // taken inside: hidden from everyone
    await txn.commit();
    expect(values((await sp.read(template('t', Number)))?.tuple)).toEqual(['t', 1]);
    expect(await sp.count(template('t', Number))).toBe(1);

    const t2 = await admin.begin();
    await sp.take(template('t', 1), { txn: t2 });
    await sp.write(tuple('t', 2), { txn: t2 });
    await t2.abort();
    expect(values((await sp.read(template('t', Number)))?.tuple)).toEqual(['t', 1]);
    expect(await sp.count(template('t', Number))).toBe(1);
    await expect(t2.commit()).rejects.toMatchObject({ code: status.NOT_FOUND });

    // a waiter sees a committed write; a client that vanishes has its transaction aborted
    const waiter = sp.waitToTake(template('t', 3), { timeoutMs: 5000 });
    await admin.transaction(async (t) => {
      await sp.write(tuple('t', 3), { txn: t });
    });
    expect(values((await waiter).tuple)).toEqual(['t', 3]);
    const lost = await admin.begin({ idleTimeoutMs: 100 });
    await sp.take(template('t', 1), { txn: lost });
    expect(await sp.count(template('t', Number))).toBe(0);
    // idle for longer than its 100 ms: the reaper aborts it and the take is undone
    await waitFor(async () => (await sp.count(template('t', Number))) === 1, 5000);
    await expect(lost.commit()).rejects.toMatchObject({ code: status.NOT_FOUND });
  });

  it('the factory stack: override WRITE (stale-tuple), pass-through, mostBasicHandler, START, counter', async () => {
    const sp = await fresh();
    expect((await sp.factories()).map((f) => f.name)).toEqual(['basic']);
    await sp.addFactory('extendable');
    await sp.addHandler('WRITE', 'stale-tuple');
    await sp.addHandler('START', 'stale-tuple');
    await sp.addHandler('INCR', 'counter');
    const stack = await sp.factories();
    expect(stack.map((f) => f.name)).toEqual(['extendable', 'basic']);
    expect(stack[0]?.handlers).toEqual({ WRITE: 'stale-tuple', START: 'stale-tuple', INCR: 'counter' });

    // commands the top factory does not know pass down to basic
    await sp.write(tuple('plain', 1));
    expect(await sp.count(template('plain', 1))).toBe(1);
    // START turns the stamping WRITE on and starts the periodic deleter
    await sp.command('START', tuple(50));
    await sp.write(tuple(named('staleTtl', 100), 'key1', 'some data'));
    const viaCommand = await sp.command('WRITE', tuple(named('staleTtl', 100), 'key2', 'more data'));
    expect(viaCommand.result?.fields[0]?.name).toBe('staleAt'); // the generic path reached the same handler
    const stamped = await sp.read(template(M.formal('timestamp'), 'key1', String));
    expect(stamped?.tuple?.fields[0]?.name).toBe('staleAt');
    // the deleter (every 50 ms) removes both once their 100 ms have passed
    await waitFor(async () => (await sp.count(template(M.formal('timestamp'), String, String))) === 0, 5000);
    expect(await sp.count(template('plain', 1))).toBe(1);

    // the counter: concurrent INCRs lose nothing
    await Promise.all(Array.from({ length: 20 }, () => sp.command('INCR', tuple('hits'))));
    const r = await sp.command('INCR', tuple('hits', 5));
    expect(values(r.result)).toEqual([25]);
    expect(await sp.count(template('counter', 'hits', Number))).toBe(1);

    // unknown commands, unknown plugins, removing the factory
    await expect(sp.command('NOPE')).rejects.toMatchObject({
      code: status.INVALID_ARGUMENT,
      reason: 'UNKNOWN_COMMAND',
    });
    await expect(sp.addHandler('X', 'no-such-plugin')).rejects.toMatchObject({ code: status.NOT_FOUND });
    await expect(sp.addFactory('../../etc/passwd')).rejects.toMatchObject({ code: status.INVALID_ARGUMENT });
    await sp.removeFactory(0);
    await expect(sp.command('INCR', tuple('hits'))).rejects.toMatchObject({ code: status.INVALID_ARGUMENT });
  });

  it('permissions: users, groups, ACLs; strangers cannot tell a space exists', async () => {
    await admin.putUser('ann', 'ann-password', ['staff']);
    await admin.putUser('bob', 'bob-password');
    const ann = new TupleSpaceClient(server.address, { user: 'ann', password: 'ann-password' });
    const bob = new TupleSpaceClient(server.address, { user: 'bob', password: 'bob-password' });
    const wrong = new TupleSpaceClient(server.address, { user: 'ann', password: 'nope-nope' });
    try {
      const sp = await ann.createSpace('ann-space', {
        acl: [{ principal: '@staff', permissions: ['READ'] }],
      });
      await sp.write(tuple('mine'));
      await expect(wrong.space('ann-space').read(template('mine'))).rejects.toMatchObject({
        code: status.UNAUTHENTICATED,
      });
      // bob has nothing here: the same answer as for a space that does not exist
      await expect(bob.space('ann-space').read(template('mine'))).rejects.toMatchObject({
        code: status.NOT_FOUND,
      });
      await expect(bob.space('no-such-space').read(template('mine'))).rejects.toMatchObject({
        code: status.NOT_FOUND,
      });
      await expect(anon.createSpace('anon-space')).rejects.toMatchObject({ code: status.UNAUTHENTICATED });
      await ann.setAcl('ann-space', [{ principal: 'bob', permissions: ['READ'] }]);
      expect(await bob.space('ann-space').count(template('mine'))).toBe(1);
      await expect(bob.space('ann-space').take(template('mine'))).rejects.toMatchObject({
        code: status.PERMISSION_DENIED,
      });
      await expect(bob.space('ann-space').addFactory('extendable')).rejects.toMatchObject({
        code: status.PERMISSION_DENIED,
      });
      await expect(bob.putUser('eve', 'eve-password')).rejects.toMatchObject({
        code: status.PERMISSION_DENIED,
      });
      // the default space is open to everyone
      await anon.space('default').write(tuple('hello'));
      expect(values((await anon.space('default').take(template('hello')))?.tuple)).toEqual(['hello']);
      expect((await bob.listSpaces()).map((s) => s.name)).toEqual(['ann-space', 'default']);
      await admin.deleteUser('bob');
      await expect(bob.space('default').count(template())).rejects.toMatchObject({
        code: status.UNAUTHENTICATED,
      });
    } finally {
      ann.close();
      bob.close();
      wrong.close();
    }
  });

  it('answers bad input with the right codes', async () => {
    const sp = await fresh();
    await expect(sp.write({ fields: [{ name: '', value: { kind: undefined } }] })).rejects.toMatchObject({
      code: status.INVALID_ARGUMENT,
    });
    await expect(sp.write(tuple(Buffer.alloc(1024 * 1024 + 10)))).rejects.toMatchObject({
      code: status.INVALID_ARGUMENT,
    });
    await expect(sp.read({ fields: [{ name: '', kind: undefined }] })).rejects.toMatchObject({
      code: status.INVALID_ARGUMENT,
    });
    await expect(admin.space('missing').write(tuple(1))).rejects.toMatchObject({ code: status.NOT_FOUND });
    await expect(admin.createSpace('bad/name')).rejects.toMatchObject({ code: status.INVALID_ARGUMENT });
    await expect(admin.createSpace(sp.name)).rejects.toMatchObject({ code: status.ALREADY_EXISTS });
    await expect(sp.command('lower-case')).rejects.toMatchObject({ code: status.INVALID_ARGUMENT });
    await expect(sp.write(tuple(1), { txn: 'not-a-txn' })).rejects.toMatchObject({ code: status.NOT_FOUND });
    await expect(sp.write(tuple(1), { ttlMs: -5 })).rejects.toMatchObject({ code: status.INVALID_ARGUMENT });
  });
});
