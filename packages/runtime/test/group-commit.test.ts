import { GroupCommitter } from '../src';
import { memoryStore } from '../src/testing';

describe('GroupCommitter', () => {
  it('barrier() resolves once what was asked before it is written, while writes keep coming', async () => {
    const store = memoryStore();
    const committer = new GroupCommitter(store);
    let stop = false;
    let written = 0;
    const load = (async () => {
      for (let i = 0; !stop; i++) {
        await committer.commit([{ type: 'put', key: `k${i % 100}`, value: String(i) }]);
        written++;
        await new Promise((r) => setImmediate(r)); // a real store's writes take a turn of the loop
      }
    })();
    // keep several commits in flight all the time: the committer is never idle
    const more = Array.from({ length: 4 }, (_, j) =>
      (async () => {
        for (let i = 0; !stop; i++) {
          await committer.commit([{ type: 'put', key: `m${j}`, value: String(i) }]);
          await new Promise((r) => setImmediate(r));
        }
      })(),
    );
    await new Promise((r) => setTimeout(r, 20));
    const before = committer.commit([{ type: 'put', key: 'marker', value: 'x' }]);
    await committer.barrier();
    expect(await store.get('marker')).toBe('x');
    await before;
    expect(written).toBeGreaterThan(0);
    stop = true;
    await Promise.all([load, ...more]);
    await committer.flush();
    expect(await committer.barrier()).toBeUndefined();
  });
});
