/**
 * What the relay's routing knows of one connection: the request being read, the requests
 * it forwarded there and awaits answers to, the sessions issued over it or bound to it, and
 * its AUTH and probation counters. A Connection holds none of this (it only frames and
 * writes); its handler is its Peer, which passes each frame to the router.
 */

import type { EndFlag, FrameHead, FramerError } from '../protocol/framer.ts';
import type { CloseReason } from '../types.ts';
import type { Connection, ConnectionHandler } from './connection.ts';
import type { Session } from './session-table.ts';

/** What handles a peer's frames: the router. */
export interface PeerEvents<I, T> {
  onHead(peer: Peer<I, T>, head: FrameHead): void;
  onBody(peer: Peer<I, T>, data: Buffer): void;
  onEnd(peer: Peer<I, T>, flag: EndFlag): void;
  onFramingError(peer: Peer<I, T>, err: FramerError): void;
  onClose(peer: Peer<I, T>, reason: CloseReason): void;
}

/**
 * `I` is the state of the request being read (the forwarder's Inbound), `T` a transaction
 * (core/session/transactions.ts): parameters, so this file depends on neither.
 */
export class Peer<I = unknown, T = unknown> implements ConnectionHandler {
  /** The request being read on this connection. */
  inbound: I | undefined;
  /** Transactions opened elsewhere for requests that came in here (R-88 outstanding cap). */
  outstanding = 0;
  /** failed AUTHs on this connection. */
  authFailures = 0;
  /** an AUTH is being processed. */
  authInProgress = false;
  /** failed requests before the first success. */
  probationFailures = 0;
  /** AUTHs without credentials since the last one with (limits.maxChallengesPerConnection). */
  challengesInRow = 0;
  /** An outbound connection's dial target (`tls://host:port`, `worker:1`): R-12 reuse and logs. */
  label: string | undefined;
  /** Made on first use: most connections never need them (memory per held session). */
  private pendingMap: Map<string, T> | undefined;
  private ownSessions: Set<Session<Connection>> | undefined;
  private farSessionSet: Set<Session<Connection>> | undefined;

  constructor(
    private readonly events: PeerEvents<I, T>,
    readonly conn: Connection,
  ) {}

  /** Requests this relay sent here, by the tid it gave them. */
  get pending(): Map<string, T> {
    return (this.pendingMap ??= new Map());
  }

  /** The pending map if it was ever made (closing a connection must not make one). */
  get pendingIfAny(): Map<string, T> | undefined {
    return this.pendingMap;
  }

  /** Sessions (tokens) issued over this connection. */
  get sessions(): Set<Session<Connection>> {
    return (this.ownSessions ??= new Set());
  }

  get sessionsIfAny(): Set<Session<Connection>> | undefined {
    return this.ownSessions;
  }

  /** Sessions whose far leg is this connection. */
  get farSessions(): Set<Session<Connection>> {
    return (this.farSessionSet ??= new Set());
  }

  get farSessionsIfAny(): Set<Session<Connection>> | undefined {
    return this.farSessionSet;
  }

  onHead(_c: Connection, head: FrameHead): void {
    this.events.onHead(this, head);
  }

  onBody(_c: Connection, data: Buffer): void {
    this.events.onBody(this, data);
  }

  onEnd(_c: Connection, flag: EndFlag): void {
    this.events.onEnd(this, flag);
  }

  onFramingError(_c: Connection, err: FramerError): void {
    this.events.onFramingError(this, err);
  }

  onClose(_c: Connection, reason: CloseReason): void {
    this.events.onClose(this, reason);
  }
}

/** The Peer of a connection the relay made. */
export function peerOf<I = unknown, T = unknown>(conn: Connection): Peer<I, T> {
  return conn.handler as Peer<I, T>;
}
