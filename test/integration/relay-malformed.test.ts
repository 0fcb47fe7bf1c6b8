// Bad input gets the RFC answer or a closed connection, and the relay keeps serving
// everyone else (RFC.md …; §2H timers).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MsrpTestClient } from '../../core/testing/client.ts';
import { startTestRelay, type TestRelay } from '../../core/testing/harness.ts';

const users = [
  { username: 'alice', domain: 'example.com', password: 'secret' },
  { username: 'bob', domain: 'example.com', password: 'secret' },
];
const CRLF = '\r\n';

interface Pair {
  a: MsrpTestClient;
  b: MsrpTestClient;
  ab: string[];
}

async function pair(t: TestRelay): Promise<Pair> {
  const a = await MsrpTestClient.connect({ port: t.tcpPort, timeoutMs: 5000 });
  const b = await MsrpTestClient.connect({ port: t.tcpPort, timeoutMs: 5000 });
  const ta = (await a.auth({ relayUri: 'msrp://example.com;tcp', username: 'alice', password: 'secret' })).usePath[0]!;
  const tb = (await b.auth({ relayUri: 'msrp://example.com;tcp', username: 'bob', password: 'secret' })).usePath[0]!;
  return { a, b, ab: [ta, tb, b.uri] };
}

/** The healthy pair still works: a message from A reaches B. */
async function stillServes(p: Pair): Promise<void> {
  const { messageId, responses } = await p.a.sendMessage({ toPath: p.ab, body: 'still here' });
  assert.equal(responses[0]!.status, 200);
  const f = await p.b.waitFor((x) => x.header('Message-ID') === messageId);
  assert.equal(f.body.toString(), 'still here');
}

/** A raw SEND frame from c along its pair's path, with the given header lines after the paths. */
function rawSend(c: MsrpTestClient, toPath: string[], tid: string, headerLines: string[], body = 'hi'): string {
  return (
    `MSRP ${tid} SEND${CRLF}To-Path: ${toPath.join(' ')}${CRLF}From-Path: ${c.uri}${CRLF}` +
    headerLines.map((h) => h + CRLF).join('') +
    `${CRLF}${body}${CRLF}-------${tid}$${CRLF}`
  );
}

describe('malformed requests', () => {
  let t: TestRelay;
  let healthy: Pair;
  before(async () => {
    t = await startTestRelay({ users });
    healthy = await pair(t);
  });
  after(async () => {
    await Promise.all([healthy.a.close(), healthy.b.close()]);
    await t.close();
  });

  const cases: Array<[string, (p: Pair, tid: string) => string]> = [
    ['R-18: a lower-case method', (p, tid) => rawSend(p.a, p.ab, tid, ['Message-ID: abcd1234', 'Byte-Range: 1-2/2', 'Content-Type: text/plain']).replace(' SEND', ' send')],
    ['R-21: a second To-Path (header injection)', (p, tid) => rawSend(p.a, p.ab, tid, ['Message-ID: abcd1234', `To-Path: msrp://127.0.0.1:9/evil;tcp`, 'Byte-Range: 1-2/2', 'Content-Type: text/plain'])],
    ['R-21: a repeated Message-ID', (p, tid) => rawSend(p.a, p.ab, tid, ['Message-ID: abcd1234', 'Message-ID: abcd5678', 'Byte-Range: 1-2/2', 'Content-Type: text/plain'])],
    ['R-22: a NUL inside a header value', (p, tid) => rawSend(p.a, p.ab, tid, ['Message-ID: abcd1234', 'Byte-Range: 1-2/2', 'X-Note: a\u0000b', 'Content-Type: text/plain'])],
    ['R-22: invalid UTF-8 in a header value', (p, tid) => rawSend(p.a, p.ab, tid, ['Message-ID: abcd1234', 'Byte-Range: 1-2/2', 'X-Note: \u00ff\u00fe', 'Content-Type: text/plain'])],
    ['R-23: a folded header line', (p, tid) => rawSend(p.a, p.ab, tid, ['Message-ID: abcd1234', 'Byte-Range: 1-2/2', 'X-Note: one', ' two', 'Content-Type: text/plain'])],
    ['a body without Content-Type', (p, tid) => rawSend(p.a, p.ab, tid, ['Message-ID: abcd1234', 'Byte-Range: 1-2/2'])],
    ['a malformed Byte-Range', (p, tid) => rawSend(p.a, p.ab, tid, ['Message-ID: abcd1234', 'Byte-Range: two-three/four', 'Content-Type: text/plain'])],
    ['a SEND without Message-ID', (p, tid) => rawSend(p.a, p.ab, tid, ['Byte-Range: 1-2/2', 'Content-Type: text/plain'])],
  ];

  for (const [name, frame] of cases) {
    it(`${name} gets 400, nothing is forwarded, and the relay serves on`, async () => {
      const p = await pair(t);
      const tid = `bad${Math.random().toString(36).slice(2, 12)}`;
      // latin1 keeps \u00ff as the single byte 0xff (invalid UTF-8 on the wire).
      p.a.write(Buffer.from(frame(p, tid), 'latin1'));
      const r = await p.a.waitForResponse(tid);
      assert.equal(r.status, 400);
      assert.deepEqual(r.toPath, [p.a.uri]);
      assert.equal(await p.b.expectNone((x) => x.method === 'SEND', 150), true);
      // The same connection goes on working after a 400.
      await stillServes(p);
      await stillServes(healthy);
      await Promise.all([p.a.close(), p.b.close()]);
    });
  }

  it('R-20: paths missing or out of order: the connection is closed without an answer', async () => {
    for (const head of [
      `MSRP abcd1234 SEND${CRLF}Message-ID: abcd1234${CRLF}`,
      `MSRP abcd1234 SEND${CRLF}From-Path: msrp://127.0.0.1:9/x;tcp${CRLF}To-Path: msrp://127.0.0.1:9/y;tcp${CRLF}`,
      `MSRP abcd1234 SEND${CRLF}To-Path: not a uri${CRLF}From-Path: msrp://127.0.0.1:9/x;tcp${CRLF}`,
    ]) {
      const c = await MsrpTestClient.connect({ port: t.tcpPort });
      c.write(`${head}-------abcd1234$${CRLF}`);
      await c.closed;
      assert.equal(c.frames.length, 0, 'no response can be addressed');
    }
    await stillServes(healthy);
  });

  it('garbage and other protocols (an HTTP request, random bytes) close the connection', async () => {
    for (const junk of ['GET / HTTP/1.1\r\nHost: x\r\n\r\n', Buffer.from([0x16, 0x03, 0x01, 0x00, 0xff, 0x00, 0x00, 0x0d, 0x0a, 0x0d, 0x0a])]) {
      const c = await MsrpTestClient.connect({ port: t.tcpPort });
      c.write(junk);
      await c.closed;
      assert.ok(c.isClosed);
    }
    await stillServes(healthy);
  });

  it('R-88: a header line over the limit: 400 when the paths were read, then the connection closes', async () => {
    const p = await pair(t);
    const tid = 'longhdr1';
    p.a.write(rawSend(p.a, p.ab, tid, ['Message-ID: abcd1234', `X-Long: ${'x'.repeat(9000)}`, 'Content-Type: text/plain']));
    const r = await p.a.waitForResponse(tid);
    assert.equal(r.status, 400);
    await p.a.closed;
    assert.equal(await p.b.expectNone((x) => x.method === 'SEND', 100), true);
    await stillServes(healthy);
    await p.b.close();
  });

  it('R-88: too many headers, or a start line over the limit, close the connection', async () => {
    const p = await pair(t);
    const many = Array.from({ length: 80 }, (_, i) => `X-H${i}: v`);
    p.a.write(rawSend(p.a, p.ab, 'manyhdr1', ['Message-ID: abcd1234', ...many, 'Content-Type: text/plain']));
    await p.a.closed;
    const c = await MsrpTestClient.connect({ port: t.tcpPort });
    c.write(`MSRP ${'a'.repeat(2000)} SEND\r\n`);
    await c.closed;
    await stillServes(healthy);
    await p.b.close();
  });

  it('R-29: a non-SEND request with a body over 10240 octets gets 400 and the connection closes', async () => {
    const p = await pair(t);
    const tid = 'bigrep01';
    p.a.write(
      `MSRP ${tid} NICKNAME${CRLF}To-Path: ${p.ab.join(' ')}${CRLF}From-Path: ${p.a.uri}${CRLF}Content-Type: text/plain${CRLF}${CRLF}` +
        'n'.repeat(12000) +
        `${CRLF}-------${tid}$${CRLF}`,
    );
    const r = await p.a.waitForResponse(tid);
    assert.equal(r.status, 400);
    await p.a.closed;
    await stillServes(healthy);
    await p.b.close();
  });

  it('a look-alike end-line with another tid inside a body is body, not an end (RFC 4975 §7.1)', async () => {
    const p = await pair(t);
    const body = `line one\r\n-------zzzz9999$\r\nline three\r\n-------`;
    const { messageId, responses } = await p.a.sendMessage({ toPath: p.ab, body });
    assert.equal(responses[0]!.status, 200);
    const f = await p.b.waitFor((x) => x.header('Message-ID') === messageId);
    assert.equal(f.body.toString(), body);
    await Promise.all([p.a.close(), p.b.close()]);
  });

  it('a frame written one byte at a time is relayed whole', async () => {
    const p = await pair(t);
    const tid = 'bytewise1';
    const frame = Buffer.from(rawSend(p.a, p.ab, tid, ['Message-ID: bytewise1', 'Byte-Range: 1-11/11', 'Content-Type: text/plain'], 'drip\r\ndrop!'));
    for (let i = 0; i < frame.length; i++) {
      p.a.write(frame.subarray(i, i + 1));
      if (i % 64 === 0) await new Promise((r) => setImmediate(r));
    }
    assert.equal((await p.a.waitForResponse(tid)).status, 200);
    const f = await p.b.waitFor((x) => x.header('Message-ID') === 'bytewise1');
    assert.equal(f.body.toString(), 'drip\r\ndrop!');
    await Promise.all([p.a.close(), p.b.close()]);
  });
});

describe('timers against idle and slow peers (§2H)', () => {
  let t: TestRelay;
  before(async () => {
    t = await startTestRelay({ users, timeouts: { firstRequest: 0.3, headerCompletion: 0.3 } });
  });
  after(() => t.close());

  it('R-9: a connection that sends nothing is closed after the first-request timeout', async () => {
    const c = await MsrpTestClient.connect({ port: t.tcpPort });
    const started = Date.now();
    await c.closed;
    assert.ok(Date.now() - started >= 250, 'closed by the timer, not at once');
  });

  it('slowloris: headers that never complete are cut off, while another client is served', async () => {
    // The first-request timer is long here: only the header-completion timer can close c in time.
    const slow = await startTestRelay({ users, timeouts: { firstRequest: 30, headerCompletion: 0.3 } });
    const p = await pair(slow);
    const c = await MsrpTestClient.connect({ port: slow.tcpPort });
    c.write(`MSRP slow1234 SEND${CRLF}To-Path: ${p.ab.join(' ')}${CRLF}`);
    const drip = setInterval(() => {
      if (!c.isClosed) c.write('X');
    }, 50);
    await stillServes(p);
    await c.closed;
    clearInterval(drip);
    await stillServes(p);
    await Promise.all([p.a.close(), p.b.close()]);
    await slow.close();
  });
});
