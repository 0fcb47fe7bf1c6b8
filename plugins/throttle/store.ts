/**
 * Where the throttle keeps its counters: in this process (default), or in Redis so
 * that several relay nodes share them (DESIGN.md §7).
 *
 * Window counters (connection rates, AUTH failures) are rate-limiter-flexible limiters:
 * RateLimiterMemory, or RateLimiterRedis with a RateLimiterMemory as insurance, so a
 * Redis outage falls back to per-node limits instead of failing every AUTH. Open things
 * (sessions, connections) are lease sets (lease-set.ts).
 */

import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { RateLimiterMemory, RateLimiterRedis, type RateLimiterAbstract } from 'rate-limiter-flexible';
import { MemoryLeaseSet, RedisLeaseSet, type LeaseSet } from './lease-set.ts';

export interface RedisStoreOptions {
  url: string;
  keyPrefix: string;
  commandTimeoutMs: number;
  connectTimeoutMs: number;
  leaseSeconds: number;
}

export interface WindowOptions {
  /** Events allowed per window. */
  points: number;
  /** Window length, seconds. */
  duration: number;
}

export interface ThrottleStore {
  readonly kind: 'memory' | 'redis';
  /** A fresh id for this node: it names this node's lease members. */
  readonly nodeId: string;
  readonly leases: LeaseSet;
  /** A window counter named `name` (the name keeps limiters apart in a shared Redis). */
  limiter(name: string, o: WindowOptions): RateLimiterAbstract;
  close(): Promise<void>;
}

export function memoryStore(): ThrottleStore {
  return {
    kind: 'memory',
    nodeId: randomBytes(4).toString('hex'),
    leases: new MemoryLeaseSet(),
    limiter: (name, o) => new RateLimiterMemory({ keyPrefix: name, points: o.points, duration: o.duration }),
    async close() {
      this.leases.close();
    },
  };
}

/**
 * Connects to Redis. Waits up to connectTimeoutMs for the connection; if Redis is not there
 * yet, `onError` hears of it and the limiters use their in-memory insurance until it is.
 */
export async function redisStore(o: RedisStoreOptions, onError: (e: unknown) => void): Promise<ThrottleStore> {
  let RedisClass: typeof import('ioredis').Redis;
  try {
    RedisClass = (await import('ioredis')).Redis;
  } catch (e) {
    throw new Error('store "redis" needs the ioredis package (npm install ioredis)', { cause: e });
  }
  const redis: Redis = new RedisClass(o.url, {
    // Every call runs inside a hook with a timeout: fail fast rather than queue while offline.
    commandTimeout: o.commandTimeoutMs,
    connectTimeout: o.connectTimeoutMs,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
  });
  redis.on('error', onError);
  await new Promise<void>((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      redis.off('ready', done);
      resolve();
    };
    const timer = setTimeout(() => {
      onError(new Error(`Redis at ${redactUrl(o.url)} not ready after ${o.connectTimeoutMs} ms; using per-node limits until it is`));
      done();
    }, o.connectTimeoutMs);
    redis.once('ready', done);
  });
  const leases = new RedisLeaseSet(redis, `${o.keyPrefix}lease:`, o.leaseSeconds * 1000, onError);
  return {
    kind: 'redis',
    nodeId: randomBytes(4).toString('hex'),
    leases,
    limiter: (name, w) =>
      new RateLimiterRedis({
        storeClient: redis,
        keyPrefix: `${o.keyPrefix}${name}`,
        points: w.points,
        duration: w.duration,
        rejectIfRedisNotReady: true,
        insuranceLimiter: new RateLimiterMemory({ keyPrefix: name, points: w.points, duration: w.duration }),
      }),
    async close() {
      leases.close();
      try {
        await redis.quit();
      } catch {
        redis.disconnect();
      }
    },
  };
}

/** A Redis URL without its password, for messages. */
export function redactUrl(url: string): string {
  return url.replace(/\/\/([^@/]*)@/, '//***@');
}
