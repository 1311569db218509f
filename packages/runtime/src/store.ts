import { mkdirSync } from 'node:fs';
import type { AbstractLevel } from 'abstract-level';
import { ClassicLevel } from 'classic-level';

/** The key-value store every embedded engine uses: string keys, JSON-encoded values. */
export type Store = AbstractLevel<string | Uint8Array | Buffer, string, string>;

/**
 * Opens (creating if needed) a LevelDB store at `dir`. Writes are durable against a process crash
 * (kill -9) once acknowledged; pass `{ sync: true }` to a write for durability against power loss.
 */
export async function openStore(dir: string): Promise<Store> {
  mkdirSync(dir, { recursive: true });
  const db = new ClassicLevel<string, string>(dir, { keyEncoding: 'utf8', valueEncoding: 'utf8' });
  try {
    await db.open();
  } catch (err) {
    const cause = (err as { cause?: { message?: string } }).cause;
    throw new Error(`cannot open store at ${dir}: ${cause?.message ?? (err as Error).message}`, {
      cause: err,
    });
  }
  return db as unknown as Store;
}

/** The smallest key above every key that starts with `prefix` (for range scans). */
export function prefixEnd(prefix: string): string {
  return prefix.slice(0, -1) + String.fromCharCode(prefix.charCodeAt(prefix.length - 1) + 1);
}
