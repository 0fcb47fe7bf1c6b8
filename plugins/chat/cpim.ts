/**
 * Message/CPIM (RFC 3862) as the chat focus reads it: a scanner over the bytes of a SEND body
 * that finds the CPIM message headers and the encapsulated MIME headers, checks them (C-18) and
 * says where they are. It never re-serialises: the focus forwards the original bytes and only
 * inserts header lines of its own namespace before the blank line that ends the CPIM headers
 * (C-6: content and CPIM headers are not modified, reformatted or reordered).
 *
 * Grammar (RFC 3862 §3):
 *   Header-line = Header-name ":" *( ";" Parameter ) SP Header-value CRLF
 *   Header-name = [ Name-prefix "." ] Name
 *   Name        = 1*Name-char   ; ALPHA / DIGIT / "!" "#" "$" "%" "&" "'" "*" "+" "-" "^" "_" "`" "|" "~"
 * Header names are case-sensitive ("From:" and "from:" are different headers, 3862 §2.2); the
 * headers of the CPIM namespace are From, To, cc, DateTime, Subject, NS and Require. The escapes
 * `\"`, `\\` and `\uXXXX` are understood in values (C-18, 3862 §3.3).
 *
 * Leniency where real clients differ and nothing is lost by it (the bytes are forwarded as they
 * are): a bare LF ends a line as CRLF does, and a From / To / cc value may be a URI without `<>`.
 */

/** The default namespace of unprefixed CPIM headers (RFC 3862 §3.3, §4.1). */
export const CPIM_NAMESPACE = 'urn:ietf:params:cpim-headers:';

/** Why a body is not acceptable Message/CPIM: `malformed` → 400, `from` / `to` → 403 (C-4, C-5). */
export type CpimProblem = 'malformed' | 'from' | 'to';

export class CpimError extends Error {
  constructor(
    readonly problem: CpimProblem,
    message: string,
  ) {
    super(message);
    this.name = 'CpimError';
  }
}

/** A display name and URI: the value of From, To or cc. */
export interface CpimAddress {
  /** The formal name, unescaped; '' when none was given. */
  readonly displayName: string;
  readonly uri: string;
}

/** One CPIM message header line, as received. */
export interface CpimHeader {
  /** The name as written, prefix included (`From`, `MyFeatures.VitalMessageOption`). */
  readonly name: string;
  /** The prefix before the dot; '' for none. */
  readonly prefix: string;
  /** The name after the prefix. */
  readonly localName: string;
  /** The namespace URI the prefix names (the default namespace for none); undefined for an undeclared prefix. */
  readonly namespace: string | undefined;
  /** Parameters between the colon and the value (`;lang=fr`), as written without the `;`. */
  readonly params: readonly string[];
  /** The value as written. */
  readonly raw: string;
  /** The value with the escapes decoded. */
  readonly value: string;
  /** Byte offsets of the line in the body (end: after its line terminator). */
  readonly start: number;
  readonly end: number;
}

export interface CpimMessage {
  readonly headers: readonly CpimHeader[];
  /** Prefix → namespace URI, from the NS headers ('' for an NS without a prefix). */
  readonly namespaces: ReadonlyMap<string, string>;
  readonly from: CpimAddress;
  readonly to: readonly CpimAddress[];
  readonly cc: readonly CpimAddress[];
  /** DateTime as written, if any. */
  readonly dateTime: string | undefined;
  /** DateTime as a time, when it is a valid RFC 3339 date-time. */
  readonly date: Date | undefined;
  readonly subject: string | undefined;
  /** The header names listed in Require headers. */
  readonly require: readonly string[];
  /** The encapsulated MIME object's headers, names as written. */
  readonly contentHeaders: ReadonlyArray<readonly [string, string]>;
  /** Its Content-Type (parameters included); `text/plain` when absent (MIME default). */
  readonly contentType: string;
  /** Its media type, lower case, without parameters (`text/plain`). */
  readonly mediaType: string;
  /** Offset of the blank line that ends the CPIM headers: where the focus inserts its own lines. */
  readonly headerEnd: number;
  /** Offset of the first content byte. */
  readonly contentStart: number;
  /** The terminator the CPIM header lines use (`\r\n`, or `\n` from a lenient sender). */
  readonly lineEnding: '\r\n' | '\n';
}

export interface CpimScanOptions {
  /** At most this many bytes of headers (CPIM and MIME) before the content (default 16384). */
  maxHeaderBytes?: number;
  /** At most this many CPIM header lines (default 64). */
  maxHeaders?: number;
}

/** The scan needs more bytes: the headers have not all arrived yet. */
export const INCOMPLETE = Symbol('cpim-incomplete');

const NAME_CHAR = "A-Za-z0-9!#$%&'*+\\-^_`|~";
const HEADER_NAME_RE = new RegExp(`^(?:([${NAME_CHAR}]+)\\.)?([${NAME_CHAR}]+)$`);
const URI_RE = /^[A-Za-z][A-Za-z0-9+.-]*:[^\s<>"]+$/;
const TOKEN_RE = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
/** RFC 3339 §5.6 date-time; `T` and `Z` in any case. */
const DATE_TIME_RE = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;
/** Headers of the CPIM namespace that may occur more than once (C-18). */
const REPEATABLE = new Set(['NS', 'To', 'cc']);
/** The CPIM namespace's own headers (names are case-sensitive). */
const CPIM_HEADERS = new Set(['From', 'To', 'cc', 'DateTime', 'Subject', 'NS', 'Require']);

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Scans the start of a Message/CPIM body. Returns INCOMPLETE when the headers have not all
 * arrived and `complete` is false (more body follows); throws CpimError when they are wrong.
 */
export function scanCpim(body: Buffer, complete: boolean, o: CpimScanOptions = {}): CpimMessage | typeof INCOMPLETE {
  const maxHeaderBytes = o.maxHeaderBytes ?? 16384;
  const maxHeaders = o.maxHeaders ?? 64;
  const lines = new LineReader(body, Math.min(body.length, maxHeaderBytes));

  // CPIM message headers, up to the first empty line.
  const headers: CpimHeader[] = [];
  const rawLines: Array<{ text: string; start: number; end: number }> = [];
  let lineEnding: '\r\n' | '\n' | undefined;
  let headerEnd = -1;
  for (;;) {
    const l = lines.next();
    if (l === undefined) return more(body, complete, maxHeaderBytes, 'the CPIM headers');
    lineEnding ??= l.crlf ? '\r\n' : '\n';
    if (l.text === '') {
      headerEnd = l.start;
      break;
    }
    if (rawLines.length >= maxHeaders) throw new CpimError('malformed', `more than ${maxHeaders} CPIM header lines`);
    rawLines.push(l);
  }
  if (rawLines.length === 0) throw new CpimError('malformed', 'no CPIM headers');

  // The encapsulated MIME object's headers, up to the next empty line (RFC 3862 §3.1).
  const contentLines: string[] = [];
  let contentStart = -1;
  for (;;) {
    const l = lines.next();
    if (l === undefined) {
      if (complete && lines.atEnd) {
        // Nothing after the CPIM headers but MIME headers without their blank line: no content.
        if (lines.rest === '') {
          contentStart = body.length;
          break;
        }
      }
      return more(body, complete, maxHeaderBytes, 'the MIME headers of the content');
    }
    if (l.text === '') {
      contentStart = l.end;
      break;
    }
    contentLines.push(l.text);
  }

  // NS first: a prefix may be declared after a header that uses it only in broken messages,
  // but namespaces are resolved for the whole block.
  const namespaces = new Map<string, string>();
  for (const l of rawLines) {
    const parsed = splitHeaderLine(l.text);
    if (parsed.name === 'NS') {
      const ns = parseNamespace(decodeEscapes(parsed.raw));
      namespaces.set(ns.prefix, ns.uri);
    }
  }
  const seen = new Set<string>();
  let from: CpimAddress | undefined;
  let fromProblem: string | undefined;
  const to: CpimAddress[] = [];
  const cc: CpimAddress[] = [];
  let dateTime: string | undefined;
  let subject: string | undefined;
  const require: string[] = [];
  for (const l of rawLines) {
    const parsed = splitHeaderLine(l.text);
    const m = HEADER_NAME_RE.exec(parsed.name)!;
    const prefix = m[1] ?? '';
    const localName = m[2]!;
    // Unprefixed names are the CPIM namespace's, whatever an NS without a prefix says: From is
    // always the From the focus checks (C-4).
    const namespace = prefix === '' ? CPIM_NAMESPACE : namespaces.get(prefix);
    const value = decodeEscapes(parsed.raw);
    const h: CpimHeader = { name: parsed.name, prefix, localName, namespace, params: parsed.params, raw: parsed.raw, value, start: l.start, end: l.end };
    headers.push(h);
    if (namespace !== CPIM_NAMESPACE || !CPIM_HEADERS.has(localName)) continue;
    // C-18: NS, To and cc may repeat; the other CPIM headers occur once.
    if (!REPEATABLE.has(localName)) {
      if (seen.has(localName)) throw new CpimError('malformed', `${localName} occurs more than once (C-18)`);
      seen.add(localName);
    }
    switch (localName) {
      case 'From':
        try {
          from = parseAddress(value);
        } catch (e) {
          fromProblem = (e as Error).message;
        }
        break;
      case 'To':
        to.push(addressOr400(value, 'To'));
        break;
      case 'cc':
        cc.push(addressOr400(value, 'cc'));
        break;
      case 'DateTime':
        dateTime = value;
        break;
      case 'Subject':
        subject = value;
        break;
      case 'Require':
        for (const n of value.split(',')) if (n.trim() !== '') require.push(n.trim());
        break;
    }
  }
  // C-18: From and To are always there; C-4: a From that cannot be read is not the sender's.
  if (from === undefined) throw new CpimError('from', fromProblem !== undefined ? `From: ${fromProblem}` : 'no From header (C-18)');
  if (to.length === 0) throw new CpimError('malformed', 'no To header (C-18)');

  const contentHeaders: Array<[string, string]> = [];
  for (const text of contentLines) {
    if (/^[ \t]/.test(text) && contentHeaders.length > 0) {
      // MIME headers may be folded (RFC 5322 §2.2.3); CPIM headers may not.
      const last = contentHeaders[contentHeaders.length - 1]!;
      last[1] = `${last[1]} ${text.trim()}`;
      continue;
    }
    const colon = text.indexOf(':');
    if (colon <= 0 || !TOKEN_RE.test(text.slice(0, colon))) throw new CpimError('malformed', `a MIME header of the content is malformed: ${JSON.stringify(text.slice(0, 60))}`);
    contentHeaders.push([text.slice(0, colon), text.slice(colon + 1).trim()]);
  }
  const ct = contentHeaders.find(([n]) => n.toLowerCase() === 'content-type')?.[1] ?? 'text/plain';
  const mediaType = ct.split(';')[0]!.trim().toLowerCase();
  if (!/^[!#$%&'*+.^_`|~0-9a-z-]+\/[!#$%&'*+.^_`|~0-9a-z-]+$/.test(mediaType)) throw new CpimError('malformed', `the content's Content-Type is malformed: ${JSON.stringify(ct.slice(0, 60))}`);

  return {
    headers,
    namespaces,
    from,
    to,
    cc,
    dateTime,
    date: dateTime !== undefined ? parseDateTime(dateTime) : undefined,
    subject,
    require,
    contentHeaders,
    contentType: ct,
    mediaType,
    headerEnd,
    contentStart,
    lineEnding: lineEnding ?? '\r\n',
  };
}

function more(body: Buffer, complete: boolean, maxHeaderBytes: number, what: string): typeof INCOMPLETE {
  if (body.length >= maxHeaderBytes) throw new CpimError('malformed', `${what} do not end within ${maxHeaderBytes} bytes`);
  if (complete) throw new CpimError('malformed', `${what} do not end before the end of the body`);
  return INCOMPLETE;
}

function addressOr400(value: string, name: string): CpimAddress {
  try {
    return parseAddress(value);
  } catch (e) {
    throw new CpimError('malformed', `${name}: ${(e as Error).message}`);
  }
}

/** Lines of a buffer up to `limit`: CRLF or a bare LF ends one; text is decoded as strict UTF-8. */
class LineReader {
  private pos = 0;
  constructor(
    private readonly buf: Buffer,
    private readonly limit: number,
  ) {}

  get atEnd(): boolean {
    return this.pos >= this.buf.length;
  }

  /** What is left after the last full line, decoded (for a body that ends without a terminator). */
  get rest(): string {
    return this.buf.toString('utf8', this.pos);
  }

  next(): { text: string; start: number; end: number; crlf: boolean } | undefined {
    const nl = this.buf.indexOf(0x0a, this.pos);
    if (nl === -1 || nl >= this.limit) return undefined;
    const start = this.pos;
    const crlf = nl > start && this.buf[nl - 1] === 0x0d;
    const stop = crlf ? nl - 1 : nl;
    let text: string;
    try {
      text = utf8.decode(this.buf.subarray(start, stop));
    } catch {
      throw new CpimError('malformed', 'a header line is not UTF-8');
    }
    // 3862 §3.2 / utf8text: no control characters but HTAB, no bare CR in a line.
    if (/[\x00-\x08\x0a-\x1f\x7f]/.test(text)) throw new CpimError('malformed', 'a header line holds a control character');
    this.pos = nl + 1;
    return { text, start, end: nl + 1, crlf };
  }
}

/** `Name:;param;param SP value` → its parts (the value may be empty). */
function splitHeaderLine(text: string): { name: string; params: string[]; raw: string } {
  if (/^[ \t]/.test(text)) throw new CpimError('malformed', 'CPIM headers are not folded (RFC 3862 §3.1)');
  const colon = text.indexOf(':');
  if (colon <= 0) throw new CpimError('malformed', `not a header line: ${JSON.stringify(text.slice(0, 60))}`);
  const name = text.slice(0, colon);
  if (!HEADER_NAME_RE.test(name)) throw new CpimError('malformed', `bad header name ${JSON.stringify(name.slice(0, 60))}`);
  let i = colon + 1;
  const params: string[] = [];
  while (text[i] === ';') {
    let j = i + 1;
    while (j < text.length && text[j] !== ';' && text[j] !== ' ') j++;
    params.push(text.slice(i + 1, j));
    i = j;
  }
  if (i < text.length) {
    if (text[i] !== ' ') throw new CpimError('malformed', `${name}: a space must follow the colon`);
    i++;
  }
  return { name, params, raw: text.slice(i) };
}

/**
 * Decodes the CPIM escapes (RFC 3862 §3.3): `\"`, `\\` and `\uXXXX` (a surrogate pair as two
 * escapes). Any other backslash stays as written.
 */
export function decodeEscapes(s: string): string {
  if (!s.includes('\\')) return s;
  return s.replace(/\\(u[0-9A-Fa-f]{4}|["\\])/g, (_m, e: string) => (e.length === 1 ? e : String.fromCharCode(parseInt(e.slice(1), 16))));
}

/** A CPIM string: quoted, with `\"`, `\\` and control characters escaped (RFC 3862 §3.3). */
export function quoteCpimString(s: string): string {
  const esc = s.replace(/[\\"]/g, '\\$&').replace(/[\x00-\x1f\x7f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  return `"${esc}"`;
}

/** `[Formal-name] "<" URI ">"` (RFC 3862 §3.3), or a bare URI. */
export function parseAddress(value: string): CpimAddress {
  const v = value.trim();
  const lt = v.lastIndexOf('<');
  if (lt === -1) {
    if (!URI_RE.test(v)) throw new Error(`not an address: ${JSON.stringify(v.slice(0, 80))}`);
    return { displayName: '', uri: v };
  }
  if (!v.endsWith('>')) throw new Error(`an address must end with ">": ${JSON.stringify(v.slice(0, 80))}`);
  const uri = v.slice(lt + 1, -1).trim();
  if (!URI_RE.test(uri)) throw new Error(`not a URI: ${JSON.stringify(uri.slice(0, 80))}`);
  let name = v.slice(0, lt).trim();
  if (name.startsWith('"') && name.endsWith('"') && name.length >= 2) name = name.slice(1, -1);
  return { displayName: name, uri };
}

/** `NS: [Name-prefix SP] "<" URI ">"`: the prefix names the URI's namespace (RFC 3862 §4). */
function parseNamespace(value: string): { prefix: string; uri: string } {
  const m = /^(?:([A-Za-z0-9!#$%&'*+\-^_`|~]+)\s+)?<([^<>\s]+)>$/.exec(value.trim());
  if (m === null) throw new CpimError('malformed', `NS is malformed: ${JSON.stringify(value.slice(0, 80))}`);
  return { prefix: m[1] ?? '', uri: m[2]! };
}

/** An RFC 3339 date-time, or undefined when it is not one. */
export function parseDateTime(s: string): Date | undefined {
  const m = DATE_TIME_RE.exec(s);
  if (m === null) return undefined;
  const [mo, d, h, mi, se] = [Number(m[2]), Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6])];
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60) return undefined;
  const t = Date.parse(s.toUpperCase());
  return Number.isNaN(t) ? undefined : new Date(t);
}

// ------------------------------------------------------------------------- building

/** The focus's own namespace for the header lines it inserts (never a rewrite of the sender's). */
export interface FocusNamespace {
  /** The prefix to write, unless the message already uses it for another URI. */
  readonly prefix: string;
  readonly uri: string;
}

/**
 * The prefix under which the focus writes its headers into `msg`: the configured one, or,
 * when the sender declared that prefix for another URI or wrote a header with it (declared or
 * not: a reader resolves prefixes over the whole block, so `Chat.Type: status` would read as the
 * focus's once the focus declares `Chat`, C-6), the first free `<prefix>N`.
 */
export function focusPrefix(msg: Pick<CpimMessage, 'namespaces' | 'headers'>, ns: FocusNamespace): string {
  const taken = (p: string) => (msg.namespaces.has(p) && msg.namespaces.get(p) !== ns.uri) || msg.headers.some((h) => h.prefix === p);
  let prefix = ns.prefix;
  for (let n = 2; taken(prefix); n++) prefix = `${ns.prefix}${n}`;
  return prefix;
}

/**
 * The lines the focus inserts: `NS: <prefix> <uri>` then `<prefix>.<name>: <value>` for each
 * field, each ended with `lineEnding`. Values are written as they are given (quote strings
 * with quoteCpimString).
 */
export function focusHeaderLines(prefix: string, uri: string, fields: ReadonlyArray<readonly [string, string]>, lineEnding: '\r\n' | '\n' = '\r\n'): string {
  let out = `NS: ${prefix} <${uri}>${lineEnding}`;
  for (const [name, value] of fields) {
    if (!HEADER_NAME_RE.test(`${prefix}.${name}`) || /[\r\n]/.test(value)) throw new Error(`not a CPIM header: ${name}`);
    out += `${prefix}.${name}: ${value}${lineEnding}`;
  }
  return out;
}

/** The body with `lines` inserted before the blank line that ends its CPIM headers; nothing else changes (C-6). */
export function insertHeaderLines(body: Buffer, msg: Pick<CpimMessage, 'headerEnd'>, lines: string): Buffer {
  return Buffer.concat([body.subarray(0, msg.headerEnd), Buffer.from(lines, 'utf8'), body.subarray(msg.headerEnd)]);
}

/** Headers of the focus's namespace in a message (a sender may not write them: they would pass for the focus's). */
export function headersInNamespace(msg: CpimMessage, uri: string): CpimHeader[] {
  return msg.headers.filter((h) => h.namespace === uri || (h.name === 'NS' && h.value.includes(`<${uri}>`)));
}

export interface CpimBuild {
  from: CpimAddress;
  to: CpimAddress[];
  dateTime?: Date;
  subject?: string;
  /** Extra header lines (already formatted, without terminators), after the CPIM headers. */
  extra?: string[];
  contentType: string;
  content: Buffer | string;
}

/** A Message/CPIM body the focus itself sends (status messages, command answers), CRLF throughout. */
export function buildCpim(b: CpimBuild): Buffer {
  const addr = (a: CpimAddress) => (a.displayName !== '' ? `${quoteCpimString(a.displayName)} <${a.uri}>` : `<${a.uri}>`);
  const lines = [`From: ${addr(b.from)}`, ...b.to.map((a) => `To: ${addr(a)}`)];
  if (b.dateTime !== undefined) lines.push(`DateTime: ${formatDateTime(b.dateTime)}`);
  if (b.subject !== undefined) lines.push(`Subject: ${quoteCpimString(b.subject).slice(1, -1)}`);
  lines.push(...(b.extra ?? []));
  const head = `${lines.join('\r\n')}\r\n\r\nContent-Type: ${b.contentType}\r\n\r\n`;
  return Buffer.concat([Buffer.from(head, 'utf8'), typeof b.content === 'string' ? Buffer.from(b.content, 'utf8') : b.content]);
}

/** An RFC 3339 date-time in UTC with milliseconds. */
export function formatDateTime(d: Date): string {
  return d.toISOString();
}
