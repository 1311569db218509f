import { setTimeout as sleep } from 'node:timers/promises';
import { type NatsCluster, startNatsCluster, tempDir } from '@backplane/runtime/testing';
import { codeOf } from '../codes';
import { type ServiceName, ServiceProcess } from '../services';
import { noneUnreachable, ReadBack, type Unreachable } from './readback';
import { sharing, type Workload, workloadFor } from './workloads';

export interface FaultOptions {
  /** kill -9s per service. */
  kills: number;
  /** Random pause between kills, ms. */
  gapMs: [number, number];
  /** Writers running at once. */
  concurrency: number;
}

export interface FaultReport {
  target: string;
  kills: number;
  acknowledged: number;
  found: number;
  missing: string[];
  /** How blocked calls ended or resumed across the kills (e.g. UNAVAILABLE 3). */
  blocked: Record<string, number>;
  /** Errors the writers saw while the service was down, by code. */
  errors: Record<string, number>;
  /** Longest time from a kill until the service answered again, ms. */
  maxRecoveryMs: number;
  peakRssKb: number;
  /** Times the service exited by itself (a crash), and its last output when it did or writes were missing. */
  exits: number;
  output?: string;
  /** Read-back calls that found the service unreachable and were retried (see ReadBack). */
  readBackUnreachable: Unreachable;
}

/** A report with nothing counted yet. */
export function emptyFaultReport(target: string): FaultReport {
  return {
    target,
    kills: 0,
    acknowledged: 0,
    found: 0,
    missing: [],
    blocked: {},
    errors: {},
    maxRecoveryMs: 0,
    peakRssKb: 0,
    exits: 0,
    readBackUnreachable: noneUnreachable(),
  };
}

const between = ([a, b]: [number, number]) => a + Math.random() * (b - a);

/** What the run kills: a service process, or one nats-server of three under a sharing node. */
interface Victim {
  kill(round: number): Promise<void>;
  restart(round: number): Promise<void>;
  peakRssKb(): number;
  /** Exits nobody asked for, and the process's last output. */
  exits(): number;
  output(): string;
  stop(): Promise<void>;
}

/** Writers run all the time; a killer crashes the victim `kills` times; then every acknowledged write is read. */
export async function runFaults(
  label: string,
  victim: Victim,
  workload: Workload,
  options: FaultOptions,
  log: (line: string) => void = () => undefined,
): Promise<FaultReport> {
  const report = emptyFaultReport(label);
  let stop = false;
  let next = 0;
  let lastAck = Date.now();
  const writer = async () => {
    while (!stop) {
      const i = next;
      next += 1;
      try {
        await workload.step(i);
        lastAck = Date.now();
      } catch (err) {
        const code = codeOf(err);
        report.errors[code] = (report.errors[code] ?? 0) + 1;
        await sleep(50);
      }
    }
  };
  const writers = Array.from({ length: options.concurrency }, writer);
  try {
    for (let round = 0; round < options.kills; round += 1) {
      await sleep(between(options.gapMs));
      const blocked = workload.blocked?.().catch((e: Error) => `probe failed: ${e.message}`);
      await sleep(300);
      const killedAt = Date.now();
      await victim.kill(round);
      report.kills += 1;
      await sleep(100);
      await victim.restart(round);
      // recovered: the first acknowledged write after the kill
      while (lastAck < killedAt && Date.now() - killedAt < 60_000) await sleep(20);
      report.maxRecoveryMs = Math.max(report.maxRecoveryMs, Date.now() - killedAt);
      if (blocked) {
        const how = await blocked;
        report.blocked[how] = (report.blocked[how] ?? 0) + 1;
      }
      log(`${label}: kill ${round + 1}/${options.kills}, ${workload.acknowledged()} writes acknowledged`);
    }
    await sleep(500);
  } finally {
    stop = true;
    await Promise.all(writers);
  }
  report.acknowledged = workload.acknowledged();
  const rb = new ReadBack();
  report.missing = await workload.verify(rb);
  report.readBackUnreachable = rb.unreachable;
  report.found = report.acknowledged - report.missing.length;
  report.peakRssKb = victim.peakRssKb();
  report.exits = victim.exits();
  if (report.exits > 0 || report.missing.length > 0 || rb.unreachable.calls > 0)
    report.output = victim.output().slice(-3000);
  await workload.close();
  await victim.stop();
  return report;
}

/** One service, killed with SIGKILL and restarted on the same port and data directory. */
export async function faultService(
  name: Exclude<ServiceName, 'ds-coordinator'>,
  options: FaultOptions,
  log?: (line: string) => void,
): Promise<FaultReport> {
  const dir = tempDir(`faults-${name}-`);
  const proc = await ServiceProcess.start(name, dir.path);
  const victim: Victim = {
    kill: () => proc.crash(),
    restart: () => proc.restart(),
    peakRssKb: () => proc.peakRssKb(),
    exits: () => proc.unexpectedExits,
    output: () => proc.output(),
    stop: async () => {
      await proc.stop();
      dir.remove();
    },
  };
  return runFaults(name, victim, workloadFor(name, proc.address), options, log);
}

/**
 * The sharing service in NATS mode (its properties' log a JetStream stream, events on NATS) on a
 * three-server cluster with the log on three replicas (nats-server 2.10); each round kills a different
 * nats-server, the stream's leader among them.
 */
export async function faultSharingOnNats(
  options: FaultOptions,
  log?: (line: string) => void,
): Promise<FaultReport> {
  const cluster: NatsCluster = await startNatsCluster(3);
  const dir = tempDir('faults-sharing-nats-');
  const proc = await ServiceProcess.start('sharing', dir.path, {
    BACKPLANE_NATS_URL: cluster.urls,
    BACKPLANE_SHARING_REPLICAS: '3',
  });
  const server = (round: number) =>
    cluster.servers[round % cluster.servers.length] as NatsCluster['servers'][0];
  const victim: Victim = {
    kill: (round) => server(round).kill(),
    restart: (round) => server(round).restart(),
    peakRssKb: () => proc.peakRssKb(),
    exits: () => proc.unexpectedExits,
    output: () => proc.output(),
    stop: async () => {
      await proc.stop();
      await cluster.stop();
      dir.remove();
    },
  };
  return runFaults(
    'sharing on a 3-server NATS cluster, log R3 (nats-server kill -9)',
    victim,
    sharing(proc.address),
    options,
    log,
  );
}
