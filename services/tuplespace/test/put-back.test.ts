import { GroupCommitter, silentLogger } from '@backplane/runtime';
import { holdBatches, memoryStore } from '@backplane/runtime/testing';
import { basicFactory } from '../src/basic';
import type { Invocation, SpaceHandle } from '../src/command';
import { SpaceData } from '../src/space';
import { Transactions } from '../src/transactions';

const str = (s: string) => ({ kind: { $case: 'stringValue' as const, stringValue: s } });
const tupleOf = (s: string) => ({ fields: [{ name: '', value: str(s) }] });
const templateOf = (s: string) => ({
  fields: [{ name: '', kind: { $case: 'actual' as const, actual: str(s) } }],
});
const principal = { user: 'u', groups: [] };

/** A take whose caller goes away while its removal is being written gives the tuples back. */
describe('takes cancelled while their removal is written', () => {
  it.each(['TAKE', 'WAIT_TO_TAKE', 'CONSUMING_SCAN'])('%s puts the tuple back', async (command) => {
    const store = memoryStore();
    const committer = new GroupCommitter(store);
    const data = new SpaceData('s', committer);
    const txns = new Transactions(committer, silentLogger());
    const basic = basicFactory(data, txns);
    await data.write([tupleOf('job')], 0, undefined);
    // hold the removal's batch until the caller has gone
    const held = holdBatches(store);
    const ac = new AbortController();
    const inv: Invocation = { command, template: templateOf('job'), principal, signal: ac.signal };
    const handler = basic.handles(command, inv);
    const taking = handler?.command({} as SpaceHandle, command, inv).catch((e: unknown) => e);
    // the removal is on its way to the store (its batch held there) when the caller goes away
    await held.held();
    expect(data.count(templateOf('job') as never, undefined)).toBe(0);
    const gone = new Error('the caller went away');
    ac.abort(gone);
    held.release();
    expect(await taking).toBe(gone);
    held.restore();
    expect(data.count(templateOf('job') as never, undefined)).toBe(1);
    await committer.flush();
    const keys: string[] = [];
    for await (const k of store.keys()) keys.push(String(k));
    expect(keys.filter((k) => k.startsWith('t/s/'))).toHaveLength(1);
    txns.close();
  });
});
