/**
 * examples/sip-chat-server with SIP Digest authentication on (the default): INVITE, SUBSCRIBE and
 * MESSAGE are challenged (RFC 3261 §22, qop=auth) against the relay's MSRP accounts, and so are
 * BYE, re-INVITE and re-SUBSCRIBE in their dialogs; the `sip` package's own Digest client (an
 * implementation independent of ours) answers the challenges and re-uses nonces with nc + 1.
 */

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import sip, { type NameAddr, type SipMessage, type SipStack } from 'sip';
import digest from 'sip/digest.js';
import { MsrpTestClient, freePort } from '../../core/testing/index.ts';
import { parseChallenge } from '../../core/protocol/index.ts';
import { startSipChatServer, type SipChatServer } from './server.ts';

const USERS = [...['alice', 'bob', 'carol'].map((username) => ({ username, domain: 'example.com', password: 'secret' })), { username: 'dave', domain: 'example.com', password: 'secret', disabled: true }];
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
  /** Requests the server sent to the clients (NOTIFY, BYE), answered 200, for the tests to wait on. */
  const received: SipMessage[] = [];
  let arrived: () => void = () => {};

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
      received.push(rq);
      arrived();
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

  /** Sends, answers each 401 with `password` as a SIP client does (at most `tries` times); every response, and the dialog a 200 set up. */
  async function authenticated(method: string, o: { room: string; user: string; password: string; from?: string; sdp?: string; headers?: Record<string, unknown>; tries?: number }) {
    const base = { room: o.room, from: o.from ?? `sip:${o.user}@example.com`, callId: rnd(), tag: rnd(), ...(o.sdp !== undefined ? { sdp: o.sdp } : {}), ...(o.headers !== undefined ? { headers: o.headers } : {}) };
    const responses: SipMessage[] = [];
    let rs = await send(request(method, { ...base, seq: 1 }));
    responses.push(rs);
    let ctx: object | null = null;
    let seq = 2;
    for (; rs.status === 401 && seq <= (o.tries ?? 1) + 1; seq++) {
      const rq = request(method, { ...base, seq });
      ctx = digest.signRequest({}, rq, rs, { user: o.user, password: o.password });
      rs = await send(rq);
      responses.push(rs);
    }
    if (method === 'INVITE' && rs.status === 200) ack(rs, { uri: base.from, params: { tag: base.tag } }, base.callId);
    const dialog: Dialog = { callId: base.callId, from: { uri: base.from, params: { tag: base.tag } }, to: rs.headers.to, target: Array.isArray(rs.headers.contact) ? String(rs.headers.contact[0]!.uri) : '', seq, user: o.user, ctx };
    return { rs, responses, dialog };
  }

  function ack(rs: SipMessage, from: NameAddr, callId: string): void {
    const target = Array.isArray(rs.headers.contact) ? String(rs.headers.contact[0]!.uri) : '';
    stack.send({ method: 'ACK', uri: target, headers: { to: rs.headers.to, from, 'call-id': callId, cseq: { method: 'ACK', seq: rs.headers.cseq.seq }, via: [] } });
  }

  /** A dialog as the client keeps it: its identifiers, the server's Contact, its CSeq, its Digest context (nonce, nc). */
  interface Dialog {
    callId: string;
    from: NameAddr;
    to: NameAddr;
    target: string;
    seq: number;
    user: string;
    ctx: object | null;
  }

  /** A request in dialog `d`: a new CSeq each time. */
  function inDialog(d: Dialog, method: string, o: { headers?: Record<string, unknown>; content?: string } = {}): SipMessage {
    return {
      method,
      uri: d.target,
      headers: { to: d.to, from: d.from, 'call-id': d.callId, cseq: { method, seq: d.seq++ }, contact: [{ uri: `sip:client@127.0.0.2:${uacPort}`, params: {} }], 'max-forwards': '70', ...(o.headers ?? {}) },
      ...(o.content !== undefined ? { content: o.content } : {}),
    };
  }

  /** Signs `rq` as the dialog's client does: over the last nonce with the next nc. */
  function resign(d: Dialog, rq: SipMessage, user = d.user): SipMessage {
    digest.signRequest(d.ctx!, rq, undefined, { user, password: 'secret' });
    return rq;
  }

  /** Sends an in-dialog request; on 401 signs it anew with `user`'s password (the dialog's Digest context moves to the new nonce). */
  async function inDialogAuthenticated(d: Dialog, method: string, o: { headers?: Record<string, unknown>; content?: string; user?: string; password?: string } = {}) {
    const first = await send(inDialog(d, method, o));
    if (first.status !== 401) return { first, rs: first };
    const rq = inDialog(d, method, o);
    d.ctx = digest.signRequest({}, rq, first, { user: o.user ?? d.user, password: o.password ?? 'secret' });
    return { first, rs: await send(rq) };
  }

  /** The next request from the server that matches. */
  async function nextRequest(pred: (m: SipMessage) => boolean): Promise<SipMessage> {
    for (;;) {
      const i = received.findIndex(pred);
      if (i >= 0) return received.splice(i, 1)[0]!;
      await new Promise<void>((r) => (arrived = r));
    }
  }

  const inRoom = (room: string, user: string) => server.chat.rooms.get(`sip:${room}@example.com`)?.participants.some((p) => p.identity.uri === `sip:${user}@example.com`) ?? false;

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

  it('a disabled account authenticates, then gets 403 on INVITE and SUBSCRIBE, as its MSRP AUTH does (checkAccount)', async () => {
    const invite = await authenticated('INVITE', { room: 'lobby', user: 'dave', password: 'secret', sdp: await msrpOffer('bob') });
    assert.deepEqual(invite.responses.map((r) => r.status), [401, 403]);
    assert.match(invite.rs.reason ?? '', /may not use this relay/);
    const subscribe = await authenticated('SUBSCRIBE', { room: 'lobby', user: 'dave', password: 'secret', headers: { event: 'conference', expires: '60' } });
    assert.deepEqual(subscribe.responses.map((r) => r.status), [401, 403]);
    assert.equal(server.chat.rooms.get('sip:lobby@example.com')?.participants.some((p) => p.identity.uri === 'sip:dave@example.com') ?? false, false);
    // The same account at the relay: authenticated, then 403.
    const c = await MsrpTestClient.connect({ port: msrpPort, timeoutMs: 10_000 });
    clients.push(c);
    assert.equal((await c.auth({ relayUri: 'msrp://example.com;tcp', username: 'dave', password: 'secret' })).status, 403);
    // A wrong password is still a plain challenge: the bar says nothing to a guesser.
    const guess = await authenticated('INVITE', { room: 'lobby', user: 'dave', password: 'wrong', sdp: await msrpOffer('bob') });
    assert.deepEqual(guess.responses.map((r) => r.status), [401, 401]);
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

  it('a BYE without credentials gets 401 and the caller stays; with them, 200 and the caller has left; the dialog and its nonce are gone', async () => {
    const { rs, dialog } = await authenticated('INVITE', { room: 'dialogs', user: 'alice', password: 'secret', sdp: await msrpOffer('alice') });
    assert.equal(rs.status, 200);
    const held = server.sipAuth!.heldNonces;
    // A MESSAGE in the dialog: challenged too, then the room's 405; with a To tag of no dialog, 481.
    const message = await inDialogAuthenticated(dialog, 'MESSAGE', { headers: { 'content-type': 'text/plain' }, content: 'in the dialog' });
    assert.equal(message.first.status, 401);
    assert.equal(message.rs.status, 405);
    assert.equal((await send(resign(dialog, inDialog({ ...dialog, to: { ...dialog.to, params: { tag: 'nodialog' } } }, 'MESSAGE', { content: 'x' })))).status, 481);
    const { first, rs: bye } = await inDialogAuthenticated(dialog, 'BYE');
    assert.equal(first.status, 401);
    assert.equal(challengeOf(first).realm, 'example.com');
    assert.equal(bye.status, 200);
    assert.equal(inRoom('dialogs', 'alice'), false);
    assert.equal(server.sipAuth!.heldNonces, held - 1, 'the nonce the dialog held went with it');
    // The dialog is gone: another BYE in it, with good credentials, is 481.
    assert.equal((await send(resign(dialog, inDialog(dialog, 'BYE')))).status, 481);
  });

  it('a re-INVITE without credentials gets 401, then 200 with the same answer; the dialog\'s nonce with a greater nc is taken at once; the same nc again is challenged', async () => {
    const { rs, dialog } = await authenticated('INVITE', { room: 'dialogs', user: 'carol', password: 'secret', sdp: await msrpOffer('carol') });
    assert.equal(rs.status, 200);
    const sdp = { headers: { 'content-type': 'application/sdp' }, content: 'v=0\r\n' };
    const { first, rs: again } = await inDialogAuthenticated(dialog, 'INVITE', sdp);
    assert.equal(first.status, 401);
    assert.equal(again.status, 200);
    assert.equal(again.content, rs.content, 'the same session, the same answer');
    ack(again, dialog.from, dialog.callId);
    // As SIP clients do: the last nonce again, nc + 1, no challenge.
    const reuse = resign(dialog, inDialog(dialog, 'INVITE', sdp));
    const reused = await send(reuse);
    assert.equal(reused.status, 200);
    ack(reused, dialog.from, dialog.callId);
    // The same Authorization (same nonce, same nc) on a new request: a replay.
    const replay = inDialog(dialog, 'INVITE', sdp);
    replay.headers.authorization = reuse.headers.authorization;
    const replayed = await send(replay);
    assert.equal(replayed.status, 401);
    assert.equal(challengeOf(replayed).stale, true, 'the password was right: stale, retry with the fresh nonce');
    assert.notEqual(challengeOf(replayed).nonce, challengeOf(first).nonce);
    assert.equal(inRoom('dialogs', 'carol'), true, 'the refused re-INVITE changed nothing');
    // And the call still ends properly, with the client's next nc.
    assert.equal((await send(resign(dialog, inDialog(dialog, 'BYE')))).status, 200);
    assert.equal(inRoom('dialogs', 'carol'), false);
  });

  it('another user\'s valid credentials in a dialog get 403 and change nothing; a wrong password gets 401; the dialog\'s user still ends it', async () => {
    const { rs, dialog } = await authenticated('INVITE', { room: 'dialogs', user: 'bob', password: 'secret', sdp: await msrpOffer('bob') });
    assert.equal(rs.status, 200);
    const asCarol = await inDialogAuthenticated(dialog, 'BYE', { user: 'carol' });
    assert.equal(asCarol.first.status, 401);
    assert.equal(asCarol.rs.status, 403);
    assert.equal(inRoom('dialogs', 'bob'), true);
    const wrong = await inDialogAuthenticated(dialog, 'BYE', { password: 'wrong' });
    assert.equal(wrong.rs.status, 401);
    assert.equal(challengeOf(wrong.rs).stale, undefined, 'not stale: the password is wrong');
    assert.equal(inRoom('dialogs', 'bob'), true);
    const ok = await inDialogAuthenticated(dialog, 'BYE');
    assert.equal(ok.rs.status, 200);
    assert.equal(inRoom('dialogs', 'bob'), false);
  });

  it('a SUBSCRIBE refresh without credentials gets 401, then 200 and a NOTIFY; the unsubscribe with the dialog\'s nonce and nc + 1 ends it with a terminated NOTIFY', async () => {
    const { rs, dialog } = await authenticated('SUBSCRIBE', { room: 'lobby', user: 'alice', password: 'secret', headers: { event: 'conference', expires: '60' } });
    assert.equal(rs.status, 200);
    await nextRequest((m) => m.method === 'NOTIFY' && m.headers['call-id'] === dialog.callId);
    const held = server.sipAuth!.heldNonces;
    const sub = (expires: string) => ({ headers: { event: 'conference', expires } });
    const refresh = await inDialogAuthenticated(dialog, 'SUBSCRIBE', sub('60'));
    assert.equal(refresh.first.status, 401);
    assert.equal(refresh.rs.status, 200);
    const notify = await nextRequest((m) => m.method === 'NOTIFY' && m.headers['call-id'] === dialog.callId);
    assert.match(String(notify.headers['subscription-state']), /^active;expires=\d+$/);
    assert.equal(server.sipAuth!.heldNonces, held, 'the dialog moved to the new nonce: still one');
    const end = await send(resign(dialog, inDialog(dialog, 'SUBSCRIBE', sub('0'))));
    assert.equal(end.status, 200);
    const last = await nextRequest((m) => m.method === 'NOTIFY' && m.headers['call-id'] === dialog.callId);
    assert.match(String(last.headers['subscription-state']), /^terminated/);
    assert.equal(server.sipAuth!.heldNonces, held - 1);
    // Ended: a further refresh is 481.
    assert.equal((await send(resign(dialog, inDialog(dialog, 'SUBSCRIBE', sub('60'))))).status, 481);
  });

  it('a dialog\'s nonce is good only in a dialog: out of one, and once its dialog ended, it gets stale=TRUE', async () => {
    const { rs, dialog } = await authenticated('INVITE', { room: 'dialogs', user: 'alice', password: 'secret', sdp: await msrpOffer('alice') });
    assert.equal(rs.status, 200);
    // Out of the dialog (a new MESSAGE) the nonce is single-use as before.
    const out = request('MESSAGE', { room: 'dialogs', from: 'sip:alice@example.com', callId: rnd(), seq: 1, tag: rnd() });
    digest.signRequest(dialog.ctx!, out, undefined, { user: 'alice', password: 'secret' });
    const outRs = await send(out);
    assert.equal(outRs.status, 401);
    assert.equal(challengeOf(outRs).stale, true);
    // The room drops alice: the server's BYE ends the dialog, and its nonce with it.
    const held = server.sipAuth!.heldNonces;
    server.chat.rooms.get('sip:dialogs@example.com')!.kick('sip:alice@example.com');
    await nextRequest((m) => m.method === 'BYE' && m.headers['call-id'] === dialog.callId);
    assert.equal(server.sipAuth!.heldNonces, held - 1);
    // Her next call, re-using that nonce in its own dialog, is challenged afresh.
    const next = await authenticated('INVITE', { room: 'dialogs', user: 'alice', password: 'secret', sdp: await msrpOffer('alice') });
    assert.equal(next.rs.status, 200);
    const stale = await send(resign(dialog, inDialog(next.dialog, 'BYE')));
    assert.equal(stale.status, 401);
    assert.equal(challengeOf(stale).stale, true);
    assert.equal(inRoom('dialogs', 'alice'), true);
  });

  it('a nonce held by one dialog of a user is good in her other dialog (clients keep one per realm); a flood of replays adds no state', async () => {
    const call = await authenticated('INVITE', { room: 'dialogs', user: 'bob', password: 'secret', sdp: await msrpOffer('bob') });
    assert.equal(call.rs.status, 200);
    const subscription = await authenticated('SUBSCRIBE', { room: 'dialogs', user: 'bob', password: 'secret', headers: { event: 'conference', expires: '60' } });
    assert.equal(subscription.rs.status, 200);
    await nextRequest((m) => m.method === 'NOTIFY' && m.headers['call-id'] === subscription.dialog.callId);
    const held = server.sipAuth!.heldNonces;
    // A re-INVITE in the call with the SUBSCRIBE's nonce and its next nc, as a client that
    // caches the realm's last challenge sends it: taken, and the call now holds that nonce too.
    const sdp = { headers: { 'content-type': 'application/sdp' }, content: 'v=0\r\n' };
    const reinvite = resign(subscription.dialog, inDialog(call.dialog, 'INVITE', sdp));
    const rs = await send(reinvite);
    assert.equal(rs.status, 200);
    ack(rs, call.dialog.from, call.dialog.callId);
    assert.equal(server.sipAuth!.heldNonces, held - 1, 'the call gave its INVITE nonce back; both dialogs hold one');
    // 200 replays of that re-INVITE (same nonce, same nc): each challenged (stale: the response
    // is right), nothing more held, bob still in the room.
    for (let i = 0; i < 200; i++) {
      const replay = inDialog(call.dialog, 'INVITE', sdp);
      replay.headers.authorization = reinvite.headers.authorization;
      const r = await send(replay);
      assert.equal(r.status, 401);
      assert.equal(challengeOf(r).stale, true);
    }
    assert.equal(server.sipAuth!.heldNonces, held - 1);
    assert.equal(inRoom('dialogs', 'bob'), true);
    // The subscription ends; the call still holds the nonce, and the next nc still works there.
    assert.equal((await send(resign(subscription.dialog, inDialog(subscription.dialog, 'SUBSCRIBE', { headers: { event: 'conference', expires: '0' } })))).status, 200);
    assert.equal(server.sipAuth!.heldNonces, held - 1);
    assert.equal((await send(resign(subscription.dialog, inDialog(call.dialog, 'BYE')))).status, 200);
    assert.equal(inRoom('dialogs', 'bob'), false);
    assert.equal(server.sipAuth!.heldNonces, held - 2);
  });
});
