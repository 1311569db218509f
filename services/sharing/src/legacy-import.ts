import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { type Logger, openStore, prefixEnd } from '@backplane/runtime';
import type { ReplicatedProperties } from './replicated-properties';

/**
 * The embedded engine of releases before the replicated log kept its values in `<dataDir>/db` (keys
 * `v/<key>` → "revision:expiresAt:base64"). A node that finds such a store and an empty log takes the
 * values over, a transaction per 500 keys (their revisions are new), and keeps the old store, renamed in
 * place by a marker key, so that it is not imported twice.
 */
export async function importLegacyStore(
  dataDir: string,
  properties: ReplicatedProperties,
  log: Logger,
): Promise<void> {
  const dir = join(dataDir, 'db');
  if (properties.position > 0 || !existsSync(dir)) return;
  const store = await openStore(dir);
  try {
    if ((await store.get('imported/by-replicated-log')) !== undefined) return;
    let batch: Array<{ key: string; value: Uint8Array; ttlMs: number }> = [];
    let count = 0;
    const now = Date.now();
    const flush = async () => {
      if (batch.length === 0) return;
      await properties.commit({ reads: [], puts: batch, removes: [] });
      count += batch.length;
      batch = [];
    };
    for await (const [k, v] of store.iterator({ gte: 'v/', lt: prefixEnd('v/') })) {
      const a = v.indexOf(':');
      const b = v.indexOf(':', a + 1);
      const expiresAt = Number(v.slice(a + 1, b));
      if (expiresAt && expiresAt <= now) continue;
      batch.push({
        key: String(k).slice(2),
        value: Buffer.from(v.slice(b + 1), 'base64'),
        ttlMs: expiresAt ? expiresAt - now : 0,
      });
      if (batch.length === 500) await flush();
    }
    await flush();
    await store.put('imported/by-replicated-log', new Date(now).toISOString());
    if (count > 0) log.info({ keys: count, from: dir }, 'took over the values of the earlier embedded store');
  } finally {
    await store.close();
  }
}
