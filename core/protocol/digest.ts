/**
 * HTTP Digest authentication as MSRP uses it (RFC 4976 §9.1 on top of RFC 2617):
 * the MD5 / qop=auth computations, a tolerant parser and strict formatters for
 * WWW-Authenticate, Authorization and Authentication-Info, stateless-checkable
 * nonces with single-use and nc-replay tracking, and the verification step the
 * relay's digest plugin runs on every AUTH carrying credentials.
 *
 * Pure logic: node:crypto only, no I/O. Rule numbers refer to RFC.md
 * (§1.9 for the formulas and test vector, R-31 … R-43, I-1, I-2).
 */
import { hash, randomBytes, timingSafeEqual } from 'node:crypto';
import { fillRandom, randomHex } from './random.ts';

// ---------------------------------------------------------------------------
// Hashes (RFC.md §1.9)
// ---------------------------------------------------------------------------

/** MD5 of the UTF-8 bytes of `s`, as 32 lower-case hex digits. */
export function md5Hex(s: string): string {
  // One-shot (no Hash object per call): an AUTH handshake takes several.
  return hash('md5', s, 'hex');
}

/** §1.9: `HA1 = MD5(username ":" realm ":" password)`, lower-case hex. */
export function computeHa1(username: string, realm: string, password: string): string {
  return md5Hex(`${username}:${realm}:${password}`);
}

/**
 * §1.9 / R-36: the `response` a client must send.
 * `HA2 = MD5(method ":" uri)`; `response = MD5(HA1 ":" nonce ":" nc ":" cnonce ":" qop ":" HA2)`.
 * For MSRP the method is `AUTH` and the uri is the rightmost To-Path URI, byte for byte.
 */
export function computeDigestResponse(p: {
  ha1: string;
  nonce: string;
  nc: string;
  cnonce: string;
  qop: 'auth';
  method: string;
  uri: string;
}): string {
  const ha2 = md5Hex(`${p.method}:${p.uri}`);
  return md5Hex(`${p.ha1}:${p.nonce}:${p.nc}:${p.cnonce}:${p.qop}:${ha2}`);
}

/**
 * §1.9 / R-42: the `rspauth` of Authentication-Info. Same as the response, but
 * `HA2 = MD5(":" uri)` (no method; RFC 2617 §3.2.3).
 */
export function computeRspauth(p: {
  ha1: string;
  nonce: string;
  nc: string;
  cnonce: string;
  qop: 'auth';
  uri: string;
}): string {
  const ha2 = md5Hex(`:${p.uri}`);
  return md5Hex(`${p.ha1}:${p.nonce}:${p.nc}:${p.cnonce}:${p.qop}:${ha2}`);
}

/**
 * Compares two hex strings without an early exit (crypto.timingSafeEqual) when
 * their lengths match; hex case is ignored. Returns false on a length mismatch
 * (the length of a digest is not secret).
 */
export function timingSafeHexEqual(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  const ba = Buffer.from(a.toLowerCase(), 'utf8');
  const bb = Buffer.from(b.toLowerCase(), 'utf8');
  if (ba.length !== bb.length) return false;
  return timingSafeEqual(ba, bb);
}

// ---------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------

/** Every reason a {@link DigestParseError} can carry. */
export type DigestParseReason =
  // syntax (parseAuthParams / parseAuthHeader)
  | 'no-scheme'
  | 'empty-name'
  | 'bad-name'
  | 'missing-equals'
  | 'unterminated-quote'
  | 'empty-value'
  | 'bad-value'
  | 'missing-comma'
  | 'duplicate-param'
  // scheme
  | 'basic'
  | 'not-digest'
  // required parameters
  | 'missing-username'
  | 'missing-realm'
  | 'missing-nonce'
  | 'missing-response'
  | 'missing-cnonce'
  | 'missing-nc'
  | 'missing-qop'
  | 'missing-rspauth'
  // malformed values (R-35, §1.9)
  | 'bad-qop'
  | 'bad-nc'
  | 'bad-response'
  | 'bad-algorithm';

/**
 * A header that cannot be used. `reason` is stable and machine-readable; the
 * relay answers 400 for malformed credentials and 401 for Basic.
 */
export class DigestParseError extends Error {
  readonly reason: DigestParseReason;

  constructor(reason: DigestParseReason, message?: string) {
    super(message ?? `Malformed Digest header: ${reason}`);
    this.name = 'DigestParseError';
    this.reason = reason;
  }
}

/** A parsed `scheme param=value, ...` header value. */
export interface AuthHeader {
  /** The scheme token as written (`Digest`, `Basic`, ...); compare it case-insensitively. */
  scheme: string;
  /** Parameter names lower-cased; values unquoted and unescaped. */
  params: Map<string, string>;
}

const TOKEN_RE = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

function isWs(c: string): boolean {
  return c === ' ' || c === '\t' || c === '\r' || c === '\n';
}

/**
 * Parses a comma-separated list of `name=value` auth-params, `value` being a
 * token or a quoted-string with `\` escapes (RFC 2617 §1.2). Tolerant of any
 * whitespace (including folded lines) around names, `=` and commas, and of
 * empty list elements (`a=1,,b=2`). Used on its own for Authentication-Info,
 * which has no scheme.
 * @throws DigestParseError on an empty or non-token name, a missing `=`, an
 *   unterminated quote, an empty unquoted value, stray characters after a value,
 *   or a parameter given twice.
 */
export function parseAuthParams(input: string): Map<string, string> {
  const params = new Map<string, string>();
  const n = input.length;
  let i = 0;
  for (;;) {
    while (i < n && (isWs(input[i]!) || input[i] === ',')) i++;
    if (i >= n) break;

    // name
    const nameStart = i;
    while (i < n && !isWs(input[i]!) && input[i] !== '=' && input[i] !== ',' && input[i] !== '"') i++;
    const rawName = input.slice(nameStart, i);
    if (rawName === '') throw new DigestParseError('empty-name', 'Digest parameter with an empty name');
    if (!TOKEN_RE.test(rawName)) throw new DigestParseError('bad-name', `Digest parameter name is not a token: ${rawName}`);
    const name = rawName.toLowerCase();

    while (i < n && isWs(input[i]!)) i++;
    if (input[i] !== '=') throw new DigestParseError('missing-equals', `Digest parameter ${rawName} has no '='`);
    i++;
    while (i < n && isWs(input[i]!)) i++;

    // value
    let value: string;
    if (input[i] === '"') {
      i++;
      // Runs without escapes are sliced whole (building the value a character at a time
      // would leave a rope of one-character pieces behind every nonce and response).
      let out = '';
      let runStart = i;
      let closed = false;
      while (i < n) {
        const c = input.charCodeAt(i);
        if (c === 0x5c /* backslash */) {
          if (i + 1 >= n) break;
          out += input.slice(runStart, i) + input[i + 1]!;
          i += 2;
          runStart = i;
        } else if (c === 0x22 /* DQUOTE */) {
          out = out === '' ? input.slice(runStart, i) : out + input.slice(runStart, i);
          i++;
          closed = true;
          break;
        } else {
          i++;
        }
      }
      if (!closed) throw new DigestParseError('unterminated-quote', `Digest parameter ${rawName} has an unterminated quoted value`);
      value = out;
    } else {
      const start = i;
      while (i < n && !isWs(input[i]!) && input[i] !== ',') i++;
      value = input.slice(start, i);
      if (value === '') throw new DigestParseError('empty-value', `Digest parameter ${rawName} has an empty value`);
      if (value.includes('"')) throw new DigestParseError('bad-value', `Digest parameter ${rawName} has a stray quote`);
    }

    while (i < n && isWs(input[i]!)) i++;
    if (i < n && input[i] !== ',') throw new DigestParseError('missing-comma', `Digest parameter ${rawName} is not followed by a comma`);

    if (params.has(name)) throw new DigestParseError('duplicate-param', `Digest parameter ${name} appears twice`);
    params.set(name, value);
  }
  return params;
}

function splitScheme(value: string): { scheme: string; rest: string } {
  const s = value.replace(/^[ \t\r\n]+/, '');
  const m = /[ \t\r\n]/.exec(s);
  const scheme = m === null ? s : s.slice(0, m.index);
  if (scheme === '' || !TOKEN_RE.test(scheme)) throw new DigestParseError('no-scheme', 'Authentication header has no scheme token');
  return { scheme, rest: m === null ? '' : s.slice(m.index) };
}

/**
 * Parses `Scheme a="x", b=y, c="q\"uoted"` (WWW-Authenticate, Authorization).
 * @throws DigestParseError on syntax errors (see {@link parseAuthParams}) or a missing scheme.
 */
export function parseAuthHeader(value: string): AuthHeader {
  const { scheme, rest } = splitScheme(value);
  return { scheme, params: parseAuthParams(rest) };
}

/** The parsed credentials of an `Authorization: Digest ...` header. */
export interface DigestCredentials {
  username: string;
  realm: string;
  nonce: string;
  /** 32 hex digits, lower-cased. */
  response: string;
  cnonce: string;
  /** 8 hex digits, lower-cased. */
  nc: string;
  qop: 'auth';
  /** Absent from the RFC 4976 ABNF and from python-msrplib (I-2); checked against To-Path when present. */
  uri: string | undefined;
  opaque: string | undefined;
  /** As written; if present it is MD5 (case-insensitively). */
  algorithm: string | undefined;
}

const NC_RE = /^[0-9a-fA-F]{8}$/;
const RESPONSE_RE = /^[0-9a-fA-F]{32}$/;

/**
 * Parses and validates an Authorization header value.
 *
 * Tolerates `qop` and `nc` written quoted (I-2: python-msrplib sends
 * `qop="auth", nc="00000001"` and no `uri=`), any parameter order and any
 * parameter written as a token instead of a quoted-string. `response` and `nc`
 * are normalised to lower case.
 * @throws DigestParseError: `basic` for the Basic scheme, `not-digest`
 *   for any other non-Digest scheme, `missing-<param>` when username, realm,
 *   nonce, response, cnonce, nc or qop is absent, `bad-qop` (qop other
 *   than auth), `bad-nc` (not 8 hex digits), `bad-response` (not 32 hex
 *   digits), `bad-algorithm` (not MD5), or a syntax reason.
 */
export function parseAuthorization(value: string): DigestCredentials {
  const { scheme, rest } = splitScheme(value);
  const lower = scheme.toLowerCase();
  // Basic is never accepted; the relay re-challenges with Digest.
  if (lower === 'basic') throw new DigestParseError('basic', 'Basic authentication is not accepted (RFC 4976 §9.1)');
  if (lower !== 'digest') throw new DigestParseError('not-digest', `Unsupported authentication scheme: ${scheme}`);
  const params = parseAuthParams(rest);

  // every one of these is required.
  const req = (name: 'username' | 'realm' | 'nonce' | 'response' | 'cnonce' | 'nc' | 'qop'): string => {
    const v = params.get(name);
    if (v === undefined) throw new DigestParseError(`missing-${name}`, `Authorization lacks ${name}`);
    return v;
  };
  const username = req('username');
  const realm = req('realm');
  const nonce = req('nonce');
  const response = req('response');
  const cnonce = req('cnonce');
  const nc = req('nc');
  const qop = req('qop');

  // §1.9 / R-33: qop=auth only (never auth-int).
  if (qop.toLowerCase() !== 'auth') throw new DigestParseError('bad-qop', `Unsupported qop: ${qop}`);
  if (!NC_RE.test(nc)) throw new DigestParseError('bad-nc', 'nc is not 8 hex digits');
  // a response that is not 32 hex digits is malformed (400).
  if (!RESPONSE_RE.test(response)) throw new DigestParseError('bad-response', 'response is not 32 hex digits');
  const algorithm = params.get('algorithm');
  // §1.9 / R-33: MD5 only (no MD5-sess).
  if (algorithm !== undefined && algorithm.toLowerCase() !== 'md5') {
    throw new DigestParseError('bad-algorithm', `Unsupported algorithm: ${algorithm}`);
  }

  return {
    username,
    realm,
    nonce,
    response: response.toLowerCase(),
    cnonce,
    nc: nc.toLowerCase(),
    qop: 'auth',
    uri: params.get('uri'),
    opaque: params.get('opaque'),
    algorithm,
  };
}

// ---------------------------------------------------------------------------
// Formatting
// ---------------------------------------------------------------------------

function assertHeaderSafe(what: string, v: string): void {
  if (/[\r\n\0]/.test(v)) throw new Error(`${what} must not contain CR, LF or NUL`);
}

const NEEDS_ESCAPE = /[\\"]/;

function quote(what: string, v: string): string {
  assertHeaderSafe(what, v);
  // Realms, nonces, opaques and hex digests hold no quote or backslash: no replace() for them.
  return NEEDS_ESCAPE.test(v) ? `"${v.replace(/[\\"]/g, '\\$&')}"` : `"${v}"`;
}

/** The parameters of a 401 challenge. */
export interface Challenge {
  realm: string;
  nonce: string;
  /** I-1: always non-empty (python-msrplib fails on a challenge without it). */
  opaque: string;
  /** set when the client's nonce had expired. */
  stale?: boolean;
  algorithm?: 'MD5';
}

/**
 * Formats a WWW-Authenticate value:
 * `Digest realm="r", nonce="n", opaque="o", qop="auth"` followed by
 * `, stale=TRUE` when stale and `, algorithm=MD5` when set.
 * Parameters are separated by `", "` exactly (python-msrplib splits on it).
 * @throws Error on an empty realm, nonce or opaque (I-1), or a value holding CR, LF or NUL.
 */
export function formatChallenge(c: Challenge): string {
  if (c.realm === '' || c.nonce === '') throw new Error('A Digest challenge needs a realm and a nonce');
  // I-1: msrplib reads opaque unconditionally.
  if (c.opaque === '') throw new Error('A Digest challenge needs a non-empty opaque (I-1)');
  // qop is always present and quoted; only "auth" is offered; no domain, no MD5-sess.
  let out = `Digest realm=${quote('realm', c.realm)}, nonce=${quote('nonce', c.nonce)}, opaque=${quote('opaque', c.opaque)}, qop="auth"`;
  // stale=TRUE tells the client to retry with the fresh nonce without counting a failure.
  if (c.stale === true) out += ', stale=TRUE';
  if (c.algorithm !== undefined) out += ', algorithm=MD5';
  return out;
}

/**
 * Parses a WWW-Authenticate value (for clients and the test harness).
 * `qop` is the list of offered qop values (empty when absent); `opaque` is ''
 * when absent; `stale` is true only for `stale=true` (any case).
 * @throws DigestParseError: `basic` / `not-digest` for other schemes,
 *   `missing-realm` / `missing-nonce`, `bad-algorithm` for anything but MD5,
 *   or a syntax reason.
 */
export function parseChallenge(value: string): Challenge & { qop: string[] } {
  const { scheme, rest } = splitScheme(value);
  const lower = scheme.toLowerCase();
  if (lower === 'basic') throw new DigestParseError('basic', 'Basic challenge');
  if (lower !== 'digest') throw new DigestParseError('not-digest', `Unsupported authentication scheme: ${scheme}`);
  const params = parseAuthParams(rest);
  const realm = params.get('realm');
  if (realm === undefined) throw new DigestParseError('missing-realm', 'Challenge lacks realm');
  const nonce = params.get('nonce');
  if (nonce === undefined) throw new DigestParseError('missing-nonce', 'Challenge lacks nonce');
  const qopRaw = params.get('qop');
  const qop = qopRaw === undefined ? [] : qopRaw.split(',').map((q) => q.trim()).filter((q) => q !== '');
  const out: Challenge & { qop: string[] } = { realm, nonce, opaque: params.get('opaque') ?? '', qop };
  const stale = params.get('stale');
  if (stale !== undefined) out.stale = stale.toLowerCase() === 'true';
  const algorithm = params.get('algorithm');
  if (algorithm !== undefined) {
    if (algorithm.toLowerCase() !== 'md5') throw new DigestParseError('bad-algorithm', `Unsupported algorithm: ${algorithm}`);
    out.algorithm = 'MD5';
  }
  return out;
}

/**
 * Formats an Authorization value (for clients and the test harness), in the
 * RFC 4976 §9.1 form: `qop=auth` and `nc` unquoted, everything else quoted
 * except `algorithm`; `uri` only when given (the RFC 4976 ABNF has none).
 * Values are written as given (a harness may send malformed ones on purpose).
 * @throws Error when a value holds CR, LF or NUL.
 */
export function formatAuthorization(c: {
  username: string;
  realm: string;
  nonce: string;
  uri?: string;
  response: string;
  cnonce: string;
  nc: string;
  opaque?: string;
  algorithm?: string;
}): string {
  assertHeaderSafe('nc', c.nc);
  const parts = [
    `username=${quote('username', c.username)}`,
    `realm=${quote('realm', c.realm)}`,
    `nonce=${quote('nonce', c.nonce)}`,
  ];
  if (c.uri !== undefined) parts.push(`uri=${quote('uri', c.uri)}`);
  parts.push('qop=auth', `nc=${c.nc}`, `cnonce=${quote('cnonce', c.cnonce)}`, `response=${quote('response', c.response)}`);
  if (c.opaque !== undefined) parts.push(`opaque=${quote('opaque', c.opaque)}`);
  if (c.algorithm !== undefined) {
    assertHeaderSafe('algorithm', c.algorithm);
    parts.push(`algorithm=${c.algorithm}`);
  }
  return `Digest ${parts.join(', ')}`;
}

/**
 * Formats the Authentication-Info value of a successful AUTH's 200:
 * `qop=auth, rspauth="…", cnonce="…", nc=00000001` plus `, nextnonce="…"`.
 * rspauth, cnonce, nc and qop are all required; qop and nc unquoted (§1.9).
 * @throws Error when a value holds CR, LF or NUL.
 */
export function formatAuthenticationInfo(p: { rspauth: string; cnonce: string; nc: string; nextnonce?: string }): string {
  assertHeaderSafe('nc', p.nc);
  let out = `qop=auth, rspauth=${quote('rspauth', p.rspauth)}, cnonce=${quote('cnonce', p.cnonce)}, nc=${p.nc}`;
  // nextnonce is MAY.
  if (p.nextnonce !== undefined) out += `, nextnonce=${quote('nextnonce', p.nextnonce)}`;
  return out;
}

/** Parsed Authentication-Info (for clients and the test harness). */
export interface AuthenticationInfo {
  qop: string | undefined;
  rspauth: string;
  cnonce: string | undefined;
  nc: string | undefined;
  nextnonce: string | undefined;
}

/**
 * Parses an Authentication-Info value (no scheme). Only rspauth is required
 * here; a harness checks R-42's other members itself.
 * @throws DigestParseError `missing-rspauth` or a syntax reason.
 */
export function parseAuthenticationInfo(value: string): AuthenticationInfo {
  const params = parseAuthParams(value);
  const rspauth = params.get('rspauth');
  if (rspauth === undefined) throw new DigestParseError('missing-rspauth', 'Authentication-Info lacks rspauth');
  return {
    qop: params.get('qop'),
    rspauth,
    cnonce: params.get('cnonce'),
    nc: params.get('nc'),
    nextnonce: params.get('nextnonce'),
  };
}

// ---------------------------------------------------------------------------
// Nonces
// ---------------------------------------------------------------------------

/** What {@link NonceManager.check} says about a nonce. */
export type NonceState = 'valid' | 'stale' | 'unknown';

const NONCE_RANDOM_BYTES = 16; // >= 128 unpredictable bits
const NONCE_TIME_BYTES = 8;
const NONCE_TAG_BYTES = 16; // HMAC-SHA256 truncated to 128 bits
const NONCE_BODY_BYTES = NONCE_RANDOM_BYTES + NONCE_TIME_BYTES;
const NONCE_BYTES = NONCE_BODY_BYTES + NONCE_TAG_BYTES;
const NONCE_CHARS = Math.ceil((NONCE_BYTES * 8) / 6); // base64url, unpadded
const NONCE_RE = new RegExp(`^[A-Za-z0-9_-]{${NONCE_CHARS}}$`);
/** Distinct nc values remembered per nonce; past this every new nc counts as a replay. */
const MAX_NC_PER_NONCE = 64;

interface NonceEntry {
  issuedAt: number;
  /** nc values seen, made at the first credentialed use (most nonces only ever challenge). */
  ncs: Set<string> | undefined;
}

/**
 * HMAC-SHA256 (RFC 2104) under one key, with the padded keys computed once: a tag is two
 * one-shot hashes over buffers kept for reuse, where crypto.createHmac builds an Hmac
 * object and its key schedule per call (a nonce per AUTH challenge). Same output; the
 * tests compare it with createHmac.
 */
export class HmacSha256 {
  private static readonly BLOCK = 64;
  private readonly innerKey: Buffer;
  private readonly outer: Buffer;
  /** K ^ ipad followed by the last message (made anew when the message length changes). */
  private inner: Buffer;

  constructor(key: Buffer) {
    const B = HmacSha256.BLOCK;
    const k = key.length > B ? hash('sha256', key, 'buffer') : key;
    this.innerKey = Buffer.alloc(B, 0x36);
    this.outer = Buffer.alloc(B + 32, 0x5c);
    for (let i = 0; i < k.length; i++) {
      this.innerKey[i]! ^= k[i]!;
      this.outer[i]! ^= k[i]!;
    }
    this.inner = Buffer.alloc(0);
  }

  /** The 32-octet tag of `message`. */
  sign(message: Buffer): Buffer {
    const B = HmacSha256.BLOCK;
    if (this.inner.length !== B + message.length) {
      this.inner = Buffer.alloc(B + message.length);
      this.innerKey.copy(this.inner);
    }
    message.copy(this.inner, B);
    hash('sha256', this.inner, 'buffer').copy(this.outer, B);
    return hash('sha256', this.outer, 'buffer');
  }
}

/**
 * Issues and tracks Digest nonces.
 *
 * A nonce is base64url (`[A-Za-z0-9_-]`, 54 characters) of 16 random bytes,
 * the issue time (ms, 8 bytes big-endian) and an HMAC-SHA256 tag truncated to
 * 16 bytes under `secret`. Forged or foreign nonces are recognised by the tag
 * alone, and expiry by the embedded time, so neither needs state. State is kept
 * only for issued, unconsumed nonces, to enforce single use and nc replay; a
 * nonce whose state is gone (consumed, swept or evicted) is never valid again.
 */
export class NonceManager {
  readonly lifetimeMs: number;
  private readonly now: () => number;
  private readonly maxTracked: number;
  /** Insertion order is issue order, so the oldest entries come first. */
  private readonly entries = new Map<string, NonceEntry>();
  private readonly tagger: HmacSha256;
  /** sweep() has nothing to drop before this time (ms). */
  private sweepAt = Infinity;

  /**
   * @param opts.lifetimeMs how long a nonce stays valid (R-40: msrprelay uses 15 s).
   * @param opts.now clock in ms (default Date.now), injectable for tests.
   * @param opts.secret HMAC key (default: 32 random bytes per instance).
   * @param opts.maxTracked cap on tracked nonces (default 100000); oldest evicted first.
   */
  constructor(opts: { lifetimeMs: number; now?: () => number; secret?: Buffer; maxTracked?: number }) {
    if (!(opts.lifetimeMs > 0)) throw new Error('NonceManager: lifetimeMs must be positive');
    const maxTracked = opts.maxTracked ?? 100_000;
    if (!Number.isInteger(maxTracked) || maxTracked < 1) throw new Error('NonceManager: maxTracked must be a positive integer');
    this.lifetimeMs = opts.lifetimeMs;
    this.now = opts.now ?? Date.now;
    this.tagger = new HmacSha256(opts.secret ?? randomBytes(32));
    this.maxTracked = maxTracked;
  }

  /** A nonce body's tag: HMAC-SHA256, truncated to NONCE_TAG_BYTES. */
  private tag(body: Buffer): Buffer {
    return this.tagger.sign(body).subarray(0, NONCE_TAG_BYTES);
  }

  private clock(): number {
    return Math.max(0, Math.floor(this.now()));
  }

  /** Issues a fresh nonce and starts tracking it. */
  issue(): string {
    const issuedAt = this.clock();
    this.sweep(issuedAt);
    const raw = Buffer.allocUnsafe(NONCE_BYTES);
    fillRandom(raw, 0, NONCE_RANDOM_BYTES);
    // 64-bit big-endian milliseconds, as two 32-bit halves (no BigInt per nonce).
    raw.writeUInt32BE(Math.floor(issuedAt / 2 ** 32), NONCE_RANDOM_BYTES);
    raw.writeUInt32BE(issuedAt % 2 ** 32, NONCE_RANDOM_BYTES + 4);
    this.tag(raw.subarray(0, NONCE_BODY_BYTES)).copy(raw, NONCE_BODY_BYTES);
    const nonce = raw.toString('base64url');
    // Keeps sweepAt at or before the oldest entry's drop time (later entries drop later).
    this.sweepAt = Math.min(this.sweepAt, issuedAt + 2 * this.lifetimeMs + 1);
    this.entries.set(nonce, { issuedAt, ncs: undefined });
    this.evictOverflow();
    return nonce;
  }

  /** The issue time of an authentic nonce (ms), or undefined if it was not made under this secret. */
  private authenticTime(nonce: string): number | undefined {
    if (!NONCE_RE.test(nonce)) return undefined;
    const raw = Buffer.from(nonce, 'base64url');
    // Only the canonical spelling is accepted (base64url has spare trailing bits).
    if (raw.length !== NONCE_BYTES || raw.toString('base64url') !== nonce) return undefined;
    const body = raw.subarray(0, NONCE_BODY_BYTES);
    if (!timingSafeEqual(raw.subarray(NONCE_BODY_BYTES), this.tag(body))) return undefined;
    return Number(body.readBigUInt64BE(NONCE_RANDOM_BYTES));
  }

  /**
   * 'unknown' when the tag fails, or the nonce is authentic but no longer (or
   * never) tracked here and not yet expired: consumed, evicted, or
   * issued by another manager sharing the secret. 'stale' when it is authentic
   * and older than the lifetime. Otherwise 'valid'.
   */
  check(nonce: string): NonceState {
    const now = this.clock();
    this.sweep(now);
    const entry = this.entries.get(nonce);
    // A tracked nonce is one this manager issued, spelled exactly so (the map key): its tag
    // needs no second HMAC. An untracked one is checked by its tag alone.
    const issuedAt = entry !== undefined ? entry.issuedAt : this.authenticTime(nonce);
    if (issuedAt === undefined) return 'unknown';
    // an expired nonce is stale whatever else is right about it.
    if (now - issuedAt > this.lifetimeMs) return 'stale';
    // Untracked but authentic and live: consumed or evicted, never usable again.
    return entry !== undefined ? 'valid' : 'unknown';
  }

  /**
   * Records (nonce, nc). Returns false if this nc was already seen for this
   * nonce (replay, R-40), if the nonce is not tracked (consumed, swept or never
   * issued here), or if the nonce has already seen too many distinct nc values.
   */
  useCount(nonce: string, nc: string): boolean {
    const entry = this.entries.get(nonce);
    if (entry === undefined) return false;
    const key = nc.toLowerCase();
    // "if the same nc-value is seen twice, then the request is a replay".
    const ncs = (entry.ncs ??= new Set());
    if (ncs.has(key)) return false;
    if (ncs.size >= MAX_NC_PER_NONCE) return false;
    ncs.add(key);
    return true;
  }

  /** After a nonce yields a 200 it can never yield another: its state is dropped, so check() says 'unknown'. */
  consume(nonce: string): void {
    this.entries.delete(nonce);
  }

  /**
   * Drops state for nonces older than 2 x lifetime. Called by check() and issue();
   * cost is proportional to the number of entries dropped. (issue() enforces
   * maxTracked, oldest evicted first: only it adds entries.)
   */
  sweep(now = this.clock()): void {
    // Nothing is old enough before sweepAt (just past the oldest entry's issue time + 2 x
    // lifetime, or earlier): most calls end here, without an iterator over the map.
    if (now < this.sweepAt) return;
    const cutoff = now - 2 * this.lifetimeMs;
    this.sweepAt = Infinity;
    for (const [nonce, entry] of this.entries) {
      if (entry.issuedAt >= cutoff) {
        this.sweepAt = entry.issuedAt + 2 * this.lifetimeMs + 1;
        break;
      }
      this.entries.delete(nonce);
    }
  }

  private evictOverflow(): void {
    while (this.entries.size > this.maxTracked) {
      const oldest = this.entries.keys().next();
      if (oldest.done === true) break;
      this.entries.delete(oldest.value);
    }
  }

  /** Number of tracked nonces (for tests of boundedness). */
  get size(): number {
    return this.entries.size;
  }
}

/** A fresh opaque value: 16 random bytes as 32 hex digits (I-1: never empty). */
export function newOpaque(): string {
  return randomHex(16);
}

// ---------------------------------------------------------------------------
// Verification
// ---------------------------------------------------------------------------

/** The outcome of {@link verifyDigest}. */
export type DigestVerdict =
  | { ok: true; rspauth: string }
  | {
      ok: false;
      reason: 'stale' | 'unknown-nonce' | 'replay' | 'realm-mismatch' | 'opaque-mismatch' | 'uri-mismatch' | 'bad-response';
    };

/**
 * Verifies parsed credentials against a stored HA1. Checks, in order:
 * 1. realm equals expectedRealm, else 'realm-mismatch';
 * 2. the nonce: 'unknown-nonce' or 'stale';
 * 3. a `uri=` parameter, if present, equals digestUri, else 'uri-mismatch';
 * 4. opaque equals expectedOpaque when one is given, else 'opaque-mismatch';
 * 5. (nonce, nc) not seen before, else 'replay'; the nc is recorded now;
 * 6. the response, computed over digestUri and compared in constant time, else 'bad-response'.
 * On success the nonce is consumed and the rspauth over digestUri returned.
 * A stale nonce is 'stale' even with a correct response.
 *
 * @param p.digestUri the rightmost To-Path URI, byte for byte.
 * @param p.ha1 HA1 as hex (either case).
 * @param p.method defaults to 'AUTH'.
 */
export function verifyDigest(p: {
  credentials: DigestCredentials;
  expectedRealm: string;
  expectedOpaque?: string;
  digestUri: string;
  ha1: string;
  nonces: NonceManager;
  method?: string;
}): DigestVerdict {
  const c = p.credentials;
  // credentials for another realm get a fresh challenge.
  if (c.realm !== p.expectedRealm) return { ok: false, reason: 'realm-mismatch' };
  const state = p.nonces.check(c.nonce);
  if (state === 'unknown') return { ok: false, reason: 'unknown-nonce' };
  // expired but authentic: 401 stale=TRUE, not a failed attempt.
  if (state === 'stale') return { ok: false, reason: 'stale' };
  // HA2 is over the rightmost To-Path URI; a differing uri= is a 400.
  if (c.uri !== undefined && c.uri !== p.digestUri) return { ok: false, reason: 'uri-mismatch' };
  if (p.expectedOpaque !== undefined && c.opaque !== p.expectedOpaque) return { ok: false, reason: 'opaque-mismatch' };
  // a repeated (nonce, nc) pair is a replay.
  if (!p.nonces.useCount(c.nonce, c.nc)) return { ok: false, reason: 'replay' };
  const ha1 = p.ha1.toLowerCase();
  const expected = computeDigestResponse({
    ha1,
    nonce: c.nonce,
    nc: c.nc,
    cnonce: c.cnonce,
    qop: 'auth',
    method: p.method ?? 'AUTH',
    uri: p.digestUri,
  });
  // wrong password or unknown user: 401 with a fresh nonce.
  if (!timingSafeHexEqual(expected, c.response)) return { ok: false, reason: 'bad-response' };
  // single use; a nonce that yielded a 200 never yields another.
  p.nonces.consume(c.nonce);
  // rspauth for Authentication-Info.
  return { ok: true, rspauth: computeRspauth({ ha1, nonce: c.nonce, nc: c.nc, cnonce: c.cnonce, qop: 'auth', uri: p.digestUri }) };
}
