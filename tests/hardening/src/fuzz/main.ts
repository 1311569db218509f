import { tempDir } from '@backplane/runtime/testing';
import { SERVICE_NAMES, type ServiceName, ServiceProcess } from '../services';
import { formatFuzzTable, fuzzPassed } from './report';
import { fuzzService, type ServiceFuzzReport } from './run';

/**
 * `pnpm fuzz [--long] [--seed N] [--seconds S] [service…]`: starts each service as its own process,
 * fuzzes it, checks it, prints a table and exits 1 on any finding.
 */
async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const value = (flag: string) => {
    const i = args.indexOf(flag);
    return i >= 0 ? args[i + 1] : undefined;
  };
  const long = args.includes('--long');
  const seed = Number(value('--seed') ?? Date.now() % 1_000_000);
  const seconds = Number(value('--seconds') ?? (long ? 120 : 12));
  const concurrency = Number(value('--concurrency') ?? 16);
  const chosen = args.filter((a) => (SERVICE_NAMES as readonly string[]).includes(a)) as ServiceName[];
  const services = chosen.length ? chosen : SERVICE_NAMES;
  console.log(`fuzz: seed ${seed}, ${seconds} s per service, ${services.join(', ')}`);
  const reports: ServiceFuzzReport[] = [];
  for (const name of services) {
    const dir = tempDir(`fuzz-${name}-`);
    const target = await ServiceProcess.start(name, dir.path);
    try {
      reports.push(
        await fuzzService(target, { seed, durationMs: seconds * 1000, concurrency }, (l) => console.log(l)),
      );
    } finally {
      await target.stop();
      dir.remove();
    }
  }
  console.log(formatFuzzTable(reports));
  for (const r of reports)
    for (const f of r.findings) console.log(`finding ${r.service} ${f.method}: ${f.code} ${f.details}`);
  const ok = reports.every(fuzzPassed);
  console.log(ok ? 'fuzz: no findings' : `fuzz: FINDINGS (replay with --seed ${seed})`);
  process.exit(ok ? 0 : 1);
}

void main();
