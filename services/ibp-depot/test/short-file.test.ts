import { readdirSync, truncateSync } from 'node:fs';
import { join } from 'node:path';
import { attrs, chunked, collect, failure, openTestDepot } from './helpers';

describe('Depot: a file shorter than its record', () => {
  it('answers DATA_LOSS when a read reaches bytes the file does not have', async () => {
    const t = await openTestDepot();
    try {
      const caps = await t.depot.allocate(256 * 1024, attrs('BYTE_ARRAY', 'STABLE'));
      await t.depot.store(caps.writeCap, 100_000, chunked(Buffer.alloc(100_000, 3)));
      const [file] = readdirSync(join(t.dir, 'stable'));
      truncateSync(join(t.dir, 'stable', file as string), 10);
      const err = await failure(collect(t.depot.read(caps.readCap, 0, 100_000)));
      expect(err.code).toBe(15); // DATA_LOSS, not INTERNAL
    } finally {
      await t.close();
    }
  });
});
