// Interop with an independent relay (Debian's Kamailio msrp module, ../shared/peers/kamailio):
// a session that crosses both relays, in both directions (RFC 4976 §6; RFC.md R-56 … R-63).
// A uses msrprelay, B uses Kamailio: A → [TA, TK, B] and B → [TK, TA, A].
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MsrpTestClient, hashSource, seededSource } from '../../core/testing/client.ts';
import { startTestRelay, type TestRelay } from '../../core/testing/harness.ts';
import { kamailioPeerDir, startKamailio, type KamailioPeer } from '../support/kamailio.ts';

const peerDir = kamailioPeerDir();
const users = [{ username: 'alice', domain: 'example.com', password: 'secret' }];

describe('a session across msrprelay and Kamailio', { skip: peerDir === undefined ? 'the Kamailio peer (../shared/peers/kamailio) is not present' : false }, () => {
  let ours: TestRelay;
  let kam: KamailioPeer;
  let a: MsrpTestClient;
  let b: MsrpTestClient;
  let ta: string;
  let tk: string;

  before(async () => {
    kam = await startKamailio(peerDir!);
    ours = await startTestRelay({ users });
    a = await MsrpTestClient.connect({ port: ours.tcpPort, timeoutMs: 10000 });
    b = await MsrpTestClient.connect({ port: kam.tcpPort, timeoutMs: 10000 });
    const ra = await a.auth({ relayUri: 'msrp://example.com;tcp', username: 'alice', password: 'secret' });
    // Kamailio checks the Digest uri parameter, which RFC 4976 leaves optional (I-5).
    const rb = await b.auth({ relayUri: kam.authUri, username: 'bob', password: 'secret', digestUri: 'include', checkAuthenticationInfo: false });
    assert.equal(ra.status, 200);
    assert.equal(rb.status, 200, 'Kamailio accepts bob');
    ta = ra.usePath[0]!;
    tk = rb.usePath[0]!;
  });
  after(async () => {
    await Promise.allSettled([a?.close(), b?.close()]);
    await ours?.close();
    await kam?.stop();
  });

  it('A → B: our relay dials Kamailio; B gets the text with both relays in From-Path, A gets our 200', async () => {
    const { messageId, responses } = await a.sendMessage({ toPath: [ta, tk, b.uri], body: 'hello through two relays' });
    assert.equal(responses[0]!.status, 200);
    const f = await b.waitFor((x) => x.method === 'SEND' && x.header('Message-ID') === messageId);
    assert.equal(f.body.toString(), 'hello through two relays');
    assert.deepEqual(f.toPath, [b.uri]);
    assert.deepEqual(f.fromPath, [tk, ta, a.uri]);
  });

  it('B → A: Kamailio reaches our relay and the reply arrives with From-Path [TA, TK, B]', async () => {
    const { messageId, responses } = await b.sendMessage({ toPath: [tk, ta, a.uri], body: 'hello back' });
    assert.equal(responses[0]!.status, 200);
    const f = await a.waitFor((x) => x.method === 'SEND' && x.header('Message-ID') === messageId);
    assert.equal(f.body.toString(), 'hello back');
    assert.deepEqual(f.fromPath, [ta, tk, b.uri]);
  });

  it('a 256 KiB message in 2 KiB chunks (the largest frames Kamailio relays) arrives intact', async () => {
    const size = 256 * 1024;
    const src = seededSource(7);
    const sent = await a.streamMessage({ toPath: [ta, tk, b.uri], size, source: src, chunkSize: 2048 });
    assert.ok(sent.responses.every((r) => r.status === 200));
    const m = await b.waitForMessage(sent.messageId, 20000);
    assert.equal(m.bytes, size);
    assert.equal(m.sha256, hashSource(size, src));
  });

  it('a success REPORT from B crosses both relays back to A (R-77)', async () => {
    const { messageId } = await a.sendMessage({ toPath: [ta, tk, b.uri], body: 'report me', successReport: 'yes' });
    const f = await b.waitFor((x) => x.method === 'SEND' && x.header('Message-ID') === messageId);
    b.sendRequest({
      method: 'REPORT',
      toPath: f.fromPath,
      headers: [
        ['Message-ID', messageId],
        ['Byte-Range', '1-9/9'],
        ['Status', '000 200 OK'],
      ],
    });
    const r = await a.waitFor((x) => x.method === 'REPORT' && x.header('Message-ID') === messageId);
    assert.equal(r.header('Status'), '000 200 OK');
    assert.deepEqual(r.toPath, [a.uri]);
  });
});
