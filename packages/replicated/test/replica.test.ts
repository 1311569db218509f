import { BackplaneError, jetStreamReady } from '@backplane/runtime';
import {
  type NatsCluster,
  type NatsServer,
  startNats,
  startNatsCluster,
  tempDir,
  waitFor,
} from '@backplane/runtime/testing';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import {
  type CommandCodec,
  JetStreamLog,
  LocalLog,
  Replica,
  type ReplicatedLog,
  type StateMachine,
} from '../src';

type Command = { op: 'add'; n: number } | { op: 'fail' } | { op: 'blob'; bytes: string };

/** A counter: the smallest deterministic state machine, with a command that always fails. */
class Counter implements StateMachine<Command, number> {
  total = 0;
  apply(c: Command): number {
    if (c.op === 'fail') throw BackplaneError.badParameter('this command always fails');
    if (c.op === 'add') this.total += c.n;
    return this.total;
  }
  snapshot(): Uint8Array {
    return Buffer.from(String(this.total));
  }
  restore(data: Uint8Array): void {
    this.total = Number(Buffer.from(data).toString());
  }
}

const codec: CommandCodec<Command> = {
  encode: (c) => Buffer.from(JSON.stringify(c)),
  decode: (d) => JSON.parse(Buffer.from(d).toString()) as Command,
};

/** A log kind under test: how to open one more log on the same underlying log, and how to clean up. */
interface Kind {
  open(): Promise<ReplicatedLog>;
  close(): Promise<void>;
}

function localKind(): Kind {
  const dir = tempDir('replicated-local-');
  let log: LocalLog | undefined;
  return {
    // one process owns a local log: "another replica" of it is the same log reopened after a close
    open: async () => {
      await log?.close();
      log = await LocalLog.open(dir.path, { sync: false });
      return log;
    },
    close: async () => {
      await log?.close();
      dir.remove();
    },
  };
}

function jetStreamKind(
  start: () => Promise<{ urls: string; stop(): Promise<void> }>,
  replicas: number,
): Kind {
  let nats: { urls: string; stop(): Promise<void> } | undefined;
  const conns: NatsConnection[] = [];
  const name = `t${Math.random().toString(36).slice(2, 8)}`;
  return {
    open: async () => {
      if (!nats) {
        nats = await start();
        // a cluster that has just formed elects its JetStream leader first
        const probe = await connect({ servers: nats.urls.split(',') });
        await waitFor(() => jetStreamReady(probe).then(() => true), 120_000, 250);
        await probe.close();
      }
      const nc = await connect({ servers: nats.urls.split(',') });
      conns.push(nc);
      return JetStreamLog.open({ nc, name, replicas });
    },
    close: async () => {
      for (const nc of conns) await nc.close();
      await nats?.stop();
    },
  };
}

const single = () => startNats().then((s: NatsServer) => ({ urls: s.url, stop: () => s.stop() }));
const cluster = () => startNatsCluster(3).then((c: NatsCluster) => ({ urls: c.urls, stop: () => c.stop() }));

describe.each([
  ['the local log', () => localKind(), false],
  ['a JetStream stream on one server', () => jetStreamKind(single, 1), true],
  ['a JetStream stream on a 3-node cluster, R3', () => jetStreamKind(cluster, 3), true],
])('a replicated state machine on %s', (_name, makeKind, shared) => {
  let kind: Kind;
  beforeAll(async () => {
    kind = makeKind();
    // the servers start (and a cluster elects its leaders) here, not inside a test's time
    await (await kind.open()).close();
  }, 180_000);
  afterAll(() => kind.close(), 60_000);

  const replica = async (machine = new Counter(), snapshotEvery = 0) =>
    Replica.open({ log: await kind.open(), machine, codec, snapshotEvery, keepBelowSnapshot: 5 });

  it('answers a proposal with the result its replica computed, and applies it once', async () => {
    const m = new Counter();
    const r = await replica(m);
    const before = m.total;
    const { result, position } = await r.propose({ op: 'add', n: 5 });
    expect(result).toBe(before + 5);
    expect(position).toBe(r.position);
    await expect(r.propose({ op: 'fail' })).rejects.toMatchObject({ reason: 'BAD_PARAMETER' });
    expect(m.total).toBe(before + 5);
    await r.close();
  }, 60_000);

  it('fails a proposal in flight when the replica closes, with UNAVAILABLE and nothing left unhandled', async () => {
    const unhandled: unknown[] = [];
    const onUnhandled = (err: unknown) => unhandled.push(err);
    process.on('unhandledRejection', onUnhandled);
    try {
      const r = await replica();
      const inFlight = r.propose({ op: 'add', n: 1 });
      await r.close();
      await expect(inFlight).rejects.toMatchObject({ code: 14 });
      await new Promise((res) => setTimeout(res, 50));
      expect(unhandled).toEqual([]);
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
  }, 60_000);

  it('refuses a proposal larger than the log takes with INVALID_ARGUMENT, before sending it', async () => {
    const r = await replica();
    const big = 'x'.repeat(r.log.maxEntryBytes + 1);
    await expect(r.propose({ op: 'blob', bytes: big })).rejects.toMatchObject({
      code: 3,
      reason: 'PROPOSAL_TOO_LARGE',
    });
    await r.close();
  }, 60_000);

  // (one process owns a local log: there, "both replicas" are the one replica)
  it('gives every replica the same state from concurrent proposals', async () => {
    const a = new Counter();
    const b = shared ? new Counter() : a;
    const ra = await replica(a);
    const rb = shared ? await replica(b) : ra;
    const results = await Promise.all(
      Array.from({ length: 200 }, (_, i) => (i % 2 ? ra : rb).propose({ op: 'add', n: 1 })),
    );
    // each proposal saw a distinct total: one order for all of them
    expect(new Set(results.map((x) => x.result)).size).toBe(200);
    await ra.barrier();
    await rb.barrier();
    expect(a.total).toBe(b.total);
    // a linearizable read at one replica sees a write acknowledged at the other
    const { result } = await ra.propose({ op: 'add', n: 1000 });
    await rb.barrier('linearizable');
    expect(b.total).toBe(result);
    await ra.close();
    if (shared) await rb.close();
  }, 120_000);

  it('applies a request retried with its request id once, at whichever replica the retry reaches', async () => {
    const a = new Counter();
    const b = shared ? new Counter() : a;
    const ra = await replica(a);
    const rb = shared ? await replica(b) : ra;
    const before = (await ra.propose({ op: 'add', n: 0 })).result;
    // the first try and a retry at the same moment, at two replicas; then a retry much later
    const [first, retry] = await Promise.all([
      ra.propose({ op: 'add', n: 7 }, { requestId: 'r-1' }),
      rb.propose({ op: 'add', n: 7 }, { requestId: 'r-1' }),
    ]);
    expect(first).toEqual(retry);
    expect(first.result).toBe(before + 7);
    expect(await rb.propose({ op: 'add', n: 7 }, { requestId: 'r-1' })).toEqual(first);
    await ra.barrier();
    expect(a.total).toBe(before + 7);
    await ra.close();
    if (shared) await rb.close();
  }, 60_000);

  it('snapshots, trims the log, and a new replica starts from the snapshot and the entries after it', async () => {
    const m = new Counter();
    const r = await replica(m, 20);
    for (let i = 0; i < 50; i++) await r.propose({ op: 'add', n: 1 });
    await r.snapshot();
    const snap = await r.log.loadSnapshot();
    expect(snap?.position).toBe(r.position);
    for (let i = 0; i < 5; i++) await r.propose({ op: 'add', n: 1 });
    const total = m.total;
    if (!shared) await r.close();
    const fresh = new Counter();
    const r2 = await replica(fresh);
    expect(fresh.total).toBe(total);
    expect(r2.position).toBe(snap ? snap.position + 5 : -1);
    await r2.close();
    if (shared) await r.close();
  }, 60_000);

  it('takes periodic snapshots no more often than the state is large, and not right after another node', async () => {
    // a state of 40 records: with snapshotEvery 10, a snapshot only after 40 to 50 entries
    class Sized extends Counter {
      snapshots = 0;
      size() {
        return 40;
      }
      override snapshot() {
        this.snapshots++;
        return super.snapshot();
      }
    }
    const mine = new Sized();
    const r = await replica(mine, 10);
    const start = await r.log.snapshotPosition();
    for (let i = 0; i < 35; i++) await r.propose({ op: 'add', n: 1 });
    expect(await r.log.snapshotPosition()).toBe(start);
    for (let i = 0; i < 20; i++) await r.propose({ op: 'add', n: 1 });
    await waitFor(async () => (await r.log.snapshotPosition()) > start, 10_000);
    const first = await r.log.snapshotPosition();
    expect(first - start).toBeGreaterThanOrEqual(40);
    expect(first - start).toBeLessThanOrEqual(51);
    if (shared) {
      // another node's replica, due after 40 to 50 entries, while this one saves a snapshot every 10: it
      // finds a recent snapshot every time it is due and serializes its state not once
      const other = new Sized();
      const ro = await replica(other, 10);
      const taken = other.snapshots;
      for (let i = 0; i < 80; i++) {
        await r.propose({ op: 'add', n: 1 });
        if (i % 10 === 9) await r.snapshot();
      }
      await ro.barrier();
      await new Promise((res) => setTimeout(res, 200));
      expect(other.snapshots).toBe(taken);
      expect(other.total).toBe(mine.total);
      await ro.close();
    }
    await r.close();
  }, 60_000);
});

describe('the local log', () => {
  it('keeps what it acknowledged across a reopen, and appends a retried id once', async () => {
    const dir = tempDir('replicated-reopen-');
    try {
      let log = await LocalLog.open(dir.path);
      const p1 = await log.append('a', Buffer.from('1'));
      expect(await log.append('a', Buffer.from('1'))).toBe(p1);
      await log.append('b', Buffer.from('2'));
      await log.close();
      log = await LocalLog.open(dir.path);
      expect(await log.lastPosition()).toBe(2);
      const seen: string[] = [];
      const f = await log.follow(
        0,
        (e) => seen.push(`${e.position}:${e.id}:${Buffer.from(e.data)}`),
        () => undefined,
        () => undefined,
      );
      expect(seen).toEqual(['1:a:1', '2:b:2']);
      f.stop();
      await log.close();
    } finally {
      dir.remove();
    }
  });
});

describe('a JetStream log', () => {
  it("acknowledges a retried append with the first one's position", async () => {
    const nats = await startNats();
    const nc = await connect({ servers: nats.url });
    try {
      const log = await JetStreamLog.open({ nc, name: 'dedup' });
      const p = await log.append('same-id', Buffer.from('x'));
      expect(await log.append('same-id', Buffer.from('x'))).toBe(p);
      expect(await log.lastPosition()).toBe(p);
    } finally {
      await nc.close();
      await nats.stop();
    }
  });
});

describe('read barriers on a JetStream log', () => {
  it('appends one entry per barrier (one for the reads of a moment), changes no state, and counts towards the snapshot that trims them', async () => {
    const nats = await startNats();
    const nc = await connect({ servers: nats.url });
    try {
      const log = await JetStreamLog.open({ nc, name: 'barriers' });
      const machine = new Counter();
      const replica = await Replica.open({ log, machine, codec, snapshotEvery: 5, keepBelowSnapshot: 2 });
      await replica.propose({ op: 'add', n: 7 });
      const before = replica.position;
      for (let i = 0; i < 12; i++) await replica.barrier('linearizable');
      // each barrier is an entry of its own (the reads were one after another), skipped by apply
      expect(replica.position).toBe(before + 12);
      expect(machine.total).toBe(7);
      // the reads of one moment share one barrier
      const shared = replica.position;
      await Promise.all(Array.from({ length: 50 }, () => replica.barrier('linearizable')));
      expect(replica.position).toBe(shared + 1);
      // and a reads-only workload still snapshots and trims the log
      await waitFor(async () => (await log.snapshotPosition()) >= 5, 10_000);
      // and the stream was trimmed below it: the barrier entries do not stay
      const jsm = await jetstreamManager(nc);
      await waitFor(async () => (await jsm.streams.info('BP_barriers')).state.first_seq > 1, 10_000);
      const otherMachine = new Counter();
      const other = await Replica.open({
        log: await JetStreamLog.open({ nc, name: 'barriers' }),
        machine: otherMachine,
        codec,
      });
      expect(other.position).toBe(replica.position);
      expect(otherMachine.total).toBe(7);
      await other.close();
      await replica.close();
    } finally {
      await nc.close();
      await nats.stop();
    }
  });
});

describe('a JetStream log on a 3-node cluster when one server freezes', () => {
  it("keeps applying at a node whose follower consumer is on the frozen server (reads by sequence from the stream's leader)", async () => {
    const nats = await startNatsCluster(3);
    // one connection per server, each kept on its server (a partition cuts servers, not connections)
    const conns = await Promise.all(
      nats.servers.map((s) => connect({ servers: s.url, ignoreClusterUpdates: true, noRandomize: true })),
    );
    const replicas: Array<Replica<Command, number>> = [];
    const frozen: NatsServer[] = [];
    try {
      await waitFor(() => jetStreamReady(conns[0] as NatsConnection).then(() => true), 120_000, 250);
      const name = `freeze${Math.random().toString(36).slice(2, 8)}`;
      const jsm = await jetstreamManager(conns[0] as NatsConnection);
      // a replica whose ephemeral consumer JetStream placed on another server than the one it talks to
      let mine: { replica: Replica<Command, number>; server: number; consumerServer: number } | undefined;
      for (let i = 0; i < 12 && !mine; i += 1) {
        const server = i % 3;
        const before = new Set<string>();
        if (i > 0) for await (const c of jsm.consumers.list(`BP_${name}`)) before.add(c.name);
        const log = await JetStreamLog.open({ nc: conns[server] as NatsConnection, name, replicas: 3 });
        const replica = await Replica.open({ log, machine: new Counter(), codec });
        replicas.push(replica);
        for await (const c of jsm.consumers.list(`BP_${name}`)) {
          if (before.has(c.name)) continue;
          const consumerServer = Number(c.cluster?.leader?.slice(1));
          if (consumerServer !== server) mine = { replica, server, consumerServer };
        }
      }
      if (!mine) throw new Error('JetStream placed every consumer on its own server: nothing to freeze');
      await mine.replica.propose({ op: 'add', n: 1 });
      const leader = (await jsm.streams.info(`BP_${name}`)).cluster?.leader ?? '';
      // the consumer's server stops answering (SIGSTOP): its connections stall, as in a partition
      const victim = nats.servers[mine.consumerServer] as NatsServer;
      victim.process.child.kill('SIGSTOP');
      frozen.push(victim);
      const started = Date.now();
      // when the frozen server led the stream, the other two elect a leader first (NATS's Raft election
      // timeout is 4 to 9 s); otherwise appends go on at once. The ordered consumer, left alone, is
      // rebuilt only after its heartbeats are missed and the meta leader answers (over 30 s in a run
      // before the fix)
      const ledByVictim = leader === `n${mine.consumerServer}`;
      const firstWithinMs = ledByVictim ? 12_000 : 3_000;
      let total = 0;
      const first = AbortSignal.timeout(firstWithinMs);
      for (;;) {
        try {
          total = (await mine.replica.propose({ op: 'add', n: 1 }, { signal: first })).result;
          break;
        } catch (err) {
          if (first.aborted) throw err;
          await new Promise((r) => setTimeout(r, 100));
        }
      }
      const firstMs = Date.now() - started;
      // then each proposal is applied within 2 s, through reads by sequence from the leader
      for (let n = 0; n < 4; n += 1)
        total = (await mine.replica.propose({ op: 'add', n: 1 }, { signal: AbortSignal.timeout(2000) }))
          .result;
      expect(total).toBe(6);
      await mine.replica.barrier('linearizable', AbortSignal.timeout(2000));
      expect(firstMs).toBeLessThan(firstWithinMs);
    } finally {
      for (const s of frozen) s.process.child.kill('SIGCONT');
      for (const r of replicas) await r.close();
      for (const nc of conns) await nc.close();
      await nats.stop();
    }
  }, 120_000);
});
