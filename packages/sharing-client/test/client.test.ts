import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { SharingServiceClient } from '@backplane/proto/sharing';
import {
  type NatsCluster,
  natsServerBinary,
  spawnProcess,
  startNatsCluster,
  startServiceBinary,
  tempDir,
} from '@backplane/runtime/testing';
import { type RunningSharingServer, safeConditionalWrites, startSharingServer } from '@backplane/sharing';
import {
  parseBootstrapUrl,
  type SharedEvent,
  SharedEvents,
  SharedProperties,
  SharingConnection,
  SharingFactory,
  TransactionConflict,
} from '../src';

/** The version of the nats-server the tests run (`nats-server: v2.10.27`). */
function natsVersion(): string {
  const out = spawnSync(natsServerBinary(), ['--version'], { encoding: 'utf8' }).stdout ?? '';
  return /v(\d+\.\d+\.\d+)/.exec(out)?.[1] ?? '0.0.0';
}

/** The sharing node's own binary, for a node that is killed -9. */
const SHARING_MAIN = join(require.resolve('@backplane/sharing/package.json'), '..', 'dist', 'main.js');

const until = async (cond: () => boolean | Promise<boolean>, ms = 5000) => {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
};

describe('parseBootstrapUrl', () => {
  it("reads the seed's boot@host form, plain addresses and lists", () => {
    expect(parseBootstrapUrl('boot@localhost')).toEqual(['localhost:8400']);
    expect(parseBootstrapUrl('boot@10.0.0.1:9000')).toEqual(['10.0.0.1:9000']);
    expect(parseBootstrapUrl('a:1, b')).toEqual(['a:1', 'b:8400']);
    expect(() => parseBootstrapUrl('')).toThrow();
  });
});

describe('sharing client against an embedded node', () => {
  let server: RunningSharingServer;
  const dir = tempDir();
  let props: SharedProperties;
  let events: SharedEvents;
  beforeAll(async () => {
    server = await startSharingServer({ port: 0, dataDir: dir.path });
    props = SharingFactory.createSharedProperties(`boot@${server.address}`);
    events = SharingFactory.createSharedEvents(`boot@${server.address}`);
  });
  afterAll(async () => {
    SharingFactory.closeAll();
    await server.close();
    dir.remove();
  });

  it("shares one connection per URL, as the seed's singleton", () => {
    expect(props.connection).toBe(events.connection);
  });

  it('puts, gets, removes, compare-and-sets and lists', async () => {
    const r = await props.put('app.color', 'blue');
    expect((await props.get('app.color'))?.text()).toBe('blue');
    await expect(props.compareAndSet('app.color', r + 100, 'red')).rejects.toMatchObject({
      code: 9,
      reason: 'REVISION_MISMATCH',
    });
    await props.compareAndSet('app.color', r, 'red');
    await props.put('app.size', JSON.stringify({ w: 3 }));
    expect((await props.get('app.size'))?.json()).toEqual({ w: 3 });
    const keys: string[] = [];
    for await (const p of props.list('app.', { pageSize: 1 })) keys.push(p.key);
    expect(keys).toEqual(['app.color', 'app.size']);
    expect(await props.remove('app.color')).toBe(true);
    expect(await props.remove('app.color')).toBe(false);
    await expect(props.put('bad key', 'x')).rejects.toMatchObject({ code: 3, reason: 'BAD_KEY' });
  });

  it('runs optimistic transactions: all or nothing, conflicts named', async () => {
    await props.put('bank.a', '10');
    await props.put('bank.b', '0');
    const t = props.transaction();
    const a = Number((await t.get('bank.a'))?.text());
    const b = Number((await t.get('bank.b'))?.text());
    t.put('bank.a', String(a - 5)).put('bank.b', String(b + 5));
    // someone else changes a read key before the commit
    const t2 = props.transaction();
    await t2.get('bank.a');
    t2.put('bank.a', '0');
    await t.commit();
    const err = await t2.commit().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TransactionConflict);
    // named as its class (logs, and code that tells errors apart by name), with the vocabulary's code
    expect(err).toMatchObject({ name: 'TransactionConflict', code: 9, reason: 'TRANSACTION_CONFLICT' });
    expect((err as TransactionConflict).conflicts.map((c) => c.key)).toEqual(['bank.a']);
    expect((await props.get('bank.a'))?.text()).toBe('5');
    expect((await props.get('bank.b'))?.text()).toBe('5');
  });

  it('sends every small call, commits included, over the call pipeline (no plain unary call)', async () => {
    const plain = (['put', 'get', 'commit'] as const).map((m) =>
      jest.spyOn(SharingServiceClient.prototype, m),
    );
    try {
      await props.put('pipe.a', '1');
      const t = props.transaction();
      await t.get('pipe.a');
      t.put('pipe.b', '2');
      await t.commit();
      expect((await props.get('pipe.b'))?.text()).toBe('2');
      // a plain call goes through the grpc-js client's method; a pipelined one through the Calls stream
      for (const spy of plain) expect(spy).not.toHaveBeenCalled();
    } finally {
      for (const spy of plain) spy.mockRestore();
    }
  });

  it('watches a prefix and resumes from a revision', async () => {
    const ac = new AbortController();
    const seen: string[] = [];
    let synced = false;
    const done = (async () => {
      for await (const c of props.watch('cfg.', {
        prefix: true,
        signal: ac.signal,
        onSynced: () => (synced = true),
      })) {
        seen.push(`${c.kind} ${c.key} ${c.property?.text() ?? ''}`.trim());
        if (seen.length === 3) ac.abort();
      }
    })().catch(() => undefined);
    await until(() => synced);
    const r = await props.put('cfg.a', '1');
    await props.put('cfg.b', '2', { ttlMs: 100 });
    await done;
    expect(seen.slice(0, 2)).toEqual(['PUT cfg.a 1', 'PUT cfg.b 2']);
    expect(seen[2]).toBe('EXPIRE cfg.b');
    // resumed from r: the put of cfg.a and nothing older
    const again: string[] = [];
    for await (const c of props.watch('cfg.a', { fromRevision: r, signal: AbortSignal.timeout(5000) })) {
      again.push(`${c.kind} ${c.key} ${c.revision}`);
      break;
    }
    expect(again).toEqual([`PUT cfg.a ${r}`]);
  });

  it('delivers events to callbacks and iterators, in order, and unsubscribes', async () => {
    const got: string[] = [];
    const sub = await events.subscribe('news.*', (_se, topic, value) => got.push(`${topic}=${value}`));
    for (let i = 0; i < 20; i++) await events.publish('news.sport', `s${i}`);
    await events.publish('news.raw', Buffer.from([0xff]));
    await until(() => got.length === 21);
    expect(got.slice(0, 20)).toEqual(Array.from({ length: 20 }, (_, i) => `news.sport=s${i}`));
    await sub.unsubscribe();
    await until(() => server.sharing.subscriptionCount === 0);
    const ac = new AbortController();
    const it = events.events('alerts', { signal: ac.signal });
    const first = it.next();
    await until(() => server.sharing.subscriptionCount === 1);
    await events.publish('alerts', 'fire');
    expect(((await first).value as SharedEvent).value).toBe('fire');
    ac.abort();
    await it.return(undefined);
    await until(() => server.sharing.subscriptionCount === 0);
  });

  it('ends an iterator that falls more than maxQueued events behind with RESOURCE_EXHAUSTED, memory bounded', async () => {
    const it = events.events('slow', { maxQueued: 3 });
    const first = it.next();
    await until(() => server.sharing.subscriptionCount === 1);
    for (let i = 0; i < 10; i++) await events.publish('slow', `e${i}`);
    const got = [((await first).value as SharedEvent).value];
    // the rest arrive while nobody reads: the fourth one behind overflows the queue, and the client ends
    // the subscription (the node sees it go)
    await until(() => server.sharing.subscriptionCount === 0);
    const err = await (async () => {
      for (;;) {
        const r = await it.next();
        if (r.done) return undefined;
        got.push((r.value as SharedEvent).value);
      }
    })().catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 8 });
    expect(got.length).toBeLessThanOrEqual(5);
    expect(got).toEqual(Array.from({ length: got.length }, (_, i) => `e${i}`));
  });

  it('frees a subscription when the client goes away', async () => {
    const c = new SharingConnection(server.address);
    const ev = new SharedEvents(c);
    await ev.subscribe('gone', () => undefined);
    expect(server.sharing.subscriptionCount).toBe(1);
    c.close();
    await until(() => server.sharing.subscriptionCount === 0);
    // a subscriber process killed -9 (its connection just drops) is freed too
    const child = spawnProcess(
      process.execPath,
      [
        '-e',
        `const { SharingServiceClient } = require('@backplane/proto/sharing');
       const grpc = require('@grpc/grpc-js');
       const c = new SharingServiceClient('${server.address}', grpc.credentials.createInsecure());
       const call = c.subscribe({ topic: 'gone.>' });
       call.on('data', () => console.log('subscribed'));
       call.on('error', () => {});`,
      ],
      { cwd: join(__dirname, '..') },
    );
    await child.waitForOutput(/subscribed/);
    expect(server.sharing.subscriptionCount).toBe(1);
    await child.kill();
    await until(() => server.sharing.subscriptionCount === 0);
  });
});

describe('sharing ring on a 3-node NATS cluster', () => {
  let cluster: NatsCluster;
  const nodes: RunningSharingServer[] = [];
  beforeAll(async () => {
    cluster = await startNatsCluster(3);
    for (let i = 0; i < 3; i++)
      nodes.push(
        await startSharingServer({
          port: 0,
          dataDir: '',
          natsUrl: cluster.servers[i]?.url,
          // R1: Debian's nats-server 2.9.10 races conditional writes on replicated streams (#4320)
          replicas: 1,
          reapEveryMs: 50,
        }),
      );
    // startNatsCluster waits up to 120 s for the cluster to place a stream on every server (a busy machine)
  }, 180_000);

  it('refuses a replicated bucket on a nats-server that races conditional writes, and runs one on one that does not', async () => {
    expect(safeConditionalWrites('2.9.10')).toBe(false);
    expect(safeConditionalWrites('2.9.21')).toBe(true);
    expect(safeConditionalWrites('2.10.0')).toBe(true);
    const start = () =>
      startSharingServer({
        port: 0,
        dataDir: '',
        natsUrl: cluster.servers[0]?.url,
        replicas: 3,
        bucket: 'r3',
      });
    const version = natsVersion();
    if (!safeConditionalWrites(version)) {
      await expect(start()).rejects.toMatchObject({ code: 9, reason: 'UNSAFE_NATS_SERVER' });
      return;
    }
    const node = await start();
    try {
      const p = new SharedProperties(new SharingConnection(node.address));
      const rev = await p.put('r3.k', 'v');
      expect((await p.get('r3.k'))?.revision).toBe(rev);
      p.connection.close();
    } finally {
      await node.close();
    }
  }, 60_000);
  afterAll(async () => {
    for (const n of nodes) await n.close().catch(() => undefined);
    await cluster?.stop();
  }, 30_000);

  it('shows a put at one node to gets and watches at the others, and events everywhere', async () => {
    const [a, b, c] = nodes.map((n) => new SharingConnection(n.address));
    const ac = new AbortController();
    try {
      const pa = new SharedProperties(a as SharingConnection);
      const pb = new SharedProperties(b as SharingConnection);
      const watched: string[] = [];
      let synced = false;
      void (async () => {
        for await (const ch of pb.watch('ring.', {
          prefix: true,
          signal: ac.signal,
          onSynced: () => (synced = true),
        }))
          watched.push(`${ch.kind} ${ch.key}`);
      })().catch(() => undefined);
      await until(() => synced);
      await pa.put('ring.k', 'v');
      expect((await pb.get('ring.k'))?.text()).toBe('v');
      await until(() => watched.includes('PUT ring.k'));

      const got: string[] = [];
      const ec = new SharedEvents(c as SharingConnection);
      await ec.subscribe('ring.topic', (_s, _t, v) => got.push(v));
      const ea = new SharedEvents(a as SharingConnection);
      // NATS tells the other servers of a cluster about a subscription asynchronously (route interest):
      // wait until a probe from node a's server reaches it, as a real publisher elsewhere would see
      await until(async () => {
        await ea.publish('ring.topic', 'probe');
        return got.includes('probe');
      }, 10_000);
      got.length = 0;
      await new Promise((r) => setTimeout(r, 100));
      got.length = 0;
      for (let i = 0; i < 30; i++) await ea.publish('ring.topic', `e${i}`);
      await until(() => got.length === 30);
      expect(got).toEqual(Array.from({ length: 30 }, (_, i) => `e${i}`));

      // concurrent compare-and-sets from different nodes: exactly one wins
      const rev = (await pa.get('ring.k'))?.revision ?? 0;
      const clients = [a, b, c].map((x) => new SharedProperties(x as SharingConnection));
      const outcomes = await Promise.allSettled(
        clients.map((p, i) => p.compareAndSet('ring.k', rev, `n${i}`)),
      );
      expect(outcomes.filter((o) => o.status === 'fulfilled')).toHaveLength(1);
    } finally {
      ac.abort();
      for (const x of [a, b, c]) x?.close();
    }
  });

  it('learns every node from one and fails over when its node is killed (SIGKILL)', async () => {
    // the node the client boots from and uses: a real process, so it can be killed -9
    const dir = tempDir('sharing-victim-');
    const victim = await startServiceBinary(SHARING_MAIN, {
      dataDir: dir.path,
      env: {
        BACKPLANE_NATS_URL: cluster.servers[2]?.url as string,
        BACKPLANE_SHARING_REPLICAS: '1',
        BACKPLANE_NAMESERVER: '',
      },
      ready: /sharing node ready/,
    });
    const conn = new SharingConnection(`boot@${victim.address}`);
    try {
      const all = [victim.address, ...nodes.map((n) => n.address)];
      await until(async () => new Set(await conn.refresh()).size === all.length);
      expect(new Set(conn.knownNodes)).toEqual(new Set(all));
      expect(conn.address).toBe(victim.address);
      const p = new SharedProperties(conn);
      const ev = new SharedEvents(conn);
      await p.put('fo.k', 'before');
      const got: string[] = [];
      await ev.subscribe('fo.t', (_s, _t, v) => got.push(v));
      await victim.proc.kill();
      // the next calls go to another node without the application doing anything
      expect((await p.get('fo.k'))?.text()).toBe('before');
      await p.put('fo.k', 'after');
      expect(conn.address).not.toBe(victim.address);
      // the subscription moved too
      await until(async () => {
        await ev.publish('fo.t', 'ping');
        return got.includes('ping');
      }, 10_000);
    } finally {
      conn.close();
      await victim.proc.kill();
      dir.remove();
    }
  }, 30_000);
});
