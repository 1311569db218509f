import { TurnBatch } from '../src/turn-batch';

const nextTurn = () => new Promise((r) => setImmediate(r));

describe('TurnBatch', () => {
  it('hands over the items of one turn together at its end, and sends at once past its byte bound', async () => {
    const sent: number[][] = [];
    const batch = new TurnBatch<number>((items) => sent.push(items), 10);
    batch.push(1, 4);
    batch.push(2, 4);
    expect(sent).toEqual([]);
    await nextTurn();
    expect(sent).toEqual([[1, 2]]);
    batch.push(3, 6);
    batch.push(4, 6); // 12 bytes: over the bound, sent now
    expect(sent).toEqual([
      [1, 2],
      [3, 4],
    ]);
    batch.push(5);
    await nextTurn();
    expect(sent).toEqual([[1, 2], [3, 4], [5]]);
  });

  it('takes an unsent item out, drops the rest on clear, and sends nothing for an empty turn', async () => {
    const sent: string[][] = [];
    const batch = new TurnBatch<string>((items) => sent.push(items));
    batch.push('a');
    batch.push('b');
    expect(batch.remove((x) => x === 'a')).toBe(true);
    expect(batch.remove((x) => x === 'zzz')).toBe(false);
    await nextTurn();
    expect(sent).toEqual([['b']]);
    batch.push('c');
    batch.clear();
    await nextTurn();
    batch.flush();
    expect(sent).toEqual([['b']]);
  });
});
