import type { Store } from '../store';

/** A store whose batches wait: a write held in flight, for tests of what readers see meanwhile. */
export interface HeldBatches {
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
  target.batch = async (...args: unknown[]) => {
    await gate;
    return original.apply(store, args);
  };
  return {
    release,
    restore: () => {
      release();
      target.batch = original;
    },
  };
}
