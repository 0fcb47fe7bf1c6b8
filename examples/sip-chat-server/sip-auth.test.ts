/**
 * examples/sip-chat-server with SIP Digest authentication on (the default): INVITE, SUBSCRIBE and
 * MESSAGE are challenged (RFC 3261 §22, qop=auth) against the relay's MSRP accounts; the `sip`
 * package's own Digest client (an implementation independent of ours) answers the challenges.
 */

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import sip, { type SipMessage, type SipStack } from 'sip';
import digest from 'sip/digest.js';
import { MsrpTestClient, freePort } from '../../core/testing/index.ts';
import { parseChallenge } from '../../core/protocol/index.ts';
import { startSipChatServer, type SipChatServer } from './server.ts';

const USERS = ['alice', 'bob', 'carol'].map((username) => ({ username, domain: 'example.com', password: 'secret' }));
const rnd = () => randomBytes(6).toString('hex');

describe('examples/sip-chat-server: SIP Digest authentication', () => {
  let server: SipChatServer;
  let sipPort: number;
  let msrpPort: number;
  let stack: SipStack;
  let uacPort: number;
  /** The server's clock: moved forward to make a nonce stale. */
  let skew = 0;
  const clients: MsrpTestClient[] = [];

  before(async () => {
    sipPort = await freePort();
    msrpPort = await freePort();
    uacPort = await freePort();
    server = await startSipChatServer({
      domain: 'example.com',
      sip: { address: '127.0.0.1', port: sipPort },
      msrp: { hostname: '127.0.0.1', host: '127.0.0.1', port: msrpPort },
      users: USERS,
      chat: { store: { driver: 'memory' } },
      auth: { nonceLifetime: 30, now: () => Date.now() + skew },
    });
    // The `sip` package treats requests for its own address as its own: the clients are on 127.0.0.2.
    stack = sip.create({ address: '127.0.0.2', port: uacPort, tcp: false }, (rq) => {
      if (rq.method !== 'ACK') stack.send(sip.makeResponse(rq, 200, 'OK'));
    });
  });
  after(async () => {
    for (const c of clients) await c.close();
    stack.destroy();
    await server.close();
  });

  function send(m: SipMessage): Promise<SipMessage> {
    return new Promise((resolve) => stack.send(m, (rs) => (rs.status ?? 0) >= 200 && resolve(rs)));
  }

  /** An MSRP client that AUTHed at the relay, and the SDP offer naming it. */
  async function msrpOffer(user: string): Promise<string> {
    const c = await MsrpTestClient.connect({ port: msrpPort, timeoutMs: 10_000 });
    clients.push(c);
    const auth = await c.auth({ relayUri: 'msrp://example.com;tcp', username: user, password: 'secret' });
    assert.equal(auth.status, 200);
    return ['v=0', 'o=- 1 1 IN IP4 127.0.0.2', 's=-', 't=0 0', 'm=message 2855 TCP/MSRP *', 'c=IN IP4 127.0.0.2', `a=path:${auth.usePath[0]} ${c.uri}`, 'a=accept-types:message/cpim text/plain', 'a=accept-wrapped-types:*', 'a=setup:active', ''].join('\r\n');
  }

  /** A request out of dialog, made afresh for each attempt (a new CSeq, a new branch). */
  function request(method: string, o: { room: string; from: string; callId: string; seq: number; tag: string; sdp?: string; headers?: Record<string, unknown> }): SipMessage {
    return {
      method,
      uri: `sip:${o.room}@127.0.0.1:${sipPort}`,
      headers: {
        to: { uri: `sip:${o.room}@example.com`, params: {} },
        from: { uri: o.from, params: { tag: o.tag } },
        'call-id': o.callId,
        cseq: { method, seq: o.seq },
        contact: [{ uri: `sip:client@127.0.0.2:${uacPort}`, params: {} }],
        'max-forwards': '70',
        ...(o.sdp !== undefined ? { 'content-type': 'application/sdp' } : {}),
        ...(o.headers ?? {}),
      },
      ...(o.sdp !== undefined ? { content: o.sdp } : method === 'MESSAGE' ? { content: 'hello' } : {}),
    };
  }

  /** Sends, answers each 401 with `password` as a SIP client does (at most `tries` times); every response. */
  async function authenticated(method: string, o: { room: string; user: string; password: string; from?: string; sdp?: string; headers?: Record<string, unknown>; tries?: number }) {
    const base = { room: o.room, from: o.from ?? `sip:${o.user}@example.com`, callId: rnd(), tag: rnd(), ...(o.sdp !== undefined ? { sdp: o.sdp } : {}), ...(o.headers !== undefined ? { headers: o.headers } : {}) };
    const responses: SipMessage[] = [];
    let rs = await send(request(method, { ...base, seq: 1 }));
    responses.push(rs);
    for (let seq = 2; rs.status === 401 && seq <= (o.tries ?? 1) + 1; seq++) {
      const rq = request(method, { ...base, seq });
      digest.signRequest({}, rq, rs, { user: o.user, password: o.password });
      rs = await send(rq);
      responses.push(rs);
    }
    if (method === 'INVITE' && rs.status === 200) {
      const target = Array.isArray(rs.headers.contact) ? String(rs.headers.contact[0]!.uri) : '';
      stack.send({ method: 'ACK', uri: target, headers: { to: rs.headers.to, from: { uri: base.from, params: { tag: base.tag } }, 'call-id': base.callId, cseq: { method: 'ACK', seq: rs.headers.cseq.seq }, via: [] } });
    }
    return { rs, responses };
  }

  const challengeOf = (rs: SipMessage) => parseChallenge(String(rs.headers['www-authenticate'] === undefined ? '' : sip.stringifyAuthHeader((rs.headers['www-authenticate'] as Array<Record<string, string>>)[0]!)));

  it('an INVITE without credentials gets a Digest challenge (401, qop=auth); with the password it joins as the authenticated user', async () => {
    const { rs, responses } = await authenticated('INVITE', { room: 'lobby', user: 'alice', password: 'secret', sdp: await msrpOffer('alice') });
    assert.equal(responses[0]!.status, 401);
    const ch = challengeOf(responses[0]!);
    assert.equal(ch.realm, 'example.com');
    assert.deepEqual(ch.qop, ['auth']);
    assert.notEqual(ch.opaque, '');
    assert.equal(rs.status, 200);
    assert.match(rs.content!, /a=accept-types:message\/cpim/);
    const room = server.chat.rooms.get('sip:lobby@example.com')!;
    assert.deepEqual(room.participants.map((p) => p.identity.uri), ['sip:alice@example.com']);
  });

  it('a wrong password is challenged again, and the call fails: nobody joins', async () => {
    const { rs, responses } = await authenticated('INVITE', { room: 'lobby', user: 'bob', password: 'wrong', sdp: await msrpOffer('bob') });
    assert.deepEqual(responses.map((r) => r.status), [401, 401]);
    assert.equal(challengeOf(rs).stale, undefined, 'not stale: the password is wrong');
    const room = server.chat.rooms.get('sip:lobby@example.com')!;
    assert.equal(room.participants.some((p) => p.identity.uri === 'sip:bob@example.com'), false);
  });

  it('an unknown user is challenged like a wrong password', async () => {
    const { responses } = await authenticated('INVITE', { room: 'lobby', user: 'mallory', password: 'secret', from: 'sip:mallory@example.com', sdp: await msrpOffer('bob') });
    assert.deepEqual(responses.map((r) => r.status), [401, 401]);
  });

  it('a From that is not the authenticated user gets 403', async () => {
    const { rs } = await authenticated('INVITE', { room: 'lobby', user: 'carol', password: 'secret', from: 'sip:bob@example.com', sdp: await msrpOffer('carol') });
    assert.equal(rs.status, 403);
    const room = server.chat.rooms.get('sip:lobby@example.com')!;
    assert.equal(room.participants.some((p) => p.identity.uri === 'sip:bob@example.com' || p.identity.uri === 'sip:carol@example.com'), false);
  });

  it('an expired nonce with the right password gets 401 stale=TRUE and a fresh nonce, with which the call goes through', async () => {
    const sdp = await msrpOffer('bob');
    const base = { room: 'lobby', from: 'sip:bob@example.com', callId: rnd(), tag: rnd(), sdp };
    const first = await send(request('INVITE', { ...base, seq: 1 }));
    assert.equal(first.status, 401);
    skew += 31_000;
    const late = request('INVITE', { ...base, seq: 2 });
    digest.signRequest({}, late, first, { user: 'bob', password: 'secret' });
    const stale = await send(late);
    assert.equal(stale.status, 401);
    assert.equal(challengeOf(stale).stale, true);
    const again = request('INVITE', { ...base, seq: 3 });
    digest.signRequest({}, again, stale, { user: 'bob', password: 'secret' });
    const ok = await send(again);
    assert.equal(ok.status, 200);
    const room = server.chat.rooms.get('sip:lobby@example.com')!;
    assert.equal(room.participants.some((p) => p.identity.uri === 'sip:bob@example.com'), true);
  });

  it('a nonce is single-use: the next request with it gets stale=TRUE when the password is right', async () => {
    const base = { room: 'lobby', from: 'sip:alice@example.com', callId: rnd(), tag: rnd() };
    const first = await send(request('MESSAGE', { ...base, seq: 1 }));
    const rq = request('MESSAGE', { ...base, seq: 2 });
    const ctx = digest.signRequest({}, rq, first, { user: 'alice', password: 'secret' })!;
    assert.equal((await send(rq)).status, 405);
    const reuse = request('MESSAGE', { ...base, seq: 3 });
    digest.signRequest(ctx, reuse, undefined, { user: 'alice', password: 'secret' });
    const rs = await send(reuse);
    assert.equal(rs.status, 401);
    assert.equal(challengeOf(rs).stale, true);
  });

  it('SUBSCRIBE is challenged too; authenticated, it gets 200', async () => {
    const { rs, responses } = await authenticated('SUBSCRIBE', { room: 'lobby', user: 'carol', password: 'secret', headers: { event: 'conference', expires: '0' } });
    assert.equal(responses[0]!.status, 401);
    assert.equal(rs.status, 200);
  });

  it('MESSAGE is challenged too; authenticated, it gets the documented 405 (the room speaks MSRP)', async () => {
    const { rs, responses } = await authenticated('MESSAGE', { room: 'lobby', user: 'carol', password: 'secret' });
    assert.equal(responses[0]!.status, 401);
    assert.equal(rs.status, 405);
  });
});
