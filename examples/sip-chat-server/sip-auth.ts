/**
 * SIP Digest authentication for the example's SIP front (RFC 3261 §22, RFC 2617 with qop=auth),
 * on the Digest pieces the relay's own MSRP AUTH uses (msrprelay/protocol: the nonce manager,
 * the challenge formatter, the Authorization parser and verifyDigest), so there is one Digest
 * implementation. Credentials come from the relay's `lookupCredentials` hook: the SIP side
 * knows the same users, from the same backend (auth-memory here; auth-sql or auth-ldap the
 * same way), as MSRP AUTH does. (The relay's `authorize` taps, such as auth-memory's
 * `disabled`, judge MSRP AUTHs only: a disabled account cannot AUTH at the relay, so it gets
 * no MSRP session to chat on.)
 *
 * - A request without credentials gets 401 with `WWW-Authenticate: Digest realm, nonce,
 *   opaque, qop="auth"` (a UAS challenges with 401, §22.1).
 * - A nonce lives `nonceLifetime` seconds. A correct response over an expired nonce, or over a
 *   nonce already used, gets a fresh challenge with `stale=TRUE` (RFC 2617 §3.2.1: the client
 *   retries with the new nonce without asking for the password again); a wrong one gets a plain
 *   401, again and again: the client gives up.
 * - The Digest `uri` must be the Request-URI (§22.4); another one is a 400.
 */

import { randomBytes } from 'node:crypto';
import sip, { type SipMessage } from 'sip';
import type { ConnectionContext, Relay } from '../../core/index.ts';
import {
  computeDigestResponse,
  computeHa1,
  DigestParseError,
  formatChallenge,
  newOpaque,
  NonceManager,
  parseAuthorization,
  timingSafeHexEqual,
  verifyDigest,
} from '../../core/protocol/index.ts';

export interface SipAuthOptions {
  /** The Digest realm; the SIP domain by default (the realm MSRP AUTH uses for it). */
  realm?: string;
  /** How long a nonce is valid, in seconds (30 by default). */
  nonceLifetime?: number;
  /** The clock, in ms (Date.now by default); a test moves it to make nonces stale. */
  now?: () => number;
}

export type SipAuthResult =
  | { ok: true; username: string; domain: string }
  | { ok: false; status: number; reason: string; headers?: Record<string, string> };

/** Where a SIP request came from, as the credential hooks see a connection. */
function sipPeer(remote: { protocol: string; address: string; port: number } | undefined): ConnectionContext {
  const ac = new AbortController();
  return {
    id: `sip-${randomBytes(4).toString('hex')}`,
    direction: 'inbound',
    transport: (remote?.protocol ?? 'udp').toLowerCase(),
    secure: false,
    remoteAddress: remote?.address ?? '',
    remotePort: remote?.port ?? 0,
    localAddress: '',
    localPort: 0,
    listener: undefined,
    notes: new Map(),
    signal: ac.signal,
    openedAt: Date.now(),
    identities: [],
    close: () => {},
    pauseReading: () => {},
    resumeReading: () => {},
  };
}

export class SipDigest {
  readonly realm: string;
  private readonly nonces: NonceManager;
  private readonly opaque = newOpaque();

  constructor(
    private readonly relay: Relay,
    readonly domain: string,
    o: SipAuthOptions = {},
  ) {
    this.realm = o.realm ?? domain;
    this.nonces = new NonceManager({ lifetimeMs: (o.nonceLifetime ?? 30) * 1000, ...(o.now !== undefined ? { now: o.now } : {}) });
  }

  private challenge(stale: boolean, reason = 'Unauthorized'): SipAuthResult {
    const value = formatChallenge({ realm: this.realm, nonce: this.nonces.issue(), opaque: this.opaque, ...(stale ? { stale: true } : {}) });
    return { ok: false, status: 401, reason, headers: { 'WWW-Authenticate': value } };
  }

  /** The Authorization of this realm, as the header was written. */
  private authorization(rq: SipMessage): string | undefined {
    const all = rq.headers.authorization;
    if (!Array.isArray(all)) return undefined;
    const unq = (v: unknown) => String(v ?? '').replace(/^"|"$/g, '');
    const mine = (all as Array<Record<string, string>>).find((a) => unq(a.realm) === this.realm);
    return mine === undefined ? undefined : sip.stringifyAuthHeader(mine);
  }

  /** The credentials of `username` from the relay's credential backend, or undefined. */
  private async ha1(username: string, peer: ConnectionContext): Promise<string | undefined> {
    const found = await this.relay.hooks.lookupCredentials.promise({ username, realm: this.realm, domain: this.domain, connection: peer, signal: peer.signal });
    if (found === undefined) return undefined;
    return 'ha1' in found ? found.ha1.toLowerCase() : computeHa1(username, this.realm, found.password);
  }

  /** Checks a request's credentials: the user it authenticates, or the answer to send. */
  async check(rq: SipMessage, remote?: { protocol: string; address: string; port: number }): Promise<SipAuthResult> {
    const raw = this.authorization(rq);
    if (raw === undefined) return this.challenge(false);
    let creds;
    try {
      creds = parseAuthorization(raw);
    } catch (e) {
      if (e instanceof DigestParseError) {
        if (e.reason === 'basic' || e.reason === 'not-digest') return this.challenge(false);
        return { ok: false, status: 400, reason: `Bad Authorization (${e.reason})` };
      }
      throw e;
    }
    // RFC 3261 §22.4: the digest-uri is the Request-URI.
    const requestUri = typeof rq.uri === 'string' ? rq.uri : sip.stringifyUri(rq.uri!);
    if (creds.uri === undefined || creds.uri !== requestUri) return { ok: false, status: 400, reason: 'Digest uri is not the Request-URI' };
    const peer = sipPeer(remote);
    const ha1 = await this.ha1(creds.username, peer);
    // An unknown user is answered like a wrong password.
    if (ha1 === undefined) return this.challenge(false);
    const verdict = verifyDigest({ credentials: creds, expectedRealm: this.realm, expectedOpaque: this.opaque, digestUri: creds.uri, ha1, nonces: this.nonces, method: rq.method! });
    if (!verdict.ok) {
      if (verdict.reason === 'stale') return this.challenge(true);
      if (verdict.reason === 'unknown-nonce' || verdict.reason === 'replay') {
        // A nonce used before (they are single-use) or issued before a restart: stale when the
        // client knows the password, so it retries at once with the new nonce.
        const expected = computeDigestResponse({ ha1, nonce: creds.nonce, nc: creds.nc, cnonce: creds.cnonce, qop: 'auth', method: rq.method!, uri: creds.uri });
        return this.challenge(timingSafeHexEqual(expected, creds.response));
      }
      return this.challenge(false);
    }
    return { ok: true, username: creds.username, domain: this.domain };
  }
}
