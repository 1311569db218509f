import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, startNatsCluster } from '@backplane/runtime/testing';
import { SharedProperties, SharingConnection, TransactionConflict } from '@backplane/sharing-client';
import { Kvm } from '@nats-io/kv';
import { connect } from '@nats-io/transport-node';
import { Etcd3 } from 'etcd3';
import { startEtcd } from './etcd';
import { fmt, type Measurement, measure, median, writeResults } from './harness';
import { startChild, stopChild, waitServing } from './processes';

const DURATION = Number(process.env.BENCH_DURATION_MS ?? 3000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const KEYS = 1000;
/** Set: only the comparisons whose name matches this regular expression (e.g. 'embedded'). */
const ONLY = process.env.BENCH_ONLY ? new RegExp(process.env.BENCH_ONLY) : undefined;
const value = Buffer.alloc(100, 7);
const serverMain = require.resolve('@backplane/sharing/dist/main.js');

async function sharingNode(env: Record<string, string>) {
  const port = await freePort();
  const child = startChild(serverMain, { BACKPLANE_PORT: String(port), BACKPLANE_NAMESERVER: '', ...env });
  child.stdout?.resume();
  const address = `127.0.0.1:${port}`;
  await waitServing(address, 90_000);
  return { child, address };
}

/** A Backplane target: its operations, spread over the nodes given. */
function sharingOps(addresses: string[]) {
  const props = addresses.map((a) => new SharedProperties(new SharingConnection(a)));
  const at = (i: number) => props[i % props.length] as SharedProperties;
  return {
    put: (i: number) => at(i).put(`bench.k${i % KEYS}`, value),
    get: (i: number) => at(i).get(`bench.k${i % KEYS}`),
    getSerializable: (i: number) => at(i).get(`bench.k${i % KEYS}`, { consistency: 'serializable' }),
    /** Two reads, two writes, committed if both reads still hold (a conflict is a completed attempt). */
    commit: async (i: number) => {
      const t = at(i).transaction();
      const a = `bench.k${i % KEYS}`;
      const b = `bench.k${(i * 7 + 1) % KEYS}`;
      // both reads at once, as the etcd side does
      await Promise.all([t.get(a), t.get(b)]);
      t.put(a, value).put(b, value);
      await t.commit().catch((err: unknown) => {
        // (its name is BackplaneError's: a conflict counted as a failure before)
        if (!(err instanceof TransactionConflict)) throw err;
      });
    },
    close: () => {
      for (const p of props) p.connection.close();
    },
  };
}

/**
 * The same operations on etcd (its client; linearizable reads, its default, and a Txn comparing mod
 * revisions; or serializable reads, as sharing's transactions read).
 */
function etcdOps(client: Etcd3) {
  return {
    put: (i: number) =>
      client
        .put(`bench.k${i % KEYS}`)
        .value(value)
        .exec(),
    get: (i: number) => client.get(`bench.k${i % KEYS}`).buffer(),
    commit: (i: number) => etcdCommit(client, i, false),
    /** As sharing's transactions read: serializable (member-local) reads, checked by the Txn. */
    commitSerializableReads: (i: number) => etcdCommit(client, i, true),
  };
}

/** Two reads, then a Txn that writes both keys if their mod revisions are still the ones read. */
async function etcdCommit(client: Etcd3, i: number, serializable: boolean) {
  const a = `bench.k${i % KEYS}`;
  const b = `bench.k${(i * 7 + 1) % KEYS}`;
  const [ra, rb] = await Promise.all([
    client.get(a).serializable(serializable).exec(),
    client.get(b).serializable(serializable).exec(),
  ]);
  const rev = (r: typeof ra) => r.kvs[0]?.mod_revision ?? '0';
  await client
    .if(a, 'Mod', '==', rev(ra))
    .and(b, 'Mod', '==', rev(rb))
    .then(client.put(a).value(value), client.put(b).value(value))
    .commit();
}

interface Pair {
  name: string;
  ours: (i: number) => Promise<unknown>;
  theirs: (i: number) => Promise<unknown>;
  concurrency: number;
  target: number;
}

/** Interleaved rounds (A, B, B, A, …: the order rotates); the ratio's median and range over the rounds. */
async function compare(p: Pair) {
  if (ONLY && !ONLY.test(p.name)) return undefined;
  const ratios: number[] = [];
  const rounds: Array<{ ours: Measurement; theirs: Measurement }> = [];
  for (let r = 0; r < ROUNDS; r++) {
    const opts = { concurrency: p.concurrency, durationMs: DURATION, warmupMs: 500 };
    const first = r % 2 === 0;
    const a = await measure(first ? 'ours' : 'theirs', first ? p.ours : p.theirs, opts);
    const b = await measure(first ? 'theirs' : 'ours', first ? p.theirs : p.ours, opts);
    const ours = first ? a : b;
    const theirs = first ? b : a;
    rounds.push({ ours, theirs });
    ratios.push(ours.opsPerSec / theirs.opsPerSec);
  }
  const result = {
    name: p.name,
    concurrency: p.concurrency,
    median: median(ratios),
    min: Math.min(...ratios),
    max: Math.max(...ratios),
    target: p.target,
    ours: median(rounds.map((x) => x.ours.opsPerSec)),
    theirs: median(rounds.map((x) => x.theirs.opsPerSec)),
    errors: rounds.reduce((n, x) => n + x.ours.errors + x.theirs.errors, 0),
  };
  console.log(
    `${p.name.padEnd(58)} ${String(p.concurrency).padStart(3)}  ${fmt(result.ours).padStart(7)} vs ${fmt(result.theirs).padStart(7)} ops/s  ${fmt(result.median, 2)}× (${fmt(result.min, 2)}–${fmt(result.max, 2)}), target ≥ ${result.target}× ${result.median >= result.target ? 'OK' : 'BELOW TARGET'}${result.errors ? `  errors ${result.errors}` : ''}`,
  );
  return result;
}

/**
 * Issue 24's comparison: three sharing nodes on a 3-node NATS cluster (the log on three replicas) against
 * a 3-member etcd cluster, the embedded engine against a single etcd, and serializable gets against the
 * raw NATS KV client on the same cluster. Every figure a ratio from interleaved rounds in the same run.
 */
export async function benchReplicated(): Promise<void> {
  console.log(
    `\n== sharing, replicated, vs etcd (${KEYS} keys of ${value.length} bytes, ${ROUNDS} rounds of ${DURATION} ms)`,
  );
  const dir = mkdtempSync(join(tmpdir(), 'bench-replicated-'));
  const cluster = await startNatsCluster(3);
  const etcd3 = await startEtcd(3);
  const etcd1 = await startEtcd(1);
  const nodes = await Promise.all(
    [0, 1, 2].map((i) =>
      sharingNode({
        BACKPLANE_NATS_URL: [i, ...[0, 1, 2].filter((j) => j !== i)]
          .map((j) => cluster.servers[j]?.url)
          .join(','),
        BACKPLANE_SHARING_REPLICAS: '3',
        BACKPLANE_DATA_DIR: join(dir, `n${i}`),
      }),
    ),
  );
  const embedded = await sharingNode({ BACKPLANE_DATA_DIR: join(dir, 'embedded') });
  // the durability of the embedded engine before the replicated log (level without fsync: kill -9 safe)
  const embeddedNoSync = await sharingNode({
    BACKPLANE_DATA_DIR: join(dir, 'embedded-nosync'),
    BACKPLANE_SHARING_FSYNC: 'false',
  });
  const nc = await connect({ servers: cluster.urls.split(',') });
  const e3 = new Etcd3({ hosts: etcd3.endpoints });
  const e1 = new Etcd3({ hosts: etcd1.endpoints });
  const ours3 = sharingOps(nodes.map((n) => n.address));
  const ours1 = sharingOps([embedded.address]);
  const ours1NoSync = sharingOps([embeddedNoSync.address]);
  const theirs3 = etcdOps(e3);
  const theirs1 = etcdOps(e1);
  try {
    const kv = await new Kvm(nc).create('bench-raw', { replicas: 3 });
    for (let k = 0; k < KEYS; k++) {
      await Promise.all([
        ours3.put(k),
        ours1.put(k),
        ours1NoSync.put(k),
        theirs3.put(k),
        theirs1.put(k),
        kv.put(`bench.k${k}`, value),
      ]);
    }
    const results = [];
    for (const c of [16, 64]) {
      results.push(
        await compare({
          name: '3-node R3 sharing put vs 3-member etcd put',
          ours: ours3.put,
          theirs: theirs3.put,
          concurrency: c,
          target: 1.5,
        }),
      );
      results.push(
        await compare({
          name: '3-node R3 sharing 2r/2w Commit vs 3-member etcd Txn',
          ours: ours3.commit,
          theirs: theirs3.commit,
          concurrency: c,
          target: 1.5,
        }),
      );
      results.push(
        await compare({
          // like for like: a transaction's reads are serializable in sharing (the commit checks them)
          name: '3-node R3 sharing 2r/2w Commit vs etcd Txn, serializable reads',
          ours: ours3.commit,
          theirs: theirs3.commitSerializableReads,
          concurrency: c,
          target: 1.5,
        }),
      );
      results.push(
        await compare({
          name: '3-node R3 sharing linearizable get vs 3-member etcd get',
          ours: ours3.get,
          theirs: theirs3.get,
          concurrency: c,
          target: 1.0,
        }),
      );
    }
    results.push(
      await compare({
        name: 'sharing serializable get vs raw NATS KV get (same cluster)',
        ours: ours3.getSerializable,
        theirs: (i) => kv.get(`bench.k${i % KEYS}`),
        concurrency: 64,
        target: 2.0,
      }),
    );
    // the embedded engine against one etcd (before the replicated engine: get 5.96×, put 3.20×, Commit 1.48×)
    results.push(
      await compare({
        name: 'embedded get vs single etcd get',
        ours: ours1.get,
        theirs: theirs1.get,
        concurrency: 64,
        target: 5.96,
      }),
    );
    results.push(
      await compare({
        name: 'embedded put vs single etcd put',
        ours: ours1.put,
        theirs: theirs1.put,
        concurrency: 64,
        target: 3.2,
      }),
    );
    results.push(
      await compare({
        name: 'embedded 2r/2w Commit vs single etcd Txn',
        ours: ours1.commit,
        theirs: theirs1.commit,
        concurrency: 16,
        target: 1.48,
      }),
    );
    for (const [name, op, concurrency, target] of [
      ['embedded put, no fsync (as before) vs single etcd put', ours1NoSync.put, 64, 3.2],
      ['embedded 2r/2w Commit, no fsync (as before) vs etcd Txn', ours1NoSync.commit, 16, 1.48],
    ] as const)
      results.push(
        await compare({
          name,
          ours: op,
          theirs: name.includes('Commit') ? theirs1.commit : theirs1.put,
          concurrency,
          target,
        }),
      );
    console.log(
      `results: ${writeResults('replicated.json', { rounds: ROUNDS, durationMs: DURATION, results: results.filter(Boolean) })}`,
    );
  } finally {
    ours3.close();
    ours1.close();
    ours1NoSync.close();
    e3.close();
    e1.close();
    await nc.close();
    for (const n of [...nodes, embedded, embeddedNoSync]) await stopChild(n.child);
    await etcd3.stop();
    await etcd1.stop();
    await cluster.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
