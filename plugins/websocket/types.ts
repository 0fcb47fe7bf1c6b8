/**
 * What the websocket plugin publishes to other plugins (`WebSocketPlugin.getHooks(relay)`):
 * the upgrade-time authenticator hook (W-9) and what its taps get and answer.
 */

import type { IncomingMessage } from 'node:http';
import type { AsyncSeriesBailHook, SyncHook } from 'tapable';
import type { ListenerInfo } from '../../core/index.ts';

/** One HTTP upgrade to a ws/wss listener, after the path, subprotocol, proxy and Origin checks. */
export interface UpgradeRequest {
  /** The HTTP request (method GET, its headers, its URL). */
  readonly request: IncomingMessage;
  readonly headers: IncomingMessage['headers'];
  /** The URL's path and query (a token may come as `?token=…`: browsers cannot set headers on a WebSocket). */
  readonly path: string;
  readonly query: URLSearchParams;
  /** The client's address: the socket's, or from X-Forwarded-For of a declared proxy. */
  readonly remoteAddress: string;
  readonly remotePort: number;
  /** The Origin header: the page that opened the WebSocket (W-10). */
  readonly origin: string | undefined;
  readonly listener: ListenerInfo;
  /** True on wss or behind a declared TLS-terminating proxy. */
  readonly encrypted: boolean;
  /** The `Authorization: Bearer …` token (non-browser clients). */
  readonly bearer: string | undefined;
  /** A cookie of the request (the web application's session or token cookie). */
  cookie(name: string): string | undefined;
  /** Aborted when the client goes away or the hook's deadline (`timeouts.hook`) passes. */
  readonly signal: AbortSignal;
}

/** Who a pre-authorised connection belongs to: AUTHs on it get 200 without a challenge (W-9). */
export interface PreAuthorization {
  /** The user name of the identity the AUTH's session gets. */
  readonly username: string;
  /** The SIP domain the user belongs to; an AUTH for another domain is challenged as usual. Undefined: any domain. */
  readonly domain?: string;
  /** Identity.method (default `websocket`). */
  readonly method?: string;
  /** Identity.attributes (groups, quotas, the token's claims…), for authorize taps. */
  readonly attributes?: Readonly<Record<string, unknown>>;
  /** Unix ms after which AUTHs on the connection are no longer pre-authorised (a token's `exp`). */
  readonly expiresAt?: number;
}

/**
 * An authorizeUpgrade tap's answer: undefined passes (the next tap, then no pre-authorisation:
 * AUTH is challenged with Digest); `accept` pre-authorises the connection; `refuse` answers the
 * upgrade with that HTTP status (401, 403…) and headers, and no WebSocket is opened.
 */
export type UpgradeDecision =
  | { readonly accept: PreAuthorization }
  | { readonly refuse: { readonly status: number; readonly headers?: Record<string, string> } };

/** A handshake finished, either way (for logs). */
export interface HandshakeEvent {
  readonly ok: boolean;
  readonly status: number;
  readonly reason: string;
  readonly remoteAddress: string;
}

export interface WebSocketHooks {
  /**
   * W-9: each upgrade that passed the path, subprotocol, proxy and Origin checks. A tap that
   * throws or does not answer within `timeouts.hook` fails the upgrade with HTTP 500.
   */
  readonly authorizeUpgrade: AsyncSeriesBailHook<[UpgradeRequest], UpgradeDecision | undefined>;
  /** Each upgrade answered (101, or the refusal's status). A notification. */
  readonly handshake: SyncHook<[HandshakeEvent]>;
}
