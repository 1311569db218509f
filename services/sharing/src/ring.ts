import { type Logger, retryJetStream, silentLogger } from '@backplane/runtime';
import { type KV, Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';

export interface RingNode {
  id: string;
  address: string;
  /** Where programs outside the nodes' network reach it (BACKPLANE_EXTERNAL_HOST), when it has such a host. */
  external?: string;
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
/** How long Nodes waits for the ring bucket before it answers with the last ring it read. */
const READ_TIMEOUT_MS = 1000;

/**
 * The distributed ring: each node announces itself in a KV bucket every 2 s, and a node not heard from
 * for three heartbeats is left out. A stopping node removes itself at once. When the bucket cannot be
 * read (its nats-server is cut off), Nodes answers with the last ring read, so clients still learn
 * where to go.
 */
export class NatsRing implements Ring {
  private readonly timer: NodeJS.Timeout;
  private lastRead: RingNode[] = [];

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
    const kv = await retryJetStream(
      `bucket ${bucket}`,
      () => new Kvm(nc).create(bucket, { history: 1, replicas }),
      {
        log,
      },
    );
    const ring = new NatsRing(self, kv, log ?? silentLogger());
    await ring.announce();
    return ring;
  }

  private async announce(): Promise<void> {
    try {
      await this.kv.put(
        this.self.id,
        JSON.stringify({ address: this.self.address, external: this.self.external, at: Date.now() }),
      );
    } catch (err) {
      this.log.warn({ err }, 'announcing this node to the ring failed');
    }
  }

  async nodes(): Promise<RingNode[]> {
    try {
      this.lastRead = await within(this.read(), READ_TIMEOUT_MS);
    } catch (err) {
      this.log.warn(
        { err: (err as Error).message },
        'the ring bucket is unreachable: answering with the last ring read',
      );
    }
    return withSelf(this.lastRead, this.self);
  }

  private async read(): Promise<RingNode[]> {
    const out: RingNode[] = [];
    const now = Date.now();
    const keys = await this.kv.keys();
    for await (const id of keys) {
      const e = await this.kv.get(id);
      if (e?.operation !== 'PUT') continue;
      const { address, external, at } = e.json<{ address: string; external?: string; at: number }>();
      if (now - at < 3 * HEARTBEAT_MS) out.push({ id, address, ...(external ? { external } : {}) });
    }
    return out;
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    // bounded: a node cut off from NATS still stops at once (the others drop it after three heartbeats)
    await within(this.kv.delete(this.self.id), READ_TIMEOUT_MS).catch(() => undefined);
  }
}

function withSelf(nodes: RingNode[], self: RingNode): RingNode[] {
  const out = nodes.some((n) => n.id === self.id) ? [...nodes] : [...nodes, self];
  return out.sort((a, b) => (a.id < b.id ? -1 : 1));
}

function within<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer from the ring bucket within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}
