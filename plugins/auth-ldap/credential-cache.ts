/**
 * A short-lived cache of directory answers for auth-ldap (off by default).
 *
 * Every AUTH of a client costs two lookups (the 401 round carries no
 * credentials, the second AUTH does), and a client that reconnects often
 * repeats them; a few seconds of cache spares the directory without keeping
 * a changed password valid for long. Only answers are cached, never failures
 * to reach the server.
 */

import type { Credentials } from '../../core/index.ts';

interface CacheEntry {
  value: Credentials | undefined;
  expiresAt: number;
}

export class CredentialCache {
  private readonly entries = new Map<string, CacheEntry>();
  private readonly ttlMs: number;
  private readonly negativeTtlMs: number;
  private readonly maxEntries: number;

  constructor(o: { ttl: number; negativeTtl: number; maxEntries: number }) {
    this.ttlMs = o.ttl * 1000;
    this.negativeTtlMs = o.negativeTtl * 1000;
    this.maxEntries = o.maxEntries;
  }

  /** `{ hit: false }` when nothing usable is cached. */
  get(key: string, now = Date.now()): { hit: true; value: Credentials | undefined } | { hit: false } {
    const e = this.entries.get(key);
    if (e === undefined) return { hit: false };
    if (e.expiresAt <= now) {
      this.entries.delete(key);
      return { hit: false };
    }
    return { hit: true, value: e.value };
  }

  set(key: string, value: Credentials | undefined, now = Date.now()): void {
    const ttl = value === undefined ? this.negativeTtlMs : this.ttlMs;
    if (ttl <= 0) return;
    this.entries.delete(key);
    // Map keeps insertion order: the first key is the oldest write.
    while (this.entries.size >= this.maxEntries) {
      const oldest = this.entries.keys().next().value;
      if (oldest === undefined) break;
      this.entries.delete(oldest);
    }
    this.entries.set(key, { value, expiresAt: now + ttl });
  }

  clear(): void {
    this.entries.clear();
  }
}

/** Usernames are case-sensitive (SIP user part), and so is a realm (it is hashed into HA1); domains are not. */
export function cacheKey(username: string, domain: string, realm: string): string {
  return `${domain.toLowerCase()}\u0000${realm}\u0000${username}`;
}
