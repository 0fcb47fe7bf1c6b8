/**
 * Relay sessions: one per issued Use-Path URI (token), R-47 … R-57a.
 *
 * A session belongs to the connection that authenticated it and dies with
 * it. Until the far end first uses it, it expires at Expires; once
 * bound it lives as long as its connections (I-4: clients never refresh).
 */

import { BASE62, randomBase62 } from '../protocol/random.ts';
import type { MsrpUri } from '../protocol/uri.ts';
import type { CloseReason, ConnectionContext, Identity, SessionInfo, SessionStats } from '../types.ts';

/**
 * A session-id: 22 uniformly random base62 characters, 131 random bits (R-47: at least
 * 128; I-5: letters and digits only, so every client library accepts it in a URI).
 */
export function newSessionId(): string {
  return randomBase62(22);
}

/** At most this many workers in cluster mode: the worker index is one base62 character. */
export const MAX_WORKERS = BASE62.length;

/**
 * A session-id in cluster mode (DESIGN.md §7): the worker index as one base62 character,
 * then the 22 characters of newSessionId (R-47: still 128 random bits).
 */
export function newWorkerSessionId(index: number): string {
  if (!Number.isInteger(index) || index < 0 || index >= MAX_WORKERS) throw new RangeError(`worker index ${index} is out of range`);
  return BASE62[index]! + newSessionId();
}

/** The worker index a cluster-mode session-id names, or undefined when it is not one of `count` workers' ids. */
export function workerOfSession(id: string, count: number): number | undefined {
  if (id.length !== 23) return undefined;
  const i = BASE62.indexOf(id[0]!);
  return i >= 0 && i < count ? i : undefined;
}

export { maskId } from '../protocol/mask.ts';

/** Either a real connection or, for two sessions of this relay, the other session (local hand-over). */
export type FarLeg<C extends ConnectionContext> = { kind: 'connection'; connection: C; hopUri: MsrpUri | undefined } | { kind: 'local'; session: Session<C> };

const NO_MESSAGES: ReadonlySet<string> = new Set();

export class Session<C extends ConnectionContext = ConnectionContext> implements SessionInfo {
  readonly id: string;
  readonly uri: string;
  readonly parsedUri: MsrpUri;
  readonly identity: Identity;
  readonly owner: C;
  /** The owner's previous hop: the first From-Path URI of its AUTH (R-51 b). */
  readonly ownerHopUri: MsrpUri;
  readonly createdAt: number;
  expiresAt: number;
  /** The first far-end leg that delivered toward the owner (R-57a). */
  farLeg: FarLeg<C> | undefined;
  /** The connection this relay opened for the outward leg (R-12 aside, one per session). */
  outbound: C | undefined;
  /**
   * The owner has reached a local endpoint of this relay through the token (a chat focus):
   * that is its far end, so the token is bound (I-4) though no far-end leg exists.
   */
  endpoint = false;
  /** A pending dial, so concurrent requests share one outbound connection. */
  dialing: Promise<C> | undefined;
  readonly stats: SessionStats = { bytesOut: 0, messagesOut: 0, bytesIn: 0, messagesIn: 0 };
  /** Message-IDs refused with 413; every later chunk of them gets 413 too (bounded). */
  get refusedMessages(): ReadonlySet<string> {
    return this.refused ?? NO_MESSAGES;
  }

  private refused: Set<string> | undefined;
  closed = false;

  constructor(o: { id: string; uri: string; parsedUri: MsrpUri; identity: Identity; owner: C; ownerHopUri: MsrpUri; expiresAt: number; now: number }) {
    this.id = o.id;
    this.uri = o.uri;
    this.parsedUri = o.parsedUri;
    this.identity = o.identity;
    this.owner = o.owner;
    this.ownerHopUri = o.ownerHopUri;
    this.expiresAt = o.expiresAt;
    this.createdAt = o.now;
  }

  get bound(): boolean {
    return this.farLeg !== undefined || this.outbound !== undefined || this.endpoint;
  }

  /** The far-end connection, for plugins (undefined for a local hand-over or none yet). */
  get far(): C | undefined {
    return this.farLeg?.kind === 'connection' ? this.farLeg.connection : this.outbound;
  }

  refuseMessage(messageId: string): void {
    const refused = (this.refused ??= new Set());
    if (refused.size >= 64) {
      const first = refused.values().next().value;
      if (first !== undefined) refused.delete(first);
    }
    refused.add(messageId);
  }
}

export interface SessionTableEvents<C extends ConnectionContext> {
  closed(session: Session<C>, reason: CloseReason): void;
}

export class SessionTable<C extends ConnectionContext = ConnectionContext> {
  private readonly byId = new Map<string, Session<C>>();
  /** Sessions that expire unless a far end uses them first, checked by expire(). */
  private readonly unbound = new Set<Session<C>>();
  private readonly events: SessionTableEvents<C>;

  constructor(events: SessionTableEvents<C>) {
    this.events = events;
  }

  get size(): number {
    return this.byId.size;
  }

  /** the session-id part is compared case-sensitively. */
  get(id: string): Session<C> | undefined {
    return this.byId.get(id);
  }

  values(): IterableIterator<Session<C>> {
    return this.byId.values();
  }

  add(s: Session<C>): void {
    this.byId.set(s.id, s);
    this.armExpiry(s);
  }

  /** R-49 / I-4: an unbound session is removed at its expiry (by expire()); a bound one is not. */
  armExpiry(s: Session<C>): void {
    if (s.bound || s.closed) this.unbound.delete(s);
    else this.unbound.add(s);
  }

  /** Removes every unbound session whose expiry has passed; the relay calls it periodically. */
  expire(now: number): void {
    for (const s of this.unbound) {
      if (s.bound) this.unbound.delete(s);
      else if (now >= s.expiresAt) this.remove(s, { code: 'expired' });
    }
  }

  /** Ends a session: it is gone from the table at once (later requests get 481). */
  remove(s: Session<C>, reason: CloseReason): void {
    if (s.closed) return;
    s.closed = true;
    this.unbound.delete(s);
    this.byId.delete(s.id);
    this.events.closed(s, reason);
  }
}
