/**
 * Counts of things that are open right now (sessions of a user, connections from an
 * address), with a cap checked and taken in one step.
 *
 * rate-limiter-flexible counts events in time windows, not things that stay open, so
 * it does not fit here. In memory a Set per key is exact. In Redis each key is a sorted
 * set of members scored by a lease deadline: the node that added a member renews it while
 * the thing is open and removes it when it closes, and the members of a node that died
 * expire with their lease, so a crash never leaves a user locked out.
 */

import type { Redis } from 'ioredis';

export interface LeaseSet {
  /** Adds `member` under `key` unless the key already holds `max` members. True when added. */
  acquire(key: string, member: string, max: number): Promise<boolean>;
  /** Removes `member` (nothing happens when it is not there). */
  release(key: string, member: string): Promise<void>;
  /** Members under `key` now. */
  count(key: string): Promise<number>;
  close(): void;
}

export class MemoryLeaseSet implements LeaseSet {
  private readonly sets = new Map<string, Set<string>>();

  async acquire(key: string, member: string, max: number): Promise<boolean> {
    let set = this.sets.get(key);
    if (set === undefined) this.sets.set(key, (set = new Set()));
    if (!set.has(member) && set.size >= max) return false;
    set.add(member);
    return true;
  }

  async release(key: string, member: string): Promise<void> {
    const set = this.sets.get(key);
    if (set === undefined) return;
    set.delete(member);
    if (set.size === 0) this.sets.delete(key);
  }

  async count(key: string): Promise<number> {
    return this.sets.get(key)?.size ?? 0;
  }

  close(): void {
    this.sets.clear();
  }
}

/** Drops expired leases, then adds the member if there is room (atomic on the Redis server). */
const ACQUIRE = `
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZSCORE', KEYS[1], ARGV[3]) == false and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then
  return 0
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1
`;

const COUNT = `
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
return redis.call('ZCARD', KEYS[1])
`;

export class RedisLeaseSet implements LeaseSet {
  private readonly redis: Redis;
  private readonly prefix: string;
  private readonly leaseMs: number;
  /** What this node holds, to renew. */
  private readonly held = new Map<string, Set<string>>();
  private readonly timer: NodeJS.Timeout;

  constructor(redis: Redis, prefix: string, leaseMs: number, onError: (e: unknown) => void) {
    this.redis = redis;
    this.prefix = prefix;
    this.leaseMs = leaseMs;
    this.timer = setInterval(() => this.renew().catch(onError), Math.max(1000, Math.floor(leaseMs / 3)));
    this.timer.unref();
  }

  async acquire(key: string, member: string, max: number): Promise<boolean> {
    const now = Date.now();
    const cap = Number.isFinite(max) ? max : Number.MAX_SAFE_INTEGER;
    const ok = await this.redis.eval(ACQUIRE, 1, this.prefix + key, now, now + this.leaseMs, member, cap, this.leaseMs);
    if (ok !== 1) return false;
    let set = this.held.get(key);
    if (set === undefined) this.held.set(key, (set = new Set()));
    set.add(member);
    return true;
  }

  async release(key: string, member: string): Promise<void> {
    const set = this.held.get(key);
    if (set !== undefined) {
      set.delete(member);
      if (set.size === 0) this.held.delete(key);
    }
    await this.redis.zrem(this.prefix + key, member);
  }

  async count(key: string): Promise<number> {
    return Number(await this.redis.eval(COUNT, 1, this.prefix + key, Date.now()));
  }

  close(): void {
    clearInterval(this.timer);
    this.held.clear();
  }

  private async renew(): Promise<void> {
    if (this.held.size === 0) return;
    const until = Date.now() + this.leaseMs;
    const p = this.redis.pipeline();
    for (const [key, members] of this.held) {
      // Re-added even if it expired meanwhile (a partition): the thing is still open here.
      for (const m of members) p.zadd(this.prefix + key, until, m);
      p.pexpire(this.prefix + key, this.leaseMs);
    }
    await p.exec();
  }
}
