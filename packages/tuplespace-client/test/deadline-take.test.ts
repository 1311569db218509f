import { tempDir } from '@backplane/runtime/testing';
import { type RunningTupleSpaceServer, startTupleSpaceServer } from '@backplane/tuplespace';
import { status } from '@grpc/grpc-js';
import { type Space, type Transaction, TupleSpaceClient, template, tuple } from '../src';

const ADMIN = { user: 'admin', password: 'admin-password-1' };
const DEADLINE_MS = 500;
const TRIALS = 500;
/** Trials at once (each with its own tuple), so 500 of them take seconds, not minutes. */
const AT_ONCE = 50;

interface Outcome {
  taken: boolean;
  /** The call failed and the tuple is not in the space either: lost. */
  lost: boolean;
  code?: number;
  reason?: string;
}

/**
 * The trial of the independent fault test: a WaitToTake with a 500 ms deadline, and its tuple written
 * 2 to 8 ms before that deadline. A call that fails must have taken nothing.
 */
async function trial(
  waiter: TupleSpaceClient,
  writer: Space,
  space: Space,
  key: string,
  inTxn: boolean,
  leadMs: [number, number],
): Promise<Outcome> {
  const lead = leadMs[0] + Math.random() * (leadMs[1] - leadMs[0]);
  const started = Date.now();
  const write = new Promise<void>((resolve, reject) => {
    setTimeout(() => writer.write(tuple('trial', key)).then(() => resolve(), reject), DEADLINE_MS - lead);
  });
  let taken = false;
  let code: number | undefined;
  let reason: string | undefined;
  const take = async (txn?: Transaction) => {
    try {
      await space.waitToTake(template('trial', key), {
        timeoutMs: DEADLINE_MS - (Date.now() - started),
        txn,
      });
      taken = true;
    } catch (err) {
      // as the caller of the report did: carry on as if nothing was taken (and commit)
      ({ code, reason } = err as { code: number; reason: string });
    }
  };
  if (inTxn) {
    // transaction() commits unless the take failed in a way that may have taken a tuple (then it aborts)
    await waiter.transaction(take).catch((err: unknown) => {
      expect(err).toMatchObject({ code: status.ABORTED, reason: 'TAKE_FAILED_IN_TXN' });
    });
  } else await take();
  await write;
  const left = await writer.count(template('trial', key));
  if (taken) expect(left).toBe(0);
  return { taken, lost: !taken && left === 0, code, reason };
}

async function run(inTxn: boolean, pipeline: boolean, trials = TRIALS, leadMs: [number, number] = [2, 8]) {
  const waiter = new TupleSpaceClient(server.address, { ...ADMIN, pipeline });
  const space = waiter.space(spaceName);
  const outcomes: Outcome[] = [];
  try {
    for (let round = 0; round < trials / AT_ONCE; round++) {
      outcomes.push(
        ...(await Promise.all(
          Array.from({ length: AT_ONCE }, (_, i) =>
            trial(waiter, writerSpace, space, `${inTxn}-${pipeline}-${leadMs}-${round}-${i}`, inTxn, leadMs),
          ),
        )),
      );
    }
  } finally {
    waiter.close();
  }
  const failed = outcomes.filter((o) => !o.taken);
  // every failure is the deadline: the server's answer a margin before it, or the client's own
  for (const f of failed) expect(f.code).toBe(status.DEADLINE_EXCEEDED);
  return {
    lost: outcomes.filter((o) => o.lost).length,
    taken: outcomes.length - failed.length,
    answeredByServer: failed.filter((o) => o.reason === 'NO_MATCH_IN_TIME').length,
  };
}

let server: RunningTupleSpaceServer;
let writer: TupleSpaceClient;
let writerSpace: Space;
const spaceName = 'deadline-trials';
const dir = tempDir('ts-deadline-');

beforeAll(async () => {
  server = await startTupleSpaceServer({ port: 0, dataDir: dir.path, adminPassword: ADMIN.password });
  writer = new TupleSpaceClient(server.address, ADMIN);
  writerSpace = await writer.createSpace(spaceName);
});
afterAll(async () => {
  writer.close();
  await server.close();
  dir.remove();
});

describe('WaitToTake near its deadline', () => {
  it.each([
    ['plain, through the pipeline', false, true],
    ['plain, unary calls', false, false],
    ['in a transaction() the caller commits, through the pipeline', true, true],
    ['in a transaction() the caller commits, unary calls', true, false],
  ])(
    'takes nothing when it fails: 500 trials with the tuple written 2-8 ms before a 500 ms deadline (%s)',
    async (_name, inTxn, pipeline) => {
      const r = await run(inTxn, pipeline);
      console.log(`${_name}: ${JSON.stringify(r)}`);
      expect(r.lost).toBe(0);
      // the margin answers most of them (the rest are the client's own deadline firing first)
      expect(r.answeredByServer).toBeGreaterThan(TRIALS / 2);
    },
    120_000,
  );

  it.each([
    ['plain', false],
    ['in a transaction', true],
  ])('still hands over a tuple written well before the margin (%s)', async (_name, inTxn) => {
    const r = await run(inTxn, true, AT_ONCE, [200, 250]);
    expect(r).toEqual({ lost: 0, taken: AT_ONCE, answeredByServer: 0 });
  });
});

describe('transaction() after a take that failed inside it', () => {
  let client: TupleSpaceClient;
  let n = 0;
  beforeAll(() => {
    client = new TupleSpaceClient(server.address, ADMIN);
  });
  afterAll(() => client.close());
  const fresh = () => client.createSpace(`txn-helper-${++n}`);

  it('aborts when a take failed other than by finding nothing, though fn caught the error', async () => {
    const sp = await fresh();
    await sp.write(tuple('job', 1));
    const ac = new AbortController();
    const attempt = client.transaction(async (txn) => {
      expect(await sp.take(template('job', 1), { txn })).toBeDefined();
      const waiting = sp.waitToTake(template('job', 2), { txn, signal: ac.signal });
      ac.abort();
      await expect(waiting).rejects.toMatchObject({ code: status.CANCELLED });
      return 'done';
    });
    await expect(attempt).rejects.toMatchObject({ code: status.ABORTED, reason: 'TAKE_FAILED_IN_TXN' });
    // the take the transaction did make is undone
    expect(await sp.count(template('job', 1))).toBe(1);
  });

  it('commits when a WaitToTake ended NO_MATCH_IN_TIME (the server took nothing)', async () => {
    const sp = await fresh();
    await sp.write(tuple('job', 1));
    const out = await client.transaction(async (txn) => {
      await sp.take(template('job', 1), { txn });
      await expect(sp.waitToTake(template('job', 2), { txn, timeoutMs: 200 })).rejects.toMatchObject({
        code: status.DEADLINE_EXCEEDED,
        reason: 'NO_MATCH_IN_TIME',
      });
      return 'done';
    });
    expect(out).toBe('done');
    expect(await sp.count(template('job', 1))).toBe(0);
  });

  it('commits anyway with commitAfterFailedTake', async () => {
    const sp = await fresh();
    await sp.write(tuple('job', 1));
    const ac = new AbortController();
    const out = await client.transaction(
      async (txn) => {
        await sp.take(template('job', 1), { txn });
        const waiting = sp.waitToTake(template('job', 2), { txn, signal: ac.signal });
        ac.abort();
        await waiting.catch(() => undefined);
        return 'done';
      },
      { commitAfterFailedTake: true },
    );
    expect(out).toBe('done');
    expect(await sp.count(template('job', 1))).toBe(0);
  });

  it('aborts when a consumingScan inside it was left before its end', async () => {
    const sp = await fresh();
    await sp.multiWrite([tuple('job', 1), tuple('job', 2), tuple('job', 3)]);
    await expect(
      client.transaction(async (txn) => {
        for await (const _r of sp.consumingScan(template('job', Number), { txn })) break;
      }),
    ).rejects.toMatchObject({ code: status.ABORTED, reason: 'TAKE_FAILED_IN_TXN' });
    expect(await sp.count(template('job', Number))).toBe(3);
  });

  it('answers a WaitToTake whose deadline is inside the margin at once, taking nothing', async () => {
    const sp = await fresh();
    await sp.write(tuple('job', 1));
    await expect(sp.waitToTake(template('job', 1), { timeoutMs: 30 })).rejects.toMatchObject({
      code: status.DEADLINE_EXCEEDED,
      reason: 'NO_MATCH_IN_TIME',
    });
    expect(await sp.count(template('job', 1))).toBe(1);
  });
});
