/**
 * The chat focus under `msrprelay --workers 2`, real processes: the room and its focus sessions
 * live in worker 0, where the application (here test/support/chat-workers-control.ts, standing in
 * for the SIP front) creates and joins them; participants' own connections land on whichever
 * worker the kernel gives them. One room with members on both workers: regular messages,
 * private messages, NICKNAME, is-composing, a 12 MiB file whole at every member (sha-256), and a
 * member on worker 1 that reads nothing, which holds back neither a member on worker 1 nor the
 * room (C-16). Then with the chat `cluster` option on the real Redis (127.0.0.1:6379): each worker
 * a node, members joined on different workers see each other.
 */

import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parseUri } from '../../core/protocol/uri.ts';
import { workerOfSession } from '../../core/session/session-table.ts';
import { formatUseNickname, msrpMedia, parseSdp } from '../../plugins/chat/index.ts';
import { ChatClient, USERS, offerSdp, readCopy } from '../support/chat.ts';
import { cpimFile, sha256 } from '../support/chat-files.ts';

const BIN = fileURLToPath(new URL('../../bin/msrprelay.js', import.meta.url));
const CHAT = fileURLToPath(new URL('../../plugins/chat/index.ts', import.meta.url));
const CONTROL = fileURLToPath(new URL('../support/chat-workers-control.ts', import.meta.url));
const MiB = 2 ** 20;
const ROOM = 'sip:workers@example.com';

/** The relay's config: the chat focus (with `cluster` options: each worker a node on Redis), then the control. */
function configText(portFile: string, cluster?: object, filesDir?: string): string {
  return `import ChatFocus from ${JSON.stringify(CHAT)};
import Control from ${JSON.stringify(CONTROL)};
const chat = new ChatFocus({
  store: { driver: 'memory' },${cluster !== undefined ? `\n  cluster: ${JSON.stringify(cluster)},` : ''}${filesDir !== undefined ? `\n  files: { enabled: true, dir: ${JSON.stringify(filesDir)} },` : ''}
  limits: { maxMessageSize: 32 * 2 ** 20 },
  congestion: { backlogBytes: 2 ** 20, dropAfter: 600 },
  spool: { memoryBytes: 2 ** 20 },
});
export default {
  hostname: '127.0.0.1',
  listen: [{ transport: 'tcp', host: '127.0.0.1', port: 0, insecureAuth: true }],
  limits: { maxMessageSize: 64 * 2 ** 20 },
  timeouts: { outputStall: 600 },
  plugins: [['auth-memory', { users: ${JSON.stringify(USERS)} }], chat, new Control(chat, ${JSON.stringify(portFile)})],
};
`;
}

interface Running {
  child: ChildProcess;
  tcpPort: number;
  stderr: () => string;
  exited: Promise<number | null>;
}

async function start(configFile: string): Promise<Running> {
  // The primary hands connections to the workers in turn (Node's round-robin), so both get some soon.
  const env = { ...process.env, NODE_CLUSTER_SCHED_POLICY: 'rr' };
  const child = spawn(process.execPath, [BIN, '--config', configFile, '--workers', '2'], { stdio: ['ignore', 'pipe', 'pipe'], env });
  let out = '';
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  const tcpPort = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no "listening" line; stderr:\n${err}`)), 60_000);
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /listening tcp:\/\/127\.0\.0\.1:(\d+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    void exited.then((code) => reject(new Error(`exited ${code} before listening; stderr:\n${err}`)));
  });
  return { child, tcpPort, stderr: () => err, exited };
}

async function until<T>(what: string, f: () => Promise<T | undefined> | T | undefined, timeoutMs = 60_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await f();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function workerOf(token: string): number {
  const w = workerOfSession(parseUri(token).sessionId!, 2);
  assert.notEqual(w, undefined, `token ${token} names no worker`);
  return w!;
}

type Member = { user: string; congested: boolean; dropped: number; delivered: number };

describe('chat under msrprelay --workers 2: one room, members on both workers', () => {
  let dir: string;
  let r: Running;
  const control: number[] = [];
  const open: ChatClient[] = [];

  /** Asks the control of worker `w` (0 unless given: where the room is). */
  async function post<T>(path: string, body: unknown, w = 0): Promise<T> {
    const res = await fetch(`http://127.0.0.1:${control[w]}${path}`, { method: 'POST', body: JSON.stringify(body) });
    const json = (await res.json()) as T & { error?: string };
    if (res.status !== 200) throw new Error(`${path}: ${json.error}`);
    return json;
  }

  const members = async () => (await post<{ members: Member[] }>('/members', { room: ROOM })).members;
  const member = async (c: ChatClient) => (await members()).find((m) => m.user === c.sip);

  /** A client of `name` whose token is of worker `w`: connections are opened until one lands there. */
  async function on(w: number, name: string, storeBodies = true): Promise<ChatClient> {
    for (let i = 0; i < 60; i++) {
      const c = await ChatClient.connect({ tcpPort: r.tcpPort }, name, { timeoutMs: 120_000, storeBodies });
      if (workerOf(c.usePath[0]!) === w) {
        open.push(c);
        return c;
      }
      await c.close();
    }
    throw new Error(`no connection landed on worker ${w}`);
  }

  /** Joins through the application in worker 0, as the SIP front would with the client's offer. */
  async function enter(c: ChatClient): Promise<ChatClient> {
    const { sdpAnswer } = await post<{ sdpAnswer: string }>('/join', { room: ROOM, sdpOffer: c.offer(), identity: { uri: c.sip } });
    c.sdpAnswer = sdpAnswer;
    c.room = ROOM;
    c.focusUri = msrpMedia(parseSdp(sdpAnswer))[0]!.path[0]!;
    c.toPath = [...c.usePath, c.focusUri];
    return c;
  }

  let alice: ChatClient; // worker 0
  let erin: ChatClient; // worker 0
  let bob: ChatClient; // worker 1, sends the file
  let dave: ChatClient; // worker 1, reads
  let carol: ChatClient; // worker 1, stops reading

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'msrprelay-chat-workers-'));
    const portFile = join(dir, 'control.port');
    const file = join(dir, 'msrprelay.config.mjs');
    writeFileSync(file, configText(portFile, undefined, join(dir, 'files')));
    r = await start(file);
    for (const w of [0, 1]) {
      const f = `${portFile}.${w}`;
      control[w] = Number(await until(`the control port of worker ${w}`, () => (existsSync(f) ? readFileSync(f, 'utf8') || undefined : undefined)));
    }
    await post('/create', { room: ROOM });
    alice = await enter(await on(0, 'alice'));
    erin = await enter(await on(0, 'erin'));
    bob = await enter(await on(1, 'bob'));
    dave = await enter(await on(1, 'dave'));
    carol = await enter(await on(1, 'carol'));
  });

  after(async () => {
    for (const c of open) if (!c.c.isClosed) await c.close();
    if (r !== undefined && r.child.exitCode === null) {
      r.child.kill('SIGTERM');
      const code = await Promise.race([r.exited, new Promise((x) => setTimeout(x, 20_000).unref())]);
      if (code === undefined) r.child.kill('SIGKILL');
    }
    rmSync(dir, { recursive: true, force: true });
  });

  it('the members hold tokens of both workers; every focus URI is of worker 0, where the room is', async () => {
    assert.deepEqual([alice, erin, bob, dave, carol].map((c) => workerOf(c.usePath[0]!)), [0, 0, 1, 1, 1]);
    for (const c of [alice, erin, bob, dave, carol]) assert.equal(workerOf(c.focusUri), 0);
    assert.equal((await members()).length, 5);
  });

  it('a regular message reaches everyone else, from either worker, before the members on worker 1 sent anything (C-1)', async () => {
    assert.equal((await alice.say('hello from worker 0')).status, 200);
    for (const c of [erin, bob, dave, carol]) {
      const copy = await c.received('hello from worker 0', 60_000);
      assert.equal(copy.cpim.from.uri, alice.sip);
      // As a relay hands a copy to its client: its token, then the focus (R-58).
      assert.deepEqual(copy.frame.fromPath, [c.usePath[0], c.focusUri]);
      assert.deepEqual(copy.frame.toPath, [c.c.uri]);
    }
    assert.equal((await bob.say('hello from worker 1')).status, 200);
    for (const c of [alice, erin, dave, carol]) assert.equal((await c.received('hello from worker 1', 60_000)).cpim.from.uri, bob.sip);
    assert.equal(alice.copies('hello from worker 0').length, 0);
    assert.equal(bob.copies('hello from worker 1').length, 0);
  });

  it('the tokens of the members on worker 1 are bound by the focus\'s links (I-4: they do not expire under a chat)', async () => {
    for (const c of [bob, dave, carol]) {
      assert.deepEqual(await post('/session', { id: parseUri(c.usePath[0]!).sessionId }, 1), { bound: true }, c.name);
    }
  });

  it('a private message goes to its recipient only, across workers and within worker 1 (C-11)', async () => {
    assert.equal((await dave.say('psst alice', { to: alice.sip })).status, 200);
    assert.equal((await alice.received('psst alice', 60_000)).cpim.to[0]!.uri, alice.sip);
    assert.equal((await dave.say('psst bob', { to: bob.sip })).status, 200);
    await bob.received('psst bob', 60_000);
    // From worker 1 the focus is behind a relay hop: the hop answers 200, the focus's 404 comes
    // back as a REPORT (RFC 4976 §7.3), as for a participant through another relay.
    assert.equal((await alice.say('to nobody', { to: 'sip:nobody@example.com' })).status, 404);
    const nobody = await dave.say('to nobody', { to: 'sip:nobody@example.com' });
    assert.equal(nobody.status, 200);
    const report = await dave.c.waitFor((f) => f.method === 'REPORT' && f.header('Message-ID') === nobody.messageId, 60_000);
    assert.match(report.header('Status') ?? '', /^000 404\b/);
    await alice.say('fence');
    for (const c of [erin, bob, dave, carol]) await c.received('fence', 60_000);
    for (const c of [erin, bob, carol]) assert.equal(c.copies('psst alice').length, 0);
    for (const c of [alice, erin, carol]) assert.equal(c.copies('psst bob').length, 0);
  });

  it('NICKNAME: 200 from either worker, 425 for a nickname another user holds (C-13)', async () => {
    assert.equal(await bob.nickname(formatUseNickname('bobby')), 200);
    assert.equal(await alice.nickname(formatUseNickname('bobby')), 425);
    assert.equal(await dave.nickname(formatUseNickname('bobby')), 425);
    assert.equal(await alice.nickname(formatUseNickname('Alice')), 200);
    await bob.say('named now');
    const copy = await alice.received('named now', 60_000);
    assert.equal(copy.focus('Nickname'), '"bobby"');
  });

  it('is-composing from worker 1 reaches the room', async () => {
    const xml = '<?xml version="1.0" encoding="UTF-8"?>\n<isComposing xmlns="urn:ietf:params:xml:ns:im-iscomposing"><state>active</state><contenttype>text/plain</contenttype><refresh>60</refresh></isComposing>';
    assert.equal((await dave.say(xml, { contentType: 'application/im-iscomposing+xml' })).status, 200);
    for (const c of [alice, erin, bob, carol]) assert.equal((await c.received(xml, 60_000)).cpim.mediaType, 'application/im-iscomposing+xml');
  });

  it('a 12 MiB file reaches every member whole; a member on worker 1 that reads nothing holds back neither one on worker 1 nor the room (C-16)', async () => {
    carol.c.pauseReading();
    const file = cpimFile({ from: bob.sip, to: ROOM, size: 12 * MiB, seed: 21, name: 'big.bin' });
    const sending = bob.c.streamMessage({ toPath: bob.toPath, size: file.size, source: file.source, contentType: 'message/cpim', chunkSize: MiB });
    await until('carol congested', async () => ((await member(carol))?.congested === true ? true : undefined), 120_000);
    const sent = await sending;
    assert.ok(sent.responses.every((x) => x.status === 200));
    const isFile = (f: { method: string; flag: string; header(n: string): string | undefined }) => f.method === 'SEND' && f.flag === '$' && Number(f.header('Byte-Range')?.split('/')[1]) > 12 * MiB;
    const whole = async (c: ChatClient) => {
      const last = await c.c.waitFor(isFile, 120_000);
      const m = await c.c.waitForMessage(last.header('Message-ID')!, 120_000);
      assert.equal(m.complete, true);
      const copy = readCopy({ ...last, body: m.body! });
      assert.equal(copy.cpim.from.uri, bob.sip);
      assert.equal(sha256(m.body!.subarray(copy.cpim.contentStart)), file.contentHash);
    };
    // Dave on worker 1 and the members on worker 0 have the whole file while carol read nothing.
    await Promise.all([whole(dave), whole(alice), whole(erin)]);
    assert.equal(carol.c.frames.some(isFile), false);
    assert.equal((await member(carol))?.congested, true);
    // The room goes on: a message while carol is congested reaches the others, and her copy is dropped (C-16).
    const dropped = (await member(carol))!.dropped;
    await dave.say('while carol is congested');
    for (const c of [alice, erin, bob]) await c.received('while carol is congested', 60_000);
    assert.equal((await member(carol))!.dropped, dropped + 1);
    // Carol reads again: the file arrives whole, and what is said later reaches her.
    carol.c.resumeReading();
    await whole(carol);
    await until('carol free again', async () => ((await member(carol))?.congested === false ? true : undefined), 120_000);
    await alice.say('carol is back');
    await carol.received('carol is back', 60_000);
    assert.equal(carol.copies('while carol is congested').length, 0);
    // Kept by worker 0, where the room is, in a folder of its own: worker 1's start cleared
    // nothing of it (each worker clears only files of its own folder it has no record of).
    const kept = (w: number) => readdirSync(join(dir, 'files', `w${w}`)).filter((n) => n.endsWith('.file'));
    await until('the file kept by worker 0', () => (kept(0).length === 1 ? true : undefined));
    assert.equal(statSync(join(dir, 'files', 'w0', kept(0)[0]!)).size, file.size);
    assert.deepEqual(kept(1), []);
  });

  it('a member whose offer names a token worker 1 does not have leaves at the first copy (481)', async () => {
    const ghost = await on(0, 'frank');
    // Its offer's path: a token of worker 1 that nobody was given, then its own URI.
    const forged = ghost.usePath[0]!.replace(/\/[0-9A-Za-z]+;tcp$/, `/1${'x'.repeat(22)};tcp`);
    const { sdpAnswer } = await post<{ sdpAnswer: string }>('/join', { room: ROOM, sdpOffer: offerSdp({ path: [forged, ghost.c.uri] }), identity: { uri: ghost.sip } });
    // Joined (room.join answered); it may already be gone by the time the roster is read: the
    // history the focus sends at once is its first copy, and that copy gets the 481.
    assert.ok(sdpAnswer.includes('a=path:'));
    await alice.say('anyone there');
    await until('the member of the forged token gone', async () => ((await members()).some((m) => m.user === ghost.sip) ? undefined : true), 60_000);
  });

  it('a member on worker 1 whose connection closes leaves the room in worker 0', async () => {
    await carol.close();
    await until('carol gone from the room', async () => ((await members()).some((m) => m.user === carol.sip) ? undefined : true), 60_000);
    await bob.say('after carol');
    for (const c of [alice, dave]) await c.received('after carol', 60_000);
  });

  it('a passive offerer (RFC 6135) whose token worker 1 issued joins: the focus reaches it over a worker link of its own', async () => {
    // carol again (she left above), on a new connection.
    const passive = await on(1, 'carol');
    const { sdpAnswer } = await post<{ sdpAnswer: string }>('/join', { room: ROOM, sdpOffer: passive.offer({ setup: 'passive' }), identity: { uri: passive.sip } });
    // The answerer of a passive offer is the active end (RFC 4145 §4.1).
    assert.match(sdpAnswer, /\r\na=setup:active\r\n/);
    passive.sdpAnswer = sdpAnswer;
    passive.room = ROOM;
    passive.focusUri = msrpMedia(parseSdp(sdpAnswer))[0]!.path[0]!;
    passive.toPath = [...passive.usePath, passive.focusUri];
    // It has sent nothing: the copy comes over the focus's link to worker 1, through carol's token.
    await alice.say('to the passive one');
    const copy = await passive.received('to the passive one', 60_000);
    assert.deepEqual(copy.frame.fromPath, [passive.usePath[0], passive.focusUri]);
    assert.ok((await members()).some((m) => m.user === passive.sip));
    assert.equal((await passive.say('the passive one speaks')).status, 200);
    await dave.received('the passive one speaks', 60_000);
  });
});

describe('chat under msrprelay --workers 2 with the cluster option: each worker a node on Redis', () => {
  let dir: string;
  let r: Running;
  const control: number[] = [];
  const open: ChatClient[] = [];
  const room = 'sip:nodes@example.com';

  async function post<T>(w: number, path: string, body: unknown): Promise<T> {
    const res = await fetch(`http://127.0.0.1:${control[w]}${path}`, { method: 'POST', body: JSON.stringify(body) });
    const json = (await res.json()) as T & { error?: string };
    if (res.status !== 200) throw new Error(`${path}: ${json.error}`);
    return json;
  }

  async function on(w: number, name: string): Promise<ChatClient> {
    for (let i = 0; i < 60; i++) {
      const c = await ChatClient.connect({ tcpPort: r.tcpPort }, name, { timeoutMs: 60_000 });
      if (workerOf(c.usePath[0]!) === w) {
        open.push(c);
        return c;
      }
      await c.close();
    }
    throw new Error(`no connection landed on worker ${w}`);
  }

  /** Joins the room of worker `w`'s node, as a SIP front in that worker would. */
  async function enterAt(w: number, c: ChatClient): Promise<ChatClient> {
    const { sdpAnswer } = await post<{ sdpAnswer: string }>(w, '/join', { room, sdpOffer: c.offer(), identity: { uri: c.sip } });
    c.room = room;
    c.focusUri = msrpMedia(parseSdp(sdpAnswer))[0]!.path[0]!;
    c.toPath = [...c.usePath, c.focusUri];
    return c;
  }

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'msrprelay-chat-workers-redis-'));
    const portFile = join(dir, 'control.port');
    const file = join(dir, 'msrprelay.config.mjs');
    const keyPrefix = `test:chat-workers:${randomBytes(6).toString('hex')}:`;
    writeFileSync(file, configText(portFile, { redis: { url: 'redis://127.0.0.1:6379', keyPrefix }, nodeId: 'relay', heartbeat: 0.2, rosterTtl: 1 }));
    r = await start(file);
    for (const w of [0, 1]) {
      const f = `${portFile}.${w}`;
      control[w] = Number(await until(`the control port of worker ${w}`, () => (existsSync(f) ? readFileSync(f, 'utf8') || undefined : undefined)));
      await post(w, '/create', { room });
    }
  });

  after(async () => {
    for (const c of open) if (!c.c.isClosed) await c.close();
    if (r !== undefined && r.child.exitCode === null) {
      r.child.kill('SIGTERM');
      const code = await Promise.race([r.exited, new Promise((x) => setTimeout(x, 20_000).unref())]);
      if (code === undefined) r.child.kill('SIGKILL');
    }
    rmSync(dir, { recursive: true, force: true });
  });

  it('the node ids name the workers; members joined on different workers see each other, in either direction', async () => {
    const ids = await Promise.all([0, 1].map(async (w) => (await post<{ nodeId: string }>(w, '/node', { room })).nodeId));
    assert.deepEqual(ids, ['relay-w0', 'relay-w1']);
    // Joined where its token is, and where it is not (the room reaches it over the worker link).
    const alice = await enterAt(0, await on(0, 'alice'));
    const bob = await enterAt(1, await on(1, 'bob'));
    const carol = await enterAt(0, await on(1, 'carol'));
    assert.deepEqual([alice, bob, carol].map((c) => workerOf(c.focusUri)), [0, 1, 0]);
    await until('worker 0 sees bob', async () => ((await post<{ remote: string[] }>(0, '/node', { room })).remote.includes('bob@example.com') ? true : undefined));
    await until('worker 1 sees alice and carol', async () => {
      const remote = (await post<{ remote: string[] }>(1, '/node', { room })).remote;
      return remote.includes('alice@example.com') && remote.includes('carol@example.com') ? true : undefined;
    });
    assert.equal((await alice.say('hello from node w0')).status, 200);
    for (const c of [bob, carol]) assert.equal((await c.received('hello from node w0', 60_000)).cpim.from.uri, alice.sip);
    assert.equal((await bob.say('hello from node w1')).status, 200);
    for (const c of [alice, carol]) assert.equal((await c.received('hello from node w1', 60_000)).cpim.from.uri, bob.sip);
    assert.equal((await bob.say('psst carol', { to: carol.sip })).status, 200);
    await carol.received('psst carol', 60_000);
    await bob.say('fence');
    await alice.received('fence', 60_000);
    assert.equal(alice.copies('psst carol').length, 0);
    // Each once, and none back to its sender.
    for (const [c, text, n] of [[alice, 'hello from node w1', 1], [bob, 'hello from node w0', 1], [carol, 'hello from node w0', 1], [carol, 'hello from node w1', 1], [alice, 'hello from node w0', 0], [bob, 'hello from node w1', 0]] as const) {
      assert.equal(c.copies(text).length, n, `${c.name}: ${text}`);
    }
  });
});
