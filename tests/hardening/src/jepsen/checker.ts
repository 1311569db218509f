/**
 * A linearizability checker: the Wing–Gong search with Lowe's memoization (as Knossos and Porcupine
 * implement it). A history is the operations of many clients, each with the time it was called and the
 * time it returned; it is linearizable when some order of its operations respects real time (an operation
 * that returned before another was called comes first) and, applied one at a time to the model, gives
 * every operation the output it had. An operation whose outcome is unknown (a timeout, a node that went
 * away) returned at +infinity: it may have taken effect at any point after its call, or never.
 */
export interface Operation<I, O> {
  /** When it was called and when it returned (Infinity: unknown outcome). */
  call: number;
  ret: number;
  input: I;
  output: O;
}

export interface Model<S, I, O> {
  init: S;
  /** Whether the operation may take effect in state `s` with this output, and the state after it. */
  step(s: S, input: I, output: O): [boolean, S];
  /** A string that identifies a state (for the memo). */
  key(s: S): string;
}

interface Event {
  op: number;
  isCall: boolean;
  time: number;
  prev: Event | undefined;
  next: Event | undefined;
  /** The return event of this call. */
  match: Event | undefined;
}

/** Whether `history` is linearizable for `model`; on a violation, how many operations could be ordered. */
export function linearizable<S, I, O>(
  history: Array<Operation<I, O>>,
  model: Model<S, I, O>,
  budget = 5_000_000,
): { ok: boolean; linearized: number; steps: number; exhausted: boolean } {
  // calls before returns at the same instant: two such operations count as concurrent (never a false alarm)
  const events: Event[] = [];
  history.forEach((o, i) => {
    const call: Event = {
      op: i,
      isCall: true,
      time: o.call,
      prev: undefined,
      next: undefined,
      match: undefined,
    };
    const ret: Event = {
      op: i,
      isCall: false,
      time: o.ret,
      prev: undefined,
      next: undefined,
      match: undefined,
    };
    call.match = ret;
    events.push(call, ret);
  });
  events.sort((a, b) => a.time - b.time || (a.isCall === b.isCall ? a.op - b.op : a.isCall ? -1 : 1));
  const head: Event = {
    op: -1,
    isCall: false,
    time: -Infinity,
    prev: undefined,
    next: undefined,
    match: undefined,
  };
  let last = head;
  for (const e of events) {
    last.next = e;
    e.prev = last;
    last = e;
  }
  const unknown = (op: number) => (history[op] as Operation<I, O>).ret === Number.POSITIVE_INFINITY;
  const lift = (call: Event) => {
    (call.prev as Event).next = call.next;
    if (call.next) call.next.prev = call.prev;
    const ret = call.match as Event;
    (ret.prev as Event).next = ret.next;
    if (ret.next) ret.next.prev = ret.prev;
  };
  const unlift = (call: Event) => {
    const ret = call.match as Event;
    (ret.prev as Event).next = ret;
    if (ret.next) ret.next.prev = ret;
    (call.prev as Event).next = call;
    if (call.next) call.next.prev = call;
  };
  // the set of linearized operations as a 64-bit hash (two random 32-bit words per operation, XORed in
  // and out): the memo's key costs O(1) per step instead of O(n)
  const words = history.map(() => [(Math.random() * 2 ** 32) >>> 0, (Math.random() * 2 ** 32) >>> 0]);
  let h1 = 0;
  let h2 = 0;
  const toggle = (op: number) => {
    const [a, b] = words[op] as [number, number];
    h1 = (h1 ^ a) >>> 0;
    h2 = (h2 ^ b) >>> 0;
  };
  const seen = new Set<string>();
  const stack: Array<{ call: Event; state: S }> = [];
  let state = model.init;
  let entry = head.next;
  let steps = 0;
  let best = 0;
  while (entry) {
    if (++steps > budget) return { ok: false, linearized: best, steps, exhausted: true };
    // only operations of unknown outcome are left: they may never have happened
    if (!entry.isCall && unknown(entry.op))
      return { ok: true, linearized: stack.length, steps, exhausted: false };
    if (entry.isCall) {
      const op = history[entry.op] as Operation<I, O>;
      const [ok, next] = model.step(state, op.input, op.output);
      if (ok) {
        toggle(entry.op);
        const memo = `${model.key(next)}|${h1}|${h2}`;
        if (!seen.has(memo)) {
          seen.add(memo);
          stack.push({ call: entry, state });
          best = Math.max(best, stack.length);
          state = next;
          lift(entry);
          entry = head.next;
          continue;
        }
        toggle(entry.op);
      }
      entry = entry.next;
      continue;
    }
    // a return whose operation could not be placed before it: undo the last choice and try the next
    const top = stack.pop();
    if (!top) return { ok: false, linearized: best, steps, exhausted: false };
    state = top.state;
    toggle(top.call.op);
    unlift(top.call);
    entry = top.call.next;
  }
  return { ok: true, linearized: stack.length, steps, exhausted: false };
}

/** A register (a key's value; null = absent) with read, write and compare-and-set on the value. */
export type RegisterInput =
  | { f: 'read' }
  | { f: 'write'; value: string }
  | { f: 'cas'; expect: string | null; value: string };
export type RegisterOutput = { value: string | null } | { ok: boolean } | undefined;

export const registerModel: Model<string | null, RegisterInput, RegisterOutput> = {
  init: null,
  step(s, input, output) {
    switch (input.f) {
      case 'read':
        return [output !== undefined && 'value' in output && output.value === s, s];
      case 'write':
        return [true, input.value];
      case 'cas': {
        // an unknown outcome (output undefined): it may have succeeded or not
        if (output === undefined) return s === input.expect ? [true, input.value] : [true, s];
        const ok = 'ok' in output && output.ok;
        return ok ? [s === input.expect, input.value] : [s !== input.expect, s];
      }
    }
  },
  key: (s) => (s === null ? '\u0000' : s),
};

/**
 * Bounds the return of a write or compare-and-set of unknown outcome whose value (every written value is
 * unique) was later seen, by a read or by a compare-and-set that succeeded expecting it: it took effect
 * before that operation returned. Sound (every linearization of the history is one of the result), and
 * it keeps the search small: an operation of unknown outcome is otherwise concurrent with all that follows.
 */
export function boundObservedWrites(
  history: Array<Operation<RegisterInput, RegisterOutput>>,
): Array<Operation<RegisterInput, RegisterOutput>> {
  const seenBy = new Map<string, number>();
  const see = (value: string | null, ret: number) => {
    if (value === null || ret === Number.POSITIVE_INFINITY) return;
    seenBy.set(value, Math.min(seenBy.get(value) ?? Number.POSITIVE_INFINITY, ret));
  };
  for (const o of history) {
    if (o.input.f === 'read' && o.output && 'value' in o.output) see(o.output.value, o.ret);
    if (o.input.f === 'cas' && o.output && 'ok' in o.output && o.output.ok) see(o.input.expect, o.ret);
  }
  return history.map((o) => {
    if (o.ret !== Number.POSITIVE_INFINITY || o.input.f === 'read') return o;
    const by = seenBy.get(o.input.value);
    return by === undefined ? o : { ...o, ret: Math.max(by, o.call) };
  });
}
