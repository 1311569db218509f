import { BackplaneError } from '@backplane/client-core';

/**
 * A mutex whose waiters are served in arrival order and leave the queue when their signal aborts (a
 * deadline or a cancelled call): the seed's blocking rules ("queued pending completion of the existing
 * request") with the call's deadline honoured.
 */
export class AsyncLock {
  private held = false;
  private readonly waiters: Array<{ grant: () => void }> = [];

  get locked(): boolean {
    return this.held;
  }

  get queued(): number {
    return this.waiters.length;
  }

  /** Resolves with a release function once the lock is held; rejects with the signal's reason on abort. */
  acquire(signal?: AbortSignal): Promise<() => void> {
    if (signal?.aborted) return Promise.reject(abortReason(signal));
    if (!this.held) {
      this.held = true;
      return Promise.resolve(this.releaser());
    }
    return new Promise((resolve, reject) => {
      const waiter = {
        grant: () => {
          signal?.removeEventListener('abort', onAbort);
          resolve(this.releaser());
        },
      };
      const onAbort = () => {
        const i = this.waiters.indexOf(waiter);
        if (i >= 0) this.waiters.splice(i, 1);
        reject(abortReason(signal as AbortSignal));
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiters.push(waiter);
    });
  }

  private releaser(): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.waiters.shift();
      if (next) next.grant();
      else this.held = false;
    };
  }
}

/** Wakes everyone waiting for a condition to become true (a store that makes a FIFO read possible). */
export class Condition {
  private readonly waiters = new Set<() => void>();

  notifyAll(): void {
    for (const w of [...this.waiters]) w();
  }

  /** Resolves when `ready()` is true, re-checking after every notifyAll(); rejects when the signal aborts. */
  async waitUntil(ready: () => boolean, signal?: AbortSignal): Promise<void> {
    while (!ready()) {
      if (signal?.aborted) throw abortReason(signal);
      await new Promise<void>((resolve, reject) => {
        const wake = () => {
          this.waiters.delete(wake);
          signal?.removeEventListener('abort', onAbort);
          resolve();
        };
        const onAbort = () => {
          this.waiters.delete(wake);
          reject(abortReason(signal as AbortSignal));
        };
        this.waiters.add(wake);
        signal?.addEventListener('abort', onAbort, { once: true });
      });
    }
  }
}

function abortReason(signal: AbortSignal): unknown {
  return signal.reason ?? BackplaneError.of('CANCELLED', 'cancelled while waiting');
}
