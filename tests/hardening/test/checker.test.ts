import {
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
});
