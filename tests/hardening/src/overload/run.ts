import { healthCheck } from '@backplane/runtime';
import { tempDir } from '@backplane/runtime/testing';
import { codeOf } from '../codes';
import { type ServiceName, ServiceProcess } from '../services';
import { opsFor } from './ops';

export interface OverloadOptions {
  /** Seconds of 10× load. */
  seconds: number;
  /** Per-client call limit the service runs with, so the waiter flood meets it. */
  maxCallsPerClient: number;
  /** Length of the 1× measurements before and after, ms. */
  baselineMs: number;
}

export interface OverloadReport {
  service: string;
  benchConcurrency: number;
  /** ops/s at the benchmark's concurrency before, under 10× and after. */
  before: number;
  during: number;
  after: number;
  /** Codes seen under 10× load and in the waiter flood. */
  codes: Record<string, number>;
  /** Waiters started, and how many were refused at once (RESOURCE_EXHAUSTED). */
  waiters: number;
  waitersRefused: number;
  /** The service answered health checks throughout. */
  healthy: boolean;
  rssBeforeKb: number;
  rssPeakKb: number;
  rssAfterKb: number;
  exits: number;
}

/** A report with nothing measured yet. */
export function emptyOverloadReport(service: string, benchConcurrency: number): OverloadReport {
  return {
    service,
    benchConcurrency,
    before: 0,
    during: 0,
    after: 0,
    codes: {},
    waiters: 0,
    waitersRefused: 0,
    healthy: true,
    rssBeforeKb: 0,
    rssPeakKb: 0,
    rssAfterKb: 0,
    exits: 0,
  };
}

/** Checks health and samples memory every 250 ms until the returned stop function is awaited. */
export function watchHealth(proc: ServiceProcess, report: OverloadReport): () => Promise<void> {
  let watching = true;
  const watcher = (async () => {
    while (watching) {
      if ((await healthCheck(proc.address).catch(() => 'DOWN')) !== 'SERVING') report.healthy = false;
      report.rssPeakKb = Math.max(report.rssPeakKb, proc.rssKb());
      await new Promise((r) => setTimeout(r, 250));
    }
  })();
  return async () => {
    watching = false;
    await watcher;
  };
}

async function throughput(
  op: (i: number, deadlineMs: number) => Promise<unknown>,
  concurrency: number,
  ms: number,
  codes?: Record<string, number>,
): Promise<number> {
  let ok = 0;
  let i = 0;
  const until = Date.now() + ms;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (Date.now() < until) {
        try {
          await op(i++, 2000);
          ok += 1;
          if (codes) codes.OK = (codes.OK ?? 0) + 1;
        } catch (err) {
          const c = codeOf(err);
          if (codes) codes[c] = (codes[c] ?? 0) + 1;
          await new Promise((r) => setTimeout(r, 10));
        }
      }
    }),
  );
  return ok / (ms / 1000);
}

/**
 * One service: its benchmark operation at the benchmark's concurrency, then at 10×, then a flood of
 * waiting calls (1.5× the per-client limit), then at 1× again; health checked all along.
 */
export async function overloadService(
  name: Exclude<ServiceName, 'ds-coordinator'>,
  options: OverloadOptions,
): Promise<OverloadReport> {
  const dir = tempDir(`overload-${name}-`);
  const proc = await ServiceProcess.start(name, dir.path, {
    BACKPLANE_MAX_CALLS_PER_CLIENT: String(options.maxCallsPerClient),
  });
  const ops = await opsFor(name, proc.address);
  const report = emptyOverloadReport(name, ops.benchConcurrency);
  const stopWatching = watchHealth(proc, report);
  try {
    await throughput(ops.op, ops.benchConcurrency, 1000);
    report.before = await throughput(ops.op, ops.benchConcurrency, options.baselineMs);
    report.rssBeforeKb = proc.rssKb();
    const ms = options.seconds * 1000;
    report.during = await throughput(ops.op, ops.benchConcurrency * 10, ms, report.codes);
    // then one client opens 1.5× as many waiting calls as one client may have: the excess is refused at once
    const flood = Array.from({ length: Math.round(options.maxCallsPerClient * 1.5) }, (_, i) =>
      ops.wait(i, 4000).then(
        () => 'OK',
        (err: unknown) => codeOf(err),
      ),
    );
    report.waiters = flood.length;
    for (const c of await Promise.all(flood)) {
      report.codes[`waiter ${c}`] = (report.codes[`waiter ${c}`] ?? 0) + 1;
      if (c === 'RESOURCE_EXHAUSTED') report.waitersRefused += 1;
    }
    await new Promise((r) => setTimeout(r, 1000));
    // recovered: the best of up to five windows at 1× (a neighbour may hold the CPU for some of them)
    for (let w = 0; w < 5 && report.after < OVERLOAD_FLOORS.recovery * report.before; w += 1)
      report.after = Math.max(
        report.after,
        await throughput(ops.op, ops.benchConcurrency, options.baselineMs),
      );
    report.rssAfterKb = proc.rssKb();
  } finally {
    await stopWatching();
    ops.close();
    report.exits = proc.unexpectedExits;
    report.rssPeakKb = Math.max(report.rssPeakKb, proc.peakRssKb());
    await proc.stop();
    dir.remove();
  }
  return report;
}

/** The floors a run must reach: throughput at 10× load, and after it, as shares of the rate before. */
export const OVERLOAD_FLOORS = { during: 0.5, recovery: 0.8 } as const;

/**
 * What kept a run from shedding load cleanly (empty when it passed): a process exit, an unhealthy
 * service, a status outside OK / RESOURCE_EXHAUSTED / DEADLINE_EXCEEDED / CANCELLED, no waiter refused,
 * throughput at 10× load below half the throughput before (a collapse under load), or throughput after
 * the load below 80 % of it (no recovery).
 */
export function overloadProblems(r: OverloadReport, floors = OVERLOAD_FLOORS): string[] {
  const allowed =
    /^((waiter )?(OK|RESOURCE_EXHAUSTED|DEADLINE_EXCEEDED|CANCELLED)|connections closed at once)$/;
  const problems: string[] = [];
  if (r.exits !== 0) problems.push(`${r.exits} process exit(s)`);
  if (!r.healthy) problems.push('not healthy afterwards');
  const stray = Object.keys(r.codes).filter((c) => !allowed.test(c));
  if (stray.length) problems.push(`unexpected answers: ${stray.map((c) => `${c} ${r.codes[c]}`).join(', ')}`);
  if (r.waitersRefused === 0) problems.push('no waiter was refused');
  if (!(r.before > 0)) problems.push('nothing was answered before the load');
  if (r.during < floors.during * r.before)
    problems.push(
      `${Math.round(r.during)} ops/s at 10× load, below ${Math.round(floors.during * 100)} % of ${Math.round(r.before)} before`,
    );
  if (r.after < floors.recovery * r.before)
    problems.push(
      `recovered to ${Math.round(r.after)} ops/s, below ${Math.round(floors.recovery * 100)} % of ${Math.round(r.before)}`,
    );
  return problems.map((p) => `${r.service}: ${p}`);
}

export function formatOverloadTable(reports: OverloadReport[]): string {
  const mb = (kb: number) => `${Math.round(kb / 1024)} MB`;
  return [
    '| service | bench concurrency | ops/s before → at 10× → after | waiters refused at once | codes | healthy | RSS before → peak → after |',
    '|---|---|---|---|---|---|---|',
    ...reports.map(
      (r) =>
        `| ${r.service} | ${r.benchConcurrency} → ${r.benchConcurrency * 10} | ${Math.round(r.before)} → ${Math.round(r.during)} → ${Math.round(r.after)} | ${r.waitersRefused} of ${r.waiters} | ${Object.entries(
          r.codes,
        )
          .map(([c, n]) => `${c} ${n}`)
          .join(
            ', ',
          )} | ${r.healthy ? 'yes' : 'NO'} | ${mb(r.rssBeforeKb)} → ${mb(r.rssPeakKb)} → ${mb(r.rssAfterKb)} |`,
    ),
  ].join('\n');
}
