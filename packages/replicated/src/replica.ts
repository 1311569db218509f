import { randomBytes } from 'node:crypto';
import { BackplaneError, type Logger, retryJetStream, silentLogger } from '@backplane/runtime';
import { BARRIER_ID, type Following, type LogEntry, NOT_APPENDED, type ReplicatedLog } from './log';

/**
 * A deterministic state machine: the same commands in the same order give every node the same state and
 * the same results. `apply` must not read a clock, a random source, the environment or the network: time
 * travels inside commands (the proposer's clock).
 */
export interface StateMachine<C, R> {
  apply(command: C, position: number): R;
  /** The state as bytes: a deterministic function of the entries applied so far. */
  snapshot(): Uint8Array;
  /** Replaces the state with a snapshot's. */
  restore(data: Uint8Array): void;
  /**
   * How many records a snapshot of the state holds now (what writing one costs). Given, a replica takes
   * a snapshot only after applying at least as many entries, so snapshots cost O(1) per entry applied.
   */
  size?(): number;
}

export interface CommandCodec<C> {
  encode(command: C): Uint8Array;
  decode(data: Uint8Array): C;
}

/** How fresh a read must be. */
export type Consistency = 'linearizable' | 'serializable';

export interface ReplicaOptions<C, R> {
  log: ReplicatedLog;
  machine: StateMachine<C, R>;
  codec: CommandCodec<C>;
  /**
   * Applied entries between snapshots, at least (default 10,000; 0 = none); more when the state is
   * larger (the machine's size()), and a random quarter more on each node, so that nodes do not all
   * write one at the same moment (a node skips its own when another saved one recently).
   */
  snapshotEvery?: number;
  /** Entries kept below a snapshot when the log is trimmed, for followers a little behind (default 1,000). */
  keepBelowSnapshot?: number;
  /** How long a proposal whose append timed out is retried (same id: never applied twice); default 10 s. */
  retryMs?: number;
  logger?: Logger;
  /** Called after every entry is applied (watchers, metrics); it must not throw. */
  onApplied?: (command: C, result: R, position: number) => void;
  /** What of a result is kept for a request retried later (default: all of it). */
  keepOfResult?: (result: R) => R;
  /** How many such results are kept (default 10,000). */
  recentResults?: number;
}

/** Read barriers on their way to the log at once (a JetStream log: each is an append). */
const BARRIERS_IN_FLIGHT = 4;

/** The prefix of proposal ids a caller chose (a client's request id): retried requests share one entry. */
const REQUEST = 'req:';

interface Pending<R> {
  resolve(v: { result: R; position: number }): void;
  reject(err: unknown): void;
}

interface Waiter {
  position: number;
  resolve(): void;
  reject(err: unknown): void;
}

/**
 * A replica of a state machine: it loads the latest snapshot, replays the log after it, and then applies
 * every entry as the log delivers it, in order. propose() appends a command and resolves with the result
 * this replica computed when it applied it, so a caller sees its own write at once. Reads are local; a
 * linearizable read first waits until this replica has applied everything the log held when the read
 * began (barrier()), the ReadIndex idea.
 */
export class Replica<C, R> {
  private applied = 0;
  /** The proposals waiting for their entry to be applied, by proposal id (a retried request id: several). */
  private readonly pending = new Map<string, Array<Pending<R>>>();
  /** Results of recent entries proposed with a caller's request id, for a retry that comes later. */
  private readonly recent = new Map<string, { result: R; position: number }>();
  private waiters: Waiter[] = [];
  private following: Following | undefined;
  private readonly nodeId = randomBytes(6).toString('hex');
  private counter = 0;
  private sinceSnapshot = 0;
  /** This node's spread of the snapshot interval (node-local: snapshots are not part of the state). */
  private readonly snapshotJitter = 1 + Math.random() * 0.25;
  private snapshotting: Promise<void> | undefined;
  private closed = false;
  private failure: Error | undefined;
  private readonly logger: Logger;

  private constructor(private readonly options: ReplicaOptions<C, R>) {
    this.logger = options.logger ?? silentLogger();
  }

  /** Loads the latest snapshot, replays the log after it, and resolves once it is as far as the log. */
  static async open<C, R>(options: ReplicaOptions<C, R>): Promise<Replica<C, R>> {
    const replica = new Replica(options);
    // right after a cluster formed, or while other nodes create the same stream, JetStream may answer
    // late: every step here can be tried again
    const retry = { log: options.logger };
    const head = await retryJetStream('reading the log head', () => options.log.lastPosition(), retry);
    await retryJetStream('following the log', () => replica.follow(true), retry);
    await replica.waitFor(head);
    return replica;
  }

  /** The position of the last entry this replica applied (its state's revision). */
  get position(): number {
    return this.applied;
  }

  get log(): ReplicatedLog {
    return this.options.log;
  }

  /**
   * Follows the log from this replica's position; with `fromSnapshot`, first loads the latest snapshot
   * when it is ahead. When the log no longer holds the entries after this replica's position (trimmed
   * below a snapshot), it loads the snapshot and follows from there.
   */
  private async follow(fromSnapshot: boolean): Promise<void> {
    if (fromSnapshot) {
      const snapshot = await this.options.log.loadSnapshot();
      if (snapshot && snapshot.position > this.applied) {
        this.options.machine.restore(snapshot.data);
        this.applied = snapshot.position;
        this.wake();
      }
    }
    this.following = await this.options.log.follow(
      this.applied,
      (e) => this.applyEntry(e),
      (firstHeld) => {
        if (this.closed) return;
        this.logger.info(
          { applied: this.applied, firstHeld },
          'the log was trimmed past this replica: loading the snapshot',
        );
        void this.follow(true).catch((err: unknown) => this.fail(err));
      },
      (err) => this.fail(err),
    );
    // waits that began before this follow (a re-follow after a gap) are announced to it too
    let furthest = 0;
    for (const w of this.waiters) furthest = Math.max(furthest, w.position);
    if (furthest > this.applied) this.following.need?.(furthest);
  }

  private fail(err: unknown): void {
    if (this.closed) return;
    this.failure = err instanceof Error ? err : new Error(String(err));
    this.logger.error({ err }, 'the replica stopped following its log');
    const e = BackplaneError.unavailable(`the replica stopped following its log: ${this.failure.message}`);
    for (const list of this.pending.values()) for (const p of list) p.reject(e);
    this.pending.clear();
    this.rejectWaiters(e);
  }

  private applyEntry(e: LogEntry): void {
    if (e.position !== this.applied + 1) {
      if (e.position <= this.applied) return;
      this.fail(new Error(`entry ${e.position} follows ${this.applied}: the log has a hole`));
      return;
    }
    if (e.id === BARRIER_ID) {
      // a read barrier: no command, the same on every replica. It counts towards the next snapshot, which
      // trims the log: a workload of reads alone would otherwise grow the stream without end
      this.applied = e.position;
      this.wake();
      this.countTowardsSnapshot();
      return;
    }
    let command: C | undefined;
    let result: R | undefined;
    let error: unknown;
    try {
      command = this.options.codec.decode(e.data);
      result = this.options.machine.apply(command, e.position);
    } catch (err) {
      // a command that cannot be decoded or applied fails the same way on every node: it changes nothing
      error = err;
    }
    this.applied = e.position;
    const waiting = this.pending.get(e.id);
    if (waiting) {
      this.pending.delete(e.id);
      for (const p of waiting) {
        if (error !== undefined) p.reject(error);
        else p.resolve({ result: result as R, position: e.position });
      }
    }
    if (error === undefined && e.id.startsWith(REQUEST)) {
      const keep = this.options.keepOfResult;
      this.recent.set(e.id, { result: keep ? keep(result as R) : (result as R), position: e.position });
      if (this.recent.size > (this.options.recentResults ?? 10_000))
        this.recent.delete(this.recent.keys().next().value as string);
    }
    if (error === undefined && command !== undefined)
      this.options.onApplied?.(command, result as R, e.position);
    this.wake();
    this.countTowardsSnapshot();
  }

  private countTowardsSnapshot(): void {
    this.sinceSnapshot++;
    if (this.sinceSnapshot >= this.snapshotInterval() && !this.snapshotting) void this.snapshot(true);
  }

  private wake(): void {
    if (this.waiters.length === 0) return;
    const ready = this.waiters.filter((w) => w.position <= this.applied);
    if (ready.length === 0) return;
    this.waiters = this.waiters.filter((w) => w.position > this.applied);
    for (const w of ready) w.resolve();
  }

  /** Nothing more will be applied here (closed, or stopped following): every wait ends with `err`. */
  private rejectWaiters(err: unknown): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w.reject(err);
  }

  /**
   * Resolves once this replica has applied `position`; rejects when `signal` aborts first, or when the
   * replica closes or stops following its log.
   */
  waitFor(position: number, signal?: AbortSignal): Promise<void> {
    if (position <= this.applied) return Promise.resolve();
    if (this.failure) return Promise.reject(BackplaneError.unavailable(this.failure.message));
    if (this.closed) return Promise.reject(BackplaneError.unavailable('the replica is closed'));
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = {
        position,
        resolve: () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        },
        reject: (err) => {
          signal?.removeEventListener('abort', onAbort);
          reject(err);
        },
      };
      const onAbort = () => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(signal?.reason ?? BackplaneError.of('CANCELLED', 'cancelled'));
      };
      if (signal?.aborted) return onAbort();
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiters.push(waiter);
      this.following?.need?.(position);
    });
  }

  /**
   * Appends a command and resolves with its result once this replica has applied it. An append whose
   * outcome is unknown (a timeout) is tried again with the same id until it is known (the log keeps one
   * entry per id); if it still is not known when `signal` aborts, the call fails UNAVAILABLE with reason
   * OUTCOME_UNKNOWN: the command may or may not be applied, never twice. `requestId`, a caller's id for
   * the request (a client sends the same one with every retry, at any node), makes the retries one entry
   * too: a retry answers with the result of the entry its first try appended.
   */
  async propose(
    command: C,
    opts: { signal?: AbortSignal | undefined; requestId?: string | undefined } = {},
  ): Promise<{ result: R; position: number }> {
    const signal = opts.signal;
    if (this.closed) throw BackplaneError.unavailable('the replica is closed');
    if (this.failure)
      throw BackplaneError.unavailable(`the replica stopped following its log: ${this.failure.message}`);
    const id = opts.requestId ? `${REQUEST}${opts.requestId}` : `${this.nodeId}-${++this.counter}`;
    const done = this.recent.get(id);
    if (done) return done;
    const data = this.options.codec.encode(command);
    if (data.length > this.options.log.maxEntryBytes)
      throw BackplaneError.badParameter(
        `a proposal is at most ${this.options.log.maxEntryBytes} bytes encoded, this one is ${data.length}`,
        { reason: 'PROPOSAL_TOO_LARGE' },
      );
    let mine: Pending<R> | undefined;
    const applied = new Promise<{ result: R; position: number }>((resolve, reject) => {
      mine = { resolve, reject };
      const list = this.pending.get(id);
      if (list) list.push(mine);
      else this.pending.set(id, [mine]);
    });
    // rejected by close() or a failure while this call still waits for its append: the rejection is
    // seen below, but must not count as unhandled meanwhile (Node would end the process)
    applied.catch(() => undefined);
    const forget = () => {
      const list = this.pending.get(id)?.filter((p) => p !== mine);
      if (list?.length) this.pending.set(id, list);
      else this.pending.delete(id);
    };
    let position: number | undefined;
    let lastError: unknown;
    const until = Date.now() + (this.options.retryMs ?? 10_000);
    while (position === undefined) {
      if (signal?.aborted || Date.now() > until || this.closed) break;
      try {
        position = await this.options.log.append(id, data, signal);
      } catch (err) {
        const reason = BackplaneError.from(err).reason;
        if (reason === 'PROPOSAL_TOO_LARGE' || reason === NOT_APPENDED) {
          // certainly not in the log
          forget();
          throw err;
        }
        lastError = err;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    if (position === undefined) {
      forget();
      throw BackplaneError.unavailable(
        `the log did not confirm the proposal (${(lastError as Error | undefined)?.message ?? 'cancelled'}): it may or may not be applied`,
        { reason: 'OUTCOME_UNKNOWN', cause: lastError },
      );
    }
    try {
      await this.waitFor(position, signal);
    } catch (err) {
      forget();
      throw BackplaneError.unavailable(
        'the proposal is in the log, but this replica has not applied it yet',
        {
          reason: 'OUTCOME_UNKNOWN',
          cause: err,
        },
      );
    }
    // applied before this try began waiting (a retry of a request whose first try appended it)
    if (this.pending.get(id)?.includes(mine as Pending<R>)) {
      forget();
      const earlier = this.recent.get(id);
      if (earlier) return earlier;
      throw BackplaneError.unavailable(
        'the request was applied long ago; its result is no longer kept here',
        {
          reason: 'OUTCOME_UNKNOWN',
        },
      );
    }
    return applied;
  }

  /**
   * The read barrier: resolves once this replica's state reflects every entry the log held when the call
   * began (linearizable), or at once (serializable: possibly behind other replicas).
   */
  async barrier(consistency: Consistency = 'linearizable', signal?: AbortSignal): Promise<void> {
    if (consistency === 'serializable') return;
    if (this.failure)
      throw BackplaneError.unavailable(`the replica stopped following its log: ${this.failure.message}`);
    const position = await this.lastPosition();
    await this.waitFor(position, signal);
  }

  /** The barrier this moment's reads share, not sent yet. */
  private pendingBarrier:
    | { promise: Promise<number>; resolve(p: number): void; reject(e: unknown): void }
    | undefined;
  private barriersInFlight = 0;

  /**
   * A read barrier (the log's readBarrier()), one for the reads of a moment. A barrier already sent may
   * not reflect a write acknowledged just before a read began, so a read joins the barrier not sent yet
   * (every read of this event-loop turn shares it), sent at the end of the turn; up to
   * BARRIERS_IN_FLIGHT are on their way at once, and beyond that the next one goes when one returns. On
   * the local log the last position is a barrier without a round trip: no sharing needed.
   */
  private lastPosition(): Promise<number> {
    if (this.options.log.kind === 'local') return this.options.log.readBarrier();
    if (!this.pendingBarrier) {
      let resolve!: (p: number) => void;
      let reject!: (e: unknown) => void;
      const promise = new Promise<number>((res, rej) => {
        resolve = res;
        reject = rej;
      });
      this.pendingBarrier = { promise, resolve, reject };
      setImmediate(() => this.sendBarrier());
    }
    return this.pendingBarrier.promise;
  }

  private sendBarrier(): void {
    const b = this.pendingBarrier;
    if (!b || this.barriersInFlight >= BARRIERS_IN_FLIGHT) return;
    this.pendingBarrier = undefined;
    this.barriersInFlight++;
    this.options.log
      .readBarrier()
      .then(b.resolve, b.reject)
      .finally(() => {
        this.barriersInFlight--;
        this.sendBarrier();
      });
  }

  /** Entries to apply before the next snapshot (Infinity: none). */
  private snapshotInterval(): number {
    const every = this.options.snapshotEvery ?? 10_000;
    if (every <= 0) return Number.POSITIVE_INFINITY;
    // checked after every entry: size() must be cheap (a count)
    return Math.max(every, this.options.machine.size?.() ?? 0) * this.snapshotJitter;
  }

  /**
   * Saves the state at the current position, then trims the log below it (less a margin). `due`: the
   * periodic one, skipped when another node saved one recently (half an interval ago or less).
   */
  async snapshot(due = false): Promise<void> {
    // one at a time; a call made while one runs takes its own afterwards (its position may be newer)
    while (this.snapshotting) await this.snapshotting;
    this.snapshotting = this.saveSnapshot(due).finally(() => {
      this.snapshotting = undefined;
    });
    await this.snapshotting;
  }

  private async saveSnapshot(due: boolean): Promise<void> {
    try {
      if (due) {
        const saved = await this.options.log.snapshotPosition();
        if (saved >= this.applied - this.snapshotInterval() / 2) {
          this.sinceSnapshot = Math.max(0, this.applied - saved);
          return;
        }
      }
      const position = this.applied;
      const data = this.options.machine.snapshot();
      this.sinceSnapshot = 0;
      await this.options.log.saveSnapshot({ position, data });
      const keep = this.options.keepBelowSnapshot ?? 1000;
      if (position - keep > 1) await this.options.log.trim(position - keep);
    } catch (err) {
      this.logger.warn({ err }, 'saving a snapshot failed');
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    this.following?.stop();
    const err = BackplaneError.unavailable('the replica is closing');
    for (const list of this.pending.values()) for (const p of list) p.reject(err);
    this.pending.clear();
    this.rejectWaiters(err);
  }
}
