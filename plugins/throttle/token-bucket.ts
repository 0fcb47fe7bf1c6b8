/**
 * A token bucket measured in bytes, for pacing body bytes.
 *
 * Why not rate-limiter-flexible here: it counts points in fixed windows, so a transfer
 * would get a whole window's bytes at once and then stall until the window ends (up to
 * twice the rate across a boundary), and a Redis store would cost one round trip per
 * body slice on the hot path. A bucket refills continuously, so the sender is paced
 * smoothly, and it costs a subtraction per slice. Buckets are per relay node.
 *
 * The bytes are counted after they were forwarded (the bodyForwarded hook), so a bucket
 * may go into debt by one slice; the debt is what the sender waits for.
 */
export class TokenBucket {
  readonly rate: number;
  readonly burst: number;
  /** What the bucket limits, for events: `session:…`, `user:…`, `ip:…` or `total`. */
  readonly label: string;
  private tokens: number;
  private last: number;

  /** `rate` bytes per second, at most `burst` bytes ahead. */
  constructor(rate: number, burst: number, now: number, label: string) {
    this.rate = rate;
    this.burst = burst;
    this.label = label;
    this.tokens = burst;
    this.last = now;
  }

  /** Takes `bytes` (possibly into debt) and returns the ms to wait until the debt is repaid (0 = none). */
  take(bytes: number, now: number): number {
    this.refill(now);
    this.tokens -= bytes;
    return this.tokens >= 0 ? 0 : Math.ceil((-this.tokens * 1000) / this.rate);
  }

  /** True when the bucket is full again: an idle bucket can be dropped and made anew. */
  isFull(now: number): boolean {
    this.refill(now);
    return this.tokens >= this.burst;
  }

  private refill(now: number): void {
    const elapsed = now - this.last;
    if (elapsed <= 0) return;
    this.last = now;
    this.tokens = Math.min(this.burst, this.tokens + (elapsed * this.rate) / 1000);
  }
}
