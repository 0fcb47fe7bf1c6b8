/**
 * Random octets for ids, tokens and nonces, drawn from one pool refilled 4 KiB at a
 * time from the CSPRNG: one system call per refill instead of one per id (a forwarded
 * chunk takes a transaction id, an AUTH handshake several ids). Same source
 * (crypto.randomFillSync), same quality; octets handed out are zeroed in the pool.
 */

import { randomFillSync } from 'node:crypto';

const POOL_SIZE = 4096;
const pool = Buffer.allocUnsafe(POOL_SIZE);
let off = POOL_SIZE;

/** The offset of `n` (≤ 4096) fresh octets in the pool, marked as taken. */
function take(n: number): number {
  if (n > POOL_SIZE) throw new RangeError('at most 4096 random octets at a time');
  if (off + n > POOL_SIZE) {
    randomFillSync(pool);
    off = 0;
  }
  const at = off;
  off += n;
  return at;
}

/** Copies `n` fresh random octets into `target` at `at`. */
export function fillRandom(target: Buffer, at: number, n: number): void {
  const from = take(n);
  pool.copy(target, at, from, from + n);
  pool.fill(0, from, from + n);
}

/** `n` fresh random octets as 2n lower-case hex digits. */
export function randomHex(n: number): string {
  const from = take(n);
  const s = pool.toString('hex', from, from + n);
  pool.fill(0, from, from + n);
  return s;
}

export const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

/**
 * `length` uniformly random base62 characters (rejection sampling: octets ≥ 248 are
 * drawn again, so every character is equally likely). 22 characters carry 131 bits.
 */
export function randomBase62(length: number): string {
  // Written into octets and decoded once: appending character by character would leave a
  // chain of rope nodes behind every token a session holds (memory per idle session).
  const out = length <= CHARS.length ? CHARS : Buffer.allocUnsafe(length);
  let n = 0;
  while (n < length) {
    const at = take(1);
    const b = pool[at]!;
    pool[at] = 0;
    if (b < 248) out[n++] = BASE62_CODES[b % 62]!;
  }
  const s = out.toString('latin1', 0, length);
  out.fill(0, 0, length);
  return s;
}

const BASE62_CODES = Buffer.from(BASE62, 'latin1');
/** Scratch for randomBase62 (ids are at most a few dozen characters). */
const CHARS = Buffer.alloc(64);
