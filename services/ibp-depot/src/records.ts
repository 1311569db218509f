import type { CapKind } from './capability';

export type AllocationType = 'BYTE_ARRAY' | 'BUFFER' | 'FIFO' | 'CIRCULAR_QUEUE';
export type Reliability = 'STABLE' | 'VOLATILE';
export type PoolName = 'stable' | 'volatile';

/** An attenuated read capability: a byte range and an expiry narrower than the area's. */
export interface DerivedCap {
  /** sha256 of its key. */
  hash: string;
  offset: number;
  /** -1 = to the end of the data. */
  length: number;
  /** ms since the epoch; 0 = the area's own expiry. */
  expiresAt: number;
}

/** Metadata of one storage area, as kept in level. The bytes live in a file of its pool (or inline, in level). */
export interface AllocationRecord {
  id: string;
  type: AllocationType;
  reliability: Reliability;
  /** The pool whose capacity it uses (a stable area may borrow volatile space). */
  pool: PoolName;
  maxSize: number;
  /** Absolute expiry in ms since the epoch; 0 = permanent. */
  expiresAt: number;
  createdAt: number;
  readRefs: number;
  writeRefs: number;
  /** sha256 (base64url) of each capability key. */
  keyHashes: Record<CapKind, string>;
  /** Bytes held: BYTE_ARRAY/BUFFER the data length; FIFO/CIRCULAR_QUEUE the queued length. */
  size: number;
  /** FIFO/CIRCULAR_QUEUE: position of the oldest byte in the ring (the file holds maxSize bytes). */
  head: number;
  /** Attenuated read capabilities derived from the read capability. */
  derived?: DerivedCap[];
  /** BUFFER: the data file's generation (a store writes generation + 1, then switches). */
  generation: number;
  /** BYTE_ARRAY of at most INLINE_MAX bytes: its data is in level beside this record, not in a file. */
  inline?: true;
  /** Bumped on every metadata change. */
  version: number;
}

export function isQueue(type: AllocationType): boolean {
  return type === 'FIFO' || type === 'CIRCULAR_QUEUE';
}
