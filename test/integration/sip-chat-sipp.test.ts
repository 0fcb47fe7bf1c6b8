/**
 * examples/sip-chat-server driven by SIPp (Debian package sip-tester), an independent SIP stack,
 * with the scenarios of examples/sip-chat-server/sipp/: the participant's whole life (INVITE with
 * Digest, MESSAGE, SUBSCRIBE to the conference package, a refresh with the dialog's nonce, BYE
 * and unsubscribe challenged in their dialogs), an offer without CPIM, and many calls (each BYE
 * with SIPp's own nc-incremented credentials over the INVITE's nonce). Real MSRP clients AUTH at the relay and their URIs go into the SIPp offers (-inf CSV),
 * so the SIPp-created participant really chats over MSRP through the relay.
 * Skips when `sipp` is not installed (CI installs it: .ci/run).
 */

import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { MsrpTestClient, freePort } from '../../core/testing/index.ts';
import { msrpMedia, parseSdp, type Participant, type Room } from '../../plugins/chat/index.ts';
import { startSipChatServer, type SipChatServer } from '../../examples/sip-chat-server/server.ts';
import { cpimBody, offerSdp, readCopy } from '../support/chat.ts';

const SCENARIOS = resolve(import.meta.dirname, '../../examples/sip-chat-server/sipp');
const hasSipp = spawnSync('sipp', ['-v'], { stdio: 'ignore' }).error === undefined;
const LOAD_CALLS = 50;
const USERS = ['alice', 'bob', 'carol', 'dave'].map((username) => ({ username, domain: 'example.com', password: 'secret' }));

interface SippRun {
  code: number | null;
  /** The last line of SIPp's statistics file (-trace_stat), by column. */
  stats: Record<string, string>;
  /** What the scenario's <log> actions wrote. */
  logs: string;
  errors: string;
  stdout: string;
}

/** msrp://host:port/id;tcp as the CSV holds it: SIPp's separator is ';', the scenario adds the rest. */
const bare = (uri: string) => uri.replace(/^msrp:\/\//, '').replace(/;tcp$/, '');

async function until(what: string, cond: () => boolean, timeoutMs = 60_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('SIPp against examples/sip-chat-server', { skip: hasSipp ? false : 'sipp is not installed (Debian package sip-tester)' }, () => {
  let server: SipChatServer;
  let sipPort: number;
  let msrpPort: number;
  let dir: string;
  const clients: MsrpTestClient[] = [];
  /** SIPp processes still running (a failed test leaves its SIPp waiting): ended in after(). */
  const running = new Set<ReturnType<typeof spawn>>();

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sipp-chat-'));
    sipPort = await freePort();
    msrpPort = await freePort();
    server = await startSipChatServer({ domain: 'example.com', sip: { address: '127.0.0.1', port: sipPort }, msrp: { hostname: '127.0.0.1', host: '127.0.0.1', port: msrpPort }, users: USERS,
      // The load run is one user with a session per call, some dozen at a time (C-10's limit is 5 by default).
      chat: { store: { driver: 'memory' }, limits: { maxSessionsPerUser: 100 } },
    });
  });
  after(async () => {
    for (const child of running) child.kill('SIGKILL');
    await Promise.allSettled(clients.map((c) => c.close()));
    await server?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** An MSRP client of `user` that AUTHed at the relay: its CSV line for the scenarios. */
  async function msrpUser(user: string): Promise<{ c: MsrpTestClient; token: string; line: string }> {
    const c = await MsrpTestClient.connect({ port: msrpPort, timeoutMs: 20_000 });
    clients.push(c);
    const auth = await c.auth({ relayUri: 'msrp://example.com;tcp', username: user, password: 'secret' });
    assert.equal(auth.status, 200);
    return { c, token: auth.usePath[0]!, line: `${user};${bare(auth.usePath[0]!)};${bare(c.uri)}` };
  }

  /** Runs one scenario to its end; SIPp's exit code is 0 only when every call succeeded. */
  async function sipp(name: string, o: { scenario: string; room: string; user: string; lines: string[]; transport: 'u1' | 't1'; extra?: string[] }): Promise<SippRun> {
    const csv = join(dir, `${name}.csv`);
    writeFileSync(csv, `SEQUENTIAL\n${o.lines.join('\n')}\n`);
    const file = (ext: string) => join(dir, `${name}.${ext}`);
    const args = [
      '127.0.0.1:' + sipPort,
      '-sf', join(SCENARIOS, o.scenario),
      '-inf', csv,
      '-s', o.room,
      // The Digest credentials of the scenarios' [authentication].
      '-au', o.user, '-ap', 'secret',
      // The Digest uri is the Request-URI (RFC 3261 §22.4); SIPp's own default is host:port alone.
      '-auth_uri', `${o.room}@127.0.0.1:${sipPort}`,
      '-t', o.transport,
      // Not 127.0.0.1: the `sip` package takes a request for its own address as one of its own
      // flow tokens, so the server's NOTIFYs and BYEs could not reach a client there.
      '-i', '127.0.0.2',
      '-p', String(await freePort()),
      '-m', String(o.lines.length),
      '-nostdin',
      '-trace_stat', '-stf', file('stat.csv'),
      '-trace_logs', '-log_file', file('log'),
      '-trace_err', '-error_file', file('err'),
      '-recv_timeout', '60000',
      '-timeout', '180', '-timeout_error',
      ...(o.extra ?? []),
    ];
    const child = spawn('sipp', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    running.add(child);
    child.once('close', () => running.delete(child));
    let stdout = '';
    child.stdout.on('data', (d: Buffer) => (stdout = (stdout + d.toString()).slice(-20_000)));
    child.stderr.on('data', (d: Buffer) => (stdout = (stdout + d.toString()).slice(-20_000)));
    const code = await new Promise<number | null>((r) => child.once('close', r));
    const read = (f: string) => (existsSync(f) ? readFileSync(f, 'utf8') : '');
    const rows = read(file('stat.csv')).trim().split('\n');
    const cols = (rows[0] ?? '').split(';');
    const last = (rows.at(-1) ?? '').split(';');
    const stats = Object.fromEntries(cols.map((c, i) => [c, last[i] ?? '']));
    return { code, stats, logs: read(file('log')), errors: read(file('err')), stdout };
  }

  const explain = (r: SippRun) => `sipp exited ${r.code}\n${r.errors}\n${r.stdout.slice(-4000)}`;

  /** A participant that joins through the focus's API, as a second client of the room. */
  async function joinDirectly(room: Room, user: string): Promise<{ c: MsrpTestClient; participant: Participant; toPath: string[] }> {
    const { c, token } = await msrpUser(user);
    const r = await room.join({ sdpOffer: offerSdp({ path: [token, c.uri] }), identity: { uri: `sip:${user}@example.com` } });
    return { c, participant: r.participant, toPath: [token, msrpMedia(parseSdp(r.sdpAnswer))[0]!.path[0]!] };
  }

  async function received(c: MsrpTestClient, text: string) {
    const f = await c.waitFor((x) => x.method === 'SEND' && x.header('Content-Type') === 'message/cpim' && x.hasBody && x.body.toString().endsWith(text), 30_000);
    return readCopy(f);
  }

  it('UDP: a SIPp participant joins with Digest, gets 405 for MESSAGE, the roster by NOTIFY, chats over MSRP, refreshes and leaves with in-dialog Digest', async () => {
    const roomUri = 'sip:sipp-chat@example.com';
    const alice = await msrpUser('alice');
    const run = sipp('chat', { scenario: 'chat.xml', room: 'sipp-chat', user: 'alice', lines: [alice.line], transport: 'u1' });
    // SIPp's participant is in, and subscribed (the server listens to the roster for it).
    let ended: SippRun | undefined;
    void run.then((r) => (ended = r));
    await until('the SIPp participant and its subscription', () => {
      if (ended !== undefined) assert.fail(`SIPp ended early: ${explain(ended)}`);
      const room = server.chat.rooms.get(roomUri);
      return room !== undefined && room.participants.length === 1 && room.listenerCount('roster') > 0;
    });
    const room = server.chat.rooms.get(roomUri)!;
    const sippParticipant = room.participants[0]!;
    // The identity is the authenticated user.
    assert.equal(sippParticipant.identity.uri, 'sip:alice@example.com');
    const bob = await joinDirectly(room, 'bob');
    // Bob to the room: the SIPp participant's MSRP client gets it, from bob, through the relay.
    const s1 = await bob.c.sendMessage({ toPath: bob.toPath, body: cpimBody({ from: 'sip:bob@example.com', to: roomUri, text: 'hello SIPp' }), contentType: 'message/cpim' });
    assert.equal(s1.responses[0]!.status, 200);
    const got = await received(alice.c, 'hello SIPp');
    assert.equal(got.cpim.from.uri, 'sip:bob@example.com');
    // And back: the SIPp participant's client sends to the focus URI of its answer.
    const s2 = await alice.c.sendMessage({ toPath: [alice.token, sippParticipant.uri], body: cpimBody({ from: 'sip:alice@example.com', to: roomUri, text: 'hello bob' }), contentType: 'message/cpim' });
    assert.equal(s2.responses[0]!.status, 200);
    assert.equal((await received(bob.c, 'hello bob')).cpim.from.uri, 'sip:alice@example.com');
    // Bob leaves: SIPp sees the roster shrink, hangs up and unsubscribes.
    room.leave(bob.participant);
    const r = await run;
    assert.equal(r.code, 0, explain(r));
    assert.equal(r.stats['SuccessfulCall(C)'], '1');
    assert.equal(r.stats['FailedCall(C)'], '0');
    // What SIPp checked in the 200 and the NOTIFYs (its ereg checks fail the call otherwise).
    const path = /answer path (\S+) types (.*) contact (.*)/.exec(r.logs);
    assert.ok(path, r.logs);
    assert.equal(path[1], sippParticipant.uri, 'the 200\'s a=path is the focus on our relay');
    assert.match(path[1]!, new RegExp(`^msrp://127\\.0\\.0\\.1:${msrpPort}/`));
    assert.match(path[2]!, /message\/cpim/);
    assert.match(r.logs, /message status 405/);
    assert.match(r.logs, /notify 1 user entity="sip:alice@example\.com"/);
    // In the dialogs: the refresh with SIPp's next nc over the SUBSCRIBE's nonce went through
    // unchallenged; BYE and unsubscribe without credentials were challenged, then accepted.
    assert.match(r.logs, /refresh with the dialog's nonce 200/);
    assert.match(r.logs, /notify refresh <user-count>1<\/user-count>/);
    assert.match(r.logs, /bye challenged 401/);
    assert.match(r.logs, /unsubscribe challenged 401/);
    assert.match(r.logs, /notify 4 <user-count>0<\/user-count> no user entity/);
    assert.match(r.logs, /notify 5 terminated/);
    assert.equal(room.participants.length, 0);
    // Both dialogs ended: no nonce is held for them any more.
    assert.equal(server.sipAuth!.heldNonces, 0);
  });

  it('an offer without message/cpim gets 488 (after the challenge), and nobody joins', async () => {
    const carol = await msrpUser('carol');
    const r = await sipp('reject', { scenario: 'reject.xml', room: 'sipp-reject', user: 'carol', lines: [carol.line], transport: 'u1' });
    assert.equal(r.code, 0, explain(r));
    assert.equal(r.stats['SuccessfulCall(C)'], '1');
    assert.match(r.logs, /offer without cpim 488/);
    assert.equal(server.chat.rooms.get('sip:sipp-reject@example.com')?.participants.length ?? 0, 0);
  });

  it(`${LOAD_CALLS} calls at 10 a second (-m ${LOAD_CALLS} -r 10): every one completes`, async () => {
    const lines: string[] = [];
    // One user with a session per call (C-10: a user may be in a room with several sessions).
    for (let i = 1; i <= LOAD_CALLS; i++) lines.push((await msrpUser('dave')).line);
    const r = await sipp('load', { scenario: 'load.xml', room: 'sipp-load', user: 'dave', lines, transport: 'u1', extra: ['-r', '10', '-l', String(LOAD_CALLS), '-d', '1000'] });
    assert.equal(r.code, 0, explain(r));
    assert.equal(r.stats['TotalCallCreated'], String(LOAD_CALLS));
    assert.equal(r.stats['SuccessfulCall(C)'], String(LOAD_CALLS));
    assert.equal(r.stats['FailedCall(C)'], '0');
    assert.equal(server.chat.rooms.get('sip:sipp-load@example.com')!.participants.length, 0);
    // Every BYE went through with the INVITE's nonce (a 401 would have failed its call), and each
    // call's nonce went with its dialog.
    assert.equal(server.sipAuth!.heldNonces, 0);
  });

  // Over TCP the calls themselves (INVITE with Digest, ACK, BYE). The server's own requests in a
  // dialog (NOTIFY) go out on a new connection to the Contact, where SIPp's single-socket TCP mode
  // (-t t1) does not answer them; chat.xml runs over UDP.
  it('TCP: 20 calls at 10 a second over one TCP connection (-t t1): every one completes', async () => {
    const lines: string[] = [];
    for (let i = 1; i <= 20; i++) lines.push((await msrpUser('dave')).line);
    const r = await sipp('load-tcp', { scenario: 'load.xml', room: 'sipp-load-tcp', user: 'dave', lines, transport: 't1', extra: ['-r', '10', '-l', '20', '-d', '500'] });
    assert.equal(r.code, 0, explain(r));
    assert.equal(r.stats['SuccessfulCall(C)'], '20');
    assert.equal(r.stats['FailedCall(C)'], '0');
    assert.match(r.logs, new RegExp(`answer path msrp://127\\.0\\.0\\.1:${msrpPort}/\\S+;tcp types \\S*message/cpim`));
    assert.equal(server.chat.rooms.get('sip:sipp-load-tcp@example.com')!.participants.length, 0);
  });
});
