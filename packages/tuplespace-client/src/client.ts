import {
  BackplaneError,
  type CallOptions,
  CallPipeline,
  type PipelinedMethod,
  pipelinedUnary,
  RECONNECT_OPTIONS,
  serverStream,
  type UnaryMethod,
  unary,
} from '@backplane/client-core';
import {
  EventKind,
  Permission,
  type TupleRecord,
  TupleSpaceServiceClient,
  TupleSpaceServiceService,
} from '@backplane/proto/tuplespace';
import { type ChannelCredentials, credentials as grpcCredentials, Metadata, status } from '@grpc/grpc-js';
import type { Template, Tuple } from './tuples';

export const DEFAULT_ADDRESS = '127.0.0.1:8200';

export type PermissionName = 'READ' | 'WRITE' | 'ADMIN';
export type EventKindName = 'WRITE' | 'TAKE' | 'DELETE' | 'EXPIRE';

const PERMS: Record<PermissionName, Permission> = {
  READ: Permission.PERMISSION_READ,
  WRITE: Permission.PERMISSION_WRITE,
  ADMIN: Permission.PERMISSION_ADMIN,
};
const PERM_NAMES = Object.fromEntries(Object.entries(PERMS).map(([k, v]) => [v, k])) as Record<
  number,
  PermissionName
>;
const KINDS: Record<EventKindName, EventKind> = {
  WRITE: EventKind.EVENT_KIND_WRITE,
  TAKE: EventKind.EVENT_KIND_TAKE,
  DELETE: EventKind.EVENT_KIND_DELETE,
  EXPIRE: EventKind.EVENT_KIND_EXPIRE,
};
const KIND_NAMES = Object.fromEntries(Object.entries(KINDS).map(([k, v]) => [v, k])) as Record<
  number,
  EventKindName
>;

export interface AclEntry {
  /** A user name, `@group` or `*`. */
  principal: string;
  permissions: PermissionName[];
}

export interface SpaceEvent {
  seq: number;
  kind: EventKindName;
  record: TupleRecord;
}

export interface TxnOption {
  /** Run inside this transaction (from begin()). */
  txn?: Transaction | string;
}

export type Options = CallOptions & TxnOption;

const txnId = (o?: TxnOption) => (typeof o?.txn === 'string' ? o.txn : (o?.txn?.id ?? ''));

/** Notes, on the transaction given as `{ txn }`, a take that failed other than by finding nothing. */
async function noteFailedTake<T>(o: TxnOption | undefined, call: Promise<T>): Promise<T> {
  try {
    return await call;
  } catch (err) {
    const e = BackplaneError.from(err);
    if (o?.txn instanceof Transaction && e.reason !== 'NO_MATCH_IN_TIME') o.txn.failedTake ??= e;
    throw err;
  }
}

/** A transaction on the server: pass it as `{ txn }` to space calls, then commit() or abort(). */
export class Transaction {
  /**
   * The first take in this transaction (take, waitToTake, consumingScan) that failed in a way that leaves
   * open whether it took something: committing would then consume a tuple the caller never saw.
   * A WaitToTake answered DEADLINE_EXCEEDED with reason NO_MATCH_IN_TIME took nothing, and is not one.
   */
  failedTake: BackplaneError | undefined;

  constructor(
    readonly id: string,
    private readonly client: TupleSpaceClient,
  ) {}
  commit(o?: CallOptions): Promise<void> {
    return this.client.commit(this.id, o);
  }
  abort(o?: CallOptions): Promise<void> {
    return this.client.abort(this.id, o);
  }
}

/**
 * A connection to a tuple-space server. Calls authenticate with the user and password given here (none:
 * the anonymous user). Failures reject with BackplaneError.
 */
export class TupleSpaceClient {
  readonly raw: TupleSpaceServiceClient;
  private readonly auth: Metadata | undefined;
  private readonly pipeline: CallPipeline | undefined;

  constructor(
    address: string = process.env.BACKPLANE_TS_ADDRESS ?? DEFAULT_ADDRESS,
    options: {
      user?: string;
      password?: string;
      credentials?: ChannelCredentials;
      /**
       * Send the data calls (write, take, read, waits, …) as messages of one stream instead of one HTTP/2
       * stream each (default true): several times the calls per second when many are in flight. Each call
       * keeps its own deadline, cancellation and status.
       */
      pipeline?: boolean;
    } = {},
  ) {
    this.raw = new TupleSpaceServiceClient(address, options.credentials ?? grpcCredentials.createInsecure(), {
      ...RECONNECT_OPTIONS,
      'grpc.max_receive_message_length': 16 * 1024 * 1024,
    });
    this.pipeline = options.pipeline === false ? undefined : new CallPipeline(this.raw);
    if (options.user !== undefined) {
      this.auth = new Metadata();
      this.auth.set(
        'authorization',
        `Basic ${Buffer.from(`${options.user}:${options.password ?? ''}`).toString('base64')}`,
      );
    }
  }

  /** Call options with the credentials. */
  opts(o: CallOptions = {}): CallOptions {
    if (!this.auth) return o;
    if (!o.metadata) return { ...o, metadata: this.auth };
    const m = o.metadata.clone();
    m.merge(this.auth);
    return { ...o, metadata: m };
  }

  /** A unary call with the credentials, through the call pipeline unless it is off. */
  call<Req, Res>(
    method: PipelinedMethod<Req, Res>,
    plain: UnaryMethod<Req, Res>,
    request: Req,
    o?: CallOptions,
  ): Promise<Res> {
    const opts = this.opts(o);
    return pipelinedUnary(this.pipeline, method, plain, request, opts);
  }

  space(name: string): Space {
    return new Space(this, name);
  }

  async createSpace(
    name: string,
    o: CallOptions & { acl?: AclEntry[]; ifNotExists?: boolean } = {},
  ): Promise<Space> {
    await unary(
      this.raw.createSpace.bind(this.raw),
      { space: name, acl: toAcl(o.acl ?? []), ifNotExists: o.ifNotExists ?? false },
      this.opts(o),
    );
    return this.space(name);
  }

  async deleteSpace(name: string, o?: CallOptions): Promise<void> {
    await unary(this.raw.deleteSpace.bind(this.raw), { space: name }, this.opts(o));
  }

  async listSpaces(
    o?: CallOptions,
  ): Promise<Array<{ name: string; tuples: number; acl: AclEntry[]; permissions: PermissionName[] }>> {
    const r = await unary(this.raw.listSpaces.bind(this.raw), {}, this.opts(o));
    return r.spaces.map((s) => ({
      name: s.name,
      tuples: s.tuples,
      acl: fromAcl(s.acl),
      permissions: s.permissions.map((p) => PERM_NAMES[p] as PermissionName),
    }));
  }

  async setAcl(space: string, acl: AclEntry[], o?: CallOptions): Promise<void> {
    await unary(this.raw.setAcl.bind(this.raw), { space, acl: toAcl(acl) }, this.opts(o));
  }

  async begin(o: CallOptions & { idleTimeoutMs?: number } = {}): Promise<Transaction> {
    const r = await unary(
      this.raw.begin.bind(this.raw),
      { idleTimeoutMs: o.idleTimeoutMs ?? 0 },
      this.opts(o),
    );
    return new Transaction(r.txnId, this);
  }

  async commit(id: string, o?: CallOptions): Promise<void> {
    await unary(this.raw.commit.bind(this.raw), { txnId: id }, this.opts(o));
  }

  async abort(id: string, o?: CallOptions): Promise<void> {
    await unary(this.raw.abort.bind(this.raw), { txnId: id }, this.opts(o));
  }

  /**
   * Runs `fn` in a transaction: committed when it resolves, aborted when it throws. Also aborted when a
   * take inside it (given `{ txn }`) failed other than by finding nothing, even if `fn` caught that error
   * and resolved: the take may have reached the server and taken a tuple the caller never saw, which a
   * commit would consume. transaction() then rejects with ABORTED, reason TAKE_FAILED_IN_TXN, the take's
   * error as its cause. `commitAfterFailedTake: true` commits anyway.
   */
  async transaction<T>(
    fn: (txn: Transaction) => Promise<T>,
    o: CallOptions & { commitAfterFailedTake?: boolean } = {},
  ): Promise<T> {
    const txn = await this.begin(o);
    let out: T;
    try {
      out = await fn(txn);
    } catch (err) {
      await txn.abort(o).catch(() => undefined);
      throw err;
    }
    const failed = txn.failedTake;
    if (failed && !o.commitAfterFailedTake) {
      await txn.abort(o);
      throw new BackplaneError(
        status.ABORTED,
        'TAKE_FAILED_IN_TXN',
        `the transaction was aborted: a take inside it failed (${failed.message}) and may have taken a ` +
          'tuple the caller never saw; pass commitAfterFailedTake to commit anyway',
        { cause: failed },
      );
    }
    await txn.commit(o);
    return out;
  }

  async putUser(name: string, password: string, groups: string[] = [], o?: CallOptions): Promise<void> {
    await unary(this.raw.putUser.bind(this.raw), { name, password, groups }, this.opts(o));
  }

  async deleteUser(name: string, o?: CallOptions): Promise<void> {
    await unary(this.raw.deleteUser.bind(this.raw), { name }, this.opts(o));
  }

  async listUsers(o?: CallOptions): Promise<Array<{ name: string; groups: string[] }>> {
    return (await unary(this.raw.listUsers.bind(this.raw), {}, this.opts(o))).users;
  }

  close(): void {
    this.pipeline?.close();
    this.raw.close();
  }
}

function toAcl(acl: AclEntry[]) {
  return acl.map((e) => ({ principal: e.principal, permissions: e.permissions.map((p) => PERMS[p]) }));
}

function fromAcl(acl: Array<{ principal: string; permissions: Permission[] }>): AclEntry[] {
  return acl.map((e) => ({
    principal: e.principal,
    permissions: e.permissions.map((p) => PERM_NAMES[p] as PermissionName),
  }));
}

/** One named tuple space: the seed's TupleSpace object. */
export class Space {
  constructor(
    private readonly client: TupleSpaceClient,
    readonly name: string,
  ) {}

  private get raw() {
    return this.client.raw;
  }

  /** WRITE: returns the tuple's id. */
  async write(tuple: Tuple, o: Options & { ttlMs?: number } = {}): Promise<number> {
    const r = await this.client.call(
      TupleSpaceServiceService.write,
      this.raw.write.bind(this.raw),
      { space: this.name, tuple, ttlMs: o.ttlMs ?? 0, txnId: txnId(o) },
      o,
    );
    return r.id;
  }

  /** MULTI_WRITE: all or none; returns the ids. */
  async multiWrite(tuples: Tuple[], o: Options & { ttlMs?: number } = {}): Promise<number[]> {
    const r = await this.client.call(
      TupleSpaceServiceService.multiWrite,
      this.raw.multiWrite.bind(this.raw),
      { space: this.name, tuples, ttlMs: o.ttlMs ?? 0, txnId: txnId(o) },
      o,
    );
    return r.ids;
  }

  /** READ: the oldest match, or undefined. */
  async read(template: Template, o?: Options): Promise<TupleRecord | undefined> {
    const r = await this.client.call(
      TupleSpaceServiceService.read,
      this.raw.read.bind(this.raw),
      { space: this.name, template, txnId: txnId(o) },
      o,
    );
    return r.found ? r.record : undefined;
  }

  /** TAKE: removes and returns the oldest match, or undefined. */
  async take(template: Template, o?: Options): Promise<TupleRecord | undefined> {
    const r = await noteFailedTake(
      o,
      this.client.call(
        TupleSpaceServiceService.take,
        this.raw.take.bind(this.raw),
        { space: this.name, template, txnId: txnId(o) },
        o,
      ),
    );
    return r.found ? r.record : undefined;
  }

  /** WAIT_TO_READ: waits for a match (use timeoutMs or signal to bound the wait). */
  async waitToRead(template: Template, o?: Options): Promise<TupleRecord> {
    const r = await this.client.call(
      TupleSpaceServiceService.waitToRead,
      this.raw.waitToRead.bind(this.raw),
      { space: this.name, template, txnId: txnId(o) },
      o,
    );
    return r.record as TupleRecord;
  }

  /**
   * WAIT_TO_TAKE: waits for a match and takes it. A cancelled wait takes nothing. With a deadline, the
   * server hands nothing over in its last 100 ms and fails the call with DEADLINE_EXCEEDED, reason
   * NO_MATCH_IN_TIME (nothing was taken); a DEADLINE_EXCEEDED with another reason is this client's own
   * deadline, and a tuple may then have been taken on the way (see transaction()).
   */
  async waitToTake(template: Template, o?: Options): Promise<TupleRecord> {
    const r = await noteFailedTake(
      o,
      this.client.call(
        TupleSpaceServiceService.waitToTake,
        this.raw.waitToTake.bind(this.raw),
        { space: this.name, template, txnId: txnId(o) },
        o,
      ),
    );
    return r.record as TupleRecord;
  }

  /** SCAN: every match (up to `limit`), oldest first. */
  async *scan(template: Template, o: Options & { limit?: number } = {}): AsyncGenerator<TupleRecord> {
    for await (const m of serverStream(
      this.raw.scan.bind(this.raw),
      { space: this.name, template, limit: o.limit ?? 0, txnId: txnId(o) },
      this.client.opts(o),
    ))
      yield* m.records;
  }

  /** CONSUMING_SCAN: like scan, removing what it returns. */
  async *consumingScan(
    template: Template,
    o: Options & { limit?: number } = {},
  ): AsyncGenerator<TupleRecord> {
    let whole = false;
    try {
      for await (const m of serverStream(
        this.raw.consumingScan.bind(this.raw),
        { space: this.name, template, limit: o.limit ?? 0, txnId: txnId(o) },
        this.client.opts(o),
      ))
        yield* m.records;
      whole = true;
    } catch (err) {
      if (o.txn instanceof Transaction) o.txn.failedTake ??= BackplaneError.from(err);
      throw err;
    } finally {
      // left before the end: the server took what was not read yet
      if (!whole && o.txn instanceof Transaction)
        o.txn.failedTake ??= BackplaneError.of('CANCELLED', 'a consumingScan was left before its end');
    }
  }

  async count(template: Template, o?: Options): Promise<number> {
    return (
      await this.client.call(
        TupleSpaceServiceService.count,
        this.raw.count.bind(this.raw),
        { space: this.name, template, txnId: txnId(o) },
        o,
      )
    ).count;
  }

  /** DELETE: removes every match; returns how many. */
  async delete(template: Template, o?: Options): Promise<number> {
    return (
      await this.client.call(
        TupleSpaceServiceService.delete,
        this.raw.delete.bind(this.raw),
        { space: this.name, template, txnId: txnId(o) },
        o,
      )
    ).deleted;
  }

  /** UPDATE: replaces tuple `id`; ttlMs 0 keeps its expiry, -1 clears it. */
  async update(id: number, tuple: Tuple, o: Options & { ttlMs?: number } = {}): Promise<TupleRecord> {
    const r = await this.client.call(
      TupleSpaceServiceService.update,
      this.raw.update.bind(this.raw),
      { space: this.name, id, tuple, ttlMs: o.ttlMs ?? 0, txnId: txnId(o) },
      o,
    );
    return r.record as TupleRecord;
  }

  async readById(id: number, o?: Options): Promise<TupleRecord | undefined> {
    const r = await this.client.call(
      TupleSpaceServiceService.readById,
      this.raw.readById.bind(this.raw),
      { space: this.name, id, txnId: txnId(o) },
      o,
    );
    return r.found ? r.record : undefined;
  }

  /**
   * EVENT_REGISTER: matching events from the moment this resolves (the server has confirmed the
   * registration). `seq` numbers are consecutive per space: a gap means events were missed.
   */
  async events(
    template: Template,
    o: CallOptions & { kinds?: EventKindName[] } = {},
  ): Promise<AsyncGenerator<SpaceEvent>> {
    const it = serverStream(
      this.raw.eventRegister.bind(this.raw),
      { space: this.name, template, kinds: (o.kinds ?? []).map((k) => KINDS[k]) },
      this.client.opts(o),
    );
    const first = await it.next();
    if (first.done) throw BackplaneError.unavailable('the event stream ended before it started');
    return (async function* () {
      for await (const m of it)
        yield { seq: m.seq, kind: KIND_NAMES[m.kind] as EventKindName, record: m.record as TupleRecord };
    })();
  }

  /** The generic entry point: any command by name with an argument tuple (the seed's ts.command). */
  async command(
    name: string,
    arg?: Tuple,
    o: Options & { template?: Template; id?: number; ttlMs?: number; limit?: number; tuples?: Tuple[] } = {},
  ): Promise<{ result?: Tuple; records: TupleRecord[]; count: number; ids: number[] }> {
    return this.client.call(
      TupleSpaceServiceService.command,
      this.raw.command.bind(this.raw),
      {
        space: this.name,
        command: name,
        arg,
        template: o.template,
        id: o.id ?? 0,
        ttlMs: o.ttlMs ?? 0,
        limit: o.limit ?? 0,
        tuples: o.tuples ?? [],
        txnId: txnId(o),
      },
      o,
    );
  }

  async addFactory(factory: string, o?: CallOptions): Promise<void> {
    await unary(this.raw.addFactory.bind(this.raw), { space: this.name, factory }, this.client.opts(o));
  }

  async removeFactory(index: number, o?: CallOptions): Promise<void> {
    await unary(this.raw.removeFactory.bind(this.raw), { space: this.name, index }, this.client.opts(o));
  }

  async addHandler(command: string, handler: string, o?: CallOptions): Promise<void> {
    await unary(
      this.raw.addHandler.bind(this.raw),
      { space: this.name, command, handler },
      this.client.opts(o),
    );
  }

  /** The factory stack, top first (the last is "basic"), with each factory's command → handler map. */
  async factories(o?: CallOptions): Promise<Array<{ name: string; handlers: Record<string, string> }>> {
    return (await unary(this.raw.listFactories.bind(this.raw), { space: this.name }, this.client.opts(o)))
      .factories;
  }
}
