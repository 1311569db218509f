import { PrivateNetwork } from './netns';
import { formatPartitionTable, partitionProblems } from './report';
import { LONG, runPartition, SHORT } from './run';

/**
 * `pnpm partition [--long] [--r3]`: the sharing ring on three nats-servers in three network namespaces; cuts
 * one node off (twice: without and with the properties stream), heals, checks nothing acknowledged is
 * lost and prints what each side could do. Needs root. Exits 1 on a lost write or a double win.
 */
async function main(): Promise<void> {
  const options = {
    ...(process.argv.includes('--long') ? LONG : SHORT),
    replicas: process.argv.includes('--r3') ? 3 : 1,
  };
  const why = PrivateNetwork.unavailableReason();
  if (why) {
    console.error(`partition: ${why}; run it as root on Linux`);
    process.exit(2);
  }
  // Ctrl-C or kill: exit through the exit hooks, which stop the servers and remove the namespaces
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(130));
  console.log(
    `partition: ${options.partitionMs / 1000} s per round, the log on ${options.replicas} replica(s)`,
  );
  const report = await runPartition(options, (l) => console.log(l));
  console.log(formatPartitionTable(report));
  const problems = partitionProblems(report, options.healTimeoutMs);
  for (const p of problems) console.log(p);
  if (report.output) console.log(report.output);
  console.log(problems.length ? 'partition: PROBLEMS' : 'partition: nothing acknowledged lost');
  process.exit(problems.length ? 1 : 0);
}

void main();
