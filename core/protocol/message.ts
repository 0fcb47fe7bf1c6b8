/**
 * The MSRP message model: validation of a framed head into a request or response
 * (RFC.md §2B, R-17 … R-29), typed header values (Byte-Range, Status, Expires,
 * report headers) and serialisation that writes To-Path and From-Path first and
 * Content-Type last (§1.4, R-20, R-25, I-6).
 */

import { randomHex } from './random.ts';
import type { FrameHead, RawHeader } from './framer.ts';
import { parsePath, UriError, type MsrpUri } from './uri.ts';
import { statusComment } from './status.ts';

// ------------------------------------------------------------------ grammar

/** `ident = ALPHANUM 3*31ident-char` (RFC 4975 §9): transaction ids and Message-IDs (R-19). */
const IDENT_RE = /^[A-Za-z0-9][A-Za-z0-9.+%=-]{3,31}$/;
/** Methods: upper-case letters, plus `_` which real clients use (R-18, I-7: FILE_OFFSET). */
const METHOD_RE = /^[A-Z][A-Z_]*$/;

export function isIdent(s: string): boolean {
  return IDENT_RE.test(s);
}

export function isMethod(s: string): boolean {
  return METHOD_RE.test(s);
}

// ---------------------------------------------------------- transaction ids

/**
 * A new transaction id: 128 random bits as 32 lower-case hex digits (R-59, RFC.md §1.2,
 * I-5: letters and digits only), from the shared random pool (cheap on the forwarding path).
 */
export function newTransactionId(): string {
  return randomHex(16);
}

// ------------------------------------------------------------- header values

export type ReportValue = 'yes' | 'no' | 'partial';

/** `Byte-Range: start-end/total`; `end` and `total` are -1 for `*` (RFC 4975 §9). */
export interface ByteRange {
  start: number;
  end: number;
  total: number;
}

const BYTE_RANGE_RE = /^(\d{1,15})-(\d{1,15}|\*)\/(\d{1,15}|\*)$/;

/** The Byte-Range grammar only (`1*DIGIT "-" (1*DIGIT / "*") "/" (1*DIGIT / "*")`), without R-27's order checks. */
function scanByteRange(value: string): ByteRange | undefined {
  const m = BYTE_RANGE_RE.exec(value);
  if (m === null) return undefined;
  return {
    start: Number(m[1]),
    end: m[2] === '*' ? -1 : Number(m[2]),
    total: m[3] === '*' ? -1 : Number(m[3]),
  };
}

/** Parses a Byte-Range value; undefined when it does not follow the grammar or R-27. */
export function parseByteRange(value: string): ByteRange | undefined {
  const r = scanByteRange(value);
  if (r === undefined) return undefined;
  const { start, end, total } = r;
  // R-27: start >= 1; end >= start - 1 (an empty range is 1-0/0); total >= end when both are known.
  if (start < 1) return undefined;
  if (end !== -1 && end < start - 1) return undefined;
  if (end !== -1 && total !== -1 && total < end) return undefined;
  return r;
}

export function formatByteRange(r: ByteRange): string {
  return `${r.start}-${r.end === -1 ? '*' : r.end}/${r.total === -1 ? '*' : r.total}`;
}

/** `Status: 000 <code> [comment]` of a REPORT (RFC 4975 §9). */
export interface StatusHeader {
  namespace: string;
  code: number;
  comment: string;
}

const STATUS_RE = /^(\d{3}) (\d{3})(?: (.*))?$/;

export function parseStatusHeader(value: string): StatusHeader | undefined {
  const m = STATUS_RE.exec(value);
  if (m === null) return undefined;
  return { namespace: m[1]!, code: Number(m[2]), comment: m[3] ?? '' };
}

export function formatStatusHeader(code: number, comment: string = statusComment(code)): string {
  return comment === '' ? `000 ${code}` : `000 ${code} ${comment}`;
}

/** Parses a seconds value (Expires, Min-Expires, Max-Expires): `1*DIGIT`, no sign, no blanks. */
export function parseSeconds(value: string): number | undefined {
  if (!/^\d{1,10}$/.test(value)) return undefined;
  return Number(value);
}

// ------------------------------------------------------------ header access

/**
 * True when `name` spells `lower` (already lower case) in any case. Header names are tokens
 * (RFC 4975 §9), so ASCII case folding is enough; nothing is allocated, unlike toLowerCase(),
 * which makes a new string for every name with a capital in it (all of them, on the wire).
 */
export function nameIs(name: string, lower: string): boolean {
  const n = name.length;
  if (n !== lower.length) return false;
  for (let i = 0; i < n; i++) {
    const c = name.charCodeAt(i);
    if (c !== lower.charCodeAt(i) && (c < 0x41 || c > 0x5a || (c | 0x20) !== lower.charCodeAt(i))) return false;
  }
  return true;
}

/** Headers that may appear once only (R-21), lower case, To-Path and From-Path first. */
const SINGLE_NAMES = ['to-path', 'from-path', 'message-id', 'byte-range', 'success-report', 'failure-report', 'content-type'];

/** Names the relay reads, lower case: lowerName() returns these without allocating. */
const KNOWN_NAMES = [
  ...SINGLE_NAMES,
  'status',
  'expires',
  'min-expires',
  'max-expires',
  'use-path',
  'authorization',
  'www-authenticate',
  'authentication-info',
];

/** A header name in lower case; the names the relay knows come back as shared constants. */
export function lowerName(name: string): string {
  for (const k of KNOWN_NAMES) if (nameIs(name, k)) return k;
  return name.toLowerCase();
}

/** First value of a header, by case-insensitive name (RFC 4975 §9: field names are tokens). */
export function getHeader(headers: readonly RawHeader[], name: string): string | undefined {
  const lower = lowerName(name);
  for (const h of headers) if (nameIs(h[0], lower)) return h[1];
  return undefined;
}

/** Every value of a header, in order. */
export function getHeaders(headers: readonly RawHeader[], name: string): string[] {
  const lower = lowerName(name);
  const out: string[] = [];
  for (const h of headers) if (nameIs(h[0], lower)) out.push(h[1]);
  return out;
}

// ------------------------------------------------------------------- parsed

/** A validated request head. Paths are kept as written and parsed. */
export interface MsrpRequestHead {
  readonly kind: 'request';
  readonly tid: string;
  readonly method: string;
  /** To-Path URIs as written (R-58 rewrites them as strings; nothing is re-serialised). */
  readonly toPath: readonly string[];
  readonly fromPath: readonly string[];
  readonly toUris: readonly MsrpUri[];
  readonly fromUris: readonly MsrpUri[];
  /**
   * Every header after From-Path, in order, as received (R-24, R-61: forwarded unchanged),
   * except that Content-Type is always last (R-25: the relay emits it last).
   */
  readonly headers: readonly RawHeader[];
  readonly hasBody: boolean;
  readonly messageId: string | undefined;
  readonly byteRange: ByteRange | undefined;
  /** R-28: absent means yes. */
  readonly failureReport: ReportValue;
  /** R-28: absent means no. */
  readonly successReport: 'yes' | 'no';
  readonly contentType: string | undefined;
}

export interface MsrpResponseHead {
  readonly kind: 'response';
  readonly tid: string;
  readonly status: number;
  readonly comment: string;
  readonly toPath: readonly string[];
  readonly fromPath: readonly string[];
  readonly headers: readonly RawHeader[];
}

/**
 * Why a head was refused, and what the peer can be told: `respond` is true when the
 * paths and tid can address a 400 (R-20: otherwise the connection is closed unanswered).
 */
export class MessageError extends Error {
  readonly status: number;
  readonly respond: boolean;
  constructor(message: string, respond: boolean, status = 400) {
    super(message);
    this.name = 'MessageError';
    this.status = status;
    this.respond = respond;
  }
}

export interface ValidationOptions {
  /** R-88: most URIs in To-Path or From-Path. */
  maxPathUris?: number;
}

/** R-21's single headers, each with its bit in the `seen` mask of parseRequestHead. */
const SINGLE = new Map(SINGLE_NAMES.map((n, i) => [n, 1 << i]));
/** The bits of To-Path and From-Path in SINGLE (bits 0 and 1). */
const PATH_HEADERS = 0b11;

/** The two paths of a head, read and checked (readPaths). */
export interface Paths {
  toPath: string[];
  fromPath: string[];
  toUris: MsrpUri[];
  fromUris: MsrpUri[];
}

/** R-20: To-Path first, From-Path second, both parseable; else the message cannot be answered. */
export function readPaths(head: FrameHead, maxPathUris: number): Paths {
  const h = head.headers;
  if (h.length < 2 || !nameIs(h[0]![0], 'to-path') || !nameIs(h[1]![0], 'from-path')) {
    throw new MessageError('To-Path and From-Path must be the first two headers', false);
  }
  let toUris: MsrpUri[];
  let fromUris: MsrpUri[];
  try {
    fromUris = parsePath(h[1]![1], Infinity);
    toUris = parsePath(h[0]![1], Infinity);
  } catch (e) {
    if (e instanceof UriError) throw new MessageError(`unreadable path: ${e.reason}`, false);
    throw e;
  }
  const paths = { toPath: toUris.map((u) => u.raw), fromPath: fromUris.map((u) => u.raw), toUris, fromUris };
  // R-88: over-long paths are answered with 400 (the paths themselves are readable).
  if (toUris.length > maxPathUris || fromUris.length > maxPathUris) {
    throw new MessageError(`a path has more than ${maxPathUris} URIs`, true);
  }
  return paths;
}

/**
 * Validates a framed request head (R-17 … R-29, R-44 port rule). Throws MessageError.
 * `paths`: the head's own two paths, already read by readPaths with the same limit (a relay
 * that originates many requests on one route reads them once).
 */
export function parseRequestHead(head: FrameHead, opts: ValidationOptions = {}, paths: Paths = readPaths(head, opts.maxPathUris ?? 16)): MsrpRequestHead {
  // From here on a 400 can be addressed (R-19: if the tid is usable at all).
  if (!isIdent(head.tid)) throw new MessageError('the transaction id is not an ident of 4 to 32 characters', true);
  if (!isMethod(head.method)) throw new MessageError(`the method "${head.method.slice(0, 32)}" is not upper-case letters`, true);
  if (head.problem !== undefined) throw new MessageError(head.problem, true);
  // R-44: outside AUTH, every To-Path URI has an explicit port.
  if (head.method !== 'AUTH') {
    for (const u of paths.toUris) if (u.port === undefined) throw new MessageError('a To-Path URI has no port', true);
  }

  const rest = head.headers.slice(2);
  // R-21: a second To-Path or From-Path anywhere after the first two lines is a 400
  // (a header-injection symptom). Seeding the set with the two path headers read by
  // readPaths makes the repeat check below see them; without it a repeated path
  // header was taken for the first occurrence and passed.
  let seen = PATH_HEADERS;
  let contentTypeAt = -1;
  let messageId: string | undefined;
  let byteRange: ByteRange | undefined;
  let failureReport: ReportValue = 'yes';
  let successReport: 'yes' | 'no' = 'no';
  let contentType: string | undefined;
  for (let i = 0; i < rest.length; i++) {
    const [name, value] = rest[i]!;
    const lower = lowerName(name);
    const bit = SINGLE.get(lower);
    if (bit !== undefined) {
      if ((seen & bit) !== 0) throw new MessageError(`${name} appears more than once`, true);
      seen |= bit;
    }
    // R-25: only MIME (Content-*) headers may follow Content-Type.
    if (contentType !== undefined && !lower.startsWith('content-')) {
      throw new MessageError(`${name} follows Content-Type`, true);
    }
    switch (lower) {
      case 'message-id':
        if (!isIdent(value)) throw new MessageError('Message-ID is not an ident', true);
        messageId = value;
        break;
      case 'byte-range':
        if (head.method === 'REPORT') {
          // I-9 (which wins over R-27 for REPORTs, §6): REPORT Byte-Ranges from real
          // clients may have end > total (a str body counted in characters), and REPORTs
          // are forwarded without judging their Byte-Range. Read it by grammar only, and
          // never refuse a REPORT for it (R-77 forbids answering a REPORT anyway).
          byteRange = scanByteRange(value);
          break;
        }
        byteRange = parseByteRange(value);
        if (byteRange === undefined) throw new MessageError('Byte-Range is malformed', true);
        break;
      case 'failure-report': {
        const v = value.toLowerCase();
        if (v !== 'yes' && v !== 'no' && v !== 'partial') throw new MessageError('Failure-Report is not yes, no or partial', true);
        failureReport = v;
        break;
      }
      case 'success-report': {
        const v = value.toLowerCase();
        if (v !== 'yes' && v !== 'no') throw new MessageError('Success-Report is not yes or no', true);
        successReport = v;
        break;
      }
      case 'content-type':
        if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+\/[!#$%&'*+.^_`|~0-9A-Za-z-]+/.test(value)) {
          throw new MessageError('Content-Type is malformed', true);
        }
        contentType = value;
        contentTypeAt = i;
        break;
      case 'expires':
      case 'min-expires':
      case 'max-expires':
        // R-41: a non-numeric or negative Expires is a 400.
        if (parseSeconds(value) === undefined) throw new MessageError(`${name} is not a number of seconds`, true);
        break;
      default:
        break;
    }
  }
  // R-26: every SEND chunk carries a Message-ID; REPORT too (4975 §7.1.2).
  if ((head.method === 'SEND' || head.method === 'REPORT') && messageId === undefined) {
    throw new MessageError(`${head.method} without Message-ID`, true);
  }
  if (head.hasBody && contentType === undefined) throw new MessageError('a body without Content-Type', true);
  // R-25 (P) has two halves: on input only a non-Content-* header after Content-Type is
  // a 400, so `Content-Type, Content-Disposition` is accepted (the ABNF `content-stuff`
  // and §1.4 put the other MIME headers first, but they are harmless after it); and the
  // relay emits Content-Type last. The headers are forwarded as received (R-61), so the
  // accepted out-of-order case is normalised here: Content-Type moves behind the MIME
  // headers that followed it. Nothing else changes place.
  let headers = rest;
  if (contentTypeAt !== -1 && contentTypeAt !== rest.length - 1) {
    headers = [...rest.slice(0, contentTypeAt), ...rest.slice(contentTypeAt + 1), rest[contentTypeAt]!];
  }
  return {
    kind: 'request',
    tid: head.tid,
    method: head.method,
    ...paths,
    headers,
    hasBody: head.hasBody,
    messageId,
    byteRange,
    failureReport,
    successReport,
    contentType,
  };
}

/** Validates a framed response head. Throws MessageError (R-30: the caller drops it). */
export function parseResponseHead(head: FrameHead, opts: ValidationOptions = {}): MsrpResponseHead {
  let paths: Paths;
  try {
    paths = readPaths(head, opts.maxPathUris ?? 16);
  } catch (e) {
    // R-30: a response is never answered, so every refusal has respond false; readPaths
    // says respond true for an over-long (R-88) but readable path, which fits requests only.
    if (e instanceof MessageError && e.respond) throw new MessageError(e.message, false, e.status);
    throw e;
  }
  if (!isIdent(head.tid)) throw new MessageError('the transaction id is not an ident', false);
  if (head.problem !== undefined) throw new MessageError(head.problem, false);
  if (head.hasBody) throw new MessageError('a response has a body', false);
  return {
    kind: 'response',
    tid: head.tid,
    status: head.status,
    comment: head.comment,
    toPath: paths.toPath,
    fromPath: paths.fromPath,
    headers: head.headers.slice(2),
  };
}

// ------------------------------------------------------------ serialisation

export interface RequestHeadSpec {
  tid: string;
  method: string;
  toPath: readonly string[];
  fromPath: readonly string[];
  /** Headers after From-Path, in order; Content-Type (if any) must already be last (R-25). */
  headers?: readonly RawHeader[];
  /** True when content follows (a blank line is written after the headers). */
  hasBody: boolean;
}

/** The start line and headers of a request, ending with the blank line when a body follows. */
export function formatRequestHead(spec: RequestHeadSpec): string {
  let s = `MSRP ${spec.tid} ${spec.method}\r\nTo-Path: ${spec.toPath.join(' ')}\r\nFrom-Path: ${spec.fromPath.join(' ')}\r\n`;
  if (spec.headers !== undefined) for (const [n, v] of spec.headers) s += `${n}: ${v}\r\n`;
  if (spec.hasBody) s += '\r\n';
  return s;
}

/**
 * The end-line. After a body it starts with the CRLF that closes the content (RFC 4975 §9
 * `content-stuff`); after a bodiless head it follows the last header's CRLF directly.
 */
export function formatEndLine(tid: string, flag: '$' | '+' | '#', afterBody: boolean): string {
  return afterBody ? `\r\n-------${tid}${flag}\r\n` : `-------${tid}${flag}\r\n`;
}

/** A complete request with an optional body, as one Buffer (small messages, tests, REPORTs). */
export function formatRequest(spec: Omit<RequestHeadSpec, 'hasBody'> & { body?: Buffer | string; flag?: '$' | '+' | '#' }): Buffer {
  const flag = spec.flag ?? '$';
  if (spec.body === undefined) {
    return Buffer.from(formatRequestHead({ ...spec, hasBody: false }) + formatEndLine(spec.tid, flag, false), 'utf8');
  }
  const body = typeof spec.body === 'string' ? Buffer.from(spec.body, 'utf8') : spec.body;
  return Buffer.concat([
    Buffer.from(formatRequestHead({ ...spec, hasBody: true }), 'utf8'),
    body,
    Buffer.from(formatEndLine(spec.tid, flag, true), 'latin1'),
  ]);
}

export interface ResponseSpec {
  tid: string;
  status: number;
  comment?: string;
  toPath: readonly string[];
  fromPath: readonly string[];
  headers?: readonly RawHeader[];
}

/** A complete response (responses have no body and always end with `$`, 4975 §7.2). */
export function formatResponse(spec: ResponseSpec): Buffer {
  const comment = spec.comment ?? statusComment(spec.status);
  let s = `MSRP ${spec.tid} ${spec.status}${comment === '' ? '' : ` ${comment}`}\r\nTo-Path: ${spec.toPath.join(' ')}\r\nFrom-Path: ${spec.fromPath.join(' ')}\r\n`;
  if (spec.headers !== undefined) for (const [n, v] of spec.headers) s += `${n}: ${v}\r\n`;
  s += `-------${spec.tid}$\r\n`;
  return Buffer.from(s, 'utf8');
}
