/**
 * A message a participant sends to the focus, chunk by chunk (one LocalReceiver per SEND
 * chunk, one InboundMessage per Message-ID):
 *
 * - the body is held only until the CPIM headers and the content headers are in; then the room
 *   decides (From C-4, To C-5, private C-11, types C-7) and the copies start (C-8 fast
 *   forwarding), to the recipients fixed now: later chunks go to them only;
 * - the copies carry the original bytes with the focus's header lines inserted (C-6);
 * - a chunk reception timer runs from chunk to chunk (C-9): when it fires, the copies end
 *   with `#` and the state goes; an abort `#` or the sender's vanishing does the same;
 * - a refused message keeps its answer for its later chunks;
 * - a short text/plain message to the room that starts with `/` is held whole to see whether it
 *   is a command (commands.ts);
 * - a file to the room (files.ts) is also written to disk as it arrives, and kept once whole;
 *   with the cluster option, a message over cluster.maxMessageSize crosses to the other nodes
 *   in pieces as it arrives (cluster-files.ts). The sender is paused while the disk or Redis
 *   lags, never for a recipient.
 */

import type { LocalReceiver, LocalResponse } from '../../core/index.ts';
import type { EndFlag, MsrpRequestHead } from '../../core/protocol/index.ts';
import type { MessageMeta } from './cluster.ts';
import { CpimError, INCOMPLETE, insertHeaderLines, scanCpim, type CpimMessage } from './cpim.ts';
import { MAX_COMMAND_BYTES } from './commands.ts';
import { Delivery } from './delivery.ts';
import type { Crossing, FileKeeper, RoomCore, RouteDecision } from './focus-core.ts';
import type { MessageInProgress, Participant } from './participant.ts';
import { Spool } from './spool.ts';

const PROBLEM_STATUS = { malformed: 400, from: 403, to: 403 } as const;

/**
 * Messages one session may have in progress at once (started, not ended). Each holds a copy on
 * its way to every recipient until it ends or the C-9 timer fires, 540 s later: without a
 * bound, one session could load every recipient with thousands of them (C-17 anti-DoS).
 */
export const MAX_IN_PROGRESS = 16;

export class InboundMessage implements MessageInProgress {
  readonly messageId: string;
  /** Body octets of the message received so far. */
  received = 0;
  /** The total its first chunk announced; -1 for `*`. */
  readonly total: number;
  readonly successReport: boolean;
  readonly receivedAt = new Date();
  /** Octets the focus put before the sender's (the CPIM wrapper of an RFC 5547 push, files.ts): not the sender's to count in its REPORT. */
  reportOffset = 0;
  private head: Buffer | undefined = Buffer.alloc(0);
  private cpim: CpimMessage | undefined;
  private decision: Extract<RouteDecision, { kind: 'deliver' }> | undefined;
  private spool: Spool | undefined;
  private commandBody: Buffer[] | undefined;
  private history: Buffer[] | undefined;
  private historyBytes = 0;
  /** The copy as it goes to other nodes (cluster.ts), while it is within cluster.maxMessageSize. */
  private carried: Buffer[] | undefined;
  private carriedBytes = 0;
  /** The copy crossing to other nodes in pieces, once it outgrew cluster.maxMessageSize. */
  private crossing: Crossing | undefined;
  /** The file being kept (files.ts). */
  private keeper: FileKeeper | undefined;
  private rejection: LocalResponse | undefined;
  private timer: NodeJS.Timeout | undefined;
  private armedAt = 0;
  private finished = false;

  constructor(
    readonly room: RoomCore,
    readonly sender: Participant,
    first: MsrpRequestHead,
  ) {
    this.messageId = first.messageId!;
    this.total = first.byteRange?.total ?? -1;
    this.successReport = first.successReport === 'yes';
    sender.inbound.set(this.messageId, this);
    this.arm();
  }

  /** The receiver of one chunk of this message; a Rejection when the chunk does not continue it. */
  chunk(req: MsrpRequestHead): LocalReceiver | LocalResponse {
    const start = req.byteRange?.start ?? 1;
    let skip = this.received - (start - 1);
    if (skip < 0) {
      // A gap: bytes are missing. The message cannot be passed on whole (RFC 4975 §10.5: 413 stops it).
      const answer = { status: 413, comment: 'Stop-sending-message' };
      this.fail(answer);
      this.cleanup();
      return answer;
    }
    this.arm();
    return {
      onBody: (data, delivery) => {
        if (skip > 0) {
          // A chunk that repeats bytes already received (RFC 4975 §7.3.1): they count once.
          if (data.length <= skip) {
            skip -= data.length;
            return true;
          }
          data = data.subarray(skip);
          skip = 0;
        }
        const more = this.feed(data);
        if (!more) this.whenRoom(() => delivery.resume());
        return more;
      },
      onEnd: (flag) => this.end(flag),
      onAbort: () => this.abort(),
    };
  }

  /** Calls `fn` once the spool's file, the kept file and the crossing have caught up. */
  private whenRoom(fn: () => void): void {
    let n = 3;
    const one = (): void => {
      if (--n === 0) fn();
    };
    if (this.spool !== undefined) this.spool.onRoom(one);
    else one();
    if (this.keeper !== undefined) this.keeper.onDrain(one);
    else one();
    if (this.crossing !== undefined) this.crossing.onDrain(one);
    else one();
  }

  /** C-9: the chunk reception timer, restarted at every chunk. */
  private arm(): void {
    this.armedAt = Date.now();
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = setTimeout(() => this.abort(), this.room.focus.options.chunkTimeout * 1000).unref();
  }

  private feed(data: Buffer): boolean {
    if (this.rejection !== undefined || this.finished) return true;
    // A long chunk still arriving is not an abandoned message (C-9).
    if (Date.now() - this.armedAt > 1000) this.arm();
    this.received += data.length;
    if (this.received > this.room.maxMessageSize || (this.total >= 0 && this.received > this.total)) {
      this.fail({ status: 413, comment: 'Stop-sending-message' });
      return true;
    }
    if (this.head !== undefined) {
      this.head = this.head.length === 0 ? Buffer.from(data) : Buffer.concat([this.head, data]);
      this.decide(false);
      return true;
    }
    if (this.commandBody !== undefined) {
      this.commandBody.push(Buffer.from(data));
      return true;
    }
    this.keep(data);
    // A crossing that starts with these bytes has them already.
    const crossing = this.crossing;
    this.carry(data);
    const kept = this.keeper === undefined ? true : this.keeper.write(data);
    const crossed = crossing === undefined ? true : crossing.write(data);
    const spooled = this.spool === undefined ? true : this.spool.append(data);
    return kept && crossed && spooled;
  }

  /** Scans the headers held so far; once they are in, the room decides and the copies start. */
  private decide(complete: boolean): void {
    // Every body byte is in (a message in one chunk, the common case): only its end-line is
    // left, right behind. Deciding then lets each copy go out whole, in one piece (C-8 is about
    // not waiting for more body; there is none).
    if (!complete && this.total >= 0 && this.received >= this.total) return;
    const buf = this.head!;
    let m: CpimMessage | typeof INCOMPLETE;
    try {
      m = scanCpim(buf, complete, { maxHeaderBytes: this.room.focus.options.limits.maxHeaderBytes });
    } catch (e) {
      if (!(e instanceof CpimError)) throw e;
      this.fail({ status: PROBLEM_STATUS[e.problem], comment: e.problem === 'malformed' ? 'Unintelligible' : 'Action-not-allowed' });
      return;
    }
    if (m === INCOMPLETE) return;
    const maybeCommand = m.mediaType === 'text/plain' && this.total >= 0 && this.total <= MAX_COMMAND_BYTES;
    // A command is told by its first content byte: wait for it.
    if (maybeCommand && !complete && buf.length <= m.contentStart) return;
    this.head = undefined;
    this.cpim = m;
    const command = maybeCommand && buf[m.contentStart] === 0x2f; /* '/' */
    const d = this.room.decide(this.sender, m, command);
    if (d.kind === 'reject') {
      this.fail({ status: d.status, comment: d.comment });
      return;
    }
    this.decision = d;
    if (command && !d.private) {
      this.commandBody = [buf];
      return;
    }
    this.startCopies(buf, complete);
  }

  private startCopies(buf: Buffer, complete: boolean): void {
    const m = this.cpim!;
    const d = this.decision!;
    const lines = this.room.focusLines(this.sender, m, this.receivedAt, false);
    const prefix = insertHeaderLines(buf, m, lines);
    const total = this.total >= 0 ? this.total + Buffer.byteLength(lines) : -1;
    const spool = new Spool(this.room.focus.options.spool);
    this.spool = spool;
    const kind = d.private ? 'private' : 'regular';
    // Cursors before bytes: a spool keeps nothing nobody reads.
    const copies = d.recipients.map((r) => ({ r, delivery: new Delivery(r, spool, kind, total) }));
    if (d.store && (this.total < 0 || this.total <= this.room.focus.options.history.maxMessageSize)) {
      this.history = [];
      this.keep(buf);
    }
    if (this.room.focus.cluster !== undefined) {
      // The sender's bytes: each node adds its focus's lines, live or as history.
      this.carried = [];
      this.carry(buf);
    }
    // A file to the room is kept as it arrives (files.ts); private messages and notices are not.
    const files = this.room.focus.files;
    if (files !== undefined && !d.private && d.store) {
      this.keeper = files.begin(this.room, m, this.total, { messageId: this.messageId, sender: this.sender.identity.uri, nickname: this.sender.nickname, receivedAt: this.receivedAt });
      this.keeper?.write(buf);
    }
    spool.append(prefix);
    if (complete) spool.end('$');
    for (const { r, delivery } of copies) r.deliver(delivery);
    if (copies.length === 0) spool.destroy();
  }

  private keep(data: Buffer): void {
    if (this.history === undefined) return;
    this.historyBytes += data.length;
    if (this.historyBytes > this.room.focus.options.history.maxMessageSize) this.history = undefined;
    else this.history.push(Buffer.from(data));
  }

  private carry(data: Buffer): void {
    if (this.carried === undefined) return;
    this.carriedBytes += data.length;
    const cluster = this.room.focus.cluster!;
    if (this.carriedBytes > cluster.options.maxMessageSize) {
      // Too large for one stream entry: it crosses in pieces from now on (cluster-files.ts), or stays here.
      const first = [...this.carried, Buffer.from(data)];
      this.carried = undefined;
      const d = this.decision!;
      if (d.nowhere !== true) this.crossing = this.room.focus.clusterFiles?.begin(this.room, this.crossingMeta(), first, this.total);
      if (this.crossing === undefined) cluster.stats.tooLarge++;
    } else this.carried.push(Buffer.from(data));
  }

  /** What another node needs to know of this message, whole (cluster.publish) or in pieces (cluster-files.ts). */
  private crossingMeta(): MessageMeta {
    const d = this.decision!;
    return {
      kind: d.private ? 'private' : 'regular',
      messageId: this.messageId,
      from: this.sender.user,
      fromUri: this.sender.identity.uri,
      nickname: this.sender.nickname,
      receivedAt: this.receivedAt,
      to: d.to,
      mediaType: this.cpim!.mediaType,
      history: d.store,
    };
  }

  private end(flag: EndFlag): LocalResponse | undefined {
    if (this.rejection !== undefined) {
      const r = this.rejection;
      this.cleanup();
      return r;
    }
    if (this.finished) return { status: 200 };
    if (flag === '$' && this.total >= 0 && this.received < this.total) {
      // The last chunk ends short of the total its Byte-Range announced: bytes are missing, and
      // the copies, which announced that total, must not end with `$` (a gap, R-72: 413).
      const answer = { status: 413, comment: 'Stop-sending-message' };
      this.fail(answer);
      this.cleanup();
      return answer;
    }
    if (this.head !== undefined) {
      if (flag === '+') return { status: 200 };
      if (flag === '#') {
        this.cleanup();
        return { status: 200 };
      }
      this.decide(true);
      if (this.rejection !== undefined) return this.end(flag);
    }
    if (flag === '+') return { status: 200 };
    if (this.commandBody !== undefined) {
      const body = Buffer.concat(this.commandBody);
      this.commandBody = undefined;
      if (flag === '#') {
        this.cleanup();
        return { status: 200 };
      }
      const text = body.subarray(this.cpim!.contentStart).toString('utf8');
      if (this.room.runCommand(this.sender, text)) {
        this.sender.stats.received++;
        // The focus is the command's endpoint (C-1): a Success-Report is answered as for a message.
        if (this.successReport) this.room.reportSuccess(this.sender, this.messageId, this.received - this.reportOffset, this.cpim!, false);
        this.cleanup();
        return { status: 200 };
      }
      if (this.decision!.commandOnly === true) {
        // A muted sender's text that names no command: refused as its other messages are.
        this.cleanup();
        return { status: 403, comment: 'Muted' };
      }
      this.startCopies(body, true);
    }
    this.spool?.end(flag);
    if (flag === '$') this.completed();
    this.cleanup();
    return { status: 200 };
  }

  private completed(): void {
    this.sender.stats.received++;
    const m = this.cpim!;
    const d = this.decision!;
    const body = this.history !== undefined ? Buffer.concat(this.history) : undefined;
    if (body !== undefined) this.room.remember(this.sender, this.messageId, m, this.receivedAt, body);
    const keeper = this.keeper;
    this.keeper = undefined;
    if (keeper !== undefined) void keeper.finish();
    const crossing = this.crossing;
    this.crossing = undefined;
    crossing?.end('$');
    if (this.carried !== undefined && d.nowhere !== true) {
      this.room.focus.cluster?.publish(this.room, { ...this.crossingMeta(), body: Buffer.concat(this.carried) });
      this.carried = undefined;
    }
    if (this.successReport) this.room.reportSuccess(this.sender, this.messageId, this.received - this.reportOffset, m, d.private);
    this.room.emit('message', {
      participant: this.sender,
      messageId: this.messageId,
      cpim: m,
      private: d.private,
      recipients: d.recipients,
      receivedAt: this.receivedAt,
      body,
    });
  }

  private fail(answer: LocalResponse): void {
    if (this.rejection !== undefined) return;
    this.rejection = answer;
    this.sender.refuse(this.messageId, answer);
    this.spool?.end('#');
    this.history = undefined;
    this.carried = undefined;
    this.keeper?.discard();
    this.keeper = undefined;
    this.crossing?.end('#');
    this.crossing = undefined;
    this.commandBody = undefined;
    this.head = undefined;
  }

  /** The sender went away mid-chunk, the C-9 timer fired, or the sender left: copies end with `#`. */
  abort(): void {
    if (this.finished) return;
    this.spool?.end('#');
    this.cleanup();
  }

  private cleanup(): void {
    if (this.finished) return;
    this.finished = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    // Whatever did not end with `$` is not kept and does not cross.
    this.keeper?.discard();
    this.keeper = undefined;
    this.crossing?.end('#');
    this.crossing = undefined;
    if (this.sender.inbound.get(this.messageId) === this) this.sender.inbound.delete(this.messageId);
  }
}
