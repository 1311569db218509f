import { LocalLog } from '@backplane/replicated';
import { holdBatches, tempDir } from '@backplane/runtime/testing';
import { LocalBus } from '../src/local-bus';
import { ReplicatedProperties } from '../src/replicated-properties';
import { singleNode } from '../src/ring';
import { Sharing } from '../src/sharing';

const enc = (s: string) => Buffer.from(s);
const dec = (b: Uint8Array | undefined) => Buffer.from(b ?? []).toString();

/** The embedded engine shows readers only what is written, and a write that fails changes nothing. */
describe('embedded engine: durability as readers see it', () => {
  const dir = tempDir();
  let path: string;
  let log: LocalLog;
  let props: ReplicatedProperties;

  const open = async () => {
    log = await LocalLog.open(path);
    props = await ReplicatedProperties.open({ kind: 'embedded', log, reapEveryMs: 20 });
  };
  /** Closes the log and opens it again, as a restarted node does. */
  const reopen = async () => {
    await props.close();
    await open();
  };

  beforeEach(async () => {
    path = `${dir.path}/${Date.now()}-${Math.random()}`;
    await open();
  });
  afterEach(async () => {
    await props.close();
  });
  afterAll(() => dir.remove());

  it('a put is seen by get only once it is written; a compare-and-set after it is decided after it', async () => {
    const first = await props.put('k', enc('v1'));
    const held = holdBatches(log.db as never);
    const second = props.put('k', enc('v2'));
    await held.held();
    expect(dec((await props.get('k', 'serializable'))?.value)).toBe('v1'); // not written yet: not seen
    // a compare-and-set against the revision readers saw is ordered after the write in flight, and loses
    const cas = props.put('k', enc('v3'), { expectRevision: first });
    held.release();
    const rev = await second;
    await expect(cas).rejects.toMatchObject({ code: 9, reason: 'REVISION_MISMATCH' });
    held.restore();
    const now = await props.get('k');
    expect({ value: dec(now?.value), revision: now?.revision }).toEqual({ value: 'v2', revision: rev });
    // and so after a restart: the write that won is on disk, the refused one nowhere
    await reopen();
    const after = await props.get('k');
    expect({ value: dec(after?.value), revision: after?.revision }).toEqual({ value: 'v2', revision: rev });
  });

  it('a write whose batch fails changes nothing that readers or checks see', async () => {
    const first = await props.put('k', enc('v1'));
    const batch = jest.spyOn(log.db, 'batch').mockRejectedValueOnce(new Error('disk full') as never);
    // certainly not written: UNAVAILABLE at once, not an unknown outcome
    await expect(props.put('k', enc('v2'))).rejects.toMatchObject({ code: 14, reason: 'NOT_APPENDED' });
    batch.mockRestore();
    const now = await props.get('k');
    expect({ value: dec(now?.value), revision: now?.revision }).toEqual({ value: 'v1', revision: first });
    // the revision readers saw is still the one to compare with
    const third = await props.put('k', enc('v3'), { expectRevision: first });
    expect(third).toBeGreaterThan(first);
    // after a restart: v3 at its revision, and the next revision above it (none reused, none skipped back)
    await reopen();
    const after = await props.get('k');
    expect({ value: dec(after?.value), revision: after?.revision }).toEqual({ value: 'v3', revision: third });
    expect(await props.put('k', enc('v4'))).toBeGreaterThan(third);
  });

  it('refuses a subscription whose caller is already gone, and keeps no trace of it', async () => {
    // room for one subscription: a leaked one would take it
    const sharing = new Sharing(props, new LocalBus(), singleNode({ id: 'a', address: 'x' }), {
      maxSubscriptions: 1,
      maxWatches: 1,
    });
    const ac = new AbortController();
    ac.abort();
    await expect(sharing.subscribe('topic', ac.signal)).rejects.toMatchObject({ code: 1 });
    const live = new AbortController();
    const ok = await sharing.subscribe('topic', live.signal);
    expect(ok.id).toBeTruthy();
    live.abort();
  });
});
