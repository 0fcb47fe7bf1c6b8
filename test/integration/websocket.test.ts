/**
 * MSRP over WebSocket (RFC 7977) through a real relay on real sockets: the websocket plugin's
 * handshake (W-1, W-10, I-11), framing (W-2, W-3, W-4, I-16), routing between WebSocket and TCP
 * clients (W-7, W-8, W-12, I-12, I-15, I-17) and keep-alive (W-11, I-18). The WebSocket clients
 * are the `ws` package's client under the project's test client (test/support/ws-client.ts).
 */

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import { MsrpTestClient, sha256Hex, startTestRelay, testCertificates, type TestRelay } from '../../core/testing/index.ts';
import WebSocketPlugin from '../../plugins/websocket/index.ts';
import { browserUri, connectWs, upgradeStatus } from '../support/ws-client.ts';

const users = [
  { username: 'alice', domain: 'example.com', password: 'secret' },
  { username: 'bob', domain: 'example.com', password: 'secret' },
  { username: 'carol', domain: 'example.com', password: 'secret' },
];

/** A relay with TCP, TLS and a loopback ws listener (AUTH allowed on it: tests only, R-7). */
async function wsRelay(options: Record<string, unknown> = {}, extra: Record<string, unknown> = {}) {
  const t = await startTestRelay({
    users,
    tls: true,
    certificates: await testCertificates(),
    listen: [{ transport: 'ws', host: '127.0.0.1', port: 0, path: '/msrp', insecureAuth: true }],
    plugins: [['websocket', { origins: ['https://chat.example.com'], ...options }]],
    ...extra,
  });
  const l = t.relay.listeners.find((x) => x.transport === 'ws')!;
  return { t, wsPort: l.port, url: `ws://127.0.0.1:${l.port}/msrp`, relayUri: `msrp://example.com:${l.port};ws` };
}

describe('websocket: the handshake', () => {
  let r: Awaited<ReturnType<typeof wsRelay>>;
  before(async () => {
    r = await wsRelay();
  });
  after(() => r.t.close());

  it('refuses an upgrade that does not offer the msrp subprotocol with 400 (W-1, I-11)', async () => {
    assert.equal(await upgradeStatus(r.url, { protocols: [] }), 400);
    assert.equal(await upgradeStatus(r.url, { protocols: ['sip', 'chat'] }), 400);
    // Offered among others, msrp is chosen and named in the 101.
    const c = await connectWs(r.url, { protocols: ['sip', 'msrp'] });
    assert.equal(c.ws.protocol, 'msrp');
    await c.client.close();
  });

  it('refuses an Origin not in the allow-list with 403 and names an allowed one in the 101 (W-10)', async () => {
    assert.equal(await upgradeStatus(r.url, { origin: 'https://evil.example.net' }), 403);
    const ws = new WebSocket(r.url, ['msrp'], { origin: 'https://chat.example.com' });
    const headers = await new Promise<Record<string, string | string[] | undefined>>((resolve, reject) => {
      ws.once('upgrade', (res) => resolve(res.headers));
      ws.once('error', reject);
    });
    assert.equal(headers['access-control-allow-origin'], 'https://chat.example.com');
    assert.equal(headers['sec-websocket-protocol'], 'msrp');
    ws.close();
  });

  it('answers 404 off the configured path and 426 to a plain GET of it', async () => {
    assert.equal(await upgradeStatus(`ws://127.0.0.1:${r.wsPort}/other`), 404);
    const res = await fetch(`http://127.0.0.1:${r.wsPort}/msrp`);
    assert.equal(res.status, 426);
    await res.arrayBuffer();
    const stats = WebSocketPlugin.stats(r.t.relay)!;
    assert.ok((stats.handshakes.failed.subprotocol ?? 0) >= 2);
    assert.ok((stats.handshakes.failed.origin ?? 0) >= 1);
    assert.ok((stats.handshakes.failed.path ?? 0) >= 1);
  });
});

describe('websocket: WebSocket and TCP clients', () => {
  let r: Awaited<ReturnType<typeof wsRelay>>;
  let t: TestRelay;
  before(async () => {
    r = await wsRelay();
    t = r.t;
  });
  after(() => t.close());

  /** A WebSocket client authenticated the way browser libraries do it (I-13: `;ws` To-Path, Digest uri=). */
  async function wsUser(username: string, o: Parameters<typeof connectWs>[1] = {}) {
    const c = await connectWs(r.url, o);
    const a = await c.client.auth({ relayUri: r.relayUri, username, password: 'secret', digestUri: 'include' });
    assert.equal(a.status, 200);
    return { ...c, token: a.usePath[0]!, auth: a };
  }

  async function tcpUser(username: string, o: { storeBodies?: boolean } = {}) {
    const c = await MsrpTestClient.connect({ port: t.tcpPort, timeoutMs: 60_000, ...o });
    const a = await c.auth({ relayUri: `msrp://example.com:${t.tcpPort};tcp`, username, password: 'secret' });
    assert.equal(a.status, 200);
    return { client: c, token: a.usePath[0]! };
  }

  it('issues a WebSocket client a Use-Path naming the TLS listener (W-8) and carries SEND both ways with TCP', async () => {
    const alice = await wsUser('alice');
    assert.match(alice.token, new RegExp(`^msrps://127\\.0\\.0\\.1:${t.tlsPort}/[A-Za-z0-9]+;tcp$`));
    const bob = await tcpUser('bob');
    const ab = await alice.client.sendMessage({ toPath: [alice.token, bob.token, bob.client.uri], body: 'hello from the browser' });
    assert.equal(ab.responses[0]!.status, 200);
    const atBob = await bob.client.waitFor((f) => f.kind === 'request' && f.header('Message-ID') === ab.messageId);
    assert.equal(atBob.body.toString(), 'hello from the browser');
    // W-12: both relay URIs (one hop through the relay's session table) in From-Path, the ;ws URI unchanged (I-15).
    assert.deepEqual(atBob.fromPath, [bob.token, alice.token, alice.client.uri]);
    const ba = await bob.client.sendMessage({ toPath: [bob.token, alice.token, alice.client.uri], body: 'hello from TCP' });
    assert.equal(ba.responses[0]!.status, 200);
    const atAlice = await alice.client.waitFor((f) => f.kind === 'request' && f.header('Message-ID') === ba.messageId);
    assert.equal(atAlice.body.toString(), 'hello from TCP');
    assert.deepEqual(atAlice.toPath, [alice.client.uri]);
    assert.deepEqual(atAlice.fromPath, [alice.token, bob.token, bob.client.uri]);
    await alice.client.close();
    await bob.client.close();
  });

  it('forwards a browser\'s ;ws URI unchanged on a TCP leg it dials, behind its own ;tcp URI (W-8, I-15), and back', async () => {
    const alice = await wsUser('alice');
    // A TCP endpoint that did not AUTH here (another relay's client, or Blink's caller, I-10): the relay dials it.
    const far = await tcpEndpoint();
    const farUri = far.uri;
    const sent = await alice.client.sendMessage({ toPath: [alice.token, farUri], body: 'over a TCP leg' });
    assert.equal(sent.responses[0]!.status, 200);
    const bob = await far.accepted;
    const got = await bob.waitFor((f) => f.kind === 'request' && f.header('Message-ID') === sent.messageId);
    assert.deepEqual(got.toPath, [farUri]);
    assert.deepEqual(got.fromPath, [alice.token, alice.client.uri]);
    // The far end answers along the From-Path: inward over the same leg, to the WebSocket (W-7).
    const back = await bob.sendMessage({ toPath: got.fromPath, body: 'and back' });
    assert.equal(back.responses[0]!.status, 200);
    const atAlice = await alice.client.waitFor((f) => f.kind === 'request' && f.header('Message-ID') === back.messageId);
    assert.equal(atAlice.body.toString(), 'and back');
    assert.deepEqual(atAlice.fromPath, [alice.token, farUri]);
    await alice.client.close();
    await bob.close();
    far.server.close();
  });

  it('switches two WebSocket clients of the relay internally, both relay URIs in From-Path (W-12)', async () => {
    const alice = await wsUser('alice');
    const carol = await wsUser('carol');
    const m = await alice.client.sendMessage({ toPath: [alice.token, carol.token, carol.client.uri], body: 'browser to browser' });
    assert.equal(m.responses[0]!.status, 200);
    const got = await carol.client.waitFor((f) => f.kind === 'request' && f.header('Message-ID') === m.messageId);
    assert.deepEqual(got.fromPath, [carol.token, alice.token, alice.client.uri]);
    assert.equal(got.body.toString(), 'browser to browser');
    await alice.client.close();
    await carol.client.close();
  });

  it('carries several sessions on one WebSocket and one WebSocket per session (I-12)', async () => {
    // Each session has its own far end (R-57a: a token is bound to one far-end leg).
    const bobs = [await tcpUser('bob'), await tcpUser('bob'), await tcpUser('bob'), await tcpUser('bob')];
    // One WebSocket, two AUTHs (a library that keeps one socket for all its sessions).
    const shared = await connectWs(r.url);
    const uris = [browserUri(), browserUri()];
    const tokens: string[] = [];
    // The test client's auth() uses its own URI; here each session has its own From-Path.
    for (const uri of uris) tokens.push(await authAs(shared.client, r.relayUri, uri, 'alice'));
    assert.notEqual(tokens[0], tokens[1]);
    for (let i = 0; i < 2; i++) {
      const bob = bobs[i]!;
      const tid = shared.client.sendRequest({ method: 'SEND', toPath: [tokens[i]!, bob.token, bob.client.uri], fromPath: [uris[i]!], headers: [['Message-ID', `shared${i}x`], ['Byte-Range', '1-3/3']], body: `s${i}!` });
      assert.equal((await shared.client.waitForResponse(tid)).status, 200);
      const got = await bob.client.waitFor((f) => f.kind === 'request' && f.header('Message-ID') === `shared${i}x`);
      assert.deepEqual(got.fromPath, [bob.token, tokens[i], uris[i]]);
    }
    // Each far end answers its session: each lands on the shared socket with its own To-Path.
    for (let i = 0; i < 2; i++) {
      const bob = bobs[i]!;
      const back = await bob.client.sendMessage({ toPath: [bob.token, tokens[i]!, uris[i]!], body: `to s${i}` });
      assert.equal(back.responses[0]!.status, 200);
      const got = await shared.client.waitFor((f) => f.kind === 'request' && f.header('Message-ID') === back.messageId);
      assert.deepEqual(got.toPath, [uris[i]]);
    }
    // One WebSocket per session (the other library).
    const sockets = [await wsUser('alice'), await wsUser('alice')];
    for (let i = 0; i < 2; i++) {
      const w = sockets[i]!;
      const bob = bobs[2 + i]!;
      const m = await w.client.sendMessage({ toPath: [w.token, bob.token, bob.client.uri], body: 'per socket' });
      assert.equal(m.responses[0]!.status, 200);
      const back = await bob.client.sendMessage({ toPath: [bob.token, w.token, w.client.uri], body: 'back per socket' });
      assert.equal(back.responses[0]!.status, 200);
      await w.client.waitFor((f) => f.kind === 'request' && f.header('Message-ID') === back.messageId);
    }
    await shared.client.close();
    for (const w of sockets) await w.client.close();
    for (const b of bobs) await b.client.close();
  });

  it('invalidates the tokens of a WebSocket when it closes: 481 after the browser reconnects, the new token works (I-17, R-15)', async () => {
    const bob = await tcpUser('bob');
    const first = await wsUser('alice');
    const oldToken = first.token;
    const oldUri = first.client.uri;
    const gone = sessionClosed(t, oldToken);
    first.ws.terminate();
    await first.client.closed;
    // The relay has seen the socket go: its sessions went with it.
    assert.equal((await gone).code, 'owner-closed');
    const again = await wsUser('alice');
    const stale = await bob.client.sendMessage({ toPath: [bob.token, oldToken, oldUri], body: 'to the old socket' });
    assert.equal(stale.responses[0]!.status, 481);
    const fresh = await bob.client.sendMessage({ toPath: [bob.token, again.token, again.client.uri], body: 'to the new socket' });
    assert.equal(fresh.responses[0]!.status, 200);
    await again.client.waitFor((f) => f.kind === 'request' && f.header('Message-ID') === fresh.messageId);
    await again.client.close();
    await bob.client.close();
  });

  it('answers 481 for a ;ws next hop that no WebSocket is bound to, never dialling it (W-7)', async () => {
    const alice = await wsUser('alice');
    const m = await alice.client.sendMessage({ toPath: [alice.token, browserUri()], body: 'nowhere' });
    assert.equal(m.responses[0]!.status, 481);
    await alice.client.close();
  });

  it('takes AUTH addressed the way browser libraries address it, Expires included, and checks Digest uri= byte for byte (I-13, R-36, R-41)', async () => {
    const forms = [`msrp://example.com:${r.wsPort};ws`, `msrps://example.com:${r.wsPort};ws`, 'msrp://example.com;ws', `msrp://example.com:${r.wsPort};tcp`, 'msrps://example.com:2855;tcp'];
    const c = await connectWs(r.url);
    for (const relayUri of forms) {
      const a = await c.client.auth({ relayUri, username: 'alice', password: 'secret', digestUri: 'include', expires: 900 });
      assert.equal(a.status, 200, relayUri);
      assert.equal(a.expires, 900, relayUri);
    }
    // One library retries on 423 with the bound it was given.
    const low = await c.client.waitForResponse(c.client.sendRequest({ method: 'AUTH', toPath: [r.relayUri], headers: [['Expires', '5']] }));
    assert.equal(low.status, 423);
    assert.equal(low.header('Min-Expires'), '60');
    // A uri= that is not the To-Path URI byte for byte: 400.
    const { computeHa1, computeDigestResponse, formatAuthorization, parseChallenge } = await import('../../core/protocol/index.ts');
    const first = await c.client.waitForResponse(c.client.sendRequest({ method: 'AUTH', toPath: [r.relayUri] }));
    const ch = parseChallenge(first.header('WWW-Authenticate')!);
    const other = r.relayUri.replace(';ws', ';tcp');
    const response = computeDigestResponse({ ha1: computeHa1('alice', ch.realm, 'secret'), nonce: ch.nonce, nc: '00000001', cnonce: 'abcdef01', qop: 'auth', method: 'AUTH', uri: other });
    const authorization = formatAuthorization({ username: 'alice', realm: ch.realm, nonce: ch.nonce, uri: other, response, cnonce: 'abcdef01', nc: '00000001', opaque: ch.opaque });
    const bad = await c.client.waitForResponse(c.client.sendRequest({ method: 'AUTH', toPath: [r.relayUri], headers: [['Authorization', authorization]] }));
    assert.equal(bad.status, 400);
    await c.client.close();
  });

  it('forwards a bodiless SEND keep-alive from a browser (W-11, I-8)', async () => {
    const alice = await wsUser('alice');
    const bob = await tcpUser('bob');
    const tid = alice.client.sendRequest({ method: 'SEND', toPath: [alice.token, bob.token, bob.client.uri], headers: [['Message-ID', 'keepalive1'], ['Keep-Alive', 'yes']] });
    assert.equal((await alice.client.waitForResponse(tid)).status, 200);
    const got = await bob.client.waitFor((f) => f.kind === 'request' && f.header('Message-ID') === 'keepalive1');
    assert.equal(got.hasBody, false);
    await alice.client.close();
    await bob.client.close();
  });

  it('closes with 1002 a WebSocket message holding two MSRP frames, or part of one, and forwards nothing (W-3)', async () => {
    const bob = await tcpUser('bob');
    for (const shape of ['two', 'half'] as const) {
      const alice = await wsUser('alice');
      const frame = (id: string) => `MSRP ${id} SEND\r\nTo-Path: ${alice.token} ${bob.token} ${bob.client.uri}\r\nFrom-Path: ${alice.client.uri}\r\nMessage-ID: ${id}\r\nByte-Range: 1-2/2\r\nContent-Type: text/plain\r\n\r\nhi\r\n-------${id}$\r\n`;
      const ids = [`${shape}frame1`, `${shape}frame2`];
      alice.ws.send(shape === 'two' ? frame(ids[0]!) + frame(ids[1]!) : frame(ids[0]!).slice(0, 60));
      assert.equal(await alice.closeCode, 1002);
      assert.equal(await bob.client.expectNone((f) => f.kind === 'request' && ids.includes(f.header('Message-ID') ?? ''), 300), true);
    }
    assert.ok((WebSocketPlugin.stats(t.relay)!.closes['1002'] ?? 0) >= 2);
    await bob.client.close();
  });

  it('closes with 1009 a message over maxPayload (default 1 MiB)', async () => {
    const alice = await wsUser('alice');
    const bob = await tcpUser('bob');
    alice.ws.send(Buffer.concat([Buffer.from(`MSRP big00001 SEND\r\nTo-Path: ${alice.token} ${bob.token} ${bob.client.uri}\r\nFrom-Path: ${alice.client.uri}\r\nMessage-ID: big00001\r\nContent-Type: text/plain\r\n\r\n`), randomBytes(2 ** 20)]));
    assert.equal(await alice.closeCode, 1009);
    assert.equal(await bob.client.expectNone((f) => f.kind === 'request' && f.header('Message-ID') === 'big00001', 300), true);
    await bob.client.close();
  });

  it('accepts text frames (W-2, I-16) and fragmented messages, and sends binary only', async () => {
    const alice = await wsUser('alice');
    const bob = await tcpUser('bob');
    const kinds: boolean[] = [];
    alice.ws.on('message', (_d, isBinary: boolean) => kinds.push(isBinary));
    const frame = (id: string, body: string) => `MSRP ${id} SEND\r\nTo-Path: ${alice.token} ${bob.token} ${bob.client.uri}\r\nFrom-Path: ${alice.client.uri}\r\nMessage-ID: ${id}\r\nByte-Range: 1-${body.length}/${body.length}\r\nContent-Type: text/plain\r\n\r\n${body}\r\n-------${id}$\r\n`;
    // A text frame (Kamailio sends text when the bytes are valid UTF-8).
    alice.ws.send(frame('textfrm1', 'as text'), { binary: false });
    assert.equal((await alice.client.waitForResponse('textfrm1')).status, 200);
    assert.equal((await bob.client.waitFor((f) => f.kind === 'request' && f.header('Message-ID') === 'textfrm1')).body.toString(), 'as text');
    // One message in three fragments.
    const whole = Buffer.from(frame('fragmnt1', 'x'.repeat(5000)));
    alice.ws.send(whole.subarray(0, 100), { binary: true, fin: false });
    alice.ws.send(whole.subarray(100, 3000), { fin: false });
    alice.ws.send(whole.subarray(3000), { fin: true });
    assert.equal((await alice.client.waitForResponse('fragmnt1')).status, 200);
    assert.equal((await bob.client.waitFor((f) => f.kind === 'request' && f.header('Message-ID') === 'fragmnt1')).body.length, 5000);
    assert.ok(kinds.length >= 2 && kinds.every((b) => b), 'the relay sends binary messages');
    assert.ok(WebSocketPlugin.stats(t.relay)!.messages.inText >= 1);
    await alice.client.close();
    await bob.client.close();
  });

  it('cuts a 20 MiB single chunk from TCP into WebSocket messages of at most 64 KiB, each one frame, hash equal (W-4)', async () => {
    const alice = await wsUser('alice', { storeBodies: false });
    const bob = await tcpUser('bob', { storeBodies: false });
    const sizes: number[] = [];
    let framesOk = true;
    alice.ws.on('message', (d: Buffer) => {
      sizes.push(d.length);
      if (d.subarray(0, 5).toString() !== 'MSRP ' || !/-------[A-Za-z0-9.+%=-]+[$+#]\r\n$/.test(d.toString('latin1', Math.max(0, d.length - 48)))) framesOk = false;
    });
    // Alice reads nothing until the relay has felt her back-pressure: bufferedAmount past the
    // high-water mark pauses the TCP sender (each slice the relay forwards is a moment to look).
    const before = WebSocketPlugin.stats(t.relay)!.backPressure;
    alice.client.pauseReading();
    let resumed = false;
    t.relay.hooks.bodyForwarded.tap('test', () => {
      if (!resumed && WebSocketPlugin.stats(t.relay)!.backPressure > before) {
        resumed = true;
        setImmediate(() => alice.client.resumeReading());
      }
    });
    const big = randomBytes(20 * 2 ** 20);
    const m = await bob.client.sendMessage({ toPath: [bob.token, alice.token, alice.client.uri], body: big, contentType: 'application/octet-stream', starEnd: true });
    assert.equal(m.responses[0]!.status, 200);
    const got = await alice.client.waitForMessage(m.messageId, 120_000);
    assert.equal(got.complete, true);
    assert.equal(got.sha256, sha256Hex(big));
    assert.ok(sizes.length >= 320, `${sizes.length} messages`);
    assert.ok(sizes.every((n) => n <= 64 * 1024), `largest ${Math.max(...sizes)}`);
    assert.equal(framesOk, true);
    assert.equal(resumed, true);
    await alice.client.close();
    await bob.client.close();
  });
});

/** The Digest exchange for a session with its own From-Path URI (the test client's auth() uses the client's). */
async function authAs(c: MsrpTestClient, relayUri: string, uri: string, username: string): Promise<string> {
  const { computeHa1, computeDigestResponse, formatAuthorization, parseChallenge } = await import('../../core/protocol/index.ts');
  const first = await c.waitForResponse(c.sendRequest({ method: 'AUTH', toPath: [relayUri], fromPath: [uri] }));
  assert.equal(first.status, 401);
  const ch = parseChallenge(first.header('WWW-Authenticate')!);
  const cnonce = randomBytes(8).toString('hex');
  const ha1 = computeHa1(username, ch.realm, 'secret');
  const response = computeDigestResponse({ ha1, nonce: ch.nonce, nc: '00000001', cnonce, qop: 'auth', method: 'AUTH', uri: relayUri });
  const authorization = formatAuthorization({ username, realm: ch.realm, nonce: ch.nonce, uri: relayUri, response, cnonce, nc: '00000001', opaque: ch.opaque });
  const ok = await c.waitForResponse(c.sendRequest({ method: 'AUTH', toPath: [relayUri], fromPath: [uri], headers: [['Authorization', authorization]] }));
  assert.equal(ok.status, 200);
  return ok.header('Use-Path')!;
}

/** A TCP MSRP endpoint listening on loopback: the test client over the first socket accepted. */
async function tcpEndpoint(): Promise<{ uri: string; server: net.Server; accepted: Promise<MsrpTestClient> }> {
  let accept: (c: MsrpTestClient) => void = () => {};
  const accepted = new Promise<MsrpTestClient>((r) => (accept = r));
  let uri = '';
  const server = net.createServer((s) => accept(MsrpTestClient.over(s, { uri, timeoutMs: 10_000 })));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  uri = `msrp://127.0.0.1:${(server.address() as net.AddressInfo).port}/farend01;tcp`;
  return { uri, server, accepted };
}

/** Resolves with the close reason of the session whose URI is `uri`. */
function sessionClosed(t: TestRelay, uri: string): Promise<{ code: string }> {
  return new Promise((resolve) => {
    t.relay.hooks.sessionClosed.tap('test', (s, reason) => {
      if (s.uri === uri) resolve(reason);
    });
  });
}
