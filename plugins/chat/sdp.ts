/**
 * SDP offer/answer for MSRP media (RFC 4975 §8, RFC 3264), as a chat focus needs it: read the
 * MSRP m-lines of an offer (a=path, accept-types, accept-wrapped-types, max-size, a=setup of
 * RFC 6135, a=chatroom of RFC 7701 §8, a=file-selector of RFC 5547) and write an answer that
 * accepts one of them and turns the others down with port 0.
 *
 * The SIP stack is the application's; this file only reads and writes SDP text. Parsing is
 * lenient where SIP clients differ (LF or CRLF, a trailing blank line, attributes the focus
 * does not know) and strict where a wrong reading would misroute (a=path URIs must parse).
 */

import { tryParseUri } from '../../core/protocol/index.ts';

export class SdpError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SdpError';
  }
}

/** One `a=` line: the name and the value after the first colon (undefined for a flag such as a=sendonly). */
export type SdpAttribute = readonly [name: string, value: string | undefined];

export interface SdpMedia {
  /** Position among the m-lines (0-based). */
  readonly index: number;
  /** `message`, `audio`, … */
  readonly type: string;
  readonly port: number;
  /** The transport protocol as written (`TCP/MSRP`, `TCP/TLS/MSRP`, `RTP/AVP`). */
  readonly proto: string;
  readonly formats: readonly string[];
  /** The c= address of this media (or of the session), if any. */
  readonly connection: string | undefined;
  readonly attributes: readonly SdpAttribute[];
}

export interface Sdp {
  /** The o= line's value. */
  readonly origin: string;
  readonly sessionName: string;
  readonly connection: string | undefined;
  /** Session-level attributes. */
  readonly attributes: readonly SdpAttribute[];
  readonly media: readonly SdpMedia[];
}

/** Reads an SDP body (RFC 8866 §5): v= first, then session lines, then media sections. */
export function parseSdp(text: string): Sdp {
  const lines = text.split(/\r?\n/).filter((l, i, all) => l !== '' || i < all.length - 1);
  if (lines[0] !== 'v=0') throw new SdpError('an SDP body starts with v=0');
  let origin = '';
  let sessionName = '';
  let connection: string | undefined;
  const attributes: SdpAttribute[] = [];
  const media: Array<{ type: string; port: number; proto: string; formats: string[]; connection: string | undefined; attributes: SdpAttribute[] }> = [];
  for (const line of lines.slice(1)) {
    if (line === '') continue;
    if (!/^[a-z]=/.test(line)) throw new SdpError(`not an SDP line: ${JSON.stringify(line.slice(0, 60))}`);
    const key = line[0]!;
    const value = line.slice(2);
    const m = media[media.length - 1];
    switch (key) {
      case 'o':
        origin = value;
        break;
      case 's':
        sessionName = value;
        break;
      case 'c': {
        const addr = value.split(' ')[2];
        if (m !== undefined) m.connection = addr;
        else connection = addr;
        break;
      }
      case 'm': {
        const parts = value.split(' ').filter((p) => p !== '');
        if (parts.length < 3) throw new SdpError(`m-line too short: ${JSON.stringify(value)}`);
        const port = Number(parts[1]!.split('/')[0]);
        if (!Number.isInteger(port) || port < 0 || port > 65535) throw new SdpError(`m-line port: ${JSON.stringify(parts[1])}`);
        media.push({ type: parts[0]!, port, proto: parts[2]!, formats: parts.slice(3), connection: undefined, attributes: [] });
        break;
      }
      case 'a': {
        const colon = value.indexOf(':');
        const attr: SdpAttribute = colon === -1 ? [value, undefined] : [value.slice(0, colon), value.slice(colon + 1)];
        (m !== undefined ? m.attributes : attributes).push(attr);
        break;
      }
      default:
        break;
    }
  }
  return {
    origin,
    sessionName,
    connection,
    attributes,
    media: media.map((x, index) => ({ index, ...x, connection: x.connection ?? connection })),
  };
}

/** The value of a media attribute (undefined when absent); `session` falls back to session level (a=setup, RFC 4145 §4). */
export function attribute(sdp: Sdp, media: SdpMedia, name: string, session = false): string | undefined {
  const lower = name.toLowerCase();
  const hit = media.attributes.find(([n]) => n.toLowerCase() === lower) ?? (session ? sdp.attributes.find(([n]) => n.toLowerCase() === lower) : undefined);
  return hit === undefined ? undefined : (hit[1] ?? '');
}

// ----------------------------------------------------------------------- MSRP media

export type Setup = 'active' | 'passive' | 'actpass' | 'holdconn';
export type Direction = 'sendrecv' | 'sendonly' | 'recvonly' | 'inactive';

/** RFC 5547 §6: a=file-selector. */
export interface FileSelector {
  readonly name?: string;
  readonly type?: string;
  readonly size?: number;
  readonly hash?: { readonly algorithm: string; readonly value: string };
}

/** What an MSRP m-line of an offer says (RFC 4975 §8). */
export interface MsrpMedia {
  readonly index: number;
  readonly proto: 'TCP/MSRP' | 'TCP/TLS/MSRP';
  readonly port: number;
  /** a=path: the URIs in order, the first hop first, the offerer's own URI last (4975 §8.2). */
  readonly path: readonly string[];
  /** a=accept-types, lower case. */
  readonly acceptTypes: readonly string[];
  /** a=accept-wrapped-types, lower case; undefined when absent. */
  readonly acceptWrappedTypes: readonly string[] | undefined;
  readonly maxSize: number | undefined;
  /** a=setup (RFC 6135, RFC 4145), media or session level; undefined when absent. */
  readonly setup: Setup | undefined;
  readonly direction: Direction;
  /** a=chatroom tokens, lower case (RFC 7701 §8; C-15); undefined when there is no a=chatroom. */
  readonly chatroom: readonly string[] | undefined;
  readonly fileSelector: FileSelector | undefined;
  readonly fileTransferId: string | undefined;
}

const DIRECTIONS: readonly Direction[] = ['sendrecv', 'sendonly', 'recvonly', 'inactive'];

/** The MSRP m-lines of an SDP (m=message with TCP/MSRP or TCP/TLS/MSRP). */
export function msrpMedia(sdp: Sdp): MsrpMedia[] {
  const out: MsrpMedia[] = [];
  for (const m of sdp.media) {
    const proto = m.proto.toUpperCase();
    if (m.type.toLowerCase() !== 'message' || (proto !== 'TCP/MSRP' && proto !== 'TCP/TLS/MSRP')) continue;
    const pathValue = attribute(sdp, m, 'path');
    if (pathValue === undefined || pathValue.trim() === '') throw new SdpError(`m-line ${m.index}: an MSRP m-line has an a=path (RFC 4975 §8.2)`);
    const path = pathValue.trim().split(/\s+/);
    for (const u of path) if (tryParseUri(u) === undefined) throw new SdpError(`m-line ${m.index}: a=path holds ${JSON.stringify(u.slice(0, 80))}, not an MSRP URI`);
    const types = (name: string) => {
      const v = attribute(sdp, m, name);
      return v === undefined ? undefined : v.trim().split(/\s+/).filter((t) => t !== '').map((t) => t.toLowerCase());
    };
    const setupValue = attribute(sdp, m, 'setup', true)?.trim().toLowerCase();
    const setup = setupValue === 'active' || setupValue === 'passive' || setupValue === 'actpass' || setupValue === 'holdconn' ? setupValue : undefined;
    const direction = [...m.attributes, ...sdp.attributes].map(([n]) => n.toLowerCase()).find((n): n is Direction => (DIRECTIONS as readonly string[]).includes(n)) ?? 'sendrecv';
    const chat = attribute(sdp, m, 'chatroom');
    const fs = attribute(sdp, m, 'file-selector');
    const maxSize = attribute(sdp, m, 'max-size');
    out.push({
      index: m.index,
      proto,
      port: m.port,
      path,
      acceptTypes: types('accept-types') ?? [],
      acceptWrappedTypes: types('accept-wrapped-types'),
      maxSize: maxSize !== undefined && /^\d+$/.test(maxSize.trim()) ? Number(maxSize.trim()) : undefined,
      setup,
      direction,
      chatroom: chat === undefined ? undefined : chat.trim().split(/\s+/).filter((t) => t !== '').map((t) => t.toLowerCase()),
      fileSelector: fs === undefined ? undefined : parseFileSelector(fs),
      fileTransferId: attribute(sdp, m, 'file-transfer-id')?.trim(),
    });
  }
  return out;
}

/**
 * RFC 5547 §6: `file-selector = "file-selector" [":" selector *(SP selector)]` with
 * `name:"…"`, `type:type/subtype*(;param)`, `size:digits`, `hash:algorithm:value`.
 */
export function parseFileSelector(value: string): FileSelector {
  const out: { name?: string; type?: string; size?: number; hash?: { algorithm: string; value: string } } = {};
  let i = 0;
  const s = value.trim();
  while (i < s.length) {
    while (s[i] === ' ') i++;
    if (i >= s.length) break;
    const colon = s.indexOf(':', i);
    if (colon === -1) throw new SdpError(`a=file-selector: ${JSON.stringify(s.slice(i, i + 40))} is not a selector`);
    const key = s.slice(i, colon).toLowerCase();
    i = colon + 1;
    // A value runs to the next space outside double quotes (file names and type parameters may be quoted).
    let v = '';
    let quoted = false;
    for (; i < s.length && (quoted || s[i] !== ' '); i++) {
      if (s[i] === '"') quoted = !quoted;
      v += s[i];
    }
    if (quoted) throw new SdpError('a=file-selector: an unterminated quoted string');
    switch (key) {
      case 'name':
        if (!v.startsWith('"') || !v.endsWith('"') || v.length < 2) throw new SdpError('a=file-selector: name is a quoted string');
        out.name = decodeURIComponentSafe(v.slice(1, -1));
        break;
      case 'type':
        out.type = v;
        break;
      case 'size':
        if (!/^\d+$/.test(v)) throw new SdpError(`a=file-selector: size ${JSON.stringify(v)} is not a number`);
        out.size = Number(v);
        break;
      case 'hash': {
        const c = v.indexOf(':');
        if (c <= 0) throw new SdpError('a=file-selector: hash is algorithm:value');
        out.hash = { algorithm: v.slice(0, c).toLowerCase(), value: v.slice(c + 1).toUpperCase() };
        break;
      }
      default:
        break;
    }
  }
  return out;
}

/** RFC 5547 §6: a file name may be percent-encoded (its `"` and `%` are). */
function decodeURIComponentSafe(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/** RFC 4975 §8.6 media types: `*`, `type/*`, `type/subtype`, case-insensitive, parameters ignored. */
export function mediaTypeMatches(accepted: readonly string[], type: string): boolean {
  const t = type.split(';')[0]!.trim().toLowerCase();
  const major = t.split('/')[0]!;
  return accepted.some((a) => {
    const x = a.split(';')[0]!.trim().toLowerCase();
    return x === '*' || x === t || x === `${major}/*`;
  });
}

/**
 * The media types a participant takes inside a Message/CPIM wrapper (C-7): its
 * accept-wrapped-types, and the types of its accept-types other than message/cpim (a type an
 * endpoint takes bare it takes wrapped too). P: when that leaves nothing (an offer with
 * `accept-types:message/cpim` alone and no accept-wrapped-types), every type, as clients that
 * offer so do send and show text.
 */
export function wrappedTypesOf(m: Pick<MsrpMedia, 'acceptTypes' | 'acceptWrappedTypes'>): string[] {
  const bare = m.acceptTypes.filter((t) => t !== 'message/cpim');
  const all = [...(m.acceptWrappedTypes ?? []), ...bare];
  return all.length === 0 ? ['*'] : all;
}

/** RFC 6135 §4.2, RFC 4145 §4.1: the answer's a=setup. The focus never dials, so it is passive unless the offerer is. */
export function answerSetup(offer: Setup | undefined): 'active' | 'passive' {
  return offer === 'passive' ? 'active' : 'passive';
}

/** RFC 3264 §6.1: the answer's direction for an offered one. */
export function answerDirection(offer: Direction): Direction {
  return offer === 'sendonly' ? 'recvonly' : offer === 'recvonly' ? 'sendonly' : offer;
}

export interface AnswerOptions {
  readonly offer: Sdp;
  /** The m-line accepted (its index); every other m-line is answered with port 0. */
  readonly accept: number;
  /** a=path of the answer: the focus's URI for this participant (4975 §8.2). */
  readonly path: readonly string[];
  /** c= and o= address (an IP or a host name) and the m-line port: those of the focus's URI (4975 §8.1). */
  readonly address: string;
  readonly port: number;
  readonly acceptTypes: readonly string[];
  readonly acceptWrappedTypes?: readonly string[];
  readonly maxSize?: number;
  /** a=chatroom tokens (C-15); none when undefined. */
  readonly chatroom?: readonly string[];
  /** o= session id and version (default: the current time in seconds). */
  readonly sessionId?: string;
  readonly sessionName?: string;
  /** Further media attributes, written as `a=<value>`. */
  readonly extra?: readonly string[];
}

/** An SDP answer (CRLF line ends) that accepts one MSRP m-line of the offer. */
export function buildAnswer(o: AnswerOptions): string {
  const msrp = msrpMedia(o.offer).find((m) => m.index === o.accept);
  if (msrp === undefined) throw new Error(`buildAnswer(): m-line ${o.accept} is not an MSRP m-line of the offer`);
  const ipv6 = o.address.includes(':');
  const addrType = ipv6 ? 'IP6' : 'IP4';
  const id = o.sessionId ?? String(Math.floor(Date.now() / 1000));
  // RFC 4566 §5.3: s= is one line of text, never empty. A name from a room subject may hold line breaks and controls: each becomes a space.
  const name = (o.sessionName ?? '').replace(/[\x00-\x1f\x7f]+/g, ' ').trim();
  const lines = ['v=0', `o=- ${id} ${id} IN ${addrType} ${o.address}`, `s=${name !== '' ? name : '-'}`, `c=IN ${addrType} ${o.address}`, 't=0 0'];
  for (const m of o.offer.media) {
    if (m.index !== o.accept) {
      // RFC 3264 §6: a declined stream keeps its m-line with port 0.
      lines.push(`m=${m.type} 0 ${m.proto} ${m.formats.join(' ') || '*'}`);
      continue;
    }
    lines.push(`m=message ${o.port} ${msrp.proto} *`);
    lines.push(`a=path:${o.path.join(' ')}`);
    lines.push(`a=accept-types:${o.acceptTypes.join(' ')}`);
    if (o.acceptWrappedTypes !== undefined && o.acceptWrappedTypes.length > 0) lines.push(`a=accept-wrapped-types:${o.acceptWrappedTypes.join(' ')}`);
    if (o.maxSize !== undefined) lines.push(`a=max-size:${o.maxSize}`);
    lines.push(`a=setup:${answerSetup(msrp.setup)}`);
    if (o.chatroom !== undefined) lines.push(o.chatroom.length > 0 ? `a=chatroom:${o.chatroom.join(' ')}` : 'a=chatroom');
    for (const e of o.extra ?? []) lines.push(`a=${e}`);
    lines.push(`a=${answerDirection(msrp.direction)}`);
  }
  return `${lines.join('\r\n')}\r\n`;
}
