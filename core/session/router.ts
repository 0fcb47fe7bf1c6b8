/**
 * The router: where each request a connection reads goes.
 *
 *   request head ─▶ validate (R-17…R-29) ─▶ receiveRequest ─▶ AUTH? ─▶ token check
 *     ─▶ direction and binding (R-57a) ─▶ next hop (local hand-over, bound leg, or dial)
 *     ─▶ rewritePath ─▶ forwardChunk ─▶ the forwarder streams the body to its sink
 *   a URI of this relay that names no session (or a session URI alone) ─▶ claimRequest
 *     ─▶ a local endpoint receives it (DESIGN.md §3a)
 *   response ─▶ the transaction table (core/session/transactions.ts)
 *
 * Decisions that need no plugin and no dialling are taken synchronously, so an empty relay
 * forwards a chunk without a single promise (DESIGN.md §3: untapped hooks are skipped).
 * The body's way is the forwarder's (core/session/forwarder.ts), the relay's own answers
 * are core/session/replies.ts.
 */

import { MsrpError, isMsrpError, type MsrpErrorCode } from '../errors.ts';
import { alreadyReported, isTapped, type RelayHooks } from '../hooks.ts';
import type { EndFlag, FrameHead, FramerError, RawHeader } from '../protocol/framer.ts';
import { formatResponse, getHeader, MessageError, parseRequestHead, parseResponseHead, type MsrpRequestHead, type MsrpResponseHead } from '../protocol/message.ts';
import { statusComment } from '../protocol/status.ts';
import { uriEquals, type MsrpUri } from '../protocol/uri.ts';
import type { RelayConfig } from '../config/schema.ts';
import type { Logger } from '../plugin.ts';
import type { CloseReason, ErrorContext, ForwardDirection, ListenerInfo, LocalRequest, NextHop, PathPair } from '../types.ts';
import { Authenticator } from './authenticator.ts';
import type { Connection } from './connection.ts';
import { Forwarder, MAX_NON_SEND_BODY, peerOf, type Inbound, type Peer, type Sink } from './forwarder.ts';
import type { PeerEvents } from './peer.ts';
import { Replies } from './replies.ts';
import { maskId, type FarLeg, type Session, type SessionTable } from './session-table.ts';
import { Transactions, type Transaction } from './transactions.ts';
import { DestinationPolicy } from '../transport/destination-policy.ts';
import { WORKER_TRANSPORT } from '../transport/stream.ts';
import { legUser, OutwardLegs } from './outward-legs.ts';

/** failed requests tolerated before the first success. */
const MAX_PROBATION_FAILURES = 5;
/** The default MSRP relay port (RFC 4976 §8; I-3). */
export const DEFAULT_RELAY_PORT = 2855;
const KNOWN_METHODS = new Set(['SEND', 'REPORT', 'AUTH', 'NICKNAME']);
/** Why reading pauses while a decision is awaited. */
const DECIDE = 'decide';

export interface RouterDeps {
  config(): RelayConfig;
  hooks(): RelayHooks<unknown>;
  sessions: SessionTable<Connection>;
  hostname(): string;
  listeners(): readonly ListenerInfo[];
  log(): Logger;
  /** Opens the next leg through the transport provider of `hop.transport`. */
  dial(hop: NextHop, session: Session<Connection>): Promise<Connection>;
  /** A connection is gone (the relay drops it from its registry). */
  connectionGone(conn: Connection, reason: CloseReason): void;
  /** Cluster mode (DESIGN.md §7): session-ids that name this worker. */
  newSessionId?(): string;
  /** Cluster mode: the hop to the worker that owns a session-id of this relay, when it is another one. */
  ownerElsewhere?(sessionId: string): NextHop | undefined;
}

/** What the router decided for one request. */
type Decision =
  | {
      kind: 'respond';
      status: number;
      comment?: string;
      headers?: readonly RawHeader[];
      close?: boolean;
      reason: string;
      /** From-Path of an end-to-end answer: the relay URIs the request passed (a local endpoint's refusal). */
      from?: readonly string[];
      /** A failure of the relay or a plugin (not a refusal): Failure-Report partial learns it by REPORT. */
      failure?: boolean;
    }
  | { kind: 'silent'; reason: string }
  | { kind: 'close'; reason: string }
  | { kind: 'sink'; sink: Sink };

/** The next hop could not be reached (not a plugin's fault). */
class DialError extends Error {}

/** A dial whose failure is a DialError. */
function dialing(p: Promise<Connection>): Promise<Connection> {
  return p.catch((e: unknown) => {
    // A refusal of the relay's own (a cap) keeps its status.
    if (isMsrpError(e)) throw e;
    throw new DialError(e instanceof Error ? e.message : String(e));
  });
}

export class Router implements PeerEvents<Inbound, Transaction> {
  private readonly d: RouterDeps;
  readonly authenticator: Authenticator;
  readonly replies: Replies;
  readonly transactions: Transactions;
  readonly forwarder: Forwarder;
  /** `outbound.allow` / `deny`: where openOutward may dial (SSRF guard). */
  private readonly destinations = new DestinationPolicy();
  /** `outbound.maxLegsPerConnection` / `maxLegsPerUser`: outward legs held per client and user. */
  private readonly legs = new OutwardLegs<Session<Connection>, Connection>();

  constructor(deps: RouterDeps) {
    this.d = deps;
    this.replies = new Replies(deps.hooks);
    this.transactions = new Transactions({
      maxOutstanding: () => deps.config().limits.maxOutstandingPerConnection,
      timeoutMs: () => deps.config().timeouts.transaction * 1000,
      replies: this.replies,
      ownSession: (u) => this.ownSession(u),
    });
    this.forwarder = new Forwarder({
      config: deps.config,
      hooks: deps.hooks,
      transactions: this.transactions,
      replies: this.replies,
      report: (e, conn) => this.report(e, { connection: conn }),
    });
    this.authenticator = new Authenticator({
      config: deps.config,
      hooks: deps.hooks,
      sessions: deps.sessions,
      hostname: deps.hostname,
      listeners: deps.listeners,
      defaultPort: DEFAULT_RELAY_PORT,
      now: () => Date.now(),
      ...(deps.newSessionId !== undefined ? { newSessionId: deps.newSessionId } : {}),
    });
  }

  // ================================================================== frames in

  onHead(peer: Peer, head: FrameHead): void {
    const conn = peer.conn;
    if (head.kind === 'response') {
      peer.inbound = { req: undefined, mode: 'response', bodyBytes: 0, startedAt: 0 } satisfies Inbound;
      this.onResponse(peer, head);
      return;
    }
    const cfg = this.d.config();
    let req: MsrpRequestHead;
    try {
      req = parseRequestHead(head, { maxPathUris: cfg.limits.maxPathUris });
    } catch (e) {
      if (!(e instanceof MessageError)) throw e;
      this.refuseMalformed(peer, head, e);
      return;
    }
    const inbound: Inbound = { req, mode: 'pending', bodyBytes: 0, startedAt: Date.now() };
    peer.inbound = inbound;
    const observers = this.d.hooks();
    if (isTapped(observers.requestReceived)) {
      observers.requestReceived.call({
        connection: conn,
        request: req,
        get signal() {
          return conn.signal;
        },
      });
    }
    // the body of a request other than SEND is small; it is read whole first, so one
    // over 10240 octets is refused before any of it (an AUTH's Digest, say) is processed.
    if (req.method !== 'SEND' && req.hasBody) {
      inbound.mode = 'holding';
      inbound.held = [];
      return;
    }
    this.decideAndApply(peer, inbound);
  }

  /** Decides, then applies the decision; `then` runs once it is applied (a held body's replay). */
  private decideAndApply(peer: Peer, inbound: Inbound, then?: () => void): void {
    const conn = peer.conn;
    let decision: Decision | Promise<Decision>;
    try {
      decision = this.decide(peer, inbound.req!);
    } catch (e) {
      decision = this.internalError(conn, e, 'routing');
    }
    if (decision instanceof Promise) {
      conn.pauseReading(DECIDE);
      decision
        .catch((e: unknown) => this.internalError(conn, e, 'routing'))
        .then((d) => {
          if (conn.isClosed) return;
          this.apply(peer, inbound, d);
          then?.();
          conn.resumeReading(DECIDE);
        })
        .catch((e: unknown) => this.report(e, { connection: conn }));
    } else {
      this.apply(peer, inbound, decision);
      then?.();
    }
  }

  onBody(peer: Peer, data: Buffer): void {
    const inb = peer.inbound;
    if (inb === undefined || inb.req === undefined) return;
    if (inb.mode === 'holding') {
      inb.bodyBytes += data.length;
      if (inb.bodyBytes > MAX_NON_SEND_BODY) {
        // 400 and close, before the request is processed at all.
        inb.mode = 'discard';
        inb.held = undefined;
        this.replies.send(peer.conn, inb.req, 400, 'body over 10240 octets');
        peer.conn.close({ code: 'protocol-error', message: 'non-SEND body over 10240 octets (R-29)' });
        return;
      }
      inb.held!.push(Buffer.from(data));
      return;
    }
    this.forwarder.body(peer, inb, data);
  }

  onEnd(peer: Peer, flag: EndFlag): void {
    const inb = peer.inbound;
    peer.inbound = undefined;
    if (inb === undefined || inb.req === undefined) return;
    if (inb.mode === 'holding') {
      const held = inb.held!;
      inb.held = undefined;
      inb.mode = 'pending';
      inb.bodyBytes = 0;
      this.decideAndApply(peer, inb, () => {
        for (const h of held) this.forwarder.body(peer, inb, h);
        this.forwarder.end(peer, inb, flag);
      });
      return;
    }
    this.forwarder.end(peer, inb, flag);
  }

  onFramingError(peer: Peer, err: FramerError): void {
    this.replies.framingError(peer.conn, err);
  }

  onClose(peer: Peer, reason: CloseReason): void {
    const conn = peer.conn;
    const inb = peer.inbound;
    peer.inbound = undefined;
    // The sender vanished mid-chunk: end what went out with `#`.
    if (inb !== undefined) this.forwarder.abortSink(inb, reason);
    // Streams being written here from other connections: their senders learn at their end-line.
    for (const s of conn.writer.close()) s.events.onDropped?.();
    // requests forwarded here that were never answered: REPORT 408 to their senders.
    this.transactions.peerClosed(peer);
    // every URI issued over this connection is invalidated.
    const sessions = peer.sessionsIfAny;
    if (sessions !== undefined) for (const s of [...sessions]) this.d.sessions.remove(s, { code: 'owner-closed', message: reason.message ?? reason.code });
    const far = peer.farSessionsIfAny;
    if (far !== undefined) for (const s of [...far]) this.unbindFar(s, peer);
    this.d.connectionGone(conn, reason);
  }

  /** Session end (from the table): release its legs. */
  sessionClosed(s: Session<Connection>): void {
    peerOf(s.owner).sessions.delete(s);
    this.legs.close(s);
    const far = s.farLeg;
    s.farLeg = undefined;
    if (far?.kind === 'connection') {
      const fp = peerOf(far.connection);
      fp.farSessions.delete(s);
      // Cluster mode: a worker link another worker opened toward this session (a session's leg,
      // or a local endpoint's, openWorkerLink; never shared) ends with it, so that side learns
      // it is gone (a chat focus there: the participant leaves).
      if (far.connection.transport === WORKER_TRANSPORT && far.connection.direction === 'inbound' && fp.farSessions.size === 0) {
        far.connection.close({ code: 'owner-closed' });
      }
    } else if (far?.kind === 'local' && far.session.farLeg?.kind === 'local' && far.session.farLeg.session === s) {
      far.session.farLeg = undefined;
      this.d.sessions.armExpiry(far.session);
    }
    const out = s.outbound;
    s.outbound = undefined;
    if (out !== undefined) {
      const op = peerOf(out);
      op.farSessions.delete(s);
      // The outbound leg was opened for this session alone (unless shared): close it.
      if (!this.d.config().shareOutboundConnections && op.farSessions.size === 0) out.close({ code: 'owner-closed' });
    }
  }

  private unbindFar(s: Session<Connection>, peer: Peer): void {
    if (s.farLeg?.kind === 'connection' && s.farLeg.connection === peer.conn) s.farLeg = undefined;
    if (s.outbound === peer.conn) {
      s.outbound = undefined;
      this.legs.close(s);
    }
    peer.farSessions.delete(s);
  }

  // ================================================================== decisions

  private decide(peer: Peer, req: MsrpRequestHead): Decision | Promise<Decision> {
    const hooks = this.d.hooks();
    if (isTapped(hooks.receiveRequest)) {
      const conn = peer.conn;
      return hooks.receiveRequest.promise({ connection: conn, request: req, signal: conn.signal }).then((r) => {
        if (r === undefined) return this.route(peer, req);
        if ('reject' in r) return this.refusal(r.reject);
        // A plugin answers the request itself (NICKNAME, C-13).
        return { kind: 'respond', status: r.respond.status, ...(r.respond.comment !== undefined ? { comment: r.respond.comment } : {}), headers: r.respond.headers ?? [], reason: 'answered by a plugin' };
      });
    }
    return this.route(peer, req);
  }

  private route(peer: Peer, req: MsrpRequestHead): Decision | Promise<Decision> {
    const conn = peer.conn;
    const first = req.toUris[0]!;
    // AUTH to this relay: To-Path holds only the relay.
    if (req.method === 'AUTH' && req.toUris.length === 1) {
      if (!this.authenticator.portMatches(first.port, conn)) return { kind: 'close', reason: 'AUTH To-Path port is not this relay (R-53)' };
      return this.authenticator.authenticate(peer, req).then((o) => ({
        kind: 'respond',
        status: o.status,
        headers: o.headers,
        close: o.close,
        reason: o.reason,
      }));
    }
    const session = this.ownSession(first);
    if (session === undefined) {
      if (!this.isOwnHost(first)) {
        // the first URI is not this relay at all: drop the connection.
        return { kind: 'close', reason: 'To-Path does not name this relay (R-53)' };
      }
      // A URI of this relay that is no session of it: a local endpoint's, if a plugin claims it.
      return this.claim(peer, req, 0, undefined, () => {
        if (req.toUris.length === 1 && first.sessionId === undefined && !KNOWN_METHODS.has(req.method)) {
          return this.fail('MSRP_ERR_METHOD_NOT_UNDERSTOOD', 'unknown method addressed to the relay (R-75)');
        }
        // unknown, expired or invalidated token.
        return this.fail('MSRP_ERR_SESSION_NOT_FOUND', `no session ${first.sessionId === undefined ? '(none given)' : maskId(first.sessionId)}`);
      });
    }
    if (req.toUris.length === 1) {
      // A session URI alone: the relay is not an endpoint, unless a plugin is one there;
      // otherwise there is nowhere to relay to (481, as the original relay answers).
      return this.claim(peer, req, 0, session, () => {
        if (!KNOWN_METHODS.has(req.method)) return this.fail('MSRP_ERR_METHOD_NOT_UNDERSTOOD', 'unknown method addressed to the relay (R-75)');
        return this.fail('MSRP_ERR_SESSION_NOT_FOUND', 'nothing after the session URI to relay to');
      });
    }
    const cfg = this.d.config();
    if (!cfg.forwardUnknownMethods && !KNOWN_METHODS.has(req.method)) {
      // blocking unknown methods is configured.
      return this.fail('MSRP_ERR_METHOD_NOT_UNDERSTOOD', `method ${req.method} is blocked (R-74)`);
    }
    // a message known to be too large, or already refused.
    if (req.method === 'SEND' && req.messageId !== undefined) {
      if (session.refusedMessages.has(req.messageId)) return this.fail('MSRP_ERR_MESSAGE_TOO_LARGE', 'message was refused earlier (R-72)');
      const total = req.byteRange?.total ?? -1;
      if (total > cfg.limits.maxMessageSize) {
        session.refuseMessage(req.messageId);
        return this.fail('MSRP_ERR_MESSAGE_TOO_LARGE', 'message larger than the relay allows (R-72)');
      }
    }
    if (conn === session.owner) return this.routeOutward(peer, req, session);
    return this.routeInward(conn, req, session, { kind: 'connection', connection: conn, hopUri: req.fromUris[0] });
  }

  /**
   * Offers the request to claimRequest taps: To-Path[index] names this relay but no session
   * (or is a session URI alone). `otherwise` decides when no plugin claims it.
   */
  private claim(peer: Peer, req: MsrpRequestHead, index: number, session: Session<Connection> | undefined, otherwise: () => Decision): Decision | Promise<Decision> {
    const hooks = this.d.hooks();
    if (!isTapped(hooks.claimRequest)) return otherwise();
    const conn = peer.conn;
    const passed = req.toPath.slice(0, index + 1);
    const request: LocalRequest = {
      connection: conn,
      request: req,
      uri: req.toUris[index]!,
      session,
      toPath: req.toPath.slice(index + 1),
      // every relay URI passed goes to the front of From-Path, the endpoint's own excepted.
      fromPath: [...passed.slice(0, index).reverse(), ...req.fromPath],
      reply: { toPath: req.fromPath, fromPath: passed },
      signal: conn.signal,
    };
    return hooks.claimRequest.promise(request).then((r): Decision => {
      if (r === undefined) return otherwise();
      // A refusal comes from the endpoint's place in the path, as its answers do.
      if ('reject' in r) return { ...this.refusal(r.reject), from: passed };
      if (index === 1 && session !== undefined && !session.endpoint && !session.closed) {
        // I-4: the owner's token reached a local endpoint, its far end: bound from now on, as a
        // hand-over binds it, so a chat participant's token does not expire under it.
        session.endpoint = true;
        this.d.sessions.armExpiry(session);
      }
      return { kind: 'sink', sink: { kind: 'local', receiver: r, request, replyFrom: passed } };
    });
  }

  /** R-51 a: from the owning client to whatever the next URI names. */
  private routeOutward(peer: Peer, req: MsrpRequestHead, session: Session<Connection>): Decision | Promise<Decision> {
    const conn = peer.conn;
    const next = req.toUris[1]!;
    const reportFrom = req.toPath[0]!;
    const other = this.ownSession(next);
    if (other !== undefined) {
      // Both clients use this relay: hand the request over inside the process, as if it had
      // looped (RFC 7977 §8.3.2); both URIs end up in From-Path.
      if (req.toUris.length < 3) {
        return this.claim(peer, req, 1, other, () => this.fail('MSRP_ERR_SESSION_NOT_FOUND', 'nothing after the session URI to relay to'));
      }
      const inner = {
        ...req,
        toPath: req.toPath.slice(1),
        toUris: req.toUris.slice(1),
        fromPath: [req.toPath[0]!, ...req.fromPath],
      } satisfies MsrpRequestHead;
      const d = this.routeInward(conn, inner, other, { kind: 'local', session }, reportFrom, session);
      // The sender's session is bound too once a hand-over succeeds (I-4: it no longer expires).
      const bindSender = (x: Decision): Decision => {
        if (x.kind === 'sink' && session.farLeg === undefined && !session.closed) {
          session.farLeg = { kind: 'local', session: other };
          this.d.sessions.armExpiry(session);
        }
        return x;
      };
      return d instanceof Promise ? d.then(bindSender) : bindSender(d);
    }
    let elsewhere: NextHop | undefined;
    if (this.isOwnHost(next)) {
      // Cluster mode: a token of another worker is a hop to that worker (DESIGN.md §7).
      if (next.sessionId !== undefined) elsewhere = this.d.ownerElsewhere?.(next.sessionId);
      if (elsewhere === undefined) {
        // A URI of this relay that is no session: a local endpoint's, reached through the sender's token.
        return this.claim(peer, req, 1, session, () => this.fail('MSRP_ERR_SESSION_NOT_FOUND', 'the next hop is an unknown session of this relay'));
      }
    }
    // W-7, R-16: a `;ws` or `.invalid` URI is reached only over its bound connection.
    const unreachable = next.transport === 'ws' || next.host.toLowerCase().endsWith('.invalid');
    const paths: PathPair = { toPath: req.toPath.slice(1), fromPath: [req.toPath[0]!, ...req.fromPath] };
    const target = this.outwardConnection(session, next);
    if (target !== undefined) return this.finishForward(conn, req, session, 'outward', target, paths, reportFrom);
    if (unreachable) return this.fail('MSRP_ERR_SESSION_NOT_FOUND', 'the next hop cannot be dialled and is not connected (W-7)');
    return this.openOutward(session, req, next, elsewhere).then((t) =>
      'kind' in t ? t : this.finishForward(conn, req, session, 'outward', t, paths, reportFrom),
    );
  }

  /** R-51 b: toward the owning client, only over its own connection. */
  private routeInward(
    conn: Connection,
    req: MsrpRequestHead,
    session: Session<Connection>,
    leg: FarLeg<Connection>,
    reportFrom: string = req.toPath[0]!,
    from?: Session<Connection>,
  ): Decision | Promise<Decision> {
    const next = req.toUris[1]!;
    if (!this.hopMatches(next, session.ownerHopUri)) {
      return this.fail('MSRP_ERR_WRONG_DIRECTION', 'the session does not route that way (R-51)');
    }
    const paths: PathPair = { toPath: req.toPath.slice(1), fromPath: [req.toPath[0]!, ...req.fromPath] };
    const bound = session.farLeg;
    if (bound === undefined) {
      const hooks = this.d.hooks();
      const bind = () => {
        if (session.closed) return this.fail('MSRP_ERR_SESSION_NOT_FOUND', 'session closed');
        if (session.farLeg !== undefined && !this.sameLeg(session.farLeg, leg)) return this.fail('MSRP_ERR_SESSION_ALREADY_BOUND', 'session bound to another connection (R-57a)');
        session.farLeg = leg;
        if (leg.kind === 'connection') peerOf(leg.connection).farSessions.add(session);
        this.d.sessions.armExpiry(session);
        return this.finishForward(conn, req, session, 'inward', session.owner, paths, reportFrom, from);
      };
      if (isTapped(hooks.bindSession)) {
        return hooks.bindSession
          .promise({ session, connection: leg.kind === 'connection' ? leg.connection : undefined, request: req, signal: conn.signal })
          .then((r) => (r !== undefined ? this.refusal(r.reject) : bind()));
      }
      return bind();
    }
    if (!this.sameLeg(bound, leg) && !(leg.kind === 'connection' && session.outbound === leg.connection)) {
      // R-57a: a second far-end connection.
      return this.fail('MSRP_ERR_SESSION_ALREADY_BOUND', 'session bound to another connection (R-57a)');
    }
    return this.finishForward(conn, req, session, 'inward', session.owner, paths, reportFrom, from);
  }

  private finishForward(
    conn: Connection,
    req: MsrpRequestHead,
    session: Session<Connection>,
    direction: ForwardDirection,
    target: Connection,
    paths: PathPair,
    reportFrom: string,
    from?: Session<Connection>,
  ): Decision | Promise<Decision> {
    if (target.isClosed) return this.fail('MSRP_ERR_SESSION_NOT_FOUND', 'the next hop connection is closed');
    const hooks = this.d.hooks();
    if (isTapped(hooks.rewritePath)) paths = hooks.rewritePath.call(paths, { connection: conn, session, request: req, direction });
    const decision: Decision = {
      kind: 'sink',
      sink: { kind: 'forward', target, session, direction, paths, reportFrom, ...(from !== undefined ? { from } : {}) },
    };
    if (isTapped(hooks.forwardChunk)) {
      return hooks.forwardChunk
        .promise({ connection: conn, session, request: req, direction, signal: conn.signal, ...(from !== undefined ? { from } : {}) })
        .then((r) => (r !== undefined ? this.refusal(r.reject) : decision));
    }
    return decision;
  }

  /** The connection an outward request takes, if one is open already. */
  private outwardConnection(session: Session<Connection>, next: MsrpUri): Connection | undefined {
    const out = session.outbound;
    if (out !== undefined && !out.isClosed) return out;
    const far = session.farLeg;
    // I-10, R-16: the far end connected in first: route back over that connection.
    if (far?.kind === 'connection' && !far.connection.isClosed && (far.hopUri === undefined || this.hopMatches(next, far.hopUri))) {
      return far.connection;
    }
    return undefined;
  }

  /**
   * The session's own outbound leg, opened once however many requests wait for it: to the
   * worker that owns the next token in cluster mode (DESIGN.md §7), else where resolveNextHop says.
   */
  private async openOutward(session: Session<Connection>, req: MsrpRequestHead, next: MsrpUri, elsewhere: NextHop | undefined): Promise<Connection | Decision> {
    if (session.dialing === undefined) {
      const hooks = this.d.hooks();
      const pending = (async () => {
        let hop = elsewhere;
        if (hop === undefined) {
          const answer = await hooks.resolveNextHop.promise({ uri: next, session, request: req, signal: session.owner.signal });
          if (answer === undefined) throw new MsrpError('MSRP_ERR_SESSION_NOT_FOUND', 'no next hop');
          if ('reject' in answer) throw answer.reject;
          hop = await this.admitOutward(answer, session);
        }
        const c = await dialing(this.d.dial(hop, session));
        if (session.closed) {
          c.close({ code: 'owner-closed' });
          throw new MsrpError('MSRP_ERR_SESSION_NOT_FOUND', 'session closed while dialling');
        }
        session.outbound = c;
        peerOf(c).farSessions.add(session);
        this.d.sessions.armExpiry(session);
        return c;
      })();
      session.dialing = pending;
      pending.then(
        () => (session.dialing = undefined),
        () => {
          session.dialing = undefined;
          this.legs.close(session);
        },
      );
    }
    try {
      return await session.dialing;
    } catch (e) {
      if (isMsrpError(e)) return this.refusal(e);
      // The next hop cannot be reached (or a resolveNextHop tap failed): the request fails
      // like a timed-out transaction.
      if (!(e instanceof DialError) && !alreadyReported(e)) this.report(e, { connection: session.owner, hook: 'resolveNextHop' });
      this.d.log().warn('next hop unreachable', { ...(elsewhere !== undefined ? { hop: `${elsewhere.transport}:${elsewhere.host}` } : {}), error: e instanceof Error ? e.message : String(e) });
      return this.fail('MSRP_ERR_TIMEOUT', 'next hop unreachable');
    }
  }

  /**
   * Before a dial: the destination policy on every address the hop resolves to (403 when
   * refused; a name that does not resolve is unreachable, 408), then a place under the leg caps
   * (403). Returns the hop to dial: pinned to the address that was checked.
   */
  private async admitOutward(hop: NextHop, session: Session<Connection>): Promise<NextHop> {
    const cfg = this.d.config();
    const out = cfg.outbound;
    const v = await this.destinations.check(hop, out, cfg.listen.map((l) => l.host), cfg.timeouts.connect * 1000);
    if (v.kind === 'unresolved') throw new DialError(v.reason);
    const user = legUser(session.identity);
    if (v.kind === 'denied') {
      this.d.log().warn('next hop refused by the outbound policy', { hop: `${hop.transport}://${hop.host}:${hop.port}`, address: v.address, rule: v.rule, user, session: maskId(session.id) });
      throw new MsrpError('MSRP_ERR_DESTINATION_DENIED', `next hop ${hop.host}:${hop.port} refused (${v.rule})`);
    }
    const full = this.legs.open(session, session.owner, user, { perConnection: out.maxLegsPerConnection, perUser: out.maxLegsPerUser });
    if (full !== undefined) {
      this.d.log().warn('next hop refused: too many outward legs', { per: full, user, session: maskId(session.id) });
      throw new MsrpError('MSRP_ERR_TOO_MANY_LEGS', `outbound.maxLegsPer${full === 'user' ? 'User' : 'Connection'} reached`);
    }
    return v.hop;
  }

  // ================================================================== applying

  private apply(peer: Peer, inb: Inbound, d: Decision): void {
    const conn = peer.conn;
    const req = inb.req!;
    switch (d.kind) {
      case 'sink':
        this.forwarder.start(peer, inb, d.sink);
        conn.markSucceeded();
        return;
      case 'respond': {
        inb.mode = 'discard';
        this.countProbationFailure(peer, d.status);
        if (d.failure === true && req.method === 'SEND' && req.failureReport === 'partial') {
          // R-65 allows no 200 and R-63 wants processing problems as a REPORT: sent at the
          // end-line, when the Byte-Range of what arrived is known.
          inb.failedReport = d.status;
          return;
        }
        // AUTH and errors known before the body answer at once; the body (if any) is discarded.
        this.replies.send(conn, req, d.status, d.comment, d.headers, d.from);
        if (d.close === true) conn.close({ code: d.status === 401 || d.status === 403 ? 'auth-failures' : 'rejected', message: d.reason });
        return;
      }
      case 'silent':
        inb.mode = 'discard';
        return;
      case 'close':
        inb.mode = 'discard';
        conn.close({ code: 'protocol-error', message: d.reason });
        return;
    }
  }

  // ================================================================== responses

  private onResponse(peer: Peer, head: FrameHead): void {
    let res: MsrpResponseHead;
    try {
      res = parseResponseHead(head, { maxPathUris: this.d.config().limits.maxPathUris });
    } catch {
      return; // unparseable responses are dropped.
    }
    this.transactions.onResponse(peer, res);
  }

  // ================================================================== helpers

  /** A token of this relay (R-50: session-id case-sensitive, scheme/host/port/transport exact). */
  ownSession(u: MsrpUri): Session<Connection> | undefined {
    if (u.sessionId === undefined) return undefined;
    const s = this.d.sessions.get(u.sessionId);
    if (s === undefined || !uriEquals(u, s.parsedUri)) return undefined;
    return s;
  }

  /** True when a URI's host and port name this relay. */
  isOwnHost(u: MsrpUri): boolean {
    if (u.host.toLowerCase() !== this.d.hostname().toLowerCase()) return false;
    return u.port === undefined || this.d.listeners().some((l) => l.port === u.port);
  }

  /**
   * R-51 b: does `next` name the owner's previous hop? Compared by URI (§1.8), or by
   * session-id when both have one (a client behind NAT may write another port, I-10).
   */
  private hopMatches(next: MsrpUri, hop: MsrpUri): boolean {
    if (uriEquals(next, hop)) return true;
    return next.sessionId !== undefined && next.sessionId === hop.sessionId && next.scheme === hop.scheme;
  }

  private sameLeg(a: FarLeg<Connection>, b: FarLeg<Connection>): boolean {
    if (a.kind === 'connection') return b.kind === 'connection' && a.connection === b.connection;
    return b.kind === 'local' && a.session === b.session;
  }

  private fail(code: MsrpErrorCode, reason: string): Decision {
    return this.refusal(new MsrpError(code, reason));
  }

  private refusal(e: MsrpError): Extract<Decision, { kind: 'respond' }> {
    return { kind: 'respond', status: e.status, headers: e.headers, reason: e.message };
  }

  private internalError(conn: Connection, e: unknown, what: string): Decision {
    if (isMsrpError(e)) return this.refusal(e);
    // A failed tap was reported by core/hooks.ts, with its plugin and hook.
    if (!alreadyReported(e)) this.report(e, { connection: conn });
    this.d.log().error(`${what} failed`, { error: e instanceof Error ? e.message : String(e) });
    // DESIGN.md §6: an unexpected exception fails closed.
    return { kind: 'respond', status: 403, reason: `${what} failed`, failure: true };
  }

  report(e: unknown, ctx: ErrorContext): void {
    const err = e instanceof Error ? e : new Error(String(e));
    try {
      this.d.hooks().error.call(err, ctx);
    } catch {
      // nothing left to tell
    }
  }

  private countProbationFailure(peer: Peer, status: number): void {
    const conn = peer.conn;
    if (!conn.inProbation || status < 400 || status === 401) return;
    // several failures and no success during probation: close.
    if (++peer.probationFailures >= MAX_PROBATION_FAILURES) conn.close({ code: 'protocol-error', message: 'too many failed requests (R-10)' });
  }

  private refuseMalformed(peer: Peer, head: FrameHead, e: MessageError): void {
    const conn = peer.conn;
    peer.inbound = { req: undefined, mode: 'discard', bodyBytes: 0, startedAt: 0 } satisfies Inbound;
    if (!e.respond) {
      // the paths cannot be read, so no response can be addressed.
      conn.close({ code: 'protocol-error', message: e.message });
      return;
    }
    const fr = getHeader(head.headers, 'Failure-Report')?.toLowerCase();
    if (head.method !== 'REPORT' && fr !== 'no') {
      const to = head.headers[0]![1].split(/[ \t]+/)[0]!;
      const from = head.headers[1]![1].split(/[ \t]+/).filter((x) => x !== '');
      const toPath = head.method === 'SEND' ? [from[0]!] : from;
      this.replies.write(conn, formatResponse({ tid: head.tid, status: e.status, comment: statusComment(e.status), toPath, fromPath: [to] }), head.method, head.tid, e.status);
    }
    this.countProbationFailure(peer, e.status);
  }
}
