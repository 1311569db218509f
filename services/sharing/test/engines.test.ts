import { JetStreamLog, LocalLog } from '@backplane/replicated';
import { jetStreamReady } from '@backplane/runtime';
import {
  type NatsCluster,
  type NatsServer,
  startNats,
  startNatsCluster,
  tempDir,
  waitFor,
} from '@backplane/runtime/testing';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import type { EventPayload, WatchItem } from '../src/engine';
import { LocalBus } from '../src/local-bus';
import { NatsBus } from '../src/nats-bus';
import { ReplicatedProperties } from '../src/replicated-properties';
import { singleNode } from '../src/ring';
import { Sharing } from '../src/sharing';

const enc = (s: string) => Buffer.from(s);
const dec = (b: Uint8Array | undefined) => Buffer.from(b ?? []).toString();

interface Fixture {
  sharing: Sharing;
  close(): Promise<void>;
}

async function embedded(): Promise<Fixture> {
  const dir = tempDir();
  const props = await ReplicatedProperties.open({
    kind: 'embedded',
    log: await LocalLog.open(dir.path, { sync: false }),
    reapEveryMs: 20,
  });
  const sharing = new Sharing(props, new LocalBus(), singleNode({ id: 'a', address: 'x' }));
  return {
    sharing,
    close: async () => {
      await sharing.close();
      dir.remove();
    },
  };
}

let nats: NatsServer | undefined;
let cluster: NatsCluster | undefined;
let bucketNo = 0;

/** A sharing node on the NATS engine: its own connection, the log `name`, events under `events`. */
async function natsNode(urls: string, name: string, replicas: number): Promise<Fixture> {
  const nc: NatsConnection = await connect({ servers: urls.split(',') });
  const props = await ReplicatedProperties.open({
    kind: 'nats',
    log: await JetStreamLog.open({ nc, name, replicas }),
    reapEveryMs: 20,
  });
  const sharing = new Sharing(props, new NatsBus(nc, `ev.${name}`), singleNode({ id: 'a', address: 'x' }));
  return {
    sharing,
    close: async () => {
      await sharing.close();
      await nc.close();
    },
  };
}

async function natsEngine(): Promise<Fixture> {
  nats ??= await startNats();
  return natsNode(nats.url, `t${++bucketNo}`, 1);
}

/**
 * Three sharing nodes on a 3-node NATS cluster, the log on three replicas. The contract tests drive them
 * through one Sharing whose calls go round the three nodes in turn (a subscription stays with its node):
 * each call may land on another node than the one before it, as a client's calls do after a failover.
 */
async function natsCluster(): Promise<Fixture> {
  if (!cluster) {
    cluster = await startNatsCluster(3);
    const probe = await connect({ servers: cluster.urls.split(',') });
    await waitFor(() => jetStreamReady(probe).then(() => true), 60_000, 250);
    await probe.close();
  }
  const urls = cluster.servers.map((s) => s.url);
  const name = `c${++bucketNo}`;
  const nodes: Fixture[] = [];
  for (const url of urls) nodes.push(await natsNode(url, name, 3));
  let turn = 0;
  const sticky = new Set(['subscribe', 'unsubscribe', 'subscriptionCount', 'publish']);
  const sharing = new Proxy(nodes[0]?.sharing as Sharing, {
    get(target, prop) {
      const node = sticky.has(String(prop))
        ? target
        : ((nodes[turn++ % nodes.length] as Fixture).sharing as unknown as Record<string | symbol, unknown>);
      const v = (node as unknown as Record<string | symbol, unknown>)[prop];
      return typeof v === 'function' ? v.bind(node) : v;
    },
  });
  return {
    sharing,
    close: async () => {
      for (const n of nodes) await n.close();
    },
  };
}

afterAll(async () => {
  await nats?.stop();
  await cluster?.stop();
}, 60_000);

async function take<T>(it: AsyncIterator<T>, n: number, ms = 3000): Promise<T[]> {
  const out: T[] = [];
  const deadline = Date.now() + ms;
  while (out.length < n) {
    let timer: NodeJS.Timeout | undefined;
    const r = await Promise.race([
      it.next(),
      new Promise<'timeout'>((res) => {
        timer = setTimeout(() => res('timeout'), Math.max(1, deadline - Date.now()));
      }),
    ]);
    clearTimeout(timer);
    if (r === 'timeout' || r.done) break;
    out.push(r.value);
  }
  return out;
}

describe.each([
  ['embedded', embedded],
  ['nats', natsEngine],
  ['nats (3-node cluster, R3, three sharing nodes)', natsCluster],
])('Sharing on the %s engine', (_engine, make) => {
  let f: Fixture;
  let s: Sharing;
  beforeEach(async () => {
    f = await make();
    s = f.sharing;
  }, 120_000);
  afterEach(async () => {
    await f.close();
  });

  it('puts, gets and removes with increasing revisions', async () => {
    const r1 = await s.put('a.b', enc('one'));
    const r2 = await s.put('a.b', enc('two'));
    expect(r2).toBeGreaterThan(r1);
    const e = await s.get('a.b');
    expect(dec(e?.value)).toBe('two');
    expect(e?.revision).toBe(r2);
    expect(await s.remove('a.b')).toBeGreaterThan(r2);
    expect(await s.get('a.b')).toBeUndefined();
    expect(await s.remove('a.b')).toBeUndefined();
    expect(await s.get('never')).toBeUndefined();
  });

  it('compare-and-set succeeds at the right revision and refuses a stale one', async () => {
    const r1 = await s.compareAndSet('cas', 0, enc('first'));
    await expect(s.compareAndSet('cas', 0, enc('again'))).rejects.toMatchObject({
      code: 9,
      reason: 'REVISION_MISMATCH',
    });
    const r2 = await s.compareAndSet('cas', r1, enc('second'));
    await expect(s.compareAndSet('cas', r1, enc('stale'))).rejects.toMatchObject({ code: 9 });
    expect(dec((await s.get('cas'))?.value)).toBe('second');
    await expect(s.remove('cas', r1)).rejects.toMatchObject({ code: 9 });
    await s.remove('cas', r2);
    // absent again: create works after a delete
    await s.compareAndSet('cas', 0, enc('third'));
    expect(dec((await s.get('cas'))?.value)).toBe('third');
  });

  it('lists a prefix in key order, a page at a time', async () => {
    for (let i = 0; i < 25; i++) await s.put(`users.u${String(i).padStart(2, '0')}`, enc(`v${i}`));
    await s.put('other.x', enc('x'));
    const seen: string[] = [];
    let token = '';
    do {
      const page = await s.list('users.', 10, token);
      expect(page.entries.length).toBeLessThanOrEqual(10);
      seen.push(...page.entries.map((e) => e.key));
      token = page.nextPageToken;
    } while (token);
    expect(seen).toEqual(Array.from({ length: 25 }, (_, i) => `users.u${String(i).padStart(2, '0')}`));
    expect((await s.list('users.u1', 100, '')).entries.map((e) => e.key)).toHaveLength(10);
    expect((await s.list('', 100, '')).entries).toHaveLength(26);
    await expect(s.list('users.', 5000, '')).rejects.toMatchObject({ code: 3 });
  });

  it('watches current values then changes, and resumes from a revision', async () => {
    await s.put('w.a', enc('1'));
    const ac = new AbortController();
    const it = s.watch('w.', true, 0, ac.signal)[Symbol.asyncIterator]();
    const first = await take(it, 2);
    expect(first[0]).toMatchObject({ change: { kind: 'PUT', key: 'w.a' } });
    expect(first[1]).toEqual({ synced: true });
    const r = await s.put('w.b', enc('2'));
    await s.put('x.c', enc('not watched'));
    await s.remove('w.a');
    const next = (await take(it, 2)) as Array<Extract<WatchItem, { change: unknown }>>;
    expect(next.map((n) => [n.change.kind, n.change.key])).toEqual([
      ['PUT', 'w.b'],
      ['DELETE', 'w.a'],
    ]);
    ac.abort();
    // resume: every change from r on
    const ac2 = new AbortController();
    const it2 = s.watch('w.', true, r, ac2.signal)[Symbol.asyncIterator]();
    const resumed = (await take(it2, 2)) as Array<Extract<WatchItem, { change: unknown }>>;
    expect(resumed.map((n) => [n.change.kind, n.change.key, n.change.revision >= r])).toEqual([
      ['PUT', 'w.b', true],
      ['DELETE', 'w.a', true],
    ]);
    ac2.abort();
  });

  it('expires keys after their time to live, telling watchers', async () => {
    const ac = new AbortController();
    const it = s.watch('ttl', false, 0, ac.signal)[Symbol.asyncIterator]();
    expect(await take(it, 1)).toEqual([{ synced: true }]);
    // long enough that the get right after the put is inside it however busy the machine is
    await s.put('ttl', enc('short'), 3000);
    expect(dec((await s.get('ttl'))?.value)).toBe('short');
    const events = (await take(it, 2, 10_000)) as Array<Extract<WatchItem, { change: unknown }>>;
    expect(events.map((e) => e.change.kind)).toEqual(['PUT', 'EXPIRE']);
    expect(await s.get('ttl')).toBeUndefined();
    ac.abort();
  });

  it('refuses bad keys, topics, values and ttls with INVALID_ARGUMENT or RESOURCE_EXHAUSTED', async () => {
    for (const k of ['', '.a', 'a.', 'a..b', 'a b', 'a*', 'k'.repeat(513)])
      await expect(s.put(k, enc('x'))).rejects.toMatchObject({ code: 3 });
    await expect(s.put('big', Buffer.alloc(1_000_001))).rejects.toMatchObject({ code: 8 });
    await expect(s.put('k', enc('x'), -1)).rejects.toMatchObject({ code: 3 });
    await expect(s.publish({ topic: 'a.*', payload: { $case: 'text', text: 'x' } })).rejects.toMatchObject({
      code: 3,
    });
    await expect(s.subscribe('a.>.b', new AbortController().signal)).rejects.toMatchObject({ code: 3 });
    await expect(s.list('', 10, 'garbage!!')).rejects.toMatchObject({ code: 3 });
  });

  it('delivers events in publish order to matching subscribers, and ends on unsubscribe', async () => {
    const ac = new AbortController();
    const exact = await s.subscribe('orders.new', ac.signal);
    const wild = await s.subscribe('orders.*', ac.signal);
    const it1 = exact.events[Symbol.asyncIterator]();
    const it2 = wild.events[Symbol.asyncIterator]();
    for (let i = 0; i < 50; i++)
      await s.publish({ topic: 'orders.new', payload: { $case: 'text', text: `e${i}` } });
    await s.publish({ topic: 'orders.old', payload: { $case: 'data', data: Buffer.from([1, 2]) } });
    await s.publish({ topic: 'other', payload: { $case: 'text', text: 'no' } });
    const got1 = (await take(it1, 50)) as EventPayload[];
    expect(got1.map((e) => (e.payload.$case === 'text' ? e.payload.text : ''))).toEqual(
      Array.from({ length: 50 }, (_, i) => `e${i}`),
    );
    const got2 = (await take(it2, 51)) as EventPayload[];
    expect(got2).toHaveLength(51);
    expect(got2[50]).toMatchObject({ topic: 'orders.old', payload: { $case: 'data' } });
    s.unsubscribe(exact.id);
    expect(await it1.next()).toEqual({ done: true, value: undefined });
    expect(() => s.unsubscribe(exact.id)).toThrow(expect.objectContaining({ code: 5 }));
    ac.abort();
    await expect(it2.next()).rejects.toBeDefined();
    expect(s.subscriptionCount).toBe(0);
  });

  it('commits transactions atomically and reports conflicts', async () => {
    const ra = await s.put('acct.a', enc('100'));
    const rb = await s.put('acct.b', enc('0'));
    const ok = await s.commit({
      reads: [
        { key: 'acct.a', revision: ra },
        { key: 'acct.b', revision: rb },
      ],
      puts: [
        { key: 'acct.a', value: enc('50'), ttlMs: 0 },
        { key: 'acct.b', value: enc('50'), ttlMs: 0 },
      ],
      removes: [],
    });
    expect(ok.committed).toBe(true);
    const bad = await s.commit({
      reads: [
        { key: 'acct.a', revision: ra },
        { key: 'acct.c', revision: 0 },
      ],
      puts: [{ key: 'acct.a', value: enc('0'), ttlMs: 0 }],
      removes: ['acct.b'],
    });
    expect(bad).toMatchObject({ committed: false, conflicts: [{ key: 'acct.a', expected: ra }] });
    expect(dec((await s.get('acct.a'))?.value)).toBe('50');
    expect(dec((await s.get('acct.b'))?.value)).toBe('50');
    // concurrent conflicting commits: exactly one wins
    const a = (await s.get('acct.a'))?.revision ?? 0;
    const results = await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        s.commit({
          reads: [{ key: 'acct.a', revision: a }],
          puts: [
            { key: 'acct.a', value: enc(`w${i}`), ttlMs: 0 },
            { key: 'acct.b', value: enc(`w${i}`), ttlMs: 0 },
          ],
          removes: [],
        }),
      ),
    );
    expect(results.filter((r) => r.committed)).toHaveLength(1);
    expect(dec((await s.get('acct.a'))?.value)).toBe(dec((await s.get('acct.b'))?.value));
  });
});
