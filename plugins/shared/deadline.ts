/**
 * A deadline on one backend call of an auth plugin (auth-sql, auth-ldap), so
 * the plugin answers before the relay's hook timeout, and gives up at once
 * when the AUTH's connection goes away.
 */

/** The call did not settle in time. */
export class DeadlineError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DeadlineError';
  }
}

/**
 * Settles with `p`, or rejects with a DeadlineError(`message`) after `ms`, or
 * with Error('aborted') when `signal` aborts; `p` keeps running but is ignored.
 */
export function withDeadline<T>(p: Promise<T>, ms: number, signal: AbortSignal, message: string): Promise<T> {
  p.catch(() => {});
  if (signal.aborted) return Promise.reject(new Error('aborted'));
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => finish(() => reject(new Error('aborted')));
    const timer = setTimeout(() => finish(() => reject(new DeadlineError(message))), ms);
    const finish = (f: () => void): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      f();
    };
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => finish(() => resolve(v)),
      (e: unknown) => finish(() => reject(e)),
    );
  });
}
