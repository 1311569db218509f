import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DsAdmin, DsService } from '@backplane/ds-client';
import { RELAY_MALLOC_ENV } from '@backplane/runtime';
import { freePort } from '@backplane/runtime/testing';
import { fmt, median, pct, rssMb, writeResults } from './harness';
import { firstLine, startChild, stopChild, waitServing } from './processes';
import { dial, sendToSink } from './tcp-bulk';

const coordinatorMain = require.resolve('@backplane/ds-coordinator/dist/main.js');
const MB = 1024 * 1024;
const BULK_MB = Number(process.env.BENCH_DS_BULK_MB ?? 512);
const IDLE = Number(process.env.BENCH_DS_IDLE_CONNECTIONS ?? 10_000);
const HANDOFFS = Number(process.env.BENCH_DS_HANDOFFS ?? 300);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);

/** A node child with its open-files limit raised to the hard limit (each relayed connection is two sockets). */
function startWithFiles(file: string, args: string[], env: Record<string, string>): ChildProcess {
  const child = spawn(
    'sh',
    ['-c', `ulimit -n "$(ulimit -Hn)" && exec "${process.execPath}" "$@"`, 'sh', file, ...args],
    {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  process.once('exit', () => child.kill('SIGKILL'));
  return child;
}

/** Open files a process may have here (the hard limit). */
function fileLimit(): number {
  try {
    const raw = execFileSync('sh', ['-c', 'ulimit -Hn'], { encoding: 'utf8' }).trim();
    return raw === 'unlimited' ? Number.POSITIVE_INFINITY : Number(raw);
  } catch {
    return 1024;
  }
}

/** Sends `mb` MiB to a counting sink through `address`; MiB/s. */
function bulk(address: string, mb: number): Promise<number> {
  return sendToSink(address, mb, Buffer.alloc(MB, 0x5a));
}

function haproxyBinary(): string | undefined {
  try {
    return execFileSync('sh', ['-c', 'command -v haproxy'], { encoding: 'utf8' }).trim() || undefined;
  } catch {
    return undefined;
  }
}

async function startHaproxy(dir: string, target: string): Promise<{ child: ChildProcess; address: string }> {
  const port = await freePort();
  const cfg = join(dir, 'haproxy.cfg');
  writeFileSync(
    cfg,
    [
      'global',
      '  maxconn 4000',
      'defaults',
      '  mode tcp',
      '  timeout connect 5s',
      '  timeout client 60s',
      '  timeout server 60s',
      'frontend bench',
      `  bind 127.0.0.1:${port}`,
      '  default_backend sink',
      'backend sink',
      `  server s1 ${target}`,
      '',
    ].join('\n'),
  );
  const child = spawn(haproxyBinary() as string, ['-f', cfg, '-db'], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  process.once('exit', () => child.kill('SIGKILL'));
  const address = `127.0.0.1:${port}`;
  for (let i = 0; i < 100; i++) {
    const ok = await dial(address).then(
      (s) => {
        s.destroy();
        return true;
      },
      () => false,
    );
    if (ok) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  return { child, address };
}

/** Handoffs of one client at a time between two nodes while `load` clients stream through the coordinator. */
async function handoffLatency(coordinator: string, service: string, load: number): Promise<number[]> {
  const a = await DsService.create('default', null, { coordinator, node: 'bench-a' });
  const b = await DsService.create('default', null, { coordinator, node: 'bench-b' });
  const sockets: Socket[] = [];
  let stop = false;
  try {
    const nodes = [a, b];
    for (const ds of nodes) {
      // both nodes read everything they get, wherever it comes from
      void (async () => {
        for (;;) {
          const s = await ds.serve().catch(() => undefined);
          if (!s) return;
          s.resume();
        }
      })();
      void (async () => {
        for (;;) {
          const c = await ds.receiveHandoff().catch(() => undefined);
          if (!c) return;
          for (const s of c.getStreams()) s.resume();
        }
      })();
    }
    for (let i = 0; i < load; i++) {
      const s = await dial(service, `127.0.20.${i + 1}`);
      sockets.push(s);
      // each client sends 16 KiB every 10 ms (1.6 MB/s; 16 clients ≈ 26 MB/s through the coordinator)
      const chunk = Buffer.alloc(16 * 1024, i);
      void (async () => {
        while (!stop && !s.destroyed) {
          if (!s.write(chunk)) await new Promise((r) => s.once('drain', r));
          await new Promise((r) => setTimeout(r, 10));
        }
      })();
    }
    await new Promise((r) => setTimeout(r, 500));
    const latencies: number[] = [];
    for (let i = 0; i < HANDOFFS; i++) {
      const from = nodes.find((n) => n.getAllClients().length > 0);
      if (!from) break;
      const to = from === a ? b : a;
      const clients = from.getAllClients();
      const client = clients[i % clients.length];
      if (!client) continue;
      const t0 = performance.now();
      await from.handoffTo(to.url, client, 5000);
      latencies.push(performance.now() - t0);
    }
    return latencies;
  } finally {
    stop = true;
    for (const s of sockets) s.destroy();
    await a.close();
    await b.close();
  }
}

/** 10,000 idle client connections through the coordinator to one node: the coordinator's RSS. */
async function idleConnections(
  coordinator: ChildProcess,
  control: string,
  service: string,
): Promise<{ connections: number; rssBeforeMb: number; rssMb: number; seconds: number }> {
  // the coordinator holds two sockets per relayed connection (client + data): bounded by the file limit
  const limit = Math.min(IDLE, Math.floor((fileLimit() - 200) / 2));
  if (limit < IDLE) {
    console.log(
      `(open-files hard limit ${fileLimit()}: ${limit} idle connections instead of ${IDLE}; raise it with ulimit -Hn)`,
    );
  }
  const rssBeforeMb = rssMb(coordinator.pid as number);
  const sink = startWithFiles(join(__dirname, 'ds-node-sink.js'), [control, 'bench-idle'], {});
  await firstLine(sink, /ds sink ready/);
  const sockets: Socket[] = [];
  const t0 = performance.now();
  try {
    for (let i = 0; i < limit; i += 100) {
      const batch = [];
      for (let j = i; j < Math.min(limit, i + 100); j++) {
        batch.push(dial(service, `127.0.${30 + Math.floor(j / 250)}.${(j % 250) + 1}`));
      }
      sockets.push(...(await Promise.all(batch)));
    }
    const admin = new DsAdmin(control);
    for (let i = 0; i < 200; i++) {
      const status = await admin.status();
      if (
        status.nodes.reduce((n, x) => n + x.streams, 0) >= limit &&
        status.services.every((s) => s.pendingStreams === 0)
      )
        break;
      await new Promise((r) => setTimeout(r, 100));
    }
    admin.close();
    const seconds = (performance.now() - t0) / 1000;
    await new Promise((r) => setTimeout(r, 1000));
    return { connections: sockets.length, rssBeforeMb, rssMb: rssMb(coordinator.pid as number), seconds };
  } finally {
    for (const s of sockets) s.destroy();
    await stopChild(sink);
  }
}

export async function benchDs(): Promise<void> {
  console.log('\n## ds-coordinator: bulk throughput, handoff latency, idle connections\n');
  const dir = mkdtempSync(join(tmpdir(), 'bench-ds-'));
  const [port, dataPort, servicePort] = [await freePort(), await freePort(), await freePort()];
  const control = `127.0.0.1:${port}`;
  const service = `127.0.0.1:${servicePort}`;
  // started the way `backplane up` and the container start it (with the relay's malloc setting)
  const coordinator = startWithFiles(coordinatorMain, [], {
    ...RELAY_MALLOC_ENV,
    BACKPLANE_PORT: String(port),
    BACKPLANE_DS_DATA_PORT: String(dataPort),
    BACKPLANE_DS_SERVICES: `default=${service}`,
    BACKPLANE_DATA_DIR: dir,
    BACKPLANE_NAMESERVER: '',
    BACKPLANE_LOG_LEVEL: 'warn',
  });
  coordinator.stdout?.resume();
  const children: ChildProcess[] = [coordinator];
  try {
    await waitServing(control);
    // bulk: direct TCP to a counting sink, HAProxy in TCP mode in front of it, the coordinator to a ds node
    const tcpSink = startChild(join(__dirname, 'tcp-sink.js'));
    children.push(tcpSink);
    const sinkPort = (await firstLine(tcpSink, /sink listening on (\d+)/))[1];
    const directAddress = `127.0.0.1:${sinkPort}`;
    let haproxyAddress: string | undefined;
    if (haproxyBinary()) {
      const hp = await startHaproxy(dir, directAddress);
      children.push(hp.child);
      haproxyAddress = hp.address;
    } else {
      console.log('(haproxy not installed: apt-get install haproxy for that baseline)');
    }
    const node = spawn(process.execPath, [join(__dirname, 'ds-node-sink.js'), control, 'bench-sink'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    process.once('exit', () => node.kill('SIGKILL'));
    children.push(node);
    await firstLine(node, /ds sink ready/);
    // interleaved rounds, ratios paired within a round (the machine's speed drifts between rounds)
    const runs: Array<{ direct: number; haproxy?: number; ds: number }> = [];
    for (let r = 0; r < ROUNDS; r++) {
      const direct = await bulk(directAddress, BULK_MB);
      const haproxy = haproxyAddress ? await bulk(haproxyAddress, BULK_MB) : undefined;
      const ds = await bulk(service, BULK_MB);
      runs.push({ direct, haproxy, ds });
    }
    await stopChild(node);
    const direct = median(runs.map((r) => r.direct));
    const haproxy = haproxyAddress ? median(runs.map((r) => r.haproxy as number)) : undefined;
    const viaDs = median(runs.map((r) => r.ds));
    const vsDirect = median(runs.map((r) => r.ds / r.direct));
    const vsHaproxy = haproxyAddress ? median(runs.map((r) => r.ds / (r.haproxy as number))) : undefined;

    const rows = [
      ['direct TCP to a sink', direct],
      ['HAProxy (TCP mode) to the sink', haproxy],
      ['ds-coordinator to a ds node', viaDs],
    ] as const;
    console.log(`bulk: ${BULK_MB} MiB per run, medians of ${ROUNDS} interleaved rounds`);
    for (const [name, v] of rows) {
      console.log(`  ${name.padEnd(34)} ${v === undefined ? '-' : `${fmt(v)} MiB/s`}`);
    }
    console.log(`  coordinator vs direct: ${fmt(vsDirect, 2)}× (target ≥ 0.5×)`);
    if (vsHaproxy !== undefined)
      console.log(`  coordinator vs HAProxy: ${fmt(vsHaproxy, 2)}× (target ≥ 0.8×)`);

    const latencies = await handoffLatency(control, service, 16);
    const p50 = pct(latencies, 50);
    const p99 = pct(latencies, 99);
    console.log(
      `handoff latency, 16 clients streaming 1.6 MB/s each: p50 ${fmt(p50, 2)} ms, p99 ${fmt(p99, 2)} ms over ${latencies.length} handoffs (target p99 < 20 ms)`,
    );

    const idle = await idleConnections(coordinator, control, service);
    console.log(
      `idle: ${fmt(idle.connections)} client connections held in ${fmt(idle.seconds, 1)} s; coordinator RSS ${fmt(idle.rssBeforeMb)} MB → ${fmt(idle.rssMb)} MB`,
    );
    const path = writeResults('ds.json', {
      bulkMiB: BULK_MB,
      directMiBps: direct,
      haproxyMiBps: haproxy,
      coordinatorMiBps: viaDs,
      vsDirect,
      vsHaproxy,
      runs,
      handoffP50Ms: p50,
      handoffP99Ms: p99,
      handoffs: latencies.length,
      idle,
    });
    console.log(`results: ${path}`);
  } finally {
    for (const c of children) await stopChild(c);
    rmSync(dir, { recursive: true, force: true });
  }
}
