import type { ServiceName } from '../services';
import { faultDs } from './ds';
import { faultsPassed, formatFaultTable } from './report';
import { type FaultOptions, type FaultReport, faultService, faultSharingOnNats } from './run';

const TARGETS = [
  'name-server',
  'ibp-depot',
  'tuplespace',
  'sharing',
  'sharing-nats',
  'ds-coordinator',
] as const;
type Target = (typeof TARGETS)[number];

/**
 * `pnpm faults [--long] [target…]`: runs writers against each service while killing it with SIGKILL and
 * restarting it (in NATS mode: killing one of three nats-servers; for ds: killing server nodes, then the
 * coordinator), then reads back every acknowledged write. Exits 1 when anything acknowledged is missing.
 */
async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const long = args.includes('--long');
  const options: FaultOptions = long
    ? { kills: 20, gapMs: [1000, 4000], concurrency: 8 }
    : { kills: 3, gapMs: [600, 1500], concurrency: 4 };
  const chosen = args.filter((a) => (TARGETS as readonly string[]).includes(a)) as Target[];
  const targets = chosen.length ? chosen : TARGETS;
  console.log(`faults: ${options.kills} kills per target, ${targets.join(', ')}`);
  const reports: FaultReport[] = [];
  const log = (l: string) => console.log(l);
  for (const t of targets) {
    if (t === 'sharing-nats') reports.push(await faultSharingOnNats(options, log));
    else if (t === 'ds-coordinator') reports.push(await faultDs(options, log));
    else reports.push(await faultService(t as Exclude<ServiceName, 'ds-coordinator'>, options, log));
    // each target's line as soon as it is done: a long run stopped half-way keeps what it measured
    console.log(formatFaultTable(reports.slice(-1)).split('\n').slice(-1)[0]);
  }
  console.log(formatFaultTable(reports));
  for (const r of reports) {
    for (const m of r.missing.slice(0, 10)) console.log(`missing in ${r.target}: ${m}`);
    if (r.exits > 0) console.log(`${r.target}: ${r.exits} unexpected process exit(s)`);
    const u = r.readBackUnreachable;
    if (u.calls > 0)
      console.log(
        `${r.target}: the service was unreachable during the read-back (${u.calls} calls retried, from ${u.firstAtMs} to ${u.lastAtMs} ms after it started; last error: ${u.lastError})`,
      );
    // the victim's last output, kept when something went wrong
    if (r.output) console.log(`--- ${r.target}: last output\n${r.output}\n---`);
  }
  const ok = reports.every(faultsPassed);
  console.log(ok ? 'faults: every acknowledged write found' : 'faults: LOST WRITES');
  process.exit(ok ? 0 : 1);
}

void main();
