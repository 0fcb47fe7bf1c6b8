/**
 * AUTH addressed to this relay (RFC 4976 §5.1, §6.3; RFC.md R-31 … R-46).
 *
 * The policy around Digest lives here (TLS only, one AUTH at a time, Expires
 * bounds, failure counting, session caps, issuing the token); the Digest exchange
 * itself is the `authenticate` hook (core:digest) and credentials come from the
 * `lookupCredentials` hook, so this file knows no credential store.
 */

import { MsrpError } from '../errors.ts';
import { isTapped, type RelayHooks } from '../hooks.ts';
import type { RawHeader } from '../protocol/framer.ts';
import { getHeader, parseSeconds, type MsrpRequestHead } from '../protocol/message.ts';
import { parseUri } from '../protocol/uri.ts';
import type { RelayConfig } from '../config/schema.ts';
import type { AccountQuery, AuthDecision, AuthRequest, DomainQuery, Identity, ListenerInfo } from '../types.ts';
import type { Connection } from './connection.ts';
import type { Peer } from './peer.ts';
import { newSessionId, Session, type SessionTable } from './session-table.ts';

/** The relay's answer to one AUTH. */
export interface AuthOutcome {
  status: number;
  comment?: string;
  headers: RawHeader[];
  /** Close the connection once the answer is written. */
  close: boolean;
  reason: string;
}

export interface AuthenticatorDeps {
  config(): RelayConfig;
  hooks(): RelayHooks<unknown>;
  sessions: SessionTable<Connection>;
  hostname(): string;
  listeners(): readonly ListenerInfo[];
  /** The default relay port that clients write whatever port DNS gave them (I-3). */
  readonly defaultPort: number;
  now(): number;
  /** Cluster mode: session-ids that name this worker (DESIGN.md §7); newSessionId otherwise. */
  newSessionId?(): string;
}

export class Authenticator {
  private readonly d: AuthenticatorDeps;

  constructor(deps: AuthenticatorDeps) {
    this.d = deps;
  }

  /** True when an AUTH To-Path[0] port may name this relay (R-44, I-3). */
  portMatches(port: number | undefined, conn: Connection): boolean {
    if (port === undefined || port === this.d.defaultPort) return true;
    if (conn.listener !== undefined && conn.listener.port === port) return true;
    return this.d.listeners().some((l) => l.port === port);
  }

  async authenticate(peer: Peer, req: MsrpRequestHead): Promise<AuthOutcome> {
    const cfg = this.d.config();
    const conn = peer.conn;
    // AUTH only over TLS, unless this listener says otherwise.
    if (!conn.secure && conn.listener?.insecureAuth !== true) {
      return this.fail(peer, req, new MsrpError('MSRP_ERR_AUTH_NEEDS_TLS'), { close: true, count: false });
    }
    // one AUTH transaction at a time per connection.
    if (peer.authInProgress) {
      return this.fail(peer, req, new MsrpError('MSRP_ERR_AUTH_IN_PROGRESS'), { close: false, count: false });
    }
    peer.authInProgress = true;
    try {
      return await this.run(peer, req, cfg);
    } finally {
      peer.authInProgress = false;
    }
  }

  private async run(peer: Peer, req: MsrpRequestHead, cfg: RelayConfig): Promise<AuthOutcome> {
    const conn = peer.conn;
    const hooks = this.d.hooks();
    // Expires within bounds, else 423 with the bound crossed.
    const expiresText = getHeader(req.headers, 'Expires');
    let expires = cfg.session.defaultExpires;
    if (expiresText !== undefined) {
      // Validated as digits by the message layer (R-41: else 400).
      const asked = parseSeconds(expiresText) ?? cfg.session.defaultExpires;
      if (asked < cfg.session.minExpires) {
        return this.plain(423, [['Min-Expires', String(Math.ceil(cfg.session.minExpires))]], 'expires below minimum');
      }
      if (asked > cfg.session.maxExpires) {
        return this.plain(423, [['Max-Expires', String(Math.floor(cfg.session.maxExpires))]], 'expires above maximum');
      }
      // never more than asked.
      expires = asked;
    }
    expires = Math.floor(expires);

    // `signal` is made only if a tap reads it (an AbortController per AUTH is not free).
    const domain = await hooks.resolveDomain.promise(new DomainQueryOf(conn, req, req.toUris[0]!.host));
    if (domain === undefined) return this.fail(peer, req, new MsrpError('MSRP_ERR_DOMAIN_NOT_SERVED'), { close: false, count: true });
    if ('reject' in domain) return this.fail(peer, req, domain.reject, { close: false, count: counts(domain.reject) });

    const auth: AuthRequest = new AuthRequestOf(conn, req, domain.domain, domain.realm);
    if (auth.authorization !== undefined) peer.challengesInRow = 0;
    const decision: AuthDecision | undefined = await hooks.authenticate.promise(auth);
    if (decision === undefined) {
      // No tap answered: fail closed.
      return this.fail(peer, req, new MsrpError('MSRP_ERR_FORBIDDEN', 'no authentication method accepted the request'), {
        close: false,
        count: true,
      });
    }
    if ('challenge' in decision) {
      const outcome: AuthOutcome = {
        status: 401,
        headers: [['WWW-Authenticate', decision.challenge]],
        close: false,
        reason: decision.reason,
      };
      if (decision.failed) this.countFailure(peer, req, outcome, auth);
      // in spirit: a challenge costs a nonce; a connection that keeps asking for
      // them without ever answering one is closed after a few (each real client answers its
      // challenge before it asks for the next, one per session, R-13).
      if (auth.authorization === undefined) {
        if (++peer.challengesInRow >= cfg.limits.maxChallengesPerConnection) {
          outcome.close = true;
          outcome.reason = 'challenges without a credentialed answer (limits.maxChallengesPerConnection)';
        }
      } else {
        peer.challengesInRow = 0;
      }
      return outcome;
    }
    if ('reject' in decision) {
      return this.fail(peer, req, decision.reject, { close: false, count: counts(decision.reject) }, auth);
    }
    const identity: Identity = decision.accept;
    // authenticated, but not allowed: the account (every front asks), then this AUTH.
    // An untapped hook is not called (DESIGN.md §3): a relay whose backend bars nobody pays nothing for it.
    const barred = isTapped(hooks.checkAccount) ? await hooks.checkAccount.promise(identity, new AccountQueryOf(conn)) : undefined;
    if (barred !== undefined) return this.fail(peer, req, barred.reject, { close: false, count: counts(barred.reject) }, auth);
    const refusal = isTapped(hooks.authorize) ? await hooks.authorize.promise(identity, auth) : undefined;
    if (refusal !== undefined) return this.fail(peer, req, refusal.reject, { close: false, count: counts(refusal.reject) }, auth);
    // sessions per connection.
    if (peer.sessionsIfAny !== undefined && peer.sessionsIfAny.size >= cfg.limits.maxSessionsPerConnection) {
      return this.fail(peer, req, new MsrpError('MSRP_ERR_TOO_MANY_SESSIONS'), { close: false, count: false }, auth);
    }
    if (conn.isClosed) return this.plain(500, [], 'connection closed during AUTH');

    const session = this.issue(peer, req, identity, expires);
    conn.identities.push(identity);
    conn.markSucceeded();
    const headers: RawHeader[] = [
      ['Use-Path', session.uri],
      ['Expires', String(expires)],
    ];
    if (decision.authenticationInfo !== undefined) headers.push(['Authentication-Info', decision.authenticationInfo]);
    hooks.authenticated.call(identity, auth, session);
    return { status: 200, headers, close: false, reason: 'authenticated' };
  }

  /** a fresh 128-bit token on the listener's scheme and port, with the relay's hostname. */
  private issue(peer: Peer, req: MsrpRequestHead, identity: Identity, expires: number): Session<Connection> {
    const conn = peer.conn;
    const now = this.d.now();
    const all = this.d.listeners();
    let l = conn.listener ?? all.find((x) => (x.scheme === 'msrps') === conn.secure) ?? all[0];
    // W-8: a listener may have its clients use another listener's URI (a WebSocket client the TLS one).
    const via = l?.usePathTransport;
    if (via !== undefined) l = all.find((x) => x.transport === via) ?? l;
    const scheme = l?.scheme ?? (conn.secure ? 'msrps' : 'msrp');
    const port = l?.port ?? this.d.defaultPort;
    const fresh = this.d.newSessionId ?? newSessionId;
    let id = fresh();
    while (this.d.sessions.get(id) !== undefined) id = fresh();
    const uri = `${scheme}://${this.d.hostname()}:${port}/${id};tcp`;
    const session = new Session<Connection>({
      id,
      uri,
      parsedUri: parseUri(uri),
      identity,
      owner: conn,
      ownerHopUri: req.fromUris[0]!,
      expiresAt: now + expires * 1000,
      now,
    });
    this.d.sessions.add(session);
    peer.sessions.add(session);
    return session;
  }

  private plain(status: number, headers: RawHeader[], reason: string): AuthOutcome {
    return { status, headers, close: false, reason };
  }

  private fail(
    peer: Peer,
    req: MsrpRequestHead,
    err: MsrpError,
    o: { close: boolean; count: boolean },
    auth?: AuthRequest,
  ): AuthOutcome {
    const outcome: AuthOutcome = { status: err.status, headers: [...err.headers], close: o.close, reason: err.message };
    if (o.count) this.countFailure(peer, req, outcome, auth);
    else if (err.status === 401 || err.status === 403) this.notifyFailure(peer.conn, req, outcome, auth);
    return outcome;
  }

  /** after maxAuthFailures failed AUTHs the connection is closed. */
  private countFailure(peer: Peer, req: MsrpRequestHead, outcome: AuthOutcome, auth?: AuthRequest): void {
    peer.authFailures++;
    if (peer.authFailures >= this.d.config().limits.maxAuthFailures) outcome.close = true;
    this.notifyFailure(peer.conn, req, outcome, auth);
  }

  private notifyFailure(conn: Connection, req: MsrpRequestHead, outcome: AuthOutcome, auth?: AuthRequest): void {
    let username: string | undefined;
    const a = auth?.authorization;
    if (a !== undefined) {
      const m = /username\s*=\s*"([^"]{0,256})"/i.exec(a);
      username = m?.[1];
    }
    this.d.hooks().authFailed.call({
      connection: conn,
      request: req,
      status: outcome.status,
      reason: outcome.reason,
      username,
      domain: auth?.domain,
    });
  }
}

/** refusals that count toward closing the connection are 401 and 403. */
function counts(e: MsrpError): boolean {
  return e.status === 401 || e.status === 403;
}

/**
 * The contexts AUTH taps get: classes rather than object literals with a getter, which
 * would make a function per AUTH; `signal` is the connection's, made when first read.
 */
class DomainQueryOf implements DomainQuery {
  constructor(
    readonly connection: Connection,
    readonly request: MsrpRequestHead,
    readonly host: string,
  ) {}

  get signal(): AbortSignal {
    return this.connection.signal;
  }
}

/** checkAccount's question for an AUTH; its signal, the connection's, is made only if a tap asks for it. */
class AccountQueryOf implements AccountQuery {
  readonly front = 'msrp';
  constructor(readonly connection: Connection) {}

  get signal(): AbortSignal {
    return this.connection.signal;
  }
}

class AuthRequestOf implements AuthRequest {
  /** the Digest uri is the rightmost To-Path URI, byte for byte. */
  readonly digestUri: string;
  readonly authorization: string | undefined;

  constructor(
    readonly connection: Connection,
    readonly request: MsrpRequestHead,
    readonly domain: string,
    readonly realm: string,
  ) {
    this.digestUri = request.toPath[request.toPath.length - 1]!;
    this.authorization = getHeader(request.headers, 'Authorization');
  }

  get signal(): AbortSignal {
    return this.connection.signal;
  }
}
