import type { Store } from '../store';

/** A store whose batches wait: a write held in flight, for tests of what readers see meanwhile. */
export interface HeldBatches {
  /** Resolves once a batch is held (a write reached the store and waits), with how many are held then. */
  held(count?: number): Promise<number>;
  /** Lets the held batches (and every later one) through. */
  release(): void;
  /** The store's own batch again (after release). */
  restore(): void;
}

/** Holds every batch written to `store` until release(). */
export function holdBatches(store: Store): HeldBatches {
  const target = store as unknown as { batch: (...args: unknown[]) => Promise<unknown> };
  const original = target.batch;
  let release!: () => void;
  const gate = new Promise<void>((r) => {
    release = r;
  });
  let holding = 0;
  const waiting: Array<{ count: number; resolve: (n: number) => void }> = [];
  let released = false;
  target.batch = async (...args: unknown[]) => {
    if (!released) {
      holding++;
      for (const w of waiting.filter((w) => holding >= w.count)) {
        waiting.splice(waiting.indexOf(w), 1);
        w.resolve(holding);
      }
    }
    await gate;
    return original.apply(store, args);
  };
  void gate.then(() => {
    released = true;
  });
  return {
    held: (count = 1) =>
      holding >= count
        ? Promise.resolve(holding)
        : new Promise((resolve) => waiting.push({ count, resolve })),
    release,
    restore: () => {
      release();
      target.batch = original;
    },
  };
}
