/**
 * core:digest — Digest AUTH as RFC 4976 §5.1 and §9.1 use it (RFC.md §1.9,
 * R-31 … R-40), written as an internal plugin on the `authenticate` hook at
 * stage 0. Credentials come from the `lookupCredentials` hook, so this knows no
 * credential store.
 */

import { MsrpError } from '../errors.ts';
import {
  computeHa1,
  DigestParseError,
  formatAuthenticationInfo,
  formatChallenge,
  newOpaque,
  NonceManager,
  parseAuthorization,
  verifyDigest,
} from '../protocol/digest.ts';
import { withoutTimeout } from '../hooks.ts';
import type { PluginHost, RelayPlugin } from '../plugin.ts';
import type { AuthDecision, AuthRequest, ConnectionContext, CredentialQuery } from '../types.ts';

export class DigestAuthPlugin implements RelayPlugin {
  readonly name = 'core:digest';
  private nonces: NonceManager | undefined;
  /** I-1: python-msrplib fails on a challenge without a non-empty opaque. */
  private readonly opaque = newOpaque();

  apply(relay: PluginHost): void {
    // nonces live `timeouts.nonce` seconds and are single-use. The manager is
    // kept across reloads unless the lifetime changed, so challenges in flight stay valid.
    const lifetimeMs = relay.config.timeouts.nonce * 1000;
    if (this.nonces?.lifetimeMs !== lifetimeMs) this.nonces = new NonceManager({ lifetimeMs });
    // No deadline of its own: it waits only on lookupCredentials, whose taps have theirs, so a
    // credential store that does not answer times out under its own name.
    relay.hooks.authenticate.tapPromise(
      { name: this.name, stage: 0 },
      withoutTimeout((auth: AuthRequest) => this.authenticate(relay, auth)),
    );
  }

  private challenge(realm: string, failed: boolean, reason: string, stale = false): AuthDecision {
    // qop="auth" only, no domain, no MD5-sess.
    const value = formatChallenge({ realm, nonce: this.nonces!.issue(), opaque: this.opaque, ...(stale ? { stale: true } : {}) });
    return { challenge: value, failed, reason };
  }

  private async authenticate(relay: PluginHost, auth: AuthRequest): Promise<AuthDecision> {
    const realm = auth.realm;
    // no credentials yet: the first challenge (not a failure).
    if (auth.authorization === undefined) return this.challenge(realm, false, 'no credentials');
    let creds;
    try {
      creds = parseAuthorization(auth.authorization);
    } catch (e) {
      if (e instanceof DigestParseError) {
        // Basic is never accepted; it counts as a failed attempt.
        if (e.reason === 'basic' || e.reason === 'not-digest') return this.challenge(realm, true, 'not Digest credentials');
        // missing or malformed Digest parameters.
        return { reject: new MsrpError('MSRP_ERR_BAD_HEADER', `Authorization: ${e.reason}`) };
      }
      throw e;
    }
    // credentials for another realm: a fresh challenge for ours.
    if (creds.realm !== realm) return this.challenge(realm, true, 'realm mismatch');
    const nonces = this.nonces!;
    const state = nonces.check(creds.nonce);
    // an expired nonce gets stale=true and is not a failure.
    if (state === 'stale') return this.challenge(realm, false, 'stale nonce', true);
    if (state === 'unknown') return this.challenge(realm, true, 'unknown or used nonce');
    const found = await relay.hooks.lookupCredentials.promise(new CredentialQueryOf(creds.username, realm, auth));
    // unknown user: 401 like a wrong password.
    if (found === undefined) return this.challenge(realm, true, 'unknown user');
    const ha1 = 'ha1' in found ? found.ha1 : computeHa1(creds.username, realm, found.password);
    const verdict = verifyDigest({ credentials: creds, expectedRealm: realm, expectedOpaque: this.opaque, digestUri: auth.digestUri, ha1, nonces });
    if (!verdict.ok) {
      if (verdict.reason === 'stale') return this.challenge(realm, false, 'stale nonce', true);
      // a uri= that is not the rightmost To-Path URI.
      if (verdict.reason === 'uri-mismatch') return { reject: new MsrpError('MSRP_ERR_BAD_HEADER', 'Digest uri is not the To-Path URI') };
      return this.challenge(realm, true, verdict.reason === 'bad-response' ? 'wrong credentials' : verdict.reason);
    }
    return {
      accept: {
        username: creds.username,
        domain: auth.domain,
        realm,
        method: 'digest',
        attributes: found.attributes ?? {},
      },
      // rspauth, cnonce, nc and qop.
      authenticationInfo: formatAuthenticationInfo({ rspauth: verdict.rspauth, cnonce: creds.cnonce, nc: creds.nc }),
    };
  }
}

/** What lookupCredentials taps get; `signal` is the AUTH's, made when first read (a class: no getter function per AUTH). */
class CredentialQueryOf implements CredentialQuery {
  readonly domain: string;
  readonly connection: ConnectionContext;

  constructor(
    readonly username: string,
    readonly realm: string,
    private readonly auth: AuthRequest,
  ) {
    this.domain = auth.domain;
    this.connection = auth.connection;
  }

  get signal(): AbortSignal {
    return this.auth.signal;
  }
}
