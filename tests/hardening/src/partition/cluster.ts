import { natsServerBinary, type SpawnedProcess, tempDir, untilReplicated } from '@backplane/runtime/testing';
import { PrivateNetwork } from './netns';

const NATS_PORT = 4222;
const ROUTE_PORT = 6222;
const MONITOR_PORT = 8222;
export const SHARING_PORT = 8400;

/** What a nats-server's /jsz says about the JetStream cluster and the streams it hosts. */
export interface JetStreamView {
  metaLeader: string;
  /** Streams this server holds a replica of. */
  streams: string[];
  /** The leader (server name) of each stream it holds, as it sees it. */
  leaders: Record<string, string>;
}

/**
 * Three nodes, each in its own network namespace: a nats-server (JetStream, clustered with the other two)
 * and a sharing node connected to its local nats-server only, as a deployment with one NATS server per
 * host would run. Clients in the host's namespace reach every sharing node at `sharingAddress(i)`.
 */
export class PartitionCluster {
  private readonly nats: SpawnedProcess[] = [];
  private readonly sharing: SpawnedProcess[] = [];
  private expectingExit = false;
  /** Processes that exited on their own. */
  readonly exits: string[] = [];

  private constructor(
    readonly net: PrivateNetwork,
    private readonly dir: { path: string; remove(): void },
    /** Replicas of the properties' log (1: one server holds it; 3: every server, one leads). */
    readonly replicas: number,
  ) {}

  /**
   * Starts the network, the NATS cluster and the sharing nodes. A NATS cluster that cannot place a stream
   * on every server within 45 s (CI once saw one answer "no suitable peers for placement" for a minute,
   * with another partition cluster and a busy loop sharing the two cores) is stopped and started again,
   * up to three times, with what its servers printed.
   */
  static async start(size = 3, replicas = 1): Promise<PartitionCluster> {
    for (let attempt = 1; ; attempt++) {
      const net = PrivateNetwork.create(size);
      const cluster = new PartitionCluster(net, tempDir('partition-'), replicas);
      try {
        await cluster.startNats();
        try {
          await untilReplicated(cluster.natsUrls(), size, 45_000);
        } catch (err) {
          if (attempt >= 3) throw err;
          process.stderr.write(
            `PartitionCluster: the NATS cluster did not form (${(err as Error).message}); again\n${cluster.output()}\n`,
          );
          await cluster.stop();
          continue;
        }
        // one at a time: the first creates the buckets, the others find them
        for (let i = 0; i < size; i++) await cluster.startSharing(i);
        return cluster;
      } catch (err) {
        await cluster.stop();
        throw err;
      }
    }
  }

  /** The nats-servers' client URLs, reached from the host. */
  natsUrls(): string {
    return this.net.addresses.map((a) => `nats://${a}:${NATS_PORT}`).join(',');
  }

  get size(): number {
    return this.net.addresses.length;
  }

  /** The name each nats-server has in the cluster (what /jsz reports as leader). */
  serverName(i: number): string {
    return `n${i}`;
  }

  sharingAddress(i: number): string {
    return `${this.net.addresses[i]}:${SHARING_PORT}`;
  }

  private watch(what: string, proc: SpawnedProcess): void {
    void proc.exited.then((code) => {
      if (!this.expectingExit) this.exits.push(`${what} exited with ${code}`);
    });
  }

  private async startNats(): Promise<void> {
    const routes = this.net.addresses.map((a) => `nats-route://${a}:${ROUTE_PORT}`).join(',');
    for (let i = 0; i < this.size; i++) {
      const proc = this.net.spawn(i, natsServerBinary(), [
        '-a',
        '0.0.0.0',
        '-p',
        String(NATS_PORT),
        '-m',
        String(MONITOR_PORT),
        '-js',
        '-sd',
        `${this.dir.path}/nats-${i}`,
        '--name',
        this.serverName(i),
        '--cluster_name',
        'backplane-partition',
        '--cluster',
        `nats://0.0.0.0:${ROUTE_PORT}`,
        '--routes',
        routes,
      ]);
      this.nats.push(proc);
      this.watch(`nats-server ${this.serverName(i)}`, proc);
    }
    await Promise.all(this.nats.map((p) => p.waitForOutput(/Server is ready/)));
  }

  private async startSharing(i: number): Promise<void> {
    const proc = this.net.spawn(i, process.execPath, [require.resolve('@backplane/sharing/dist/main.js')], {
      ...process.env,
      BACKPLANE_NATS_URL: `nats://127.0.0.1:${NATS_PORT}`,
      BACKPLANE_SHARING_REPLICAS: String(this.replicas),
      BACKPLANE_HOST: '0.0.0.0',
      BACKPLANE_ADVERTISE_HOST: this.net.addresses[i],
      BACKPLANE_PORT: String(SHARING_PORT),
      BACKPLANE_DATA_DIR: `${this.dir.path}/sharing-${i}`,
      BACKPLANE_NAMESERVER: '',
      BACKPLANE_LOG_LEVEL: 'info',
    });
    this.sharing.push(proc);
    this.watch(`sharing node ${i}`, proc);
    await proc.waitForOutput(/sharing node ready/, 90_000);
  }

  /** Node i's nats-server's view of JetStream (from its monitoring port, reached from the host). */
  async jetstream(i: number, timeoutMs = 2000): Promise<JetStreamView> {
    const url = `http://${this.net.addresses[i]}:${MONITOR_PORT}/jsz?streams=true`;
    const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    const body = (await res.json()) as {
      meta_cluster?: { leader?: string };
      account_details?: Array<{ stream_detail?: Array<{ name: string; cluster?: { leader?: string } }> }>;
    };
    const details = (body.account_details ?? []).flatMap((a) => a.stream_detail ?? []);
    return {
      metaLeader: body.meta_cluster?.leader ?? '',
      streams: details.map((s) => s.name),
      leaders: Object.fromEntries(details.map((s) => [s.name, s.cluster?.leader ?? ''])),
    };
  }

  /** The node whose nats-server holds `stream` (R1: exactly one). */
  async hostOf(stream: string): Promise<number> {
    for (let i = 0; i < this.size; i++) if ((await this.jetstream(i)).streams.includes(stream)) return i;
    throw new Error(`no nats-server holds ${stream}`);
  }

  /** The node whose nats-server leads `stream` (on three replicas: the one its writes go through). */
  async leaderOf(stream: string, timeoutMs = 30_000): Promise<number> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      for (let i = 0; i < this.size; i++) {
        const leader = (await this.jetstream(i).catch(() => undefined))?.leaders[stream];
        const node = [0, 1, 2].find((n) => this.serverName(n) === leader);
        if (node !== undefined) return node;
      }
      if (Date.now() > until) throw new Error(`no nats-server leads ${stream}`);
      await new Promise((r) => setTimeout(r, 250));
    }
  }

  /** Everything the processes printed, for a failing run. */
  output(): string {
    return [...this.nats, ...this.sharing].map((p) => p.output().slice(-3000)).join('\n----\n');
  }

  async stop(): Promise<void> {
    this.expectingExit = true;
    this.net.heal();
    await Promise.all(this.sharing.map((p) => p.stop()));
    await Promise.all(this.nats.map((p) => p.stop()));
    this.net.remove();
    this.dir.remove();
  }
}
