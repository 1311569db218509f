import type { EventKind, TupleRecord } from '@backplane/proto/tuplespace';
import type { Logger } from '@backplane/runtime';
import type { Template, Tuple } from './tuple';

export type Permission = 'READ' | 'WRITE' | 'ADMIN';

/** Who is calling: a user name (or "anonymous") and its groups. */
export interface Principal {
  readonly user: string;
  readonly groups: readonly string[];
}

/**
 * The built-in commands (the seed's TupleSpace.WRITE, …) and the permissions each needs by default (all of
 * them; the seed's `attributes()` returns an array). A take shows the caller what it removes, so TAKE,
 * WAIT_TO_TAKE and CONSUMING_SCAN need READ as well as WRITE; DELETE answers only a count, and needs WRITE.
 */
export const BUILTIN_PERMISSIONS: Readonly<Record<string, readonly Permission[]>> = {
  WRITE: ['WRITE'],
  MULTI_WRITE: ['WRITE'],
  READ: ['READ'],
  TAKE: ['READ', 'WRITE'],
  WAIT_TO_READ: ['READ'],
  WAIT_TO_TAKE: ['READ', 'WRITE'],
  SCAN: ['READ'],
  CONSUMING_SCAN: ['READ', 'WRITE'],
  COUNT: ['READ'],
  DELETE: ['WRITE'],
  UPDATE: ['WRITE'],
  READ_BY_ID: ['READ'],
  EVENT_REGISTER: ['READ'],
};

/** A custom command's default (a handler's `attributes()` may ask for more or less). */
export const CUSTOM_COMMAND_PERMISSIONS: readonly Permission[] = ['WRITE'];

/**
 * One command sent to a space: the seed's (command, argTuple) plus the typed arguments built-in commands
 * take. Handlers receive it and may pass a changed copy on (e.g. to mostBasicHandler).
 */
export interface Invocation {
  readonly command: string;
  /** The seed's argTuple: the tuple to WRITE, or a custom command's argument. */
  readonly arg?: Tuple;
  readonly template?: Template;
  readonly tuples?: Tuple[];
  readonly id?: number;
  readonly ttlMs?: number;
  readonly limit?: number;
  /** The transaction the command runs in. */
  readonly txnId?: string;
  readonly principal: Principal;
  /** Aborted when the caller goes away or its deadline passes. */
  readonly signal?: AbortSignal;
}

export interface SpaceEvent {
  seq: number;
  kind: EventKind;
  record: TupleRecord;
}

/** What a handler returns: whatever of these the command produces. */
export interface Outcome {
  result?: Tuple;
  records?: TupleRecord[];
  found?: boolean;
  count?: number;
  ids?: number[];
  /** EVENT_REGISTER: the events, until the caller stops iterating. */
  events?: AsyncIterable<SpaceEvent>;
}

/** The seed's TSHandler: implements one or more commands. */
export interface TSHandler {
  /** The permissions a caller needs for this command, all of them (default: BUILTIN_PERMISSIONS', or WRITE). */
  attributes?(command: string, inv: Invocation): readonly Permission[];
  command(ts: SpaceHandle, command: string, inv: Invocation): Promise<Outcome>;
  /**
   * Called once the handler is on a space's stack with the space loaded: after AddHandler, and again
   * after every server start. A handler resumes here what it started before (from `ts.settings`).
   */
  open?(ts: SpaceHandle): void;
  /** Called when it leaves the stack (its factory removed, or replaced by AddHandler): stop what it started. */
  close?(): void;
}

/** The seed's TSFactory: produces the handler for a command, or passes (undefined). */
export interface TSFactory {
  /** The module name it was loaded by. */
  readonly name: string;
  handles(command: string, inv: Invocation): TSHandler | undefined;
  /** Extendable factories (the seed's TSFExtendable) accept handlers at runtime. */
  addHandler?(command: string, handlerName: string, handler: TSHandler): void;
  /** command → handler module name, for ListFactories. */
  handlerNames?(): Record<string, string>;
  /** Stops whatever the factory's handlers started (timers). */
  close?(): void;
  /** Like TSHandler.open: the factory is on a loaded stack (after AddFactory and after each start). */
  open?(ts: SpaceHandle): void;
}

/** What a handler sees of its space (the seed's `ts` argument). */
export interface SpaceHandle {
  readonly name: string;
  readonly log: Logger;
  /** The bottom factory's handler for a command: the built-in behaviour, to wrap. */
  mostBasicHandler(command: string): TSHandler;
  /** Runs a command through the whole stack, as if a client sent it. */
  dispatch(inv: Invocation): Promise<Outcome>;
  /**
   * Server-wide transactions (the seed's TransactionManager). A transaction belongs to `owner` (default:
   * the space's system principal); commands in it must run as that principal.
   */
  readonly transactions: {
    begin(idleTimeoutMs?: number, owner?: Principal): string;
    commit(txnId: string, owner?: Principal): Promise<void>;
    abort(txnId: string, owner?: Principal): Promise<void>;
  };
  /**
   * Small strings a handler keeps with the space across restarts (its own configuration, not tuples).
   * Keys should start with the handler's module name.
   */
  readonly settings: {
    get(key: string): string | undefined;
    set(key: string, value: string | undefined): Promise<void>;
  };
  /** Registers something to stop when the space is deleted or the server stops. */
  onClose(fn: () => void): void;
  /** The principal server-internal work (a handler's own thread) runs as: ADMIN on this space. */
  readonly system: Principal;
}

/** A module that provides handlers or factories, loaded by name. */
export interface PluginModule {
  handlers?: Record<string, () => TSHandler>;
  factories?: Record<string, () => TSFactory>;
}
