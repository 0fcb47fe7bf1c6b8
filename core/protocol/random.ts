/**
 * Random octets for ids, tokens and nonces, drawn from a pool refilled 4 KiB at a
 * time from the CSPRNG: one system call per refill instead of one per id (an AUTH
 * handshake takes several). Same source (crypto.randomFillSync), same quality.
 */

import { randomFillSync } from 'node:crypto';

const POOL_SIZE = 4096;
const pool = Buffer.allocUnsafe(POOL_SIZE);
let off = POOL_SIZE;

/** Copies `n` (≤ 4096) fresh random octets into `target` at `at`. */
export function fillRandom(target: Buffer, at: number, n: number): void {
  if (n > POOL_SIZE) throw new RangeError('fillRandom: at most 4096 octets at a time');
  if (off + n > POOL_SIZE) {
    randomFillSync(pool);
    off = 0;
  }
  pool.copy(target, at, off, off + n);
  // Octets handed out are never handed out again.
  pool.fill(0, off, off + n);
  off += n;
}

/** One random octet. */
function nextOctet(): number {
  if (off >= POOL_SIZE) {
    randomFillSync(pool);
    off = 0;
  }
  const b = pool[off]!;
  pool[off++] = 0;
  return b;
}

const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

/**
 * `length` uniformly random base62 characters (rejection sampling: octets ≥ 248 are
 * drawn again, so every character is equally likely). 22 characters carry 131 bits.
 */
export function randomBase62(length: number): string {
  let s = '';
  while (s.length < length) {
    const b = nextOctet();
    if (b < 248) s += BASE62[b % 62];
  }
  return s;
}
