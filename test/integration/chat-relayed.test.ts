/**
 * A participant behind another relay (a second msrprelay in front, chained AUTH, R-45): the
 * focus sends its copies in chunks of at most `relayedChunkSize` body bytes (C-6 re-chunking, for
 * relays that route small frames only, like Kamailio's), and a refused SEND also gets the focus's failure
 * REPORT (for relays that make none of the focus's error response, R-63). The same with Kamailio
 * in front: interop-kamailio-chat.test.ts.
 */

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { MsrpTestClient, startTestRelay, type TestRelay } from '../../core/testing/index.ts';
import ChatFocus, { msrpMedia, parseSdp, type Room } from '../../plugins/chat/index.ts';
import { ChatClient, USERS, cpimBody, offerSdp, readCopy } from '../support/chat.ts';

const ROOM = 'sip:relayed@example.com';

describe('chat: a participant behind another relay', () => {
  let a: TestRelay;
  let b: TestRelay;
  let chat: ChatFocus;
  let room: Room;
  let carol: ChatClient;
  let dave: MsrpTestClient;
  let daveToPath: string[];
  let daveUsePath: string[];

  before(async () => {
    chat = new ChatFocus({ store: { driver: 'memory' } });
    a = await startTestRelay({ users: USERS, plugins: [['domain-map', { default: 'example.com' }], chat] });
    b = await startTestRelay({ users: USERS, plugins: [['domain-map', { default: 'example.com' }]] });
    room = await chat.rooms.create(ROOM);
    carol = await (await ChatClient.connect(a, 'carol')).join(room);
    // Dave's relay is B; through it he AUTHs at A too: a=path <B token> <A token> <dave>.
    dave = await MsrpTestClient.connect({ port: b.tcpPort, timeoutMs: 20_000 });
    const rb = await dave.auth({ relayUri: b.authUri(), username: 'dave', password: 'secret' });
    assert.equal(rb.status, 200);
    const ra = await dave.auth({ relayUri: a.authUri(), via: [rb.usePath[0]!], username: 'dave', password: 'secret' });
    assert.equal(ra.status, 200);
    daveUsePath = [rb.usePath[0]!, ra.usePath[0]!];
    const j = await room.join({ sdpOffer: offerSdp({ path: [...daveUsePath, dave.uri] }), identity: { uri: 'sip:dave@example.com' } });
    daveToPath = [...daveUsePath, msrpMedia(parseSdp(j.sdpAnswer))[0]!.path[0]!];
    // Dave is the active side: his first SEND shows the focus the way back.
    const hi = await dave.sendMessage({ toPath: daveToPath, body: cpimBody({ from: 'sip:dave@example.com', to: ROOM, text: 'dave here' }), contentType: 'message/cpim' });
    assert.equal(hi.responses[0]!.status, 200);
    await carol.received('dave here');
  });
  after(async () => {
    await Promise.allSettled([dave?.close(), carol?.close()]);
    await b?.close();
    await a?.close();
  });

  it('a 200 KiB message sent in one chunk reaches him whole, in chunks of at most 8 KiB (relayedChunkSize)', async () => {
    const content = Buffer.alloc(200 * 1024, 'x');
    const sent = await carol.say('', { contentType: 'application/octet-stream', content });
    assert.equal(sent.status, 200);
    const first = await dave.waitFor((f) => f.method === 'SEND' && f.header('Byte-Range')?.startsWith('1-') === true && Number(f.header('Byte-Range')?.split('/')[1]) > content.length);
    const id = first.header('Message-ID')!;
    const m = await dave.waitForMessage(id, 30_000);
    assert.ok(m.complete);
    const copy = readCopy({ ...first, body: m.body! } as typeof first);
    assert.equal(copy.cpim.from.uri, carol.sip);
    assert.deepEqual(m.body!.subarray(copy.cpim.contentStart), content);
    const chunks = dave.frames.filter((f) => f.method === 'SEND' && f.header('Message-ID') === id);
    assert.ok(chunks.length >= content.length / 8192, `${chunks.length} chunks`);
    assert.ok(chunks.every((f) => f.bodyLength <= 8192));
  });

  it('a SEND the focus refuses (415, C-3) comes back to him as a failure REPORT from the focus', async () => {
    const sent = await dave.sendMessage({ toPath: daveToPath, body: 'not cpim', contentType: 'text/plain' });
    const reports = () => dave.frames.filter((f) => f.method === 'REPORT' && f.header('Message-ID') === sent.messageId);
    const focusReport = await dave.waitFor((f) => f.method === 'REPORT' && f.header('Message-ID') === sent.messageId && f.fromPath.at(-1) === daveToPath.at(-1));
    assert.match(focusReport.header('Status') ?? '', /^000 415\b/);
    assert.deepEqual(focusReport.toPath, [dave.uri]);
    // Relay B, which answered dave's hop 200, makes its own REPORT of the focus's 415
    // with a relay like this one the sender hears of it twice (relayedReports: false
    // leaves it to the relay); Kamailio makes none, and then the focus's is the only one.
    const relayReport = await dave.waitFor((f) => f.method === 'REPORT' && f.header('Message-ID') === sent.messageId && f.fromPath.length === 1);
    assert.deepEqual(relayReport.fromPath, [daveUsePath[0]]);
    assert.equal(sent.responses[0]!.status, 200);
    assert.ok(reports().every((f) => /^000 415\b/.test(f.header('Status') ?? '')));
  });
});
