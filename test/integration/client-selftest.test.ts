/**
 * The MSRP test client (core/testing/client.ts) against tiny in-test peers, not the relay:
 * an echo endpoint (answers 200 to SENDs and streams each SEND back with the same body),
 * its TLS twin, and an AUTH responder doing RFC 4976 Digest with the digest module.
 * Also covers the certificate helpers of core/transport/self-signed.ts.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import tls from 'node:tls';
import { X509Certificate, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Framer, type FrameHead, type RawHeader } from '../../core/protocol/framer.ts';
import { formatEndLine, formatRequestHead, formatResponse, getHeader, newTransactionId } from '../../core/protocol/message.ts';
import {
  computeHa1,
  formatAuthenticationInfo,
  formatChallenge,
  newOpaque,
  NonceManager,
  parseAuthorization,
  verifyDigest,
} from '../../core/protocol/digest.ts';
import { MsrpTestClient, hashSource, seededSource, sha256Hex, type ReceivedFrame } from '../../core/testing/client.ts';
import { ensureSelfSignedCert, makeTestCertificates, type TestCertificates } from '../../core/transport/self-signed.ts';

// ---------------------------------------------------------------------------
// In-test peers
// ---------------------------------------------------------------------------

const pathOf = (headers: readonly RawHeader[], name: string): string[] =>
  (getHeader(headers, name) ?? '').split(/\s+/).filter((s) => s !== '');

/** What a peer saw: complete requests (head + body length) and responses. */
interface Seen {
  head: FrameHead;
  bodyLength: number;
}

interface Peer {
  port: number;
  /** The peer's own MSRP URI (To-Path of what the client sends it). */
  uri: string;
  requests: Seen[];
  responses: FrameHead[];
  sockets: Set<net.Socket>;
  /** Resolves with the next response the peer receives. */
  nextResponse(): Promise<FrameHead>;
  close(): Promise<void>;
}

/**
 * Echo endpoint: answers 200 to SENDs whose Failure-Report is yes/absent and streams every
 * SEND back (new tid, same Message-ID, Byte-Range, report headers, Content-Type and body,
 * same flag), with To-Path = the request's first From-Path URI and From-Path = its To-Path[0].
 */
function onEchoConnection(peer: Peer, socket: net.Socket): void {
  peer.sockets.add(socket);
  socket.on('close', () => peer.sockets.delete(socket));
  socket.on('error', () => {});
  socket.setNoDelay(true);
  let head: FrameHead | undefined;
  let echoTid: string | undefined;
  let bodyLength = 0;
  const waiting = peerWaiters.get(peer)!;
  const write = (d: Buffer | string): void => {
    if (!socket.write(d)) {
      socket.pause();
      socket.once('drain', () => socket.resume());
    }
  };
  const framer = new Framer({
    onHead(h) {
      head = h;
      bodyLength = 0;
      echoTid = undefined;
      if (h.kind === 'response') {
        peer.responses.push(h);
        const w = waiting.shift();
        if (w !== undefined) w(h);
        return;
      }
      if (h.method === 'SEND') {
        echoTid = newTransactionId();
        write(
          formatRequestHead({
            tid: echoTid,
            method: 'SEND',
            toPath: pathOf(h.headers, 'From-Path').slice(0, 1),
            fromPath: pathOf(h.headers, 'To-Path').slice(0, 1),
            headers: h.headers.slice(2),
            hasBody: h.hasBody,
          }),
        );
      }
    },
    onBody(data) {
      bodyLength += data.length;
      if (echoTid !== undefined) write(data);
    },
    onEnd(flag) {
      const h = head;
      if (h === undefined || h.kind === 'response') return;
      peer.requests.push({ head: h, bodyLength });
      if (echoTid !== undefined) write(formatEndLine(echoTid, flag, h.hasBody));
      const fr = (getHeader(h.headers, 'Failure-Report') ?? 'yes').toLowerCase();
      if (h.method === 'SEND' && fr === 'yes') {
        write(formatResponse({ tid: h.tid, status: 200, toPath: pathOf(h.headers, 'From-Path').slice(0, 1), fromPath: pathOf(h.headers, 'To-Path').slice(0, 1) }));
      }
    },
  });
  socket.on('data', (d: Buffer) => {
    try {
      framer.push(d);
    } catch {
      socket.destroy();
    }
  });
}

const peerWaiters = new WeakMap<Peer, Array<(h: FrameHead) => void>>();

function makePeer(server: net.Server, scheme: 'msrp' | 'msrps'): Promise<Peer> {
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as net.AddressInfo).port;
      const waiters: Array<(h: FrameHead) => void> = [];
      const peer: Peer = {
        port,
        uri: `${scheme}://127.0.0.1:${port}/echo${randomBytes(4).toString('hex')};tcp`,
        requests: [],
        responses: [],
        sockets: new Set(),
        nextResponse: () => new Promise<FrameHead>((r) => waiters.push(r)),
        close: () =>
          new Promise<void>((r) => {
            for (const s of peer.sockets) s.destroy();
            server.close(() => r());
          }),
      };
      peerWaiters.set(peer, waiters);
      resolve(peer);
    });
  });
}

async function startEchoPeer(): Promise<Peer> {
  let peer: Peer | undefined;
  const server = net.createServer((s) => onEchoConnection(peer!, s));
  peer = await makePeer(server, 'msrp');
  return peer;
}

async function startTlsEchoPeer(options: tls.TlsOptions, onSecure?: (s: tls.TLSSocket) => void): Promise<Peer> {
  let peer: Peer | undefined;
  const server = tls.createServer(options, (s) => {
    onSecure?.(s);
    onEchoConnection(peer!, s);
  });
  peer = await makePeer(server, 'msrps');
  return peer;
}

interface AuthPeer {
  port: number;
  relayUri: string;
  /** Authorization header values received, in order. */
  authorizations: string[];
  /** Expires header values received, in order ('' when absent). */
  expires: string[];
  /** Send a wrong rspauth in the next 200s. */
  corruptRspauth: boolean;
  close(): Promise<void>;
}

/**
 * An AUTH responder (RFC 4976 §5.1, §9.1): 401 with a Digest challenge for AUTH without
 * credentials; verifyDigest on credentials; 200 with Use-Path, Expires and
 * Authentication-Info on success, 401 with a fresh challenge otherwise.
 */
async function startAuthPeer(users: Record<string, string>): Promise<AuthPeer> {
  const realm = 'example.com';
  const opaque = newOpaque();
  const nonces = new NonceManager({ lifetimeMs: 15_000 });
  const sockets = new Set<net.Socket>();
  let state: AuthPeer | undefined;
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    let head: FrameHead | undefined;
    const framer = new Framer({
      onHead(h) {
        head = h;
      },
      onBody() {},
      onEnd() {
        const h = head;
        if (h === undefined || h.kind !== 'request' || h.method !== 'AUTH' || state === undefined) return;
        const toPath = pathOf(h.headers, 'To-Path');
        const fromPath = pathOf(h.headers, 'From-Path');
        const digestUri = toPath[toPath.length - 1]!;
        const reply = (status: number, headers: RawHeader[]): void => {
          socket.write(formatResponse({ tid: h.tid, status, toPath: fromPath, fromPath: [digestUri], headers }));
        };
        const challenge = (): void => reply(401, [['WWW-Authenticate', formatChallenge({ realm, nonce: nonces.issue(), opaque })]]);
        state.expires.push(getHeader(h.headers, 'Expires') ?? '');
        const authz = getHeader(h.headers, 'Authorization');
        if (authz === undefined) {
          challenge();
          return;
        }
        state.authorizations.push(authz);
        let credentials;
        try {
          credentials = parseAuthorization(authz);
        } catch {
          reply(400, []);
          return;
        }
        const password = users[credentials.username] ?? randomBytes(16).toString('hex');
        const verdict = verifyDigest({ credentials, expectedRealm: realm, expectedOpaque: opaque, digestUri, ha1: computeHa1(credentials.username, realm, password), nonces });
        if (!verdict.ok) {
          if (verdict.reason === 'uri-mismatch') reply(400, []);
          else challenge();
          return;
        }
        const rspauth = state.corruptRspauth ? '0'.repeat(32) : verdict.rspauth;
        reply(200, [
          ['Use-Path', `msrp://relay.test:${state.port}/${randomBytes(12).toString('base64url')};tcp`],
          ['Expires', getHeader(h.headers, 'Expires') ?? '600'],
          ['Authentication-Info', formatAuthenticationInfo({ rspauth, cnonce: credentials.cnonce, nc: credentials.nc })],
        ]);
      },
    });
    socket.on('data', (d: Buffer) => framer.push(d));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as net.AddressInfo).port;
  state = {
    port,
    relayUri: `msrp://127.0.0.1:${port};tcp`,
    authorizations: [],
    expires: [],
    corruptRspauth: false,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
  return state;
}

const isResponseTo = (tid: string) => (f: ReceivedFrame): boolean => f.kind === 'response' && f.tid === tid;

// ---------------------------------------------------------------------------
// Client against the echo peer (TCP)
// ---------------------------------------------------------------------------

describe('MsrpTestClient against an echo peer', () => {
  let peer: Peer;
  const clients: MsrpTestClient[] = [];
  const connect = async (extra: { autoRespond?: boolean; storeBodies?: boolean; timeoutMs?: number } = {}): Promise<MsrpTestClient> => {
    const c = await MsrpTestClient.connect({ port: peer.port, ...extra });
    clients.push(c);
    return c;
  };

  before(async () => {
    peer = await startEchoPeer();
  });
  after(async () => {
    for (const c of clients) c.destroy();
    await peer.close();
  });

  it('has a default msrp URI with the local port and a random session-id', async () => {
    const c = await connect();
    assert.match(c.uri, new RegExp(`^msrp://127\\.0\\.0\\.1:${c.socket.localPort}/[0-9a-f]{16};tcp$`));
    const c2 = await connect();
    assert.notEqual(c.uri, c2.uri);
  });

  it('sendMessage round trip of a text message: 200 addressed back to us, echo reassembled', async () => {
    const c = await connect();
    const text = 'hello, echo ✓';
    const { messageId, responses } = await c.sendMessage({ toPath: [peer.uri], body: text });
    assert.equal(responses.length, 1);
    assert.equal(responses[0]!.status, 200);
    assert.deepEqual(responses[0]!.toPath, [c.uri]);
    const m = await c.waitForMessage(messageId);
    assert.equal(m.body?.toString('utf8'), text);
    assert.equal(m.bytes, Buffer.byteLength(text));
    assert.equal(m.chunks, 1);
    assert.equal(m.sha256, sha256Hex(text));
    const echoed = c.frames.find((f) => f.method === 'SEND' && f.header('Message-ID') === messageId)!;
    assert.equal(echoed.header('Content-Type'), 'text/plain');
    assert.equal(echoed.header('Byte-Range'), `1-${Buffer.byteLength(text)}/${Buffer.byteLength(text)}`);
    assert.deepEqual(echoed.toPath, [c.uri]);
    assert.deepEqual(echoed.fromPath, [peer.uri]);
    // The client's automatic 200 to the echoed SEND: To-Path = previous hop, From-Path = its own URI.
    const ack = peer.responses.find((r) => r.tid === echoed.tid) ?? (await peer.nextResponse());
    assert.equal(ack.status, 200);
    assert.deepEqual(pathOf(ack.headers, 'To-Path'), [peer.uri]);
    assert.deepEqual(pathOf(ack.headers, 'From-Path'), [c.uri]);
  });

  it('sendMessage round trip of a binary body with NUL, CR/LF and end-line look-alikes', async () => {
    const c = await connect();
    const body = Buffer.concat([
      Buffer.from([0, 1, 2, 0, 255, 0x0d, 0x0a]),
      Buffer.from('-------\r\n-------abcd1234$\r\n-------', 'latin1'),
      Buffer.alloc(100, 0),
      Buffer.from('\r\n-------', 'latin1'),
      randomBytes(3000),
      Buffer.from('\r\n', 'latin1'),
    ]);
    const { messageId, responses } = await c.sendMessage({ toPath: [peer.uri], body, contentType: 'application/octet-stream' });
    assert.equal(responses[0]!.status, 200);
    const m = await c.waitForMessage(messageId);
    assert.ok(m.body !== undefined && m.body.equals(body));
    assert.equal(m.sha256, sha256Hex(body));
    const sent = peer.requests.find((r) => getHeader(r.head.headers, 'Message-ID') === messageId)!;
    assert.equal(sent.bodyLength, body.length);
    assert.equal(getHeader(sent.head.headers, 'Content-Type'), 'application/octet-stream');
  });

  it('sendMessage in 3 chunks: + + $, exact Byte-Ranges, one 200 per chunk, reassembled', async () => {
    const c = await connect();
    const body = randomBytes(10_000);
    const { messageId, responses } = await c.sendMessage({ toPath: [peer.uri], body, chunkSize: 3334, successReport: 'no', failureReport: 'yes', extraHeaders: [['X-Test', 'three']] });
    assert.deepEqual(responses.map((r) => r.status), [200, 200, 200]);
    const got = peer.requests.filter((r) => getHeader(r.head.headers, 'Message-ID') === messageId);
    assert.deepEqual(got.map((r) => getHeader(r.head.headers, 'Byte-Range')), ['1-3334/10000', '3335-6668/10000', '6669-10000/10000']);
    // Header order: To-Path, From-Path, Message-ID, Byte-Range, reports, extras, Content-Type last.
    assert.deepEqual(got[0]!.head.headers.map((h) => h[0]), ['To-Path', 'From-Path', 'Message-ID', 'Byte-Range', 'Success-Report', 'Failure-Report', 'X-Test', 'Content-Type']);
    const m = await c.waitForMessage(messageId);
    assert.equal(m.chunks, 3);
    assert.ok(m.body?.equals(body));
    const flags = c.frames.filter((f) => f.header('Message-ID') === messageId).map((f) => f.flag);
    assert.deepEqual(flags, ['+', '+', '$']);
  });

  it('sendMessage with starEnd writes start-*/total for chunks over 2048 bytes only', async () => {
    const c = await connect();
    const body = randomBytes(5000);
    const { messageId } = await c.sendMessage({ toPath: [peer.uri], body, chunkSize: 2500, starEnd: true });
    const small = await c.sendMessage({ toPath: [peer.uri], body: 'tiny', starEnd: true });
    await c.waitForMessage(small.messageId);
    const ranges = peer.requests.filter((r) => getHeader(r.head.headers, 'Message-ID') === messageId).map((r) => getHeader(r.head.headers, 'Byte-Range'));
    assert.deepEqual(ranges, ['1-*/5000', '2501-*/5000']);
    const tiny = peer.requests.find((r) => getHeader(r.head.headers, 'Message-ID') === small.messageId)!;
    assert.equal(getHeader(tiny.head.headers, 'Byte-Range'), '1-4/4');
    assert.ok((await c.waitForMessage(messageId)).body?.equals(body));
  });

  it('an empty message is one SEND with Byte-Range 1-0/0', async () => {
    const c = await connect();
    const { messageId, responses } = await c.sendMessage({ toPath: [peer.uri], body: '' });
    assert.equal(responses[0]!.status, 200);
    const m = await c.waitForMessage(messageId);
    assert.equal(m.bytes, 0);
    assert.equal(m.body?.length, 0);
    const sent = peer.requests.find((r) => getHeader(r.head.headers, 'Message-ID') === messageId)!;
    assert.equal(getHeader(sent.head.headers, 'Byte-Range'), '1-0/0');
    assert.equal(sent.head.hasBody, true);
  });

  it('streamMessage of 20 MiB with storeBodies false: back-pressure, hash-only reassembly', async () => {
    const c = await connect({ storeBodies: false, timeoutMs: 60_000 });
    const size = 20 * 1024 * 1024;
    const source = seededSource(42);
    const expected = hashSource(size, source);
    const sent = await c.streamMessage({ toPath: [peer.uri], size, source });
    assert.equal(sent.sha256, expected);
    assert.equal(sent.responses[0]!.status, 200);
    const m = await c.waitForMessage(sent.messageId);
    assert.equal(m.bytes, size);
    assert.equal(m.sha256, expected);
    assert.equal(m.chunks, 1);
    assert.equal(m.body, undefined);
    const echoed = c.frames.find((f) => f.header('Message-ID') === sent.messageId)!;
    assert.equal(echoed.body.length, 0);
    assert.equal(echoed.bodyLength, size);
    const got = peer.requests.find((r) => getHeader(r.head.headers, 'Message-ID') === sent.messageId)!;
    assert.equal(got.bodyLength, size);
    assert.equal(getHeader(got.head.headers, 'Content-Type'), 'application/octet-stream');
  });

  it('streamMessage in several interruptible chunks', async () => {
    const c = await connect({ storeBodies: false, timeoutMs: 30_000 });
    const size = 3 * 1024 * 1024 + 17;
    const source = seededSource(7);
    const sent = await c.streamMessage({ toPath: [peer.uri], size, source, chunkSize: 1024 * 1024, starEnd: true, pieceSize: 10_000 });
    assert.equal(sent.responses.length, 4);
    const m = await c.waitForMessage(sent.messageId);
    assert.equal(m.chunks, 4);
    assert.equal(m.sha256, hashSource(size, source));
    const ranges = peer.requests.filter((r) => getHeader(r.head.headers, 'Message-ID') === sent.messageId).map((r) => getHeader(r.head.headers, 'Byte-Range'));
    assert.deepEqual(ranges, [`1-*/${size}`, `1048577-*/${size}`, `2097153-*/${size}`, `3145729-3145745/${size}`]);
  });

  it('seededSource gives the same bytes whatever the slicing', () => {
    const s = seededSource(3);
    const whole = s(0, 1001);
    assert.ok(Buffer.concat([s(0, 3), s(3, 500), s(503, 1), s(504, 497)]).equals(whole));
    assert.notDeepEqual(seededSource(4)(0, 64), s(0, 64));
  });

  it('waitFor rejects on timeout with a message listing what was received', async () => {
    const c = await connect();
    const { messageId } = await c.sendMessage({ toPath: [peer.uri], body: 'x' });
    await c.waitForMessage(messageId);
    await assert.rejects(
      c.waitFor((f) => f.method === 'NICKNAME', 150),
      (e: Error) => {
        assert.match(e.message, /^waitFor\(.*NICKNAME.*\) timed out after 150 ms; received 2 frame\(s\):/);
        assert.match(e.message, /\[0\] (response 200 OK|request SEND)/);
        assert.match(e.message, new RegExp(`request SEND tid=\\S+ Message-ID=${messageId} Byte-Range=1-1/1 body=1B`));
        assert.match(e.message, /response 200 OK tid=\S+ \(consumed\)/);
        return true;
      },
    );
    await assert.rejects(c.waitForResponse('nosuchtid', 50), /waitForResponse\(nosuchtid\) timed out after 50 ms; received 2 frame/);
  });

  it('waitFor consumes: equal predicates get successive frames; already-received frames count', async () => {
    const c = await connect();
    const a = await c.sendMessage({ toPath: [peer.uri], body: 'one' });
    const b = await c.sendMessage({ toPath: [peer.uri], body: 'two' });
    await c.waitForMessage(b.messageId);
    const isSend = (f: ReceivedFrame): boolean => f.method === 'SEND';
    const f1 = await c.waitFor(isSend);
    const f2 = await c.waitFor(isSend);
    assert.equal(f1.header('Message-ID'), a.messageId);
    assert.equal(f2.header('Message-ID'), b.messageId);
    assert.equal(await c.expectNone(isSend, 100), true);
  });

  it('expectNone: true when nothing matching arrives, false at once when it does', async () => {
    const c = await connect();
    const { messageId, responses } = await c.sendMessage({ toPath: [peer.uri], body: 'quiet', failureReport: 'no' });
    assert.deepEqual(responses, []);
    await c.waitForMessage(messageId);
    const echoed = c.frames.find((f) => f.header('Message-ID') === messageId)!;
    const sentTid = peer.requests.find((r) => getHeader(r.head.headers, 'Message-ID') === messageId)!.head.tid;
    // Failure-Report: no: neither side answers (RFC 4975 §7.1.4).
    assert.equal(await c.expectNone(isResponseTo(sentTid), 300), true);
    assert.equal(peer.responses.some((r) => r.tid === echoed.tid), false);
    // A matching frame already received (not consumed) gives false without waiting.
    const t0 = Date.now();
    assert.equal(await c.expectNone((f) => f.header('Message-ID') === messageId, 5000), false);
    assert.ok(Date.now() - t0 < 1000);
    // One arriving during the wait gives false as soon as it arrives.
    const later = c.expectNone((f) => f.header('Message-ID') === 'later0001', 5000);
    await c.sendMessage({ toPath: [peer.uri], body: 'later', messageId: 'later0001' });
    assert.equal(await later, false);
  });

  it('autoRespond false: no 200 is sent; respond() sends the chosen status back to the previous hop', async () => {
    const c = await connect({ autoRespond: false });
    const { messageId } = await c.sendMessage({ toPath: [peer.uri], body: 'answer me yourself' });
    const echoed = await c.waitFor((f) => f.method === 'SEND' && f.header('Message-ID') === messageId);
    await new Promise((r) => setTimeout(r, 150));
    assert.equal(peer.responses.some((r) => r.tid === echoed.tid), false);
    const next = peer.nextResponse();
    c.respond(echoed, 413);
    const r = await next;
    assert.equal(r.tid, echoed.tid);
    assert.equal(r.status, 413);
    assert.equal(r.comment, 'Stop-sending-message');
    assert.deepEqual(pathOf(r.headers, 'To-Path'), [peer.uri]);
    assert.deepEqual(pathOf(r.headers, 'From-Path'), [c.uri]);
  });

  it('sendRequest: custom method, header order, Content-Type last, explicit tid and flag', async () => {
    const c = await connect();
    const tid = c.sendRequest({ method: 'NICKNAME', toPath: [peer.uri], headers: [['Use-Nickname', '"bob"']] });
    assert.match(tid, /^[0-9a-f]{32}$/);
    c.sendRequest({ method: 'FILE_OFFSET', toPath: [peer.uri], headers: [['Message-ID', 'm1234'], ['X-A', '1']], body: 'b', contentType: 'text/x-test', tid: 'mytid123', flag: '+' });
    const until = Date.now() + 2000;
    while (peer.requests.filter((r) => r.head.tid === tid || r.head.tid === 'mytid123').length < 2 && Date.now() < until) {
      await new Promise((r) => setTimeout(r, 10));
    }
    const nick = peer.requests.find((r) => r.head.tid === tid)!;
    assert.equal(nick.head.method, 'NICKNAME');
    assert.equal(nick.head.hasBody, false);
    assert.deepEqual(nick.head.headers, [['To-Path', peer.uri], ['From-Path', c.uri], ['Use-Nickname', '"bob"']]);
    const fo = peer.requests.find((r) => r.head.tid === 'mytid123')!;
    assert.equal(fo.head.method, 'FILE_OFFSET');
    assert.deepEqual(fo.head.headers.map((h) => h[0]), ['To-Path', 'From-Path', 'Message-ID', 'X-A', 'Content-Type']);
    assert.equal(getHeader(fo.head.headers, 'Content-Type'), 'text/x-test');
    // Non-SEND requests get no automatic answer from the peer, and none is expected.
    assert.equal(await c.expectNone(isResponseTo(tid), 100), true);
  });

  it('write() sends raw bytes; a framing error from the far end closes the client and fails waits', async () => {
    const c = await connect();
    c.write(`MSRP rawtid01 SEND\r\nTo-Path: ${peer.uri}\r\nFrom-Path: ${c.uri}\r\nMessage-ID: raw00001\r\nByte-Range: 1-3/3\r\nContent-Type: text/plain\r\n\r\nraw\r\n-------rawtid01$\r\n`);
    assert.equal((await c.waitForResponse('rawtid01')).status, 200);
    assert.equal((await c.waitForMessage('raw00001')).body?.toString(), 'raw');
    const pending = c.waitFor((f) => f.method === 'NEVER', 5000);
    const s = [...peer.sockets].find((x) => x.remotePort === c.socket.localPort)!;
    s.write('HTTP/1.1 400 Bad Request\r\n\r\n');
    await assert.rejects(pending, /the connection closed[\s\S]*error: the start line does not begin with "MSRP "/);
    await c.closed;
    assert.equal(c.isClosed, true);
    assert.equal(c.lastError?.name, 'FramerError');
    await assert.rejects(c.waitFor((f) => f.method === 'NEVER', 10), /the connection is closed/);
    assert.equal(await c.expectNone(() => true, 1000), false); // frames already received match
  });

  it('close() ends the connection; closed and isClosed follow; waitForMessage fails on close', async () => {
    const c = await connect();
    const w = c.waitForMessage('neverarrives', 5000);
    await c.close();
    assert.equal(c.isClosed, true);
    await c.closed;
    await assert.rejects(w, /waitForMessage\(neverarrives\) the connection closed: no chunk of it arrived/);
    await assert.rejects(c.sendMessage({ toPath: [peer.uri], body: 'late' }), /closed/);
  });

  it('message() reports progress and completeness; a # abort fails waitForMessage', async () => {
    const c = await connect();
    assert.equal(c.message('unknown1'), undefined);
    const tid1 = c.sendRequest({ method: 'SEND', toPath: [peer.uri], headers: [['Message-ID', 'part0001'], ['Byte-Range', '1-3/6']], body: 'abc', flag: '+' });
    await c.waitForResponse(tid1);
    await c.waitFor((f) => f.header('Message-ID') === 'part0001');
    const half = c.message('part0001')!;
    assert.equal(half.complete, false);
    assert.equal(half.bytes, 3);
    const waiting = c.waitForMessage('part0001');
    c.sendRequest({ method: 'SEND', toPath: [peer.uri], headers: [['Message-ID', 'part0001'], ['Byte-Range', '4-6/6']], body: 'def' });
    const done = await waiting;
    assert.equal(done.body?.toString(), 'abcdef');
    assert.equal(c.message('part0001')!.complete, true);

    c.sendRequest({ method: 'SEND', toPath: [peer.uri], headers: [['Message-ID', 'abort001'], ['Byte-Range', '1-*/10']], body: 'abcd', flag: '+' });
    await c.waitFor((f) => f.header('Message-ID') === 'abort001');
    const aborted = c.waitForMessage('abort001');
    c.sendRequest({ method: 'SEND', toPath: [peer.uri], headers: [['Message-ID', 'abort001'], ['Byte-Range', '5-*/10']], body: 'ef', flag: '#' });
    await assert.rejects(aborted, /aborted/);
  });

  it('reassembles chunks that arrive out of order (stored bodies)', async () => {
    const c = await connect();
    c.sendRequest({ method: 'SEND', toPath: [peer.uri], headers: [['Message-ID', 'ooo00001'], ['Byte-Range', '4-6/6']], body: 'DEF' });
    c.sendRequest({ method: 'SEND', toPath: [peer.uri], headers: [['Message-ID', 'ooo00001'], ['Byte-Range', '1-3/6']], body: 'ABC', flag: '+' });
    const m = await c.waitForMessage('ooo00001');
    assert.equal(m.body?.toString(), 'ABCDEF');
    assert.equal(m.sha256, sha256Hex('ABCDEF'));
    assert.equal(m.chunks, 2);
  });
});

// ---------------------------------------------------------------------------
// TLS
// ---------------------------------------------------------------------------

describe('MsrpTestClient over TLS (certificates from makeTestCertificates)', () => {
  let dir: string;
  let certs: TestCertificates;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'msrp-client-tls-'));
    certs = await makeTestCertificates(dir);
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('verifies the server certificate against the test CA and round-trips a message', async () => {
    const peer = await startTlsEchoPeer({ cert: certs.server.cert, key: certs.server.key });
    try {
      const c = await MsrpTestClient.connect({ port: peer.port, tls: { ca: certs.ca.cert, servername: 'localhost' } });
      assert.match(c.uri, /^msrps:\/\/127\.0\.0\.1:\d+\/[0-9a-f]{16};tcp$/);
      assert.equal((c.socket as tls.TLSSocket).authorized, true);
      const { messageId, responses } = await c.sendMessage({ toPath: [peer.uri], body: 'over tls' });
      assert.equal(responses[0]!.status, 200);
      assert.equal((await c.waitForMessage(messageId)).body?.toString(), 'over tls');
      await c.close();
      // Without a servername the IP SAN is checked.
      const ip = await MsrpTestClient.connect({ port: peer.port, tls: { ca: certs.ca.cert } });
      assert.equal((ip.socket as tls.TLSSocket).authorized, true);
      await ip.close();
      // tls: true accepts any certificate.
      const loose = await MsrpTestClient.connect({ port: peer.port, tls: true });
      assert.equal((await loose.sendMessage({ toPath: [peer.uri], body: 'x' })).responses[0]!.status, 200);
      await loose.close();
      // A CA that did not sign the server certificate is refused.
      await assert.rejects(MsrpTestClient.connect({ port: peer.port, tls: { ca: certs.client.cert, servername: 'localhost' } }));
    } finally {
      await peer.close();
    }
  });

  it('presents a client certificate for mutual TLS', async () => {
    const seen: string[] = [];
    const peer = await startTlsEchoPeer({ cert: certs.server.cert, key: certs.server.key, ca: certs.ca.cert, requestCert: true, rejectUnauthorized: true }, (s) => {
      seen.push(`${s.authorized} ${String(s.getPeerCertificate().subject.CN)}`);
    });
    try {
      const c = await MsrpTestClient.connect({ port: peer.port, tls: { ca: certs.ca.cert, servername: 'relay.test', cert: certs.client.cert, key: certs.client.key } });
      const { messageId } = await c.sendMessage({ toPath: [peer.uri], body: 'mutual' });
      assert.equal((await c.waitForMessage(messageId)).body?.toString(), 'mutual');
      assert.deepEqual(seen, ['true test-client']);
      await c.close();
    } finally {
      await peer.close();
    }
  });
});

// ---------------------------------------------------------------------------
// AUTH
// ---------------------------------------------------------------------------

describe('MsrpTestClient.auth against an in-test Digest responder', () => {
  let relay: AuthPeer;
  const clients: MsrpTestClient[] = [];
  const connect = async (): Promise<MsrpTestClient> => {
    const c = await MsrpTestClient.connect({ port: relay.port });
    clients.push(c);
    return c;
  };

  before(async () => {
    relay = await startAuthPeer({ alice: 'wonderland' });
  });
  after(async () => {
    for (const c of clients) c.destroy();
    await relay.close();
  });

  it('401 then 200 with a correct rspauth; Authorization without uri=, qop and nc unquoted by default', async () => {
    const c = await connect();
    const r = await c.auth({ relayUri: relay.relayUri, username: 'alice', password: 'wonderland' });
    assert.equal(r.challenge.status, 401);
    assert.match(r.challenge.header('WWW-Authenticate') ?? '', /^Digest realm="example.com"/);
    assert.deepEqual(r.challenge.toPath, [c.uri]);
    assert.equal(r.status, 200);
    assert.equal(r.response.status, 200);
    assert.equal(r.usePath.length, 1);
    assert.match(r.usePath[0]!, /^msrp:\/\/relay\.test:\d+\/[\w-]+;tcp$/);
    assert.equal(r.expires, 600);
    const authz = relay.authorizations.at(-1)!;
    assert.doesNotMatch(authz, /uri=/);
    assert.match(authz, /, qop=auth, nc=00000001, cnonce="[0-9a-f]{32}"/);
    assert.match(authz, /opaque="[0-9a-f]{32}"/);
  });

  it('python-msrplib style (quoted qop/nc) and uri= included, with Expires', async () => {
    const c = await connect();
    const r = await c.auth({ relayUri: relay.relayUri, username: 'alice', password: 'wonderland', digestUri: 'include', quotedQopNc: true, expires: 900 });
    assert.equal(r.status, 200);
    assert.equal(r.expires, 900);
    const authz = relay.authorizations.at(-1)!;
    assert.ok(authz.includes(`uri="${relay.relayUri}"`));
    assert.match(authz, /qop="auth", nc="00000001"/);
    assert.deepEqual(relay.expires.slice(-2), ['900', '900']);
  });

  it('uses a fresh cnonce on every AUTH', async () => {
    const a = await connect();
    await a.auth({ relayUri: relay.relayUri, username: 'alice', password: 'wonderland' });
    await a.auth({ relayUri: relay.relayUri, username: 'alice', password: 'wonderland' });
    const cnonces = relay.authorizations.slice(-2).map((s) => /cnonce="([^"]+)"/.exec(s)![1]);
    assert.notEqual(cnonces[0], cnonces[1]);
  });

  it('a wrong password gives status 401 on the second AUTH', async () => {
    const c = await connect();
    const r = await c.auth({ relayUri: relay.relayUri, username: 'alice', password: 'not-the-password' });
    assert.equal(r.challenge.status, 401);
    assert.equal(r.status, 401);
    assert.notEqual(r.response.tid, r.challenge.tid);
    assert.deepEqual(r.usePath, []);
    assert.match(r.response.header('WWW-Authenticate') ?? '', /^Digest /);
  });

  it('throws when the 200 carries a wrong rspauth', async () => {
    const c = await connect();
    relay.corruptRspauth = true;
    try {
      await assert.rejects(c.auth({ relayUri: relay.relayUri, username: 'alice', password: 'wonderland' }), /wrong rspauth/);
    } finally {
      relay.corruptRspauth = false;
    }
  });

  it('returns the first response when it is not a 401', async () => {
    // The echo peer never answers AUTH: use a responder that answers 403 at once.
    const server = net.createServer((s) => {
      s.on('error', () => {});
      let head: FrameHead | undefined;
      const fr = new Framer({
        onHead: (h) => (head = h),
        onBody: () => {},
        onEnd: () => {
          if (head !== undefined) s.write(formatResponse({ tid: head.tid, status: 403, toPath: pathOf(head.headers, 'From-Path'), fromPath: pathOf(head.headers, 'To-Path') }));
        },
      });
      s.on('data', (d: Buffer) => fr.push(d));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const port = (server.address() as net.AddressInfo).port;
    try {
      const c = await MsrpTestClient.connect({ port });
      const r = await c.auth({ relayUri: `msrp://127.0.0.1:${port};tcp`, username: 'alice', password: 'x' });
      assert.equal(r.status, 403);
      assert.equal(r.challenge, r.response);
      c.destroy();
    } finally {
      await new Promise<void>((r) => server.close(() => r()));
    }
  });
});

// ---------------------------------------------------------------------------
// Self-signed certificates
// ---------------------------------------------------------------------------

describe('ensureSelfSignedCert', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'msrp-selfsigned-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('creates a certificate with the hostnames and IPs as SAN, key 0600, folder 0700', async () => {
    const certFile = join(dir, 'tls', 'relay.pem');
    const keyFile = join(dir, 'tls', 'relay.key');
    await ensureSelfSignedCert({ certFile, keyFile, hostnames: ['relay.example.com', 'localhost'], ips: ['127.0.0.1', '::1'] });
    const x = new X509Certificate(await readFile(certFile));
    assert.equal(x.subject, 'CN=relay.example.com');
    assert.equal(x.subjectAltName, 'DNS:relay.example.com, DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1');
    assert.ok(Date.parse(x.validTo) - Date.now() > 360 * 86_400_000);
    if (process.platform !== 'win32') {
      assert.equal((await stat(keyFile)).mode & 0o777, 0o600);
      assert.equal((await stat(join(dir, 'tls'))).mode & 0o777, 0o700);
    }
    // A TLS server with it is trusted by a client that pins it.
    const peer = await startTlsEchoPeer({ cert: await readFile(certFile), key: await readFile(keyFile) });
    try {
      const c = await MsrpTestClient.connect({ port: peer.port, tls: { ca: await readFile(certFile), servername: 'localhost' } });
      assert.equal((c.socket as tls.TLSSocket).authorized, true);
      await c.close();
    } finally {
      await peer.close();
    }
  });

  it('keeps a valid pair, replaces one that expires within a day or does not match its key', async () => {
    const certFile = join(dir, 'keep', 'c.pem');
    const keyFile = join(dir, 'keep', 'k.pem');
    await ensureSelfSignedCert({ certFile, keyFile, hostnames: ['a.test'], days: 30 });
    const first = await readFile(certFile, 'utf8');
    await ensureSelfSignedCert({ certFile, keyFile, hostnames: ['a.test'], days: 30 });
    assert.equal(await readFile(certFile, 'utf8'), first);

    const shortCert = join(dir, 'short', 'c.pem');
    const shortKey = join(dir, 'short', 'k.pem');
    await ensureSelfSignedCert({ certFile: shortCert, keyFile: shortKey, hostnames: ['b.test'], days: 1 });
    const short = await readFile(shortCert, 'utf8');
    await ensureSelfSignedCert({ certFile: shortCert, keyFile: shortKey, hostnames: ['b.test'], days: 1 });
    assert.notEqual(await readFile(shortCert, 'utf8'), short);

    // A key that does not belong to the certificate.
    await writeFile(keyFile, await readFile(shortKey));
    await ensureSelfSignedCert({ certFile, keyFile, hostnames: ['a.test'] });
    assert.notEqual(await readFile(certFile, 'utf8'), first);
    const x = new X509Certificate(await readFile(certFile));
    assert.ok(x.checkPrivateKey((await import('node:crypto')).createPrivateKey(await readFile(keyFile))));
  });

  it('rejects host names that cannot go into a certificate', async () => {
    await assert.rejects(
      ensureSelfSignedCert({ certFile: join(dir, 'bad', 'c.pem'), keyFile: join(dir, 'bad', 'k.pem'), hostnames: ['evil,DNS:other.test'] }),
      /cannot put host name/,
    );
  });

  it('says to install openssl or configure cert/key when openssl is missing', async () => {
    const saved = process.env.PATH;
    process.env.PATH = join(dir, 'no-such-bin');
    try {
      await assert.rejects(
        ensureSelfSignedCert({ certFile: join(dir, 'none', 'c.pem'), keyFile: join(dir, 'none', 'k.pem'), hostnames: ['c.test'] }),
        /install openssl, or configure cert and key/,
      );
    } finally {
      process.env.PATH = saved;
    }
  });
});
