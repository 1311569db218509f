/**
 * `promise`'s value, or `undefined` once `signal` aborts, whichever comes first (a rejection of `promise`
 * rejects). Unlike `Promise.race([promise, aborted])` with one long-lived `aborted` promise, nothing is left
 * behind once `promise` settles: each race adds a reaction to the long-lived promise that keeps the racer's
 * value reachable until that promise settles, so a loop that races every read of a long stream against it
 * holds every message it ever read (nodejs/node#17469).
 */
export function unlessAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T | undefined> {
  if (signal.aborted) {
    promise.catch(() => undefined);
    return Promise.resolve(undefined);
  }
  return new Promise<T | undefined>((resolve, reject) => {
    const onAbort = () => resolve(undefined);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
}
