/**
 * Waiting on one backend call of an auth plugin (auth-sql, auth-ldap) no longer than the
 * relay waits on the tap. The tap's `signal` is aborted at the tap's deadline (reason: the
 * HookTimeoutError) and when the AUTH's connection closes, so the plugin takes the relay's
 * timeout from it rather than deriving a budget of its own from `timeouts.hook`. Its own
 * connect and query timeouts stay what they are: settings of the backend's I/O.
 */

import { HookTimeoutError } from '../../core/index.ts';

/**
 * Settles with `p`, or rejects with `signal.reason` as soon as `signal` aborts; `p` keeps
 * running (its backend's own timeouts end it) but is ignored.
 */
export function untilAborted<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  p.catch(() => {});
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}

/** True when the wait ended because the relay's deadline for the tap passed (not because the connection closed). */
export function timedOut(signal: AbortSignal): boolean {
  return signal.aborted && signal.reason instanceof HookTimeoutError;
}
