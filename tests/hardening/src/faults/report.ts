import type { FaultReport } from './run';

const entries = (r: Record<string, number>) =>
  Object.entries(r)
    .map(([k, n]) => `${k} ${n}`)
    .join(', ') || '—';

export function faultsPassed(r: FaultReport): boolean {
  return r.missing.length === 0 && r.kills > 0 && r.acknowledged > 0;
}

export function formatFaultTable(reports: FaultReport[]): string {
  return [
    '| target | kill -9 | writes acknowledged | found | blocked calls across a kill | writer errors while down | longest recovery | peak RSS |',
    '|---|---|---|---|---|---|---|---|',
    ...reports.map(
      (r) =>
        `| ${r.target} | ${r.kills} | ${r.acknowledged} | ${r.found} | ${entries(r.blocked)} | ${entries(r.errors)} | ${(r.maxRecoveryMs / 1000).toFixed(1)} s | ${Math.round(r.peakRssKb / 1024)} MB |`,
    ),
  ].join('\n');
}
