/**
 * The chat focus (plugins/chat) through a real relay: MSRP test clients AUTH at the relay, join
 * rooms through the focus's API as a SIP application would, and talk through their own relay
 * tokens (To-Path: <token> <focus URI>). Every C-rule with an answer on the wire is here.
 */

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startTestRelay, type TestRelay } from '../../core/testing/index.ts';
import ChatFocus, { ChatError, formatUseNickname, type Room } from '../../plugins/chat/index.ts';
import { ChatClient, USERS, cpimBody, next, readCopy, startChat } from '../support/chat.ts';

const ROOM = 'sip:room@example.com';

describe('chat: a room of three through the relay', () => {
  let t: TestRelay;
  let chat: ChatFocus;
  let room: Room;
  let alice: ChatClient;
  let bob: ChatClient;
  let carol: ChatClient;

  before(async () => {
    ({ t, chat } = await startChat({ store: { driver: 'memory' } }));
    room = await chat.rooms.create(ROOM, { subject: 'Tea' });
    alice = await (await ChatClient.connect(t, 'alice')).join(room);
    bob = await (await ChatClient.connect(t, 'bob')).join(room);
    carol = await (await ChatClient.connect(t, 'carol')).join(room);
  });
  after(async () => {
    for (const c of [alice, bob, carol]) await c?.close();
    await t?.close();
  });

  it('answers the offer with the focus URI of the participant, CPIM only (C-2, C-15)', () => {
    assert.match(alice.sdpAnswer, /\r\na=accept-types:message\/cpim\r\n/);
    assert.match(alice.sdpAnswer, /\r\na=chatroom:nickname private-messages\r\n/);
    assert.match(alice.sdpAnswer, /\r\na=setup:passive\r\n/);
    assert.ok(alice.focusUri.startsWith(`msrp://${t.relay.hostname}:${t.tcpPort}/`));
    assert.notEqual(alice.focusUri, bob.focusUri);
    assert.equal(room.participants.length, 3);
  });

  it('copies a regular message to everyone but the sender as new SENDs, CPIM bytes unchanged (C-1, C-6)', async () => {
    const sent = await alice.say('hello room');
    assert.equal(sent.status, 200);
    const [b, c] = await Promise.all([bob.received('hello room'), carol.received('hello room')]);
    for (const copy of [b, c]) {
      // C-1: a SEND of the focus, with its own Message-ID, on the recipient's session.
      assert.notEqual(copy.frame.header('Message-ID'), sent.messageId);
      // C-12: the focus's own report model. The first copy on a route asks for a 200 (the
      // focus learns the route leads somewhere); later copies sent whole ask for errors only.
      assert.equal(copy.frame.header('Failure-Report'), undefined);
      assert.equal(copy.cpim.from.uri, alice.sip);
      assert.equal(copy.cpim.dateTime, '2024-05-01T10:00:00+02:00');
      assert.ok(copy.focus('Timestamp') !== undefined);
      // C-6: the original bytes are all there, in order; only lines of the focus's namespace were added.
      const original = cpimBody({ from: alice.sip, to: ROOM, text: 'hello room' });
      const added = copy.frame.body.subarray(copy.cpim.headers.find((h) => h.name === 'NS')!.start, copy.cpim.headerEnd);
      assert.deepEqual(Buffer.concat([copy.frame.body.subarray(0, copy.cpim.headers.find((h) => h.name === 'NS')!.start), copy.frame.body.subarray(copy.cpim.headerEnd)]), original);
      assert.match(added.toString(), /^NS: Chat <urn:msrprelay:chat>\r\nChat\.Timestamp: \S+\r\n$/);
    }
    assert.deepEqual(b.frame.toPath, [bob.c.uri]);
    assert.deepEqual(b.frame.fromPath, [bob.usePath[0], bob.focusUri]);
    assert.equal(alice.copies('hello room').length, 0);
    await alice.say('hello again');
    const again = await Promise.all([bob.received('hello again'), carol.received('hello again')]);
    for (const copy of again) assert.equal(copy.frame.header('Failure-Report'), 'partial');
  });

  it('NICKNAME: 200, then the nickname rides in the focus namespace; 425 for another user, 424 malformed (C-13)', async () => {
    assert.equal(await alice.nickname(formatUseNickname('Alice')), 200);
    const changed = next(room, 'nickname');
    assert.equal(await bob.nickname(formatUseNickname('bobby')), 200);
    const [p, old, now] = await changed;
    assert.equal(p, bob.participant);
    assert.equal(old, undefined);
    assert.equal(now, 'bobby');
    // Folded: ALICE and fullwidth alice are Alice's.
    assert.equal(await carol.nickname(formatUseNickname('ALICE')), 425);
    assert.equal(await carol.nickname(formatUseNickname('ａｌｉｃｅ')), 425);
    assert.equal(await carol.nickname('Alice'), 424);
    assert.equal(await carol.nickname('"a\u202eb"'), 424);
    await alice.say('with a nickname');
    const copy = await bob.received('with a nickname');
    assert.equal(copy.focus('Nickname'), '"Alice"');
    assert.equal(copy.cpim.from.uri, alice.sip, 'never by rewriting From');
  });

  it('C-3: a SEND that is not Message/CPIM gets 415', async () => {
    const r = await alice.c.sendMessage({ toPath: alice.toPath, body: 'plain', contentType: 'text/plain' });
    assert.equal(r.responses[0]!.status, 415);
  });

  it('C-4: a CPIM From that is not the sender gets 403, and nothing is copied', async () => {
    const r = await alice.say('spoofed', { from: 'sip:bob@example.com' });
    assert.equal(r.status, 403);
    await alice.say('after the spoof');
    await bob.received('after the spoof');
    assert.equal(bob.copies('spoofed').length, 0);
  });

  it('C-5: more than one To gets 403', async () => {
    assert.equal((await alice.say('two', { to: [bob.sip, carol.sip] })).status, 403);
  });

  it('C-11: a private message goes to its recipient only; 404 for someone not in the room', async () => {
    assert.equal((await alice.say('psst bob', { to: bob.sip })).status, 200);
    const copy = await bob.received('psst bob');
    assert.equal(copy.cpim.to[0]!.uri, bob.sip);
    assert.equal((await alice.say('to nobody', { to: 'sip:nobody@example.com' })).status, 404);
    await alice.say('fence');
    await carol.received('fence');
    assert.equal(carol.copies('psst bob').length, 0);
  });
});

describe('chat: what each participant takes and is', () => {
  let t: TestRelay;
  let chat: ChatFocus;
  const open: ChatClient[] = [];
  const client = async (name: string) => {
    const c = await ChatClient.connect(t, name);
    open.push(c);
    return c;
  };
  before(async () => {
    ({ t, chat } = await startChat({ store: { driver: 'memory' }, reservedNicknames: ['admin'] }));
  });
  after(async () => {
    for (const c of open) await c.close();
    await t.close();
  });

  it('C-7: a recipient whose types exclude the wrapped type gets nothing; the sender 200', async () => {
    const room = await chat.rooms.create('sip:c7@example.com');
    const a = await (await client('alice')).join(room);
    const textOnly = await (await client('bob')).join(room, { acceptWrappedTypes: 'text/plain' });
    const any = await (await client('carol')).join(room);
    const png = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
    assert.equal((await a.say('', { to: room.uri, contentType: 'image/png', content: png })).status, 200);
    const got = await any.received((c) => c.cpim.mediaType === 'image/png');
    assert.deepEqual(got.frame.body.subarray(got.cpim.contentStart), png);
    await a.say('text after the image', { to: room.uri });
    await textOnly.received('text after the image');
    assert.equal(textOnly.c.frames.filter((f) => f.method === 'SEND' && f.body.includes(png)).length, 0);
  });

  it('C-10, C-14: a user on two sessions gets copies on both, may keep its nickname on both; others may not take it', async () => {
    const room = await chat.rooms.create('sip:c10@example.com');
    const a = await (await client('alice')).join(room);
    const b1 = await (await client('bob')).join(room);
    const b2 = await (await client('bob')).join(room);
    assert.equal(await b1.nickname(formatUseNickname('Bob')), 200);
    assert.equal(await b2.nickname(formatUseNickname('bob')), 200, 'the same user reuses its nickname (C-14)');
    assert.equal(b2.participant.nickname, 'bob');
    assert.equal(await a.nickname(formatUseNickname('BOB')), 425);
    await a.say('to both of bob', { to: room.uri });
    await Promise.all([b1.received('to both of bob'), b2.received('to both of bob')]);
    await a.say('private to bob', { to: b1.sip });
    await Promise.all([b1.received('private to bob'), b2.received('private to bob')]);
    // A regular message of bob's reaches his other session too.
    await b1.say('from bob', { to: room.uri });
    await Promise.all([a.received('from bob'), b2.received('from bob')]);
    assert.equal(room.roster().find((u) => u.user === 'bob@example.com')?.sessions.length, 2);
  });

  it('C-13, C-14: 403 where nicknames are off, 425 for a reserved one, "" removes, a failed change keeps the old, report headers 400', async () => {
    const plain = await chat.rooms.create('sip:nonick@example.com', { nicknames: false });
    const x = await (await client('dave')).join(plain);
    assert.equal(await x.nickname(formatUseNickname('dave')), 403);
    assert.doesNotMatch(x.sdpAnswer, /a=chatroom:nickname/);
    const room = await chat.rooms.create('sip:c13@example.com');
    const d = await (await client('dave')).join(room);
    const e = await (await client('erin')).join(room);
    assert.equal(await d.nickname(formatUseNickname('ADMIN')), 425);
    assert.equal(await d.nickname(formatUseNickname('dee')), 200);
    assert.equal(await e.nickname(formatUseNickname('erin')), 200);
    assert.equal(await d.nickname(formatUseNickname('Erin')), 425);
    assert.equal(d.participant.nickname, 'dee', 'a failed change keeps the old nickname');
    assert.equal(await d.nickname('""'), 200);
    assert.equal(d.participant.nickname, undefined);
    assert.equal(await e.nickname(formatUseNickname('x'), [['Failure-Report', 'yes']]), 400);
    assert.equal(await e.nickname(`"${'n'.repeat(1024)}"`), 424);
  });

  it('C-11: 428 for a recipient without private messages; private messages never reach it', async () => {
    const room = await chat.rooms.create('sip:c11@example.com');
    const a = await (await client('alice')).join(room);
    const plain = await (await client('bob')).join(room, { chatroom: 'nickname' });
    assert.equal((await a.say('private?', { to: plain.sip })).status, 428);
    const off = await chat.rooms.create('sip:c11off@example.com', { privateMessages: false });
    const a2 = await (await client('alice')).join(off);
    const b2 = await (await client('bob')).join(off);
    assert.equal((await a2.say('no privates here', { to: b2.sip })).status, 403);
    assert.doesNotMatch(b2.sdpAnswer, /private-messages/);
  });

  it('C-12: reports from recipients stay at the focus; Success-Report yes gets a 200 REPORT from the focus', async () => {
    const room = await chat.rooms.create('sip:c12@example.com');
    const a = await (await client('alice')).join(room);
    const b = await (await client('bob')).join(room);
    const sent = await a.say('report me', { successReport: 'yes' });
    const report = await a.c.waitFor((f) => f.method === 'REPORT' && f.header('Message-ID') === sent.messageId);
    assert.equal(report.header('Status'), '000 200 OK');
    const copy = await b.received('report me');
    // Bob reports on the copy, as if it had asked for one; Alice must not see it.
    b.c.sendRequest({
      method: 'REPORT',
      toPath: b.toPath,
      headers: [['Message-ID', copy.frame.header('Message-ID')!], ['Byte-Range', `1-${copy.frame.bodyLength}/${copy.frame.bodyLength}`], ['Status', '000 200 OK']],
    });
    await b.say('after the report', { to: room.uri });
    await a.received('after the report');
    assert.equal(a.c.frames.filter((f) => f.method === 'REPORT').length, 1);
  });

  it('is-composing (RFC 3994) goes to the room and privately, and is not kept as history', async () => {
    const room = await chat.rooms.create('sip:typing@example.com');
    const a = await (await client('alice')).join(room);
    const b = await (await client('bob')).join(room);
    const c = await (await client('carol')).join(room);
    const xml = '<?xml version="1.0" encoding="UTF-8"?>\n<isComposing xmlns="urn:ietf:params:xml:ns:im-iscomposing"><state>active</state><contenttype>text/plain</contenttype><refresh>60</refresh></isComposing>';
    await a.say(xml, { to: room.uri, contentType: 'application/im-iscomposing+xml' });
    await Promise.all([b.received(xml), c.received(xml)]);
    await a.say(xml, { to: b.sip, contentType: 'application/im-iscomposing+xml' });
    const priv = await b.received((x) => x.text === xml && x.cpim.to[0]!.uri === b.sip);
    assert.equal(priv.cpim.mediaType, 'application/im-iscomposing+xml');
    const late = await (await client('dave')).join(room);
    await a.say('marker', { to: room.uri });
    await late.received('marker');
    assert.equal(late.copies(xml).length, 0);
  });

  it('C-8: a chunked message goes out from its first chunk, to the recipients of that moment only', async () => {
    const room = await chat.rooms.create('sip:c8@example.com');
    const a = await (await client('alice')).join(room);
    const b = await (await client('bob')).join(room);
    const body = cpimBody({ from: a.sip, to: room.uri, text: 'x'.repeat(6000) });
    const id = 'chunked00000001';
    const first = a.c.sendRequest({ method: 'SEND', toPath: a.toPath, headers: [['Message-ID', id], ['Byte-Range', `1-3000/${body.length}`]], contentType: 'message/cpim', body: body.subarray(0, 3000), flag: '+' });
    assert.equal((await a.c.waitForResponse(first)).status, 200);
    // Bob's copy has started before the rest was sent: the first chunk is written to his connection.
    assert.ok(b.participant.bytesWritten >= 3000, `written to bob: ${b.participant.bytesWritten}`);
    // Carol joins between the chunks: she gets none of it (C-8).
    const c = await (await client('carol')).join(room);
    const last = a.c.sendRequest({ method: 'SEND', toPath: a.toPath, headers: [['Message-ID', id], ['Byte-Range', `3001-${body.length}/${body.length}`]], contentType: 'message/cpim', body: body.subarray(3000) });
    assert.equal((await a.c.waitForResponse(last)).status, 200);
    const whole = await b.received((x) => x.text === 'x'.repeat(6000));
    assert.equal(whole.frame.flag, '$');
    // A streamed copy wants its 200s (Failure-Report absent: yes), so an error answer can stop it.
    assert.equal(whole.frame.header('Failure-Report'), undefined);
    assert.equal(whole.cpim.from.uri, a.sip);
    await a.say('after the chunks', { to: room.uri });
    await c.received('after the chunks');
    assert.equal(c.c.frames.filter((f) => f.method === 'SEND' && f.body.includes('xxxxxxxxxx')).length, 0);
  });

  it('C-9: a message whose next chunk never comes is aborted with # to the recipients', async () => {
    const { t: t2, chat: quick } = await startChat({ store: { driver: 'memory' }, chunkTimeout: 0.2 });
    try {
      const room = await quick.rooms.create('sip:c9@example.com');
      const a = await (await ChatClient.connect(t2, 'alice')).join(room);
      const b = await (await ChatClient.connect(t2, 'bob')).join(room);
      const body = cpimBody({ from: a.sip, to: room.uri, text: 'y'.repeat(5000) });
      const tid = a.c.sendRequest({ method: 'SEND', toPath: a.toPath, headers: [['Message-ID', 'abandoned000001'], ['Byte-Range', `1-2500/${body.length}`]], contentType: 'message/cpim', body: body.subarray(0, 2500), flag: '+' });
      assert.equal((await a.c.waitForResponse(tid)).status, 200);
      const aborted = await b.c.waitFor((f) => f.method === 'SEND' && f.flag === '#');
      assert.equal(b.c.frames.filter((f) => f.header('Message-ID') === aborted.header('Message-ID') && f.flag === '$').length, 0);
      // A late chunk of it gets 413: its state is gone.
      const late = a.c.sendRequest({ method: 'SEND', toPath: a.toPath, headers: [['Message-ID', 'abandoned000001'], ['Byte-Range', `2501-${body.length}/${body.length}`]], contentType: 'message/cpim', body: body.subarray(2500) });
      assert.equal((await a.c.waitForResponse(late)).status, 413);
      await a.close();
      await b.close();
    } finally {
      await t2.close();
    }
  });

  it('C-17: a client without a=chatroom is welcomed with the roster and told who joins', async () => {
    const room = await chat.rooms.create('sip:c17@example.com', { subject: 'Book club' });
    const a = await (await client('alice')).join(room, { nickname: 'ally' });
    const plain = await (await client('bob')).join(room, { chatroom: null });
    const welcome = await plain.received((c) => c.text.startsWith('Welcome'));
    assert.equal(welcome.cpim.from.uri, room.uri);
    assert.equal(welcome.focus('Type'), 'status');
    assert.match(welcome.text, /Book club/);
    assert.match(welcome.text, /ally/);
    assert.equal(a.copies(welcome.text).length, 0, 'chat-aware clients get no welcome by default');
    await (await client('carol')).join(room);
    await plain.received((c) => c.text === 'sip:carol@example.com joined');
  });

  it('C-17: limits: message size (413), rate (403), members and sessions per user (486)', async () => {
    const { t: t2, chat: small } = await startChat({ store: { driver: 'memory' }, limits: { maxMessageSize: 2000, rate: { messages: 3, seconds: 3600 }, maxSessionsPerUser: 1 } });
    try {
      const room = await small.rooms.create('sip:limits@example.com', { maxMembers: 2 });
      const a = await ChatClient.connect(t2, 'alice');
      await a.join(room);
      assert.equal((await a.say('z'.repeat(3000), { to: room.uri })).status, 413);
      assert.equal((await a.say('1', { to: room.uri })).status, 200);
      assert.equal((await a.say('2', { to: room.uri })).status, 200);
      assert.equal((await a.say('3', { to: room.uri })).status, 200);
      assert.equal((await a.say('4', { to: room.uri })).status, 403);
      const a2 = await ChatClient.connect(t2, 'alice');
      await assert.rejects(a2.join(room), (e: unknown) => e instanceof ChatError && e.sipStatus === 486);
      const b = await ChatClient.connect(t2, 'bob');
      await b.join(room);
      const c = await ChatClient.connect(t2, 'carol');
      await assert.rejects(c.join(room), (e: unknown) => e instanceof ChatError && e.code === 'full');
      for (const x of [a, a2, b, c]) await x.close();
    } finally {
      await t2.close();
    }
  });

  it('a joiner gets the last messages as history, marked so, with their original From and DateTime, before what follows', async () => {
    const room = await chat.rooms.create('sip:history@example.com', { history: { replay: 2 } });
    const a = await (await client('alice')).join(room, { nickname: 'al' });
    for (const text of ['one', 'two', 'three']) assert.equal((await a.say(text, { to: room.uri })).status, 200);
    // Private messages and typing notices are no history.
    const b = await (await client('bob')).join(room);
    await a.say('psst', { to: b.sip });
    const c = await (await client('carol')).join(room);
    await a.say('four', { to: room.uri });
    const four = await c.received('four');
    const got = c.c.frames.filter((f) => f.method === 'SEND').map((f) => readCopy(f));
    assert.deepEqual(got.map((x) => x.text), ['two', 'three', 'four']);
    for (const h of got.slice(0, 2)) {
      assert.equal(h.focus('History'), 'yes');
      assert.equal(h.focus('Nickname'), '"al"');
      assert.equal(h.cpim.from.uri, a.sip);
      assert.equal(h.cpim.dateTime, '2024-05-01T10:00:00+02:00');
      assert.ok(h.focus('Timestamp')! <= four.focus('Timestamp')!);
    }
    assert.equal(four.focus('History'), undefined);
  });

  it('CPIM headers split over several chunks, and Failure-Report no, still make one message (C-8)', async () => {
    const room = await chat.rooms.create('sip:split@example.com');
    const a = await (await client('alice')).join(room);
    const b = await (await client('bob')).join(room);
    assert.equal((await a.say('in small chunks', { chunkSize: 17 })).status, 200);
    const copy = await b.received('in small chunks');
    assert.equal(copy.cpim.from.uri, a.sip);
    await a.say('no responses please', { failureReport: 'no' });
    await b.received('no responses please');
  });

  it('a participant that connects straight to the relay (no AUTH) is reached over its own connection', async () => {
    const room = await chat.rooms.create('sip:direct@example.com');
    const a = await (await client('alice')).join(room);
    const d = await ChatClient.direct(t, 'frank');
    open.push(d);
    await d.join(room);
    assert.deepEqual(d.toPath, [d.focusUri]);
    // Its first SEND shows the focus the way back (RFC 4975 §5.4: the active side sends first).
    assert.equal((await d.say('hi from frank', { to: room.uri })).status, 200);
    await a.received('hi from frank');
    await a.say('hi frank', { to: room.uri });
    const got = await d.received('hi frank');
    assert.deepEqual(got.frame.fromPath, [d.focusUri]);
  });

  it('a participant whose connection closes leaves the room (disconnected)', async () => {
    const room = await chat.rooms.create('sip:gone@example.com');
    const a = await (await client('alice')).join(room);
    const b = await ChatClient.connect(t, 'bob');
    await b.join(room);
    const left = next(room, 'left');
    await b.close();
    const [p, reason] = await left;
    assert.equal(p, b.participant);
    assert.equal(reason, 'disconnected');
    assert.equal(room.participants.length, 1);
    assert.equal((await a.say('anyone?', { to: room.uri })).status, 200);
  });
});

describe('chat: joining', () => {
  let t: TestRelay;
  let chat: ChatFocus;
  before(async () => {
    chat = new ChatFocus({ store: { driver: 'memory' } });
    t = await startTestRelay({ users: USERS, plugins: [chat], tls: true });
  });
  after(() => t.close());

  it('C-2: an offer without message/cpim is refused with 488', async () => {
    const room = await chat.rooms.create('sip:join1@example.com');
    const a = await ChatClient.connect(t, 'alice');
    await assert.rejects(a.join(room, { acceptTypes: 'text/plain' }), (e: unknown) => e instanceof ChatError && e.sipStatus === 488);
    await a.close();
  });

  it('an offer whose path is msrps gets a focus URI of the TLS listener (transport auto)', async () => {
    const room = await chat.rooms.create('sip:tls@example.com');
    const a = await ChatClient.connect(t, 'alice');
    const { sdpAnswer } = await room.join({ sdpOffer: a.offer().replace(/a=path:msrp:\/\/127\.0\.0\.1/, 'a=path:msrps://127.0.0.1'), identity: { uri: a.sip } });
    assert.match(sdpAnswer, new RegExp(`a=path:msrps://${t.relay.hostname}:${t.tlsPort}/\\w+;tcp`));
    assert.match(sdpAnswer, /m=message \d+ TCP\/MSRP \*/);
    await a.close();
  });

  it('a passive offerer not behind this relay is refused (488): the focus dials nothing but the relay\'s own sessions', async () => {
    const room = await chat.rooms.create('sip:passive@example.com');
    const d = await ChatClient.direct(t, 'frank');
    await assert.rejects(d.join(room, { setup: 'passive' }), (e: unknown) => e instanceof ChatError && e.sipStatus === 488);
    await d.close();
  });

  it('a room that is not persistent goes when its last participant leaves, once', async () => {
    const room = await chat.rooms.create('sip:brief@example.com', { persistent: false });
    const deleted: unknown[] = [];
    chat.rooms.on('deleted', (r) => deleted.push(r));
    const a = await (await ChatClient.connect(t, 'alice')).join(room);
    const gone = next(chat.rooms, 'deleted');
    room.leave(a.participant);
    assert.deepEqual(await gone, [room]);
    await chat.rooms.delete(room);
    assert.deepEqual(deleted, [room]);
    assert.equal(chat.rooms.get('sip:brief@example.com'), undefined);
    assert.equal(room.isClosed, true);
    await assert.rejects(a.join(room), (e: unknown) => e instanceof ChatError && e.sipStatus === 480);
    await a.close();
  });
});

describe('chat: a participant behind another relay', () => {
  it('reaches the focus through its own relay; copies go back the way its first request came', async () => {
    const { t: home, chat } = await startChat({ store: { driver: 'memory' } });
    const other = await startTestRelay({ users: USERS, plugins: [['domain-map', { default: 'example.com' }]] });
    try {
      const room = await chat.rooms.create('sip:far@example.com');
      const a = await (await ChatClient.connect(home, 'alice')).join(room);
      // Bob's relay is the other one: his offer's path is <his token there> <his URI>.
      const b = await (await ChatClient.connect(other, 'bob')).join(room);
      assert.equal(b.participant.route, undefined, 'the focus cannot know the way before bob speaks');
      assert.equal((await b.say('hello from afar')).status, 200);
      const copy = await a.received('hello from afar');
      assert.equal(copy.cpim.from.uri, b.sip);
      await a.say('hello back');
      const back = await b.received('hello back');
      // Through bob's relay: its token, then the focus URI, in From-Path.
      assert.deepEqual(back.frame.fromPath, [b.usePath[0], b.focusUri]);
      await a.close();
      await b.close();
    } finally {
      await other.close();
      await home.close();
    }
  });
});
