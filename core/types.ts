/**
 * The public data types a plugin sees: contexts passed to hooks and the decisions
 * a tap may return. Declared apart from the relay so that plugins, hooks and the
 * relay all depend on this file and never on each other.
 */

import type { MsrpError } from './errors.ts';
import type { EndFlag, RawHeader } from './protocol/framer.ts';
import type { MsrpRequestHead, MsrpResponseHead } from './protocol/message.ts';
import type { MsrpUri } from './protocol/uri.ts';

/** The core's transports, and any name a transport provider registers (core/transport/stream.ts). */
export type TransportName = 'tcp' | 'tls' | 'ws' | 'wss' | (string & {});

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
  /**
   * Use-Path URIs issued to clients of this listener name the first listener of this
   * transport instead of this one (W-8: a WebSocket client gets the relay's TLS URI).
   */
  readonly usePathTransport?: string;
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

/** A response a plugin gives to a request (receiveRequest's `respond`, a local endpoint's answer). */
export interface LocalResponse {
  readonly status: number;
  /** The reason phrase; the status's usual one when left out. */
  readonly comment?: string;
  /** Headers after To-Path and From-Path. */
  readonly headers?: readonly RawHeader[];
}

/** receiveRequest: refuse (hop by hop), or answer the request itself (NICKNAME, C-13). */
export type RequestDecision = Rejection | { readonly respond: LocalResponse };

/**
 * claimRequest: a request whose next To-Path URI names this relay but no session of it, or a
 * session URI of this relay alone. A plugin that claims it becomes its receiver (a local
 * endpoint, DESIGN.md §3a): the chat focus, an echo service.
 */
export interface LocalRequest {
  readonly connection: ConnectionContext;
  /** The request as received from the previous hop. */
  readonly request: MsrpRequestHead;
  /** The To-Path URI that names this relay: the endpoint's own URI. */
  readonly uri: MsrpUri;
  /** The relay session the request came through (the sender's token), if any. */
  readonly session: SessionInfo | undefined;
  /** The paths as the endpoint receives them (R-58: the relay URIs it passed moved to From-Path). */
  readonly toPath: readonly string[];
  readonly fromPath: readonly string[];
  /**
   * The paths of a request the endpoint sends back to the sender the way this one came
   * (relay.originate() on `session ?? connection`): To-Path the sender's From-Path as
   * received, From-Path the relay URIs the request passed, the endpoint's own last.
   */
  readonly reply: PathPair;
  readonly signal: AbortSignal;
}

/**
 * The receiver of a claimed request. It gets the body with back-pressure (return false from
 * onBody to pause the sender until `resume()` of the delivery is called), then the end-line,
 * and answers with a response or none (undefined). The relay never answers a REPORT, nor a
 * request with Failure-Report no, nor 200 to Failure-Report partial.
 */
export interface LocalReceiver {
  onBody?(data: Buffer, delivery: LocalDelivery): boolean | void;
  onEnd(flag: EndFlag, delivery: LocalDelivery): LocalResponse | undefined | Promise<LocalResponse | undefined>;
  /** The sender vanished (or the relay closed) before the end-line. */
  onAbort?(reason: CloseReason): void;
}

/** Flow control of one claimed request. */
export interface LocalDelivery {
  /** Restarts reading the sender after onBody returned false. */
  resume(): void;
  /** Body octets received so far. */
  readonly bytes: number;
}

export type ClaimDecision = LocalReceiver | Rejection;

/** relay.originate(): a request the relay itself sends (a local endpoint's copies, C-1). */
export interface OriginateOptions {
  readonly method: string;
  readonly toPath: readonly string[];
  readonly fromPath: readonly string[];
  /** Headers after From-Path (Message-ID, Byte-Range, Success-Report, …), without Content-Type. */
  readonly headers?: readonly RawHeader[];
  /** With a body: its Content-Type (written last, R-25). A request without it has no body. */
  readonly contentType?: string;
  /** The whole body. Leave it out to stream the body with write() and end(). */
  readonly body?: Buffer | string;
}

/** What became of an originated request. */
export interface OriginateResult {
  /** The response status; 408 when none came in time or the connection closed; 0 when none is due (REPORT, Failure-Report no). */
  readonly status: number;
  readonly comment: string;
  readonly headers: readonly RawHeader[];
  /** True when no response came: timed out, or the connection closed. */
  readonly timedOut: boolean;
}

/** An originated request on its way: stream the body with back-pressure, then end it. */
export interface OutgoingRequest {
  /** Body octets; false when the caller should wait for onWritable before writing more. */
  write(data: Buffer): boolean;
  /** The end-line (R-69: `$`, or `#` to abort the message). */
  end(flag?: EndFlag): void;
  /**
   * The caller has no body bytes for now (its own source is slow or stalled): the connection's
   * other streams may go first (the piece ends with `+`, R-67) until it writes again.
   */
  idle(): void;
  /**
   * Called when write() may be called again; and once after end() when the last write()
   * returned false, as soon as the request is all written and the connection has room again
   * (the peer is reading), so a sender of whole bodies can tell a peer that stopped reading.
   */
  onWritable: (() => void) | undefined;
  /**
   * Settles with the response, the timeout, or status 0 when no response is due: REPORT,
   * Failure-Report no, and Failure-Report partial (R-65: no 200 comes, so none is awaited and
   * no timer runs; it settles once written, and an error answer to it is not passed on).
   */
  readonly result: Promise<OriginateResult>;
}

/**
 * relay.prepare(): one request checked and rendered once, then sent as many copies, each with
 * its own transaction id, Message-ID and paths: a local endpoint's fan-out (C-1: a chat focus
 * sends every message to each participant as a new SEND).
 */
export interface PrepareOptions {
  readonly method: string;
  /**
   * Headers after From-Path and the copy's Message-ID (Byte-Range, Failure-Report, …): not
   * To-Path, From-Path, Message-ID (given per copy) or Content-Type.
   */
  readonly headers?: readonly RawHeader[];
  /** With a body: its Content-Type (written last, R-25). A request without it has no body. */
  readonly contentType?: string;
  /** The whole body every copy carries (required with contentType: a prepared request is not streamed). */
  readonly body?: Buffer | string;
}

/** One copy of a prepared request. */
export interface CopyOptions {
  readonly toPath: readonly string[];
  readonly fromPath: readonly string[];
  /** Its Message-ID (C-1: a new one per copy); a SEND without one gets a random one. */
  readonly messageId?: string;
}

/** A request prepared once (relay.prepare()), sent as copies. */
export interface PreparedRequest {
  /**
   * Sends a copy on a connection, or toward the owner of a session, through that connection's
   * Writer as relay.originate() sends a whole body (back-pressure, R-67, W-4). Throws when the
   * target is not a connection of this relay or the copy's paths or Message-ID are not valid.
   */
  send(target: ConnectionContext | SessionInfo, copy: CopyOptions): SentCopy;
}

/** A copy on its way: what relay.originate() tells of a whole body, without write() or end(). */
export interface SentCopy {
  /**
   * True when the copy is handed to the connection and it has room for more; false when the
   * connection is full or the copy waits behind another stream on it: then onWritable comes
   * once, when the copy is all written and the connection has room again.
   */
  readonly written: boolean;
  onWritable: (() => void) | undefined;
  /** As OutgoingRequest.result (status 0 once written when no response is due). */
  readonly result: Promise<OriginateResult>;
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

/**
 * checkAccount: may this authenticated user use the service at all (a disabled account, a
 * blocked domain)? Asked once per authentication, by whichever front authenticated it.
 */
export interface AccountQuery {
  /** The front that asks: `msrp` for an AUTH (before authorize), another protocol's name for others (`sip`). */
  readonly front: string;
  /** Where the request came from: for `msrp` the AUTH's connection; a front of another protocol describes its peer. */
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
  /** 'tcp', 'tls', or the name of a registered transport provider that can dial. */
  readonly transport: TransportName;
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

/** Structured log calls; the embedded relay is silent until a logger is set. */
export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}
