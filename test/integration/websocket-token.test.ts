/**
 * Browsers without SIP passwords (W-9): a JWT checked at the WebSocket upgrade (the ws-token
 * plugin on the websocket plugin's authorizeUpgrade hook) pre-authorises the connection, and
 * its AUTH gets 200 without a challenge and without Authentication-Info. A missing, expired or
 * bad token falls back to Digest (401 challenge), or with `required` refuses the upgrade (HTTP 401).
 */

import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { jwtVerify, SignJWT } from 'jose';
import { main } from '../../core/cli.ts';
import { startTestRelay, type TestRelay } from '../../core/testing/index.ts';
import { mint } from '../../plugins/ws-token/index.ts';
import { connectWs, upgradeStatus } from '../support/ws-client.ts';

const SECRET = 'a shared secret of the web application, 32+ octets';
const users = [{ username: 'alice', domain: 'example.com', password: 'secret' }];

async function relayWith(options: Record<string, unknown>) {
  const t = await startTestRelay({
    users,
    listen: [{ transport: 'ws', host: '127.0.0.1', port: 0, insecureAuth: true }],
    plugins: [['ws-token', { secret: SECRET, ...options }]],
  });
  const port = t.relay.listeners.find((l) => l.transport === 'ws')!.port;
  return { t, url: `ws://127.0.0.1:${port}/`, relayUri: `msrp://example.com:${port};ws` };
}

/** A token signed with `secret`, `exp` seconds from now (negative: expired). */
function token(sub: string, exp: number, secret = SECRET): Promise<string> {
  return new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject(sub).setExpirationTime(Math.floor(Date.now() / 1000) + exp).sign(new TextEncoder().encode(secret));
}

describe('ws-token: JWT pre-authorisation at the upgrade (W-9)', () => {
  let r: Awaited<ReturnType<typeof relayWith>>;
  let t: TestRelay;
  before(async () => {
    r = await relayWith({});
    t = r.t;
  });
  after(() => t.close());

  it('answers the AUTH of a connection opened with a valid token 200 at once: no challenge, no Authentication-Info', async () => {
    const jwt = await mint(SECRET, 'alice@example.com', 60);
    for (const how of ['query', 'cookie', 'bearer'] as const) {
      const c = await connectWs(how === 'query' ? `${r.url}?token=${jwt}` : r.url, {
        headers: how === 'cookie' ? { Cookie: `theme=dark; msrp_token=${jwt}` } : how === 'bearer' ? { Authorization: `Bearer ${jwt}` } : {},
      });
      const a = await c.client.auth({ relayUri: r.relayUri, username: 'alice', password: 'not used' });
      assert.equal(a.status, 200, how);
      assert.equal(a.challenge, a.response, `${how}: a single AUTH, no 401`);
      assert.equal(a.response.header('Authentication-Info'), undefined);
      assert.equal(a.usePath.length, 1);
      const s = [...t.relay.sessions.values()].find((x) => x.uri === a.usePath[0])!;
      assert.deepEqual([s.identity.username, s.identity.domain, s.identity.method], ['alice', 'example.com', 'token']);
      // Several sessions on the pre-authorised socket (I-12).
      assert.equal((await c.client.auth({ relayUri: r.relayUri, username: 'alice', password: 'x' })).status, 200);
      await c.client.close();
    }
  });

  it('challenges the AUTH (Digest as usual) when the token is expired, badly signed, for another domain, or absent', async () => {
    const cases = {
      expired: await token('alice@example.com', -60),
      'wrong key': await token('alice@example.com', 60, 'another secret that is long enough......'),
      'other domain': await token('alice@example.net', 60),
      garbage: 'not.a.jwt',
      none: '',
    };
    for (const [what, jwt] of Object.entries(cases)) {
      const c = await connectWs(jwt === '' ? r.url : `${r.url}?token=${jwt}`);
      const a = await c.client.auth({ relayUri: r.relayUri, username: 'alice', password: 'secret' });
      // The first AUTH got a 401 challenge; the Digest answer with the password then got 200.
      assert.equal(a.challenge.status, 401, what);
      assert.ok(a.challenge.header('WWW-Authenticate')!.startsWith('Digest '), what);
      assert.equal(a.status, 200, what);
      await c.client.close();
    }
  });

  it('lets the pre-authorisation die with its socket: a new WebSocket without the token is challenged (I-17)', async () => {
    const c = await connectWs(`${r.url}?token=${await mint(SECRET, 'alice@example.com', 60)}`);
    assert.equal((await c.client.auth({ relayUri: r.relayUri, username: 'alice', password: 'x' })).challenge.status, 200);
    await c.client.close();
    const d = await connectWs(r.url);
    const tid = d.client.sendRequest({ method: 'AUTH', toPath: [r.relayUri] });
    assert.equal((await d.client.waitForResponse(tid)).status, 401);
    await d.client.close();
  });

  it('with `required`, refuses the upgrade with HTTP 401 unless the token is valid', async () => {
    const q = await relayWith({ required: true });
    assert.equal(await upgradeStatus(q.url), 401);
    assert.equal(await upgradeStatus(`${q.url}?token=${await token('alice@example.com', -60)}`), 401);
    assert.equal(await upgradeStatus(`${q.url}?token=${await mint(SECRET, 'alice@example.com', 60)}`), 101);
    await q.t.close();
  });

  it('mints a token on the command line with the configured secret (msrprelay ws-token)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'msrprelay-wstoken-'));
    writeFileSync(join(dir, 'relay.json'), JSON.stringify({ listen: [{ transport: 'ws', host: '127.0.0.1', port: 2857 }], plugins: [['ws-token', { secret: SECRET }]] }));
    const out: string[] = [];
    const code = await main(['ws-token', 'bob@example.com', '--ttl', '120', '--config', join(dir, 'relay.json')], { stdout: (s) => out.push(s), stderr: (s) => out.push(s), cwd: dir });
    assert.equal(code, 0, out.join('\n'));
    const { payload } = await jwtVerify(out.join('').trim(), new TextEncoder().encode(SECRET));
    assert.equal(payload.sub, 'bob@example.com');
    assert.equal(payload.exp! - payload.iat!, 120);
  });
});
