import { setTimeout as sleep } from 'node:timers/promises';
import { PartitionCluster } from './cluster';
import { type CallTally, type Phase, RoundTraffic } from './traffic';

export interface PartitionOptions {
  /** Traffic before the partition, for a baseline. */
  beforeMs: number;
  /** How long the partition lasts. */
  partitionMs: number;
  /** Give up waiting for recovery after this long. */
  healTimeoutMs: number;
  /** Replicas of the properties' log (default 1; `pnpm partition --r3`: 3). */
  replicas?: number;
}

export const SHORT: PartitionOptions = { beforeMs: 1500, partitionMs: 8000, healTimeoutMs: 60_000 };
/**
 * CI's run: the log on three replicas, as a cluster deployment has it. A cut of the stream's leader leaves
 * the majority without a leader until NATS's Raft elects one (its election timeout is 4 to 9 s), so each
 * cut lasts 15 s: long enough for the majority to write for several seconds after the election.
 */
export const SHORT_R3: PartitionOptions = { ...SHORT, partitionMs: 15_000, replicas: 3 };
export const LONG: PartitionOptions = { beforeMs: 3000, partitionMs: 60_000, healTimeoutMs: 120_000 };

// the properties' log: a JetStream stream named after the bucket setting (BP_<bucket>)
const PROPERTIES_STREAM = 'BP_backplane-sharing';

export interface RoundReport {
  name: string;
  /** The node cut off from the other two (its nats-server and its sharing node). */
  isolated: number;
  /** The node whose nats-server holds the properties stream (R1), or led it when the round began (R3). */
  streamHost: number;
  metaLeaderBefore: string;
  /** Each side's view of the JetStream meta leader during the partition ('' = none). */
  metaLeaderDuring: string[];
  ringDuring: number[];
  puts: Array<Record<Phase, CallTally>>;
  cas: Array<Record<Phase, CallTally>>;
  lists: Array<Record<Phase, CallTally>>;
  casSuccesses: number;
  /** Counter values written twice: two compare-and-sets that both won from the same revision. */
  casDuplicates: number[];
  /** The counter as each node reads it after the heal. */
  counterAfter: number[];
  published: Array<Record<Phase, number>>;
  delivered: Array<Array<Record<Phase, number>>>;
  /** late[publisher][subscriber]: events published during the partition delivered only after the heal. */
  late: number[][];
  /** ms from the heal until every node takes writes and every node's events reach every subscriber. */
  recoveryMs: number;
  /** What had not recovered when the wait ended ('' = everything did). */
  unrecovered: string;
  acknowledged: number;
  /** Acknowledged puts missing or different after the heal, read through every node. */
  missing: string[];
}

export interface PartitionReport {
  rounds: RoundReport[];
  /** Processes that exited on their own. */
  exits: string[];
  output: string;
}

/**
 * The partition test of the sharing ring: three namespaces, each with a nats-server of one cluster and a
 * sharing node on it. Each round runs writers, compare-and-set incrementers and publishers through every
 * node, cuts one node off from the other two, heals, and then reads everything back through every node.
 * Round 1 isolates a node without the properties stream, round 2 the node that holds it; with the log on
 * three replicas (`--r3`), a node that does not lead the stream, then its leader.
 */
export async function runPartition(
  options: PartitionOptions,
  log: (line: string) => void = () => undefined,
): Promise<PartitionReport> {
  const replicas = options.replicas ?? 1;
  const cluster = await PartitionCluster.start(3, replicas);
  const rounds: RoundReport[] = [];
  try {
    if (replicas === 1) {
      const host = await cluster.hostOf(PROPERTIES_STREAM);
      log(`partition: properties stream on node ${host}`);
      rounds.push(
        await round(cluster, 'minority without the properties stream', (host + 1) % 3, host, options, log),
      );
      rounds.push(await round(cluster, 'minority holding the properties stream', host, host, options, log));
    } else {
      const leader = await cluster.leaderOf(PROPERTIES_STREAM);
      log(`partition: properties stream led by node ${leader}`);
      rounds.push(
        await round(
          cluster,
          'minority not leading the properties stream',
          (leader + 1) % 3,
          leader,
          options,
          log,
        ),
      );
      // the leader may have moved during the first round
      const now = await cluster.leaderOf(PROPERTIES_STREAM);
      rounds.push(await round(cluster, 'minority leading the properties stream', now, now, options, log));
    }
  } finally {
    await cluster.stop();
  }
  return { rounds, exits: cluster.exits, output: cluster.exits.length ? cluster.output() : '' };
}

async function round(
  cluster: PartitionCluster,
  name: string,
  isolated: number,
  streamHost: number,
  options: PartitionOptions,
  log: (line: string) => void,
): Promise<RoundReport> {
  const nodes = [0, 1, 2];
  const traffic = new RoundTraffic(
    nodes.map((i) => cluster.sharingAddress(i)),
    `r${isolated}-${Date.now().toString(36)}`,
  );
  try {
    const metaLeaderBefore = (await cluster.jetstream(0)).metaLeader;
    await traffic.start();
    await sleep(options.beforeMs);

    log(`partition: ${name}: cutting node ${isolated} off`);
    cluster.net.partition([isolated]);
    traffic.phase = 'during';
    await sleep(options.partitionMs / 2);
    const metaLeaderDuring = await Promise.all(
      nodes.map((i) =>
        cluster.jetstream(i).then(
          (v) => v.metaLeader,
          () => '?',
        ),
      ),
    );
    const ringDuring = await traffic.ringSizes();
    await sleep(options.partitionMs / 2);

    cluster.net.heal();
    traffic.phase = 'after';
    const healed = Date.now();
    const { ms: recoveryMs, waiting } = await recovered(traffic, options.healTimeoutMs, log);
    log(
      `partition: ${name}: healed, ${recoveryMs < 0 ? `not recovered: ${waiting}` : `recovered in ${recoveryMs} ms`}`,
    );
    await sleep(500);
    await traffic.stop();
    const { missing, counter } = await traffic.verify();
    const seen = new Set<number>();
    const casDuplicates = traffic.casWritten.filter((v) => seen.has(v) || !seen.add(v));
    return {
      name,
      isolated,
      streamHost,
      metaLeaderBefore,
      metaLeaderDuring,
      ringDuring,
      puts: traffic.puts,
      cas: traffic.cas,
      lists: traffic.lists,
      casSuccesses: traffic.casWritten.length,
      casDuplicates,
      counterAfter: counter,
      published: traffic.published,
      delivered: traffic.delivered,
      late: traffic.late,
      recoveryMs: recoveryMs < 0 ? Date.now() - healed : recoveryMs,
      unrecovered: waiting,
      acknowledged: traffic.acked.size,
      missing,
    };
  } finally {
    await traffic.stop();
    traffic.close();
  }
}

/**
 * ms until every node takes a write and answers a List and, from every publisher, an event published
 * after the heal has reached every subscriber; -1 if that does not happen within `timeoutMs`. `waiting`
 * says what was still missing at the end.
 */
async function recovered(
  traffic: RoundTraffic,
  timeoutMs: number,
  log: (line: string) => void,
): Promise<{ ms: number; waiting: string }> {
  const started = Date.now();
  const n = 3;
  const mark = Array.from({ length: n }, (_, pub) => traffic.sequenceNow(pub));
  let failing = [0, 1, 2].flatMap((i) => [`put ${i}`, `List ${i}`]);
  let waiting = '';
  let lastLog = started;
  while (Date.now() - started < timeoutMs) {
    if (failing.length) failing = await traffic.failingProbes(failing);
    const events: string[] = [];
    for (let pub = 0; pub < n; pub++)
      for (let sub = 0; sub < n; sub++)
        if (traffic.newestSeen(sub, pub) < (mark[pub] as number)) events.push(`${pub}→${sub}`);
    waiting = [failing.length ? failing.join(', ') : '', events.length ? `events ${events.join(' ')}` : '']
      .filter(Boolean)
      .join('; ');
    if (!waiting) return { ms: Date.now() - started, waiting };
    if (Date.now() - lastLog > 5000) {
      lastLog = Date.now();
      log(`partition: ${Math.round((lastLog - started) / 1000)} s after the heal, waiting for ${waiting}`);
    }
    await sleep(100);
  }
  return { ms: -1, waiting };
}
