import { tempDir, waitFor } from '@backplane/runtime/testing';
import { type RunningTupleSpaceServer, startTupleSpaceServer } from '@backplane/tuplespace';
import { status } from '@grpc/grpc-js';
import { TupleSpaceClient, template, tuple, values } from '../src';

const ADMIN = { user: 'admin', password: 'admin-password-1' };

/** Transactions ending under a waiting call, ids across restarts, and deleting a space under load. */
describe('tuple-space lifecycles', () => {
  const dir = tempDir('ts-lifecycle-');
  let server: RunningTupleSpaceServer;
  let admin: TupleSpaceClient;

  const start = async () => {
    server = await startTupleSpaceServer({ port: 0, dataDir: dir.path, adminPassword: ADMIN.password });
    admin = new TupleSpaceClient(server.address, ADMIN);
  };
  const stop = async () => {
    admin.close();
    await server.close();
  };

  beforeAll(start);
  afterAll(async () => {
    await stop();
    dir.remove();
  });

  let n = 0;
  const fresh = () => admin.createSpace(`life-${++n}`);

  it.each([
    ['aborted', 'abort'],
    ['committed', 'commit'],
  ] as const)(
    'a waitToTake inside a transaction ends when the transaction is %s, and a later write stays in the space',
    async (_, end) => {
      const sp = await fresh();
      const txn = await admin.begin();
      const waiting = sp.waitToTake(template('job', Number), { txn, timeoutMs: 10_000 });
      await waitFor(() => server.spaces.stats().waiting === 1);
      await (end === 'abort' ? txn.abort() : txn.commit());
      await expect(waiting).rejects.toMatchObject({ code: status.FAILED_PRECONDITION });
      await sp.write(tuple('job', 1));
      expect(await sp.count(template('job', Number))).toBe(1);
      expect(values((await sp.read(template('job', Number)))?.tuple)).toEqual(['job', 1]);
    },
  );

  it('never gives a tuple id twice, also after the newest tuples were taken and the server restarted', async () => {
    const sp = await fresh();
    await sp.write(tuple('a'));
    const b = await sp.write(tuple('b'));
    await sp.take(template('b'));
    await stop();
    await start();
    const again = admin.space(sp.name);
    const c = await again.write(tuple('c'));
    expect(c).toBeGreaterThan(b);
    expect(await again.readById(b)).toBeUndefined();
  });

  it('a space created again while its old self is being deleted keeps its own tuples', async () => {
    const sp = await fresh();
    await sp.multiWrite(Array.from({ length: 2000 }, (_, i) => tuple('old', i)));
    const deleted = admin.deleteSpace(sp.name);
    await new Promise((r) => setImmediate(r));
    const recreated = admin.createSpace(sp.name).catch(async () => {
      // the delete had not started when the create arrived: create again once it is done
      await deleted;
      return admin.createSpace(sp.name);
    });
    await deleted;
    const fresh2 = await recreated;
    await fresh2.write(tuple('new', 1));
    expect(await fresh2.count(template('old', Number))).toBe(0);
    await stop();
    await start();
    const after = admin.space(sp.name);
    expect(await after.count(template('new', Number))).toBe(1);
    expect(await after.count(template('old', Number))).toBe(0);
  });
});
