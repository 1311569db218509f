import { createConnection, type Socket } from 'node:net';
import { DsService } from '@backplane/ds-client';
import { tempDir } from '@backplane/runtime/testing';
import { echoNode } from '../codes';
import { ServiceProcess } from '../services';
import {
  emptyOverloadReport,
  OVERLOAD_FLOORS,
  type OverloadOptions,
  type OverloadReport,
  watchHealth,
} from './run';

const BENCH_CLIENTS = 16;

function dial(port: number, localAddress: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = createConnection({ host: '127.0.0.1', port, localAddress });
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
}

/** Round trips per second of `clients` connections (each its own client address) echoing 64 bytes. */
async function echoRate(port: number, clients: number, ms: number, base: number): Promise<number> {
  const sockets = await Promise.all(
    Array.from({ length: clients }, (_, i) =>
      dial(port, `127.0.${base + Math.floor(i / 250)}.${(i % 250) + 1}`),
    ),
  );
  let trips = 0;
  const until = Date.now() + ms;
  const msg = Buffer.alloc(64, 1);
  await Promise.all(
    sockets.map(async (s) => {
      while (Date.now() < until && !s.destroyed) {
        const back = new Promise<void>((resolve) => {
          let got = 0;
          const onData = (d: Buffer) => {
            got += d.length;
            if (got >= msg.length) {
              s.off('data', onData);
              resolve();
            }
          };
          s.on('data', onData);
        });
        s.write(msg);
        await back;
        trips += 1;
      }
    }),
  );
  for (const s of sockets) s.destroy();
  return trips / (ms / 1000);
}

/**
 * The coordinator: echo round trips through it at the benchmark's 16 clients, at 160, then one client
 * opening 1.5× the connections one client may hold (the excess must be closed at once), then at 16 again.
 */
export async function overloadDs(options: OverloadOptions): Promise<OverloadReport> {
  const limit = 100;
  const dir = tempDir('overload-ds-');
  const proc = await ServiceProcess.start('ds-coordinator', dir.path, {
    BACKPLANE_DS_MAX_CONNECTIONS_PER_CLIENT: String(limit),
  });
  const node = await DsService.create('default', null, { coordinator: proc.address, node: 'echo' });
  const serving = echoNode(node);
  const report = emptyOverloadReport('ds-coordinator (relay)', BENCH_CLIENTS);
  const stopWatching = watchHealth(proc, report);
  const port = proc.dsServicePort;
  try {
    report.before = await echoRate(port, BENCH_CLIENTS, options.baselineMs, 40);
    report.rssBeforeKb = proc.rssKb();
    report.during = await echoRate(port, BENCH_CLIENTS * 10, options.seconds * 1000, 41);
    // one client address, 1.5× the connections it may hold
    const flood = await Promise.all(Array.from({ length: limit * 1.5 }, () => dial(port, '127.0.50.1')));
    report.waiters = flood.length;
    await new Promise((r) => setTimeout(r, 1000));
    report.waitersRefused = flood.filter((s) => s.destroyed || s.readableEnded).length;
    report.codes['connections closed at once'] = report.waitersRefused;
    for (const s of flood) s.destroy();
    await new Promise((r) => setTimeout(r, 500));
    for (let w = 0; w < 5 && report.after < OVERLOAD_FLOORS.recovery * report.before; w += 1)
      report.after = Math.max(report.after, await echoRate(port, BENCH_CLIENTS, options.baselineMs, 42 + w));
    report.rssAfterKb = proc.rssKb();
  } finally {
    await stopWatching();
    await node.close(true).catch(() => undefined);
    await serving;
    report.exits = proc.unexpectedExits;
    report.rssPeakKb = Math.max(report.rssPeakKb, proc.peakRssKb());
    await proc.stop();
    dir.remove();
  }
  return report;
}
