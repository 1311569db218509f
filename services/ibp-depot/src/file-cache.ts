import { type FileHandle, open } from 'node:fs/promises';

interface Entry {
  handle: Promise<FileHandle>;
  users: number;
  /** Close once the last user lets go (the file was replaced or removed). */
  doomed: boolean;
}

/**
 * Open data files, shared by the calls that use them and kept open between calls (opening and closing a
 * file per small store or read was the largest cost of small operations). At most `max` idle files stay
 * open; a file in use is never closed under its user.
 */
export class FileCache {
  private readonly entries = new Map<string, Entry>();
  private readonly fresh = new Set<string>();
  private readonly owners = new WeakMap<FileHandle, { path: string; entry: Entry }>();

  /** The file does not exist yet (a new area): its first acquire creates it. */
  markFresh(path: string): void {
    this.fresh.add(path);
  }

  constructor(private readonly max = 256) {}

  /**
   * Opens or shares the file; call release(handle) when done. `write` creates it if missing (an area's file is
   * made on first use, so allocating costs no file-system call); `read` never creates one.
   */
  async acquire(path: string, mode: 'read' | 'write'): Promise<FileHandle> {
    let e = this.entries.get(path);
    if (!e || e.doomed) {
      const fresh = this.fresh.delete(path);
      const handle =
        mode === 'read'
          ? open(path, 'r+')
          : fresh
            ? open(path, 'wx+').catch((err: NodeJS.ErrnoException) =>
                err.code === 'EEXIST' ? open(path, 'r+') : Promise.reject(err),
              )
            : open(path, 'r+').catch((err: NodeJS.ErrnoException) =>
                err.code === 'ENOENT' ? open(path, 'w+') : Promise.reject(err),
              );
      e = { handle, users: 0, doomed: false };
      this.entries.set(path, e);
      const entry = e;
      handle.catch(() => this.entries.get(path) === entry && this.entries.delete(path));
    } else {
      // most recently used last
      this.entries.delete(path);
      this.entries.set(path, e);
    }
    e.users++;
    try {
      const fh = await e.handle;
      this.owners.set(fh, { path, entry: e });
      return fh;
    } catch (err) {
      e.users--;
      throw err;
    }
  }

  /** Gives back a handle from acquire(); the handle, not the path, says which entry (a path may be reopened). */
  release(fh: FileHandle): void {
    const owner = this.owners.get(fh);
    if (!owner) return;
    const e = owner.entry;
    e.users--;
    if (e.users === 0 && e.doomed) this.close(owner.path, e);
    else this.trim();
  }

  /** The file is being replaced or removed: close it now, or when its last user is done. */
  forget(path: string): void {
    this.fresh.delete(path);
    const e = this.entries.get(path);
    if (!e) return;
    e.doomed = true;
    if (e.users === 0) this.close(path, e);
  }

  async closeAll(): Promise<void> {
    const all = [...this.entries.values()];
    this.entries.clear();
    await Promise.all(all.map((e) => e.handle.then((fh) => fh.close()).catch(() => undefined)));
  }

  private trim(): void {
    if (this.entries.size <= this.max) return;
    for (const [path, e] of this.entries) {
      if (this.entries.size <= this.max) break;
      if (e.users === 0) this.close(path, e);
    }
  }

  private close(path: string, e: Entry): void {
    if (this.entries.get(path) === e) this.entries.delete(path);
    void e.handle.then((fh) => fh.close()).catch(() => undefined);
  }
}
