import { BackplaneError } from '@backplane/runtime';
import type { Permission, PluginModule, SpaceHandle, TSHandler } from '../command';
import type { Template, Tuple } from '../tuple';

/** The field a stale tuple's first field becomes: when it goes stale. */
export const STALE_AT = 'staleAt';
/** A stale tuple is written with its time to live (ms) as a first field of this name. */
export const STALE_TTL = 'staleTtl';

interface State {
  enabled: boolean;
  timer?: NodeJS.Timeout;
  /** The handler instance that started the deleter (only its close stops it). */
  startedBy?: object;
  deleted: number;
}

/** Per space: the seed's `_enabled` switch and its StaleKiller thread. */
const states = new WeakMap<SpaceHandle, State>();
function stateOf(ts: SpaceHandle): State {
  let s = states.get(ts);
  if (!s) {
    s = { enabled: false, deleted: 0 };
    states.set(ts, s);
  }
  return s;
}

/** Matches every stale tuple whose time has passed: the seed's StaleTimestamp, as a range matcher. */
export const staleBefore = (ms: number): Template => ({
  fields: [
    {
      name: STALE_AT,
      kind: { $case: 'range', range: { lt: { kind: { $case: 'timestampValue', timestampValue: ms } } } },
    },
  ],
});

/**
 * The seed's StaleTupleSpaceHandler. WRITE: once START has run, a tuple whose first field is `staleTtl`
 * (int, ms) is stored with that field replaced by `staleAt` (timestamp = now + ttl), through the basic
 * WRITE; the result tuple carries the stamp. START(howOften ms): a periodic deleter that, inside a
 * transaction, deletes (basic DELETE) every tuple whose `staleAt` has passed. Base-system expiry
 * (ttl_ms on WRITE) makes this redundant, as the seed says, but it shows the whole handler contract.
 * START is kept with the space (its settings), so after a restart the deleter runs again by itself.
 */
export function staleTupleHandler(): TSHandler {
  /** The spaces this handler ran in: close() stops their deleters. */
  const spaces = new Set<SpaceHandle>();
  const self: TSHandler = {
    attributes: (command): Permission[] => (command === 'START' ? ['ADMIN'] : ['WRITE']),
    open(ts) {
      spaces.add(ts);
      const howOften = Number(ts.settings.get(HOW_OFTEN));
      if (howOften > 0) startDeleter(ts, stateOf(ts), howOften, self);
    },
    close() {
      for (const ts of spaces) {
        const state = stateOf(ts);
        // another instance of this module (WRITE and START added separately) keeps its deleter
        if (state.startedBy !== self) continue;
        if (state.timer) clearInterval(state.timer);
        state.timer = undefined;
        state.startedBy = undefined;
        state.enabled = false;
      }
      spaces.clear();
    },
    async command(ts, command, inv) {
      spaces.add(ts);
      const state = stateOf(ts);
      if (command === 'WRITE') {
        let tuple = inv.arg;
        const first = tuple?.fields[0];
        if (state.enabled && tuple && first?.name === STALE_TTL) {
          if (first.value?.kind?.$case !== 'intValue' || first.value.kind.intValue < 0)
            throw BackplaneError.badParameter(`${STALE_TTL} must be a non-negative int (ms)`);
          const at = Date.now() + first.value.kind.intValue;
          const stamped: Tuple = {
            fields: [
              { name: STALE_AT, value: { kind: { $case: 'timestampValue', timestampValue: at } } },
              ...tuple.fields.slice(1),
            ],
          };
          tuple = stamped;
        }
        const basic = ts.mostBasicHandler('WRITE');
        const out = await basic.command(ts, 'WRITE', { ...inv, arg: tuple });
        return { ...out, result: { fields: tuple?.fields[0] ? [tuple.fields[0]] : [] } };
      }
      if (command === 'START') {
        const f = inv.arg?.fields[0]?.value?.kind;
        if (f?.$case !== 'intValue' || f.intValue < 10 || f.intValue > 86_400_000)
          throw BackplaneError.badParameter('START takes (howOften: int ms, 10 ms .. 1 day)');
        const howOften = f.intValue;
        // kept with the space, so the deleter comes back after a restart (see open)
        await ts.settings.set(HOW_OFTEN, String(howOften));
        startDeleter(ts, state, howOften, self);
        return {
          result: {
            fields: [{ name: 'howOften', value: { kind: { $case: 'intValue', intValue: howOften } } }],
          },
        };
      }
      throw BackplaneError.badParameter(`the stale-tuple handler implements WRITE and START, not ${command}`);
    },
  };
  return self;
}

const HOW_OFTEN = 'stale-tuple.howOften';

function startDeleter(ts: SpaceHandle, state: State, howOften: number, by: object): void {
  if (state.timer) clearInterval(state.timer);
  state.startedBy = by;
  let running = false;
  const timer = setInterval(() => {
    if (running) return;
    running = true;
    void deleteStale(ts, state).finally(() => {
      running = false;
    });
  }, howOften);
  timer.unref();
  state.timer = timer;
  ts.onClose(() => clearInterval(timer));
  state.enabled = true; // enable the WRITE command
}

async function deleteStale(ts: SpaceHandle, state: State): Promise<void> {
  const txnId = ts.transactions.begin();
  try {
    const del = ts.mostBasicHandler('DELETE');
    const out = await del.command(ts, 'DELETE', {
      command: 'DELETE',
      template: staleBefore(Date.now()),
      txnId,
      principal: ts.system,
    });
    await ts.transactions.commit(txnId);
    state.deleted += out.count ?? 0;
  } catch (err) {
    await ts.transactions.abort(txnId).catch(() => undefined);
    ts.log.warn({ err }, 'stale-tuple deleter failed');
  }
}

export const staleTuplePlugin: PluginModule = { handlers: { 'stale-tuple': staleTupleHandler } };
