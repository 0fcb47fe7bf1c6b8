/**
 * Files kept in rooms (plugins/chat/files.ts) through a real relay: a file sent to a room of
 * three arrives whole at the others and is kept on disk; a late joiner lists it with /files,
 * fetches it with /get and pulls it with an RFC 5547 offer (§8.2); the limits (maxFileSize below
 * the room's maxMessageSize: fanned out, not kept; types; maxFiles; retention); an aborted file;
 * a name with `../`; the files after a restart on SQLite and PostgreSQL.
 */

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ChatError, type ChatOptionsInput, type FileRecord, type Room } from '../../plugins/chat/index.ts';
import { ChatClient, chatSuite, next, startChat, until } from '../support/chat.ts';
import { cpimFile, pullOffer, pushOffer, sha256, wholeCopy, type CpimFile } from '../support/chat-files.ts';

const KiB = 1024;
const MiB = 2 ** 20;
const base = mkdtempSync(join(tmpdir(), 'chat-files-'));
let dirs = 0;
const newDir = () => join(base, `files-${++dirs}`);

/** Sends a file to the room in 64 KiB chunks; resolves with the focus's statuses. */
async function sendFile(c: ChatClient, f: CpimFile): Promise<number[]> {
  const r = await c.c.streamMessage({ toPath: c.toPath, size: f.size, source: f.source, contentType: 'message/cpim', chunkSize: 64 * KiB });
  return r.responses.map((x) => x.status);
}

/** A status message of the focus to this client whose text matches. */
function statusText(c: ChatClient, re: RegExp): Promise<string> {
  return c.received((x) => x.focus('Type') === 'status' && re.test(x.text)).then((x) => x.text);
}

/** An RFC 5547 pull offer (§8.2): recvonly, with a file-selector. */
describe('chat files: kept, listed, fetched, pulled', () => {
  let room: Room;
  const dir = newDir();
  const s = chatSuite({ store: { driver: 'memory' }, files: { enabled: true, dir } }, { timeoutMs: 60_000 });
  const open = s.clients.open;
  const client = (name: string) => s.client(name);
  let kept: FileRecord;
  const file = cpimFile({ from: 'sip:alice@example.com', to: 'sip:files@example.com', size: 300 * KiB + 17, seed: 3, name: 'photo.jpg', type: 'image/jpeg' });

  before(async () => {
    room = await s.chat.rooms.create('sip:files@example.com', { subject: 'Files' });
  });

  it('a file to a room of three arrives whole at the others and is kept on disk', async () => {
    const alice = await (await client('alice')).join(room);
    const bob = await (await client('bob')).join(room);
    const carol = await (await client('carol')).join(room);
    const keptEvent = next<[FileRecord]>(room, 'file');
    assert.deepEqual([...new Set(await sendFile(alice, file))], [200]);
    const isFile = (_f: unknown, m: { mediaType: string } | undefined) => m?.mediaType === 'image/jpeg';
    for (const member of [bob, carol]) {
      const copy = await wholeCopy(member.c, isFile);
      assert.equal(sha256(copy.content), file.contentHash);
      assert.equal(copy.cpim!.from.uri, alice.sip);
    }
    [kept] = await keptEvent;
    assert.equal(kept.name, 'photo.jpg');
    assert.equal(kept.size, file.contentSize);
    assert.equal(kept.sha256, file.contentHash.toUpperCase());
    assert.equal(kept.sender, alice.sip);
    assert.deepEqual(readdirSync(dir), [`${kept.id}.file`], 'one file on disk, named by its id, nothing partial');
  });

  it('a late joiner lists it with /files and gets it with /get, marked History and File', async () => {
    const dave = await (await client('dave')).join(room, { chatroom: null });
    // C-17: the welcome of a client that knows nothing of rooms names the command.
    await statusText(dave, /^Welcome to Files[\s\S]*\/files for the files kept here\.$/);
    assert.equal((await dave.say('/files')).status, 200);
    const list = await statusText(dave, /^Files \(1\)/);
    assert.match(list, new RegExp(`${kept.id}  photo\\.jpg  300\\.0 KiB  image/jpeg  from <sip:alice@example\\.com>`));
    assert.equal((await dave.say(`/get ${kept.id}`)).status, 200);
    const copy = await wholeCopy(dave.c, (_f, m) => m?.mediaType === 'image/jpeg');
    assert.equal(sha256(copy.content), file.contentHash);
    assert.equal(copy.focus('File'), kept.id);
    assert.equal(copy.focus('History'), 'yes');
    assert.equal(copy.cpim!.from.uri, 'sip:alice@example.com', 'the sender’s CPIM, unchanged (C-6)');
    assert.equal(copy.cpim!.dateTime, '2024-05-01T10:00:00Z');
    assert.equal((await dave.say('/get 0123456789abcdef')).status, 200);
    await statusText(dave, /^No file 0123456789abcdef here/);
  });

  it('an RFC 5547 pull offer (file-selector, recvonly) gets the file on its own session, bare', async () => {
    const erin = await client('erin');
    const hash = kept.sha256.match(/../g)!.join(':');
    const r = await room.join({ sdpOffer: pullOffer(erin, `name:"photo.jpg" type:image/jpeg size:${kept.size} hash:sha-256:${hash}`), identity: { uri: erin.sip } });
    assert.match(r.sdpAnswer, /\r\na=sendonly\r\n/);
    assert.match(r.sdpAnswer, /\r\na=accept-types:image\/jpeg\r\n/);
    assert.match(r.sdpAnswer, /\r\na=file-selector:name:"photo\.jpg" type:image\/jpeg size:307217 hash:sha-1:[0-9A-F:]+\r\n/);
    assert.match(r.sdpAnswer, /\r\na=file-transfer-id:pull-1\r\n/);
    assert.equal(room.participants.includes(r.participant), false, 'a pull session is no member of the room');
    const got = await wholeCopy(erin.c, (f) => f.header('Content-Type') === 'image/jpeg');
    assert.equal(sha256(got.content), file.contentHash);
    // The application ends the session (BYE) once the file is there.
    room.leave(r.participant);
  });

  it('a pull whose selector matches no kept file: ChatError no-such-file (404) with an answer that declines the stream', async () => {
    const frank = await client('frank');
    const e = await room.join({ sdpOffer: pullOffer(frank, 'name:"nothing.txt"'), identity: { uri: frank.sip } }).then(
      () => assert.fail('joined'),
      (x: unknown) => x as ChatError,
    );
    assert.ok(e instanceof ChatError);
    assert.equal(e.code, 'no-such-file');
    assert.equal(e.sipStatus, 404);
    assert.match(e.sdpAnswer!, /\r\nm=message 0 TCP\/MSRP \*\r\n/);
  });

  it('an RFC 5547 push offer (file-selector, sendonly) sends a file to the room: wrapped, fanned out, kept', async () => {
    const [alice, bob] = open as [ChatClient, ChatClient];
    const pusher = await client('carol');
    const offer = pushOffer(pusher, 'name:"chart.png" type:image/png size:5000', 'image/png');
    const r = await room.join({ sdpOffer: offer, identity: { uri: pusher.sip, displayName: 'Carol' } });
    assert.match(r.sdpAnswer, /\r\na=recvonly\r\n/);
    assert.match(r.sdpAnswer, /\r\na=file-selector:name:"chart\.png" type:image\/png size:5000\r\n/);
    assert.equal(room.participants.includes(r.participant), false);
    const answerPath = r.sdpAnswer.match(/a=path:(\S+)/)![1]!;
    const png = cpimFile({ from: pusher.sip, to: room.uri, size: 5000, seed: 9 }).content(0, 5000);
    const keptEvent = next<[FileRecord]>(room, 'file');
    const sent = await pusher.c.sendMessage({ toPath: [...pusher.usePath, answerPath], body: png, contentType: 'image/png', chunkSize: 2000 });
    assert.deepEqual([...new Set(sent.responses.map((x) => x.status))], [200]);
    for (const member of [alice, bob]) {
      const copy = await wholeCopy(member.c, (_f, m) => m?.mediaType === 'image/png');
      assert.deepEqual(copy.content, png);
      assert.equal(copy.cpim!.from.uri, pusher.sip);
      assert.equal(copy.cpim!.from.displayName, 'Carol');
      assert.deepEqual(copy.cpim!.contentHeaders.find(([n]) => n === 'Content-Disposition'), ['Content-Disposition', 'attachment; filename="chart.png"']);
    }
    const [rec] = await keptEvent;
    assert.equal(rec.name, 'chart.png');
    assert.equal(rec.size, 5000);
    assert.equal(rec.sha256, sha256(png).toUpperCase());
    room.leave(r.participant);
  });

  it('an offer with a chat stream and a file stream joins the chat; the file stream is declined; the join hook sees pulls', async () => {
    const frank = await client('frank');
    const both = `${frank.offer()}m=message 2855 TCP/MSRP *\r\na=path:${[...frank.usePath, frank.c.uri].join(' ')}\r\na=accept-types:*\r\na=file-selector:name:"photo.jpg"\r\na=recvonly\r\n`;
    const r = await room.join({ sdpOffer: both, identity: { uri: frank.sip } });
    assert.ok(room.participants.includes(r.participant));
    assert.match(r.sdpAnswer, /\r\nm=message 0 TCP\/MSRP \*\r\n/);
    room.leave(r.participant);
    let refuse = true;
    s.chat.hooks.authorizeJoin.tapPromise('test', async (q) => (refuse && q.media.fileSelector !== undefined ? { reject: 'no files for you' } : undefined));
    try {
      await assert.rejects(room.join({ sdpOffer: pullOffer(frank, 'name:"photo.jpg"'), identity: { uri: frank.sip } }), (e: unknown) => e instanceof ChatError && e.code === 'forbidden');
    } finally {
      refuse = false;
    }
  });

  it('a name with ../ is shown as its last segment and nothing leaves the folder', async () => {
    const alice = open[0]!;
    const evil = cpimFile({ from: alice.sip, to: room.uri, size: 2000, seed: 5, name: '../../escape.txt', type: 'text/plain' });
    const keptEvent = next<[FileRecord]>(room, 'file');
    assert.deepEqual([...new Set(await sendFile(alice, evil))], [200]);
    const [rec] = await keptEvent;
    assert.equal(rec.name, 'escape.txt');
    assert.match(rec.id, /^[0-9a-f]{16}$/);
    assert.equal(existsSync(join(dir, '..', 'escape.txt')), false);
    assert.equal(existsSync(join(dir, '..', '..', 'escape.txt')), false);
    assert.ok(readdirSync(dir).every((n) => /^[0-9a-f]{16}\.file$/.test(n)));
  });

  it('an aborted file (#) is not kept and leaves nothing on disk', async () => {
    const alice = open[0]!;
    const before = s.chat.files!.stats.aborted;
    const f = cpimFile({ from: alice.sip, to: room.uri, size: 200 * KiB, seed: 8, name: 'half.bin' });
    const half = f.source(0, 100 * KiB);
    const id = 'abortedfile1';
    const t1 = alice.c.sendRequest({ method: 'SEND', toPath: alice.toPath, headers: [['Message-ID', id], ['Byte-Range', `1-${half.length}/${f.size}`], ['Content-Type', 'message/cpim']], body: half, flag: '+' });
    assert.equal((await alice.c.waitForResponse(t1)).status, 200);
    const t2 = alice.c.sendRequest({ method: 'SEND', toPath: alice.toPath, headers: [['Message-ID', id], ['Byte-Range', `${half.length + 1}-${half.length + 10}/${f.size}`], ['Content-Type', 'message/cpim']], body: f.source(half.length, 10), flag: '#' });
    assert.equal((await alice.c.waitForResponse(t2)).status, 200);
    await until('the abort is counted', () => s.chat.files!.stats.aborted === before + 1);
    await until('no partial file is left', () => readdirSync(dir).every((n) => n.endsWith('.file')));
    assert.equal((await s.chat.files!.list(room)).some((x) => x.name === 'half.bin'), false);
  });
});

describe('chat files: limits', () => {
  const dir = newDir();
  const s = chatSuite({ store: { driver: 'memory' }, limits: { maxMessageSize: 4 * MiB }, files: { enabled: true, dir, maxFileSize: 256 * KiB, maxFiles: 2, types: ['image/*', 'application/octet-stream'] } }, { timeoutMs: 60_000 });
  const pair = async (roomUri: string) => {
    const room = await s.chat.rooms.create(roomUri);
    const a = await s.join('alice', room);
    const b = await s.join('bob', room);
    return { room, a, b };
  };

  it('a file over files.maxFileSize but within the room’s maxMessageSize is fanned out, not kept; over maxMessageSize it is 413 (C-17)', async () => {
    const { room, a, b } = await pair('sip:limit-size@example.com');
    const refused = s.chat.files!.stats.refused;
    const big = cpimFile({ from: a.sip, to: room.uri, size: 1 * MiB, seed: 11, name: 'big.bin' });
    assert.deepEqual([...new Set(await sendFile(a, big))], [200]);
    const copy = await wholeCopy(b.c, (_f, m) => m !== undefined && m.mediaType === 'application/octet-stream');
    assert.equal(sha256(copy.content), big.contentHash, 'fanned out whole');
    assert.equal(s.chat.files!.stats.refused, refused + 1);
    assert.deepEqual(await s.chat.files!.list(room), []);
    assert.deepEqual(readdirSync(dir), []);
    // Over the room's maxMessageSize: 413 from the first chunk (C-17), nothing on disk.
    const huge = cpimFile({ from: a.sip, to: room.uri, size: 5 * MiB, seed: 12, name: 'huge.bin' });
    const r = await a.c.streamMessage({ toPath: a.toPath, size: huge.size, source: huge.source, contentType: 'message/cpim', chunkSize: MiB });
    assert.equal(r.responses[0]!.status, 413);
    assert.deepEqual(readdirSync(dir), []);
  });

  it('a type files.types does not allow is fanned out, not kept', async () => {
    const { room, a, b } = await pair('sip:limit-type@example.com');
    const pdf = cpimFile({ from: a.sip, to: room.uri, size: 10 * KiB, seed: 13, name: 'doc.pdf', type: 'application/pdf' });
    assert.deepEqual([...new Set(await sendFile(a, pdf))], [200]);
    const copy = await wholeCopy(b.c, (_f, m) => m?.mediaType === 'application/pdf');
    assert.equal(sha256(copy.content), pdf.contentHash);
    assert.deepEqual(await s.chat.files!.list(room), []);
  });

  it('past maxFiles the oldest file goes, from disk and from the list', async () => {
    const { room, a } = await pair('sip:limit-count@example.com');
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const kept = next<[FileRecord]>(room, 'file');
      assert.deepEqual([...new Set(await sendFile(a, cpimFile({ from: a.sip, to: room.uri, size: 20 * KiB, seed: 20 + i, name: `p${i}.png`, type: 'image/png' })))], [200]);
      ids.push((await kept)[0].id);
    }
    await until('the quota is applied', async () => (await s.chat.files!.list(room)).length === 2);
    assert.deepEqual((await s.chat.files!.list(room)).map((f) => f.name), ['p2.png', 'p1.png'], 'newest first, the oldest gone');
    assert.equal(existsSync(join(dir, `${ids[0]}.file`)), false);
    assert.equal(existsSync(join(dir, `${ids[2]}.file`)), true);
  });
});

describe('chat files: retention', () => {
  it('a file older than files.retention is no longer listed and is removed from disk', async () => {
    const dir = newDir();
    const { t, chat } = await startChat({ store: { driver: 'memory' }, files: { enabled: true, dir, retention: 1 } });
    try {
      const room = await chat.rooms.create('sip:retention@example.com');
      const a = await (await ChatClient.connect(t, 'alice')).join(room);
      const kept = next<[FileRecord]>(room, 'file');
      await sendFile(a, cpimFile({ from: a.sip, to: room.uri, size: 4 * KiB, seed: 30, name: 'soon-gone.png', type: 'image/png' }));
      const [rec] = await kept;
      await until('the file expires from the list', async () => (await chat.files!.list(room)).length === 0);
      await until('the sweep removes it from disk', () => !existsSync(join(dir, `${rec.id}.file`)));
      await a.close();
    } finally {
      await t.close();
    }
  });
});

const pgPrefix = `chat_f${randomBytes(4).toString('hex')}_`;
const restartStores: Array<{ name: string; store: ChatOptionsInput['store'] }> = [
  { name: 'sqlite3', store: { driver: 'sqlite3', filename: join(base, 'restart.db') } },
  { name: 'pg', store: { driver: 'pg', host: '127.0.0.1', port: 5432, user: 'postgres', database: 'test', tablePrefix: pgPrefix } },
];

after(async () => {
  const pg = (await import('pg')).default;
  const c = new pg.Client({ host: '127.0.0.1', port: 5432, user: 'postgres', database: 'test' });
  await c.connect();
  await c.query(`DROP TABLE IF EXISTS ${pgPrefix}messages; DROP TABLE IF EXISTS ${pgPrefix}rooms; DROP TABLE IF EXISTS ${pgPrefix}files`);
  await c.end();
});

for (const s of restartStores) describe(`chat files: across a restart (${s.name})`, () => {
  it('the kept file and its record survive; a joiner of the new relay lists and fetches it', async () => {
    const dir = newDir();
    const options: ChatOptionsInput = { store: s.store, files: { enabled: true, dir } };
    const { t: t1, chat: chat1 } = await startChat(options);
    const room1 = await chat1.rooms.create('sip:kept-files@example.com');
    const alice = await (await ChatClient.connect(t1, 'alice')).join(room1);
    const f = cpimFile({ from: alice.sip, to: room1.uri, size: 700 * KiB, seed: 40, name: 'minutes.bin' });
    const kept = next<[FileRecord]>(room1, 'file');
    await sendFile(alice, f);
    const [rec] = await kept;
    await alice.close();
    await t1.close();

    const { t: t2, chat: chat2 } = await startChat(options);
    try {
      const room = chat2.rooms.get('sip:kept-files@example.com')!;
      const bob = await (await ChatClient.connect(t2, 'bob', { timeoutMs: 60_000 })).join(room, { chatroom: null });
      await bob.say('/files');
      assert.match(await statusText(bob, /^Files \(1\)/), new RegExp(`${rec.id}  minutes\\.bin  700\\.0 KiB`));
      await bob.say(`/get ${rec.id}`);
      const copy = await wholeCopy(bob.c, (_f, m) => m?.mediaType === 'application/octet-stream');
      assert.equal(sha256(copy.content), f.contentHash);
      await bob.close();
    } finally {
      await t2.close();
    }
  });
});
