import type { PartitionReport, RoundReport } from './run';
import type { CallTally, Phase } from './traffic';

const codes = (t: CallTally) =>
  Object.entries(t.failed)
    .map(([k, n]) => `${n} ${k}`)
    .join(', ');

const calls = (t: CallTally) => {
  const failed = codes(t);
  return failed
    ? `${t.acked} ok, ${failed} (≤ ${(t.slowestFailureMs / 1000).toFixed(1)} s)`
    : `${t.acked} ok`;
};

const side = (r: RoundReport, node: number) => (node === r.isolated ? 'minority' : 'majority');

/**
 * Events published during the partition by one side's nodes to another side's subscribers, as
 * "got/sent", with how many of them arrived only after the heal.
 */
function crossing(r: RoundReport, from: 'minority' | 'majority', to: 'minority' | 'majority'): string {
  let sent = 0;
  let got = 0;
  let late = 0;
  for (let pub = 0; pub < r.published.length; pub++) {
    if (side(r, pub) !== from) continue;
    for (let sub = 0; sub < r.published.length; sub++) {
      if (side(r, sub) !== to) continue;
      sent += (r.published[pub] as Record<Phase, number>).during;
      got += r.delivered[pub]?.[sub]?.during ?? 0;
      late += r.late[pub]?.[sub] ?? 0;
    }
  }
  return late ? `${got}/${sent} (${late} after the heal)` : `${got}/${sent}`;
}

/** The per-round table RELIABILITY.md shows: what each side could do during the partition. */
export function formatPartitionTable(report: PartitionReport): string {
  const lines: string[] = [];
  for (const r of report.rounds) {
    lines.push(
      `### ${r.name} (node ${r.isolated} cut off; properties stream ${r.name.includes('leading') ? 'led by' : 'on'} node ${r.streamHost})`,
      '',
      `JetStream meta leader ${r.metaLeaderBefore || 'none'} before; during, as each node saw it: ${r.metaLeaderDuring.map((l) => l || 'none').join(', ')}. ` +
        `Ring size each node reported during: ${r.ringDuring.join(', ')}.`,
      '',
      '| node | side | puts during | puts after the heal | compare-and-set during | List during |',
      '|---|---|---|---|---|---|',
      ...r.puts.map(
        (p, node) =>
          `| ${node} | ${side(r, node)} | ${calls(p.during)} | ${calls(p.after)} | ${calls((r.cas[node] as Record<Phase, CallTally>).during)} | ${calls((r.lists[node] as Record<Phase, CallTally>).during)} |`,
      ),
      '',
      `Events published during the partition, delivered (got/sent): majority → majority ${crossing(r, 'majority', 'majority')}, ` +
        `minority → minority ${crossing(r, 'minority', 'minority')}, majority → minority ${crossing(r, 'majority', 'minority')}, ` +
        `minority → majority ${crossing(r, 'minority', 'majority')}.`,
      '',
      `After the heal: recovered in ${(r.recoveryMs / 1000).toFixed(1)} s; ${r.acknowledged} puts acknowledged, ` +
        `${r.missing.length} missing; ${r.casSuccesses} compare-and-sets won, ${r.casDuplicates.length} duplicates, ` +
        `counter read through each node: ${r.counterAfter.join(', ')}.`,
      '',
    );
  }
  return lines.join('\n');
}

/** The pass criteria: nothing acknowledged lost, no two winners of one compare-and-set, no exits, recovery. */
export function partitionProblems(report: PartitionReport, healTimeoutMs: number): string[] {
  const problems = report.exits.map((e) => `exit: ${e}`);
  for (const r of report.rounds) {
    problems.push(...r.missing.slice(0, 10).map((m) => `${r.name}: lost ${m}`));
    if (r.casDuplicates.length) problems.push(`${r.name}: compare-and-set won twice for ${r.casDuplicates}`);
    if (r.unrecovered)
      problems.push(`${r.name}: after ${healTimeoutMs} ms still waiting for ${r.unrecovered}`);
    const counter = Math.max(...r.counterAfter);
    if (r.counterAfter.some((c) => c !== counter)) problems.push(`${r.name}: nodes disagree on the counter`);
    if (counter < r.casSuccesses) problems.push(`${r.name}: counter ${counter} < ${r.casSuccesses} won`);
  }
  return problems;
}
