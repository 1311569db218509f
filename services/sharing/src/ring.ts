import { type Logger, silentLogger } from '@backplane/runtime';
import { type KV, Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';

export interface RingNode {
  id: string;
  address: string;
}

/** The nodes a client can use: the seed's bootstrap server answers with the whole ring. */
export interface Ring {
  readonly self: RingNode;
  nodes(): Promise<RingNode[]>;
  close(): Promise<void>;
}

/** The embedded engine's ring: this node alone. */
export function singleNode(self: RingNode): Ring {
  return { self, nodes: async () => [self], close: async () => undefined };
}

const HEARTBEAT_MS = 2000;

/**
 * The distributed ring: each node announces itself in a KV bucket every 2 s, and a node not heard from
 * for three heartbeats is left out. A stopping node removes itself at once.
 */
export class NatsRing implements Ring {
  private readonly timer: NodeJS.Timeout;

  private constructor(
    readonly self: RingNode,
    private readonly kv: KV,
    private readonly log: Logger,
  ) {
    this.timer = setInterval(() => void this.announce(), HEARTBEAT_MS);
    this.timer.unref();
  }

  static async join(
    nc: NatsConnection,
    bucket: string,
    self: RingNode,
    log?: Logger,
    replicas = 1,
  ): Promise<NatsRing> {
    const kv = await new Kvm(nc).create(bucket, { history: 1, replicas });
    const ring = new NatsRing(self, kv, log ?? silentLogger());
    await ring.announce();
    return ring;
  }

  private async announce(): Promise<void> {
    try {
      await this.kv.put(this.self.id, JSON.stringify({ address: this.self.address, at: Date.now() }));
    } catch (err) {
      this.log.warn({ err }, 'announcing this node to the ring failed');
    }
  }

  async nodes(): Promise<RingNode[]> {
    const out: RingNode[] = [];
    const now = Date.now();
    const keys = await this.kv.keys();
    for await (const id of keys) {
      const e = await this.kv.get(id);
      if (e?.operation !== 'PUT') continue;
      const { address, at } = e.json<{ address: string; at: number }>();
      if (now - at < 3 * HEARTBEAT_MS) out.push({ id, address });
    }
    if (!out.some((n) => n.id === this.self.id)) out.push(this.self);
    return out.sort((a, b) => (a.id < b.id ? -1 : 1));
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.kv.delete(this.self.id).catch(() => undefined);
  }
}
