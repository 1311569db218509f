import { prefixEnd, type Store } from '@backplane/runtime';

const PREFIX = 'b/';

function keyOf(name: string, clientUrl: string): string {
  return `${PREFIX}${name}\u0000${clientUrl}`;
}

export interface BindingOptions {
  /** A client without connections is forgotten after this long (0 = never). */
  ttlMs?: number;
  now?: () => number;
}

/**
 * Which node each client of each service is bound to (the seed's bindings): new connections of a bound
 * client go to its node. Kept in level, so they survive a coordinator restart; read from memory. A
 * binding of a client that has had no connection here for `ttlMs` is forgotten (clients come and go by
 * address; without it the table only grows). The idle clock starts at start-up for bindings read back.
 */
export class Bindings {
  private readonly map = new Map<string, string>();
  /** Bound clients without connections: since when. */
  private readonly idleSince = new Map<string, number>();
  private readonly ttlMs: number;
  private readonly now: () => number;
  private timer: NodeJS.Timeout | undefined;

  private constructor(
    private readonly store: Store,
    options: BindingOptions,
  ) {
    this.ttlMs = options.ttlMs ?? 0;
    this.now = options.now ?? Date.now;
  }

  static async open(store: Store, options: BindingOptions = {}): Promise<Bindings> {
    const bindings = new Bindings(store, options);
    const now = bindings.now();
    for await (const [key, node] of store.iterator({ gte: PREFIX, lt: prefixEnd(PREFIX) })) {
      bindings.map.set(key as string, node);
      bindings.idleSince.set(key as string, now);
    }
    if (bindings.ttlMs > 0) {
      bindings.timer = setInterval(
        () => void bindings.expire().catch(() => undefined),
        Math.min(60_000, Math.max(1000, bindings.ttlMs / 4)),
      );
      bindings.timer.unref();
    }
    return bindings;
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
  }

  /** The client has a connection here: its binding does not expire meanwhile. */
  active(name: string, clientUrl: string): void {
    this.idleSince.delete(keyOf(name, clientUrl));
  }

  /** The client's last connection here closed: its binding's idle clock starts. */
  idle(name: string, clientUrl: string): void {
    const key = keyOf(name, clientUrl);
    if (this.map.has(key)) this.idleSince.set(key, this.now());
  }

  /** Forgets the bindings of clients idle for the TTL; how many. */
  async expire(): Promise<number> {
    if (this.ttlMs <= 0) return 0;
    const before = this.now() - this.ttlMs;
    const ops = [];
    for (const [key, since] of this.idleSince) {
      if (since > before) continue;
      this.idleSince.delete(key);
      this.map.delete(key);
      ops.push({ type: 'del' as const, key });
    }
    if (ops.length > 0) await this.store.batch(ops);
    return ops.length;
  }

  get size(): number {
    return this.map.size;
  }

  get(name: string, clientUrl: string): string | undefined {
    return this.map.get(keyOf(name, clientUrl));
  }

  async bind(name: string, clientUrl: string, node: string): Promise<void> {
    const key = keyOf(name, clientUrl);
    if (this.map.get(key) === node) return;
    this.map.set(key, node);
    await this.store.put(key, node);
  }

  /** close(true): forgets every client bound to the node under the name. */
  async resetNode(name: string, node: string): Promise<void> {
    const ops = [];
    for (const [key, bound] of this.map) {
      if (bound === node && key.startsWith(`${PREFIX}${name}\u0000`)) {
        this.map.delete(key);
        this.idleSince.delete(key);
        ops.push({ type: 'del' as const, key });
      }
    }
    if (ops.length > 0) await this.store.batch(ops);
  }

  /** Every binding: [name, clientUrl, node]. */
  *entries(): Generator<[string, string, string]> {
    for (const [key, node] of this.map) {
      const [name, url] = key.slice(PREFIX.length).split('\u0000') as [string, string];
      yield [name, url, node];
    }
  }
}
