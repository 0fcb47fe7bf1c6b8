/**
 * SIP Digest authentication for the example's SIP front (RFC 3261 §22, RFC 2617 with qop=auth),
 * on the Digest pieces the relay's own MSRP AUTH uses (msrprelay/protocol: the nonce manager,
 * the challenge formatter, the Authorization parser and verifyDigest), so there is one Digest
 * implementation. Credentials come from the relay's `lookupCredentials` hook: the SIP side
 * knows the same users, from the same backend (auth-memory here; auth-sql or auth-ldap the
 * same way), as MSRP AUTH does, and an authenticated user is let in only if the relay's
 * `checkAccount` taps do not bar the account (403, as its MSRP AUTH would get). The relay's
 * `authorize` taps are not run for SIP requests (README.md, "Authentication", says why: they
 * are one step of an MSRP AUTH that makes a session).
 *
 * - A request without credentials gets 401 with `WWW-Authenticate: Digest realm, nonce,
 *   opaque, qop="auth"` (a UAS challenges with 401, §22.1; 407 is a proxy's).
 * - A nonce lives `nonceLifetime` seconds. A correct response over an expired nonce, or over a
 *   nonce already used, gets a fresh challenge with `stale=TRUE` (RFC 2617 §3.2.1: the client
 *   retries with the new nonce without asking for the password again); a wrong one gets a plain
 *   401, again and again: the client gives up.
 * - The Digest `uri` must be the Request-URI (§22.4); another one is a 400.
 * - In a dialog, the nonce that last authenticated a request of a dialog stays usable in its
 *   user's dialogs while a dialog holds it, with a greater nc each time (RFC 2617 §3.2.2: SIP
 *   clients re-send their last credentials with nc + 1 rather than wait for a challenge).
 *   A repeated or smaller nc is a replay: a fresh challenge. Out of a dialog a nonce stays
 *   single-use. What is held is one nonce and one counter per dialog, so it grows with the
 *   dialogs (each set up by an authenticated request) and never with the requests.
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
  /** `nonce` and `nc` are those of the credentials: a dialog the request sets up or is in holds them. */
  | { ok: true; username: string; domain: string; nonce: string; nc: number }
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
  /**
   * Nonces dialogs hold: the user they authenticated, the greatest nc seen, how many dialogs
   * hold it. An entry goes when its last dialog ends or moves to another nonce.
   */
  private readonly held = new Map<string, { username: string; nc: number; holders: number }>();

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
  private async lookup(username: string, peer: ConnectionContext): Promise<{ ha1: string; attributes: Readonly<Record<string, unknown>> } | undefined> {
    const found = await this.relay.hooks.lookupCredentials.promise({ username, realm: this.realm, domain: this.domain, connection: peer, signal: peer.signal });
    if (found === undefined) return undefined;
    return { ha1: 'ha1' in found ? found.ha1.toLowerCase() : computeHa1(username, this.realm, found.password), attributes: found.attributes ?? {} };
  }

  /**
   * An authenticated user, let in if the relay's `checkAccount` taps do not bar the account
   * (auth-memory's `disabled`, a block list): the same rule as for its MSRP AUTH, 403.
   */
  private async admit(username: string, attributes: Readonly<Record<string, unknown>>, peer: ConnectionContext, nonce: string, nc: number): Promise<SipAuthResult> {
    const identity = { username, domain: this.domain, realm: this.realm, method: 'sip-digest', attributes };
    const barred = await this.relay.hooks.checkAccount.promise(identity, { front: 'sip', connection: peer, signal: peer.signal });
    if (barred !== undefined) return { ok: false, status: 403, reason: barred.reject.message };
    return { ok: true, username, domain: this.domain, nonce, nc };
  }

  /**
   * Checks a request's credentials: the user it authenticates, or the answer to send.
   * `inDialog`: the request is in a dialog, so a nonce a dialog holds is good with a greater nc.
   */
  async check(rq: SipMessage, remote?: { protocol: string; address: string; port: number }, o: { inDialog?: boolean } = {}): Promise<SipAuthResult> {
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
    const found = await this.lookup(creds.username, peer);
    // An unknown user is answered like a wrong password.
    if (found === undefined) return this.challenge(false);
    const ha1 = found.ha1;
    const nc = Number.parseInt(creds.nc, 16);
    const right = () => timingSafeHexEqual(computeDigestResponse({ ha1, nonce: creds.nonce, nc: creds.nc, cnonce: creds.cnonce, qop: 'auth', method: rq.method!, uri: creds.uri! }), creds.response);
    const held = o.inDialog === true ? this.held.get(creds.nonce) : undefined;
    if (held !== undefined && held.username === creds.username && creds.realm === this.realm && creds.opaque === this.opaque) {
      // RFC 2617 §3.2.2: nc counts the requests made with this nonce; one not above the last
      // seen is a replay (or a request overtaken on UDP): stale when the password is right, so
      // the client retries at once with a fresh nonce.
      if (nc <= held.nc) return this.challenge(right());
      if (!right()) return this.challenge(false);
      held.nc = nc;
      return this.admit(creds.username, found.attributes, peer, creds.nonce, nc);
    }
    const verdict = verifyDigest({ credentials: creds, expectedRealm: this.realm, expectedOpaque: this.opaque, digestUri: creds.uri, ha1, nonces: this.nonces, method: rq.method! });
    if (!verdict.ok) {
      if (verdict.reason === 'stale') return this.challenge(true);
      // A nonce used before (out of a dialog they are single-use; one no dialog holds any more)
      // or issued before a restart: stale when the client knows the password, so it retries at
      // once with the new nonce.
      if (verdict.reason === 'unknown-nonce' || verdict.reason === 'replay') return this.challenge(right());
      return this.challenge(false);
    }
    return this.admit(creds.username, found.attributes, peer, creds.nonce, nc);
  }

  /**
   * A dialog holds the nonce of the request that authenticated it (set it up, or a later one
   * with a fresh nonce); `previous` is the one it held before, if any, given back.
   */
  hold(r: { username: string; nonce: string; nc: number }, previous: string | undefined): string {
    if (previous === r.nonce) return r.nonce;
    this.release(previous);
    const h = this.held.get(r.nonce);
    if (h === undefined) this.held.set(r.nonce, { username: r.username, nc: r.nc, holders: 1 });
    else {
      h.holders++;
      h.nc = Math.max(h.nc, r.nc);
    }
    return r.nonce;
  }

  /** A dialog ended, or moved to another nonce: the nonce it held is usable no more once no dialog holds it. */
  release(nonce: string | undefined): void {
    if (nonce === undefined) return;
    const h = this.held.get(nonce);
    if (h !== undefined && --h.holders === 0) this.held.delete(nonce);
  }

  /** How many nonces dialogs hold (for the tests of boundedness). */
  get heldNonces(): number {
    return this.held.size;
  }
}
