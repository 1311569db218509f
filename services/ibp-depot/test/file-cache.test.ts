import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '@backplane/runtime/testing';
import { FileCache } from '../src/file-cache';

describe('FileCache', () => {
  it('releases the handle that was acquired, even when the path was reopened meanwhile', async () => {
    const dir = tempDir();
    const path = join(dir.path, 'f');
    writeFileSync(path, 'x');
    const cache = new FileCache(0);
    const a = await cache.acquire(path, 'write');
    cache.forget(path); // replaced while A still uses it
    const b = await cache.acquire(path, 'write');
    cache.release(a);
    await new Promise((r) => setTimeout(r, 20));
    await expect(a.stat()).rejects.toThrow(); // A's doomed handle is closed once A let go
    await expect(b.write(Buffer.from('y'), 0, 1, 0)).resolves.toBeDefined(); // B's is untouched
    cache.release(b);
    await cache.closeAll();
    dir.remove();
  });

  it('never creates a file for a reader', async () => {
    const dir = tempDir();
    const cache = new FileCache();
    await expect(cache.acquire(join(dir.path, 'missing'), 'read')).rejects.toMatchObject({ code: 'ENOENT' });
    dir.remove();
  });
});
