import { BackplaneError } from '@backplane/client-core';

/** Items for any number of waiters, each with its own timeout (serve and receive_handoff). */
export class Mailbox<T> {
  private items: T[] = [];
  private waiters: Array<{ resolve: (item: T) => void; reject: (err: unknown) => void }> = [];
  private failure: unknown;

  constructor(private readonly what: string) {}

  put(item: T): void {
    const waiter = this.waiters.shift();
    if (waiter) waiter.resolve(item);
    else this.items.push(item);
  }

  /** Removes queued items that no longer hold (e.g. streams closed before anyone served them). */
  remove(item: T): void {
    this.items = this.items.filter((i) => i !== item);
  }

  /** The next item; timeoutMs < 0 waits forever, 0 only takes what is there (the seed's timeout). */
  take(timeoutMs: number): Promise<T> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    const ready = this.items.shift();
    if (ready !== undefined) return Promise.resolve(ready);
    if (timeoutMs === 0) {
      return Promise.reject(BackplaneError.of('TIMEOUT', `no ${this.what} is waiting`));
    }
    return new Promise<T>((resolve, reject) => {
      const waiter = {
        resolve: (item: T) => {
          if (timer) clearTimeout(timer);
          resolve(item);
        },
        reject: (err: unknown) => {
          if (timer) clearTimeout(timer);
          reject(err);
        },
      };
      const timer =
        timeoutMs > 0
          ? setTimeout(() => {
              this.waiters = this.waiters.filter((w) => w !== waiter);
              reject(BackplaneError.of('TIMEOUT', `no ${this.what} within ${timeoutMs} ms`));
            }, timeoutMs)
          : undefined;
      this.waiters.push(waiter);
    });
  }

  /** Every waiter and every later take fails with err. */
  fail(err: unknown): void {
    this.failure = err;
    this.items = [];
    for (const w of this.waiters) w.reject(err);
    this.waiters = [];
  }
}
