import { type JepsenReport, LONG, runJepsen, SHORT } from './run';

/** What kept a run from passing (empty when it passed). */
export function jepsenProblems(r: JepsenReport): string[] {
  return [
    ...r.register.violations.map((v) => `not linearizable: ${v}`),
    ...r.register.undecided.map((v) => `undecided (checker budget): ${v}`),
    ...r.bank.violations.map((v) => `bank: ${v}`),
    ...(r.exits ? [`${r.exits} sharing node exit(s) nobody asked for`] : []),
  ];
}

export function formatJepsen(r: JepsenReport): string {
  return [
    `register: ${r.register.operations} operations (${r.register.ok} completed, ${r.register.unknown} of unknown outcome), ` +
      `${r.register.violations.length} keys not linearizable`,
    `bank: ${r.bank.transfers} transfers, ${r.bank.conflicts} conflicts, ${r.bank.unknown} unknown, ${r.bank.reads} reads, final total ${r.bank.final}`,
    `faults: ${r.faults.length} (${r.faults.join('; ')})`,
  ].join('\n');
}

/**
 * `pnpm jepsen [--long] [--partition]`: the register and bank workloads on three sharing nodes over a
 * 3-node NATS cluster (R3) while nats-servers and sharing nodes are killed (or, with `--partition`, while
 * one node at a time is cut off from the others by the partition harness); exits 1 on any violation.
 */
async function main(): Promise<void> {
  const options = {
    ...(process.argv.includes('--long') ? LONG : SHORT),
    faults: process.argv.includes('--partition') ? ('partition' as const) : ('kill' as const),
  };
  console.log(
    `jepsen: ${options.seconds} s, ${options.clients} clients per workload, ${options.keys} keys, faults: ${options.faults}`,
  );
  const report = await runJepsen(options, (line) => console.log(line));
  console.log(formatJepsen(report));
  const problems = jepsenProblems(report);
  for (const p of problems) console.log(`PROBLEM ${p}`);
  process.exit(problems.length ? 1 : 0);
}

if (require.main === module) void main();
