import { tempDir } from '@backplane/runtime/testing';
import { type RunningTupleSpaceServer, startTupleSpaceServer } from '@backplane/tuplespace';
import { status } from '@grpc/grpc-js';
import { type Space, TupleSpaceClient, template, tuple } from '../src';

const ADMIN = { user: 'admin', password: 'admin-password-1' };

/**
 * Every command against a space the caller may not use: each must be refused, and nothing may change.
 * `needs` is the permission the command needs on the space (SERVER for the server-admin commands).
 */
const COMMANDS: Array<{
  name: string;
  needs: 'READ' | 'WRITE' | 'ADMIN' | 'SERVER';
  run: (s: Space, c: TupleSpaceClient) => Promise<unknown>;
}> = [
  { name: 'Write', needs: 'WRITE', run: (s) => s.write(tuple('x')) },
  { name: 'MultiWrite', needs: 'WRITE', run: (s) => s.multiWrite([tuple('x'), tuple('y')]) },
  { name: 'Read', needs: 'READ', run: (s) => s.read(template('kept')) },
  { name: 'Take', needs: 'WRITE', run: (s) => s.take(template('kept')) },
  {
    name: 'WaitToRead',
    needs: 'READ',
    run: (s) => s.waitToRead(template('kept'), { deadline: new Date(Date.now() + 2000) }),
  },
  {
    name: 'WaitToTake',
    needs: 'WRITE',
    run: (s) => s.waitToTake(template('kept'), { deadline: new Date(Date.now() + 2000) }),
  },
  {
    name: 'Scan',
    needs: 'READ',
    run: async (s) => {
      for await (const _ of s.scan(template('kept')));
    },
  },
  {
    name: 'ConsumingScan',
    needs: 'WRITE',
    run: async (s) => {
      for await (const _ of s.consumingScan(template('kept')));
    },
  },
  { name: 'Count', needs: 'READ', run: (s) => s.count(template('kept')) },
  { name: 'Delete', needs: 'WRITE', run: (s) => s.delete(template('kept')) },
  { name: 'Update', needs: 'WRITE', run: (s) => s.update(1, tuple('changed')) },
  { name: 'ReadById', needs: 'READ', run: (s) => s.readById(1) },
  { name: 'EventRegister', needs: 'READ', run: (s) => s.events(template('kept')) },
  { name: 'Command WRITE', needs: 'WRITE', run: (s) => s.command('WRITE', tuple('x')) },
  {
    name: 'Command TAKE',
    needs: 'WRITE',
    run: (s) => s.command('TAKE', undefined, { template: template('kept') }),
  },
  {
    name: 'Command COUNT',
    needs: 'READ',
    run: (s) => s.command('COUNT', undefined, { template: template('kept') }),
  },
  { name: 'AddFactory', needs: 'ADMIN', run: (s) => s.addFactory('stale-tuple') },
  { name: 'RemoveFactory', needs: 'ADMIN', run: (s) => s.removeFactory(0) },
  { name: 'ListFactories', needs: 'READ', run: (s) => s.factories() },
  { name: 'AddHandler', needs: 'ADMIN', run: (s) => s.addHandler('WRITE', 'timestamping') },
  {
    name: 'SetAcl',
    needs: 'ADMIN',
    run: (s, c) => c.setAcl(s.name, [{ principal: '*', permissions: ['READ', 'WRITE', 'ADMIN'] }]),
  },
  { name: 'DeleteSpace', needs: 'ADMIN', run: (s, c) => c.deleteSpace(s.name) },
  { name: 'PutUser', needs: 'SERVER', run: (_s, c) => c.putUser('mallory', 'mallory-password', ['admin']) },
  { name: 'DeleteUser', needs: 'SERVER', run: (_s, c) => c.deleteUser('reader') },
  { name: 'ListUsers', needs: 'SERVER', run: (_s, c) => c.listUsers() },
];

describe('tuple-space access control, command by command', () => {
  const dir = tempDir('ts-access-');
  let server: RunningTupleSpaceServer;
  let admin: TupleSpaceClient;
  let acl: unknown;
  const clients: TupleSpaceClient[] = [];
  const as = (user?: string, password?: string) => {
    const c = new TupleSpaceClient(server.address, user === undefined ? {} : { user, password });
    clients.push(c);
    return c;
  };

  beforeAll(async () => {
    server = await startTupleSpaceServer({ port: 0, dataDir: dir.path, adminPassword: ADMIN.password });
    admin = as(ADMIN.user, ADMIN.password);
    await admin.putUser('reader', 'reader-password');
    await admin.putUser('stranger', 'stranger-password');
    const guarded = await admin.createSpace('guarded', {
      acl: [{ principal: 'reader', permissions: ['READ'] }],
    });
    for (let i = 0; i < 5; i += 1) await guarded.write(tuple('kept', i));
    acl = (await admin.listSpaces()).find((s) => s.name === 'guarded')?.acl;
  });
  afterAll(async () => {
    for (const c of clients) c.close();
    await server.close();
    dir.remove();
  });

  const unchanged = async () => {
    const guarded = admin.space('guarded');
    expect(await guarded.count(template('kept', Number))).toBe(5);
    expect(await guarded.count(template())).toBe(0);
    expect(await guarded.count(template('x'))).toBe(0);
    expect((await guarded.factories()).map((f) => f.name)).toEqual(['basic']);
    expect((await admin.listUsers()).map((u) => u.name).sort()).toEqual(['admin', 'reader', 'stranger']);
    expect((await admin.listSpaces()).find((s) => s.name === 'guarded')?.acl).toEqual(acl);
  };

  it.each(COMMANDS)('$name: a wrong password is UNAUTHENTICATED', async ({ run }) => {
    const c = as('reader', 'not-the-password');
    await expect(run(c.space('guarded'), c)).rejects.toMatchObject({ code: status.UNAUTHENTICATED });
    await unchanged();
  });

  it.each(COMMANDS)(
    '$name: a user with no entry in the ACL cannot tell the space exists',
    async ({ run, needs }) => {
      const c = as('stranger', 'stranger-password');
      const expected = needs === 'SERVER' ? status.PERMISSION_DENIED : status.NOT_FOUND;
      await expect(run(c.space('guarded'), c)).rejects.toMatchObject({ code: expected });
      await unchanged();
    },
  );

  it.each(COMMANDS)('$name: an anonymous caller is refused', async ({ run, needs }) => {
    const c = as();
    const expected = needs === 'SERVER' ? status.PERMISSION_DENIED : status.NOT_FOUND;
    await expect(run(c.space('guarded'), c)).rejects.toMatchObject({ code: expected });
    await unchanged();
  });

  it.each(COMMANDS.filter((c) => c.needs !== 'READ'))(
    '$name: a READ-only user is PERMISSION_DENIED',
    async ({ run }) => {
      const c = as('reader', 'reader-password');
      await expect(run(c.space('guarded'), c)).rejects.toMatchObject({ code: status.PERMISSION_DENIED });
      await unchanged();
    },
  );

  it('transactions belong to the user who began them; Commit and Abort need an id', async () => {
    const reader = as('reader', 'reader-password');
    const stranger = as('stranger', 'stranger-password');
    const txn = await reader.begin();
    await expect(stranger.commit(txn.id)).rejects.toMatchObject({
      code: status.PERMISSION_DENIED,
      reason: 'TXN_NOT_OWNER',
    });
    await expect(stranger.abort(txn.id)).rejects.toMatchObject({ code: status.PERMISSION_DENIED });
    await expect(stranger.space('default').write(tuple('in-txn'), { txn })).rejects.toMatchObject({
      code: status.PERMISSION_DENIED,
    });
    await expect(reader.commit('')).rejects.toMatchObject({ code: status.INVALID_ARGUMENT });
    await expect(reader.abort('')).rejects.toMatchObject({ code: status.INVALID_ARGUMENT });
    await reader.space('default').write(tuple('in-txn'), { txn });
    await txn.commit();
    expect(await reader.space('default').count(template('in-txn'))).toBe(1);
  });
});
