import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface Measurement {
  name: string;
  concurrency: number;
  ops: number;
  errors: number;
  seconds: number;
  opsPerSec: number;
  p50Ms: number;
  p99Ms: number;
}

function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
}

/** The p-th percentile of unsorted values. */
export function pct(xs: number[], p: number): number {
  return percentile(
    [...xs].sort((a, b) => a - b),
    p,
  );
}

/** The median of rounds (the upper middle value for an even count). */
export function median(xs: number[]): number {
  return pct(xs, 50);
}

/**
 * Runs `op` from `concurrency` loops for `durationMs` after a warm-up, and reports throughput and
 * latency percentiles. Bounded in time; errors are counted, not thrown.
 */
export async function measure(
  name: string,
  op: (i: number) => Promise<unknown>,
  { concurrency = 64, durationMs = 5000, warmupMs = 1000 } = {},
): Promise<Measurement> {
  let i = 0;
  const run = async (until: number, record: number[] | undefined, errors: { n: number }) => {
    while (performance.now() < until) {
      const t0 = performance.now();
      try {
        await op(i++);
        record?.push(performance.now() - t0);
      } catch {
        errors.n++;
      }
    }
  };
  const warmErrors = { n: 0 };
  const warmUntil = performance.now() + warmupMs;
  await Promise.all(Array.from({ length: concurrency }, () => run(warmUntil, undefined, warmErrors)));
  const latencies: number[] = [];
  const errors = { n: 0 };
  const start = performance.now();
  const until = start + durationMs;
  await Promise.all(Array.from({ length: concurrency }, () => run(until, latencies, errors)));
  const seconds = (performance.now() - start) / 1000;
  const sorted = Float64Array.from(latencies).sort();
  return {
    name,
    concurrency,
    ops: latencies.length,
    errors: errors.n,
    seconds,
    opsPerSec: latencies.length / seconds,
    p50Ms: percentile(sorted, 50),
    p99Ms: percentile(sorted, 99),
  };
}

/** Resident set size of a process, in MB (Linux /proc). */
export function rssMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = /VmRSS:\s+(\d+) kB/.exec(status);
  return m ? Number(m[1]) / 1024 : Number.NaN;
}

export function fmt(n: number, digits = 0): string {
  return Number.isFinite(n)
    ? n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits })
    : '-';
}

export function printMeasurements(rows: Measurement[], baseline: Measurement): void {
  const header = ['benchmark', 'conc', 'ops/s', 'p50 ms', 'p99 ms', 'errors', 'vs baseline'];
  const body = rows.map((m) => [
    m.name,
    String(m.concurrency),
    fmt(m.opsPerSec),
    fmt(m.p50Ms, 3),
    fmt(m.p99Ms, 3),
    String(m.errors),
    `${fmt(m.opsPerSec / baseline.opsPerSec, 2)}×`,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((r) => (r[i] as string).length)));
  const line = (r: string[]) =>
    r.map((c, i) => (i === 0 ? c.padEnd(widths[i] as number) : c.padStart(widths[i] as number))).join('  ');
  console.log(line(header));
  for (const r of body) console.log(line(r));
}

export function writeResults(file: string, data: unknown): string {
  const dir = join(__dirname, '..', 'results');
  mkdirSync(dir, { recursive: true });
  const path = join(dir, file);
  writeFileSync(
    path,
    `${JSON.stringify({ at: new Date().toISOString(), node: process.version, ...(data as object) }, null, 2)}\n`,
  );
  return path;
}
