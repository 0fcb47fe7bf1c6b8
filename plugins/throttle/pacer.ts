/**
 * Bandwidth limits: bytes per second per session, per user, per source address and in
 * total, enforced by back-pressure only. Each forwarded body slice is charged to the
 * buckets it belongs to; when one is in debt the sending connection stops being read
 * (`pauseReading`) until the debt is repaid. Nothing is buffered: the sender's TCP
 * window fills and the sender slows down to the rate.
 */

import type { ChunkContext, ConnectionContext, SessionInfo } from '../../core/index.ts';
import { TokenBucket } from './token-bucket.ts';

export interface RateOptions {
  /** Sustained rate. */
  bytesPerSecond: number;
  /** Bytes that may pass at once after a quiet period (default: one second's worth). */
  burst?: number;
}

export interface BandwidthOptions {
  perSession?: RateOptions;
  perUser?: RateOptions;
  perIp?: RateOptions;
  total?: RateOptions;
}

export interface PaceEvent {
  key: string;
  limit: number;
  delayMs: number;
  connection: ConnectionContext;
}

/** What a session's bytes are charged to. */
interface SessionPace {
  bucket: TokenBucket | undefined;
  /** user@domain */
  user: string;
  /** The user's rate (an override, else perUser), if any. */
  userRate: RateOptions | undefined;
}

/** How often idle (full) user and address buckets are dropped. */
const SWEEP_MS = 30_000;

export class Pacer {
  private readonly o: BandwidthOptions;
  private readonly reason: string;
  private readonly userRate: (user: string) => RateOptions | undefined;
  private readonly exempt: (address: string) => boolean;
  private readonly onPause: (e: PaceEvent) => void;
  private readonly paces = new WeakMap<SessionInfo, SessionPace>();
  private readonly users = new Map<string, TokenBucket>();
  private readonly ips = new Map<string, TokenBucket>();
  private total: TokenBucket | undefined;
  /** The longest wait of the slice being charged, and the bucket that asked for it. */
  private wait = 0;
  private by: TokenBucket | undefined;
  /** When each paused connection may be read again. */
  private readonly held = new WeakMap<ConnectionContext, { until: number; timer: NodeJS.Timeout }>();
  private readonly sweeper: NodeJS.Timeout;

  constructor(o: {
    bandwidth: BandwidthOptions;
    /** The pause reason (the plugin name). */
    reason: string;
    /** A user's own rate (override), else perUser. */
    userRate: (user: string) => RateOptions | undefined;
    exempt: (address: string) => boolean;
    onPause: (e: PaceEvent) => void;
  }) {
    this.o = o.bandwidth;
    this.reason = o.reason;
    this.userRate = o.userRate;
    this.exempt = o.exempt;
    this.onPause = o.onPause;
    this.sweeper = setInterval(() => this.sweep(), SWEEP_MS);
    this.sweeper.unref();
  }

  /** bodyForwarded: charge the slice and pause the sender while any bucket is in debt. */
  charge(chunk: ChunkContext, bytes: number): void {
    const now = performance.now();
    this.wait = 0;
    this.by = undefined;
    // Bytes handed over between two clients of this relay cross both sessions and both users.
    const to = this.paceOf(chunk.session, now);
    if (to.bucket !== undefined) this.take(to.bucket, bytes, now);
    if (to.userRate !== undefined) this.take(this.userBucket(to, now), bytes, now);
    if (chunk.from !== undefined) {
      const from = this.paceOf(chunk.from, now);
      if (from.bucket !== undefined) this.take(from.bucket, bytes, now);
      if (from.userRate !== undefined && from.user !== to.user) this.take(this.userBucket(from, now), bytes, now);
    }
    const conn = chunk.connection;
    const ip = this.o.perIp;
    // Addresses are those of clients that connected here: a leg the relay dialled is its next hop.
    if (ip !== undefined && conn.direction === 'inbound' && !this.exempt(conn.remoteAddress)) {
      let b = this.ips.get(conn.remoteAddress);
      if (b === undefined) this.ips.set(conn.remoteAddress, (b = bucket(ip, now, `ip:${conn.remoteAddress}`)));
      this.take(b, bytes, now);
    }
    const t = this.o.total;
    if (t !== undefined) this.take((this.total ??= bucket(t, now, 'total')), bytes, now);
    if (this.by !== undefined) this.hold(conn, this.wait, now, this.by);
  }

  /** Charges one bucket and keeps the longest wait. */
  private take(b: TokenBucket, bytes: number, now: number): void {
    const w = b.take(bytes, now);
    if (w > this.wait) {
      this.wait = w;
      this.by = b;
    }
  }

  /** What a session is charged to, worked out at its first slice. */
  private paceOf(session: SessionInfo, now: number): SessionPace {
    let p = this.paces.get(session);
    if (p === undefined) {
      const id = session.identity;
      const user = `${id.username}@${id.domain.toLowerCase()}`;
      const s = this.o.perSession;
      p = { bucket: s === undefined ? undefined : bucket(s, now, `session:${maskId(session.id)}`), user, userRate: this.userRate(user) };
      this.paces.set(session, p);
    }
    return p;
  }

  private userBucket(p: SessionPace, now: number): TokenBucket {
    let b = this.users.get(p.user);
    if (b === undefined) this.users.set(p.user, (b = bucket(p.userRate!, now, `user:${p.user}`)));
    return b;
  }

  close(): void {
    clearInterval(this.sweeper);
    this.users.clear();
    this.ips.clear();
  }

  private hold(conn: ConnectionContext, wait: number, now: number, by: TokenBucket): void {
    const until = now + wait;
    const h = this.held.get(conn);
    if (h !== undefined) {
      if (h.until >= until) return;
      clearTimeout(h.timer);
    } else {
      conn.pauseReading(this.reason);
      this.onPause({ key: by.label, limit: by.rate, delayMs: wait, connection: conn });
    }
    const timer = setTimeout(() => {
      this.held.delete(conn);
      conn.resumeReading(this.reason);
    }, wait);
    timer.unref();
    this.held.set(conn, { until, timer });
  }

  private sweep(): void {
    const now = performance.now();
    for (const [k, b] of this.users) if (b.isFull(now)) this.users.delete(k);
    for (const [k, b] of this.ips) if (b.isFull(now)) this.ips.delete(k);
  }
}

function bucket(r: RateOptions, now: number, label: string): TokenBucket {
  return new TokenBucket(r.bytesPerSecond, r.burst ?? r.bytesPerSecond, now, label);
}

/** Session ids are secrets: events and logs carry a prefix only. */
export function maskId(id: string): string {
  return `${id.slice(0, 6)}…`;
}
