// Forwarding through a real relay (RFC 4976 §6.4; RFC.md R-48 … R-84): two clients, one relay.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MsrpTestClient, hashSource, seededSource } from '../../core/testing/client.ts';
import { startTestRelay, type TestRelay } from '../../core/testing/harness.ts';

const users = [
  { username: 'alice', domain: 'example.com', password: 'secret' },
  { username: 'bob', domain: 'example.com', password: 'secret' },
];

interface Pair {
  a: MsrpTestClient;
  b: MsrpTestClient;
  /** A's Use-Path (its token) and B's. */
  ta: string;
  tb: string;
  /** To-Path for A → B and B → A (RFC 4976 §5.3). */
  ab: string[];
  ba: string[];
}

async function pair(t: TestRelay, o: { storeBodies?: boolean; autoRespondB?: boolean; tls?: boolean } = {}): Promise<Pair> {
  const opts = (extra: object) =>
    o.tls === true
      ? { port: t.tlsPort!, tls: { ca: t.certificates!.ca.cert, servername: 'localhost' }, ...extra }
      : { port: t.tcpPort, ...extra };
  const a = await MsrpTestClient.connect(opts({ storeBodies: o.storeBodies ?? true, timeoutMs: 20000 }));
  const b = await MsrpTestClient.connect(opts({ storeBodies: o.storeBodies ?? true, autoRespond: o.autoRespondB ?? true, timeoutMs: 20000 }));
  // I-3: clients address AUTH to their SIP domain, which is the realm.
  const relayUri = o.tls === true ? 'msrps://example.com;tcp' : 'msrp://example.com;tcp';
  const ra = await a.auth({ relayUri, username: 'alice', password: 'secret' });
  const rb = await b.auth({ relayUri, username: 'bob', password: 'secret' });
  assert.equal(ra.status, 200);
  assert.equal(rb.status, 200);
  const ta = ra.usePath[0]!;
  const tb = rb.usePath[0]!;
  return { a, b, ta, tb, ab: [ta, tb, b.uri], ba: [tb, ta, a.uri] };
}

async function closeAll(p: Pair): Promise<void> {
  await Promise.all([p.a.close(), p.b.close()]);
}

describe('SEND through one relay', () => {
  let t: TestRelay;
  before(async () => {
    t = await startTestRelay({ tls: true, users, timeouts: { transaction: 0.5 } });
  });
  after(() => t.close());

  it('R-58, R-59: B gets the body with To-Path [B] and From-Path [TB, TA, A]; A gets one 200 from its hop only (R-57)', async () => {
    const p = await pair(t);
    const { messageId, responses } = await p.a.sendMessage({ toPath: p.ab, body: 'Hello Bob', contentType: 'text/plain' });
    const f = await p.b.waitFor((x) => x.method === 'SEND' && x.header('Message-ID') === messageId);
    assert.equal(f.body.toString(), 'Hello Bob');
    assert.deepEqual(f.toPath, [p.b.uri]);
    assert.deepEqual(f.fromPath, [p.tb, p.ta, p.a.uri]);
    assert.equal(f.header('Byte-Range'), '1-9/9');
    assert.equal(f.header('Content-Type'), 'text/plain');
    assert.equal(f.headers[f.headers.length - 1]![0], 'Content-Type');
    // a new tid on the next hop.
    assert.notEqual(f.tid, responses[0]!.tid);
    assert.equal(responses.length, 1);
    assert.equal(responses[0]!.status, 200);
    assert.deepEqual(responses[0]!.toPath, [p.a.uri]);
    assert.deepEqual(responses[0]!.fromPath, [p.ta]);
    // B's 200 is absorbed: A sees no second response.
    assert.equal(await p.a.expectNone((x) => x.kind === 'response', 200), true);
    await closeAll(p);
  });

  it('both directions, and the success REPORT B sends reaches A and is not answered (R-77)', async () => {
    const p = await pair(t);
    const { messageId } = await p.b.sendMessage({ toPath: p.ba, body: 'Hi Alice', successReport: 'yes' });
    const f = await p.a.waitFor((x) => x.method === 'SEND' && x.header('Message-ID') === messageId);
    assert.deepEqual(f.fromPath, [p.ta, p.tb, p.b.uri]);
    // A reports success end to end.
    p.a.sendRequest({
      method: 'REPORT',
      toPath: [p.ta, p.tb, p.b.uri],
      headers: [
        ['Message-ID', messageId],
        ['Byte-Range', '1-8/8'],
        ['Status', '000 200 OK'],
      ],
    });
    const rep = await p.b.waitFor((x) => x.method === 'REPORT');
    assert.equal(rep.header('Status'), '000 200 OK');
    assert.deepEqual(rep.toPath, [p.b.uri]);
    assert.equal(await p.a.expectNone((x) => x.kind === 'response', 200), true);
    await closeAll(p);
  });

  it('R-61, R-69: a 3-chunk message arrives whole with its flags, with a 200 per chunk', async () => {
    const p = await pair(t);
    const body = Buffer.from('0123456789'.repeat(30));
    const { messageId, responses } = await p.a.sendMessage({ toPath: p.ab, body, chunkSize: 100 });
    assert.deepEqual(
      responses.map((r) => r.status),
      [200, 200, 200],
    );
    const m = await p.b.waitForMessage(messageId);
    assert.equal(m.chunks, 3);
    assert.ok(m.body!.equals(body));
    await closeAll(p);
  });

  it('R-64: Failure-Report no: delivered, and no response at all', async () => {
    const p = await pair(t);
    const { messageId } = await p.a.sendMessage({ toPath: p.ab, body: 'quiet', failureReport: 'no' });
    await p.b.waitFor((x) => x.header('Message-ID') === messageId);
    assert.equal(await p.a.expectNone((x) => x.kind === 'response', 300), true);
    await closeAll(p);
  });

  it('R-65: Failure-Report partial: no 200', async () => {
    const p = await pair(t);
    const { messageId } = await p.a.sendMessage({ toPath: p.ab, body: 'partial', failureReport: 'partial' });
    await p.b.waitFor((x) => x.header('Message-ID') === messageId);
    assert.equal(await p.a.expectNone((x) => x.kind === 'response', 300), true);
    await closeAll(p);
  });

  it('R-70: a bodiless SEND (keep-alive, I-8) is forwarded at once and answered 200', async () => {
    const p = await pair(t);
    const tid = p.a.sendRequest({ method: 'SEND', toPath: p.ab, headers: [['Message-ID', 'keepalive1'], ['Keep-Alive', 'yes']] });
    assert.equal((await p.a.waitForResponse(tid)).status, 200);
    const f = await p.b.waitFor((x) => x.header('Message-ID') === 'keepalive1');
    assert.equal(f.hasBody, false);
    assert.equal(f.header('Keep-Alive'), 'yes');
    await closeAll(p);
  });

  it('R-63: an error response from the far end becomes a REPORT with the same code', async () => {
    const p = await pair(t, { autoRespondB: false });
    const { messageId } = await p.a.sendMessage({ toPath: p.ab, body: 'too big for B' });
    const f = await p.b.waitFor((x) => x.header('Message-ID') === messageId);
    p.b.respond(f, 413, 'Stop-sending-message');
    const rep = await p.a.waitFor((x) => x.method === 'REPORT');
    assert.match(rep.header('Status')!, /^000 413/);
    assert.equal(rep.header('Message-ID'), messageId);
    assert.equal(rep.header('Byte-Range'), '1-13/13');
    assert.deepEqual(rep.toPath, [p.a.uri]);
    assert.deepEqual(rep.fromPath, [p.ta]);
    assert.equal(rep.header('Failure-Report'), undefined);
    await closeAll(p);
  });

  it('R-62: no response from the far end within the transaction timeout: REPORT 408', async () => {
    const p = await pair(t, { autoRespondB: false });
    const { messageId } = await p.a.sendMessage({ toPath: p.ab, body: 'anyone?' });
    await p.b.waitFor((x) => x.header('Message-ID') === messageId);
    const rep = await p.a.waitFor((x) => x.method === 'REPORT', 5000);
    assert.match(rep.header('Status')!, /^000 408/);
    assert.equal(rep.header('Message-ID'), messageId);
    await closeAll(p);
  });

  it('R-81: an end-to-end request (NICKNAME) is forwarded and its response comes back with the original tid', async () => {
    const p = await pair(t);
    const tid = p.a.sendRequest({ method: 'NICKNAME', toPath: p.ab, headers: [['Use-Nickname', '"Alice"']] });
    const f = await p.b.waitFor((x) => x.method === 'NICKNAME');
    assert.equal(f.header('Use-Nickname'), '"Alice"');
    p.b.respond(f, 425, 'Nickname reserved or already in use');
    const r = await p.a.waitForResponse(tid);
    assert.equal(r.status, 425);
    assert.deepEqual(r.toPath, [p.a.uri]);
    assert.deepEqual(r.fromPath, [p.ta, p.tb, p.b.uri]);
    await closeAll(p);
  });

  it('R-74, I-7: unknown methods such as FILE_OFFSET are forwarded', async () => {
    const p = await pair(t);
    p.a.sendRequest({ method: 'FILE_OFFSET', toPath: p.ab, headers: [['Message-ID', 'fileoffset1']] });
    const f = await p.b.waitFor((x) => x.method === 'FILE_OFFSET');
    assert.deepEqual(f.toPath, [p.b.uri]);
    await closeAll(p);
  });

  it('TLS on both legs', async () => {
    const p = await pair(t, { tls: true });
    const { messageId } = await p.a.sendMessage({ toPath: p.ab, body: 'over TLS' });
    const f = await p.b.waitFor((x) => x.header('Message-ID') === messageId);
    assert.equal(f.body.toString(), 'over TLS');
    assert.match(p.ta, /^msrps:/);
    await closeAll(p);
  });
});

describe('streaming (R-71)', () => {
  let t: TestRelay;
  before(async () => {
    // Default timeouts: a test client answers a chunk only after its own chunk in progress
    // ends, which for a single 50 MiB chunk is longer than the short timer used above.
    t = await startTestRelay({ users });
  });
  after(() => t.close());

  it('50 MiB of binary goes through as streamed chunks, intact, both ways at once (R-71)', async () => {
    const p = await pair(t, { storeBodies: false });
    const size = 50 * 2 ** 20;
    const srcA = seededSource(1);
    const srcB = seededSource(2);
    const [ra, rb] = await Promise.all([
      p.a.streamMessage({ toPath: p.ab, size, source: srcA, chunkSize: 4 * 2 ** 20 }),
      p.b.streamMessage({ toPath: p.ba, size, source: srcB }),
    ]);
    const ma = await p.b.waitForMessage(ra.messageId, 60000);
    const mb = await p.a.waitForMessage(rb.messageId, 60000);
    assert.equal(ma.bytes, size);
    assert.equal(ma.sha256, hashSource(size, srcA));
    assert.equal(mb.bytes, size);
    assert.equal(mb.sha256, hashSource(size, srcB));
    await closeAll(p);
  });
});

describe('tokens and direction (R-48 … R-57a)', () => {
  let t: TestRelay;
  before(async () => {
    t = await startTestRelay({ users });
  });
  after(() => t.close());

  it('R-52: an unknown token gets 481 and nothing is forwarded', async () => {
    const p = await pair(t);
    const bogus = p.tb.replace(/\/[A-Za-z0-9]+;/, '/AAAAAAAAAAAAAAAAAAAAAA;');
    const { responses } = await p.a.sendMessage({ toPath: [p.ta, bogus, p.b.uri], body: 'x' });
    assert.equal(responses[0]!.status, 481);
    const r2 = await p.a.sendMessage({ toPath: [bogus, p.b.uri], body: 'y' });
    assert.equal(r2.responses[0]!.status, 481);
    assert.equal(await p.b.expectNone((x) => x.method === 'SEND', 200), true);
    await closeAll(p);
  });

  it('R-50: the session-id is compared case-sensitively', async () => {
    const p = await pair(t);
    const swapped = p.tb.replace(/\/([A-Za-z0-9]+);/, (_m, id: string) => `/${id.toLowerCase() === id ? id.toUpperCase() : id.toLowerCase()};`);
    const { responses } = await p.a.sendMessage({ toPath: [p.ta, swapped, p.b.uri], body: 'x' });
    assert.equal(responses[0]!.status, 481);
    await closeAll(p);
  });

  it('R-51: a stranger may only deliver toward the owner; any other next hop gets 403', async () => {
    const p = await pair(t);
    const z = await MsrpTestClient.connect({ port: t.tcpPort });
    // Toward B through B's token: allowed (B is the owner's previous hop).
    const ok = await z.sendMessage({ toPath: [p.tb, p.b.uri], body: 'to bob' });
    assert.equal(ok.responses[0]!.status, 200);
    await p.b.waitFor((x) => x.header('Message-ID') === ok.messageId);
    // Through B's token to somewhere else: refused, not an open relay.
    const bad = await z.sendMessage({ toPath: [p.tb, 'msrp://127.0.0.1:9/evil;tcp'], body: 'x' });
    assert.equal(bad.responses[0]!.status, 403);
    await z.close();
    await closeAll(p);
  });

  it('R-57a: a second far-end connection toward a bound token gets 506', async () => {
    const p = await pair(t);
    const z1 = await MsrpTestClient.connect({ port: t.tcpPort });
    const z2 = await MsrpTestClient.connect({ port: t.tcpPort });
    const first = await z1.sendMessage({ toPath: [p.tb, p.b.uri], body: 'first' });
    assert.equal(first.responses[0]!.status, 200);
    const second = await z2.sendMessage({ toPath: [p.tb, p.b.uri], body: 'second' });
    assert.equal(second.responses[0]!.status, 506);
    await Promise.all([z1.close(), z2.close()]);
    await closeAll(p);
  });

  it('R-15: when the owner disconnects its token is invalidated (481)', async () => {
    const p = await pair(t);
    await p.b.close();
    await new Promise((r) => setTimeout(r, 50));
    const { responses } = await p.a.sendMessage({ toPath: p.ab, body: 'gone?' });
    assert.equal(responses[0]!.status, 481);
    await p.a.close();
  });

  it('R-75: an unknown method addressed to the relay alone gets 501', async () => {
    const c = await MsrpTestClient.connect({ port: t.tcpPort });
    const tid = c.sendRequest({ method: 'FOO', toPath: [`msrp://127.0.0.1:${t.tcpPort};tcp`] });
    assert.equal((await c.waitForResponse(tid)).status, 501);
    await c.close();
  });

  it('R-53: a request whose first URI is not this relay closes the connection', async () => {
    const c = await MsrpTestClient.connect({ port: t.tcpPort });
    c.sendRequest({ method: 'SEND', toPath: ['msrp://elsewhere.example.net:2855/abc;tcp', 'msrp://127.0.0.1:1/x;tcp'], headers: [['Message-ID', 'msg00001']] });
    await c.closed;
    assert.ok(c.isClosed);
  });

  it('peer-first binding (I-10): the far end sends first, and the owner\'s replies go back over that connection', async () => {
    const a = await MsrpTestClient.connect({ port: t.tcpPort });
    const ra = await a.auth({ relayUri: 'msrp://example.com;tcp', username: 'alice', password: 'secret' });
    const ta = ra.usePath[0]!;
    // B connects straight to A's token, without AUTH, naming a From-Path port that is not its own.
    const b = await MsrpTestClient.connect({ port: t.tcpPort, uri: 'msrp://127.0.0.1:2855/bobsession;tcp' });
    const first = await b.sendMessage({ toPath: [ta, a.uri], body: 'hello from B' });
    assert.equal(first.responses[0]!.status, 200);
    const got = await a.waitFor((x) => x.header('Message-ID') === first.messageId);
    assert.deepEqual(got.fromPath, [ta, b.uri]);
    const reply = await a.sendMessage({ toPath: [ta, b.uri], body: 'hello back' });
    assert.equal(reply.responses[0]!.status, 200);
    const back = await b.waitFor((x) => x.header('Message-ID') === reply.messageId);
    assert.equal(back.body.toString(), 'hello back');
    assert.deepEqual(back.fromPath, [ta, a.uri]);
    await Promise.all([a.close(), b.close()]);
  });
});

describe('message size (R-72)', () => {
  it('a chunk whose Byte-Range total is over the limit gets 413, and so does every later chunk of it', async () => {
    const t = await startTestRelay({ users, limits: { maxMessageSize: 1000 } });
    try {
      const p = await pair(t);
      const r1 = await p.a.sendMessage({ toPath: p.ab, body: Buffer.alloc(600), messageId: 'big1', extraHeaders: [] , chunkSize: 600 });
      assert.equal(r1.responses[0]!.status, 200);
      // Announce a 2000-byte message: refused at its first chunk.
      const tid = p.a.sendRequest({
        method: 'SEND',
        toPath: p.ab,
        headers: [['Message-ID', 'big2'], ['Byte-Range', '1-500/2000']],
        body: Buffer.alloc(500),
      });
      assert.equal((await p.a.waitForResponse(tid)).status, 413);
      const tid2 = p.a.sendRequest({
        method: 'SEND',
        toPath: p.ab,
        headers: [['Message-ID', 'big2'], ['Byte-Range', '501-600/*']],
        body: Buffer.alloc(100),
      });
      assert.equal((await p.a.waitForResponse(tid2)).status, 413);
      assert.equal(await p.b.expectNone((x) => x.header('Message-ID') === 'big2', 200), true);
      await closeAll(p);
    } finally {
      await t.close();
    }
  });
});
