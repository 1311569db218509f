import { setTimeout as sleep } from 'node:timers/promises';
import { codeOf } from '../codes';

const RETRY_FOR_MS = 30_000;

/**
 * The read-back's calls. A call that finds the service unreachable (UNAVAILABLE) is retried for up to
 * 30 s, so an unreachable moment is not counted as lost data; it is counted here and reported instead.
 */
/** Read-back calls that met UNAVAILABLE at least once, and when (ms after the read-back started). */
export interface Unreachable {
  calls: number;
  firstAtMs: number;
  lastAtMs: number;
  lastError: string;
}

export const noneUnreachable = (): Unreachable => ({ calls: 0, firstAtMs: -1, lastAtMs: -1, lastError: '' });

export class ReadBack {
  private readonly startedAt = Date.now();
  readonly unreachable = noneUnreachable();

  /** The call's result, or the error it ended with (after retries while unreachable). */
  async call<T>(fn: () => Promise<T>): Promise<T | Error> {
    const giveUpAt = Date.now() + RETRY_FOR_MS;
    let counted = false;
    for (;;) {
      try {
        return await fn();
      } catch (err) {
        const e = err instanceof Error ? err : new Error(String(err));
        if (codeOf(err) !== 'UNAVAILABLE' || Date.now() >= giveUpAt) return e;
        const at = Date.now() - this.startedAt;
        if (!counted) {
          counted = true;
          this.unreachable.calls += 1;
          if (this.unreachable.firstAtMs < 0) this.unreachable.firstAtMs = at;
        }
        this.unreachable.lastAtMs = at;
        this.unreachable.lastError = e.message;
        await sleep(100);
      }
    }
  }
}
