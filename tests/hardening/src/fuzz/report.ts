import type { ServiceFuzzReport } from './run';

const mb = (kb: number) => `${Math.round(kb / 1024)} MB`;

/**
 * Memory. V8 keeps the pages its heap grew into, so resident memory after a run stays near its peak even
 * when nothing leaks; what a leak looks like is growth that goes on. So: the whole run may add at most
 * RSS_GROWTH_LIMIT_KB, and its second half at most a quarter (plus 64 MB of warm-up, for short runs) more than its first half reached.
 */
export const RSS_GROWTH_LIMIT_KB = 192 * 1024;

export function memoryBounded(r: ServiceFuzzReport): boolean {
  return (
    r.rssAfterKb - r.rssBaselineKb <= RSS_GROWTH_LIMIT_KB && r.rssAfterKb <= r.rssMidKb * 1.25 + 64 * 1024
  );
}

export function fuzzPassed(r: ServiceFuzzReport): boolean {
  return (
    r.findings.length === 0 && r.processExits === 0 && r.integrityProblems.length === 0 && memoryBounded(r)
  );
}

export function formatFuzzTable(reports: ServiceFuzzReport[]): string {
  const rows = reports.map((r) =>
    [
      r.service,
      String(r.inputs),
      String(r.pipelined),
      String(r.frameAttacks),
      String(r.rapidResetCloses),
      String(Object.keys(r.perMethod).length),
      String(r.findings.length),
      String(r.processExits),
      `${mb(r.rssBaselineKb)} → ${mb(r.rssMidKb)} → ${mb(r.rssAfterKb)} (peak ${mb(r.rssPeakKb)})${memoryBounded(r) ? '' : ' GROWING'}`,
      r.integrityProblems.length ? r.integrityProblems.slice(0, 2).join('; ') : 'intact',
    ].join(' | '),
  );
  const codes = reports.map(
    (r) =>
      `${r.service}: ${Object.entries(r.codes)
        .sort((a, b) => b[1] - a[1])
        .map(([c, n]) => `${c} ${n}`)
        .join(', ')}`,
  );
  return [
    '| service | inputs | of them pipelined | raw-frame attacks | rapid-reset closes | methods | findings | exits | RSS before → half-way → after | stored data |',
    '|---|---|---|---|---|---|---|---|---|---|',
    ...rows.map((r) => `| ${r} |`),
    '',
    ...codes,
  ].join('\n');
}
