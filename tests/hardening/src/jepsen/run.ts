import { type NatsCluster, startNatsCluster, tempDir } from '@backplane/runtime/testing';
import { SharedProperties, SharingConnection, TransactionConflict } from '@backplane/sharing-client';
import { PartitionCluster } from '../partition/cluster';
import { ServiceProcess } from '../services';
import {
  boundObservedWrites,
  linearizable,
  type Operation,
  type RegisterInput,
  type RegisterOutput,
  registerModel,
} from './checker';

export interface JepsenOptions {
  /** How long the workloads run under faults. */
  seconds: number;
  /** Clients of each workload. */
  clients: number;
  /** Keys of the register workload (each checked on its own: linearizability is local). */
  keys: number;
  /** Pause between two faults, ms. */
  faultGapMs: [number, number];
  /**
   * What goes wrong: `kill` — nats-servers and sharing nodes killed -9 and restarted; `partition` — the
   * partition harness (each node in its own network namespace, needs root) cuts one node off from the
   * other two for 2 to 6 s, then heals.
   */
  faults?: 'kill' | 'partition';
}

/**
 * Short mode: 12 keys. With 6, a key's history reached 1,800 operations (71 of unknown outcome) once the
 * client's Commit went through the call pipeline, and the checker gave up on it (its budget; an
 * undecided key fails the run). Linearizability is checked per key, so more keys check as much.
 */
export const SHORT: JepsenOptions = { seconds: 25, clients: 4, keys: 12, faultGapMs: [1500, 3000] };
export const LONG: JepsenOptions = { seconds: 300, clients: 8, keys: 16, faultGapMs: [2000, 6000] };

export interface JepsenReport {
  register: {
    operations: number;
    ok: number;
    unknown: number;
    /** Keys whose history is not linearizable (with how many of its operations could be ordered). */
    violations: string[];
    /** Keys the checker gave up on (too many orders to try). */
    undecided: string[];
  };
  bank: {
    transfers: number;
    conflicts: number;
    unknown: number;
    reads: number;
    /** Reads whose total was not 500 or that showed a negative balance, and the final read if so. */
    violations: string[];
    final: number;
  };
  faults: string[];
  /** Sharing node processes that exited without being killed. */
  exits: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const between = ([lo, hi]: [number, number]) => lo + Math.random() * (hi - lo);
const code = (err: unknown) => (err as { code?: number }).code;
const reason = (err: unknown) => (err as { reason?: string }).reason;

/** A write that certainly changed nothing (refused before the log, or by it). */
const definiteFailure = (err: unknown) => code(err) === 3 || reason(err) === 'NOT_APPENDED';

/**
 * Three sharing nodes (real processes) on a 3-node NATS cluster, their log on three replicas; a register
 * workload and a bank workload run through all three nodes while nats-servers and sharing nodes are killed
 * -9 and restarted. Then: is every key's history linearizable, and did every bank read total 500?
 */
export async function runJepsen(options: JepsenOptions, log: (line: string) => void = () => undefined) {
  const env = options.faults === 'partition' ? await partitionEnv() : await killEnv();
  const report: JepsenReport = {
    register: { operations: 0, ok: 0, unknown: 0, violations: [], undecided: [] },
    bank: { transfers: 0, conflicts: 0, unknown: 0, reads: 0, violations: [], final: 0 },
    faults: [],
    exits: 0,
  };
  try {
    // the bank's five accounts of 100
    const setup = new SharingConnection(env.bootstrap(0));
    const t = new SharedProperties(setup).transaction();
    for (let a = 0; a < 5; a++) t.put(`bank.a${a}`, '100');
    await t.commit({ timeoutMs: 30_000 });
    setup.close();

    const until = Date.now() + options.seconds * 1000;
    const histories = new Map<string, Array<Operation<RegisterInput, RegisterOutput>>>();
    const workloads = [
      ...Array.from({ length: options.clients }, (_, c) =>
        registerClient(c, env.bootstrap(c % 3), options.keys, until, histories, report),
      ),
      ...Array.from({ length: options.clients }, (_, c) => bankClient(env.bootstrap(c % 3), until, report)),
      bankReader(env.bootstrap(1), until, report),
    ];
    const faults = (async () => {
      for (let n = 0; Date.now() < until - 3000; n++) {
        await sleep(between(options.faultGapMs));
        if (Date.now() >= until - 3000) break;
        report.faults.push(await env.fault(n));
        log(`${report.faults.at(-1)}, then healed`);
      }
    })();
    await Promise.all([...workloads, faults]);

    // healed: the final totals, through a node the workloads all used
    const check = new SharingConnection(env.bootstrap(2));
    const props = new SharedProperties(check);
    for (let attempt = 0; ; attempt++) {
      try {
        let total = 0;
        for await (const p of props.list('bank.', { timeoutMs: 10_000 })) total += Number(p.text());
        report.bank.final = total;
        break;
      } catch (err) {
        if (attempt >= 20) throw err;
        await sleep(500);
      }
    }
    check.close();
    if (report.bank.final !== 500) report.bank.violations.push(`final total ${report.bank.final}`);

    for (const [key, history] of histories) {
      const r = linearizable(boundObservedWrites(history), registerModel);
      if (r.exhausted) report.register.undecided.push(`${key} (${history.length} operations)`);
      else if (!r.ok)
        report.register.violations.push(
          `${key}: ${r.linearized} of ${history.length} operations could be ordered`,
        );
    }
    report.exits = env.exits();
  } finally {
    await env.stop();
  }
  return report;
}

/** Three sharing nodes on a 3-node NATS cluster (the log on three replicas), and how to hurt them. */
interface JepsenEnv {
  /** A bootstrap list for clients, `first` node first (clients fail over to the others). */
  bootstrap(first: number): string;
  /** The n-th fault: done and healed when it resolves; says what it was. */
  fault(n: number): Promise<string>;
  /** Sharing node exits nobody asked for. */
  exits(): number;
  stop(): Promise<void>;
}

const bootstrapOf = (addresses: string[], first: number) =>
  [first, ...[0, 1, 2].filter((j) => j !== first)].map((j) => addresses[j]).join(',');

/** Processes on loopback; faults kill -9 a nats-server or a sharing node and restart it. */
async function killEnv(): Promise<JepsenEnv> {
  const cluster: NatsCluster = await startNatsCluster(3);
  const dirs = [0, 1, 2].map((i) => tempDir(`jepsen-sharing-${i}-`));
  const nodes: ServiceProcess[] = [];
  const stop = async () => {
    for (const n of nodes) await n.stop().catch(() => undefined);
    await cluster.stop();
    for (const d of dirs) d.remove();
  };
  try {
    for (const [i, dir] of dirs.entries())
      nodes.push(
        await ServiceProcess.start('sharing', dir.path, {
          // each node prefers its own nats-server, and fails over to the others
          BACKPLANE_NATS_URL: [i, ...[0, 1, 2].filter((j) => j !== i)]
            .map((j) => cluster.servers[j]?.url)
            .join(','),
          BACKPLANE_SHARING_REPLICAS: '3',
        }),
      );
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    bootstrap: (first) =>
      bootstrapOf(
        nodes.map((n) => n.address),
        first,
      ),
    fault: async (n) => {
      const i = Math.floor(Math.random() * 3);
      if (n % 2 === 0) {
        const server = cluster.servers[i] as NatsCluster['servers'][0];
        await server.kill();
        await sleep(500 + Math.random() * 1500);
        await server.restart();
        return `nats-server ${i} killed`;
      }
      await (nodes[i] as ServiceProcess).crash();
      await sleep(300 + Math.random() * 700);
      await (nodes[i] as ServiceProcess).restart();
      return `sharing node ${i} killed`;
    },
    exits: () => nodes.reduce((n, p) => n + p.unexpectedExits, 0),
    stop,
  };
}

/**
 * The partition harness: each node (its nats-server and its sharing node, connected to that server only)
 * in its own network namespace; a fault cuts one node off from the other two for 2 to 6 s, then heals.
 */
async function partitionEnv(): Promise<JepsenEnv> {
  const cluster = await PartitionCluster.start(3, 3);
  const addresses = [0, 1, 2].map((i) => cluster.sharingAddress(i));
  return {
    bootstrap: (first) => bootstrapOf(addresses, first),
    fault: async () => {
      const i = Math.floor(Math.random() * 3);
      const ms = 2000 + Math.random() * 4000;
      cluster.net.partition([i]);
      await sleep(ms);
      cluster.net.heal();
      return `node ${i} cut off for ${(ms / 1000).toFixed(1)} s`;
    },
    exits: () => cluster.exits.length,
    stop: () => cluster.stop(),
  };
}

/** Reads, writes (unique values) and compare-and-sets on a few keys, each recorded with its times. */
async function registerClient(
  c: number,
  bootstrap: string,
  keys: number,
  until: number,
  histories: Map<string, Array<Operation<RegisterInput, RegisterOutput>>>,
  report: JepsenReport,
): Promise<void> {
  const conn = new SharingConnection(bootstrap);
  const props = new SharedProperties(conn);
  const record = (key: string, op: Operation<RegisterInput, RegisterOutput>) => {
    const list = histories.get(key) ?? [];
    list.push(op);
    histories.set(key, list);
    report.register.operations++;
    if (op.ret === Number.POSITIVE_INFINITY) report.register.unknown++;
    else report.register.ok++;
  };
  try {
    for (let n = 0; Date.now() < until; n++) {
      const key = `reg.k${Math.floor(Math.random() * keys)}`;
      const roll = Math.random();
      const value = `c${c}-${n}`;
      const call = performance.now();
      if (roll < 0.4) {
        try {
          const got = await props.get(key, { timeoutMs: 3000 });
          record(key, {
            call,
            ret: performance.now(),
            input: { f: 'read' },
            output: { value: got?.text() ?? null },
          });
        } catch {
          // a read that failed changed nothing
        }
      } else if (roll < 0.7) {
        try {
          await props.put(key, value, { timeoutMs: 3000 });
          record(key, { call, ret: performance.now(), input: { f: 'write', value }, output: undefined });
        } catch (err) {
          if (!definiteFailure(err))
            record(key, {
              call,
              ret: Number.POSITIVE_INFINITY,
              input: { f: 'write', value },
              output: undefined,
            });
        }
      } else {
        // read, then compare-and-set on what was read
        let seen: { value: string | null; revision: number };
        try {
          const got = await props.get(key, { timeoutMs: 3000 });
          seen = { value: got?.text() ?? null, revision: got?.revision ?? 0 };
          record(key, { call, ret: performance.now(), input: { f: 'read' }, output: { value: seen.value } });
        } catch {
          continue;
        }
        const casCall = performance.now();
        const input: RegisterInput = { f: 'cas', expect: seen.value, value };
        try {
          await props.compareAndSet(key, seen.revision, value, { timeoutMs: 3000 });
          record(key, { call: casCall, ret: performance.now(), input, output: { ok: true } });
        } catch (err) {
          if (code(err) === 9 && reason(err) === 'REVISION_MISMATCH')
            record(key, { call: casCall, ret: performance.now(), input, output: { ok: false } });
          else if (!definiteFailure(err))
            record(key, { call: casCall, ret: Number.POSITIVE_INFINITY, input, output: undefined });
        }
      }
    }
  } finally {
    conn.close();
  }
}

/** Transfers between the five accounts by multi-key transactions (a balance never goes below 0). */
async function bankClient(bootstrap: string, until: number, report: JepsenReport): Promise<void> {
  const conn = new SharingConnection(bootstrap);
  const props = new SharedProperties(conn);
  try {
    while (Date.now() < until) {
      const from = Math.floor(Math.random() * 5);
      const to = (from + 1 + Math.floor(Math.random() * 4)) % 5;
      const amount = 1 + Math.floor(Math.random() * 10);
      const t = props.transaction();
      try {
        const a = Number((await t.get(`bank.a${from}`, { timeoutMs: 3000 }))?.text() ?? 0);
        const b = Number((await t.get(`bank.a${to}`, { timeoutMs: 3000 }))?.text() ?? 0);
        if (a < amount) continue;
        t.put(`bank.a${from}`, String(a - amount)).put(`bank.a${to}`, String(b + amount));
        await t.commit({ timeoutMs: 3000 });
        report.bank.transfers++;
      } catch (err) {
        if (err instanceof TransactionConflict) report.bank.conflicts++;
        else if (reason(err) === 'OUTCOME_UNKNOWN') report.bank.unknown++;
        await sleep(20);
      }
    }
  } finally {
    conn.close();
  }
}

/** Reads every account at once (one List: one state), linearizably, every 100 ms. */
async function bankReader(bootstrap: string, until: number, report: JepsenReport): Promise<void> {
  const conn = new SharingConnection(bootstrap);
  const props = new SharedProperties(conn);
  try {
    while (Date.now() < until) {
      try {
        const balances: number[] = [];
        for await (const p of props.list('bank.', { timeoutMs: 3000 })) balances.push(Number(p.text()));
        report.bank.reads++;
        const total = balances.reduce((s, v) => s + v, 0);
        if (balances.length !== 5 || total !== 500 || balances.some((v) => v < 0))
          report.bank.violations.push(`read ${JSON.stringify(balances)} (total ${total})`);
      } catch {
        // unavailable for a moment: the next read
      }
      await sleep(100);
    }
  } finally {
    conn.close();
  }
}
