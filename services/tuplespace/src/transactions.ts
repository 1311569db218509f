import { randomBytes } from 'node:crypto';
import type { EventKind } from '@backplane/proto/tuplespace';
import type { GroupCommitter } from '@backplane/runtime';
import { BackplaneError, type Logger } from '@backplane/runtime';
import type { SpaceData } from './space';

export const DEFAULT_TXN_IDLE_MS = 60_000;
export const MAX_TXN_IDLE_MS = 3_600_000;

interface Changes {
  writes: Set<number>;
  takes: Map<number, EventKind>;
}

/** One transaction: what it wrote and took in each space, and when it was last used. */
export class Txn {
  readonly changes = new Map<SpaceData, Changes>();
  lastUsed = Date.now();
  /** Calls in progress that use it (a long WAIT_TO_TAKE keeps it from being reaped as idle). */
  active = 0;
  state: 'open' | 'ending' = 'open';
  private readonly ending = new AbortController();
  private settle!: (committed: boolean) => void;
  /** Resolves once it is over: true when committed, false when aborted (or its commit failed). */
  readonly outcome = new Promise<boolean>((resolve) => {
    this.settle = resolve;
  });

  constructor(
    readonly id: string,
    readonly idleTimeoutMs: number,
    /** The user who began it: only that user may use, commit or abort it. */
    readonly owner: string,
  ) {}

  private of(space: SpaceData): Changes {
    let c = this.changes.get(space);
    if (!c) {
      c = { writes: new Set(), takes: new Map() };
      this.changes.set(space, c);
    }
    return c;
  }

  wrote(space: SpaceData, id: number): void {
    this.of(space).writes.add(id);
  }

  forgetWrite(space: SpaceData, id: number): void {
    this.of(space).writes.delete(id);
  }

  took(space: SpaceData, id: number, kind: EventKind): void {
    this.of(space).takes.set(id, kind);
  }

  /**
   * `signal` joined with the transaction's end: a call waiting inside the transaction stops when it is
   * committed or aborted (nothing may be handed to it after that).
   */
  signalWith(signal: AbortSignal | undefined): AbortSignal {
    return signal ? AbortSignal.any([signal, this.ending.signal]) : this.ending.signal;
  }

  /** Commit or abort begins: its waiting calls end now, before its changes are gathered. */
  end(): void {
    this.state = 'ending';
    this.ending.abort(
      BackplaneError.incorrectState('the transaction was committed or aborted while the call waited', {
        reason: 'TXN_ENDED',
      }),
    );
  }

  settled(committed: boolean): void {
    this.settle(committed);
  }
}

/**
 * The server's transaction manager (the seed's TransactionManager). Writes inside a transaction are
 * seen only by it until commit; takes inside it are hidden from everyone and put back on abort. Commit
 * writes every space's changes in one store batch: all of them or none. A transaction unused for its
 * idle timeout (its client went away) is aborted.
 */
export class Transactions {
  private readonly txns = new Map<string, Txn>();
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly committer: GroupCommitter,
    private readonly log: Logger,
    reapEveryMs = 1000,
  ) {
    this.timer = setInterval(() => this.reapIdle(), reapEveryMs);
    this.timer.unref();
  }

  get open(): number {
    return this.txns.size;
  }

  begin(idleTimeoutMs = 0, owner = ''): string {
    if (!Number.isInteger(idleTimeoutMs) || idleTimeoutMs < 0 || idleTimeoutMs > MAX_TXN_IDLE_MS)
      throw BackplaneError.badParameter(`idle_timeout_ms must be 0..${MAX_TXN_IDLE_MS}`);
    const id = randomBytes(16).toString('base64url');
    this.txns.set(id, new Txn(id, idleTimeoutMs || DEFAULT_TXN_IDLE_MS, owner));
    return id;
  }

  /**
   * The open transaction with this id (touched: its idle clock restarts); undefined for "". A transaction
   * id is not a capability: another user who learns it is refused.
   */
  use(id: string | undefined, user: string): Txn | undefined {
    if (!id) return undefined;
    const t = this.txns.get(id);
    if (!t)
      throw BackplaneError.notFound('no such transaction (never begun, committed, aborted or timed out)', {
        reason: 'TXN_NOT_FOUND',
      });
    if (t.owner !== user)
      throw BackplaneError.permissionDenied('the transaction belongs to another user', {
        reason: 'TXN_NOT_OWNER',
      });
    if (t.state !== 'open')
      throw BackplaneError.incorrectState('the transaction is being committed or aborted');
    t.lastUsed = Date.now();
    return t;
  }

  private required(id: string, user: string): Txn {
    if (!id) throw BackplaneError.badParameter('txn_id is required (the id Begin returned)');
    return this.use(id, user) as Txn;
  }

  async commit(id: string, user: string): Promise<void> {
    const t = this.required(id, user);
    t.end();
    // what it did up to now (nothing can be added from here on)
    const parts = [...t.changes].map(([space, c]) => {
      const writes = new Set(c.writes);
      const takes = new Map(c.takes);
      return { space, writes, takes, ...space.commitOps(writes, takes.keys()) };
    });
    try {
      await this.committer.commit(parts.flatMap((p) => p.ops));
    } catch (err) {
      for (const p of parts) p.space.idHigh = Math.min(p.space.idHigh, p.idHighBefore);
      this.finishAbort(t);
      throw err;
    }
    this.txns.delete(id);
    for (const p of parts) p.space.applyCommit(id, p.writes, p.takes, p.seqFirst);
    t.settled(true);
  }

  async abort(id: string, user: string): Promise<void> {
    const t = this.required(id, user);
    this.finishAbort(t);
  }

  /** Aborts every open transaction that touched the space (it is being deleted). */
  dropSpace(space: SpaceData): void {
    for (const t of this.txns.values()) t.changes.delete(space);
  }

  private finishAbort(t: Txn): void {
    t.end();
    this.txns.delete(t.id);
    for (const [space, c] of t.changes) space.applyAbort(t.id, c.writes, c.takes.keys());
    t.settled(false);
  }

  private reapIdle(): void {
    const now = Date.now();
    for (const t of this.txns.values()) {
      if (t.state === 'open' && t.active === 0 && now - t.lastUsed > t.idleTimeoutMs) {
        this.log.info({ idleMs: now - t.lastUsed }, 'transaction idle too long: aborted');
        this.finishAbort(t);
      }
    }
  }

  close(): void {
    clearInterval(this.timer);
    for (const t of [...this.txns.values()]) this.finishAbort(t);
  }
}
