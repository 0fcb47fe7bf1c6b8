/**
 * ws-token: browsers without SIP passwords (RFC 7977 §5.3.1, W-9). The operator's web
 * application, which has already logged its user in, mints a short-lived signed token (a JWT);
 * the browser opens its WebSocket with it (a cookie, `?token=…`, or `Authorization: Bearer` from
 * a non-browser client); this plugin checks it at the HTTP upgrade (the websocket plugin's
 * `authorizeUpgrade` hook) and pre-authorises the connection, so the AUTH the browser must still
 * send (Use-Path comes only in its 200) is answered 200 without a Digest challenge.
 *
 * The token: signed (HS256/384/512 with a shared secret, or RS/PS/ES/EdDSA against a public key
 * or a JWKS URL), with `exp` (required) and `sub`: `user@domain` (or `user`, the domain then
 * from the `domain` claim, or any domain). Checked with `jose`: signature, algorithm, `exp`,
 * `nbf`, and `iss`/`aud` when configured.
 *
 * A token that is missing, bad or expired: the upgrade goes on without pre-authorisation and
 * the AUTH is challenged as usual (401), unless `required`: then the upgrade is answered
 * HTTP 401 and no WebSocket opens.
 *
 * Mint one (the secret as configured):
 *   msrprelay ws-token alice@example.com --ttl 600
 */

import { createPublicKey, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { createRemoteJWKSet, jwtVerify, SignJWT, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import type { PluginCommand, PluginHost, RelayPlugin } from '../../core/index.ts';
import WebSocketPlugin, { type PreAuthorization, type UpgradeDecision, type UpgradeRequest } from '../websocket/index.ts';

export interface WsTokenOptions {
  /** Shared secret for HS256/384/512 (at least 32 octets). */
  secret?: string;
  /** A file holding the shared secret (its content, trailing newline removed). */
  secretFile?: string;
  /** A PEM public key (or certificate) for RS*, PS*, ES* or EdDSA tokens. */
  publicKeyFile?: string;
  /** A JWKS URL (https) the web application publishes its keys at. */
  jwksUrl?: string;
  /** Algorithms accepted (default: those of the key: HS256/384/512 for a secret). */
  algorithms?: string[];
  issuer?: string;
  audience?: string;
  /** The cookie that carries the token ('' for none). */
  cookie: string;
  /** The URL query parameter that carries it ('' for none). */
  queryParameter: string;
  /** Accept `Authorization: Bearer <token>` (non-browser clients). */
  bearer: boolean;
  /** No valid token: refuse the upgrade (HTTP 401) instead of falling back to Digest. */
  required: boolean;
  /** Seconds of clock skew tolerated on exp and nbf. */
  clockTolerance: number;
  /** The claim naming the domain when `sub` has no `@`. */
  domainClaim: string;
}

const HS = ['HS256', 'HS384', 'HS512'];

/** Why a token was not taken (for the debug log; never the token). */
function why(e: unknown): string {
  const code = (e as { code?: unknown }).code;
  return typeof code === 'string' ? code : e instanceof Error ? e.message : String(e);
}

function readSecret(o: Pick<WsTokenOptions, 'secret' | 'secretFile'>): string | undefined {
  if (o.secret !== undefined) return o.secret;
  if (o.secretFile !== undefined) return readFileSync(o.secretFile, 'utf8').replace(/\r?\n$/, '');
  return undefined;
}

/** `alice@example.com` → alice in example.com; `alice` → alice, domain from the claim or any. */
export function identityOf(payload: JWTPayload, domainClaim: string): PreAuthorization | undefined {
  const sub = payload.sub;
  if (typeof sub !== 'string' || sub === '') return undefined;
  const at = sub.lastIndexOf('@');
  const username = at > 0 ? sub.slice(0, at) : sub;
  const claimed = payload[domainClaim];
  const domain = at > 0 ? sub.slice(at + 1) : typeof claimed === 'string' && claimed !== '' ? claimed : undefined;
  if (at === 0 || username === '' || domain === '') return undefined;
  return {
    username,
    ...(domain !== undefined ? { domain: domain.toLowerCase() } : {}),
    method: 'token',
    attributes: { claims: payload },
    ...(typeof payload.exp === 'number' ? { expiresAt: payload.exp * 1000 } : {}),
  };
}

export default class WsToken implements RelayPlugin {
  static readonly schema = {
    type: 'object',
    additionalProperties: false,
    properties: {
      secret: { type: 'string', minLength: 32, description: 'shared secret for HS256/384/512' },
      secretFile: { type: 'string', minLength: 1 },
      publicKeyFile: { type: 'string', minLength: 1, description: 'PEM public key or certificate (RS*, PS*, ES*, EdDSA)' },
      jwksUrl: { type: 'string', pattern: '^https?://' },
      algorithms: { type: 'array', items: { type: 'string', pattern: '^(HS|RS|PS|ES)(256|384|512)$|^EdDSA$|^Ed25519$' }, minItems: 1 },
      issuer: { type: 'string', minLength: 1 },
      audience: { type: 'string', minLength: 1 },
      cookie: { type: 'string', default: 'msrp_token' },
      queryParameter: { type: 'string', default: 'token' },
      bearer: { type: 'boolean', default: true },
      required: { type: 'boolean', default: false },
      clockTolerance: { type: 'number', minimum: 0, default: 5 },
      domainClaim: { type: 'string', minLength: 1, default: 'domain' },
    },
  } as const;

  static readonly commands: Record<string, PluginCommand<WsTokenOptions>> = {
    'ws-token': {
      summary: 'mint a token for the ws-token plugin: msrprelay ws-token USER@DOMAIN [--ttl SECONDS]',
      async run(argv, ctx) {
        let values: { ttl?: string; help?: boolean };
        let positionals: string[];
        try {
          ({ values, positionals } = parseArgs({ args: argv, allowPositionals: true, options: { ttl: { type: 'string' }, help: { type: 'boolean', short: 'h' } } }));
        } catch (e) {
          ctx.stderr(`msrprelay ws-token: ${(e as Error).message}`);
          return 2;
        }
        if (values.help === true || positionals.length !== 1) {
          (values.help === true ? ctx.stdout : ctx.stderr)('Usage: msrprelay ws-token USER@DOMAIN [--ttl SECONDS]   (default 600 s; HS256 with the configured secret)');
          return values.help === true ? 0 : 2;
        }
        const ttl = values.ttl === undefined ? 600 : Number(values.ttl);
        if (!Number.isInteger(ttl) || ttl < 1) {
          ctx.stderr(`msrprelay ws-token: --ttl wants whole seconds >= 1, not "${values.ttl}"`);
          return 2;
        }
        const secret = readSecret(ctx.options);
        if (secret === undefined) {
          ctx.stderr('msrprelay ws-token: minting needs the shared secret ("secret" or "secretFile"); tokens for a public key are minted by the key\'s owner');
          return 1;
        }
        ctx.stdout(await mint(secret, positionals[0]!, ttl, ctx.options));
        return 0;
      },
    },
  };

  readonly name = 'ws-token';
  private readonly o: WsTokenOptions;
  private readonly key: Uint8Array | KeyObject | JWTVerifyGetKey;
  private readonly algorithms: string[] | undefined;

  constructor(options: WsTokenOptions) {
    this.o = options;
    const sources = ['secret', 'secretFile', 'publicKeyFile', 'jwksUrl'].filter((k) => options[k as keyof WsTokenOptions] !== undefined);
    if (sources.length !== 1) throw new Error(`give exactly one of "secret", "secretFile", "publicKeyFile", "jwksUrl" (got ${sources.length === 0 ? 'none' : sources.join(', ')})`);
    const secret = readSecret(options);
    if (secret !== undefined) {
      if (Buffer.byteLength(secret) < 32) throw new Error('the secret must be at least 32 octets (HS256, RFC 7518 §3.2)');
      this.key = new TextEncoder().encode(secret);
      this.algorithms = options.algorithms ?? HS;
      if (this.algorithms.some((a) => !HS.includes(a))) throw new Error('a shared secret goes with HS256, HS384 or HS512 only');
    } else if (options.publicKeyFile !== undefined) {
      this.key = createPublicKey(readFileSync(options.publicKeyFile));
      this.algorithms = options.algorithms;
    } else {
      this.key = createRemoteJWKSet(new URL(options.jwksUrl!));
      this.algorithms = options.algorithms;
    }
  }

  apply(relay: PluginHost): void {
    WebSocketPlugin.getHooks(relay).authorizeUpgrade.tapPromise(this.name, (req) => this.check(relay, req));
  }

  /** The token of an upgrade: the cookie, then the query parameter, then a Bearer header. */
  private tokenOf(req: UpgradeRequest): string | undefined {
    const o = this.o;
    const fromCookie = o.cookie !== '' ? req.cookie(o.cookie) : undefined;
    if (fromCookie !== undefined && fromCookie !== '') return fromCookie;
    const fromQuery = o.queryParameter !== '' ? req.query.get(o.queryParameter) : null;
    if (fromQuery !== null && fromQuery !== '') return fromQuery;
    return o.bearer ? req.bearer : undefined;
  }

  private async check(relay: PluginHost, req: UpgradeRequest): Promise<UpgradeDecision | undefined> {
    const token = this.tokenOf(req);
    const refuse = (error: string): UpgradeDecision | undefined =>
      this.o.required ? { refuse: { status: 401, headers: { 'WWW-Authenticate': `Bearer error="${error}"` } } } : undefined;
    if (token === undefined) return refuse('invalid_request');
    let payload: JWTPayload;
    try {
      const options = {
        ...(this.algorithms !== undefined ? { algorithms: this.algorithms } : {}),
        ...(this.o.issuer !== undefined ? { issuer: this.o.issuer } : {}),
        ...(this.o.audience !== undefined ? { audience: this.o.audience } : {}),
        clockTolerance: this.o.clockTolerance,
        requiredClaims: ['exp', 'sub'],
      };
      // A key set fetches over the network: it honours the upgrade's deadline through its own timeout.
      ({ payload } = typeof this.key === 'function' ? await jwtVerify(token, this.key, options) : await jwtVerify(token, this.key, options));
    } catch (e) {
      relay.log.debug('ws-token: token not accepted', { remote: req.remoteAddress, reason: why(e) });
      return refuse('invalid_token');
    }
    const identity = identityOf(payload, this.o.domainClaim);
    if (identity === undefined) {
      relay.log.debug('ws-token: token without a usable sub', { remote: req.remoteAddress });
      return refuse('invalid_token');
    }
    return { accept: identity };
  }
}

/** An HS256 token for `user@domain`, valid `ttl` seconds (what `msrprelay ws-token` prints). */
export function mint(secret: string, subject: string, ttl: number, o: Pick<WsTokenOptions, 'issuer' | 'audience'> = {}): Promise<string> {
  let jwt = new SignJWT({}).setProtectedHeader({ alg: 'HS256', typ: 'JWT' }).setSubject(subject).setIssuedAt().setExpirationTime(`${ttl}s`);
  if (o.issuer !== undefined) jwt = jwt.setIssuer(o.issuer);
  if (o.audience !== undefined) jwt = jwt.setAudience(o.audience);
  return jwt.sign(new TextEncoder().encode(secret));
}
