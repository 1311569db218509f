import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { healthCheck } from '@backplane/runtime';
import { table } from './output';
import { SERVICES, type ServiceEntry } from './services';

export interface UpOptions {
  dataDir: string;
  host: string;
  /** Per-service port overrides, e.g. { 'name-server': 17000 }. */
  ports: Record<string, number>;
  /** Start a local nats-server too and run services on the distributed engine where they have one. */
  nats: boolean;
  natsPort: number;
  /**
   * With nats: this many nats-servers in one JetStream cluster (ports natsPort, natsPort+1, …; routes on
   * natsPort+1000, …) and as many sharing nodes (ports 8400, 8401, …), their log on min(3, N) replicas.
   */
  cluster: number;
  logLevel: string;
  /** Raw JSON log lines instead of the compact human format. */
  jsonLogs: boolean;
  /** Stop after this many ms (for tests and demos); 0 = until a signal. */
  forMs: number;
}

interface Started {
  name: string;
  address: string;
  child: ChildProcess;
  dataDir: string;
}

function mainOf(entry: ServiceEntry): string {
  return join(dirname(require.resolve(`${entry.package}/package.json`)), entry.main);
}

function natsBinary(): string | undefined {
  return [
    process.env.NATS_SERVER_BIN,
    '/usr/sbin/nats-server',
    '/usr/bin/nats-server',
    '/usr/local/bin/nats-server',
  ].find((p): p is string => !!p && existsSync(p));
}

/** `{"level":30,"time":"…","msg":"listening","address":"…"}` → `info  listening address=…` */
function compact(line: string): string {
  try {
    const rec = JSON.parse(line) as Record<string, unknown>;
    const { level, msg, time, pid, hostname, service, ...rest } = rec;
    void time;
    void pid;
    void hostname;
    void service;
    const name =
      { 10: 'trace', 20: 'debug', 30: 'info', 40: 'warn', 50: 'error', 60: 'fatal' }[level as number] ??
      String(level);
    const fields = Object.entries(rest).map(
      ([k, v]) => `${k}=${typeof v === 'object' ? JSON.stringify(v) : String(v)}`,
    );
    return `${name.padEnd(5)} ${String(msg ?? '')} ${fields.join(' ')}`.trimEnd();
  } catch {
    return line;
  }
}

function pipeOutput(name: string, child: ChildProcess, json: boolean): void {
  for (const stream of [child.stdout, child.stderr]) {
    if (!stream) continue;
    createInterface({ input: stream }).on('line', (line) => {
      process.stdout.write(`[${name}] ${json ? line : compact(line)}\n`);
    });
  }
}

async function waitHealthy(
  name: string,
  address: string,
  child: ChildProcess,
  timeoutMs = 30_000,
): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${name} exited with code ${child.exitCode} while starting`);
    const state = await healthCheck(address).catch(() => 'DOWN');
    if (state === 'SERVING') return;
    if (Date.now() > until)
      throw new Error(`${name} did not become healthy at ${address} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function stopChild(child: ChildProcess, graceMs = 10_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((done) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    child.once('exit', () => {
      clearTimeout(timer);
      done();
    });
    child.kill('SIGTERM');
  });
}

/**
 * Starts every service as its own process on its default port with embedded storage under the data
 * directory, the name server first; prints what listens where; stops them all cleanly on Ctrl-C.
 */
export async function up(options: UpOptions): Promise<number> {
  const dataDir = resolve(options.dataDir);
  const started: Started[] = [];
  const nameServerPort = options.ports['name-server'] ?? 7000;
  const nameServer = `127.0.0.1:${nameServerPort}`;
  let natsChild: ChildProcess | undefined;
  /** The other nats-servers of a cluster. */
  const extraNats: ChildProcess[] = [];
  let stopping = false;
  let resolveDone: (code: number) => void = () => undefined;
  const done = new Promise<number>((r) => {
    resolveDone = r;
  });

  const stopAll = async (code: number) => {
    if (stopping) return;
    stopping = true;
    process.stdout.write('stopping…\n');
    // take from `started` until it is empty: a service the start-up loop adds meanwhile is stopped too
    for (let s = started.pop(); s; s = started.pop()) await stopChild(s.child);
    for (const c of extraNats) await stopChild(c);
    if (natsChild) await stopChild(natsChild);
    process.stdout.write('all stopped\n');
    resolveDone(code);
  };
  const onSignal = () => void stopAll(0);
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const watchExit = (name: string, child: ChildProcess) =>
    child.once('exit', (code, signal) => {
      if (stopping) return;
      process.stdout.write(
        `${name} exited unexpectedly (${signal ?? `code ${code}`}); stopping everything\n`,
      );
      void stopAll(1);
    });

  try {
    if (options.cluster > 1 && !options.nats) throw new Error('--cluster needs --nats');
    if (!Number.isInteger(options.cluster) || options.cluster < 1 || options.cluster > 9)
      throw new Error(`--cluster takes 1 to 9 nodes, got ${options.cluster}`);
    const natsUrls: string[] = [];
    const natsChildren: ChildProcess[] = [];
    if (options.nats) {
      const bin = natsBinary();
      if (!bin)
        throw new Error(
          '--nats needs nats-server 2.10 (on Debian: apt-get install -t trixie nats-server, see the README), or set NATS_SERVER_BIN',
        );
      const size = Math.max(1, options.cluster);
      const routes = Array.from(
        { length: size },
        (_, i) => `nats-route://127.0.0.1:${options.natsPort + 1000 + i}`,
      );
      for (let i = 0; i < size; i++) {
        const dir = join(dataDir, size === 1 ? 'nats' : `nats-${i + 1}`);
        mkdirSync(dir, { recursive: true });
        const port = options.natsPort + i;
        const clusterArgs =
          size === 1
            ? []
            : [
                '--name',
                `nats-${i + 1}`,
                '--cluster_name',
                'backplane',
                '--cluster',
                routes[i] as string,
                '--routes',
                routes.join(','),
              ];
        const child = spawn(bin, ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', dir, ...clusterArgs], {
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        child.on('error', (err) => {
          process.stdout.write(`nats-server failed: ${err.message}\n`);
          void stopAll(1);
        });
        const name = size === 1 ? 'nats' : `nats-${i + 1}`;
        pipeOutput(name, child, true);
        watchExit(name, child);
        natsChildren.push(child);
        natsUrls.push(`nats://127.0.0.1:${port}`);
      }
      natsChild = natsChildren[0];
      extraNats.push(...natsChildren.slice(1));
    }
    for (const entry of SERVICES) {
      // with a cluster, one sharing node per nats-server, each preferring its own server
      const copies = entry.natsEnv && natsUrls.length > 1 ? natsUrls.length : 1;
      for (let copy = 0; copy < copies; copy++) {
        if (stopping) break; // Ctrl-C during start-up: start nothing more
        const name = copies === 1 ? entry.name : `${entry.name}-${copy + 1}`;
        const port = (options.ports[entry.name] ?? entry.port) + copy;
        const svcData = join(dataDir, name);
        const urls = [...natsUrls.slice(copy), ...natsUrls.slice(0, copy)].join(',');
        const env: NodeJS.ProcessEnv = {
          ...entry.env,
          ...process.env,
          BACKPLANE_HOST: options.host,
          BACKPLANE_PORT: String(port),
          BACKPLANE_DATA_DIR: svcData,
          BACKPLANE_NAMESERVER: nameServer,
          BACKPLANE_LOG_LEVEL: options.logLevel,
          ...(urls && entry.natsEnv ? entry.natsEnv(urls) : {}),
          ...(copies > 1 ? { BACKPLANE_SHARING_REPLICAS: String(Math.min(3, copies)) } : {}),
        };
        const child = spawn(process.execPath, [mainOf(entry)], { env, stdio: ['ignore', 'pipe', 'pipe'] });
        child.on('error', (err) => process.stdout.write(`${name} failed to start: ${err.message}\n`));
        const address = `${options.host === '0.0.0.0' ? '127.0.0.1' : options.host}:${port}`;
        started.push({ name, address, child, dataDir: svcData });
        pipeOutput(name, child, options.jsonLogs);
        // a cluster's first node waits for the JetStream cluster to form (its leaders elected)
        await waitHealthy(name, address, child, copies > 1 ? 90_000 : 30_000);
        watchExit(name, child);
      }
    }
  } catch (err) {
    process.stdout.write(`backplane up failed: ${(err as Error).message}\n`);
    await stopAll(1);
    return done;
  }

  if (stopping) return done;
  const rows = started.map((s) => ({
    service: s.name,
    address: s.address,
    pid: s.child.pid,
    data: s.dataDir,
  }));
  const natsRows = [natsChild, ...extraNats].flatMap((child, i) =>
    child
      ? [
          {
            service: extraNats.length ? `nats-${i + 1}` : 'nats',
            address: `127.0.0.1:${options.natsPort + i}`,
            pid: child.pid,
            data: join(dataDir, extraNats.length ? `nats-${i + 1}` : 'nats'),
          },
        ]
      : [],
  );
  rows.unshift(...natsRows);
  process.stdout.write(
    `\nBackplane is up (name server ${nameServer}):\n${table(rows, ['service', 'address', 'pid', 'data'])}\nCtrl-C stops everything.\n\n`,
  );
  if (options.forMs > 0) setTimeout(() => void stopAll(0), options.forMs).unref();
  const code = await done;
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);
  return code;
}
