/**
 * A participant: one MSRP session of one user in one room (C-1: the focus is its endpoint,
 * reached at `uri`, a URI of this relay whose session-id is random and secret). It holds what
 * its SDP said it can take (C-7, C-11, C-15, C-17), its nickname (C-13, C-14), where its copies
 * go, and its outgoing lane: the copies on their way to it, and whether it is congested (C-16).
 */

import { randomUUID } from 'node:crypto';
import type { LocalReceiver, LocalResponse, OriginateResult, PluginHost } from '../../core/index.ts';
import type { MsrpRequestHead } from '../../core/protocol/index.ts';
import type { Delivery, DeliveryOwner, Route } from './delivery.ts';
import type { ChatOptions } from './options.ts';
import { throughOtherRelay } from './relayed-report.ts';
import type { Role } from './store.ts';

/** Who joins: the user's URI (its SIP AOR), as the application authenticated it. */
export interface ParticipantIdentity {
  readonly uri: string;
  readonly displayName?: string;
  /** Other URIs the CPIM From may carry for this user (C-4). */
  readonly aliases?: readonly string[];
}

/** What the participant's SDP said (C-7, C-11, C-15, C-17). */
export interface Capabilities {
  /** It sent a=chatroom (RFC 7701 §8): it knows it is in a room. */
  readonly chatAware: boolean;
  readonly nicknames: boolean;
  readonly privateMessages: boolean;
  /** Media types it takes inside CPIM (sdp.ts wrappedTypesOf). */
  readonly wrappedTypes: readonly string[];
  /** Its a=max-size, if any. */
  readonly maxSize: number | undefined;
}

export interface ParticipantStats {
  /** Messages it sent that the focus took. */
  received: number;
  /** Copies sent to it whole. */
  delivered: number;
  /** Copies not sent to it: congested, or its queue full (C-16). */
  dropped: number;
  /** Body bytes written to it. */
  bytesOut: number;
}

/**
 * What a participant needs of its room (room.ts's Room, or a file session's room, files.ts):
 * the relay and the options, its user's role, and where it goes when it leaves. An interface,
 * so that the session does not import the room that holds it.
 */
export interface ParticipantRoom {
  readonly uri: string;
  readonly focus: { readonly relay: PluginHost; readonly options: ChatOptions };
  roleOf(user: string): Role;
  /** The session's requests go to its room (index.ts hands them on). */
  receive(p: Participant, req: MsrpRequestHead): LocalReceiver | LocalResponse;
  leave(p: Participant, reason?: LeaveReason): void;
  /** `congested` / `decongested` (C-16). */
  emit(event: string, ...args: unknown[]): boolean;
}

/** A message of this session still arriving (inbound.ts): its next chunks go to it. */
export interface MessageInProgress {
  /** Octets the focus put before the sender's (a pushed file's CPIM head, files.ts). */
  readonly reportOffset: number;
  chunk(req: MsrpRequestHead): LocalReceiver | LocalResponse;
  abort(): void;
}

export type LeaveReason = 'left' | 'kicked' | 'banned' | 'congested' | 'disconnected' | 'no-connection' | 'closed';

/**
 * At most this many copies are written to one session at once; the others wait their turn. A
 * copy that waits for its sender's next chunk (C-8) does not count: a sender that is slow, or
 * never finishes, must not hold back the other messages until the C-9 timer (C-16).
 */
const MAX_ACTIVE = 4;

/** How often a copy sent whole asks for a 200 (wantsAnswer()). */
const ANSWER_EVERY_MS = 10_000;

export class Participant implements DeliveryOwner {
  /** A public id (the roster's endpoint entity is `urn:uuid:<id>`); not the secret session id. */
  readonly id = randomUUID();
  /** The session-id of `uri` (secret: whoever has it speaks as this participant). */
  readonly sessionId: string;
  /** The focus's URI for this participant: the a=path of the SDP answer. */
  readonly uri: string;
  readonly identity: ParticipantIdentity;
  /** The user's key (user-uri.ts): one per user, shared by its sessions (C-10). */
  readonly user: string;
  readonly caps: Capabilities;
  /** The offer's a=path (the participant's side of the session). */
  readonly path: readonly string[];
  readonly joinedAt = new Date();
  readonly stats: ParticipantStats = { received: 0, delivered: 0, dropped: 0, bytesOut: 0 };
  nickname: string | undefined;
  nicknameKey: string | undefined;
  /** The last stream id of its room (cluster.ts) its history replay covered: those entries are not sent again. */
  streamSeen: string | undefined;
  route: Route | undefined;
  left: LeaveReason | undefined;
  congested = false;
  congestedSince: Date | undefined;
  /** An RFC 5547 file session (files.ts), no member of the room: a pull gets one kept file, a push sends one to the room. */
  fileSession: 'pull' | 'push' | undefined;
  /** The route on which a copy last asked for a 200, and when (wantsAnswer()). */
  private askedRoute: Route | undefined;
  private askedAt = 0;
  /** Messages being received from it, by Message-ID (C-8, C-9). */
  readonly inbound = new Map<string, MessageInProgress>();
  private readonly refusedIds = new Map<string, LocalResponse>();
  private readonly pending: Delivery[] = [];
  private readonly active = new Set<Delivery>();
  private blockedCount = 0;
  /** Copies wait until the route is known and the welcome and history are queued. */
  private held = true;
  private markTimer: NodeJS.Timeout | undefined;
  private dropTimer: NodeJS.Timeout | undefined;
  private tokens: number;
  private refilledAt = Date.now();

  constructor(
    readonly room: ParticipantRoom,
    o: { sessionId: string; uri: string; identity: ParticipantIdentity; user: string; caps: Capabilities; path: readonly string[] },
  ) {
    this.sessionId = o.sessionId;
    this.uri = o.uri;
    this.identity = o.identity;
    this.user = o.user;
    this.caps = o.caps;
    this.path = o.path;
    this.tokens = room.focus.options.limits.rate.messages;
  }

  get role(): Role {
    return this.room.roleOf(this.user);
  }

  /** What the roster shows for it: its nickname, its display name, or its URI. */
  get name(): string {
    return this.nickname ?? (this.identity.displayName !== undefined && this.identity.displayName !== '' ? this.identity.displayName : this.identity.uri);
  }

  /** Copies queued or being written. */
  get queued(): number {
    return this.pending.length + this.active.size;
  }

  /** Body bytes written to it so far, copies on their way included. */
  get bytesWritten(): number {
    let n = this.stats.bytesOut;
    for (const d of this.active) n += d.written;
    return n;
  }

  /** Bytes waiting to be written to it (C-16). */
  get backlog(): number {
    let n = 0;
    for (const d of this.active) n += d.backlog;
    for (const d of this.pending) n += d.backlog;
    return n;
  }

  // ------------------------------------------------------------------ limits

  /** C-17: one message of the rate (a token bucket of limits.rate). */
  takeRateToken(now = Date.now()): boolean {
    const { messages, seconds } = this.room.focus.options.limits.rate;
    this.tokens = Math.min(messages, this.tokens + ((now - this.refilledAt) / 1000) * (messages / seconds));
    this.refilledAt = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  /** The answer a refused message got, for its later chunks (C-8). */
  refused(messageId: string): LocalResponse | undefined {
    return this.refusedIds.get(messageId);
  }

  refuse(messageId: string, answer: LocalResponse): void {
    if (this.refusedIds.size >= 64) this.refusedIds.delete(this.refusedIds.keys().next().value!);
    this.refusedIds.set(messageId, answer);
  }

  // ------------------------------------------------------------------ the lane

  /** Queues a copy; false when it was dropped (C-16: congested, or the queue is full). */
  deliver(d: Delivery): boolean {
    if (this.left !== undefined || (this.congested && (d.kind === 'regular' || d.kind === 'status')) || this.pending.length >= this.room.focus.options.congestion.maxQueued) {
      this.stats.dropped++;
      d.abort();
      return false;
    }
    if (this.held || this.route === undefined || this.writing >= MAX_ACTIVE) this.pending.push(d);
    else this.startDelivery(d);
    this.checkCongestion();
    return true;
  }

  /** The route is known (the first request came, or the SDP named a session of this relay). */
  setRoute(route: Route): void {
    if (this.route !== undefined) return;
    this.route = route;
    this.flush();
  }

  /** Lets queued copies go once the welcome and history are queued (they go first). */
  release(): void {
    this.held = false;
    this.flush();
  }

  private flush(): void {
    if (this.held || this.route === undefined) return;
    while (this.pending.length > 0 && this.writing < MAX_ACTIVE) this.startDelivery(this.pending.shift()!);
  }

  /** Copies being written that have bytes to write (not waiting for their sender). */
  private get writing(): number {
    let n = 0;
    for (const d of this.active) if (!d.starved) n++;
    return n;
  }

  starved(_d: Delivery): void {
    if (this.left === undefined) this.flush();
  }

  private startDelivery(d: Delivery): void {
    this.active.add(d);
    // Behind another relay (To-Path beyond the participant's own URI, not a worker link): chunks it can route.
    const route = this.route!;
    d.start(this.room.focus.relay, route, throughOtherRelay(route) ? this.room.focus.options.relayedChunkSize : 0);
  }

  blocked(_d: Delivery): void {
    this.blockedCount++;
    if (this.blockedCount === 1 && !this.congested && this.markTimer === undefined) {
      const ms = this.room.focus.options.congestion.markAfter * 1000;
      this.markTimer = setTimeout(() => {
        this.markTimer = undefined;
        if (this.blockedCount > 0) this.setCongested(true);
      }, ms).unref();
    }
  }

  unblocked(_d: Delivery): void {
    this.blockedCount--;
    if (this.blockedCount === 0 && this.markTimer !== undefined) {
      clearTimeout(this.markTimer);
      this.markTimer = undefined;
    }
    this.checkCongestion();
  }

  /**
   * Copies sent whole ask for error answers only (delivery.ts), which the relay cannot match to
   * a transaction: the first copy on each route, then one every ANSWER_EVERY_MS, asks for a 200,
   * so a route whose token is gone (481) is noticed within that time of a message.
   */
  wantsAnswer(): boolean {
    const now = Date.now();
    if (this.route === this.askedRoute && now - this.askedAt < ANSWER_EVERY_MS) return false;
    this.askedRoute = this.route;
    this.askedAt = now;
    return true;
  }

  /** No copy can reach it (481 on the way: a token of another relay or worker gone, or never there): it leaves. */
  unreachable(_d: Delivery): void {
    if (this.left === undefined) this.room.leave(this, 'disconnected');
  }

  finished(d: Delivery, result: 'sent' | 'aborted' | 'failed', _r?: OriginateResult): void {
    this.stats.bytesOut += d.written;
    if (result === 'sent') this.stats.delivered++;
    if (!this.active.delete(d)) {
      const i = this.pending.indexOf(d);
      if (i >= 0) this.pending.splice(i, 1);
    }
    if (this.left === undefined) {
      this.flush();
      this.checkCongestion();
    }
  }

  /** C-16: congested past backlogBytes (or blocked markAfter, see blocked()); free again below half of it. */
  private checkCongestion(): void {
    if (this.left !== undefined || this.route === undefined) return;
    const limit = this.room.focus.options.congestion.backlogBytes;
    if (!this.congested) {
      if (this.backlog > limit) this.setCongested(true);
    } else if (this.blockedCount === 0 && this.backlog <= limit / 2) {
      this.setCongested(false);
    }
  }

  private setCongested(on: boolean): void {
    if (this.congested === on || this.left !== undefined) return;
    this.congested = on;
    if (on) {
      this.congestedSince = new Date();
      const ms = this.room.focus.options.congestion.dropAfter * 1000;
      this.dropTimer = setTimeout(() => {
        this.dropTimer = undefined;
        if (this.congested) this.room.leave(this, 'congested');
      }, ms).unref();
    } else {
      this.congestedSince = undefined;
      if (this.dropTimer !== undefined) clearTimeout(this.dropTimer);
      this.dropTimer = undefined;
    }
    this.room.emit(on ? 'congested' : 'decongested', this);
  }

  /** Leaving: every copy to it ends with `#`, every message from it is aborted; timers stop. */
  close(reason: LeaveReason): void {
    if (this.left !== undefined) return;
    this.left = reason;
    for (const t of [this.markTimer, this.dropTimer]) if (t !== undefined) clearTimeout(t);
    this.markTimer = this.dropTimer = undefined;
    for (const d of [...this.pending, ...this.active]) d.abort();
    this.pending.length = 0;
    this.active.clear();
    for (const m of [...this.inbound.values()]) m.abort();
    this.inbound.clear();
  }
}
