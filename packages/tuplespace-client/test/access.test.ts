import { tempDir } from '@backplane/runtime/testing';
import { type RunningTupleSpaceServer, startTupleSpaceServer } from '@backplane/tuplespace';
import { status } from '@grpc/grpc-js';
import { type Space, TupleSpaceClient, template, tuple, values } from '../src';

const ADMIN = { user: 'admin', password: 'admin-password-1' };

type Needs = Array<'READ' | 'WRITE' | 'ADMIN'> | 'SERVER';

/**
 * Every command against a space the caller may not use: each must be refused, and nothing may change.
 * `needs` is what the command needs on the space (SERVER for the server-admin commands): a command that
 * takes tuples shows what it removes, so it needs READ as well as WRITE. `ids` are ids of tuples in `s`.
 */
const COMMANDS: Array<{
  name: string;
  needs: Needs;
  run: (s: Space, c: TupleSpaceClient, ids: number[]) => Promise<unknown>;
}> = [
  { name: 'Write', needs: ['WRITE'], run: (s) => s.write(tuple('x')) },
  { name: 'MultiWrite', needs: ['WRITE'], run: (s) => s.multiWrite([tuple('x'), tuple('y')]) },
  { name: 'Read', needs: ['READ'], run: (s) => s.read(template('kept')) },
  { name: 'Take', needs: ['READ', 'WRITE'], run: (s) => s.take(template('kept')) },
  {
    name: 'WaitToRead',
    needs: ['READ'],
    run: (s) => s.waitToRead(template('kept', Number), { deadline: new Date(Date.now() + 2000) }),
  },
  {
    name: 'WaitToTake',
    needs: ['READ', 'WRITE'],
    run: (s) => s.waitToTake(template('kept', Number), { deadline: new Date(Date.now() + 2000) }),
  },
  {
    name: 'Scan',
    needs: ['READ'],
    run: async (s) => {
      for await (const _ of s.scan(template('kept')));
    },
  },
  {
    name: 'ConsumingScan',
    needs: ['READ', 'WRITE'],
    run: async (s) => {
      for await (const _ of s.consumingScan(template('kept')));
    },
  },
  { name: 'Count', needs: ['READ'], run: (s) => s.count(template('kept')) },
  { name: 'Delete', needs: ['WRITE'], run: (s) => s.delete(template('kept')) },
  { name: 'Update', needs: ['WRITE'], run: (s, _c, ids) => s.update(ids[0] as number, tuple('changed')) },
  { name: 'ReadById', needs: ['READ'], run: (s, _c, ids) => s.readById(ids[0] as number) },
  { name: 'EventRegister', needs: ['READ'], run: (s) => s.events(template('kept')) },
  { name: 'Command WRITE', needs: ['WRITE'], run: (s) => s.command('WRITE', tuple('x')) },
  {
    name: 'Command TAKE',
    needs: ['READ', 'WRITE'],
    run: (s) => s.command('TAKE', undefined, { template: template('kept') }),
  },
  {
    name: 'Command COUNT',
    needs: ['READ'],
    run: (s) => s.command('COUNT', undefined, { template: template('kept') }),
  },
  { name: 'AddFactory', needs: ['ADMIN'], run: (s) => s.addFactory('stale-tuple') },
  { name: 'RemoveFactory', needs: ['ADMIN'], run: (s) => s.removeFactory(0) },
  // any permission on the space (a caller with none cannot see the space)
  { name: 'ListFactories', needs: [], run: (s) => s.factories() },
  { name: 'AddHandler', needs: ['ADMIN'], run: (s) => s.addHandler('WRITE', 'timestamping') },
  {
    name: 'SetAcl',
    needs: ['ADMIN'],
    run: (s, c) => c.setAcl(s.name, [{ principal: '*', permissions: ['READ', 'WRITE', 'ADMIN'] }]),
  },
  { name: 'DeleteSpace', needs: ['ADMIN'], run: (s, c) => c.deleteSpace(s.name) },
  { name: 'PutUser', needs: 'SERVER', run: (_s, c) => c.putUser('mallory', 'mallory-password', ['admin']) },
  { name: 'DeleteUser', needs: 'SERVER', run: (_s, c) => c.deleteUser('reader') },
  { name: 'ListUsers', needs: 'SERVER', run: (_s, c) => c.listUsers() },
];

describe('tuple-space access control, command by command', () => {
  const dir = tempDir('ts-access-');
  let server: RunningTupleSpaceServer;
  let admin: TupleSpaceClient;
  let acl: unknown;
  const keptIds: number[] = [];
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
    for (let i = 0; i < 5; i += 1) keptIds.push(await guarded.write(tuple('kept', i)));
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
    await expect(run(c.space('guarded'), c, keptIds)).rejects.toMatchObject({ code: status.UNAUTHENTICATED });
    await unchanged();
  });

  it.each(COMMANDS)(
    '$name: a user with no entry in the ACL cannot tell the space exists',
    async ({ run, needs }) => {
      const c = as('stranger', 'stranger-password');
      const expected = needs === 'SERVER' ? status.PERMISSION_DENIED : status.NOT_FOUND;
      await expect(run(c.space('guarded'), c, keptIds)).rejects.toMatchObject({ code: expected });
      await unchanged();
    },
  );

  it.each(COMMANDS)('$name: an anonymous caller is refused', async ({ run, needs }) => {
    const c = as();
    const expected = needs === 'SERVER' ? status.PERMISSION_DENIED : status.NOT_FOUND;
    await expect(run(c.space('guarded'), c, keptIds)).rejects.toMatchObject({ code: expected });
    await unchanged();
  });

  it.each(COMMANDS.filter((c) => c.needs === 'SERVER' || c.needs.some((p) => p !== 'READ')))(
    '$name: a READ-only user is PERMISSION_DENIED',
    async ({ run }) => {
      const c = as('reader', 'reader-password');
      await expect(run(c.space('guarded'), c, keptIds)).rejects.toMatchObject({
        code: status.PERMISSION_DENIED,
      });
      await unchanged();
    },
  );

  /** A space of its own for a command that is allowed (it may change the space), with `kept` tuples. */
  let spaces = 0;
  const spaceFor = async (permissions: Array<'READ' | 'WRITE'>) => {
    const name = `granted-${++spaces}`;
    const sp = await admin.createSpace(name, { acl: [{ principal: 'granted', permissions }] });
    const ids = await sp.multiWrite([0, 1, 2, 3, 4].map((i) => tuple('kept', i)));
    return { name, ids };
  };
  const grantedUser = async (permissions: Array<'READ' | 'WRITE'>) => {
    if (!(await admin.listUsers()).some((u) => u.name === 'granted'))
      await admin.putUser('granted', 'granted-password');
    const c = as('granted', 'granted-password');
    return { c, ...(await spaceFor(permissions)) };
  };
  const allows = (needs: Needs, held: Array<'READ' | 'WRITE'>) =>
    needs !== 'SERVER' && needs.every((p) => (held as string[]).includes(p));

  describe.each([
    ['READ only', ['READ'] as Array<'READ' | 'WRITE'>],
    ['WRITE only', ['WRITE'] as Array<'READ' | 'WRITE'>],
    ['READ and WRITE', ['READ', 'WRITE'] as Array<'READ' | 'WRITE'>],
  ])('a user with %s on a space', (_label, held) => {
    it.each(COMMANDS.filter((c) => allows(c.needs, held)))('$name is allowed', async ({ run }) => {
      const { c, name, ids } = await grantedUser(held);
      await expect(run(c.space(name), c, ids)).resolves.not.toThrow();
    });

    it.each(COMMANDS.filter((c) => c.needs !== 'SERVER' && !allows(c.needs, held)))(
      '$name is PERMISSION_DENIED, and the space is unchanged',
      async ({ run, needs }) => {
        const { c, name, ids } = await grantedUser(held);
        const missing = (needs as string[]).find((p) => !(held as string[]).includes(p));
        await expect(run(c.space(name), c, ids)).rejects.toMatchObject({
          code: status.PERMISSION_DENIED,
          message: expect.stringContaining(`${missing} on space`),
        });
        const sp = admin.space(name);
        expect(await sp.count(template('kept', Number))).toBe(5);
        expect(await sp.count(template())).toBe(0);
        expect(await sp.count(template('x'))).toBe(0);
        expect(values((await sp.readById(ids[0] as number))?.tuple)).toEqual(['kept', 0]);
        expect((await sp.factories()).map((f) => f.name)).toEqual(['basic']);
      },
    );
  });

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
