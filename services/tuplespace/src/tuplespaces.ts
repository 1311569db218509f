import {
  AsyncLock,
  BackplaneError,
  GroupCommitter,
  type Logger,
  type Store,
  type StoreOp,
  silentLogger,
} from '@backplane/runtime';
import { type AclEntry, permissionsOf, Users, validateAcl } from './access';
import { basicFactory } from './basic';
import {
  BUILTIN_PERMISSIONS,
  CUSTOM_COMMAND_PERMISSIONS,
  type Invocation,
  type Outcome,
  type Permission,
  type Principal,
  type SpaceHandle,
  type TSFactory,
  type TSHandler,
} from './command';
import { decodeEntry, keys } from './persistence';
import { PluginLoader } from './plugins';
import { SpaceData } from './space';
import { Transactions } from './transactions';

const SPACE_NAME = /^[A-Za-z0-9._-]{1,128}$/;
/** The space every server has, open to everyone (like TSpaces' default "Galaxy"). */
export const DEFAULT_SPACE = 'default';
/** Most factories on one stack (above the basic one). */
export const MAX_FACTORIES = 16;

interface FactoryMeta {
  name: string;
  handlers: Record<string, string>;
}

interface SpaceMeta {
  name: string;
  acl: AclEntry[];
  /** Factories above the basic one, top first. */
  factories: FactoryMeta[];
  /** What handlers keep across restarts (SpaceHandle.settings), e.g. stale-tuple's START period. */
  settings?: Record<string, string>;
}

/** A TupleSpace: its data, its factory stack (top first, basic last) and its ACL. */
interface Space {
  meta: SpaceMeta;
  data: SpaceData;
  stack: TSFactory[];
  handle: SpaceHandle;
  closers: Array<() => void>;
  /** Meta changes one at a time, so two concurrent admin calls cannot lose one another's change. */
  metaLock: AsyncLock;
}

export interface TupleSpacesOptions {
  store: Store;
  pluginsDir?: string;
  log?: Logger;
  /** How often expired tuples are removed (they never match from the moment they expire). */
  reapEveryMs?: number;
}

/**
 * The tuple-space server's domain: named spaces, each a TSDB plus a stack of handler factories, users
 * and ACLs, transactions. Every command goes through `dispatch`, which checks the caller's permissions
 * for the handler that will run it.
 */
export class TupleSpaces {
  readonly users: Users;
  readonly transactions: Transactions;
  private readonly committer: GroupCommitter;
  private readonly spaces = new Map<string, Space>();
  /** Spaces being deleted: creating one of the same name waits until its old tuples are gone. */
  private readonly deleting = new Map<string, Promise<void>>();
  private readonly plugins: PluginLoader;
  private readonly log: Logger;
  private readonly reaper: NodeJS.Timeout;
  private closed = false;

  private constructor(private readonly options: TupleSpacesOptions) {
    this.log = options.log ?? silentLogger();
    this.committer = new GroupCommitter(options.store);
    this.users = new Users(options.store, this.committer);
    this.transactions = new Transactions(this.committer, this.log);
    this.plugins = new PluginLoader(options.pluginsDir);
    this.reaper = setInterval(() => void this.reapExpired(), options.reapEveryMs ?? 250);
    this.reaper.unref();
  }

  /** Loads users, spaces and tuples from the store (creating the default space on first start). */
  static async open(options: TupleSpacesOptions): Promise<TupleSpaces> {
    const ts = new TupleSpaces(options);
    await ts.users.load();
    const store = options.store;
    for await (const [, value] of store.iterator({ gte: 's/', lt: 's0' })) {
      const meta = JSON.parse(value) as SpaceMeta;
      ts.mount(meta);
    }
    for await (const [key, value] of store.iterator({ gte: 'q/', lt: 'q0' })) {
      const space = ts.spaces.get(String(key).slice(2));
      if (space) space.data.seq = Number(value);
    }
    let loaded = 0;
    for await (const [key, value] of store.iterator({ gte: 't/', lt: 't0' })) {
      const k = String(key);
      const name = k.slice(2, k.lastIndexOf('/'));
      const space = ts.spaces.get(name);
      if (!space) continue;
      space.data.db.insert(decodeEntry(value));
      loaded++;
    }
    for await (const [key, value] of store.iterator({ gte: 'n/', lt: 'n0' })) {
      const space = ts.spaces.get(String(key).slice(2));
      if (!space) continue;
      space.data.idHigh = Number(value);
      space.data.db.nextId = Math.max(space.data.db.nextId, Number(value));
    }
    if (!ts.spaces.has(DEFAULT_SPACE)) {
      await ts.saveMeta({
        name: DEFAULT_SPACE,
        acl: [{ principal: '*', permissions: ['READ', 'WRITE'] }],
        factories: [],
      });
      ts.mount({
        name: DEFAULT_SPACE,
        acl: [{ principal: '*', permissions: ['READ', 'WRITE'] }],
        factories: [],
      });
    }
    for (const space of ts.spaces.values()) ts.openStack(space);
    ts.log.info({ spaces: ts.spaces.size, tuples: loaded, users: ts.users.size }, 'tuple spaces loaded');
    return ts;
  }

  /** Changes a space's meta record: written first, then applied, one change at a time per space. */
  private async updateMeta(space: Space, change: (meta: SpaceMeta) => SpaceMeta): Promise<SpaceMeta> {
    const release = await space.metaLock.acquire();
    try {
      const meta = change(space.meta);
      await this.saveMeta(meta);
      space.meta = meta;
      return meta;
    } finally {
      release();
    }
  }

  private saveMeta(meta: SpaceMeta, extra: StoreOp[] = []): Promise<void> {
    return this.committer.commit([
      { type: 'put', key: keys.space(meta.name), value: JSON.stringify(meta) },
      ...extra,
    ]);
  }

  /** Builds the in-memory space for a meta record (its stack from the plugin modules it names). */
  private mount(meta: SpaceMeta): Space {
    const data = new SpaceData(meta.name, this.committer);
    const space = {
      meta,
      data,
      stack: [] as TSFactory[],
      closers: [] as Array<() => void>,
      metaLock: new AsyncLock(),
    } as Space;
    space.handle = this.handleFor(space);
    const basic = basicFactory(data, this.transactions);
    space.stack = [...meta.factories.map((f) => this.loadFactory(meta.name, f)), basic];
    this.spaces.set(meta.name, space);
    return space;
  }

  /**
   * A factory of a stored stack, with its handlers. A module that is gone from the plugins directory
   * does not stop the server: its place in the stack refuses every command (FAILED_PRECONDITION) until
   * the module is back or an admin removes the factory, so the space never runs without a handler the
   * admin put there (it may enforce a rule).
   */
  private loadFactory(space: string, f: FactoryMeta): TSFactory {
    try {
      const factory = this.plugins.factory(f.name);
      for (const [command, handler] of Object.entries(f.handlers))
        factory.addHandler?.(command, handler, this.plugins.handler(handler));
      return factory;
    } catch (err) {
      this.log.error({ err, space, factory: f.name }, 'a factory of this space cannot be loaded');
      const missing: TSHandler = {
        attributes: () => [],
        command: () => {
          throw BackplaneError.incorrectState(
            `factory ${f.name} of space ${space} cannot be loaded (${(err as Error).message}); put the module back or remove the factory`,
            { reason: 'PLUGIN_NOT_FOUND' },
          );
        },
      };
      return { name: f.name, handles: () => missing, handlerNames: () => f.handlers };
    }
  }

  /** Lets the factories and handlers of a loaded stack resume what they had started (timers). */
  private openStack(space: Space): void {
    for (const f of space.stack) {
      try {
        f.open?.(space.handle);
      } catch (err) {
        this.log.error({ err, space: space.meta.name, factory: f.name }, 'a factory failed to resume');
      }
    }
  }

  private handleFor(space: Space): SpaceHandle {
    const system: Principal = { user: `system:${space.meta.name}`, groups: ['admin'] };
    return {
      name: space.meta.name,
      log: this.log.child({ space: space.meta.name }),
      mostBasicHandler(command) {
        const h = (space.stack[space.stack.length - 1] as TSFactory).handles(command, {
          command,
          principal: system,
        });
        if (!h) throw BackplaneError.notFound(`no built-in command ${command}`);
        return h;
      },
      dispatch: (inv) => this.run(space, inv),
      transactions: {
        begin: (idle, owner = system) => this.transactions.begin(idle, owner.user),
        commit: (id, owner = system) => this.transactions.commit(id, owner.user),
        abort: (id, owner = system) => this.transactions.abort(id, owner.user),
      },
      onClose: (fn) => space.closers.push(fn),
      settings: {
        get: (key) => space.meta.settings?.[key],
        set: async (key, value) => {
          await this.updateMeta(space, (m) => {
            const settings = { ...m.settings };
            if (value === undefined) delete settings[key];
            else settings[key] = value;
            return { ...m, settings };
          });
        },
      },
      system,
    };
  }

  // ---- spaces ------------------------------------------------------------------------------------

  /**
   * The space, if the principal may see it. A caller without any permission on an existing space gets
   * the same NOT_FOUND as for a missing one: strangers cannot probe for names.
   */
  private visible(principal: Principal, name: string): { space: Space; perms: Set<Permission> } {
    const space = this.spaces.get(name);
    const perms = space ? permissionsOf(principal, space.meta.acl) : new Set<Permission>();
    if (!space || perms.size === 0)
      throw BackplaneError.notFound(`no space named ${JSON.stringify(name)}`, { reason: 'SPACE_NOT_FOUND' });
    return { space, perms };
  }

  private require(principal: Principal, name: string, perm: Permission): Space {
    const { space, perms } = this.visible(principal, name);
    if (!perms.has(perm))
      throw BackplaneError.permissionDenied(`${principal.user} lacks ${perm} on space ${name}`);
    return space;
  }

  async createSpace(
    principal: Principal,
    name: string,
    acl: AclEntry[],
    ifNotExists: boolean,
  ): Promise<boolean> {
    if (principal.user === 'anonymous')
      throw BackplaneError.of(
        'AUTHENTICATION_FAILED',
        'creating a space needs a user (authorization: Basic …)',
      );
    await this.deleting.get(name)?.catch(() => {});
    if (!SPACE_NAME.test(name))
      throw BackplaneError.badParameter('space names are 1-128 of A-Z a-z 0-9 . _ -', {
        reason: 'BAD_SPACE_NAME',
      });
    validateAcl(acl);
    const existing = this.spaces.get(name);
    if (existing) {
      if (ifNotExists && permissionsOf(principal, existing.meta.acl).size > 0) return false;
      throw BackplaneError.alreadyExists(`space ${name} exists`);
    }
    const meta: SpaceMeta = {
      name,
      acl: [{ principal: principal.user, permissions: ['ADMIN'] }, ...acl],
      factories: [],
    };
    // mounted first, so two concurrent creates cannot both succeed
    this.mount(meta);
    try {
      await this.saveMeta(meta);
    } catch (err) {
      this.spaces.delete(name);
      throw err;
    }
    return true;
  }

  async deleteSpace(principal: Principal, name: string): Promise<void> {
    const space = this.require(principal, name, 'ADMIN');
    if (name === DEFAULT_SPACE) throw BackplaneError.incorrectState('the default space cannot be deleted');
    this.spaces.delete(name);
    this.transactions.dropSpace(space.data);
    this.closeSpace(
      space,
      BackplaneError.notFound(`space ${name} was deleted`, { reason: 'SPACE_NOT_FOUND' }),
    );
    const done = this.removeSpaceData(name);
    this.deleting.set(name, done);
    try {
      await done;
    } finally {
      if (this.deleting.get(name) === done) this.deleting.delete(name);
    }
  }

  /**
   * A deleted space's tuples go from the store once every write already on its way has landed, then its
   * record: a crash in between leaves the space, empty; its ids and event numbers go on where they were.
   */
  private async removeSpaceData(name: string): Promise<void> {
    await this.committer.barrier();
    await this.options.store.clear({ gte: keys.tuplePrefix(name), lt: `t/${name}0` });
    await this.committer.commit([
      { type: 'del', key: keys.space(name) },
      { type: 'del', key: keys.seq(name) },
      { type: 'del', key: keys.nextId(name) },
    ]);
  }

  listSpaces(
    principal: Principal,
  ): Array<{ name: string; tuples: number; acl: AclEntry[]; permissions: Permission[] }> {
    const out = [];
    for (const s of this.spaces.values()) {
      const perms = permissionsOf(principal, s.meta.acl);
      if (perms.size === 0) continue;
      out.push({
        name: s.meta.name,
        tuples: s.data.db.size,
        acl: perms.has('ADMIN') ? s.meta.acl : [],
        permissions: [...perms],
      });
    }
    return out.sort((a, b) => (a.name < b.name ? -1 : 1));
  }

  async setAcl(principal: Principal, name: string, acl: AclEntry[]): Promise<void> {
    const space = this.require(principal, name, 'ADMIN');
    validateAcl(acl);
    await this.updateMeta(space, (m) => ({ ...m, acl }));
  }

  // ---- the factory stack -------------------------------------------------------------------------

  async addFactory(principal: Principal, name: string, factoryName: string): Promise<void> {
    const space = this.require(principal, name, 'ADMIN');
    if (space.stack.length - 1 >= MAX_FACTORIES)
      throw BackplaneError.of('RESOURCE_EXHAUSTED', `at most ${MAX_FACTORIES} factories per space`);
    const factory = this.plugins.factory(factoryName);
    await this.updateMeta(space, (m) => {
      if (m.factories.length >= MAX_FACTORIES)
        throw BackplaneError.of('RESOURCE_EXHAUSTED', `at most ${MAX_FACTORIES} factories per space`);
      return { ...m, factories: [{ name: factoryName, handlers: {} }, ...m.factories] };
    });
    space.stack.unshift(factory);
    factory.open?.(space.handle);
  }

  async removeFactory(principal: Principal, name: string, index: number): Promise<void> {
    const space = this.require(principal, name, 'ADMIN');
    await this.updateMeta(space, (m) => {
      if (index >= m.factories.length)
        throw BackplaneError.badParameter(
          `the stack has ${m.factories.length} removable factories above "basic"; index ${index} is not one`,
        );
      return { ...m, factories: m.factories.filter((_, i) => i !== index) };
    });
    const [removed] = space.stack.splice(index, 1);
    removed?.close?.();
  }

  listFactories(
    principal: Principal,
    name: string,
  ): Array<{ name: string; handlers: Record<string, string> }> {
    const { space } = this.visible(principal, name);
    return space.stack.map((f) => ({ name: f.name, handlers: f.handlerNames?.() ?? {} }));
  }

  async addHandler(principal: Principal, name: string, command: string, handlerName: string): Promise<void> {
    const space = this.require(principal, name, 'ADMIN');
    const cmd = validateCommandName(command);
    const index = space.stack.findIndex((f) => f.addHandler);
    if (index < 0 || index >= space.meta.factories.length)
      throw BackplaneError.incorrectState(
        'no extendable factory on this stack: AddFactory("extendable") first',
      );
    const handler = this.plugins.handler(handlerName);
    const factory = space.stack[index];
    await this.updateMeta(space, (m) => {
      if (m.factories[index]?.name !== factory?.name)
        throw BackplaneError.incorrectState('the stack changed meanwhile; try again');
      return {
        ...m,
        factories: m.factories.map((f, i) =>
          i === index ? { ...f, handlers: { ...f.handlers, [cmd]: handlerName } } : f,
        ),
      };
    });
    factory?.addHandler?.(cmd, handlerName, handler);
    handler.open?.(space.handle);
  }

  // ---- commands ----------------------------------------------------------------------------------

  /** Sends a command to the top of the space's stack, after checking the caller may run its handler. */
  dispatch(principal: Principal, spaceName: string, inv: Invocation): Promise<Outcome> {
    const { space } = this.visible(principal, spaceName);
    return this.run(space, { ...inv, command: validateCommandName(inv.command), principal });
  }

  private async run(space: Space, inv: Invocation): Promise<Outcome> {
    const handler = space.stack.reduce<ReturnType<TSFactory['handles']>>(
      (found, f) => found ?? f.handles(inv.command, inv),
      undefined,
    );
    // a command no factory handles is a bad parameter (the vocabulary's INVALID_ARGUMENT), not a missing
    // gRPC method: the long fuzz run caught UNIMPLEMENTED here
    if (!handler)
      throw BackplaneError.badParameter(
        `no factory of space ${space.meta.name} handles ${inv.command}: add a factory or handler that does`,
        { reason: 'UNKNOWN_COMMAND' },
      );
    const needed =
      handler.attributes?.(inv.command, inv) ??
      BUILTIN_PERMISSIONS[inv.command] ??
      CUSTOM_COMMAND_PERMISSIONS;
    const perms = permissionsOf(inv.principal, space.meta.acl);
    for (const p of needed)
      if (!perms.has(p))
        throw BackplaneError.permissionDenied(`${inv.command} needs ${p} on space ${space.meta.name}`);
    const txn = this.transactions.use(inv.txnId, inv.principal.user);
    if (txn) txn.active++;
    try {
      return await handler.command(space.handle, inv.command, inv);
    } finally {
      if (txn) {
        txn.active--;
        txn.lastUsed = Date.now();
      }
    }
  }

  // ---- upkeep ------------------------------------------------------------------------------------

  private async reapExpired(): Promise<void> {
    for (const s of this.spaces.values()) {
      try {
        await s.data.reapExpired();
      } catch (err) {
        this.log.error({ err, space: s.meta.name }, 'removing expired tuples failed');
      }
    }
  }

  stats(): { spaces: number; tuples: number; waiting: number; transactions: number } {
    let tuples = 0;
    let waiting = 0;
    for (const s of this.spaces.values()) {
      tuples += s.data.db.size;
      waiting += s.data.waiting;
    }
    return { spaces: this.spaces.size, tuples, waiting, transactions: this.transactions.open };
  }

  private closeSpace(space: Space, reason: BackplaneError): void {
    for (const fn of space.closers.splice(0)) fn();
    for (const f of space.stack) f.close?.();
    space.data.close(reason);
  }

  /** Ends waiters and registrations (UNAVAILABLE), aborts open transactions, writes what is pending. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.reaper);
    this.transactions.close();
    for (const s of this.spaces.values())
      this.closeSpace(s, BackplaneError.unavailable('the server is stopping'));
    await this.committer.flush();
  }
}

const COMMAND_NAME = /^[A-Z][A-Z0-9_]{0,63}$/;

function validateCommandName(command: string): string {
  if (!COMMAND_NAME.test(command))
    throw BackplaneError.badParameter(
      `command names are upper-case words (A-Z 0-9 _), got ${JSON.stringify(command)}`,
    );
  return command;
}
