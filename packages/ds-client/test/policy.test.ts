import { status } from '@grpc/grpc-js';
import { LeastClientsHandoffPolicy, PickFirstHandoffPolicy, RoundRobinHandoffPolicy } from '../src';
import { Mailbox } from '../src/mailbox';

const code = (c: status) => expect.objectContaining({ code: c });

describe('handoff policies', () => {
  it('policies: pick-first, round-robin in URL order, least clients', async () => {
    const fake = {} as never;
    expect(new PickFirstHandoffPolicy().getTarget(fake, ['ds://b/x', 'ds://a/x'])).toBe('ds://b/x');
    const rr = new RoundRobinHandoffPolicy();
    const opts = ['ds://c/x', 'ds://a/x', 'ds://b/x'];
    expect([1, 2, 3, 4].map(() => rr.getTarget(fake, opts))).toEqual([
      'ds://a/x',
      'ds://b/x',
      'ds://c/x',
      'ds://a/x',
    ]);
    const least = new LeastClientsHandoffPolicy();
    const clients = new Map([
      ['ds://a/x', 3],
      ['ds://b/x', 1],
      ['ds://c/x', 1],
    ]);
    expect(least.getTarget(fake, opts, { clients })).toBe('ds://b/x');
    for (const p of [new PickFirstHandoffPolicy(), rr, least]) {
      expect(() => p.getTarget(fake, [], { clients })).toThrow(code(status.NOT_FOUND));
    }
  });
});

describe('Mailbox', () => {
  it('hands items to waiters in order, times out, and fails every waiter on close', async () => {
    const box = new Mailbox<number>('item');
    box.put(1);
    await expect(box.take(0)).resolves.toBe(1);
    await expect(box.take(0)).rejects.toEqual(code(status.DEADLINE_EXCEEDED));
    await expect(box.take(20)).rejects.toEqual(code(status.DEADLINE_EXCEEDED));
    const first = box.take(-1);
    const second = box.take(1000);
    box.put(2);
    box.put(3);
    await expect(first).resolves.toBe(2);
    await expect(second).resolves.toBe(3);
    box.put(4);
    box.remove(4);
    const waiting = box.take(-1);
    box.fail(new Error('closed'));
    await expect(waiting).rejects.toThrow('closed');
    await expect(box.take(-1)).rejects.toThrow('closed');
  });
});
