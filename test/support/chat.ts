/**
 * Chat participants for the integration tests: an MSRP test client that AUTHs at the relay,
 * offers SDP the way a chat client does (its relay token then its own URI in a=path), joins a
 * room through the focus's API as a SIP application would, and then speaks Message/CPIM. Also
 * what the tests share around it: a relay with the chat focus (alone, for the tests of one
 * describe block, or as a node of a cluster on the real Redis, with a key prefix of its own), the
 * clients a test opened, and waiting for a condition.
 */

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before } from 'node:test';
import { MsrpTestClient, startTestRelay, type ReceivedFrame, type TestRelay, type TestRelayOptions } from '../../core/testing/index.ts';
import ChatFocus, { type ChatOptionsInput, type Participant, type Room } from '../../plugins/chat/index.ts';
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

export interface ConnectOptions {
  /** Keep the bodies of what arrives (true by default; false for large transfers). */
  storeBodies?: boolean;
  /** How long a wait for a frame lasts, 10 s by default. */
  timeoutMs?: number;
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
  static async connect(t: Pick<TestRelay, 'tcpPort'>, name: string, o: ConnectOptions = {}): Promise<ChatClient> {
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

/** Polls `cond` every 50 ms for up to `ms`; fails with `what` when it never holds. */
export async function until(what: string, cond: () => boolean | Promise<boolean>, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) assert.fail(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The relay's own options around the focus (limits, …): the users and plugins are startChat's. */
export type ChatRelayOptions = Omit<TestRelayOptions, 'users' | 'plugins'>;

/** A relay with a chat focus of these options, and the users of USERS. */
export async function startChat(options: ChatOptionsInput = { store: { driver: 'memory' } }, relay: ChatRelayOptions = {}): Promise<{ t: TestRelay; chat: ChatFocus }> {
  const chat = new ChatFocus(options);
  const t = await startTestRelay({ ...relay, users: USERS, plugins: [chat] });
  return { t, chat };
}

/** The clients a test opened (connect() and join() keep them), closed together at its end. */
export class Clients {
  readonly open: ChatClient[] = [];

  constructor(private readonly o: { timeoutMs?: number } = {}) {}

  /** Connects and AUTHs as `name` at the relay `t`; `o` overrides the timeout and whether bodies are kept. */
  async connect(t: Pick<TestRelay, 'tcpPort'>, name: string, o: ConnectOptions = {}): Promise<ChatClient> {
    const c = await ChatClient.connect(t, name, { ...(this.o.timeoutMs !== undefined ? { timeoutMs: this.o.timeoutMs } : {}), ...o });
    this.open.push(c);
    return c;
  }

  /** Connects as `name` at `t` and joins `room` (throws what join() throws; the client is closed at the end all the same). */
  async join(t: Pick<TestRelay, 'tcpPort'>, name: string, room: Room, o: Parameters<ChatClient['join']>[1] = {}): Promise<ChatClient> {
    return (await this.connect(t, name)).join(room, o);
  }

  async close(): Promise<void> {
    // A client whose relay went first (a node killed) may fail to close: it is gone all the same.
    for (const c of this.open.splice(0)) await c.close().catch(() => undefined);
  }
}

/** A relay with a chat focus that the tests of one describe block share (chatSuite). */
export interface ChatSuite {
  readonly t: TestRelay;
  readonly chat: ChatFocus;
  readonly clients: Clients;
  /** Connects and AUTHs as `name`; closed after the block's tests. */
  client(name: string, o?: ConnectOptions): Promise<ChatClient>;
  /** Connects as `name` and joins `room`; closed after the block's tests. */
  join(name: string, room: Room, o?: Parameters<ChatClient['join']>[1]): Promise<ChatClient>;
}

/**
 * Called in a describe block: startChat(options, o.relay) before its tests, and after them the
 * clients opened through the suite are closed, then the relay. `t` and `chat` are there from
 * the block's first test (or a before hook declared after this call) on.
 */
export function chatSuite(options: ChatOptionsInput = { store: { driver: 'memory' } }, o: { timeoutMs?: number; relay?: ChatRelayOptions } = {}): ChatSuite {
  const clients = new Clients(o.timeoutMs !== undefined ? { timeoutMs: o.timeoutMs } : {});
  let started: { t: TestRelay; chat: ChatFocus } | undefined;
  const get = (): { t: TestRelay; chat: ChatFocus } => started ?? assert.fail('chatSuite: the relay is not started yet (used outside a test?)');
  before(async () => {
    started = await startChat(options, o.relay);
  });
  after(async () => {
    await clients.close();
    await started?.t.close();
  });
  return {
    get t() {
      return get().t;
    },
    get chat() {
      return get().chat;
    },
    clients,
    client: (name, c) => clients.connect(get().t, name, c),
    join: (name, room, j) => clients.join(get().t, name, room, j),
  };
}

// ------------------------------------------------------------------ rooms across nodes (the cluster option)

/** The real Redis of the cluster tests. */
export const REDIS = { host: '127.0.0.1', port: 6379 };

/**
 * Key prefixes of one test file on the real Redis, each new one unique (tests run side by side
 * with others): every key under them is deleted after the file's tests.
 */
export function redisPrefixes(tag: string): () => string {
  const made: string[] = [];
  after(async () => {
    const { Redis } = await import('ioredis');
    const r = new Redis(REDIS.port, REDIS.host);
    for (const p of made) {
      const keys = await r.keys(`${p}*`);
      if (keys.length > 0) await r.del(...keys);
    }
    await r.quit();
  });
  return () => {
    const p = `test:${tag}:${randomBytes(4).toString('hex')}:`;
    made.push(p);
    return p;
  };
}

export interface ClusterNodeOptions {
  prefix: string;
  nodeId: string;
  /** Where Redis is (a CutProxy's port in front of it): REDIS.port by default. */
  port?: number;
  /** cluster.heartbeat (0.2 s) and rosterTtl (1 s), short so that the tests are quick. */
  heartbeat?: number;
  rosterTtl?: number;
  /** Further cluster options (queue, maxMessageSize, …). */
  cluster?: Omit<NonNullable<ChatOptionsInput['cluster']>, 'redis' | 'nodeId'>;
  /** cluster.redis.commandTimeout, 1 s by default. */
  commandTimeout?: number;
  /** The other options of the focus (store: memory by default). */
  options?: Omit<ChatOptionsInput, 'cluster'>;
}

/** A relay whose chat focus is a node of a cluster on Redis. */
export function startClusterNode(o: ClusterNodeOptions): Promise<{ t: TestRelay; chat: ChatFocus }> {
  return startChat({
    store: { driver: 'memory' },
    ...o.options,
    cluster: {
      redis: { url: `redis://${REDIS.host}:${o.port ?? REDIS.port}`, keyPrefix: o.prefix, commandTimeout: o.commandTimeout ?? 1, connectTimeout: 2 },
      nodeId: o.nodeId,
      heartbeat: o.heartbeat ?? 0.2,
      rosterTtl: o.rosterTtl ?? 1,
      ...o.cluster,
    },
  });
}

/** The room's node has `user` (a user key) in its shared roster, on another node. */
export function seesRemote(room: Room, user: string): boolean {
  return room.focus.cluster!.remoteSessions(room).some((s) => s.user === user);
}
