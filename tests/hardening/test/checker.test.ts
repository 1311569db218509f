import {
  boundObservedWrites,
  linearizable,
  type Operation,
  type RegisterInput,
  type RegisterOutput,
  registerModel,
} from '../src/jepsen/checker';

type Op = Operation<RegisterInput, RegisterOutput>;
const w = (call: number, ret: number, value: string): Op => ({
  call,
  ret,
  input: { f: 'write', value },
  output: undefined,
});
const r = (call: number, ret: number, value: string | null): Op => ({
  call,
  ret,
  input: { f: 'read' },
  output: { value },
});
const cas = (
  call: number,
  ret: number,
  expect: string | null,
  value: string,
  ok: boolean | undefined,
): Op => ({
  call,
  ret,
  input: { f: 'cas', expect, value },
  output: ok === undefined ? undefined : { ok },
});

describe('the linearizability checker', () => {
  it('accepts histories that have a legal order, concurrent operations included', () => {
    expect(linearizable([w(0, 10, 'a'), r(11, 12, 'a')], registerModel).ok).toBe(true);
    // a read concurrent with a write may see either value
    expect(linearizable([w(0, 10, 'a'), r(5, 6, null), r(7, 8, 'a')], registerModel).ok).toBe(true);
    expect(linearizable([w(0, 10, 'a'), cas(1, 20, 'a', 'b', true), r(21, 22, 'b')], registerModel).ok).toBe(
      true,
    );
    // an unknown outcome may have happened late, or never
    expect(linearizable([w(0, Infinity, 'a'), r(5, 6, null), r(7, 8, 'a')], registerModel).ok).toBe(true);
    expect(linearizable([w(0, Infinity, 'a'), r(5, 6, null), r(100, 101, null)], registerModel).ok).toBe(
      true,
    );
  });

  it('finds a stale read, a lost write, a write applied twice and two winning compare-and-sets', () => {
    // stale: a read after the write returned sees the old value
    expect(linearizable([w(0, 10, 'a'), r(11, 12, null)], registerModel).ok).toBe(false);
    // applied twice: b's write happened after a's, yet a reappears after b was read
    expect(
      linearizable(
        [w(0, 10, 'a'), r(11, 12, 'a'), w(13, 14, 'b'), r(15, 16, 'b'), r(17, 18, 'a')],
        registerModel,
      ).ok,
    ).toBe(false);
    // two compare-and-sets from one value both win
    expect(
      linearizable([w(0, 1, 'a'), cas(2, 10, 'a', 'b', true), cas(3, 11, 'a', 'c', true)], registerModel).ok,
    ).toBe(false);
    // a failed compare-and-set when the value did match
    expect(linearizable([w(0, 1, 'a'), cas(2, 3, 'a', 'b', false)], registerModel).ok).toBe(false);
  });

  it('bounds a write of unknown outcome by the first operation that saw its value, without changing a verdict', () => {
    // 30 writes whose callers never learned the outcome, each read back, then a stale read of the first
    const history: Op[] = [];
    for (let i = 0; i < 30; i++)
      history.push(w(i * 10, Infinity, `v${i}`), r(i * 10 + 5, i * 10 + 6, `v${i}`));
    history.push(cas(400, 401, 'v29', 'x', true));
    const bounded = boundObservedWrites(history);
    expect(bounded[0]).toMatchObject({ call: 0, ret: 6 });
    // a compare-and-set that succeeded expecting a value saw it too; an unseen one stays open
    expect(boundObservedWrites([w(0, Infinity, 'a'), cas(5, 7, 'a', 'b', true)])[0]?.ret).toBe(7);
    expect(boundObservedWrites([w(0, Infinity, 'a'), r(5, 6, null)])[0]?.ret).toBe(Infinity);
    expect(linearizable(bounded, registerModel, 200_000)).toMatchObject({ ok: true, exhausted: false });
    const stale = [...history, r(500, 501, 'v0')];
    expect(linearizable(boundObservedWrites(stale), registerModel, 200_000)).toMatchObject({
      ok: false,
      exhausted: false,
    });
    // bounding changes no verdict: the same answers as the unbounded search
    expect(linearizable(history, registerModel).ok).toBe(true);
    expect(linearizable(stale, registerModel).ok).toBe(false);
    // a write seen before it was called cannot be bounded below its call
    expect(boundObservedWrites([r(0, 1, 'a'), w(5, Infinity, 'a')])[1]?.ret).toBe(5);
  });
});
