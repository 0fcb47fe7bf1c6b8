/**
 * Files for the chat tests: a Message/CPIM body that wraps a file (Content-Disposition
 * attachment), streamed from a seeded source so that large ones are never held whole, and
 * waiting for a copy to arrive whole at a participant.
 */

import { createHash } from 'node:crypto';
import { hashSource, seededSource, type MsrpTestClient, type ReceivedFrame } from '../../core/testing/index.ts';
import { INCOMPLETE, scanCpim, type CpimMessage } from '../../plugins/chat/index.ts';
import { offerSdp, type ChatClient } from './chat.ts';

export { until } from './chat.ts';

export interface CpimFile {
  /** CPIM octets in all. */
  size: number;
  source: (off: number, len: number) => Buffer;
  /** sha-256 of the content (hex, lower case). */
  contentHash: string;
  contentSize: number;
  /** The content bytes [off, off + len). */
  content: (off: number, len: number) => Buffer;
}

/** A file wrapped in Message/CPIM, with a header of `name` and `type`, `size` content octets from `seed`. */
export function cpimFile(o: { from: string; to: string; size: number; seed: number; name?: string; type?: string; disposition?: string }): CpimFile {
  const disposition = o.disposition ?? `attachment; filename="${o.name ?? 'file.bin'}"`;
  const head = Buffer.from(
    `From: <${o.from}>\r\nTo: <${o.to}>\r\nDateTime: 2024-05-01T10:00:00Z\r\n\r\nContent-Type: ${o.type ?? 'application/octet-stream'}\r\nContent-Disposition: ${disposition}\r\n\r\n`,
  );
  const content = seededSource(o.seed);
  const source = (off: number, len: number): Buffer => {
    const parts: Buffer[] = [];
    if (off < head.length) parts.push(head.subarray(off, Math.min(head.length, off + len)));
    const cStart = Math.max(0, off - head.length);
    const cLen = off + len - head.length - cStart;
    if (cLen > 0) parts.push(content(cStart, cLen));
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
  };
  return { size: head.length + o.size, source, contentHash: hashSource(o.size, content), contentSize: o.size, content };
}

export function sha256(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

/** A copy as it arrived whole: its first frame, the whole body, and its CPIM (undefined for a bare file). */
export interface WholeCopy {
  first: ReceivedFrame;
  body: Buffer;
  cpim: CpimMessage | undefined;
  /** The content: the body past the CPIM and MIME headers (the body itself when bare). */
  content: Buffer;
  focus(name: string): string | undefined;
}

/** The first SEND whose first chunk matches `pred`, once it is whole. */
export async function wholeCopy(c: MsrpTestClient, pred: (first: ReceivedFrame, cpim: CpimMessage | undefined) => boolean, timeoutMs = 60_000): Promise<WholeCopy> {
  const first = await c.waitFor((f) => {
    if (f.kind !== 'request' || f.method !== 'SEND' || !f.hasBody) return false;
    if ((f.header('Byte-Range') ?? '1-').split('-')[0] !== '1') return false;
    return pred(f, cpimOf(f));
  }, timeoutMs);
  const whole = await c.waitForMessage(first.header('Message-ID')!, timeoutMs);
  if (!whole.complete || whole.body === undefined) throw new Error('the copy did not arrive whole');
  const cpim = first.header('Content-Type') === 'message/cpim' ? (scanCpim(whole.body, true) as CpimMessage) : undefined;
  return {
    first,
    body: whole.body,
    cpim,
    content: cpim !== undefined ? whole.body.subarray(cpim.contentStart) : whole.body,
    focus: (name) => cpim?.headers.find((h) => h.namespace === 'urn:msrprelay:chat' && h.localName === name)?.value,
  };
}

function cpimOf(f: ReceivedFrame): CpimMessage | undefined {
  if (f.header('Content-Type') !== 'message/cpim') return undefined;
  try {
    const m = scanCpim(f.body, false);
    return m === INCOMPLETE ? undefined : m;
  } catch {
    return undefined;
  }
}

/** An RFC 5547 pull offer (§8.2: a=file-selector, a=recvonly) of the client, for a kept file. */
export function pullOffer(c: ChatClient, selector: string, acceptTypes = '*'): string {
  return offerSdp({ path: [...c.usePath, c.c.uri], chatroom: null, acceptTypes, acceptWrappedTypes: null })
    .replace('a=sendrecv', 'a=recvonly')
    .replace('a=setup:active', `a=setup:active\r\na=file-selector:${selector}\r\na=file-transfer-id:pull-1`);
}

/** An RFC 5547 push offer (§8.1: a=file-selector, a=sendonly) of the client, to send a file to the room. */
export function pushOffer(c: ChatClient, selector: string, acceptTypes: string, transferId = 'push-1'): string {
  return offerSdp({ path: [...c.usePath, c.c.uri], chatroom: null, acceptTypes, acceptWrappedTypes: null })
    .replace('a=sendrecv', 'a=sendonly')
    .replace('a=setup:active', `a=setup:active\r\na=file-selector:${selector}\r\na=file-transfer-id:${transferId}`);
}
