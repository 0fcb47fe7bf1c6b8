/**
 * Outward legs held per owner connection and per user (`outbound.maxLegsPerConnection`,
 * `outbound.maxLegsPerUser`): a cap on how many connections one client may have the relay
 * open (or be opening) on its behalf, so one account cannot fan out without bound.
 *
 * A leg is counted from the moment its dial starts (concurrent dials count) until it is
 * released: the dial failed, or the session's outbound connection went away. The router calls
 * open() before dialling and close() whenever the session stops holding its leg; close() may
 * be called more than once and for a session that holds nothing.
 */

export interface LegCaps {
  readonly perConnection: number;
  readonly perUser: number;
}

/** Which cap an open() hit. */
export type LegRefusal = 'connection' | 'user';

export class OutwardLegs<K extends object = object, O extends object = object> {
  private readonly held = new Map<K, { owner: O; user: string }>();
  private readonly byOwner = new Map<O, number>();
  private readonly byUser = new Map<string, number>();

  /**
   * Takes a place for `key`'s leg (a session), owned by `owner` (its client connection) and
   * `user` (username@domain). Undefined when taken (or already held by `key`), otherwise the cap
   * that is full; nothing is taken then.
   */
  open(key: K, owner: O, user: string, caps: LegCaps): LegRefusal | undefined {
    if (this.held.has(key)) return undefined;
    if ((this.byOwner.get(owner) ?? 0) >= caps.perConnection) return 'connection';
    if ((this.byUser.get(user) ?? 0) >= caps.perUser) return 'user';
    this.held.set(key, { owner, user });
    this.byOwner.set(owner, (this.byOwner.get(owner) ?? 0) + 1);
    this.byUser.set(user, (this.byUser.get(user) ?? 0) + 1);
    return undefined;
  }

  /** Gives back `key`'s place, if it holds one. */
  close(key: K): void {
    const h = this.held.get(key);
    if (h === undefined) return;
    this.held.delete(key);
    decrement(this.byOwner, h.owner);
    decrement(this.byUser, h.user);
  }

  /** Legs held for an owner connection. */
  ofOwner(owner: O): number {
    return this.byOwner.get(owner) ?? 0;
  }

  /** Legs held for a user (username@domain). */
  ofUser(user: string): number {
    return this.byUser.get(user) ?? 0;
  }

  get size(): number {
    return this.held.size;
  }
}

function decrement<T>(m: Map<T, number>, k: T): void {
  const n = (m.get(k) ?? 0) - 1;
  if (n <= 0) m.delete(k);
  else m.set(k, n);
}

/** The user a session's legs count against: `username@domain`, the domain in lower case. */
export function legUser(identity: { readonly username: string; readonly domain: string }): string {
  return `${identity.username}@${identity.domain.toLowerCase()}`;
}
