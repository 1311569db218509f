import { createHash, randomBytes } from 'node:crypto';
import {
  BackplaneError,
  ExpiryHeap,
  type Logger,
  type Store,
  secretsEqual,
  silentLogger,
} from '@backplane/runtime';
import {
  DEFAULT_SCOPE,
  LIMITS,
  type LocationInput,
  requireSecret,
  validateLeaseTtl,
  validateLocation,
  validateName,
  validatePageSize,
  validateScope,
  validateType,
  validateTypes,
} from './limits';
import type { AddressRecord, BindingRecord, BindingView, Change, ScopeRecord } from './records';
import { listNames, loadState, ops, type StoreOp } from './store';

/** Where a miss goes when this name server has a parent name server. */
export interface ParentResolver {
  /** `call`: the caller's deadline (ms since the epoch) and cancellation, which the delegation keeps to. */
  resolve(
    name: string,
    expectedType: string,
    call?: { deadline?: number; signal?: AbortSignal },
  ): Promise<Resolution>;
}

export interface Resolution {
  binding: BindingView;
  /** The name server that answered. */
  nameServer: string;
}

export interface RegistryOptions {
  store: Store;
  /** After a restart, leases get at least this long for their servers to renew. */
  leaseGraceMs?: number;
  parent?: ParentResolver;
  /** This name server's address, reported in resolutions. */
  self?: string | (() => string);
  log?: Logger;
  now?: () => number;
  /** How often leases are checked for expiry. */
  expiryIntervalMs?: number;
}

export type BindInput =
  | { scope: string; name: string; types: string[]; location: LocationInput | undefined; leaseTtlMs: number }
  | { scope: string; name: string; addressId: string; ownerSecret: string };

export interface BindResult {
  binding: BindingView;
  addressId: string;
  /** Only when the bind created the address. */
  ownerSecret?: string;
}

export interface WatchFilter {
  scope: string;
  name: string;
  prefix: boolean;
  includeInherited: boolean;
}

export interface WatchSubscription {
  /** Matching bindings as of `revision`. */
  snapshot: BindingView[];
  revision: number;
  unsubscribe(): void;
}

interface Applied<T> {
  result: T;
  ops: StoreOp[];
  changes: Change[];
}

interface Pending {
  apply: () => Applied<unknown>;
  resolve: (value: unknown) => void;
  reject: (err: unknown) => void;
}

const EMPTY_METADATA: Record<string, string> = Object.freeze({}) as Record<string, string>;

const hashSecret = (secret: string) => createHash('sha256').update(secret).digest('hex');

/**
 * The MOOSE name server's state: scopes, addresses and bindings, served from memory and made durable in
 * level. Mutations are applied in order and committed in groups (one level batch per group); a mutation
 * is acknowledged only after its batch is written. Changes reach watchers after they are durable.
 */
export class Registry {
  private readonly scopes = new Map<string, ScopeRecord>();
  private readonly children = new Map<string, Set<string>>();
  private readonly addresses = new Map<string, AddressRecord>();
  private readonly bindings = new Map<string, Map<string, BindingRecord>>();
  private readonly leases = new ExpiryHeap();
  private readonly listeners = new Set<(change: Change) => void>();
  private readonly internPool = new Map<string, unknown>();
  private readonly afterCommit: Array<() => void> = [];
  private queue: Pending[] = [];
  private flushing: Promise<void> | undefined;
  private revision = 0;
  private expiryTimer: NodeJS.Timeout | undefined;
  private closed = false;
  private readonly now: () => number;
  private readonly log: Logger;

  private constructor(private readonly options: RegistryOptions) {
    this.now = options.now ?? Date.now;
    this.log = options.log ?? silentLogger();
  }

  static async open(options: RegistryOptions): Promise<Registry> {
    const registry = new Registry(options);
    await registry.load();
    if (!registry.scopes.has(DEFAULT_SCOPE)) await registry.createScope(DEFAULT_SCOPE, '');
    registry.expiryTimer = setInterval(() => registry.expireLeases(), options.expiryIntervalMs ?? 100);
    registry.expiryTimer.unref();
    return registry;
  }

  /** Stops lease expiry and waits for pending writes. The store is the caller's to close. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.expiryTimer) clearInterval(this.expiryTimer);
    while (this.flushing) await this.flushing;
  }

  stats(): { scopes: number; addresses: number; bindings: number; revision: number } {
    let bindings = 0;
    for (const m of this.bindings.values()) bindings += m.size;
    return { scopes: this.scopes.size, addresses: this.addresses.size, bindings, revision: this.revision };
  }

  // ---- loading ----------------------------------------------------------------------------------

  private async load(): Promise<void> {
    const state = await loadState(this.options.store);
    this.scopes.clear();
    this.children.clear();
    this.addresses.clear();
    this.bindings.clear();
    this.revision = state.revision;
    for (const s of state.scopes) this.addScope(s);
    const graceUntil = this.now() + (this.options.leaseGraceMs ?? 15_000);
    for (const a of state.addresses) {
      if (a.leaseTtlMs > 0) {
        a.leaseExpiresAt = Math.max(graceUntil, this.now() + a.leaseTtlMs);
        this.leases.push(a.leaseExpiresAt, a.id);
      }
      this.addresses.set(a.id, a);
    }
    for (const b of state.bindings) {
      const address = this.addresses.get(b.addressId);
      if (!address || !this.scopes.has(b.scope)) continue;
      const record = { ...b, scope: (this.scopes.get(b.scope) as ScopeRecord).name };
      this.scopeBindings(b.scope).set(b.name, record);
      address.names = address.names.length === 0 ? [record] : address.names.concat(record);
      this.internAddress(address);
    }
  }

  private addScope(s: ScopeRecord): void {
    this.scopes.set(s.name, s);
    if (s.parent) {
      const set = this.children.get(s.parent) ?? new Set<string>();
      this.children.set(s.parent, set);
      set.add(s.name);
    }
  }

  private scopeBindings(scope: string): Map<string, BindingRecord> {
    const m = this.bindings.get(scope) ?? new Map<string, BindingRecord>();
    this.bindings.set(scope, m);
    return m;
  }

  // ---- the commit pipeline ----------------------------------------------------------------------

  private run<T>(apply: () => Applied<T>): Promise<T> {
    if (this.closed) return Promise.reject(BackplaneError.unavailable('the name server is shutting down'));
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ apply, resolve: resolve as (v: unknown) => void, reject });
      if (!this.flushing) this.startFlush();
    });
  }

  /** Runs the commit loop; if it ever fails, the next one picks up what is queued. */
  private startFlush(): void {
    const f: Promise<void> = this.flush().catch((err: unknown) =>
      this.log.error({ err }, 'commit loop failed'),
    );
    this.flushing = f;
    void f.then(() => {
      if (this.flushing !== f) return;
      this.flushing = undefined;
      if (this.queue.length > 0) this.startFlush();
    });
  }

  private async flush(): Promise<void> {
    await Promise.resolve();
    while (this.queue.length > 0) {
      const group = this.queue;
      this.queue = [];
      const done: Array<{ p: Pending; result: unknown }> = [];
      const allOps: StoreOp[] = [];
      const changes: Change[] = [];
      for (const p of group) {
        try {
          const applied = p.apply();
          done.push({ p, result: applied.result });
          allOps.push(...applied.ops);
          changes.push(...applied.changes);
        } catch (err) {
          p.reject(err);
        }
      }
      try {
        if (allOps.length > 0) {
          allOps.push(ops.putRevision(this.revision));
          await this.options.store.batch(allOps);
        }
      } catch (err) {
        this.log.error({ err }, 'store write failed; reloading state from the store');
        for (const { p } of done)
          p.reject(
            BackplaneError.unavailable('the name server could not write to its store', { cause: err }),
          );
        await this.load().catch((e: unknown) => this.log.fatal({ err: e }, 'reload failed'));
        continue;
      }
      for (const { p, result } of done) p.resolve(result);
      for (const change of changes) {
        for (const listener of this.listeners) this.safely(() => listener(change));
      }
      this.runAfterCommit();
    }
    this.flushing = undefined;
    this.runAfterCommit();
  }

  /** A failing watcher must never stop the commit pipeline. */
  private safely(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.log.error({ err }, 'a watcher failed');
    }
  }

  private runAfterCommit(): void {
    for (const fn of this.afterCommit.splice(0)) this.safely(fn);
  }

  // ---- views and checks ---------------------------------------------------------------------------

  private view(b: BindingRecord, address = this.addresses.get(b.addressId) as AddressRecord): BindingView {
    return {
      scope: b.scope,
      name: b.name,
      addressId: b.addressId,
      types: address.types,
      location: address.location,
      leaseExpiresAt: address.leaseTtlMs > 0 ? address.leaseExpiresAt : undefined,
      revision: b.revision,
    };
  }

  /**
   * Shares equal type lists, hosts and empty metadata between addresses: with 100,000 servers of a few
   * kinds, each kind's strings are held once. The pool is capped so hostile input cannot grow it forever.
   */
  private internAddress(address: AddressRecord): void {
    const pool = this.internPool;
    const intern = <T>(key: string, value: T): T => {
      const found = pool.get(key);
      if (found !== undefined) return found as T;
      if (pool.size < 10_000) pool.set(key, value);
      return value;
    };
    address.types = intern(`t\u0000${address.types.join('\u0000')}`, address.types);
    const { host, port, metadata } = address.location;
    const emptyMeta = Object.keys(metadata).length === 0;
    address.location = {
      host: intern(`h\u0000${host}`, host),
      port,
      metadata: emptyMeta ? EMPTY_METADATA : metadata,
    };
  }

  private requireScope(scope: string): ScopeRecord {
    const s = this.scopes.get(scope);
    if (!s) throw BackplaneError.notFound(`scope "${scope}" does not exist`, { reason: 'SCOPE_NOT_FOUND' });
    return s;
  }

  /** The scope and its ancestors, nearest first. */
  private chain(scope: string): string[] {
    const out: string[] = [];
    let s: ScopeRecord | undefined = this.requireScope(scope);
    while (s && out.length < LIMITS.maxScopeDepth) {
      out.push(s.name);
      s = s.parent ? this.scopes.get(s.parent) : undefined;
    }
    return out;
  }

  private ownedAddress(addressId: string, secret: string): AddressRecord {
    requireSecret(secret);
    const address = this.addresses.get(addressId);
    if (!address)
      throw BackplaneError.notFound(
        `address "${addressId.slice(0, 64)}" does not exist (unbound or lease expired)`,
      );
    if (!secretsEqual(hashSecret(secret), address.secretHash)) {
      throw BackplaneError.permissionDenied('wrong owner secret for this address');
    }
    return address;
  }

  // ---- mutations ----------------------------------------------------------------------------------

  async bind(input: BindInput): Promise<BindResult> {
    const scope = validateScope(input.scope);
    const name = validateName(input.name);
    if ('addressId' in input) {
      requireSecret(input.ownerSecret);
      return this.run(() => {
        this.requireScope(scope);
        const address = this.ownedAddress(input.addressId, input.ownerSecret);
        return this.addBinding(scope, name, address);
      });
    }
    const types = validateTypes(input.types);
    const location = validateLocation(input.location);
    const leaseTtlMs = validateLeaseTtl(input.leaseTtlMs);
    return this.run(() => {
      this.requireScope(scope);
      this.requireFree(scope, name);
      const ownerSecret = randomBytes(32).toString('base64url');
      const address: AddressRecord = {
        id: randomBytes(16).toString('hex'),
        types,
        location,
        secretHash: hashSecret(ownerSecret),
        leaseTtlMs,
        names: [],
      };
      this.internAddress(address);
      if (leaseTtlMs > 0) {
        address.leaseExpiresAt = this.now() + leaseTtlMs;
        this.leases.push(address.leaseExpiresAt, address.id);
      }
      this.addresses.set(address.id, address);
      const applied = this.addBinding(scope, name, address);
      applied.ops.unshift(ops.putAddress(address));
      return { ...applied, result: { ...applied.result, ownerSecret } };
    });
  }

  private requireFree(scope: string, name: string): void {
    if (this.bindings.get(scope)?.has(name)) {
      throw BackplaneError.alreadyExists(
        `name "${name}" is already bound in scope "${scope}"; the request is denied`,
      );
    }
  }

  private addBinding(scope: string, name: string, address: AddressRecord): Applied<BindResult> {
    this.requireFree(scope, name);
    // the scope record's own string, so 100,000 bindings share one copy of it
    const scopeName = (this.scopes.get(scope) as ScopeRecord).name;
    const record: BindingRecord = {
      scope: scopeName,
      name,
      addressId: address.id,
      revision: ++this.revision,
    };
    this.scopeBindings(scope).set(name, record);
    // an exact-size array: most addresses have one name, and spread or push would over-allocate
    address.names = address.names.length === 0 ? [record] : address.names.concat(record);
    const binding = this.view(record, address);
    return {
      result: { binding, addressId: address.id },
      ops: [ops.putBinding(record)],
      changes: [{ type: 'BOUND', binding, revision: record.revision }],
    };
  }

  /** Removes a binding (and its address when it was the last name); returns the store ops. */
  private removeBinding(record: BindingRecord, revision: number): { ops: StoreOp[]; view: BindingView } {
    const address = this.addresses.get(record.addressId) as AddressRecord;
    const view = { ...this.view(record, address), revision };
    this.bindings.get(record.scope)?.delete(record.name);
    address.names = address.names.filter((r) => r !== record);
    const out = [ops.delBinding(record.scope, record.name)];
    if (address.names.length === 0) {
      this.addresses.delete(address.id);
      out.push(ops.delAddress(address.id));
    }
    return { ops: out, view };
  }

  /**
   * (Re)binds the name server itself in the default scope, replacing whatever a previous run left there:
   * the seed's DNS, found at its well-known location and listed in its own scope.
   */
  publishSelf(name: string, types: string[], location: LocationInput): Promise<BindResult> {
    return this.run(() => {
      const out: StoreOp[] = [];
      const existing = this.bindings.get(DEFAULT_SCOPE)?.get(name);
      if (existing) out.push(...this.removeBinding(existing, this.revision).ops);
      const address: AddressRecord = {
        id: randomBytes(16).toString('hex'),
        types,
        location,
        secretHash: hashSecret(randomBytes(32).toString('base64url')),
        leaseTtlMs: 0,
        names: [],
      };
      this.addresses.set(address.id, address);
      const applied = this.addBinding(DEFAULT_SCOPE, name, address);
      applied.ops.unshift(...out, ops.putAddress(address));
      return applied;
    });
  }

  async unbind(scopeInput: string, nameInput: string, ownerSecret: string): Promise<void> {
    const scope = validateScope(scopeInput);
    const name = validateName(nameInput);
    requireSecret(ownerSecret);
    return this.run(() => {
      this.requireScope(scope);
      const record = this.bindings.get(scope)?.get(name);
      if (!record) throw BackplaneError.notFound(`name "${name}" is not bound in scope "${scope}"`);
      this.ownedAddress(record.addressId, ownerSecret);
      const revision = ++this.revision;
      const { ops: out, view } = this.removeBinding(record, revision);
      return { result: undefined, ops: out, changes: [{ type: 'UNBOUND', binding: view, revision }] };
    });
  }

  /**
   * Renews a lease. Leases live in memory (a restart grants a grace period), so this costs no write. The
   * address's one entry in the lease heap stays: when it comes up, the expiry checks the renewed time and
   * puts it back for then (a heap entry per renewal grew without bound under frequent KeepAlives).
   */
  keepAlive(addressId: string, ownerSecret: string): { leaseExpiresAt?: number; leaseTtlMs: number } {
    const address = this.ownedAddress(addressId, ownerSecret);
    if (address.leaseTtlMs === 0) return { leaseTtlMs: 0 };
    address.leaseExpiresAt = this.now() + address.leaseTtlMs;
    return { leaseExpiresAt: address.leaseExpiresAt, leaseTtlMs: address.leaseTtlMs };
  }

  async migrate(
    addressId: string,
    ownerSecret: string,
    locationInput: LocationInput | undefined,
  ): Promise<BindingView[]> {
    requireSecret(ownerSecret);
    const location = validateLocation(locationInput);
    return this.run(() => {
      const address = this.ownedAddress(addressId, ownerSecret);
      const revision = ++this.revision;
      address.location = location;
      this.internAddress(address);
      const out: StoreOp[] = [ops.putAddress(address)];
      const changes: Change[] = [];
      for (const record of address.names) {
        record.revision = revision;
        out.push(ops.putBinding(record));
        changes.push({ type: 'MIGRATED', binding: this.view(record, address), revision });
      }
      return { result: changes.map((c) => c.binding), ops: out, changes };
    });
  }

  async createScope(nameInput: string, parentInput: string): Promise<ScopeRecord> {
    const name = validateScope(nameInput, 'scope name');
    const parent = parentInput === '' ? undefined : validateScope(parentInput, 'parent scope');
    return this.run(() => {
      if (this.scopes.has(name)) throw BackplaneError.alreadyExists(`scope "${name}" already exists`);
      if (parent !== undefined) {
        this.requireScope(parent);
        if (this.chain(parent).length >= LIMITS.maxScopeDepth) {
          throw BackplaneError.badParameter(`scopes may be nested at most ${LIMITS.maxScopeDepth} deep`);
        }
      }
      const record: ScopeRecord = { name, parent, createdAt: this.now() };
      this.addScope(record);
      ++this.revision;
      return { result: record, ops: [ops.putScope(record)], changes: [] };
    });
  }

  async deleteScope(nameInput: string, force: boolean): Promise<void> {
    const name = validateScope(nameInput, 'scope name');
    return this.run(() => {
      if (name === DEFAULT_SCOPE) throw BackplaneError.incorrectState('the default scope cannot be deleted');
      const scope = this.requireScope(name);
      const kids = this.children.get(name);
      if (kids && kids.size > 0) {
        throw BackplaneError.incorrectState(
          `scope "${name}" has child scopes (${[...kids].slice(0, 5).join(', ')}); delete them first`,
        );
      }
      const bound = [...(this.bindings.get(name)?.values() ?? [])];
      if (bound.length > 0 && !force) {
        throw BackplaneError.incorrectState(
          `scope "${name}" still has ${bound.length} binding(s); pass force to unbind them`,
        );
      }
      const revision = ++this.revision;
      const out: StoreOp[] = [];
      const changes: Change[] = [];
      for (const record of bound) {
        const removed = this.removeBinding(record, revision);
        out.push(...removed.ops);
        changes.push({ type: 'UNBOUND', binding: removed.view, revision });
      }
      this.scopes.delete(name);
      this.bindings.delete(name);
      if (scope.parent) this.children.get(scope.parent)?.delete(name);
      out.push(ops.delScope(name));
      return { result: undefined, ops: out, changes };
    });
  }

  private expireLeases(): void {
    const now = this.now();
    const top = this.leases.peek();
    if (!top || top.at > now) return;
    void this.run(() => {
      const out: StoreOp[] = [];
      const changes: Change[] = [];
      let revision = 0;
      for (let e = this.leases.peek(); e && e.at <= this.now(); e = this.leases.peek()) {
        this.leases.pop();
        const address = this.addresses.get(e.id);
        if (!address || address.leaseTtlMs === 0) continue;
        if ((address.leaseExpiresAt ?? 0) > this.now()) {
          // renewed since: its entry comes back for the new time
          if (e.at < (address.leaseExpiresAt ?? 0)) this.leases.push(address.leaseExpiresAt ?? 0, address.id);
          continue;
        }
        revision ||= ++this.revision;
        for (const record of [...address.names]) {
          const removed = this.removeBinding(record, revision);
          out.push(...removed.ops);
          changes.push({ type: 'EXPIRED', binding: removed.view, revision });
        }
        this.addresses.delete(address.id);
        out.push(ops.delAddress(address.id));
        this.log.info({ addressId: address.id, names: changes.length }, 'lease expired');
      }
      return { result: undefined, ops: out, changes };
    }).catch((err: unknown) => this.log.error({ err }, 'lease expiry failed'));
  }

  // ---- queries ------------------------------------------------------------------------------------

  async resolve(
    scopeInput: string,
    nameInput: string,
    expectedTypeInput: string,
    call?: { deadline?: number; signal?: AbortSignal },
  ): Promise<Resolution> {
    const scope = validateScope(scopeInput);
    const name = validateName(nameInput);
    const expectedType = expectedTypeInput === '' ? '' : validateType(expectedTypeInput, 'expected_type');
    const chain = this.chain(scope);
    for (const s of chain) {
      const record = this.bindings.get(s)?.get(name);
      if (!record) continue;
      const binding = this.view(record);
      if (expectedType && !binding.types.includes(expectedType)) {
        throw BackplaneError.of(
          'TYPE_MISMATCH',
          `type mismatch: "${name}" in scope "${s}" implements [${binding.types.join(', ')}], not ${expectedType}`,
        );
      }
      const self = this.options.self;
      return { binding, nameServer: typeof self === 'function' ? self() : (self ?? '') };
    }
    if (this.options.parent) return this.options.parent.resolve(name, expectedType, call);
    throw BackplaneError.notFound(
      `no server named "${name}" in scope "${scope}" (looked in ${chain.join(' → ')})`,
    );
  }

  async list(
    scopeInput: string,
    prefix: string,
    pageSizeInput: number,
    pageToken: string,
    includeInherited: boolean,
  ): Promise<{ bindings: BindingView[]; nextPageToken: string }> {
    const scope = validateScope(scopeInput);
    if (prefix !== '') validateName(prefix, 'prefix');
    const pageSize = validatePageSize(pageSizeInput);
    const after = decodePageToken(pageToken);
    const chain = includeInherited ? this.chain(scope) : [this.requireScope(scope).name];
    const names = new Set<string>();
    for (const s of chain) {
      for (const n of await listNames(this.options.store, s, prefix, after, pageSize + 1)) names.add(n);
    }
    const sorted = [...names].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    const page = sorted.slice(0, pageSize);
    const bindings: BindingView[] = [];
    for (const n of page) {
      for (const s of chain) {
        const record = this.bindings.get(s)?.get(n);
        if (record) {
          bindings.push(this.view(record));
          break;
        }
      }
    }
    const last = page[page.length - 1];
    return {
      bindings,
      nextPageToken: sorted.length > pageSize && last !== undefined ? encodePageToken(last) : '',
    };
  }

  /**
   * Subscribes to changes matching the filter and returns the matching bindings as of a committed
   * revision; every change after that revision reaches `onChange`, in order.
   */
  async watch(filter: WatchFilter, onChange: (change: Change) => void): Promise<WatchSubscription> {
    const scope = validateScope(filter.scope);
    if (filter.name !== '' || !filter.prefix) validateName(filter.name);
    this.requireScope(scope);
    const matches = (b: { scope: string; name: string }) => {
      if (filter.prefix ? !b.name.startsWith(filter.name) : b.name !== filter.name) return false;
      if (b.scope === scope) return true;
      if (!filter.includeInherited || !this.scopes.has(scope)) return false;
      return this.chain(scope).includes(b.scope);
    };
    return new Promise((resolve, reject) => {
      const start = () => {
        if (!this.scopes.has(scope)) {
          reject(BackplaneError.notFound(`scope "${scope}" does not exist`, { reason: 'SCOPE_NOT_FOUND' }));
          return;
        }
        const listener = (change: Change) => {
          if (matches(change.binding)) onChange(change);
        };
        this.listeners.add(listener);
        const chain = filter.includeInherited ? this.chain(scope) : [scope];
        const snapshot: BindingView[] = [];
        for (const s of chain) {
          const m = this.bindings.get(s);
          if (!m) continue;
          if (!filter.prefix) {
            const r = m.get(filter.name);
            if (r) snapshot.push(this.view(r));
            continue;
          }
          const names = [...m.keys()].filter((n) => n.startsWith(filter.name)).sort();
          for (const n of names) snapshot.push(this.view(m.get(n) as BindingRecord));
        }
        resolve({ snapshot, revision: this.revision, unsubscribe: () => this.listeners.delete(listener) });
      };
      // The snapshot must be of committed state: take it between two commit groups.
      if (this.flushing) this.afterCommit.push(start);
      else start();
    });
  }
}

function encodePageToken(lastName: string): string {
  return Buffer.from(lastName, 'utf8').toString('base64url');
}

function decodePageToken(token: string): string {
  if (token === '') return '';
  const name = Buffer.from(token, 'base64url').toString('utf8');
  if (name === '' || encodePageToken(name) !== token)
    throw BackplaneError.badParameter('page_token is not one this server issued');
  return name;
}
