/**
 * MSRP URIs (RFC.md §1.7, §1.8): parsing, formatting and comparison.
 *
 * Grammar (RFC 4975 §9, RFC 7977 §5.2.1, RFC 3986 for the authority):
 *
 *   MSRP-URI  = msrp-scheme "://" authority ["/" session-id] ";" transport *(";" URI-parameter)
 *   authority = [userinfo "@"] host [":" port]
 *
 * The parser is a hand-written scanner because it runs on the hot path: every
 * forwarded request parses its To-Path[0].
 */
import { isIPv4, isIPv6 } from 'node:net';

/** The two MSRP URI schemes; `msrps` means the hop MUST be protected with TLS (RFC 4975 §6). */
export type MsrpScheme = 'msrp' | 'msrps';

/** How the host of a URI is written: a registered name, an IPv4 address or a bracketed IPv6 address. */
export type HostType = 'name' | 'ipv4' | 'ipv6';

/** A parsed MSRP URI. Produced by {@link parseUri}; every field is immutable. */
export interface MsrpUri {
  /** Lower-cased scheme. */
  readonly scheme: MsrpScheme;
  /** userinfo as written, without the `@`; never contains a password (RFC 4975 §6). */
  readonly user: string | undefined;
  /** Host as written; an IPv6 address without its brackets. */
  readonly host: string;
  readonly hostType: HostType;
  /** Explicit port, 1..65535; undefined when the URI has none. */
  readonly port: number | undefined;
  /** Session-id, case-sensitive (§1.8 rule 4); undefined when the URI has none. */
  readonly sessionId: string | undefined;
  /** Lower-cased transport: `tcp`, `ws`, or another 1*ALPHANUM token. */
  readonly transport: string;
  /** Further `;name[=value]` parameters, in order, as written. */
  readonly params: ReadonlyArray<readonly [string, string | undefined]>;
  /** The exact input string. */
  readonly raw: string;
}

/** The parts {@link formatUri} needs to write a URI; an {@link MsrpUri} is one. */
export interface MsrpUriParts {
  readonly scheme: MsrpScheme;
  readonly user?: string | undefined;
  readonly host: string;
  readonly hostType?: HostType | undefined;
  readonly port?: number | undefined;
  readonly sessionId?: string | undefined;
  readonly transport: string;
  readonly params?: ReadonlyArray<readonly [string, string | undefined]> | undefined;
}

/**
 * A URI or path that does not follow the grammar of RFC.md §1.7. The caller
 * maps it to a protocol outcome (a 400, usually); `reason` says what was wrong.
 */
export class UriError extends Error {
  /** The rejected input (a single URI, or a whole path header value). */
  readonly input: string;
  /** Why it was rejected, without the input. */
  readonly reason: string;

  constructor(input: string, reason: string) {
    const shown = input.length > 100 ? `${input.slice(0, 100)}...` : input;
    // JSON.stringify escapes CR, LF and other controls, so the message is safe to log.
    super(`invalid MSRP URI ${JSON.stringify(shown)}: ${reason}`);
    this.name = 'UriError';
    this.input = input;
    this.reason = reason;
  }
}

// ---------------------------------------------------------------------------
// Character classes, indexed by UTF-16 code unit (the table covers them all, so
// a non-ASCII unit reads 0 and fails every class instead of reading out of bounds)

const UNRESERVED = 1; // RFC 3986: ALPHA / DIGIT / "-" / "." / "_" / "~"
const SUB_DELIM = 2; // RFC 3986: "!" / "$" / "&" / "'" / "(" / ")" / "*" / "+" / "," / ";" / "="
const TOKEN = 4; // RFC 4975 §9: alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~"
const SESSION = 8; // RFC 4975 §9: unreserved / "+" / "=" / "/"
const ALNUM = 16;
const HEX = 32;
const DIGIT = 64;

const CLASS = new Uint8Array(0x10000);
const ALPHA_CHARS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
const DIGIT_CHARS = '0123456789';
function mark(chars: string, bit: number): void {
  for (let k = 0; k < chars.length; k++) CLASS[chars.charCodeAt(k)]! |= bit;
}
mark(`${ALPHA_CHARS}${DIGIT_CHARS}-._~`, UNRESERVED);
mark("!$&'()*+,;=", SUB_DELIM);
mark(`${ALPHA_CHARS}${DIGIT_CHARS}-.!%*_+\`'~`, TOKEN);
mark(`${ALPHA_CHARS}${DIGIT_CHARS}-._~+=/`, SESSION);
mark(`${ALPHA_CHARS}${DIGIT_CHARS}`, ALNUM);
mark(`${DIGIT_CHARS}abcdefABCDEF`, HEX);
mark(DIGIT_CHARS, DIGIT);

const CH_PERCENT = 0x25;
const CH_DOT = 0x2e;
const CH_SLASH = 0x2f;
const CH_COLON = 0x3a;
const CH_SEMI = 0x3b;
const CH_EQUALS = 0x3d;
const CH_AT = 0x40;
const CH_LBRACKET = 0x5b;
const CH_RBRACKET = 0x5d;

const NO_PARAMS: ReadonlyArray<readonly [string, string | undefined]> = Object.freeze([]);

function describeChar(c: number): string {
  return JSON.stringify(String.fromCharCode(c));
}

function isPctTriplet(text: string, at: number): boolean {
  // `at` is the index of the '%'
  if (at + 2 >= text.length) return false;
  const h1 = text.charCodeAt(at + 1);
  const h2 = text.charCodeAt(at + 2);
  return (CLASS[h1]! & HEX) !== 0 && (CLASS[h2]! & HEX) !== 0;
}

/** Lower-cases a transport, returning the interned constant for the common ones. */
function lowerTransport(text: string, start: number, end: number): string {
  const n = end - start;
  if (n === 3) {
    if (
      (text.charCodeAt(start) | 0x20) === 0x74 && // t
      (text.charCodeAt(start + 1) | 0x20) === 0x63 && // c
      (text.charCodeAt(start + 2) | 0x20) === 0x70 // p
    ) return 'tcp';
  } else if (n === 2) {
    if ((text.charCodeAt(start) | 0x20) === 0x77 && (text.charCodeAt(start + 1) | 0x20) === 0x73) return 'ws';
  }
  return text.slice(start, end).toLowerCase();
}

/**
 * §1.7: URIs are US-ASCII only (RFC 4975 §6), with no whitespace or controls.
 * Every character class below excludes these, so this runs only once a URI has
 * already failed, to give the more telling reason.
 */
function charsetReason(text: string): string | undefined {
  for (let k = 0; k < text.length; k++) {
    const c = text.charCodeAt(k);
    if (c > 0x20 && c < 0x7f) continue;
    if (c === 0x20 || c === 0x09) return 'contains whitespace';
    if (c >= 0x80) return 'contains a non-ASCII character';
    return 'contains a control character';
  }
  return undefined;
}

/**
 * The scanner behind {@link parseUri} and {@link tryParseUri}: the URI, or the
 * reason it is invalid. Returning the reason (not throwing) keeps
 * tryParseUri free of exception cost.
 */
function scan(text: string): MsrpUri | string {
  if (typeof text !== 'string') return 'not a string';
  const r = scanAscii(text);
  return typeof r === 'string' ? (charsetReason(text) ?? r) : r;
}

function scanAscii(text: string): MsrpUri | string {
  const len = text.length;
  if (len === 0) return 'empty URI';

  // Scheme, case-insensitive (§1.8 rule 1): "msrp" / "msrps", then "://".
  let scheme: MsrpScheme;
  let i: number;
  if (
    len < 4 ||
    (text.charCodeAt(0) | 0x20) !== 0x6d || // m
    (text.charCodeAt(1) | 0x20) !== 0x73 || // s
    (text.charCodeAt(2) | 0x20) !== 0x72 || // r
    (text.charCodeAt(3) | 0x20) !== 0x70 // p
  ) {
    return 'scheme must be "msrp" or "msrps"';
  }
  if (len > 4 && (text.charCodeAt(4) | 0x20) === 0x73) {
    scheme = 'msrps';
    i = 5;
  } else {
    scheme = 'msrp';
    i = 4;
  }
  if (i >= len || text.charCodeAt(i) !== CH_COLON) return 'scheme must be "msrp" or "msrps"';
  if (text.charCodeAt(i + 1) !== CH_SLASH || text.charCodeAt(i + 2) !== CH_SLASH) return 'missing "//" after the scheme';
  i += 3;

  // userinfo: the authority ends at the first '/', and '@' may appear nowhere
  // else in an MSRP URI, so an '@' before the first '/' ends the userinfo.
  let user: string | undefined;
  for (let j = i; j < len; j++) {
    const c = text.charCodeAt(j);
    if (c === CH_SLASH) break;
    if (c !== CH_AT) continue;
    if (j === i) return 'empty userinfo';
    for (let k = i; k < j; k++) {
      const u = text.charCodeAt(k);
      if (u === CH_COLON) return 'userinfo must not contain a password'; // RFC 4975 §6 (§1.7)
      if (u === CH_PERCENT) {
        if (!isPctTriplet(text, k)) return 'bad percent-encoding in the userinfo';
        k += 2;
        continue;
      }
      if ((CLASS[u]! & (UNRESERVED | SUB_DELIM)) === 0) return `invalid character ${describeChar(u)} in the userinfo`;
    }
    user = text.slice(i, j);
    i = j + 1;
    break;
  }

  // host = IP-literal / IPv4address / reg-name
  let host: string;
  let hostType: HostType;
  if (i >= len) return 'empty host';
  if (text.charCodeAt(i) === CH_LBRACKET) {
    const close = text.indexOf(']', i + 1);
    if (close < 0) return 'unclosed "[" in the host';
    host = text.slice(i + 1, close);
    if (host.length === 0) return 'empty host';
    if ((host.charCodeAt(0) | 0x20) === 0x76) return 'IPvFuture addresses are not supported';
    if (host.indexOf('%') >= 0) return 'IPv6 zone identifiers are not allowed';
    if (!isIPv6(host)) return 'invalid IPv6 address';
    hostType = 'ipv6';
    i = close + 1;
    if (i < len) {
      const c = text.charCodeAt(i);
      if (c !== CH_COLON && c !== CH_SLASH && c !== CH_SEMI) return `unexpected character ${describeChar(c)} after "]"`;
    }
  } else {
    const start = i;
    let digitsAndDots = true;
    let sawDot = false;
    for (; i < len; i++) {
      const c = text.charCodeAt(i);
      if (c === CH_COLON || c === CH_SLASH || c === CH_SEMI) break;
      if (c === CH_PERCENT) {
        if (!isPctTriplet(text, i)) return 'bad percent-encoding in the host';
        digitsAndDots = false;
        i += 2;
        continue;
      }
      if ((CLASS[c]! & UNRESERVED) === 0) return `invalid character ${describeChar(c)} in the host`;
      if (c === CH_DOT) sawDot = true;
      else if ((CLASS[c]! & DIGIT) === 0) digitsAndDots = false;
    }
    if (i === start) return 'empty host';
    host = text.slice(start, i);
    if (digitsAndDots && sawDot) {
      // Dotted digits are an IPv4 address or nothing: "10.0.0.256" is not a name.
      if (!isIPv4(host)) return 'invalid IPv4 address';
      hostType = 'ipv4';
    } else {
      hostType = 'name';
    }
  }

  // port: 1-5 digits, 1..65535
  let port: number | undefined;
  if (i < len && text.charCodeAt(i) === CH_COLON) {
    i++;
    const start = i;
    let value = 0;
    for (; i < len; i++) {
      const c = text.charCodeAt(i);
      if (c === CH_SLASH || c === CH_SEMI) break;
      if ((CLASS[c]! & DIGIT) === 0) return 'invalid port';
      if (i - start >= 5) return 'port out of range (1..65535)';
      value = value * 10 + (c - 0x30);
    }
    if (i === start) return 'empty port';
    if (value < 1 || value > 65535) return 'port out of range (1..65535)';
    port = value;
  }
  // §1.7: a numeric IP in the authority requires a port (RFC 4975 §6). Names
  // may omit it: only the caller knows whether this is an AUTH To-Path.
  if (hostType !== 'name' && port === undefined) return 'an IP address needs a port';

  // ["/" session-id], session-id = 1*( unreserved / "+" / "=" / "/" )
  let sessionId: string | undefined;
  if (i < len && text.charCodeAt(i) === CH_SLASH) {
    i++;
    const start = i;
    for (; i < len; i++) {
      const c = text.charCodeAt(i);
      if (c === CH_SEMI) break;
      if ((CLASS[c]! & SESSION) === 0) return `invalid character ${describeChar(c)} in the session-id`;
    }
    if (i === start) return 'empty session-id';
    sessionId = text.slice(start, i);
  }

  // ";" transport: mandatory (RFC 4975 §6: TCP URIs MUST include "tcp"; §1.7)
  if (i >= len) return 'missing transport parameter';
  // Only ';' can be here: every branch above stops at ';', '/' or the end.
  i++;
  const tStart = i;
  for (; i < len; i++) {
    const c = text.charCodeAt(i);
    if (c === CH_SEMI) break;
    if ((CLASS[c]! & ALNUM) === 0) return 'invalid transport (1*ALPHANUM)';
  }
  if (i === tStart) return 'missing transport parameter';
  const transport = lowerTransport(text, tStart, i);

  // *(";" URI-parameter), URI-parameter = token ["=" token]
  let params: Array<readonly [string, string | undefined]> | undefined;
  while (i < len) {
    i++; // the ';'
    const nStart = i;
    for (; i < len; i++) {
      const c = text.charCodeAt(i);
      if (c === CH_SEMI || c === CH_EQUALS) break;
      if ((CLASS[c]! & TOKEN) === 0) return `invalid character ${describeChar(c)} in a URI parameter`;
    }
    if (i === nStart) return 'empty URI parameter';
    const name = text.slice(nStart, i);
    let value: string | undefined;
    if (i < len && text.charCodeAt(i) === CH_EQUALS) {
      i++;
      const vStart = i;
      for (; i < len; i++) {
        const c = text.charCodeAt(i);
        if (c === CH_SEMI) break;
        if ((CLASS[c]! & TOKEN) === 0) return `invalid character ${describeChar(c)} in a URI parameter`;
      }
      if (i === vStart) return 'empty URI parameter value';
      value = text.slice(vStart, i);
    }
    (params ??= []).push(Object.freeze([name, value] as const));
  }

  // Not frozen: the readonly type guards it, and freezing costs a measurable
  // share of a parse on the hot path. The shared empty params array is frozen.
  return {
    scheme,
    user,
    host,
    hostType,
    port,
    sessionId,
    transport,
    params: params === undefined ? NO_PARAMS : Object.freeze(params),
    raw: text,
  };
}

/**
 * Parses one MSRP URI (RFC.md §1.7). Requires the transport parameter and a
 * port for IP hosts; does not require a port for names (R-44: the caller
 * decides whether an AUTH To-Path may omit it).
 * @throws {UriError} when the text is not a valid MSRP URI.
 */
export function parseUri(text: string): MsrpUri {
  const r = scan(text);
  if (typeof r === 'string') throw new UriError(typeof text === 'string' ? text : String(text), r);
  return r;
}

/** Like {@link parseUri}, but returns undefined instead of throwing. */
export function tryParseUri(text: string): MsrpUri | undefined {
  const r = scan(text);
  return typeof r === 'string' ? undefined : r;
}

/**
 * Writes a URI from its parts. IPv6 hosts (hostType 'ipv6', or a host with a
 * ':' when hostType is absent) get brackets. The parts are not validated: a
 * caller writing untrusted values should parse the result.
 */
export function formatUri(u: MsrpUriParts): string {
  let s = `${u.scheme}://`;
  if (u.user !== undefined) s += `${u.user}@`;
  const v6 = u.hostType === 'ipv6' || (u.hostType === undefined && u.host.indexOf(':') >= 0);
  s += v6 && u.host.charCodeAt(0) !== CH_LBRACKET ? `[${u.host}]` : u.host;
  if (u.port !== undefined) s += `:${u.port}`;
  if (u.sessionId !== undefined) s += `/${u.sessionId}`;
  s += `;${u.transport}`;
  if (u.params !== undefined) {
    for (const [name, value] of u.params) s += value === undefined ? `;${name}` : `;${name}=${value}`;
  }
  return s;
}

/** Formats `base` with its session-id replaced by `sessionId` (e.g. a Use-Path URI for a new token). */
export function sessionUri(base: MsrpUriParts, sessionId: string): string {
  return formatUri({
    scheme: base.scheme,
    user: base.user,
    host: base.host,
    hostType: base.hostType,
    port: base.port,
    sessionId,
    transport: base.transport,
    params: base.params,
  });
}

/**
 * RFC 4975 §6.1 equality (RFC.md §1.8, all MUST): same scheme, same host
 * (case-insensitive, IP addresses by address), same port or both absent, same
 * session-id (case-sensitive) or both absent, same transport
 * (case-insensitive). Userinfo and other parameters are ignored. R-50 uses it
 * to match To-Path[0] against issued tokens.
 */
export function uriEquals(a: MsrpUri, b: MsrpUri): boolean {
  if (a === b) return true;
  // §1.8 rule 4: session-id is case-sensitive; absent never equals present.
  if (a.sessionId !== b.sessionId) return false;
  // §1.8 rule 3: if either has a port, both must, and equal (no default port).
  if (a.port !== b.port) return false;
  // §1.8 rule 1: the scheme must match, case-insensitively (msrp != msrps).
  if (a.scheme !== b.scheme && a.scheme.toLowerCase() !== b.scheme.toLowerCase()) return false;
  // §1.8 rule 5: different transports never match; case-insensitive.
  if (a.transport !== b.transport && a.transport.toLowerCase() !== b.transport.toLowerCase()) return false;
  // §1.8 rule 2: userinfo is not considered; host by address or case-insensitively.
  // §1.8 rule 6: no path normalisation. Parameters other than transport are
  // not compared (4975 §6.1 names only "transport").
  return hostEquals(a.host, b.host);
}

/**
 * Splits a To-Path / From-Path / Use-Path header value into URIs (RFC.md §1.5:
 * single SP between URIs; runs of SP/HTAB and leading or trailing blanks are
 * tolerated).
 * @throws {UriError} for an empty value, any invalid URI, or more than
 *   `maxUris` URIs (R-88 limit: 16 by default).
 */
export function parsePath(value: string, maxUris = 16): MsrpUri[] {
  const len = value.length;
  // First pass counts, so an over-long path is refused before any URI is parsed.
  let count = 0;
  for (let i = 0; i < len; ) {
    while (i < len && isBlank(value.charCodeAt(i))) i++;
    if (i >= len) break;
    count++;
    while (i < len && !isBlank(value.charCodeAt(i))) i++;
  }
  if (count === 0) throw new UriError(value, 'empty path');
  if (count > maxUris) throw new UriError(value, `path has ${count} URIs, limit is ${maxUris}`);
  const out: MsrpUri[] = [];
  for (let i = 0; i < len; ) {
    while (i < len && isBlank(value.charCodeAt(i))) i++;
    if (i >= len) break;
    const start = i;
    while (i < len && !isBlank(value.charCodeAt(i))) i++;
    out.push(parseUri(start === 0 && i === len ? value : value.slice(start, i)));
  }
  return out;
}

function isBlank(c: number): boolean {
  return c === 0x20 || c === 0x09;
}

/** True when `host` is an IPv4 or IPv6 address (IPv6 with or without brackets). */
export function isIpLiteral(host: string): boolean {
  return isIPv4(host) || isIPv6(stripBrackets(host));
}

/**
 * True for a fully qualified DNS name, as Use-Path requires (4976 §4.2): at
 * least two labels, each 1-63 of [A-Za-z0-9-] not starting or ending with
 * '-', at most 253 characters, a top-level label that is not all digits. One
 * trailing root dot is accepted. False for IP addresses.
 */
export function isFqdn(host: string): boolean {
  let end = host.length;
  if (end > 0 && host.charCodeAt(end - 1) === CH_DOT) end--;
  if (end === 0 || end > 253) return false;
  let dots = 0;
  let labelStart = 0;
  let labelAllDigits = true;
  for (let i = 0; i <= end; i++) {
    const c = i < end ? host.charCodeAt(i) : CH_DOT;
    if (c === CH_DOT) {
      const n = i - labelStart;
      if (n < 1 || n > 63) return false;
      if (host.charCodeAt(labelStart) === 0x2d || host.charCodeAt(i - 1) === 0x2d) return false;
      if (i < end) {
        dots++;
        labelStart = i + 1;
        labelAllDigits = true;
      }
      continue;
    }
    if (c >= 128 || (c !== 0x2d && (CLASS[c]! & ALNUM) === 0)) return false;
    if ((CLASS[c]! & DIGIT) === 0) labelAllDigits = false;
  }
  // An all-numeric top-level label also rules out dotted IPv4 addresses.
  return dots >= 1 && !labelAllDigits;
}

/**
 * Host equality for §1.8 rule 2: case-insensitive, percent-encoded unreserved
 * characters decoded first, IPv4 and IPv6 compared as addresses
 * (`::1` equals `0:0:0:0:0:0:0:1`; brackets optional). An IPv4-mapped IPv6
 * address does not equal the IPv4 address: the URIs name different families.
 */
export function hostEquals(a: string, b: string): boolean {
  if (a === b) return true;
  if (a.indexOf(':') < 0 && b.indexOf(':') < 0 && a.indexOf('%') < 0 && b.indexOf('%') < 0) {
    // Hot path (R-50 token lookups): plain names and IPv4, which the parser only
    // accepts in canonical form; an ASCII case-insensitive compare, no allocation.
    if (a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) {
      const ca = a.charCodeAt(i);
      const cb = b.charCodeAt(i);
      if (ca === cb) continue;
      const la = ca | 0x20;
      if (la !== (cb | 0x20) || la < 0x61 || la > 0x7a) return false;
    }
    return true;
  }
  return hostKey(a) === hostKey(b);
}

function stripBrackets(host: string): string {
  return host.length >= 2 && host.charCodeAt(0) === CH_LBRACKET && host.charCodeAt(host.length - 1) === CH_RBRACKET
    ? host.slice(1, -1)
    : host;
}

/** A comparison key: equal keys mean equal hosts. */
function hostKey(host: string): string {
  const h = stripBrackets(host);
  if (h.indexOf(':') >= 0) {
    const pct = h.indexOf('%');
    const addr = pct >= 0 ? h.slice(0, pct) : h;
    if (isIPv6(addr)) {
      const zone = pct >= 0 ? h.slice(pct).toLowerCase() : '';
      return `[${ipv6Key(addr)}${zone}]`;
    }
    return h.toLowerCase();
  }
  return decodeUnreserved(h).toLowerCase();
}

/** Decodes %XX when XX is an unreserved character; other triplets are kept (and lower-cased with the rest). */
function decodeUnreserved(s: string): string {
  if (s.indexOf('%') < 0) return s;
  let out = '';
  let from = 0;
  for (let i = s.indexOf('%'); i >= 0; i = s.indexOf('%', i + 1)) {
    if (!isPctTriplet(s, i)) continue;
    const code = parseInt(s.slice(i + 1, i + 3), 16);
    if (code < 128 && (CLASS[code]! & UNRESERVED) !== 0) {
      out += s.slice(from, i) + String.fromCharCode(code);
      from = i + 3;
      i += 2;
    }
  }
  return out + s.slice(from);
}

/** Eight 16-bit words in lower-case hex without leading zeros; `addr` must satisfy isIPv6. */
function ipv6Key(addr: string): string {
  const gap = addr.indexOf('::');
  let words: number[];
  if (gap < 0) {
    words = ipv6Words(addr);
  } else {
    const head = ipv6Words(addr.slice(0, gap));
    const tail = ipv6Words(addr.slice(gap + 2));
    words = head;
    for (let n = 8 - head.length - tail.length; n > 0; n--) words.push(0);
    for (const w of tail) words.push(w);
  }
  return words.map((w) => w.toString(16)).join(':');
}

function ipv6Words(part: string): number[] {
  const out: number[] = [];
  if (part === '') return out;
  for (const group of part.split(':')) {
    if (group.indexOf('.') >= 0) {
      const o = group.split('.');
      out.push((Number(o[0]) << 8) | Number(o[1]), (Number(o[2]) << 8) | Number(o[3]));
    } else {
      out.push(parseInt(group, 16));
    }
  }
  return out;
}
