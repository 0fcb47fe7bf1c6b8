/**
 * The chat focus with an independent MSRP relay in the path: Debian's Kamailio msrp module
 * (../shared/peers/kamailio). Alice and bob AUTH at Kamailio and reach the focus through it;
 * carol is on our relay. One room; messages both ways, private messages, NICKNAME, a 2 MiB
 * message in chunks, and the focus's C-rule refusals as they come back through Kamailio.
 *
 * Kamailio's script picks a direction by counting hops: a SEND with one To-Path URI after its
 * token goes to the token's owner. With To-Path `<Kamailio token> <focus URI>` alice's messages
 * came straight back to alice. So alice and bob chain a second AUTH through Kamailio to our relay
 * (RFC 4976 §5.1: an AUTH to a relay beyond the first; R-45) and offer
 * a=path `<Kamailio token> <our token> <own URI>`: their To-Path is
 * `<Kamailio token> <our token> <focus URI>`, which Kamailio relays onwards.
 */

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { MsrpTestClient, startTestRelay, type ReceivedFrame, type TestRelay } from '../../core/testing/index.ts';
import ChatFocus, { msrpMedia, parseSdp, type Participant, type Room } from '../../plugins/chat/index.ts';
import { ChatClient, USERS, cpimBody, offerSdp, readCopy } from '../support/chat.ts';
import { kamailioPeerDir, startKamailio, type KamailioPeer } from '../support/kamailio.ts';

const peerDir = kamailioPeerDir();
const ROOM = 'sip:kam@example.com';
/** Kamailio routes frames of at most 11238 bytes in all (peer README caveat 7): 8 KiB bodies fit. */
const KAM_CHUNK = 8 * 1024;

/** A participant behind Kamailio: AUTHed there, its a=path through Kamailio's token. */
class KamParticipant {
  toPath: string[] = [];
  participant!: Participant;
  readonly sip: string;

  constructor(
    readonly name: string,
    readonly c: MsrpTestClient,
    /** Kamailio's token, then ours. */
    readonly usePath: string[],
  ) {
    this.sip = `sip:${name}@example.com`;
  }

  get token(): string {
    return this.usePath[0]!;
  }

  static async connect(kam: KamailioPeer, t: TestRelay, name: string): Promise<KamParticipant> {
    const c = await MsrpTestClient.connect({ port: kam.tcpPort, timeoutMs: 20_000 });
    // Kamailio wants the Digest uri parameter (peer README caveat 1) and sends no Authentication-Info.
    const r = await c.auth({ relayUri: kam.authUri, username: name, password: 'secret', digestUri: 'include', checkAuthenticationInfo: false });
    assert.equal(r.status, 200, `Kamailio accepts ${name}`);
    // Through Kamailio to our relay: Kamailio forwards an AUTH with more hops.
    const ours = await c.auth({ relayUri: t.authUri(), via: [r.usePath[0]!], username: name, password: 'secret' });
    assert.equal(ours.status, 200, `our relay accepts ${name} through Kamailio`);
    return new KamParticipant(name, c, [r.usePath[0]!, ours.usePath[0]!]);
  }

  async join(room: Room): Promise<this> {
    const r = await room.join({ sdpOffer: offerSdp({ path: [...this.usePath, this.c.uri] }), identity: { uri: this.sip } });
    this.participant = r.participant;
    this.toPath = [...this.usePath, msrpMedia(parseSdp(r.sdpAnswer))[0]!.path[0]!];
    return this;
  }

  /** Sends CPIM (to the room unless `to`); the response is Kamailio's hop-by-hop one. */
  async say(text: string, o: { to?: string; from?: string; chunkSize?: number; content?: Buffer; contentType?: string; body?: Buffer } = {}) {
    const body = o.body ?? cpimBody({ from: o.from ?? this.sip, to: o.to ?? ROOM, text, ...(o.content !== undefined ? { content: o.content } : {}) });
    return this.c.sendMessage({ toPath: this.toPath, body, contentType: o.contentType ?? 'message/cpim', chunkSize: o.chunkSize ?? KAM_CHUNK });
  }

  received(text: string, timeoutMs = 20_000) {
    return this.c.waitFor((f) => f.kind === 'request' && f.method === 'SEND' && f.header('Content-Type') === 'message/cpim' && f.hasBody && f.body.toString().endsWith(`\r\n\r\n${text}`), timeoutMs).then(readCopy);
  }

  /** A failure REPORT for one of this participant's messages. */
  report(messageId: string, timeoutMs = 20_000): Promise<ReceivedFrame> {
    return this.c.waitFor((f) => f.kind === 'request' && f.method === 'REPORT' && f.header('Message-ID') === messageId, timeoutMs);
  }
}

describe('chat through Kamailio: participants behind an independent relay', { skip: peerDir === undefined ? 'the Kamailio peer (../shared/peers/kamailio) is not present' : false }, () => {
  let kam: KamailioPeer;
  let t: TestRelay;
  let chat: ChatFocus;
  let room: Room;
  let alice: KamParticipant;
  let bob: KamParticipant;
  let carol: ChatClient;

  before(async () => {
    kam = await startKamailio(peerDir!);
    chat = new ChatFocus({ store: { driver: 'memory' } });
    // Kamailio dials our relay at 127.0.0.1: that host is the example.com domain (its realm).
    t = await startTestRelay({ users: USERS, plugins: [['domain-map', { default: 'example.com' }], chat] });
    room = await chat.rooms.create(ROOM);
    alice = await (await KamParticipant.connect(kam, t, 'alice')).join(room);
    bob = await (await KamParticipant.connect(kam, t, 'bob')).join(room);
    carol = await (await ChatClient.connect(t, 'carol', { timeoutMs: 20_000 })).join(room);
  });
  after(async () => {
    await Promise.allSettled([alice?.c.close(), bob?.c.close(), carol?.close()]);
    await t?.close();
    await kam?.stop();
  });

  it('messages both ways: from behind Kamailio to the room, and from our relay to the participants behind it', async () => {
    // Alice and bob are the active side (the focus answers a=setup:passive): their first SEND
    // gives the focus its route back through Kamailio's connection.
    const a = await alice.say('hello from behind Kamailio');
    assert.equal(a.responses[0]!.status, 200);
    const b = await bob.say('bob here too');
    assert.equal(b.responses[0]!.status, 200);
    const [toBob, toCarol] = await Promise.all([bob.received('hello from behind Kamailio'), carol.received('hello from behind Kamailio')]);
    assert.equal(toBob.cpim.from.uri, alice.sip);
    assert.equal(toCarol.cpim.from.uri, alice.sip);
    // The copy to bob crossed Kamailio: its From-Path starts with bob's Kamailio token.
    assert.equal(toBob.frame.fromPath[0], bob.token);
    assert.equal((await alice.received('bob here too')).cpim.from.uri, bob.sip);
    assert.equal((await carol.say('hello Kamailio side')).status, 200);
    const [ca, cb] = await Promise.all([alice.received('hello Kamailio side'), bob.received('hello Kamailio side')]);
    assert.equal(ca.cpim.from.uri, carol.sip);
    assert.equal(cb.cpim.from.uri, carol.sip);
  });

  it('private messages (C-11) through Kamailio, both ways', async () => {
    const r = await alice.say('just for carol', { to: carol.sip });
    assert.equal(r.responses[0]!.status, 200);
    const got = await carol.received('just for carol');
    assert.equal(got.cpim.to[0]?.uri, carol.sip);
    assert.equal((await carol.say('just for bob', { to: bob.sip })).status, 200);
    assert.equal((await bob.received('just for bob')).cpim.from.uri, carol.sip);
    // Nobody else got them.
    assert.equal(bob.c.frames.some((f) => f.method === 'SEND' && f.body.toString().endsWith('just for carol')), false);
    assert.equal(alice.c.frames.some((f) => f.method === 'SEND' && f.body.toString().endsWith('just for bob')), false);
  });

  it('NICKNAME: the focus answers from our relay; through Kamailio the request never reaches it', async () => {
    assert.equal(await carol.nickname('"Caz"'), 200);
    assert.equal(room.participants.find((p) => p.identity.uri === carol.sip)?.nickname, 'Caz');
    const tid = alice.c.sendRequest({ method: 'NICKNAME', toPath: alice.toPath, headers: [['Use-Nickname', '"Ally"']] });
    const rs = await alice.c.waitForResponse(tid);
    // The peer's config relays SEND and REPORT only and answers any other method itself.
    assert.equal(rs.status, 501);
    assert.equal(alice.participant.nickname, undefined);
  });

  /** A copy of a large message, whole: its first chunk, then every byte; the sha256 of its content. */
  async function whole(c: MsrpTestClient, size: number, from: string): Promise<{ sha: string; chunks: number }> {
    // The copy is the message with the focus's CPIM headers added (C-6): longer than its content.
    const first = await c.waitFor((f) => f.method === 'SEND' && f.header('Byte-Range')?.startsWith('1-') === true && Number(f.header('Byte-Range')?.split('/')[1]) > size && f.body.toString('latin1', 0, 200).startsWith(`From: <${from}>`), 60_000);
    const m = await c.waitForMessage(first.header('Message-ID')!, 120_000);
    assert.ok(m.complete);
    const copy = readCopy({ ...first, body: m.body! } as ReceivedFrame);
    assert.equal(copy.cpim.from.uri, from);
    return { sha: createHash('sha256').update(m.body!.subarray(copy.cpim.contentStart)).digest('hex'), chunks: m.chunks };
  }

  function bigContent(seed: number): Buffer {
    const content = Buffer.alloc(2 * 1024 * 1024);
    for (let i = 0; i < content.length; i++) content[i] = (i * 31 + (i >> 11) + seed) & 0xff;
    return content;
  }

  it('a 2 MiB message from behind Kamailio, in 8 KiB chunks, arrives whole at carol and, through Kamailio again, at bob', async () => {
    const content = bigContent(1);
    const sent = await alice.say('', { body: cpimBody({ from: alice.sip, to: ROOM, contentType: 'application/octet-stream', content }) });
    assert.ok(sent.responses.every((x) => x.status === 200));
    const sha = createHash('sha256').update(content).digest('hex');
    assert.equal((await whole(carol.c, content.length, alice.sip)).sha, sha);
    assert.equal((await whole(bob.c, content.length, alice.sip)).sha, sha);
  });

  it('a 2 MiB message from our relay (64 KiB chunks) reaches alice and bob through Kamailio re-chunked small enough for it (C-6)', async () => {
    const content = bigContent(2);
    const sent = await carol.say('', { contentType: 'application/octet-stream', content, chunkSize: 64 * 1024 });
    assert.equal(sent.status, 200);
    const sha = createHash('sha256').update(content).digest('hex');
    for (const k of [alice, bob]) {
      const got = await whole(k.c, content.length, carol.sip);
      assert.equal(got.sha, sha);
      // Kamailio routes no frame over about 11 KB: the copies came in chunks of at most 8 KiB.
      assert.ok(got.chunks >= content.length / 8192, `${k.name}: ${got.chunks} chunks`);
    }
  });

  it('the focus\'s refusals come back through Kamailio: 415 (not CPIM, C-3), 403 (another From, C-4), 404 (private to nobody, C-11)', async () => {
    const cases: Array<{ status: number; send: () => Promise<{ messageId: string; responses: ReceivedFrame[] }> }> = [
      { status: 415, send: () => alice.say('', { body: Buffer.from('plain text'), contentType: 'text/plain' }) },
      { status: 403, send: () => alice.say('as bob', { from: bob.sip }) },
      { status: 404, send: () => alice.say('to nobody', { to: 'sip:nobody@example.com' }) },
    ];
    for (const c of cases) {
      const sent = await c.send();
      // Kamailio answers the hop itself at once (peer README caveat 6) ...
      assert.equal(sent.responses[0]!.status, 200);
      // ... and the focus's refusal reaches alice as a failure REPORT.
      const rep = await alice.report(sent.messageId);
      assert.match(rep.header('Status') ?? '', new RegExp(`^000 ${c.status}\\b`));
    }
    assert.equal(bob.c.frames.some((f) => f.method === 'SEND' && /as bob|to nobody|plain text/.test(f.body.toString())), false);
  });
});
