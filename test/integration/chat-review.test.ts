/**
 * The chat focus (plugins/chat) under the input a hostile or careless participant sends, on
 * real sockets through a real relay: each test is a defect that was found and fixed.
 */

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ChatError, formatUseNickname, msrpMedia, parseSdp, type ChatOptionsInput } from '../../plugins/chat/index.ts';
import { chatSuite, cpimBody, startChat, type ChatClient } from '../support/chat.ts';
import { cpimFile, until } from '../support/chat-files.ts';
import { createDriver } from '../../plugins/auth-sql/load-driver.ts';

/** The focus of these tests: no welcome message, so that what a client receives is what the test caused. */
const QUIET: ChatOptionsInput = { store: { driver: 'memory' }, welcome: 'none' };

describe('chat review: what one participant does never stalls the others', () => {
  const s = chatSuite(QUIET);

  it('messages a sender leaves unfinished do not hold back the copies of other messages (C-8, C-9, C-16)', async () => {
    const room = await s.chat.rooms.create('sip:stall@example.com');
    const alice = await s.join('alice', room);
    const bob = await s.join('bob', room);
    const carol = await s.join('carol', room);
    // Alice starts eight messages whose headers are in and whose rest never comes (a slow
    // upload, or on purpose): the C-9 timer would end them only after 540 s.
    const first = { id: '', length: 0 };
    for (let i = 0; i < 8; i++) {
      const body = cpimBody({ from: alice.sip, to: room.uri, text: `unfinished ${i} ` });
      const id = `stall${i}${randomBytes(4).toString('hex')}`;
      if (i === 0) Object.assign(first, { id, length: body.length });
      const tid = alice.c.sendRequest({
        method: 'SEND',
        toPath: alice.toPath,
        headers: [
          ['Message-ID', id],
          ['Byte-Range', `1-${body.length}/${body.length + 1000}`],
        ],
        body,
        contentType: 'message/cpim',
        flag: '+',
      });
      assert.equal((await alice.c.waitForResponse(tid)).status, 200);
    }
    assert.equal((await carol.say('still here?')).status, 200);
    const copy = await bob.received('still here?', 20_000);
    assert.equal(copy.cpim.from.uri, carol.sip);
    // The first one goes on where it stopped and arrives whole, its pieces interrupted around the others.
    const tid = alice.c.sendRequest({
      method: 'SEND',
      toPath: alice.toPath,
      headers: [
        ['Message-ID', first.id],
        ['Byte-Range', `${first.length + 1}-${first.length + 1000}/${first.length + 1000}`],
      ],
      body: 'x'.repeat(1000),
      contentType: 'message/cpim',
    });
    assert.equal((await alice.c.waitForResponse(tid)).status, 200);
    const start = await bob.c.waitFor((f) => f.kind === 'request' && f.method === 'SEND' && f.body.includes('unfinished 0 '), 20_000);
    const whole = await bob.c.waitForMessage(start.header('Message-ID')!, 20_000);
    assert.ok(whole.complete);
    const got = whole.body!.toString();
    assert.ok(got.endsWith(`unfinished 0 ${'x'.repeat(1000)}`), got.slice(-80));
    assert.match(got, /^From: <sip:alice@example\.com>\r\n/);
  });
});

describe('chat review: nicknames (C-13, C-14)', () => {
  const s = chatSuite(QUIET);

  it('two users joining at once with the same nickname: one gets it, the other is refused (C-13: unique in the room)', async () => {
    const room = await s.chat.rooms.create('sip:nickrace@example.com');
    const [a, b] = await Promise.all([s.client('alice'), s.client('bob')]);
    const results = await Promise.allSettled([a.join(room, { nickname: 'twin' }), b.join(room, { nickname: 'TWIN' })]);
    const ok = results.filter((r) => r.status === 'fulfilled');
    const refused = results.filter((r) => r.status === 'rejected');
    assert.equal(ok.length, 1, 'exactly one join gets the nickname');
    assert.equal(refused.length, 1);
    const e = (refused[0] as PromiseRejectedResult).reason;
    assert.ok(e instanceof ChatError && e.code === 'nickname', String(e));
    assert.equal(room.participants.filter((p) => p.nicknameKey === 'twin').length, 1);
    // The refused user may still join without it.
    const loser = results[0]!.status === 'rejected' ? a : b;
    await loser.join(room);
    assert.equal(room.participants.length, 2);
  });

  it('NICKNAME counts in the rate of its session: a flood of changes gets 403 and is not announced to the room (C-17)', async () => {
    const room = await s.chat.rooms.create('sip:nickflood@example.com');
    const frank = await s.join('frank', room);
    // A client that knows nothing of rooms is told of every change (C-17).
    const dave = await s.join('dave', room, { chatroom: null });
    const statuses: number[] = [];
    for (let i = 0; i < 80; i++) statuses.push(await frank.nickname(formatUseNickname(`flood${i}`)));
    // limits.rate is 50 per 10 s: the first 50 pass, then (but for what the bucket refills meanwhile) 403.
    assert.ok(statuses.slice(0, 50).every((s) => s === 200), statuses.join(' '));
    assert.ok(statuses.filter((s) => s === 403).length >= 10, statuses.join(' '));
    const last = statuses.lastIndexOf(200);
    assert.equal(frank.participant.nickname, `flood${last}`, 'a refused change keeps the old nickname (C-14)');
    await dave.c.waitFor((f) => f.kind === 'request' && f.body.includes(`is now flood${last}`));
    const told = dave.c.frames.filter((f) => f.kind === 'request' && f.body.includes(' is now flood')).length;
    assert.equal(told, statuses.filter((s) => s === 200).length);
  });

  it('a Use-Nickname that is not UTF-8 is refused (400 from the relay, R-22) and sets no nickname (C-13)', async () => {
    const room = await s.chat.rooms.create('sip:nickutf8@example.com');
    const erin = await s.join('erin', room);
    const tid = 'nk' + randomBytes(6).toString('hex');
    const head = `MSRP ${tid} NICKNAME\r\nTo-Path: ${erin.toPath.join(' ')}\r\nFrom-Path: ${erin.c.uri}\r\nUse-Nickname: "`;
    erin.c.write(Buffer.concat([Buffer.from(head, 'latin1'), Buffer.from([0x65, 0xff, 0xfe, 0x72]), Buffer.from(`"\r\n-------${tid}$\r\n`, 'latin1')]));
    assert.equal((await erin.c.waitForResponse(tid)).status, 400);
    assert.equal(erin.participant.nickname, undefined);
    // The session is fine afterwards.
    assert.equal(await erin.nickname(formatUseNickname('érin')), 200);
    assert.equal(erin.participant.nickname, 'érin');
  });
});

describe('chat review: the SDP answer', () => {
  const s = chatSuite(QUIET);

  it('a subject with line breaks (set by /subject) does not add lines to the next SDP answer (RFC 4566 §5.3)', async () => {
    const room = await s.chat.rooms.create('sip:sdp@example.com', { owners: ['sip:alice@example.com'] });
    const alice = await s.join('alice', room);
    assert.equal((await alice.say('/subject Tea\r\na=path:msrp://evil.example.com:1/x;tcp\r\nm=audio 9 RTP/AVP 0')).status, 200);
    await alice.received((c) => c.text === 'Subject set.');
    assert.match(room.subject, /Tea/);
    const bob = await s.join('bob', room);
    const lines = bob.sdpAnswer.split('\r\n');
    assert.equal(lines.filter((l) => l.startsWith('m=')).length, 1, bob.sdpAnswer);
    assert.equal(lines.filter((l) => l.startsWith('a=path:')).length, 1, bob.sdpAnswer);
    assert.ok(lines.every((l) => !/[\r\n]/.test(l)));
    assert.match(lines.find((l) => l.startsWith('s='))!, /^s=Tea/);
    assert.equal(msrpMedia(parseSdp(bob.sdpAnswer))[0]!.path[0], bob.focusUri);
  });
});

describe('chat review: Byte-Range (R-72)', () => {
  const s = chatSuite(QUIET);

  const chunk = (c: ChatClient, id: string, range: string, body: Buffer, flag: '+' | '$' | '#') =>
    c.c.waitForResponse(c.c.sendRequest({ method: 'SEND', toPath: c.toPath, headers: [['Message-ID', id], ['Byte-Range', range]], body, contentType: 'message/cpim', flag })).then((r) => r.status);

  it('chunks out of order: the later chunk that came first gets 413, and so does the first one after it (R-72)', async () => {
    const room = await s.chat.rooms.create('sip:order@example.com');
    const alice = await s.join('alice', room);
    const bob = await s.join('bob', room);
    const body = cpimBody({ from: alice.sip, to: room.uri, text: 'out of order, never whole' });
    const id = 'ooo' + randomBytes(6).toString('hex');
    const cut = body.length - 5;
    const n = body.length;
    assert.equal(await chunk(alice, id, `${cut + 1}-${n}/${n}`, body.subarray(cut), '$'), 413);
    assert.equal(await chunk(alice, id, `1-${cut}/${n}`, body.subarray(0, cut), '+'), 413);
    await alice.say('fence');
    await bob.received('fence');
    assert.equal(bob.c.frames.filter((f) => f.kind === 'request' && f.body.includes('out of order')).length, 0, 'nothing of it was copied');
  });

  it('a last chunk that ends before its announced total is not passed on as whole (R-72)', async () => {
    const room = await s.chat.rooms.create('sip:short@example.com');
    const alice = await s.join('carol', room);
    const bob = await s.join('dave', room);
    const body = cpimBody({ from: alice.sip, to: room.uri, text: 'shorter than it says' });
    const id = 'short' + randomBytes(6).toString('hex');
    const status = await chunk(alice, id, `1-${body.length}/${body.length + 10}`, body, '$');
    assert.equal(status, 413);
    await alice.say('fence 2');
    await bob.received('fence 2');
    const copies = bob.c.frames.filter((f) => f.kind === 'request' && f.body.includes('shorter than it says'));
    for (const f of copies) {
      const total = Number(f.header('Byte-Range')!.split('/')[1]);
      assert.ok(f.flag !== '$' || total === f.body.length, `a copy ended with $ after ${f.body.length} of the ${total} bytes it announced (answer ${status})`);
    }
  });
});

describe('chat review: a store that fails', () => {
  it('a persistent room whose record cannot be written is not created half: no room, and it can be created once the store is back', async () => {
    const filename = join(mkdtempSync(join(tmpdir(), 'chat-review-')), 'chat.db');
    const { t, chat } = await startChat({ ...QUIET, store: { driver: 'sqlite3', filename } });
    // A second connection to the same file, as an operator's tool would have.
    const db = await createDriver('sqlite3', { filename, create: false, poolSize: 1, connectTimeoutMs: 5000, queryTimeoutMs: 5000 }, 'test');
    try {
      // The rooms table goes away under the focus (a store that refuses writes).
      await db.run('ALTER TABLE chat_rooms RENAME TO chat_rooms_away', []);
      await assert.rejects(chat.rooms.create('sip:kept@example.com', { persistent: true }));
      assert.equal(chat.rooms.get('sip:kept@example.com'), undefined, 'a room the store does not have');
      await db.run('ALTER TABLE chat_rooms_away RENAME TO chat_rooms', []);
      const room = await chat.rooms.create('sip:kept@example.com', { persistent: true, subject: 'Kept' });
      assert.equal(chat.rooms.get('sip:kept@example.com'), room);
      assert.equal((await chat.store.loadRooms()).filter((r) => r.key === room.key).length, 1);
    } finally {
      await db.close();
      await t.close();
    }
  });
});

describe('chat review: /get', () => {
  const dir = mkdtempSync(join(tmpdir(), 'chat-review-files-'));
  const s = chatSuite({ ...QUIET, files: { enabled: true, dir } }, { timeoutMs: 60_000 });

  it('a participant asking for a kept file again and again holds a bounded number of open files (C-17 anti-DoS)', async () => {
    const openFiles = () => readdirSync('/proc/self/fd').filter((fd) => {
      try {
        return readlinkSync(`/proc/self/fd/${fd}`).startsWith(dir);
      } catch {
        return false;
      }
    }).length;
    const room = await s.chat.rooms.create('sip:gets@example.com');
    const alice = await s.join('alice', room);
    const bob = await (await s.client('bob', { storeBodies: false })).join(room);
    try {
      const file = cpimFile({ from: alice.sip, to: room.uri, size: 4 * 2 ** 20, seed: 7, name: 'big.bin', type: 'application/octet-stream' });
      const kept = new Promise<{ id: string }>((resolve) => room.once('file', resolve));
      const sent = await alice.c.streamMessage({ toPath: alice.toPath, size: file.size, source: file.source, contentType: 'message/cpim', chunkSize: 64 * 1024 });
      assert.deepEqual([...new Set(sent.responses.map((r) => r.status))], [200]);
      const { id } = await kept;
      // Bob stops reading and asks for it forty times.
      bob.c.pauseReading();
      for (let i = 0; i < 40; i++) {
        const body = cpimBody({ from: bob.sip, to: room.uri, text: `/get ${id}` });
        bob.c.sendRequest({ method: 'SEND', toPath: bob.toPath, headers: [['Message-ID', `get${i}${randomBytes(4).toString('hex')}`], ['Byte-Range', `1-${body.length}/${body.length}`]], body, contentType: 'message/cpim' });
      }
      // Each /get is answered: a file on its way, or a text that says why not.
      const p = bob.participant;
      await until('every /get is answered', () => p.stats.received >= 40 && p.queued + p.stats.delivered >= 40);
      const n = openFiles();
      assert.ok(n <= 4, `${n} kept files open for one reader`);
    } finally {
      // Reading again, so that its close at the end of the block completes.
      bob.c.resumeReading();
    }
  });
});

describe('chat review: what passes for the focus', () => {
  const s = chatSuite(QUIET);

  it("a sender's headers with the focus's prefix, undeclared, never read as the focus's lines in a copy (C-6)", async () => {
    const room = await s.chat.rooms.create('sip:spoof@example.com');
    const alice = await s.join('alice', room);
    const bob = await s.join('bob', room);
    const r = await alice.say('I am the room', { extra: ['Chat.Type: status', 'Chat.Nickname: "admin"', 'Chat.History: yes'] });
    assert.equal(r.status, 200);
    const copy = await bob.received('I am the room');
    // A reader resolves prefixes over the whole header block (RFC 3862 §3.3): the focus's own
    // prefix must not be one the sender wrote.
    assert.equal(copy.focus('Type'), undefined, 'a status mark the focus did not write');
    assert.equal(copy.focus('Nickname'), undefined, 'a nickname alice does not have');
    assert.equal(copy.focus('History'), undefined);
    assert.ok(copy.focus('Timestamp') !== undefined);
    // The sender's lines are there as sent (C-6).
    assert.ok(copy.cpim.headers.some((h) => h.name === 'Chat.Nickname' && h.value === '"admin"'));
  });
});

describe('chat review: roles', () => {
  const s = chatSuite(QUIET);

  it('a moderator cannot take an owner\'s role away (and then ban the owner): only owners ban owners', async () => {
    const room = await s.chat.rooms.create('sip:roles@example.com', { owners: ['sip:alice@example.com'], moderators: ['sip:bob@example.com'] });
    const alice = await s.join('alice', room);
    const bob = await s.join('bob', room);
    assert.equal((await bob.say('/role sip:alice@example.com member')).status, 200);
    const answer = await bob.received((c) => c.focus('Type') === 'status');
    assert.match(answer.text, /^Not allowed/, answer.text);
    assert.equal(room.roleOf('alice@example.com'), 'owner');
    assert.equal((await bob.say('/ban sip:alice@example.com')).status, 200);
    await bob.received((c) => c.focus('Type') === 'status' && /^Not allowed: only owners may ban owners/.test(c.text));
    assert.equal(room.participants.filter((p) => p.user === 'alice@example.com').length, 1);
  });
});

describe('chat review: messages in progress', () => {
  const s = chatSuite(QUIET);

  it('a session has at most 16 messages in progress: the next one gets 403 until one ends (C-17 anti-DoS)', async () => {
    const room = await s.chat.rooms.create('sip:inprogress@example.com');
    const alice = await s.join('alice', room);
    const bob = await s.join('bob', room);
    const started: Array<{ id: string; length: number }> = [];
    const start = async (i: number) => {
      const body = cpimBody({ from: alice.sip, to: room.uri, text: `part ${i} ` });
      const id = `prog${i}${randomBytes(4).toString('hex')}`;
      const tid = alice.c.sendRequest({ method: 'SEND', toPath: alice.toPath, headers: [['Message-ID', id], ['Byte-Range', `1-${body.length}/${body.length + 4}`]], body, contentType: 'message/cpim', flag: '+' });
      const status = (await alice.c.waitForResponse(tid)).status;
      if (status === 200) started.push({ id, length: body.length });
      return status;
    };
    for (let i = 0; i < 16; i++) assert.equal(await start(i), 200);
    assert.equal(await start(16), 403);
    // One ends: there is room for another.
    const first = started[0]!;
    const tid = alice.c.sendRequest({ method: 'SEND', toPath: alice.toPath, headers: [['Message-ID', first.id], ['Byte-Range', `${first.length + 1}-${first.length + 4}/${first.length + 4}`]], body: 'done', contentType: 'message/cpim' });
    assert.equal((await alice.c.waitForResponse(tid)).status, 200);
    const copyStart = await bob.c.waitFor((f) => f.kind === 'request' && f.method === 'SEND' && f.body.includes('part 0 '));
    const whole = await bob.c.waitForMessage(copyStart.header('Message-ID')!);
    assert.ok(whole.complete && whole.body!.toString().endsWith('part 0 done'));
    assert.equal(await start(17), 200);
  });
});

describe('chat review: checked and found right', () => {
  const s = chatSuite(QUIET);

  it('responses and REPORTs the focus never asked for change nothing; the session goes on (C-12)', async () => {
    const room = await s.chat.rooms.create('sip:unasked@example.com');
    const alice = await s.join('alice', room);
    const bob = await s.join('bob', room);
    const tid = 'unasked' + randomBytes(6).toString('hex');
    alice.c.write(`MSRP ${tid} 200 OK\r\nTo-Path: ${alice.toPath.join(' ')}\r\nFrom-Path: ${alice.c.uri}\r\n-------${tid}$\r\n`);
    alice.c.sendRequest({ method: 'REPORT', toPath: alice.toPath, headers: [['Message-ID', 'nosuchmessage1'], ['Byte-Range', '1-10/10'], ['Status', '000 413 Stop']] });
    assert.equal((await alice.say('after the noise')).status, 200);
    await bob.received('after the noise');
    assert.equal(room.participants.length, 2);
  });

  it('a sender that leaves mid-message: the copies end with #, and the others go on', async () => {
    const room = await s.chat.rooms.create('sip:midleave@example.com');
    const alice = await s.join('alice', room);
    const bob = await s.join('bob', room);
    const carol = await s.join('carol', room);
    const body = cpimBody({ from: alice.sip, to: room.uri, text: 'cut short ' });
    const tid = alice.c.sendRequest({ method: 'SEND', toPath: alice.toPath, headers: [['Message-ID', 'mid' + randomBytes(6).toString('hex')], ['Byte-Range', `1-${body.length}/${body.length + 100}`]], body, contentType: 'message/cpim', flag: '+' });
    assert.equal((await alice.c.waitForResponse(tid)).status, 200);
    await until('the copy is on its way', () => bob.participant.queued === 1);
    room.leave(alice.participant);
    // The open chunk of the copy ends with `#`: never a `$` for a message that did not end.
    const cut = await bob.c.waitFor((f) => f.kind === 'request' && f.method === 'SEND' && f.body.includes('cut short'));
    assert.equal(cut.flag, '#');
    assert.equal((await carol.say('still talking')).status, 200);
    await bob.received('still talking');
  });
});

describe('chat review: reports', () => {
  const s = chatSuite(QUIET);

  it('a /command with Success-Report yes gets its 200 REPORT from the focus, as any message (C-1, RFC 4975 §7.1.2)', async () => {
    const room = await s.chat.rooms.create('sip:cmdreport@example.com');
    const alice = await s.join('alice', room);
    const sent = await alice.say('/help', { successReport: 'yes' });
    assert.equal(sent.status, 200);
    await alice.received((c) => c.focus('Type') === 'status' && c.text.startsWith('Commands:'));
    const report = await alice.c.waitFor((f) => f.method === 'REPORT' && f.header('Message-ID') === sent.messageId);
    assert.equal(report.header('Status'), '000 200 OK');
  });
});
