import { SharedEvents, SharedProperties, SharingConnection } from '@backplane/sharing-client';
import { codeOf } from '../codes';

export type Phase = 'before' | 'during' | 'after';
export const PHASES: readonly Phase[] = ['before', 'during', 'after'];

/** The deadline of a put, get, compare-and-set or publish. */
export const CALL_MS = 2000;
/**
 * List's deadline. A List reads the stream's subject index under the prefix's last '.', which for keys
 * like these ('/'-separated) is the whole bucket: about 600 ms per page at 115,000 keys.
 */
export const LIST_MS = 5000;
const deadline = (ms = CALL_MS) => ({ deadline: new Date(Date.now() + ms) });

/** Per phase: calls acknowledged, failures by status code, and the longest a failing call took. */
export interface CallTally {
  acked: number;
  failed: Record<string, number>;
  slowestFailureMs: number;
}

const emptyTally = (): CallTally => ({ acked: 0, failed: {}, slowestFailureMs: 0 });

/**
 * The traffic of one partition round, through one node per client (a connection pinned to a node never
 * fails over, so each node's answers stay its own): puts of fresh keys, compare-and-set increments of one
 * shared counter, and events published on every node to subscribers on every node.
 */
export class RoundTraffic {
  phase: Phase = 'before';
  private stopped = false;
  private readonly loops: Promise<void>[] = [];
  private readonly connections: SharingConnection[] = [];
  private readonly props: SharedProperties[];
  private readonly events: SharedEvents[];
  /** Every acknowledged put: key → value. */
  readonly acked = new Map<string, string>();
  /** puts[node][phase] */
  readonly puts: Array<Record<Phase, CallTally>>;
  /** lists[node][phase]: a List of the round's keys every half second (it needs the meta leader). */
  readonly lists: Array<Record<Phase, CallTally>>;
  /** Counter values written by successful compare-and-sets (each must be unique). */
  readonly casWritten: number[] = [];
  /** cas[node][phase] */
  readonly cas: Array<Record<Phase, CallTally>>;
  /** Events published per node and phase; delivered[publisher][subscriber][phase of the publish]. */
  readonly published: Array<Record<Phase, number>>;
  readonly delivered: Array<Array<Record<Phase, number>>>;
  /** late[publisher][subscriber]: events published during the partition that arrived only after the heal. */
  readonly late: number[][];
  /** The newest event each subscriber has from each publisher (sequence numbers). */
  private readonly newest: number[][];
  /** The next sequence number each publisher will use. */
  private readonly nextSeq: number[];

  constructor(
    private readonly addresses: string[],
    private readonly round: string,
  ) {
    const n = addresses.length;
    const perPhase = <T>(make: () => T) => ({ before: make(), during: make(), after: make() });
    this.connections = addresses.map((a) => new SharingConnection(a));
    this.props = this.connections.map((c) => new SharedProperties(c));
    this.events = this.connections.map((c) => new SharedEvents(c));
    this.puts = addresses.map(() => perPhase(emptyTally));
    this.cas = addresses.map(() => perPhase(emptyTally));
    this.lists = addresses.map(() => perPhase(emptyTally));
    this.published = addresses.map(() => perPhase(() => 0));
    this.delivered = addresses.map(() => addresses.map(() => perPhase(() => 0)));
    this.nextSeq = addresses.map(() => 0);
    this.late = addresses.map(() => addresses.map(() => 0));
    this.newest = Array.from({ length: n }, () => Array.from({ length: n }, () => -1));
  }

  get counterKey(): string {
    return `partition/${this.round}/counter`;
  }

  get topic(): string {
    return `partition.${this.round}`;
  }

  /** Subscribes on every node, then starts the writers and publishers. */
  async start(): Promise<void> {
    await Promise.all(
      this.events.map((ev, sub) =>
        ev.subscribe(this.topic, (_se, _t, value) => {
          const [p, s, phase] = value.split(':') as [string, string, Phase];
          const pub = Number(p);
          const seq = Number(s);
          const row = this.delivered[pub]?.[sub];
          if (!row || !(phase in row)) return;
          row[phase] += 1;
          if (phase === 'during' && this.phase === 'after')
            (this.late[pub] as number[])[sub] = ((this.late[pub] as number[])[sub] ?? 0) + 1;
          const newest = this.newest[sub] as number[];
          newest[pub] = Math.max(newest[pub] ?? -1, seq);
        }),
      ),
    );
    this.addresses.forEach((_, node) => {
      this.loops.push(this.putLoop(node), this.casLoop(node), this.publishLoop(node), this.listLoop(node));
    });
  }

  private async putLoop(node: number): Promise<void> {
    const props = this.props[node] as SharedProperties;
    for (let i = 0; !this.stopped; i++) {
      const key = `partition/${this.round}/n${node}/${i}`;
      const value = `v${i}`;
      await this.tally(this.puts[node] as Record<Phase, CallTally>, async () => {
        await props.put(key, value, deadline());
        this.acked.set(key, value);
      });
      await pause(2); // a steady stream, not a flood: the run is about partitions, not throughput
    }
  }

  /** Reads the counter and sets it one higher if nobody else did in between. */
  private async casLoop(node: number): Promise<void> {
    const props = this.props[node] as SharedProperties;
    while (!this.stopped) {
      await this.tally(this.cas[node] as Record<Phase, CallTally>, async () => {
        const cur = await props.get(this.counterKey, deadline());
        const next = cur ? Number(cur.value.toString()) + 1 : 1;
        try {
          await props.compareAndSet(this.counterKey, cur?.revision ?? 0, String(next), deadline());
          this.casWritten.push(next);
        } catch (err) {
          if (codeOf(err) !== 'FAILED_PRECONDITION') throw err; // lost the race: not a failure
        }
      });
      await pause(20);
    }
  }

  private async listLoop(node: number): Promise<void> {
    while (!this.stopped) {
      await this.tally(this.lists[node] as Record<Phase, CallTally>, () => this.listOnce(node));
      await pause(500);
    }
  }

  private async listOnce(node: number, ms = LIST_MS): Promise<void> {
    const props = this.props[node] as SharedProperties;
    for await (const _ of props.list(`partition/${this.round}/`, {
      ...deadline(ms),
      pageSize: 1,
      keysOnly: true,
    }))
      break;
  }

  private async publishLoop(node: number): Promise<void> {
    const events = this.events[node] as SharedEvents;
    for (let seq = 0; !this.stopped; seq++) {
      this.nextSeq[node] = seq;
      const phase = this.phase;
      try {
        await events.publish(this.topic, `${node}:${seq}:${phase}`, deadline());
        (this.published[node] as Record<Phase, number>)[phase] += 1;
      } catch {
        // a failed publish counts as not published
      }
      await pause(100);
    }
  }

  private async tally(t: Record<Phase, CallTally>, call: () => Promise<void>): Promise<void> {
    const phase = this.phase;
    const started = Date.now();
    try {
      await call();
      t[phase].acked += 1;
    } catch (err) {
      const code = codeOf(err);
      t[phase].failed[code] = (t[phase].failed[code] ?? 0) + 1;
      t[phase].slowestFailureMs = Math.max(t[phase].slowestFailureMs, Date.now() - started);
      await pause(50); // a failing node answers at once: do not spin
    }
  }

  /** Sequence number of the newest event `sub` has from `pub`. */
  newestSeen(sub: number, pub: number): number {
    return this.newest[sub]?.[pub] ?? -1;
  }

  /** The sequence number `pub` publishes next: events from now on have at least this number. */
  sequenceNow(pub: number): number {
    return (this.nextSeq[pub] as number) + 1;
  }

  /** Of the `probes` ("put 0", "List 2", …), those that fail (a put within 1 s, a List within 5 s). */
  async failingProbes(probes: string[]): Promise<string[]> {
    const ok = await Promise.all(
      probes.map((probe) => {
        const [kind, n] = probe.split(' ') as [string, string];
        const node = Number(n);
        const call =
          kind === 'put'
            ? (this.props[node] as SharedProperties).put(
                `partition/${this.round}/probe/${node}`,
                'x',
                deadline(1000),
              )
            : this.listOnce(node);
        return call.then(
          () => true,
          () => false,
        );
      }),
    );
    return probes.filter((_, k) => !ok[k]);
  }

  /** How many nodes each node's Nodes answer lists (0: the call failed). */
  async ringSizes(): Promise<number[]> {
    return Promise.all(
      this.addresses.map(async (a) => {
        const c = new SharingConnection(a);
        try {
          return (await c.refresh(deadline(3000))).length;
        } catch {
          return 0;
        } finally {
          c.close();
        }
      }),
    );
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.loops);
  }

  /**
   * Reads the round's keys back through every node (one paged List each): acknowledged puts that are
   * missing or different, per node, and the counter as each node sees it.
   */
  async verify(): Promise<{ missing: string[]; counter: number[] }> {
    const missing: string[] = [];
    const counter: number[] = [];
    for (const [node, props] of this.props.entries()) {
      const seen = await this.readAll(props);
      for (const [key, value] of this.acked) {
        const got = seen.get(key);
        if (got !== value)
          missing.push(`via node ${node}: ${key} ${got === undefined ? 'gone' : 'different'}`);
      }
      counter.push(Number(seen.get(this.counterKey) ?? 0));
    }
    return { missing, counter };
  }

  /** The round's keys and values through one node, retrying while the node is unavailable (30 s at most). */
  private async readAll(props: SharedProperties): Promise<Map<string, string>> {
    const until = Date.now() + 30_000;
    for (;;) {
      const seen = new Map<string, string>();
      try {
        for await (const p of props.list(`partition/${this.round}/`, {
          ...deadline(300_000),
          pageSize: 1000,
        }))
          seen.set(p.key, p.value.toString());
        return seen;
      } catch (err) {
        if (codeOf(err) !== 'UNAVAILABLE' || Date.now() > until) throw err;
        await pause(250);
      }
    }
  }

  close(): void {
    for (const c of this.connections) c.close();
  }
}

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));
