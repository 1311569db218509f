import { prefixEnd, type Store } from '@backplane/runtime';
import type { AddressRecord, BindingRecord, Location, ScopeRecord } from './records';

/** Key layout of the name server's level store. Scope names cannot contain "!", so prefixes never overlap. */
const K = {
  scope: (name: string) => `scope!${name}`,
  address: (id: string) => `addr!${id}`,
  binding: (scope: string, name: string) => `bind!${scope}!${name}`,
  bindingPrefix: (scope: string) => `bind!${scope}!`,
  revision: 'meta!revision',
};

export type StoreOp = { type: 'put'; key: string; value: string } | { type: 'del'; key: string };

interface StoredAddress {
  types: string[];
  location: Location;
  secretHash: string;
  leaseTtlMs: number;
}

export const ops = {
  putScope: (s: ScopeRecord): StoreOp => ({
    type: 'put',
    key: K.scope(s.name),
    value: JSON.stringify({ parent: s.parent, createdAt: s.createdAt }),
  }),
  delScope: (name: string): StoreOp => ({ type: 'del', key: K.scope(name) }),
  putAddress: (a: AddressRecord): StoreOp => ({
    type: 'put',
    key: K.address(a.id),
    value: JSON.stringify({
      types: a.types,
      location: a.location,
      secretHash: a.secretHash,
      leaseTtlMs: a.leaseTtlMs,
    } satisfies StoredAddress),
  }),
  delAddress: (id: string): StoreOp => ({ type: 'del', key: K.address(id) }),
  putBinding: (b: BindingRecord): StoreOp => ({
    type: 'put',
    key: K.binding(b.scope, b.name),
    value: JSON.stringify({ addressId: b.addressId, revision: b.revision }),
  }),
  delBinding: (scope: string, name: string): StoreOp => ({ type: 'del', key: K.binding(scope, name) }),
  putRevision: (rev: number): StoreOp => ({ type: 'put', key: K.revision, value: String(rev) }),
};

export interface LoadedState {
  scopes: ScopeRecord[];
  addresses: AddressRecord[];
  bindings: BindingRecord[];
  revision: number;
}

/** Reads everything back at start-up (the registry serves from memory, level is the durable copy). */
export async function loadState(db: Store): Promise<LoadedState> {
  const state: LoadedState = { scopes: [], addresses: [], bindings: [], revision: 0 };
  for await (const [key, value] of db.iterator()) {
    const k = String(key);
    if (k.startsWith('scope!')) {
      const v = JSON.parse(value) as { parent?: string; createdAt: number };
      state.scopes.push({ name: k.slice(6), parent: v.parent, createdAt: v.createdAt });
    } else if (k.startsWith('addr!')) {
      const v = JSON.parse(value) as StoredAddress;
      state.addresses.push({ id: k.slice(5), ...v, names: [] });
    } else if (k.startsWith('bind!')) {
      const sep = k.indexOf('!', 5);
      const v = JSON.parse(value) as { addressId: string; revision: number };
      state.bindings.push({ scope: k.slice(5, sep), name: k.slice(sep + 1), ...v });
    } else if (k === K.revision) {
      state.revision = Number(value);
    }
  }
  return state;
}

/** Names bound in `scope`, in order, strictly after `after`, starting with `prefix`. */
export async function listNames(
  db: Store,
  scope: string,
  prefix: string,
  after: string,
  limit: number,
): Promise<string[]> {
  const base = K.bindingPrefix(scope);
  const from = base + prefix;
  const range = after && after >= prefix ? { gt: base + after } : { gte: from };
  const names: string[] = [];
  for await (const key of db.keys({ ...range, lt: prefix ? prefixEnd(from) : prefixEnd(base), limit })) {
    names.push(String(key).slice(base.length));
  }
  return names;
}
