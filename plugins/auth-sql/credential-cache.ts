/**
 * A short-lived cache of credentials found in the database (off unless `cache.ttl`
 * is set). Only found accounts are kept, so a user added with `msrprelay users
 * add` works at once; a changed password takes effect within `ttl` seconds. The
 * oldest entry goes first when the cache is full.
 */

import type { Credentials } from '../../core/index.ts';

export class CredentialCache {
  private readonly entries = new Map<string, { value: Credentials; expiresAt: number }>();
  private readonly ttlMs: number;
  private readonly max: number;

  constructor(ttlSeconds: number, max: number) {
    this.ttlMs = ttlSeconds * 1000;
    this.max = max;
  }

  get enabled(): boolean {
    return this.ttlMs > 0 && this.max > 0;
  }

  get(key: string, now = Date.now()): Credentials | undefined {
    const e = this.entries.get(key);
    if (e === undefined) return undefined;
    if (e.expiresAt <= now) {
      this.entries.delete(key);
      return undefined;
    }
    return e.value;
  }

  set(key: string, value: Credentials, now = Date.now()): void {
    if (!this.enabled) return;
    this.entries.delete(key);
    if (this.entries.size >= this.max) this.entries.delete(this.entries.keys().next().value!);
    this.entries.set(key, { value, expiresAt: now + this.ttlMs });
  }

  clear(): void {
    this.entries.clear();
  }
}
