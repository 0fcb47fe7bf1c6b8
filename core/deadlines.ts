/**
 * Deadlines on one timer, for limits that are set far more often than they fire: a hook
 * tap's answer (DESIGN.md §3), a forwarded chunk's response. A Node timer per
 * occurrence (a Timeout object, a list insertion and a removal) costs more than the work
 * it guards when, as almost always, the answer comes in time.
 *
 * Deadlines are kept in the order they were set. Every user sets them `now + one
 * configured length`, so that is deadline order too; after a reload shortens the length,
 * a deadline set later may fire up to the old length late (never early).
 */

export interface Deadline {
  readonly at: number;
  /** True once answered (see settle) or fired. */
  done: boolean;
}

interface Entry extends Deadline {
  readonly expire: () => void;
}

export class DeadlineQueue {
  private queue: Entry[] = [];
  private head = 0;
  private timer: NodeJS.Timeout | undefined;
  private firing = false;
  private readonly unref: boolean;

  /** `unref`: the timer does not keep the process alive (deadlines of work that holds sockets anyway). */
  constructor(o: { unref?: boolean } = {}) {
    this.unref = o.unref === true;
  }

  /** Calls `expire` (which must not throw) at `at` (epoch ms) unless settle() comes first. */
  add(at: number, expire: () => void): Deadline {
    const e: Entry = { at, expire, done: false };
    this.queue.push(e);
    if (this.timer === undefined && !this.firing) this.arm(at);
    return e;
  }

  /** The awaited answer came: the deadline will not fire. */
  settle(d: Deadline): void {
    d.done = true;
    // While fire() runs, an expiry may settle other deadlines: fire() tidies up after.
    if (!this.firing) this.tidy();
  }

  /** Deadlines not yet answered nor fired (for tests and status). */
  get pending(): number {
    let n = 0;
    for (let i = this.head; i < this.queue.length; i++) if (!this.queue[i]!.done) n++;
    return n;
  }

  private arm(at: number): void {
    const t = setTimeout(this.fire, Math.max(1, at - Date.now()));
    if (this.unref) t.unref();
    this.timer = t;
  }

  private readonly fire = (): void => {
    this.timer = undefined;
    const now = Date.now();
    const q = this.queue;
    this.firing = true;
    try {
      while (this.head < q.length) {
        const e = q[this.head]!;
        if (!e.done && e.at > now) break;
        this.head++;
        if (!e.done) {
          e.done = true;
          e.expire();
        }
      }
    } finally {
      this.firing = false;
    }
    // Deadlines added during the expiries were pushed onto the queue as well.
    this.tidy();
    if (this.head < this.queue.length) this.arm(this.queue[this.head]!.at);
  };

  /** Drops answered and fired deadlines from the front; copies the rest down once the dead front outweighs it. */
  private tidy(): void {
    const q = this.queue;
    while (this.head < q.length && q[this.head]!.done) this.head++;
    if (this.head === q.length) {
      q.length = 0;
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > q.length) {
      this.queue = q.slice(this.head);
      this.head = 0;
    }
  }
}
