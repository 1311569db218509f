import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { connect } from '@nats-io/transport-node';
import { freePort, tempDir } from './ports';
import { type SpawnedProcess, spawnProcess } from './processes';

/** The nats-server binary: $NATS_SERVER_BIN, or Debian's package (`apt-get install nats-server`). */
export function natsServerBinary(): string {
  const candidates = [
    process.env.NATS_SERVER_BIN,
    '/usr/sbin/nats-server',
    '/usr/bin/nats-server',
    '/usr/local/bin/nats-server',
  ];
  const found = candidates.find((c): c is string => !!c && existsSync(c));
  if (!found)
    throw new Error('nats-server not found: install it (apt-get install nats-server) or set NATS_SERVER_BIN');
  return found;
}

export interface NatsServer {
  /** nats://127.0.0.1:port */
  readonly url: string;
  readonly port: number;
  readonly process: SpawnedProcess;
  /** Stops the server and removes its JetStream directory. */
  stop(): Promise<void>;
  /** kill -9, keeping the store directory so `restart()` finds it. */
  kill(): Promise<void>;
  restart(): Promise<void>;
}

async function launch(args: string[], storeDir: string, port: number): Promise<SpawnedProcess> {
  const proc = spawnProcess(natsServerBinary(), [
    '-a',
    '127.0.0.1',
    '-p',
    String(port),
    '-js',
    '-sd',
    storeDir,
    ...args,
  ]);
  await proc.waitForOutput(/Server is ready/);
  return proc;
}

function handle(
  port: number,
  storeDir: { path: string; remove(): void },
  extraArgs: () => string[],
  first: SpawnedProcess,
): NatsServer {
  let proc = first;
  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    get process() {
      return proc;
    },
    async stop() {
      await proc.stop();
      storeDir.remove();
    },
    async kill() {
      await proc.kill();
    },
    async restart() {
      await proc.stop();
      proc = await launch(extraArgs(), storeDir.path, port);
    },
  };
}

/**
 * A real nats-server with JetStream on a free loopback port, its store in a temp dir; `args` are passed
 * on (e.g. `--tls --tlscert …`).
 */
export async function startNats(args: string[] = []): Promise<NatsServer> {
  const port = await freePort();
  const dir = tempDir('backplane-nats-');
  const proc = await launch(args, dir.path, port);
  return handle(port, dir, () => args, proc);
}

export interface NatsCluster {
  readonly servers: NatsServer[];
  /** Comma-separated client URLs of all three servers. */
  readonly urls: string;
  stop(): Promise<void>;
}

/**
 * Three (or `size`) JetStream-enabled nats-servers clustered on loopback, once the cluster places a
 * stream on every server. A cluster that has not formed in 40 s is stopped and started again on new
 * ports, up to three times: the ports come from freePort(), and on a busy machine where other tests start
 * clusters at the same moment, one of them can be taken before its server binds it (CI saw a cluster
 * answer "no suitable peers for placement" for 120 s).
 */
export async function startNatsCluster(size = 3): Promise<NatsCluster> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await tryCluster(size, 40_000);
    } catch (err) {
      if (attempt >= 3) throw err;
      process.stderr.write(
        `startNatsCluster: attempt ${attempt} failed (${(err as Error).message}); again\n`,
      );
    }
  }
}

async function tryCluster(size: number, formTimeoutMs: number): Promise<NatsCluster> {
  const ports = await Promise.all(Array.from({ length: size }, () => freePort()));
  const clusterPorts = await Promise.all(Array.from({ length: size }, () => freePort()));
  const routes = clusterPorts.map((p) => `nats-route://127.0.0.1:${p}`).join(',');
  // a name of its own: a test cluster whose servers are down (killed for an outage) frees its ports,
  // and a cluster started meanwhile may get one of them; with one shared name the restarted servers
  // would route into that cluster and merge with it (seen as "no suitable peers for placement")
  const name = `backplane-test-${Math.random().toString(36).slice(2, 10)}`;
  const servers = await Promise.all(
    ports.map(async (port, i) => {
      const dir = tempDir(`backplane-nats-${i}-`);
      const args = () => [
        '--name',
        `n${i}`,
        '--cluster_name',
        name,
        '--cluster',
        `nats://127.0.0.1:${clusterPorts[i]}`,
        '--routes',
        routes,
      ];
      const proc = await launch(args(), join(dir.path), port);
      return handle(port, dir, args, proc);
    }),
  );
  const cluster = {
    servers,
    urls: servers.map((s) => s.url).join(','),
    stop: async () => {
      await Promise.all(servers.map((s) => s.stop()));
    },
  };
  const started = Date.now();
  try {
    await untilReplicated(cluster.urls, size, formTimeoutMs);
    // slow to form: say so, for the test that then runs out of time
    const took = Date.now() - started;
    if (took > 10_000)
      process.stderr.write(`startNatsCluster: the cluster took ${took} ms to place a stream\n`);
  } catch (err) {
    await cluster.stop();
    throw err;
  }
  return cluster;
}

/**
 * Resolves once the cluster places a stream on all its servers: its JetStream meta leader is elected and
 * knows every peer (a stream with `replicas` = the cluster's size is made, then deleted). Before that, a
 * test's first replicated stream may be refused ("no suitable peers for placement").
 */
export async function untilReplicated(urls: string, replicas: number, timeoutMs = 120_000): Promise<void> {
  const nc = await connect({ servers: urls.split(','), maxReconnectAttempts: -1 });
  const name = `READY_${Math.random().toString(36).slice(2, 10)}`;
  const until = Date.now() + timeoutMs;
  try {
    for (;;) {
      try {
        const created = await nc.request(
          `$JS.API.STREAM.CREATE.${name}`,
          JSON.stringify({ name, subjects: [`ready.${name}`], num_replicas: replicas, storage: 'memory' }),
          { timeout: 2000 },
        );
        const body = created.json<{ error?: { description?: string } }>();
        if (!body.error) break;
        if (Date.now() > until) throw new Error(`the NATS cluster did not form: ${body.error.description}`);
      } catch (err) {
        if (Date.now() > until) throw err;
      }
      await new Promise((r) => setTimeout(r, 250));
    }
    await nc.request(`$JS.API.STREAM.DELETE.${name}`, '', { timeout: 5000 }).catch(() => undefined);
  } finally {
    await nc.close();
  }
}
