import { join } from 'node:path';
import { BackplaneError, type Store } from '@backplane/runtime';
import { memoryStore, tempDir } from '@backplane/runtime/testing';
import { type Attributes, Depot } from '../src';

export const KB = 1024;

export async function* chunked(data: Buffer | string, size = 64 * KB): AsyncGenerator<Buffer> {
  const buf = Buffer.isBuffer(data) ? data : Buffer.from(data);
  for (let i = 0; i < buf.length; i += size) yield buf.subarray(i, i + size);
}

export async function collect(gen: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const b of gen) parts.push(b);
  return Buffer.concat(parts);
}

export async function failure(p: Promise<unknown>): Promise<BackplaneError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(err instanceof BackplaneError)) throw new Error(`expected a BackplaneError, got ${String(err)}`);
  return err;
}

export const attrs = (
  type: Attributes['type'],
  reliability: Attributes['reliability'] = 'STABLE',
  duration = 0,
): Attributes => ({
  type,
  reliability,
  duration,
});

export interface TestDepot {
  depot: Depot;
  store: Store;
  dir: string;
  clock: { now: number };
  reopen(): Promise<TestDepot>;
  close(): Promise<void>;
}

interface Shared {
  store: Store;
  dir: string;
  remove: () => void;
  clock: { now: number };
}

function fresh(): Shared {
  const tmp = tempDir('ibp-test-');
  return { store: memoryStore(), dir: tmp.path, remove: tmp.remove, clock: { now: Date.now() } };
}

/** A depot over temp-dir pools (sizes in bytes) and an in-memory metadata store, with a settable clock. */
export async function openTestDepot(
  sizes: { stable?: number; volatile?: number; inlineMaxBytes?: number } = {},
  existing?: Shared,
): Promise<TestDepot> {
  const shared = existing ?? fresh();
  const { store, dir, clock } = shared;
  const depot = await Depot.open({
    store,
    pools: {
      stable: { dir: join(dir, 'stable'), capacity: sizes.stable ?? 64 * 1024 * 1024 },
      volatile: { dir: join(dir, 'volatile'), capacity: sizes.volatile ?? 16 * 1024 * 1024 },
    },
    maxDurationSeconds: 3600,
    now: () => clock.now,
    reaperIntervalMs: 3_600_000,
    inlineMaxBytes: sizes.inlineMaxBytes,
  });
  depot.setAddress('127.0.0.1', 6714);
  return {
    depot,
    store,
    dir,
    clock,
    reopen: async () => {
      await depot.close();
      return openTestDepot(sizes, shared);
    },
    close: async () => {
      await depot.close();
      await store.close();
      shared.remove();
    },
  };
}
