import {
  EventKind,
  type AclEntry as PbAclEntry,
  Permission as PbPermission,
  type TupleRecord,
  TupleSpaceServiceService,
} from '@backplane/proto/tuplespace';
import { BackplaneError, type CallContext, type ServiceRegistration, service } from '@backplane/runtime';
import type { AclEntry } from './access';
import type { Invocation, Outcome, Permission, Principal } from './command';
import type { TupleSpaces } from './tuplespaces';

const PERMS: Record<number, Permission> = {
  [PbPermission.PERMISSION_READ]: 'READ',
  [PbPermission.PERMISSION_WRITE]: 'WRITE',
  [PbPermission.PERMISSION_ADMIN]: 'ADMIN',
};
const PB_PERMS: Record<Permission, PbPermission> = {
  READ: PbPermission.PERMISSION_READ,
  WRITE: PbPermission.PERMISSION_WRITE,
  ADMIN: PbPermission.PERMISSION_ADMIN,
};

function aclFromProto(acl: PbAclEntry[]): AclEntry[] {
  return acl.map((e) => ({
    principal: e.principal,
    permissions: e.permissions.map((p) => {
      const perm = PERMS[p];
      if (!perm) throw BackplaneError.badParameter(`unknown permission ${p}`);
      return perm;
    }),
  }));
}

const aclToProto = (acl: AclEntry[]): PbAclEntry[] =>
  acl.map((e) => ({ principal: e.principal, permissions: e.permissions.map((p) => PB_PERMS[p]) }));

const one = (o: Outcome): TupleRecord | undefined => o.records?.[0];

/** Records per streamed message of a scan. */
const SCAN_BATCH = 256;

/** The default of TupleSpaceServerOptions.waitMarginMs. */
export const DEFAULT_WAIT_MARGIN_MS = 100;

/**
 * The signal a WAIT_TO_TAKE waits with: the call's own, aborted `marginMs` before the call's deadline
 * with DEADLINE_EXCEEDED, reason NO_MATCH_IN_TIME. A server cannot know whether a unary answer arrived;
 * one sent a margin before the deadline normally does, so a tuple is handed over only then, and a caller
 * that gets DEADLINE_EXCEEDED from the server took nothing.
 */
function handOverSignal(ctx: CallContext, marginMs: number): { signal: AbortSignal; done(): void } {
  if (ctx.deadline === undefined || !Number.isFinite(ctx.deadline) || marginMs <= 0)
    return { signal: ctx.signal, done: () => undefined };
  const ac = new AbortController();
  const parent = ctx.signal;
  const onParent = () => ac.abort(parent.reason);
  if (parent.aborted) onParent();
  else parent.addEventListener('abort', onParent, { once: true });
  const tooLate = () =>
    ac.abort(
      BackplaneError.of(
        'TIMEOUT',
        `no match before the deadline (no tuple is handed over in its last ${marginMs} ms, so that ` +
          'an answer reaches the caller in time): nothing was taken',
        { reason: 'NO_MATCH_IN_TIME' },
      ),
    );
  const left = ctx.deadline - marginMs - Date.now();
  let timer: NodeJS.Timeout | undefined;
  if (left <= 0) tooLate();
  else timer = setTimeout(tooLate, left);
  return {
    signal: ac.signal,
    done: () => {
      clearTimeout(timer);
      parent.removeEventListener('abort', onParent);
    },
  };
}

/** TupleSpaceService RPCs ↔ TupleSpaces: every space command goes through the space's factory stack. */
export function tupleSpaceService(
  ts: TupleSpaces,
  options: { waitMarginMs?: number | undefined } = {},
): ServiceRegistration {
  const waitMarginMs = options.waitMarginMs ?? DEFAULT_WAIT_MARGIN_MS;
  const who = (ctx: CallContext): Promise<Principal> => {
    const h = ctx.metadata.get('authorization')[0];
    return ts.users.authenticate(typeof h === 'string' ? h : h?.toString('utf8'));
  };
  const run = async (ctx: CallContext, space: string, inv: Omit<Invocation, 'principal'>) => {
    const principal = await who(ctx);
    return ts.dispatch(principal, space, { ...inv, principal });
  };
  const admin = async (ctx: CallContext) => {
    const p = await who(ctx);
    if (!p.groups.includes('admin')) throw BackplaneError.permissionDenied('only server admins manage users');
    return p;
  };
  const stream = async <T>(records: TupleRecord[], send: (m: { records: TupleRecord[] }) => Promise<T>) => {
    for (let i = 0; i < records.length; i += SCAN_BATCH)
      await send({ records: records.slice(i, i + SCAN_BATCH) });
  };

  return service(TupleSpaceServiceService, {
    createSpace: async (req, ctx) => ({
      created: await ts.createSpace(await who(ctx), req.space, aclFromProto(req.acl), req.ifNotExists),
    }),
    deleteSpace: async (req, ctx) => {
      await ts.deleteSpace(await who(ctx), req.space);
      return {};
    },
    listSpaces: async (_req, ctx) => ({
      spaces: ts.listSpaces(await who(ctx)).map((s) => ({
        name: s.name,
        tuples: s.tuples,
        acl: aclToProto(s.acl),
        permissions: s.permissions.map((p) => PB_PERMS[p]),
      })),
    }),
    setAcl: async (req, ctx) => {
      await ts.setAcl(await who(ctx), req.space, aclFromProto(req.acl));
      return {};
    },

    write: async (req, ctx) => {
      const o = await run(ctx, req.space, {
        command: 'WRITE',
        arg: req.tuple,
        ttlMs: req.ttlMs,
        txnId: req.txnId,
      });
      return { id: o.ids?.[0] ?? one(o)?.id ?? 0, result: o.result };
    },
    multiWrite: async (req, ctx) => {
      const o = await run(ctx, req.space, {
        command: 'MULTI_WRITE',
        tuples: req.tuples,
        ttlMs: req.ttlMs,
        txnId: req.txnId,
      });
      return { ids: o.ids ?? [] };
    },
    read: async (req, ctx) => {
      const o = await run(ctx, req.space, { command: 'READ', template: req.template, txnId: req.txnId });
      return { found: Boolean(o.found), record: one(o) };
    },
    take: async (req, ctx) => {
      const o = await run(ctx, req.space, {
        command: 'TAKE',
        template: req.template,
        txnId: req.txnId,
        signal: ctx.signal,
      });
      return { found: Boolean(o.found), record: one(o) };
    },
    waitToRead: async (req, ctx) => {
      const o = await run(ctx, req.space, {
        command: 'WAIT_TO_READ',
        template: req.template,
        txnId: req.txnId,
        signal: ctx.signal,
      });
      return { record: one(o) };
    },
    waitToTake: async (req, ctx) => {
      const handOver = handOverSignal(ctx, waitMarginMs);
      try {
        const o = await run(ctx, req.space, {
          command: 'WAIT_TO_TAKE',
          template: req.template,
          txnId: req.txnId,
          signal: handOver.signal,
        });
        return { record: one(o) };
      } finally {
        handOver.done();
      }
    },
    scan: async (req, sink, ctx) => {
      const o = await run(ctx, req.space, {
        command: 'SCAN',
        template: req.template,
        limit: req.limit,
        txnId: req.txnId,
      });
      await stream(o.records ?? [], (m) => sink.send(m));
    },
    consumingScan: async (req, sink, ctx) => {
      const o = await run(ctx, req.space, {
        command: 'CONSUMING_SCAN',
        template: req.template,
        limit: req.limit,
        txnId: req.txnId,
        signal: ctx.signal,
      });
      await stream(o.records ?? [], (m) => sink.send(m));
    },
    count: async (req, ctx) => {
      const o = await run(ctx, req.space, { command: 'COUNT', template: req.template, txnId: req.txnId });
      return { count: o.count ?? 0 };
    },
    delete: async (req, ctx) => {
      const o = await run(ctx, req.space, { command: 'DELETE', template: req.template, txnId: req.txnId });
      return { deleted: o.count ?? 0 };
    },
    update: async (req, ctx) => {
      const o = await run(ctx, req.space, {
        command: 'UPDATE',
        id: req.id,
        arg: req.tuple,
        ttlMs: req.ttlMs,
        txnId: req.txnId,
      });
      return { record: one(o) };
    },
    readById: async (req, ctx) => {
      const o = await run(ctx, req.space, { command: 'READ_BY_ID', id: req.id, txnId: req.txnId });
      return { found: Boolean(o.found), record: one(o) };
    },
    eventRegister: async (req, sink, ctx) => {
      const o = await run(ctx, req.space, {
        command: 'EVENT_REGISTER',
        template: req.template,
        // the kinds travel as the argTuple (ints), so a handler above can see and change them
        arg: {
          fields: req.kinds.map((k) => ({ name: '', value: { kind: { $case: 'intValue', intValue: k } } })),
        },
        signal: ctx.signal,
      });
      if (!o.events)
        throw BackplaneError.incorrectState('the EVENT_REGISTER handler returned no event stream');
      await sink.send({ seq: 0, kind: EventKind.EVENT_KIND_UNSPECIFIED, record: undefined });
      for await (const ev of o.events) await sink.send(ev);
    },

    begin: async (req, ctx) => {
      const principal = await who(ctx);
      return { txnId: ts.transactions.begin(req.idleTimeoutMs, principal.user) };
    },
    commit: async (req, ctx) => {
      await ts.transactions.commit(req.txnId, (await who(ctx)).user);
      return {};
    },
    abort: async (req, ctx) => {
      await ts.transactions.abort(req.txnId, (await who(ctx)).user);
      return {};
    },
    command: async (req, ctx) => {
      if (req.command === 'EVENT_REGISTER')
        throw BackplaneError.badParameter('EVENT_REGISTER streams: use the EventRegister RPC');
      const o = await run(ctx, req.space, {
        command: req.command,
        arg: req.arg,
        template: req.template,
        id: req.id,
        ttlMs: req.ttlMs,
        limit: req.limit,
        tuples: req.tuples,
        txnId: req.txnId,
        signal: ctx.signal,
      });
      return { result: o.result, records: o.records ?? [], count: o.count ?? 0, ids: o.ids ?? [] };
    },

    addFactory: async (req, ctx) => {
      await ts.addFactory(await who(ctx), req.space, req.factory);
      return {};
    },
    removeFactory: async (req, ctx) => {
      await ts.removeFactory(await who(ctx), req.space, req.index);
      return {};
    },
    listFactories: async (req, ctx) => ({ factories: ts.listFactories(await who(ctx), req.space) }),
    addHandler: async (req, ctx) => {
      await ts.addHandler(await who(ctx), req.space, req.command, req.handler);
      return {};
    },

    putUser: async (req, ctx) => {
      await admin(ctx);
      await ts.users.put(req.name, req.password, req.groups);
      return {};
    },
    deleteUser: async (req, ctx) => {
      await admin(ctx);
      await ts.users.delete(req.name);
      return {};
    },
    listUsers: async (_req, ctx) => {
      await admin(ctx);
      return { users: ts.users.list() };
    },
  });
}
