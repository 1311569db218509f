import { BackplaneError } from '@backplane/runtime';
import type { AllocationRecord, PoolName } from './records';

export interface PoolConfig {
  dir: string;
  /** Bytes. */
  capacity: number;
}

export interface PoolStatus {
  capacity: number;
  used: number;
  allocations: number;
}

/**
 * Capacity accounting of the two pools (ibp.cfg's STABLESIZE and VOLSIZE). Space is reserved at Allocate
 * for the area's maximum size. A STABLE area that does not fit in the stable pool may borrow volatile
 * space, reclaiming VOLATILE areas oldest first (the seed: volatile storage can be reclaimed).
 */
export class Pools {
  private readonly used: Record<PoolName, number> = { stable: 0, volatile: 0 };
  private readonly counts: Record<PoolName, number> = { stable: 0, volatile: 0 };

  constructor(readonly config: Record<PoolName, PoolConfig>) {}

  add(rec: AllocationRecord): void {
    this.used[rec.pool] += rec.maxSize;
    this.counts[rec.pool] += 1;
  }

  remove(rec: AllocationRecord): void {
    this.used[rec.pool] -= rec.maxSize;
    this.counts[rec.pool] -= 1;
  }

  /** Grows (or shrinks) an area's reservation in place; false when its pool has no room. */
  resize(rec: AllocationRecord, newMax: number): boolean {
    const delta = newMax - rec.maxSize;
    if (delta > 0 && this.free(rec.pool) < delta) return false;
    this.used[rec.pool] += delta;
    return true;
  }

  free(pool: PoolName): number {
    return this.config[pool].capacity - this.used[pool];
  }

  status(pool: PoolName): PoolStatus {
    return { capacity: this.config[pool].capacity, used: this.used[pool], allocations: this.counts[pool] };
  }

  /**
   * Chooses the pool for a new area of `size` bytes. Returns the pool and the VOLATILE areas that must be
   * reclaimed first (oldest first), or throws RESOURCE_EXHAUSTED.
   */
  place(
    size: number,
    reliability: 'STABLE' | 'VOLATILE',
    volatileAreas: () => AllocationRecord[],
  ): { pool: PoolName; reclaim: AllocationRecord[] } {
    if (reliability === 'VOLATILE') {
      if (this.free('volatile') >= size) return { pool: 'volatile', reclaim: [] };
      throw full('volatile', size, this.free('volatile'));
    }
    if (this.free('stable') >= size) return { pool: 'stable', reclaim: [] };
    // borrow volatile space, reclaiming VOLATILE areas oldest first
    let room = this.free('volatile');
    const reclaim: AllocationRecord[] = [];
    if (room < size) {
      const candidates = volatileAreas()
        .filter((a) => a.reliability === 'VOLATILE' && a.pool === 'volatile')
        .sort((a, b) => a.createdAt - b.createdAt);
      for (const a of candidates) {
        if (room >= size) break;
        reclaim.push(a);
        room += a.maxSize;
      }
    }
    if (room >= size) return { pool: 'volatile', reclaim };
    throw full('stable', size, this.free('stable'));
  }
}

function full(pool: PoolName, size: number, free: number): BackplaneError {
  return BackplaneError.of(
    'RESOURCE_EXHAUSTED',
    `the ${pool} pool cannot hold ${size} more bytes (${Math.max(0, free)} free)`,
    { reason: 'IBP_E_WOULD_EXCEED_LIMIT' },
  );
}
