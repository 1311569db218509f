import { AsyncLock, BackplaneError } from '@backplane/runtime';
import type { Permission, PluginModule, TSHandler } from '../command';
import type { Template, Tuple } from '../tuple';

const str = (s: string) => ({ kind: { $case: 'stringValue' as const, stringValue: s } });
const int = (n: number) => ({ kind: { $case: 'intValue' as const, intValue: n } });

/** The counter tuple of `name`: ("counter", name, value). */
export const counterTemplate = (name: string): Template => ({
  fields: [
    { name: '', kind: { $case: 'actual', actual: str('counter') } },
    { name: '', kind: { $case: 'actual', actual: str(name) } },
    { name: '', kind: { $case: 'formal', formal: 2 } },
  ],
});

/**
 * INCR(name, delta = 1) → (value): an atomic counter kept as the tuple ("counter", name, value). The take
 * and the write happen in one transaction under a per-counter lock, so concurrent INCRs never lose an
 * update and a crash leaves either the old or the new value.
 */
export function counterHandler(): TSHandler {
  const locks = new Map<string, AsyncLock>();
  return {
    // INCR answers the new value: it reads the counter as well as changing it
    attributes: (): Permission[] => ['READ', 'WRITE'],
    async command(ts, command, inv) {
      if (command !== 'INCR')
        throw BackplaneError.badParameter(`the counter handler implements INCR, not ${command}`);
      const f = inv.arg?.fields ?? [];
      const name = f[0]?.value?.kind;
      const delta = f[1]?.value?.kind;
      if (name?.$case !== 'stringValue')
        throw BackplaneError.badParameter('INCR takes (name: string, delta?: int)');
      if (delta && delta.$case !== 'intValue') throw BackplaneError.badParameter('INCR delta must be an int');
      const by = delta?.$case === 'intValue' ? delta.intValue : 1;
      let lock = locks.get(name.stringValue);
      if (!lock) {
        lock = new AsyncLock();
        locks.set(name.stringValue, lock);
      }
      const release = await lock.acquire();
      try {
        const txnId = ts.transactions.begin(0, inv.principal);
        try {
          const take = ts.mostBasicHandler('TAKE');
          const taken = await take.command(ts, 'TAKE', {
            ...inv,
            command: 'TAKE',
            template: counterTemplate(name.stringValue),
            txnId,
          });
          const old = taken.records?.[0]?.tuple?.fields[2]?.value?.kind;
          const value = (old?.$case === 'intValue' ? old.intValue : 0) + by;
          if (!Number.isSafeInteger(value)) throw BackplaneError.badParameter('the counter would pass ±2^53');
          const tuple: Tuple = {
            fields: [
              { name: '', value: str('counter') },
              { name: '', value: str(name.stringValue) },
              { name: '', value: int(value) },
            ],
          };
          await ts
            .mostBasicHandler('WRITE')
            .command(ts, 'WRITE', { ...inv, command: 'WRITE', arg: tuple, txnId });
          await ts.transactions.commit(txnId, inv.principal);
          return { result: { fields: [{ name: 'value', value: int(value) }] } };
        } catch (err) {
          await ts.transactions.abort(txnId, inv.principal).catch(() => undefined);
          throw err;
        }
      } finally {
        release();
        // the lock of a counter nobody is incrementing goes, so the map does not grow with every name
        if (!lock.locked && lock.queued === 0) locks.delete(name.stringValue);
      }
    },
  };
}

export const counterPlugin: PluginModule = { handlers: { counter: counterHandler } };
