import { PropertiesMachine } from '../src/properties-machine';

const put = (key: string, value: string, now: number, ttlMs = 0) =>
  ({ t: 'put', key, value: Buffer.from(value), ttlMs, now }) as const;

/** A machine with live keys, a key with a time to live, a removed key and an expired one in its history. */
function busyMachine(): PropertiesMachine {
  const m = new PropertiesMachine({ changes: 4, bytes: 1 << 20 });
  let pos = 0;
  m.apply(put('a', 'one', 1000), ++pos);
  m.apply(put('b', '', 1000), ++pos);
  m.apply(put('ünï.cödé', 'x'.repeat(300), 1000, 5000), ++pos);
  m.apply(put('gone', 'soon', 1000, 10), ++pos);
  m.apply({ t: 'expire', now: 2000 }, ++pos);
  m.apply(put('a', 'two', 3000), ++pos);
  m.apply({ t: 'del', key: 'b' }, ++pos);
  return m;
}

const state = (m: PropertiesMachine) => ({
  revision: m.revision,
  compacted: m.compacted,
  entries: [...m.entries.values()].sort((x, y) => x.key.localeCompare(y.key)),
  history: m.changesFrom(m.compacted + 1),
  nextExpiry: m.nextExpiry(),
  list: m.list('', '', 10, 3000),
});

describe('properties snapshots', () => {
  it('restore what was saved: values, revisions, expiries and the history kept', () => {
    const m = busyMachine();
    const copy = new PropertiesMachine({ changes: 4, bytes: 1 << 20 });
    copy.restore(m.snapshot());
    expect(state(copy)).toEqual(state(m));
    expect(m.compacted).toBeGreaterThan(0);
    expect(state(copy).history?.map((c) => c.kind)).toEqual(['PUT', 'EXPIRE', 'PUT', 'DELETE']);
    // and the copy goes on exactly as the original
    const next = put('ünï.cödé', 'y', 7000);
    expect(copy.apply(next, 8)).toEqual(m.apply(next, 8));
    expect(copy.apply({ t: 'expire', now: 9000 }, 9)).toEqual(m.apply({ t: 'expire', now: 9000 }, 9));
    expect(state(copy)).toEqual(state(m));
  });

  it('read the JSON snapshots of the first version', () => {
    const v1 = JSON.stringify({
      v: 1,
      revision: 7,
      compacted: 3,
      entries: [['a', Buffer.from('two').toString('base64'), 6, 1, 0]],
      history: [
        ['EXPIRE', 'gone', 5, 0, 0, null],
        ['PUT', 'a', 6, 1, 0, Buffer.from('two').toString('base64')],
        ['DELETE', 'b', 7, 0, 0, null],
      ],
    });
    const m = new PropertiesMachine();
    m.restore(Buffer.from(v1));
    expect(m.revision).toBe(7);
    expect(m.live('a', 0)).toMatchObject({ value: Buffer.from('two'), revision: 6, createRevision: 1 });
    expect(m.changesFrom(4)?.map((c) => [c.kind, c.key])).toEqual([
      ['EXPIRE', 'gone'],
      ['PUT', 'a'],
      ['DELETE', 'b'],
    ]);
    expect(() => m.restore(Buffer.from('XXXXgarbage'))).toThrow(/unknown format/);
  });
});
