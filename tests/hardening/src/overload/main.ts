import { overloadDs } from './ds';
import { formatOverloadTable, type OverloadReport, overloadProblems, overloadService } from './run';

const SERVICES = ['name-server', 'ibp-depot', 'tuplespace', 'sharing', 'ds-coordinator'] as const;

/** `pnpm overload [--long] [service…]`: 10× the benchmark's concurrency plus a waiter flood, per service. */
async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const long = args.includes('--long');
  const chosen = args.filter((a) => (SERVICES as readonly string[]).includes(a)) as Array<
    (typeof SERVICES)[number]
  >;
  const reports: OverloadReport[] = [];
  for (const s of chosen.length ? chosen : SERVICES) {
    const options = { seconds: long ? 60 : 6, maxCallsPerClient: 1000, baselineMs: long ? 5000 : 3000 };
    reports.push(s === 'ds-coordinator' ? await overloadDs(options) : await overloadService(s, options));
    console.log(`${s}: done`);
  }
  console.log(formatOverloadTable(reports));
  const problems = reports.flatMap((r) => overloadProblems(r));
  for (const p of problems) console.log(p);
  const ok = problems.length === 0;
  console.log(ok ? 'overload: every service shed load and recovered' : 'overload: FAILED');
  process.exit(ok ? 0 : 1);
}

void main();
