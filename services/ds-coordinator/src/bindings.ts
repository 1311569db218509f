import { prefixEnd, type Store } from '@backplane/runtime';

const PREFIX = 'b/';

function keyOf(name: string, clientUrl: string): string {
  return `${PREFIX}${name}\u0000${clientUrl}`;
}

/**
 * Which node each client of each service is bound to (the seed's bindings): new connections of a bound
 * client go to its node. Kept in level, so they survive a coordinator restart; read from memory.
 */
export class Bindings {
  private readonly map = new Map<string, string>();

  private constructor(private readonly store: Store) {}

  static async open(store: Store): Promise<Bindings> {
    const bindings = new Bindings(store);
    for await (const [key, node] of store.iterator({ gte: PREFIX, lt: prefixEnd(PREFIX) })) {
      bindings.map.set(key as string, node);
    }
    return bindings;
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
