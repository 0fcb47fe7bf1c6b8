/**
 * One message on its way to one participant session: a new SEND of the focus on the
 * recipient's session, with a new transaction id and Message-ID (C-1), its body read from the
 * message's spool at the pace of that session's connection (relay.originate's back-pressure:
 * write() false → wait for onWritable), so recipients never wait for one another (C-16).
 */

import { randomFillSync } from 'node:crypto';
import type { OriginateResult, OutgoingRequest, PluginHost, PreparedRequest, SentCopy, SessionInfo, ConnectionContext } from '../../core/index.ts';
import type { EndFlag } from '../../core/protocol/index.ts';
import type { Spool, SpoolCursor } from './spool.ts';

/** Where a participant's copies go: relay.originate's target and paths. */
export interface Route {
  readonly target: SessionInfo | ConnectionContext;
  readonly toPath: readonly string[];
  readonly fromPath: readonly string[];
}

/**
 * What a copy is: a regular message of the room (dropped for a congested recipient, C-16), a
 * private one (C-11), a status message of the focus, a replayed history message.
 */
export type DeliveryKind = 'regular' | 'private' | 'status' | 'history';

/** What the delivery tells its participant. */
export interface DeliveryOwner {
  blocked(d: Delivery): void;
  unblocked(d: Delivery): void;
  finished(d: Delivery, result: 'sent' | 'aborted' | 'failed', r?: OriginateResult): void;
  /** It wrote all its spool has and waits for the sender's next bytes (C-8): it holds no writing slot. */
  starved?(d: Delivery): void;
  /** A token on the way does not exist (481): expired, invalidated or never there. */
  unreachable?(d: Delivery): void;
  /**
   * Whether this copy should ask for a 200 even when sent whole (Failure-Report yes): the
   * owner's way of learning, now and then, that its route still leads somewhere (see open()).
   */
  wantsAnswer?(): boolean;
}

const BASE62 = Buffer.from('0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz', 'latin1');
const MESSAGE_ID_LENGTH = 20;

/**
 * Random octets for Message-IDs, refilled 4 KiB at a time from the CSPRNG: every copy takes
 * one, and a system call per copy was a tenth of the focus's fan-out time.
 */
const pool = Buffer.allocUnsafe(4096);
let poolAt = pool.length;
const idChars = Buffer.allocUnsafe(MESSAGE_ID_LENGTH);

/** A Message-ID of the focus: 20 base62 characters (119 random bits; RFC 4975 ident). */
export function newMessageId(): string {
  let n = 0;
  while (n < MESSAGE_ID_LENGTH) {
    if (poolAt === pool.length) {
      randomFillSync(pool);
      poolAt = 0;
    }
    const b = pool[poolAt]!;
    pool[poolAt++] = 0;
    // Octets of 248 and up are drawn again: every character equally likely.
    if (b < 248) idChars[n++] = BASE62[b % 62]!;
  }
  return idChars.toString('latin1');
}

/**
 * The copies of one message sent whole: one request prepared for all of them (relay.prepare,
 * its head checked and rendered once), kept with the message's spool. Each copy adds its tid,
 * Message-ID and paths only.
 */
interface Template {
  readonly relay: PluginHost;
  readonly contentType: string;
  readonly prepared: PreparedRequest;
}
const templates = new WeakMap<Spool, Template>();

function templateOf(relay: PluginHost, spool: Spool, contentType: string, body: Buffer): PreparedRequest {
  const known = templates.get(spool);
  if (known !== undefined && known.relay === relay && known.contentType === contentType) return known.prepared;
  // Its Byte-Range is the body's exact one, as prepare() writes it when none is given.
  const prepared = relay.prepare({ method: 'SEND', headers: [['Failure-Report', 'partial']], contentType, body });
  templates.set(spool, { relay, contentType, prepared });
  return prepared;
}

export class Delivery {
  state: 'pending' | 'active' | 'done' = 'pending';
  /** Its last write() returned false and no onWritable came yet. */
  blocked = false;
  readonly messageId = newMessageId();
  private readonly cursor: SpoolCursor;
  private out: OutgoingRequest | undefined;
  private pumping = false;
  private waiting = false;
  private relay: PluginHost | undefined;
  private route: Route | undefined;
  /** Body bytes per chunk at most (0: the whole copy in one chunk). */
  private chunkLimit = 0;
  /** Where the current chunk started (cursor position). */
  private chunkStart = 0;
  /**
   * Octets of a copy of a prepared request (sendWhole): its cursor stays where it is, as moving
   * it walks every cursor of the message's spool, and the copy is done at once or soon after.
   */
  private sentWhole = 0;

  constructor(
    readonly owner: DeliveryOwner,
    readonly spool: Spool,
    readonly kind: DeliveryKind,
    /** Body bytes in all, when known (-1: not known yet). */
    readonly total: number,
    /** The SEND's Content-Type: Message/CPIM in rooms; a kept file's own type on an RFC 5547 pull (files.ts). */
    readonly contentType = 'message/cpim',
  ) {
    this.cursor = spool.cursor();
  }

  /** It has written all the sender has sent so far and waits for more (C-8). */
  get starved(): boolean {
    return this.waiting;
  }

  /** Bytes of the message not yet written to the recipient. */
  get backlog(): number {
    return (this.total >= 0 ? this.total : this.spool.length) - this.written;
  }

  /** Bytes written so far. */
  get written(): number {
    return this.cursor.pos + this.sentWhole;
  }

  /**
   * Starts the copy on `route`. With `chunkLimit` the copy goes in chunks of at most that many
   * body bytes, each a SEND of its own with the same Message-ID and a continuing Byte-Range
   * (C-6: the switch may re-chunk), for relays that route small frames only.
   */
  start(relay: PluginHost, route: Route, chunkLimit = 0): void {
    if (this.state !== 'pending') return;
    this.state = 'active';
    this.relay = relay;
    this.route = route;
    this.chunkLimit = chunkLimit;
    if (this.open()) this.pump();
  }

  /** Opens the chunk that starts at the cursor; false when the route is gone. */
  private open(): boolean {
    const t = this.total;
    const at = this.cursor.pos;
    this.chunkStart = at;
    // A small body already whole goes out in one piece, from the Buffer every copy shares, with
    // its exact range; anything else is streamed from the spool, open-ended (R-67: interruptible).
    const body = at === 0 && t <= 2048 && (this.chunkLimit === 0 || t <= this.chunkLimit) && this.spool.length === t ? this.spool.whole() : undefined;
    // C-12 lets the focus choose the report model of its copies: a copy sent whole asks for
    // error answers only (Failure-Report partial, RFC 4975 §7.1.2), as nothing could be done
    // with a 200 to it; saving the recipient a response and the relay a transaction per copy
    // doubled the fan-out. Those error answers find no transaction at the relay, so the owner
    // asks for a 200 on some copies (its first, then now and then) to learn of a route that
    // is gone (481). A streamed copy keeps yes: an error answer stops it.
    const partial = body !== undefined && this.owner.wantsAnswer?.() !== true;
    if (partial) return this.sendWhole(body);
    const range = body !== undefined ? `1-${t}/${t}` : `${at + 1}-*/${t >= 0 ? t : '*'}`;
    let out: OutgoingRequest;
    try {
      out = this.relay!.originate(this.route!.target, {
        method: 'SEND',
        toPath: this.route!.toPath,
        fromPath: this.route!.fromPath,
        headers: [['Message-ID', this.messageId], ['Byte-Range', range]],
        contentType: this.contentType,
      });
    } catch {
      // The route's connection is gone.
      this.done('failed');
      return false;
    }
    this.out = out;
    if (body !== undefined) {
      this.watch(out);
      const ok = out.write(body);
      this.cursor.advance(body.length);
      out.end('$');
      this.handedOver(ok, out);
      return false;
    }
    out.onWritable = () => {
      if (this.out !== out) return;
      if (this.blocked) {
        this.blocked = false;
        this.owner.unblocked(this);
      }
      this.pump();
    };
    this.watch(out);
    return true;
  }

  /** A whole copy that asks for error answers only: one copy of the message's prepared request. */
  private sendWhole(body: Buffer): false {
    const route = this.route!;
    let c: SentCopy;
    try {
      c = templateOf(this.relay!, this.spool, this.contentType, body).send(route.target, { toPath: route.toPath, fromPath: route.fromPath, messageId: this.messageId });
    } catch {
      // The route's connection is gone.
      this.done('failed');
      return false;
    }
    this.sentWhole = body.length;
    this.handedOver(c.written, c);
    return false;
  }

  /**
   * A copy handed to the relay whole. When its connection is full (or busy with another copy)
   * the relay holds it, and it counts as blocked until the connection has room again, so C-16
   * sees a recipient that does not read.
   */
  private handedOver(written: boolean, c: { onWritable: (() => void) | undefined }): void {
    if (written) {
      this.done('sent');
      return;
    }
    this.blocked = true;
    this.owner.blocked(this);
    c.onWritable = () => this.done('sent');
  }

  /** The answer to a copy (or to a chunk of it). */
  private watch(out: OutgoingRequest): void {
    void out.result.then((r) => {
      // An error answer (413 from the recipient, 481 from its relay) or none: stop here.
      if (r.status !== 200 && r.status !== 0 && this.state === 'active') this.finish('#', 'failed', r);
      // 481 (RFC 4975: the session does not exist), even after the copy ended: its way is gone.
      if (r.status === 481) this.owner.unreachable?.(this);
    });
  }

  /** Ends the copy with `#` if it started, or forgets it. */
  abort(): void {
    if (this.state === 'done') return;
    if (this.state === 'active') this.finish('#', 'aborted');
    else this.done('aborted');
  }

  private pump(): void {
    if (this.pumping || this.state !== 'active' || this.blocked) return;
    this.pumping = true;
    for (;;) {
      const r = this.cursor.read();
      if (r === null) {
        this.pumping = false;
        if (this.spool.ended !== undefined) this.finish(this.spool.ended, this.spool.ended === '$' ? 'sent' : 'aborted');
        else if (!this.waiting) {
          this.waiting = true;
          this.spool.notify(() => {
            this.waiting = false;
            this.pump();
          });
          // The connection's other copies go meanwhile, and the session's next ones start.
          this.out!.idle();
          this.owner.starved?.(this);
        }
        return;
      }
      if (r instanceof Promise) {
        r.then(
          (b) => {
            this.pumping = false;
            if (this.state === 'active' && this.write(b)) this.pump();
          },
          () => {
            this.pumping = false;
            this.finish('#', 'failed');
          },
        );
        return;
      }
      if (!this.write(r)) {
        this.pumping = false;
        return;
      }
    }
  }

  /** Writes bytes at the cursor; false when the recipient's connection is full. */
  private write(b: Buffer): boolean {
    let rest = b;
    let ok = true;
    while (rest.length > 0) {
      if (this.chunkLimit > 0 && this.cursor.pos - this.chunkStart >= this.chunkLimit) {
        // This chunk is full: end it with `+`, the next one continues the Byte-Range.
        this.out!.end('+');
        if (!this.open()) return false;
      }
      const room = this.chunkLimit > 0 ? this.chunkLimit - (this.cursor.pos - this.chunkStart) : rest.length;
      const piece = room >= rest.length ? rest : rest.subarray(0, room);
      ok = this.out!.write(piece);
      this.cursor.advance(piece.length);
      rest = rest.subarray(piece.length);
    }
    if (!ok) {
      this.blocked = true;
      this.owner.blocked(this);
    }
    return ok;
  }

  private finish(flag: EndFlag, result: 'sent' | 'aborted' | 'failed', r?: OriginateResult): void {
    if (this.state !== 'active') return;
    // A copy of a prepared request (sendWhole) has no stream of its own to end.
    this.out?.end(flag);
    this.done(result, r);
  }

  private done(result: 'sent' | 'aborted' | 'failed', r?: OriginateResult): void {
    if (this.state === 'done') return;
    this.state = 'done';
    this.cursor.close();
    if (this.blocked) {
      this.blocked = false;
      this.owner.unblocked(this);
    }
    this.owner.finished(this, result, r);
  }
}
