/**
 * examples/sip-chat-server with real SIP traffic: a second `sip` stack on another loopback
 * address plays the SIP clients (INVITE, ACK, BYE, SUBSCRIBE, MESSAGE), MSRP test clients AUTH
 * at the relay and talk in the room through the focus the INVITE answered with.
 */

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import sip, { type SipMessage, type SipStack } from 'sip';
import { MsrpTestClient, freePort } from '../../core/testing/index.ts';
import { msrpMedia, parseSdp, scanCpim, type CpimMessage } from '../../plugins/chat/index.ts';
import { startSipChatServer, type SipChatServer } from './server.ts';

const USERS = ['alice', 'bob', 'carol'].map((username) => ({ username, domain: 'example.com', password: 'secret' }));
const rnd = () => randomBytes(6).toString('hex');

/** The SIP side of the test clients: one stack on 127.0.0.2, requests to it queued for waits. */
class Uac {
  readonly stack: SipStack;
  readonly received: SipMessage[] = [];
  private waiters: Array<{ pred: (m: SipMessage) => boolean; resolve: (m: SipMessage) => void }> = [];

  constructor(readonly port: number) {
    this.stack = sip.create({ address: '127.0.0.2', port, tcp: false }, (rq) => {
      if (rq.method !== 'ACK') this.stack.send(sip.makeResponse(rq, 200, 'OK'));
      this.received.push(rq);
      for (const w of [...this.waiters]) if (w.pred(rq)) {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        w.resolve(rq);
      }
    });
  }

  /** The next request to the clients (already answered 200) that matches. */
  request(pred: (m: SipMessage) => boolean): Promise<SipMessage> {
    const seen = this.received.find(pred);
    if (seen !== undefined) {
      this.received.splice(this.received.indexOf(seen), 1);
      return Promise.resolve(seen);
    }
    return new Promise((resolve) => this.waiters.push({ pred, resolve }));
  }

  /** Sends a request; resolves with its final response. */
  send(m: SipMessage): Promise<SipMessage> {
    return new Promise((resolve) => this.stack.send(m, (rs) => (rs.status ?? 0) >= 200 && resolve(rs)));
  }
}

describe('examples/sip-chat-server', () => {
  let server: SipChatServer;
  let sipPort: number;
  let msrpPort: number;
  let uac: Uac;
  const clients: MsrpTestClient[] = [];
  /** Bob's call from the first test, hung up in the third. */
  let bobCall: Awaited<ReturnType<typeof call>>;

  before(async () => {
    sipPort = await freePort();
    msrpPort = await freePort();
    // Without SIP authentication: the From is the identity (sip-auth.test.ts has it on).
    server = await startSipChatServer({ domain: 'example.com', sip: { address: '127.0.0.1', port: sipPort }, msrp: { hostname: '127.0.0.1', host: '127.0.0.1', port: msrpPort }, users: USERS, chat: { store: { driver: 'memory' } }, auth: false });
    uac = new Uac(await freePort());
  });
  after(async () => {
    for (const c of clients) await c.close();
    uac.stack.destroy();
    await server.close();
  });

  /** A user's MSRP client and its call into a room: INVITE with its offer, the 200, the ACK. */
  async function call(user: string, room: string, o: { acceptTypes?: string } = {}) {
    const c = await MsrpTestClient.connect({ port: msrpPort, timeoutMs: 10_000 });
    clients.push(c);
    const auth = await c.auth({ relayUri: 'msrp://example.com;tcp', username: user, password: 'secret' });
    assert.equal(auth.status, 200);
    const offer = ['v=0', 'o=- 1 1 IN IP4 127.0.0.2', 's=-', 't=0 0', 'm=message 2855 TCP/MSRP *', 'c=IN IP4 127.0.0.2', `a=path:${auth.usePath[0]} ${c.uri}`, `a=accept-types:${o.acceptTypes ?? 'message/cpim text/plain'}`, 'a=accept-wrapped-types:*', 'a=chatroom:nickname private-messages', 'a=setup:active', ''].join('\r\n');
    const from = { name: user, uri: `sip:${user}@example.com`, params: { tag: rnd() } };
    const callId = rnd();
    const rs = await uac.send({
      method: 'INVITE',
      uri: `sip:${room}@127.0.0.1:${sipPort}`,
      headers: {
        to: { uri: `sip:${room}@example.com`, params: {} },
        from,
        'call-id': callId,
        cseq: { method: 'INVITE', seq: 1 },
        contact: [{ uri: `sip:${user}@127.0.0.2:${uac.port}`, params: {} }],
        'content-type': 'application/sdp',
        'max-forwards': '70',
      },
      content: offer,
    });
    const dialog = { from, to: rs.headers.to, callId, target: Array.isArray(rs.headers.contact) ? String(rs.headers.contact[0]!.uri) : '' };
    if (rs.status === 200) uac.stack.send({ method: 'ACK', uri: dialog.target, headers: { to: rs.headers.to, from, 'call-id': callId, cseq: { method: 'ACK', seq: 1 }, via: [] } });
    const focusUri = rs.status === 200 ? msrpMedia(parseSdp(rs.content!))[0]!.path[0]! : '';
    return { c, rs, dialog, toPath: [...auth.usePath, focusUri], sip: `sip:${user}@example.com` };
  }

  function cpim(from: string, to: string, text: string): Buffer {
    return Buffer.from(`From: <${from}>\r\nTo: <${to}>\r\nDateTime: 2024-05-01T10:00:00Z\r\n\r\nContent-Type: text/plain\r\n\r\n${text}`);
  }

  async function got(c: MsrpTestClient, text: string): Promise<CpimMessage> {
    const f = await c.waitFor((x) => x.method === 'SEND' && x.body.toString().endsWith(`\r\n\r\n${text}`));
    return scanCpim(f.body, true) as CpimMessage;
  }

  it('INVITE joins the room: 200 with the focus\'s SDP answer and an isfocus Contact; MSRP then flows', async () => {
    const alice = await call('alice', 'lobby');
    assert.equal(alice.rs.status, 200);
    assert.equal(alice.rs.headers['content-type'], 'application/sdp');
    assert.match(alice.dialog.target, /^sip:lobby@127\.0\.0\.1:\d+$/);
    assert.equal((alice.rs.headers.contact as Array<{ params: Record<string, unknown> }>)[0]!.params.isfocus, null);
    assert.match(alice.rs.content!, /a=accept-types:message\/cpim/);
    const bob = await call('bob', 'lobby');
    bobCall = bob;
    assert.equal(bob.rs.status, 200);
    const room = server.chat.rooms.get('sip:lobby@example.com')!;
    assert.equal(room.participants.length, 2);
    const sent = await alice.c.sendMessage({ toPath: alice.toPath, body: cpim(alice.sip, room.uri, 'hello over SIP and MSRP'), contentType: 'message/cpim' });
    assert.equal(sent.responses[0]!.status, 200);
    assert.equal((await got(bob.c, 'hello over SIP and MSRP')).from.uri, alice.sip);
  });

  it('an offer without CPIM gets 488; a MESSAGE to the room gets 405', async () => {
    const carol = await call('carol', 'lobby', { acceptTypes: 'text/plain' });
    assert.equal(carol.rs.status, 488);
    const rs = await uac.send({
      method: 'MESSAGE',
      uri: `sip:lobby@127.0.0.1:${sipPort}`,
      headers: { to: { uri: 'sip:lobby@example.com', params: {} }, from: { uri: 'sip:carol@example.com', params: { tag: rnd() } }, 'call-id': rnd(), cseq: { method: 'MESSAGE', seq: 1 }, 'content-type': 'text/plain', 'max-forwards': '70' },
      content: 'page mode',
    });
    assert.equal(rs.status, 405);
  });

  it('SUBSCRIBE to the conference package: NOTIFYs with the roster, again when someone leaves with BYE', async () => {
    const room = server.chat.rooms.get('sip:lobby@example.com')!;
    const carol = await call('carol', 'lobby');
    const callId = rnd();
    const rs = await uac.send({
      method: 'SUBSCRIBE',
      uri: `sip:lobby@127.0.0.1:${sipPort}`,
      headers: { to: { uri: 'sip:lobby@example.com', params: {} }, from: { uri: 'sip:carol@example.com', params: { tag: rnd() } }, 'call-id': callId, cseq: { method: 'SUBSCRIBE', seq: 1 }, contact: [{ uri: `sip:carol@127.0.0.2:${uac.port}`, params: {} }], event: 'conference', expires: '60', 'max-forwards': '70' },
    });
    assert.equal(rs.status, 200);
    const first = await uac.request((m) => m.method === 'NOTIFY' && m.headers['call-id'] === callId);
    assert.equal(first.headers['content-type'], 'application/conference-info+xml');
    assert.match(String(first.headers['subscription-state']), /^active;expires=\d+$/);
    assert.match(first.content!, /<user-count>3<\/user-count>/);
    assert.match(first.content!, /entity="sip:bob@example.com"/);
    // Bob hangs up: the room tells the subscriber.
    const d = bobCall.dialog;
    const bye = await uac.send({ method: 'BYE', uri: d.target, headers: { to: d.to, from: d.from, 'call-id': d.callId, cseq: { method: 'BYE', seq: 2 }, 'max-forwards': '70' } });
    assert.equal(bye.status, 200);
    const after = await uac.request((m) => m.method === 'NOTIFY' && m.headers['call-id'] === callId && !String(m.content).includes('sip:bob@example.com'));
    assert.match(after.content!, /<user-count>2<\/user-count>/);
    assert.equal(room.participants.some((p) => p.user === 'bob@example.com'), false);
    assert.equal(carol.rs.status, 200);
  });

  it('a participant the room drops is sent a BYE by the server', async () => {
    const room = server.chat.rooms.get('sip:lobby@example.com')!;
    room.kick('sip:alice@example.com');
    const bye = await uac.request((m) => m.method === 'BYE' && String(m.uri).startsWith('sip:alice@127.0.0.2'));
    assert.equal(bye.headers.from.params.tag !== undefined, true);
  });
});
