// Two msrprelay instances in a chain (RFC 4976 §6; RFC.md … ):
// each client's relay, and a client whose own path holds two relays.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MsrpTestClient, hashSource, seededSource } from '../../core/testing/client.ts';
import { startTestRelay, type TestRelay } from '../../core/testing/harness.ts';

const users = [
  { username: 'alice', domain: 'example.com', password: 'secret' },
  { username: 'bob', domain: 'example.com', password: 'secret' },
];

describe('two relays in a chain', () => {
  let r1: TestRelay;
  let r2: TestRelay;
  before(async () => {
    // AUTHs addressed to a relay's own address belong to example.com (domain-map).
    const plugins: Array<[string, object]> = [['domain-map', { default: 'example.com' }]];
    r1 = await startTestRelay({ users, plugins });
    r2 = await startTestRelay({ users, plugins });
  });
  after(async () => {
    await r1.close();
    await r2.close();
  });

  it('A on relay 1, B on relay 2: messages and REPORTs go both ways, each relay answering its own hop', async () => {
    const a = await MsrpTestClient.connect({ port: r1.tcpPort });
    const b = await MsrpTestClient.connect({ port: r2.tcpPort });
    const ta = (await a.auth({ relayUri: 'msrp://example.com;tcp', username: 'alice', password: 'secret' })).usePath[0]!;
    const tb = (await b.auth({ relayUri: 'msrp://example.com;tcp', username: 'bob', password: 'secret' })).usePath[0]!;
    const out = await a.sendMessage({ toPath: [ta, tb, b.uri], body: 'over two relays', successReport: 'yes' });
    assert.equal(out.responses[0]!.status, 200);
    assert.deepEqual(out.responses[0]!.fromPath, [ta], 'the 200 comes from relay 1 (R-56)');
    const f = await b.waitFor((x) => x.method === 'SEND' && x.header('Message-ID') === out.messageId);
    assert.deepEqual(f.fromPath, [tb, ta, a.uri]);
    assert.equal(f.body.toString(), 'over two relays');
    // The success REPORT follows the From-Path back (R-77: nobody answers it).
    b.sendRequest({ method: 'REPORT', toPath: f.fromPath, headers: [['Message-ID', out.messageId], ['Byte-Range', '1-15/15'], ['Status', '000 200 OK']] });
    const rep = await a.waitFor((x) => x.method === 'REPORT');
    assert.deepEqual(rep.fromPath, [ta, tb, b.uri]);
    // And the other way, relay 2 reaching relay 1 over the connection relay 1 opened.
    const back = await b.sendMessage({ toPath: [tb, ta, a.uri], body: 'reply' });
    assert.equal(back.responses[0]!.status, 200);
    const g = await a.waitFor((x) => x.method === 'SEND' && x.header('Message-ID') === back.messageId);
    assert.deepEqual(g.fromPath, [ta, tb, b.uri]);
    await Promise.all([a.close(), b.close()]);
  });

  it('R-45, R-81: A authenticates at relay 2 through relay 1 and uses both as its own path', async () => {
    const a = await MsrpTestClient.connect({ port: r1.tcpPort });
    const b = await MsrpTestClient.connect({ port: r2.tcpPort });
    const first = await a.auth({ relayUri: 'msrp://example.com;tcp', username: 'alice', password: 'secret' });
    const ta1 = first.usePath[0]!;
    // The second AUTH travels end to end through relay 1, and its answers come back
    // with the tid A used.
    const second = await a.auth({ via: [ta1], relayUri: r2.authUri('tcp'), username: 'alice', password: 'secret' });
    assert.equal(second.status, 200);
    const ta2 = second.usePath[0]!;
    assert.match(ta2, new RegExp(`:${r2.tcpPort}/`));
    const tb = (await b.auth({ relayUri: 'msrp://example.com;tcp', username: 'bob', password: 'secret' })).usePath[0]!;
    // A's path is [TA1, TA2]; B's relay is relay 2 as well: TA2 hands over to TB inside relay 2.
    const out = await a.sendMessage({ toPath: [ta1, ta2, tb, b.uri], body: 'via my two relays' });
    assert.equal(out.responses[0]!.status, 200);
    const f = await b.waitFor((x) => x.method === 'SEND' && x.header('Message-ID') === out.messageId);
    assert.deepEqual(f.fromPath, [tb, ta2, ta1, a.uri]);
    const back = await b.sendMessage({ toPath: [tb, ta2, ta1, a.uri], body: 'and back' });
    assert.equal(back.responses[0]!.status, 200);
    const g = await a.waitFor((x) => x.method === 'SEND' && x.header('Message-ID') === back.messageId);
    assert.equal(g.body.toString(), 'and back');
    await Promise.all([a.close(), b.close()]);
  });

  it('8 MiB as one chunk crosses both relays intact, streamed (R-71)', async () => {
    const a = await MsrpTestClient.connect({ port: r1.tcpPort, storeBodies: false });
    const b = await MsrpTestClient.connect({ port: r2.tcpPort, storeBodies: false });
    const ta = (await a.auth({ relayUri: 'msrp://example.com;tcp', username: 'alice', password: 'secret' })).usePath[0]!;
    const tb = (await b.auth({ relayUri: 'msrp://example.com;tcp', username: 'bob', password: 'secret' })).usePath[0]!;
    const size = 8 * 2 ** 20;
    const src = seededSource(11);
    const sent = await a.streamMessage({ toPath: [ta, tb, b.uri], size, source: src });
    assert.equal(sent.responses[0]!.status, 200);
    const m = await b.waitForMessage(sent.messageId, 30000);
    assert.equal(m.bytes, size);
    assert.equal(m.sha256, hashSource(size, src));
    await Promise.all([a.close(), b.close()]);
  });

  it('R-63: when relay 2 refuses (B gone), A gets a REPORT 481 through relay 1', async () => {
    const a = await MsrpTestClient.connect({ port: r1.tcpPort });
    const b = await MsrpTestClient.connect({ port: r2.tcpPort });
    const ta = (await a.auth({ relayUri: 'msrp://example.com;tcp', username: 'alice', password: 'secret' })).usePath[0]!;
    const tb = (await b.auth({ relayUri: 'msrp://example.com;tcp', username: 'bob', password: 'secret' })).usePath[0]!;
    await b.close();
    await new Promise((r) => setTimeout(r, 50));
    const out = await a.sendMessage({ toPath: [ta, tb, b.uri], body: 'anyone?' });
    assert.equal(out.responses[0]!.status, 200, 'relay 1 took the chunk');
    const rep = await a.waitFor((x) => x.method === 'REPORT' && x.header('Message-ID') === out.messageId);
    assert.match(rep.header('Status') ?? '', /^000 481/);
    await a.close();
  });
});
