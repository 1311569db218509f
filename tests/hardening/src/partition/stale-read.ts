import { SharedProperties, SharingConnection } from '@backplane/sharing-client';
import { PartitionCluster } from './cluster';

// the properties' log: a JetStream stream named after the bucket setting (BP_<bucket>)
const PROPERTIES_STREAM = 'BP_backplane-sharing';

export interface StaleReadReport {
  /** ms from the cut until the majority acknowledged the new value. */
  majorityWroteAfterMs: number;
  /** What each linearizable read through the cut-off node (the stream's old leader) answered. */
  cutOffReads: string[];
}

/**
 * The stale-read check of a cut-off leader: the log on three replicas, the node whose nats-server leads the
 * stream is cut off, the majority elects a leader and overwrites a key, then the cut-off node is asked for
 * the key linearizably five times. Its nats-server still believes it leads for a while; a read barrier
 * that asks that server for the stream's last position gets its stale answer, and the read returns the
 * overwritten value. Every answer must be the new value or a failure.
 */
export async function runStaleRead(): Promise<StaleReadReport> {
  const cluster = await PartitionCluster.start(3, 3);
  const conns = [0, 1, 2].map((i) => new SharingConnection(cluster.sharingAddress(i)));
  try {
    const props = conns.map((c) => new SharedProperties(c));
    await props[0]?.put('stale.x', 'old', { timeoutMs: 10_000 });
    for (const p of props) await p.get('stale.x', { timeoutMs: 5000 });
    const leader = await cluster.leaderOf(PROPERTIES_STREAM);
    const majority = props[(leader + 1) % 3] as SharedProperties;
    const cutOff = props[leader] as SharedProperties;
    cluster.net.partition([leader]);
    const cut = Date.now();
    let majorityWroteAfterMs = -1;
    while (majorityWroteAfterMs < 0 && Date.now() - cut < 60_000) {
      try {
        await majority.put('stale.x', 'new', { timeoutMs: 1000 });
        majorityWroteAfterMs = Date.now() - cut;
      } catch {
        // no leader on the majority's side yet
      }
    }
    const cutOffReads: string[] = [];
    for (let i = 0; i < 5; i++) {
      try {
        cutOffReads.push((await cutOff.get('stale.x', { timeoutMs: 1000 }))?.text() ?? '(none)');
      } catch (err) {
        cutOffReads.push(`failed: ${(err as { reason?: string }).reason ?? (err as Error).message}`);
      }
    }
    cluster.net.heal();
    return { majorityWroteAfterMs, cutOffReads };
  } finally {
    for (const c of conns) c.close();
    await cluster.stop();
  }
}
