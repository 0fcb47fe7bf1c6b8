/**
 * AUTH failure back-off, per source address and per user (RFC.md ).
 *
 * Only failed Digest credentials count (a 401 that is not a first or stale challenge):
 * a disabled account or a relay policy refusal (403) is not a guess. After `freeFailures`
 * failures within `window` seconds a key is blocked for `backoff` seconds; each further
 * block within `decay` seconds doubles, up to `maxBackoff`. While blocked, every AUTH of
 * that address (or carrying that username) is refused with 403 and a Retry-After header
 * before the credentials are looked at, so guessing learns nothing. Blocks end on their
 * own (a user behind the same NAT is never locked out for good), and a successful AUTH
 * clears its user's count.
 */

import { RateLimiterRes, type RateLimiterAbstract } from 'rate-limiter-flexible';
import type { ThrottleStore } from './store.ts';

export interface AuthBackoffOptions {
  enabled: boolean;
  perIp: boolean;
  perUser: boolean;
  freeFailures: number;
  window: number;
  backoff: number;
  maxBackoff: number;
  decay: number;
}

export interface Block {
  key: string;
  retryAfterMs: number;
}

export class AuthBackoff {
  private readonly o: AuthBackoffOptions;
  private readonly failures: RateLimiterAbstract;
  private readonly strikes: RateLimiterAbstract;

  constructor(store: ThrottleStore, o: AuthBackoffOptions) {
    this.o = o;
    this.failures = store.limiter('auth-fail', { points: o.freeFailures, duration: o.window });
    // Only the count matters: a strike never "runs out", it decays with its window.
    this.strikes = store.limiter('auth-strike', { points: Number.MAX_SAFE_INTEGER, duration: o.decay });
  }

  /** The keys an AUTH is checked and counted under. */
  keys(address: string | undefined, user: string | undefined): string[] {
    const keys: string[] = [];
    if (this.o.perIp && address !== undefined) keys.push(`ip:${address}`);
    if (this.o.perUser && user !== undefined) keys.push(`user:${user}`);
    return keys;
  }

  /** The first of `keys` that is blocked now, if any. */
  async blocked(keys: readonly string[]): Promise<Block | undefined> {
    const states = await Promise.all(keys.map((k) => this.failures.get(k)));
    for (let i = 0; i < keys.length; i++) {
      const r = states[i];
      if (r !== null && r !== undefined && r.consumedPoints >= this.o.freeFailures && r.msBeforeNext > 0) {
        return { key: keys[i]!, retryAfterMs: r.msBeforeNext };
      }
    }
    return undefined;
  }

  /** Counts one failure under each key; returns the blocks it started. */
  async failed(keys: readonly string[]): Promise<Block[]> {
    const started: Block[] = [];
    for (const key of keys) {
      let spent: boolean;
      try {
        const r = await this.failures.consume(key);
        spent = r.remainingPoints <= 0;
      } catch (e) {
        if (!(e instanceof RateLimiterRes)) throw e;
        spent = true;
      }
      if (!spent) continue;
      const strike = await this.strikes.penalty(key, 1);
      const seconds = Math.min(this.o.maxBackoff, this.o.backoff * 2 ** Math.max(0, strike.consumedPoints - 1));
      await this.failures.block(key, seconds);
      started.push({ key, retryAfterMs: seconds * 1000 });
    }
    return started;
  }

  /** A successful AUTH: its user starts afresh (its address does not: one good account must not shield guessing). */
  async succeeded(user: string): Promise<void> {
    if (!this.o.perUser) return;
    const key = `user:${user}`;
    await Promise.all([this.failures.delete(key), this.strikes.delete(key)]);
  }
}
