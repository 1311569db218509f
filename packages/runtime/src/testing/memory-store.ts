import { MemoryLevel } from 'memory-level';
import type { Store } from '../store';

/** An in-memory level store for unit tests (production code always uses openStore on disk). */
export function memoryStore(): Store {
  return new MemoryLevel<string, string>({ keyEncoding: 'utf8', valueEncoding: 'utf8' }) as unknown as Store;
}
