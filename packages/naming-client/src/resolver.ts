import { BackplaneError } from '@backplane/client-core';
import type { Binding } from '@backplane/proto/naming';
import { experimental, Metadata, status } from '@grpc/grpc-js';
import { NamingClient, type NamingClientOptions } from './naming-client';

export const SCHEME = 'backplane-name';

/** What a name currently resolves to, or why it does not. */
export type Resolved =
  | { ok: true; host: string; port: number; binding: Binding }
  | { ok: false; error: BackplaneError };

interface Key {
  nameServer: string;
  scope: string;
  name: string;
  expectedType: string;
}

/** The target string a channel for this name uses: backplane-name://<name server>/<scope>/<name>/<type>. */
export function targetFor(key: Key): string {
  return `${SCHEME}://${key.nameServer}/${[key.scope, key.name, key.expectedType].map(encodeURIComponent).join('/')}`;
}

function keyFromUri(uri: { authority?: string; path: string }): Key {
  const [scope = '', name = '', expectedType = ''] = uri.path.split('/').map(decodeURIComponent);
  return { nameServer: uri.authority ?? '', scope, name, expectedType };
}

const keyString = (k: Key) => `${k.nameServer}\u0000${k.scope}\u0000${k.name}\u0000${k.expectedType}`;

/**
 * One name followed through the name server: resolved once, then kept current by a Watch stream (every
 * change re-resolves), shared by every channel and every connect() for the same name. A cached resolution
 * costs no RPC; while the watch is down the last answer is kept and the watch is retried with backoff.
 */
class FollowedName {
  current: Resolved | undefined;
  private readonly listeners = new Set<(r: Resolved) => void>();
  private readonly abort = new AbortController();
  private firstResolution: Promise<Resolved> | undefined;
  private settleFirst: ((r: Resolved) => void) | undefined;
  private watching = false;
  private lastResolveAt = 0;

  constructor(
    private readonly key: Key,
    private readonly client: NamingClient,
    private readonly stats: NameCacheStats,
  ) {
    this.firstResolution = new Promise((resolve) => {
      this.settleFirst = resolve;
    });
    void this.follow();
  }

  /** When the name was last asked for, or last lost a subscriber (ms since the epoch). */
  lastUsed = Date.now();

  /** The current resolution, waiting for the first one if needed. */
  get(): Promise<Resolved> {
    this.lastUsed = Date.now();
    return this.current ? Promise.resolve(this.current) : (this.firstResolution as Promise<Resolved>);
  }

  subscribe(listener: (r: Resolved) => void): () => void {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
      this.lastUsed = Date.now();
    };
  }

  get subscribers(): number {
    return this.listeners.size;
  }

  /** A channel asked for fresh data (e.g. its connection failed): re-resolve if the watch is down. */
  refresh(): void {
    if (!this.watching && Date.now() - this.lastResolveAt > 1000) void this.resolveNow();
  }

  stop(): void {
    this.abort.abort();
  }

  private async resolveNow(): Promise<void> {
    this.lastResolveAt = Date.now();
    this.stats.resolveRpcs++;
    let next: Resolved;
    try {
      const res = await this.client.resolve(
        this.key.name,
        { scope: this.key.scope, expectedType: this.key.expectedType },
        { timeoutMs: 5000, signal: this.abort.signal },
      );
      const loc = res.binding?.location;
      next =
        loc && res.binding
          ? { ok: true, host: loc.host, port: loc.port, binding: res.binding }
          : { ok: false, error: BackplaneError.unavailable('the name server sent an empty resolution') };
    } catch (err) {
      const error = BackplaneError.from(err);
      // keep serving the last good answer while the name server itself is unreachable
      if (this.current?.ok && (error.code === status.UNAVAILABLE || error.code === status.DEADLINE_EXCEEDED))
        return;
      next = { ok: false, error };
    }
    if (this.abort.signal.aborted) return;
    this.current = next;
    this.settleFirst?.(next);
    this.settleFirst = undefined;
    for (const l of this.listeners) l(next);
  }

  private async follow(): Promise<void> {
    let backoff = 100;
    while (!this.abort.signal.aborted) {
      try {
        this.stats.watchStreams++;
        for await (const ev of this.client.watch(
          this.key.name,
          { scope: this.key.scope, includeInherited: true },
          { signal: this.abort.signal },
        )) {
          if (ev.type === 'EXISTING') continue;
          // SYNCED: the watch is in place, so this resolution cannot miss a change; later events re-resolve
          this.watching = true;
          backoff = 100;
          await this.resolveNow();
        }
      } catch (err) {
        if (this.abort.signal.aborted) return;
        const error = BackplaneError.from(err);
        if (error.code === status.NOT_FOUND || error.code === status.INVALID_ARGUMENT) {
          // unknown scope or bad name: report it, then keep trying (the scope may be created later)
          const next: Resolved = { ok: false, error };
          if (!this.current?.ok) {
            this.current = next;
            this.settleFirst?.(next);
            this.settleFirst = undefined;
            for (const l of this.listeners) l(next);
          }
        }
      }
      this.watching = false;
      if (this.abort.signal.aborted) return;
      if (!this.current) await this.resolveNow();
      await new Promise((r) => setTimeout(r, backoff).unref());
      backoff = Math.min(backoff * 2, 5000);
    }
  }
}

export interface NameCacheStats {
  /** Resolve RPCs sent. */
  resolveRpcs: number;
  /** Watch streams opened. */
  watchStreams: number;
}

/** Followed names per (name server, scope, name, expected type), shared by the whole process. */
export class NameCache {
  readonly stats: NameCacheStats = { resolveRpcs: 0, watchStreams: 0 };
  private readonly names = new Map<string, FollowedName>();
  private readonly clients = new Map<string, NamingClient>();
  private readonly clientOptions = new Map<string, NamingClientOptions>();

  /** Credentials or a token for one name server (before the first connect() to it). */
  configure(nameServer: string, options: Omit<NamingClientOptions, 'nameServer'>): void {
    this.clientOptions.set(nameServer, options);
  }

  /** Names nobody has used (no channel, no lookup) for this long stop being followed. */
  idleMs = 60_000;
  private sweeper: NodeJS.Timeout | undefined;

  /** Stops following names without channels that nobody looked up for `idleMs`. */
  sweep(now = Date.now()): number {
    let stopped = 0;
    for (const [k, f] of this.names) {
      if (f.subscribers === 0 && now - f.lastUsed > this.idleMs) {
        f.stop();
        this.names.delete(k);
        stopped++;
      }
    }
    if (this.names.size === 0 && this.sweeper) {
      clearInterval(this.sweeper);
      this.sweeper = undefined;
    }
    return stopped;
  }

  follow(key: Key): FollowedName {
    const k = keyString(key);
    if (!this.sweeper) {
      this.sweeper = setInterval(() => this.sweep(), Math.max(1000, this.idleMs / 2));
      this.sweeper.unref();
    }
    let f = this.names.get(k);
    if (!f) {
      let client = this.clients.get(key.nameServer);
      if (!client) {
        client = new NamingClient({ ...this.clientOptions.get(key.nameServer), nameServer: key.nameServer });
        this.clients.set(key.nameServer, client);
      }
      f = new FollowedName(key, client, this.stats);
      this.names.set(k, f);
    }
    return f;
  }

  /** Stops following every name and closes the name server connections. */
  close(): void {
    if (this.sweeper) clearInterval(this.sweeper);
    this.sweeper = undefined;
    for (const f of this.names.values()) f.stop();
    this.names.clear();
    for (const c of this.clients.values()) c.close();
    this.clients.clear();
  }
}

export const nameCache = new NameCache();

// ---- the grpc-js resolver, behind a thin adapter --------------------------------------------------

type Endpoints = Array<{ addresses: Array<{ host: string; port: number }> }>;
interface StatusObject {
  code: status;
  details: string;
  metadata: Metadata;
}

/**
 * Reports a result to a grpc-js resolver listener. grpc-js ≥ 1.13 passes a function taking
 * (StatusOr<Endpoint[]>, attributes, StatusOr<ServiceConfig> | null, resolutionNote); 1.10-1.12 pass an
 * object with onSuccessfulResolution(endpoints, serviceConfig, serviceConfigError, configSelector,
 * attributes) and onError(status).
 */
function report(listener: unknown, result: { endpoints: Endpoints } | { error: StatusObject }): void {
  if (typeof listener === 'function') {
    const value =
      'endpoints' in result ? { ok: true, value: result.endpoints } : { ok: false, error: result.error };
    (listener as (e: unknown, a: object, s: null, note: string) => boolean)(value, {}, null, '');
    return;
  }
  const l = listener as {
    onSuccessfulResolution(e: Endpoints, sc: null, sce: null, cs: null, attrs: object): void;
    onError(s: StatusObject): void;
  };
  if ('endpoints' in result) l.onSuccessfulResolution(result.endpoints, null, null, null, {});
  else l.onError(result.error);
}

function toStatus(r: Resolved): { endpoints: Endpoints } | { error: StatusObject } {
  if (r.ok) return { endpoints: [{ addresses: [{ host: r.host, port: r.port }] }] };
  // a name that does not resolve makes calls fail UNAVAILABLE (retryable) with the name server's reason
  return { error: { code: status.UNAVAILABLE, details: r.error.message, metadata: new Metadata() } };
}

class NameResolver {
  private readonly followed: FollowedName;
  private unsubscribe: (() => void) | undefined;

  constructor(
    target: { authority?: string; path: string },
    private readonly listener: unknown,
  ) {
    this.followed = nameCache.follow(keyFromUri(target));
  }

  static getDefaultAuthority(target: { path: string }): string {
    const { name } = keyFromUri(target);
    return /^[A-Za-z0-9.-]{1,253}$/.test(name) ? name : 'backplane';
  }

  updateResolution(): void {
    this.unsubscribe ??= this.followed.subscribe((r) => report(this.listener, toStatus(r)));
    this.followed.refresh();
    // never call the listener synchronously from updateResolution
    void this.followed
      .get()
      .then((r) => setImmediate(() => this.unsubscribe && report(this.listener, toStatus(r))));
  }

  destroy(): void {
    this.unsubscribe?.();
    this.unsubscribe = undefined;
  }
}

let registered = false;

/** Registers the `backplane-name:` scheme with grpc-js (once). */
export function registerNameResolver(): void {
  if (registered) return;
  registered = true;
  experimental.registerResolver(
    SCHEME,
    NameResolver as unknown as Parameters<typeof experimental.registerResolver>[1],
  );
}
