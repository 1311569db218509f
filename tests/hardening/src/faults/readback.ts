import { setTimeout as sleep } from 'node:timers/promises';
import { codeOf } from '../codes';

const RETRY_FOR_MS = 30_000;

/**
 * The read-back's calls (reads: trying one again changes nothing). A call that finds the service
 * unreachable (UNAVAILABLE) or not answering in time (DEADLINE_EXCEEDED: a replicated log electing its
 * leader after a kill) is retried for up to 30 s, so such a moment is not counted as lost data; it is
 * counted here and reported instead. A read that answers "not found" is never retried.
 */
/** Read-back calls that met UNAVAILABLE or DEADLINE_EXCEEDED at least once, and when (ms after the read-back started). */
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
        const code = codeOf(err);
        if ((code !== 'UNAVAILABLE' && code !== 'DEADLINE_EXCEEDED') || Date.now() >= giveUpAt) return e;
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
