/**
 * The public data types a plugin sees: contexts passed to hooks and the decisions
 * a tap may return. Declared apart from the relay so that plugins, hooks and the
 * relay all depend on this file and never on each other.
 */

import type { MsrpError } from './errors.ts';
import type { MsrpRequestHead, MsrpResponseHead } from './protocol/message.ts';
import type { MsrpUri } from './protocol/uri.ts';

export type TransportName = 'tcp' | 'tls' | 'ws' | 'wss';

/** A listening socket, as configured. */
export interface ListenerInfo {
  readonly transport: TransportName;
  readonly host: string;
  /** The bound port (the real one when 0 was configured). */
  readonly port: number;
  /** AUTH accepted on this plain listener (tests, loopback, TLS terminated in front). */
  readonly insecureAuth: boolean;
  /** `msrp` or `msrps`: the scheme of Use-Path URIs issued here. */
  readonly scheme: 'msrp' | 'msrps';
}

/** Why a connection or session ended. */
export interface CloseReason {
  readonly code:
    | 'peer-closed'
    | 'error'
    | 'first-request-timeout'
    | 'header-timeout'
    | 'idle'
    | 'protocol-error'
    | 'auth-failures'
    | 'rejected'
    | 'limit'
    | 'shutdown'
    | 'expired'
    | 'owner-closed';
  readonly message?: string;
}

/** A peer connection as plugins see it. Per-plugin state goes in `notes`, keyed by plugin name. */
export interface ConnectionContext {
  /** A short random id for logs (not a secret). */
  readonly id: string;
  readonly direction: 'inbound' | 'outbound';
  readonly transport: TransportName;
  readonly secure: boolean;
  readonly remoteAddress: string;
  readonly remotePort: number;
  readonly localAddress: string;
  readonly localPort: number;
  /** The listener an inbound connection came in on. */
  readonly listener: ListenerInfo | undefined;
  readonly notes: Map<string, unknown>;
  /** Aborted when the connection closes. */
  readonly signal: AbortSignal;
  readonly openedAt: number;
  /** Identities authenticated on this connection (R-13: several AUTHs per connection). */
  readonly identities: readonly Identity[];
  /** Closes the connection (after what is queued is written). */
  close(reason?: CloseReason): void;
  /**
   * Stops reading this connection (socket and framer together, so nothing is buffered) until
   * every reason that paused it is resumed. Use your plugin name as the reason: the core's own
   * are `decide`, `forward` and `outstanding`. A throttle paces a sender this way (bodyForwarded).
   */
  pauseReading(reason: string): void;
  /** Lifts one reason given to pauseReading; reading restarts when none is left. */
  resumeReading(reason: string): void;
}

/** What a bail tap returns to refuse: the relay answers with the error's status. */
export interface Rejection {
  readonly reject: MsrpError;
}

/** An authenticated user. */
export interface Identity {
  readonly username: string;
  readonly domain: string;
  readonly realm: string;
  /** How it authenticated: 'digest', or a plugin's own word. */
  readonly method: string;
  /** Anything a backend wants to pass to authorize taps (groups, quotas, ...). */
  readonly attributes: Readonly<Record<string, unknown>>;
}

export interface RequestContext {
  readonly connection: ConnectionContext;
  readonly request: MsrpRequestHead;
  readonly signal: AbortSignal;
}

/** resolveDomain: which SIP domain (and Digest realm) an AUTH belongs to. */
export interface DomainQuery {
  readonly connection: ConnectionContext;
  readonly request: MsrpRequestHead;
  /** The host of the AUTH To-Path URI. */
  readonly host: string;
  readonly signal: AbortSignal;
}

export interface DomainAnswer {
  readonly domain: string;
  readonly realm: string;
}

export type DomainDecision = DomainAnswer | Rejection;

/** authenticate: one AUTH addressed to this relay. */
export interface AuthRequest {
  readonly connection: ConnectionContext;
  readonly request: MsrpRequestHead;
  readonly domain: string;
  readonly realm: string;
  /** The rightmost To-Path URI, byte for byte: the Digest uri. */
  readonly digestUri: string;
  /** The Authorization header value, if any. */
  readonly authorization: string | undefined;
  readonly signal: AbortSignal;
}

export type AuthDecision =
  /** Authenticated. `authenticationInfo` goes into the 200. */
  | { readonly accept: Identity; readonly authenticationInfo?: string }
  /** 401 with this WWW-Authenticate value. `failed` counts toward R-43 (not for a first or stale challenge). */
  | { readonly challenge: string; readonly failed: boolean; readonly reason: string }
  | Rejection;

/** lookupCredentials: what core:digest asks a credential store. */
export interface CredentialQuery {
  readonly username: string;
  readonly realm: string;
  readonly domain: string;
  readonly connection: ConnectionContext;
  readonly signal: AbortSignal;
}

export type Credentials =
  | { readonly ha1: string; readonly attributes?: Record<string, unknown> }
  | { readonly password: string; readonly attributes?: Record<string, unknown> };

export interface AuthFailure {
  readonly connection: ConnectionContext;
  readonly request: MsrpRequestHead;
  readonly status: number;
  readonly reason: string;
  readonly username: string | undefined;
  readonly domain: string | undefined;
}

export interface SessionStats {
  /** Bytes and messages from the owning client outward. */
  bytesOut: number;
  messagesOut: number;
  /** Bytes and messages toward the owning client. */
  bytesIn: number;
  messagesIn: number;
}

/** A relay session: one issued Use-Path URI (token). */
export interface SessionInfo {
  /** The session-id part of the URI (a secret: never log it whole, R-87). */
  readonly id: string;
  readonly uri: string;
  readonly identity: Identity;
  readonly owner: ConnectionContext;
  readonly createdAt: number;
  readonly expiresAt: number;
  /** I-4: once the far end has used the token it lives as long as its connections. */
  readonly bound: boolean;
  readonly far: ConnectionContext | undefined;
  readonly stats: Readonly<SessionStats>;
}

/** bindSession: the far end sends through a token for the first time (R-57a). */
export interface BindRequest {
  readonly session: SessionInfo;
  readonly connection: ConnectionContext | undefined;
  readonly request: MsrpRequestHead;
  readonly signal: AbortSignal;
}

/** resolveNextHop: where to open the next leg. */
export interface NextHopQuery {
  readonly uri: MsrpUri;
  readonly session: SessionInfo;
  readonly request: MsrpRequestHead;
  readonly signal: AbortSignal;
}

export interface NextHop {
  readonly host: string;
  readonly port: number;
  readonly transport: 'tcp' | 'tls';
  /** TLS server name to send (SNI) and to check the certificate against. */
  readonly servername?: string;
}

export type NextHopDecision = NextHop | Rejection;

/** rewritePath: the paths of a forwarded request after the RFC rewrite. */
export interface PathPair {
  readonly toPath: readonly string[];
  readonly fromPath: readonly string[];
}

export type ForwardDirection = 'outward' | 'inward';

export interface ForwardContext {
  readonly connection: ConnectionContext;
  readonly session: SessionInfo;
  readonly request: MsrpRequestHead;
  /** outward: from the owning client to the far end; inward: toward the owning client. */
  readonly direction: ForwardDirection;
}

/** forwardChunk: a chunk's headers, before its bytes flow. Awaiting here throttles. */
export interface ChunkContext extends ForwardContext {
  readonly signal: AbortSignal;
  /** When both ends are clients of this relay (a hand-over): the sending session; `session` is the receiving one. */
  readonly from?: SessionInfo;
}

export interface ChunkStats {
  readonly session: SessionInfo;
  readonly method: string;
  readonly messageId: string | undefined;
  readonly direction: ForwardDirection;
  /** Body bytes of this chunk. */
  readonly bytes: number;
  readonly flag: '$' | '+' | '#';
  readonly startedAt: number;
  readonly endedAt: number;
}

export interface ErrorContext {
  readonly plugin?: string;
  readonly hook?: string;
  readonly connection?: ConnectionContext;
}

/** responseSent: a response the relay composed and wrote to a request it received. */
export interface SentResponse {
  readonly connection: ConnectionContext;
  /** The method of the request answered (also for a request whose head failed validation). */
  readonly method: string;
  readonly tid: string;
  readonly status: number;
}

/** A response the relay received for a request it forwarded (for observers). */
export interface ResponseContext {
  readonly connection: ConnectionContext;
  readonly response: MsrpResponseHead;
}
