import { type Consistency, Replica, type ReplicatedLog } from '@backplane/replicated';
import { AsyncQueue, BackplaneError, type Logger, type NatsLink, silentLogger } from '@backplane/runtime';
import { type PropertiesCommand, propertiesCodec } from './commands';
import {
  CHANGE_BYTES,
  type Change,
  type CommitResult,
  type Entry,
  type PropertiesEngine,
  type PutOptions,
  revisionMismatch,
  type Transaction,
  type WatchItem,
  type WatchOptions,
  watchCovers,
} from './engine';
import { type HistoryLimits, PropertiesMachine, type PropertiesResult } from './properties-machine';

export interface ReplicatedPropertiesOptions {
  kind: 'embedded' | 'nats';
  log: ReplicatedLog;
  /** The NATS connection's state, on the distributed engine: calls fail fast while JetStream is away. */
  link?: NatsLink;
  history?: Partial<HistoryLimits>;
  logger?: Logger;
  /** How often the node looks for keys whose time has passed (and proposes their expiry). */
  reapEveryMs?: number;
  /** Applied entries between snapshots. */
  snapshotEvery?: number;
  /** Most changes a watcher may fall behind by before its stream ends (RESOURCE_EXHAUSTED). */
  watchQueue?: number;
}

interface Watcher {
  key: string;
  prefix: boolean;
  queue: AsyncQueue<Change>;
}

/**
 * SharedProperties on a replicated state machine (PropertiesMachine): every write is a command in the
 * log, applied by every node in the log's order; a node answers a write with the result it computed when
 * it applied it. Reads are local, after a read barrier unless the caller asks for a serializable read. The
 * same engine runs on the local log (embedded) and on a JetStream stream (the NATS engine), so both give
 * the same answers: multi-key transactions included.
 */
export class ReplicatedProperties implements PropertiesEngine {
  readonly kind: 'embedded' | 'nats';
  private readonly machine: PropertiesMachine;
  private readonly watchers = new Set<Watcher>();
  private readonly logger: Logger;
  private readonly reaper: NodeJS.Timeout;
  private reaping = false;
  private readonly stopFollowing: () => void;

  private constructor(
    private readonly options: ReplicatedPropertiesOptions,
    private readonly replica: Replica<PropertiesCommand, PropertiesResult>,
    machine: PropertiesMachine,
  ) {
    this.kind = options.kind;
    this.machine = machine;
    this.logger = options.logger ?? silentLogger();
    this.reaper = setInterval(() => void this.reap(), options.reapEveryMs ?? 200);
    this.reaper.unref();
    this.stopFollowing =
      options.link?.onChange((state) => {
        if (state.connected) return;
        const err = BackplaneError.unavailable('this node lost its NATS connection: resume the watch', {
          reason: 'NATS_DISCONNECTED',
        });
        for (const w of this.watchers) w.queue.fail(err);
      }) ?? (() => undefined);
  }

  static async open(options: ReplicatedPropertiesOptions): Promise<ReplicatedProperties> {
    const machine = new PropertiesMachine({
      changes: options.history?.changes ?? 100_000,
      bytes: options.history?.bytes ?? 64 * 1024 * 1024,
    });
    let self: ReplicatedProperties | undefined;
    const replica = await Replica.open({
      log: options.log,
      machine,
      codec: propertiesCodec,
      snapshotEvery: options.snapshotEvery,
      // a retried write needs its answer, not the changes it made (values may be large)
      keepOfResult: (r) => ({ ...r, changes: [] }),
      logger: options.logger,
      onApplied: (_c, result) => self?.notify(result.changes),
    });
    self = new ReplicatedProperties(options, replica, machine);
    return self;
  }

  /** The position this node has applied: its state's revision. */
  get position(): number {
    return this.replica.position;
  }

  private ready(): void {
    this.options.link?.ensureReady();
  }

  private async propose(command: PropertiesCommand, requestId?: string): Promise<PropertiesResult> {
    this.ready();
    return (await this.replica.propose(command, { requestId })).result;
  }

  async get(key: string, consistency: Consistency = 'linearizable'): Promise<Entry | undefined> {
    this.ready();
    await this.replica.barrier(consistency);
    return this.machine.live(key, Date.now());
  }

  async put(key: string, value: Uint8Array, options: PutOptions = {}): Promise<number> {
    const r = await this.propose(
      {
        t: 'put',
        key,
        value,
        ttlMs: options.ttlMs ?? 0,
        now: Date.now(),
        expect: options.expectRevision,
      },
      options.requestId,
    );
    const conflict = r.conflicts?.[0];
    if (conflict) throw revisionMismatch(key, conflict.expected, conflict.actual);
    return r.revision;
  }

  async remove(key: string, expectRevision?: number, requestId?: string): Promise<number | undefined> {
    const r = await this.propose({ t: 'del', key, expect: expectRevision }, requestId);
    const conflict = r.conflicts?.[0];
    if (conflict) throw revisionMismatch(key, conflict.expected, conflict.actual);
    return r.removed ? r.revision : undefined;
  }

  async list(
    prefix: string,
    startAfter: string,
    limit: number,
    consistency: Consistency = 'linearizable',
  ): Promise<{ entries: Entry[]; more: boolean }> {
    this.ready();
    await this.replica.barrier(consistency);
    return this.machine.list(prefix, startAfter, limit, Date.now());
  }

  async commit(txn: Transaction, requestId?: string): Promise<CommitResult> {
    const r = await this.propose(
      { t: 'txn', reads: txn.reads, puts: txn.puts, removes: txn.removes, now: Date.now() },
      requestId,
    );
    if (r.conflicts) return { committed: false, conflicts: r.conflicts };
    return { committed: true, revision: r.revision };
  }

  async *watch(key: string, options: WatchOptions): AsyncIterable<WatchItem> {
    this.ready();
    const watcher: Watcher = {
      key,
      prefix: options.prefix,
      queue: new AsyncQueue(
        this.options.watchQueue ?? 10_000,
        'watcher too slow: more than 10000 changes behind',
        CHANGE_BYTES,
      ),
    };
    // what was written before the watch began is in the state (or the history) it starts from
    await this.replica.barrier('linearizable', options.signal);
    this.watchers.add(watcher);
    try {
      // the starting point and the queue are taken in one synchronous step: nothing falls between them
      const sent = this.machine.revision;
      if (options.fromRevision === 0) {
        const now = Date.now();
        const current = options.prefix
          ? this.machine.list(key, '', Number.MAX_SAFE_INTEGER, now).entries
          : [this.machine.live(key, now)].filter((e): e is Entry => e !== undefined);
        for (const e of current)
          yield {
            change: {
              kind: 'PUT',
              key: e.key,
              revision: e.revision,
              value: e.value,
              createRevision: e.createRevision,
              expiresAt: e.expiresAt,
            },
          };
      } else {
        const history = this.machine.changesFrom(options.fromRevision);
        if (!history)
          throw BackplaneError.incorrectState(
            `revision ${options.fromRevision} is compacted; the history starts after ${this.machine.compacted}`,
            { reason: 'COMPACTED' },
          );
        for (const change of history) if (watchCovers(key, options.prefix, change.key)) yield { change };
      }
      // the history ends here: live changes follow
      yield { synced: true };
      for await (const change of watcher.queue.drain(options.signal))
        if (change.revision > sent) yield { change };
    } finally {
      this.watchers.delete(watcher);
    }
  }

  private notify(changes: Change[]): void {
    if (this.watchers.size === 0) return;
    for (const change of changes)
      for (const w of this.watchers) if (watchCovers(w.key, w.prefix, change.key)) w.queue.push(change);
  }

  /** Proposes the expiry of the keys whose time has passed by this node's clock (one proposal at a time). */
  private async reap(): Promise<void> {
    const next = this.machine.nextExpiry();
    const now = Date.now();
    if (this.reaping || next === undefined || next > now) return;
    if (this.options.link && !this.options.link.ready) return;
    this.reaping = true;
    try {
      await this.replica.propose({ t: 'expire', now });
    } catch (err) {
      this.logger.warn({ err: (err as Error).message }, 'proposing the expiry of keys failed');
    } finally {
      this.reaping = false;
    }
  }

  async close(): Promise<void> {
    clearInterval(this.reaper);
    this.stopFollowing();
    for (const w of this.watchers) w.queue.fail(BackplaneError.unavailable('the sharing node is stopping'));
    await this.replica.close();
    await this.options.log.close();
  }
}
