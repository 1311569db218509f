import type { LocationInput } from './limits';

export type Location = LocationInput;

export interface ScopeRecord {
  name: string;
  /** Undefined for a root scope. */
  parent?: string;
  createdAt: number;
}

/** An address: one server, reachable at a location, implementing some types, owned by whoever holds its secret. */
export interface AddressRecord {
  id: string;
  types: string[];
  location: Location;
  /** sha256 of the owner secret, hex. The secret itself is never stored. */
  secretHash: string;
  /** 0 = no lease. */
  leaseTtlMs: number;
  /** In memory only; recomputed with a grace period after a restart. */
  leaseExpiresAt?: number;
  /** In memory only: the bindings of this address (an array: most addresses have one name). */
  names: BindingRecord[];
}

export interface BindingRecord {
  scope: string;
  name: string;
  addressId: string;
  /** Revision at which the binding last changed. */
  revision: number;
}

/** A binding joined with its address: what Resolve, List and Watch report. */
export interface BindingView {
  scope: string;
  name: string;
  addressId: string;
  types: string[];
  location: Location;
  leaseExpiresAt?: number;
  revision: number;
}

export type ChangeType = 'BOUND' | 'UNBOUND' | 'MIGRATED' | 'EXPIRED';

export interface Change {
  type: ChangeType;
  binding: BindingView;
  revision: number;
}
