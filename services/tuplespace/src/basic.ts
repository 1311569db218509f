import { EventKind } from '@backplane/proto/tuplespace';
import { BackplaneError } from '@backplane/runtime';
import type { Invocation, Outcome, TSFactory, TSHandler } from './command';
import { type SpaceData, toRecord } from './space';
import type { Transactions, Txn } from './transactions';
import type { Entry } from './tsdb';
import { validateTemplate, validateTuple } from './tuple';

/** Most tuples a SCAN or CONSUMING_SCAN returns (and the default limit). */
export const MAX_SCAN = 10_000;
/** Most tuples one MULTI_WRITE may carry. */
export const MAX_MULTI_WRITE = 10_000;

function limitOf(inv: Invocation): number {
  const l = inv.limit ?? 0;
  if (!Number.isInteger(l) || l < 0)
    throw BackplaneError.badParameter('limit must be a non-negative integer');
  return l === 0 ? MAX_SCAN : Math.min(l, MAX_SCAN);
}

function ttlOf(inv: Invocation): number {
  const t = inv.ttlMs ?? 0;
  if (!Number.isSafeInteger(t) || t < 0)
    throw BackplaneError.badParameter('ttl_ms must be 0 (forever) or more');
  return t;
}

const template = (inv: Invocation) => validateTemplate(inv.template);

/**
 * The bottom of every space's stack: the built-in commands over the space's TSDB. Everything a client can
 * ask for by name ends here unless a factory above takes it over.
 */
export function basicFactory(data: SpaceData, txns: Transactions): TSFactory {
  const txnOf = (inv: Invocation) => txns.use(inv.txnId, inv.principal.user);
  /**
   * A take whose caller went away while its removal was being written: nobody will get the answer, so the
   * tuples are written back (they were acknowledged once and must not vanish unseen).
   */
  const putBackIfGone = async (inv: Invocation, txn: Txn | undefined, taken: Entry[]) => {
    // inside a transaction the take is undone by its abort
    if (txn || !inv.signal?.aborted) return;
    await data.putBack(taken);
    throw inv.signal.reason;
  };
  const impl: Record<string, (inv: Invocation) => Promise<Outcome>> = {
    async WRITE(inv) {
      const tuple = validateTuple(inv.arg);
      const [e] = await data.write([tuple], ttlOf(inv), txnOf(inv));
      return { ids: [e?.id as number], records: e ? [toRecord(e)] : [] };
    },
    async MULTI_WRITE(inv) {
      const tuples = inv.tuples ?? [];
      if (tuples.length > MAX_MULTI_WRITE)
        throw BackplaneError.badParameter(`at most ${MAX_MULTI_WRITE} tuples per MULTI_WRITE`);
      tuples.forEach((t, i) => {
        validateTuple(t, `tuple ${i}`);
      });
      const entries = await data.write(tuples, ttlOf(inv), txnOf(inv));
      return { ids: entries.map((e) => e.id) };
    },
    async READ(inv) {
      const e = data.read(template(inv), txnOf(inv));
      return e ? { found: true, records: [toRecord(e)] } : { found: false };
    },
    async TAKE(inv) {
      const txn = txnOf(inv);
      const e = await data.take(template(inv), txn);
      if (e) await putBackIfGone(inv, txn, [e]);
      return e ? { found: true, records: [toRecord(e)] } : { found: false };
    },
    async WAIT_TO_READ(inv) {
      const t = template(inv);
      const txn = txnOf(inv);
      const e =
        data.read(t, txn) ?? (await data.wait(t, false, txn, txn?.signalWith(inv.signal) ?? inv.signal));
      return { found: true, records: [toRecord(e)] };
    },
    async WAIT_TO_TAKE(inv) {
      const t = template(inv);
      const txn = txnOf(inv);
      // gone already, or too near its deadline to be handed anything (the server's margin)
      if (inv.signal?.aborted) throw inv.signal.reason;
      const now = await data.take(t, txn);
      if (now) {
        await putBackIfGone(inv, txn, [now]);
        return { found: true, records: [toRecord(now)] };
      }
      const e = await data.wait(t, true, txn, txn?.signalWith(inv.signal) ?? inv.signal);
      if (inv.signal?.aborted && !txn) {
        // the caller went away while the tuple was on its way: it goes back, nothing is lost
        data.restore(e);
        throw inv.signal.reason;
      }
      // handed over just before its transaction ended: the take counts if the transaction committed
      if (txn && txn.state !== 'open' && !(await txn.outcome)) {
        throw BackplaneError.incorrectState('the transaction was aborted while the call waited', {
          reason: 'TXN_ENDED',
        });
      }
      await data.finishWaitTake(e, txn);
      await putBackIfGone(inv, txn, [e]);
      return { found: true, records: [toRecord(e)] };
    },
    async SCAN(inv) {
      return { records: data.scan(template(inv), txnOf(inv), limitOf(inv)).map(toRecord) };
    },
    async CONSUMING_SCAN(inv) {
      const txn = txnOf(inv);
      const found = data.scan(template(inv), txn, limitOf(inv));
      await data.removeEntries(found, EventKind.EVENT_KIND_TAKE, txn);
      await putBackIfGone(inv, txn, found);
      return { records: found.map(toRecord) };
    },
    async COUNT(inv) {
      return { count: data.count(template(inv), txnOf(inv)) };
    },
    async DELETE(inv) {
      const txn = txnOf(inv);
      const found = data.scan(template(inv), txn, Number.POSITIVE_INFINITY);
      await data.removeEntries(found, EventKind.EVENT_KIND_DELETE, txn);
      return { count: found.length };
    },
    async UPDATE(inv) {
      const tuple = validateTuple(inv.arg);
      const ttl = inv.ttlMs ?? 0;
      if (!Number.isSafeInteger(ttl) || ttl < -1)
        throw BackplaneError.badParameter('ttl_ms must be -1 (forever), 0 (keep) or more');
      const e = await data.update(inv.id ?? 0, tuple, ttl, txnOf(inv));
      return { found: true, records: [toRecord(e)] };
    },
    async READ_BY_ID(inv) {
      const e = data.readById(inv.id ?? 0, txnOf(inv));
      return e ? { found: true, records: [toRecord(e)] } : { found: false };
    },
    async EVENT_REGISTER(inv) {
      const kinds = (inv.arg?.fields ?? []).map((f) =>
        f.value?.kind?.$case === 'intValue' ? (f.value.kind.intValue as EventKind) : EventKind.UNRECOGNIZED,
      );
      if (kinds.some((k) => !(k >= EventKind.EVENT_KIND_WRITE && k <= EventKind.EVENT_KIND_EXPIRE)))
        throw BackplaneError.badParameter('unknown event kind');
      return { events: data.subscribe(template(inv), kinds, inv.signal) };
    },
  };
  const handlers = new Map<string, TSHandler>(
    Object.entries(impl).map(([name, run]) => [name, { command: (_ts, _cmd, inv) => run(inv) }]),
  );
  return {
    name: 'basic',
    handles: (command) => handlers.get(command),
    handlerNames: () => Object.fromEntries([...handlers.keys()].map((k) => [k, 'basic'])),
  };
}
