/**
 * Chat participants for the integration tests: an MSRP test client that AUTHs at the relay,
 * offers SDP the way a chat client does (its relay token then its own URI in a=path), joins a
 * room through the focus's API as a SIP application would, and then speaks Message/CPIM.
 */

import assert from 'node:assert/strict';
import { MsrpTestClient, type ReceivedFrame, type TestRelay } from '../../core/testing/index.ts';
import type { Participant, Room } from '../../plugins/chat/index.ts';
import { INCOMPLETE, msrpMedia, parseSdp, scanCpim, type CpimMessage } from '../../plugins/chat/index.ts';

export const USERS = ['alice', 'bob', 'carol', 'dave', 'erin', 'frank'].map((username) => ({ username, domain: 'example.com', password: 'secret' }));

export interface OfferOptions {
  path: string[];
  /** a=chatroom tokens; null for none (a client that knows nothing of rooms). */
  chatroom?: string | null;
  acceptTypes?: string;
  acceptWrappedTypes?: string | null;
  setup?: string;
}

/** An SDP offer as a chat client writes it. */
export function offerSdp(o: OfferOptions): string {
  const lines = [
    'v=0',
    'o=- 3918217433 3918217433 IN IP4 127.0.0.1',
    's=test client',
    't=0 0',
    'm=message 2855 TCP/MSRP *',
    'c=IN IP4 127.0.0.1',
    `a=path:${o.path.join(' ')}`,
    `a=accept-types:${o.acceptTypes ?? 'message/cpim text/plain'}`,
  ];
  if (o.acceptWrappedTypes !== null) lines.push(`a=accept-wrapped-types:${o.acceptWrappedTypes ?? '*'}`);
  if (o.chatroom !== null) lines.push(`a=chatroom:${o.chatroom ?? 'nickname private-messages'}`);
  lines.push(`a=setup:${o.setup ?? 'active'}`, 'a=sendrecv');
  return `${lines.join('\r\n')}\r\n`;
}

export interface CpimOptions {
  from: string;
  to: string | string[];
  text?: string;
  contentType?: string;
  content?: Buffer | string;
  extra?: string[];
}

/** A Message/CPIM body. */
export function cpimBody(o: CpimOptions): Buffer {
  const tos = Array.isArray(o.to) ? o.to : [o.to];
  const head = [`From: <${o.from}>`, ...tos.map((t) => `To: <${t}>`), 'DateTime: 2024-05-01T10:00:00+02:00', ...(o.extra ?? [])].join('\r\n');
  const content = o.content ?? o.text ?? '';
  return Buffer.concat([Buffer.from(`${head}\r\n\r\nContent-Type: ${o.contentType ?? 'text/plain;charset=UTF-8'}\r\n\r\n`), typeof content === 'string' ? Buffer.from(content) : content]);
}

/** A copy as a participant received it: the frame, its CPIM headers and its content. */
export interface Copy {
  frame: ReceivedFrame;
  cpim: CpimMessage;
  text: string;
  /** A header of the focus's namespace (by local name), if present. */
  focus(name: string): string | undefined;
}

export function readCopy(f: ReceivedFrame): Copy {
  const m = scanCpim(f.body, true);
  assert.notEqual(m, INCOMPLETE);
  const cpim = m as CpimMessage;
  return {
    frame: f,
    cpim,
    text: f.body.subarray(cpim.contentStart).toString('utf8'),
    focus: (name) => cpim.headers.find((h) => h.namespace === 'urn:msrprelay:chat' && h.localName === name)?.value,
  };
}

export class ChatClient {
  readonly sip: string;
  toPath: string[] = [];
  focusUri = '';
  /** The URI of the room joined last: where say() sends by default. */
  room = 'sip:room@example.com';
  participant!: Participant;
  sdpAnswer = '';

  private constructor(
    readonly name: string,
    readonly c: MsrpTestClient,
    readonly usePath: string[],
  ) {
    this.sip = `sip:${name}@example.com`;
  }

  /** Connects and AUTHs as `name` (through its own relay token, the common case). */
  static async connect(t: Pick<TestRelay, 'tcpPort'>, name: string, o: { storeBodies?: boolean; timeoutMs?: number } = {}): Promise<ChatClient> {
    const c = await MsrpTestClient.connect({ port: t.tcpPort, storeBodies: o.storeBodies ?? true, timeoutMs: o.timeoutMs ?? 10_000 });
    const r = await c.auth({ relayUri: 'msrp://example.com;tcp', username: name, password: 'secret' });
    assert.equal(r.status, 200);
    return new ChatClient(name, c, r.usePath);
  }

  /** A client that connects straight to the relay's listener, with no AUTH (a far end, RFC 4976 §3). */
  static async direct(t: TestRelay, name: string): Promise<ChatClient> {
    const c = await MsrpTestClient.connect({ port: t.tcpPort, timeoutMs: 10_000 });
    return new ChatClient(name, c, []);
  }

  offer(o: Omit<OfferOptions, 'path'> = {}): string {
    return offerSdp({ path: [...this.usePath, this.c.uri], ...o });
  }

  /** Joins as a SIP application would with this client's offer; throws what join() throws. */
  async join(room: Room, o: Omit<OfferOptions, 'path'> & { nickname?: string; password?: string; identity?: string } = {}): Promise<this> {
    const { nickname, password, identity, ...offer } = o;
    const r = await room.join({
      sdpOffer: this.offer(offer),
      identity: { uri: identity ?? this.sip },
      ...(nickname !== undefined ? { nickname } : {}),
      ...(password !== undefined ? { password } : {}),
    });
    this.sdpAnswer = r.sdpAnswer;
    this.participant = r.participant;
    this.room = room.uri;
    this.focusUri = msrpMedia(parseSdp(r.sdpAnswer))[0]!.path[0]!;
    this.toPath = [...this.usePath, this.focusUri];
    return this;
  }

  /** Sends a CPIM message (default: text to the room, From this user); resolves with the focus's response status. */
  async say(text: string, o: Partial<CpimOptions> & { room?: string; failureReport?: 'yes' | 'no' | 'partial'; successReport?: 'yes' | 'no'; chunkSize?: number } = {}): Promise<{ status: number; messageId: string }> {
    const body = cpimBody({ from: o.from ?? this.sip, to: o.to ?? o.room ?? this.room, text, ...(o.contentType !== undefined ? { contentType: o.contentType } : {}), ...(o.content !== undefined ? { content: o.content } : {}), ...(o.extra !== undefined ? { extra: o.extra } : {}) });
    const r = await this.c.sendMessage({
      toPath: this.toPath,
      body,
      contentType: 'message/cpim',
      ...(o.failureReport !== undefined ? { failureReport: o.failureReport } : {}),
      ...(o.successReport !== undefined ? { successReport: o.successReport } : {}),
      ...(o.chunkSize !== undefined ? { chunkSize: o.chunkSize } : {}),
    });
    const statuses = r.responses.map((x) => x.status);
    return { status: statuses.find((s) => s !== 200) ?? statuses[0] ?? 0, messageId: r.messageId };
  }

  /** NICKNAME with this Use-Nickname value (already quoted); resolves with the status. */
  async nickname(value: string, extraHeaders: Array<[string, string]> = []): Promise<number> {
    const tid = this.c.sendRequest({ method: 'NICKNAME', toPath: this.toPath, headers: [['Use-Nickname', value], ...extraHeaders] });
    return (await this.c.waitForResponse(tid)).status;
  }

  /** The next copy whose content is `text` (or that matches `pred`). */
  async received(what: string | ((c: Copy) => boolean), timeoutMs = 10_000): Promise<Copy> {
    const pred = typeof what === 'string' ? (c: Copy) => c.text === what : what;
    const f = await this.c.waitFor((fr) => {
      if (fr.kind !== 'request' || fr.method !== 'SEND' || fr.header('Content-Type') !== 'message/cpim' || !fr.hasBody) return false;
      try {
        return pred(readCopy(fr));
      } catch {
        return false;
      }
    }, timeoutMs);
    return readCopy(f);
  }

  /** Every copy received so far whose content is `text`. */
  copies(text: string): Copy[] {
    return this.c.frames
      .filter((f) => f.kind === 'request' && f.method === 'SEND' && f.header('Content-Type') === 'message/cpim' && f.hasBody)
      .map(readCopy)
      .filter((c) => c.text === text);
  }

  close(): Promise<void> {
    return this.c.close();
  }
}

/** Resolves at the next `event` of an emitter. */
export function next<T extends unknown[]>(emitter: { once(e: string, l: (...a: T) => void): unknown }, event: string): Promise<T> {
  return new Promise((resolve) => emitter.once(event, (...a: T) => resolve(a)));
}
