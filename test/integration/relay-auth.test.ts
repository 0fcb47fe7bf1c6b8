// AUTH against a real relay on loopback sockets (RFC 4976 §5.1, §6.3, §9.1; RFC.md R-31 … R-47, I-1 … I-3).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MsrpTestClient } from '../../core/testing/client.ts';
import { startTestRelay, type TestRelay } from '../../core/testing/harness.ts';
import { parseChallenge, parseAuthenticationInfo } from '../../core/protocol/digest.ts';
import { parseUri } from '../../core/protocol/uri.ts';

const users = [
  { username: 'alice', domain: 'example.com', password: 'secret' },
  { username: 'bob', domain: 'example.com', password: 'secret' },
  { username: 'carol', domain: 'example.com', password: 'secret', disabled: true },
];

describe('AUTH', () => {
  let t: TestRelay;
  before(async () => {
    t = await startTestRelay({
      tls: true,
      users,
      plugins: [['domain-map', { default: 'example.com' }]],
      timeouts: { nonce: 1 },
    });
  });
  after(() => t.close());

  const connect = (o: { tls?: boolean } = {}) =>
    MsrpTestClient.connect(o.tls === true ? { port: t.tlsPort!, tls: { ca: t.certificates!.ca.cert, servername: 'localhost' } } : { port: t.tcpPort });

  it('R-31, R-33, I-1: an AUTH without credentials gets 401 with a Digest challenge: realm, nonce, non-empty opaque, qop="auth"', async () => {
    const c = await connect();
    const tid = c.sendRequest({ method: 'AUTH', toPath: [t.authUri()], headers: [] });
    const r = await c.waitForResponse(tid);
    assert.equal(r.status, 401);
    const wa = r.header('WWW-Authenticate')!;
    assert.match(wa, /^Digest /);
    assert.match(wa, /qop="auth"/);
    assert.doesNotMatch(wa, /auth-int|MD5-sess|domain=/i);
    const ch = parseChallenge(wa);
    assert.equal(ch.realm, 'example.com');
    assert.ok(ch.nonce.length >= 22);
    assert.ok(ch.opaque.length > 0);
    // R-42 mirror: the paths of an end-to-end response.
    assert.deepEqual(r.toPath, [c.uri]);
    assert.deepEqual(r.fromPath, [t.authUri()]);
    await c.close();
  });

  it('R-42: the 200 carries Use-Path on the listener scheme and port, Expires, and Authentication-Info with rspauth', async () => {
    const c = await connect({ tls: true });
    const r = await c.auth({ relayUri: t.authUri('tls'), username: 'alice', password: 'secret' });
    assert.equal(r.status, 200);
    assert.equal(r.usePath.length, 1);
    const u = parseUri(r.usePath[0]!);
    assert.equal(u.scheme, 'msrps');
    assert.equal(u.port, t.tlsPort);
    assert.equal(u.transport, 'tcp');
    // R-47, I-5: 128 bits in letters and digits.
    assert.match(u.sessionId!, /^[A-Za-z0-9]{22}$/);
    assert.equal(r.expires, 600);
    const info = parseAuthenticationInfo(r.response.header('Authentication-Info')!);
    assert.equal(info.qop, 'auth');
    assert.match(info.rspauth, /^[0-9a-f]{32}$/);
    await c.close();
  });

  it('R-47: every AUTH gets a fresh token, several per connection (R-13)', async () => {
    const c = await connect();
    const a = await c.auth({ relayUri: t.authUri(), username: 'alice', password: 'secret' });
    const b = await c.auth({ relayUri: t.authUri(), username: 'alice', password: 'secret' });
    assert.equal(a.status, 200);
    assert.equal(b.status, 200);
    assert.notEqual(a.usePath[0], b.usePath[0]);
    await c.close();
  });

  it('I-2, I-3: python-msrplib style works: AUTH to the bare SIP domain, no uri=, quoted qop and nc', async () => {
    const c = await connect();
    const r = await c.auth({ relayUri: 'msrp://example.com;tcp', username: 'bob', password: 'secret', quotedQopNc: true });
    assert.equal(r.status, 200);
    await c.close();
  });

  it('I-3: AUTH To-Path with port 2855 is accepted whatever port the relay listens on', async () => {
    const c = await connect();
    const r = await c.auth({ relayUri: 'msrps://example.com:2855;tcp', username: 'bob', password: 'secret', digestUri: 'include' });
    assert.equal(r.status, 200);
    await c.close();
  });

  it('R-37: a wrong password and an unknown user get 401 with a fresh challenge', async () => {
    const c = await connect();
    const wrong = await c.auth({ relayUri: t.authUri(), username: 'alice', password: 'nope' });
    assert.equal(wrong.status, 401);
    assert.ok(wrong.response.header('WWW-Authenticate'));
    const unknown = await c.auth({ relayUri: t.authUri(), username: 'mallory', password: 'x' });
    assert.equal(unknown.status, 401);
    await c.close();
  });

  it('R-43: three failed AUTHs close the connection', async () => {
    const c = await connect();
    for (let i = 0; i < 3; i++) {
      const r = await c.auth({ relayUri: t.authUri(), username: 'alice', password: 'nope' });
      assert.equal(r.status, 401);
    }
    await c.closed;
    assert.ok(c.isClosed);
  });

  it('R-38: valid credentials of a disabled account get 403', async () => {
    const c = await connect();
    const r = await c.auth({ relayUri: t.authUri(), username: 'carol', password: 'secret' });
    assert.equal(r.status, 403);
    await c.close();
  });

  it('R-41: Expires below the minimum gets 423 with Min-Expires, above the maximum 423 with Max-Expires, in range is granted', async () => {
    const c = await connect();
    const low = await c.auth({ relayUri: t.authUri(), username: 'alice', password: 'secret', expires: 1 });
    assert.equal(low.status, 423);
    assert.equal(low.response.header('Min-Expires'), '60');
    const high = await c.auth({ relayUri: t.authUri(), username: 'alice', password: 'secret', expires: 999999 });
    assert.equal(high.status, 423);
    assert.equal(high.response.header('Max-Expires'), '3600');
    const ok = await c.auth({ relayUri: t.authUri(), username: 'alice', password: 'secret', expires: 120 });
    assert.equal(ok.status, 200);
    assert.equal(ok.expires, 120);
    await c.close();
  });

  it('R-41: a non-numeric Expires gets 400', async () => {
    const c = await connect();
    const tid = c.sendRequest({ method: 'AUTH', toPath: [t.authUri()], headers: [['Expires', 'soon']] });
    assert.equal((await c.waitForResponse(tid)).status, 400);
    await c.close();
  });

  it('R-34: Basic credentials get a Digest 401', async () => {
    const c = await connect();
    const tid = c.sendRequest({ method: 'AUTH', toPath: [t.authUri()], headers: [['Authorization', 'Basic YWxpY2U6c2VjcmV0']] });
    const r = await c.waitForResponse(tid);
    assert.equal(r.status, 401);
    assert.match(r.header('WWW-Authenticate')!, /^Digest /);
    await c.close();
  });

  it('R-35: Digest credentials without cnonce get 400', async () => {
    const c = await connect();
    const tid = c.sendRequest({
      method: 'AUTH',
      toPath: [t.authUri()],
      headers: [['Authorization', 'Digest username="alice", realm="example.com", nonce="abc", response="0123456789abcdef0123456789abcdef", qop=auth, nc=00000001']],
    });
    assert.equal((await c.waitForResponse(tid)).status, 400);
    await c.close();
  });

  it('R-39: an expired nonce gets 401 with stale=TRUE; R-40: a used nonce cannot authenticate twice', async () => {
    const c = await connect();
    const tid = c.sendRequest({ method: 'AUTH', toPath: [t.authUri()] });
    const ch = parseChallenge((await c.waitForResponse(tid)).header('WWW-Authenticate')!);
    // Answer the challenge after the 1 s nonce lifetime.
    await new Promise((r) => setTimeout(r, 1300));
    const { computeHa1, computeDigestResponse, formatAuthorization } = await import('../../core/protocol/digest.ts');
    const ha1 = computeHa1('alice', 'example.com', 'secret');
    const authz = (nonce: string, nc: string) =>
      formatAuthorization({
        username: 'alice',
        realm: 'example.com',
        nonce,
        response: computeDigestResponse({ ha1, nonce, nc, cnonce: 'c0ffee', qop: 'auth', method: 'AUTH', uri: t.authUri() }),
        cnonce: 'c0ffee',
        nc,
        opaque: ch.opaque,
      });
    const tid2 = c.sendRequest({ method: 'AUTH', toPath: [t.authUri()], headers: [['Authorization', authz(ch.nonce, '00000001')]] });
    const stale = await c.waitForResponse(tid2);
    assert.equal(stale.status, 401);
    const fresh = parseChallenge(stale.header('WWW-Authenticate')!);
    assert.equal(fresh.stale, true);
    const tid3 = c.sendRequest({ method: 'AUTH', toPath: [t.authUri()], headers: [['Authorization', authz(fresh.nonce, '00000001')]] });
    assert.equal((await c.waitForResponse(tid3)).status, 200);
    // The same nonce again, even with a new nc: refused.
    const tid4 = c.sendRequest({ method: 'AUTH', toPath: [t.authUri()], headers: [['Authorization', authz(fresh.nonce, '00000002')]] });
    const replay = await c.waitForResponse(tid4);
    assert.equal(replay.status, 401);
    assert.notEqual(parseChallenge(replay.header('WWW-Authenticate')!).stale, true);
    await c.close();
  });

  it('R-36: a uri= that is not the rightmost To-Path URI gets 400', async () => {
    const c = await connect();
    const tid = c.sendRequest({ method: 'AUTH', toPath: [t.authUri()] });
    const ch = parseChallenge((await c.waitForResponse(tid)).header('WWW-Authenticate')!);
    const { computeHa1, computeDigestResponse, formatAuthorization } = await import('../../core/protocol/digest.ts');
    const ha1 = computeHa1('alice', 'example.com', 'secret');
    const other = 'msrp://elsewhere.example.com:2855;tcp';
    const a = formatAuthorization({
      username: 'alice',
      realm: 'example.com',
      nonce: ch.nonce,
      uri: other,
      response: computeDigestResponse({ ha1, nonce: ch.nonce, nc: '00000001', cnonce: 'aa', qop: 'auth', method: 'AUTH', uri: other }),
      cnonce: 'aa',
      nc: '00000001',
      opaque: ch.opaque,
    });
    const tid2 = c.sendRequest({ method: 'AUTH', toPath: [t.authUri()], headers: [['Authorization', a]] });
    assert.equal((await c.waitForResponse(tid2)).status, 400);
    await c.close();
  });
});

describe('AUTH needs TLS (R-7)', () => {
  it('an AUTH on a plain TCP listener without insecureAuth gets 403 and the connection is closed', async () => {
    const t = await startTestRelay({ users, listen: [{ transport: 'tcp', host: '127.0.0.1', port: 0, insecureAuth: false }] });
    try {
      const strict = t.relay.listeners.find((l) => !l.insecureAuth)!;
      const c = await MsrpTestClient.connect({ port: strict.port });
      const tid = c.sendRequest({ method: 'AUTH', toPath: [`msrp://127.0.0.1:${strict.port};tcp`] });
      assert.equal((await c.waitForResponse(tid)).status, 403);
      await c.closed;
      assert.ok(c.isClosed);
    } finally {
      await t.close();
    }
  });
});

describe('domain-map', () => {
  it('a domain outside `allowed` gets 403; an alias maps to its domain', async () => {
    const t = await startTestRelay({
      users,
      plugins: [['domain-map', { allowed: ['example.com'], aliases: { 'chat.example.com': 'example.com' } }]],
    });
    try {
      const c = await MsrpTestClient.connect({ port: t.tcpPort });
      const other = await c.auth({ relayUri: 'msrp://example.org;tcp', username: 'alice', password: 'secret' });
      assert.equal(other.status, 403);
      const alias = await c.auth({ relayUri: 'msrp://chat.example.com;tcp', username: 'alice', password: 'secret' });
      assert.equal(alias.status, 200);
      await c.close();
    } finally {
      await t.close();
    }
  });
});
