// a response never waits behind a long chunk. The relay interrupts the chunk it
// is streaming at the current byte with `+`, writes the response, and resumes the body
// as a new chunk with a new tid and a Byte-Range that continues where the first stopped.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MsrpTestClient, hashSource, seededSource } from '../../core/testing/client.ts';
import { startTestRelay, type TestRelay } from '../../core/testing/harness.ts';
import { parseByteRange } from '../../core/protocol/message.ts';

const users = [
  { username: 'alice', domain: 'example.com', password: 'secret' },
  { username: 'bob', domain: 'example.com', password: 'secret' },
];

describe('interrupting a long chunk (R-67, R-71)', () => {
  let t: TestRelay;
  before(async () => {
    t = await startTestRelay({ users });
  });
  after(() => t.close());

  it('a 200 for B goes out in the middle of the chunk B is receiving, and the chunk resumes intact', async () => {
    const a = await MsrpTestClient.connect({ port: t.tcpPort, storeBodies: false, timeoutMs: 20000 });
    const b = await MsrpTestClient.connect({ port: t.tcpPort, storeBodies: false, timeoutMs: 20000 });
    const ta = (await a.auth({ relayUri: 'msrp://example.com;tcp', username: 'alice', password: 'secret' })).usePath[0]!;
    const tb = (await b.auth({ relayUri: 'msrp://example.com;tcp', username: 'bob', password: 'secret' })).usePath[0]!;

    // B reads nothing for now: the relay's writer toward B fills up mid-chunk, and
    // back-pressure pauses A (the relay holds a bounded amount, never the whole chunk).
    b.pauseReading();
    const size = 16 * 2 ** 20;
    const src = seededSource(3);
    const sending = a.streamMessage({ toPath: [ta, tb, b.uri], size, source: src });
    await new Promise((r) => setTimeout(r, 200));
    // B sends meanwhile (its own writes are not blocked): the relay owes B a 200.
    const tid = b.sendRequest({
      method: 'SEND',
      toPath: [tb, ta, a.uri],
      headers: [['Message-ID', 'interrupt1'], ['Byte-Range', '1-5/5']],
      body: 'ping!',
    });
    await new Promise((r) => setTimeout(r, 100));
    b.resumeReading();

    const ok = await b.waitForResponse(tid);
    assert.equal(ok.status, 200);
    const sent = await sending;
    const m = await b.waitForMessage(sent.messageId, 30000);
    assert.equal(m.bytes, size);
    assert.equal(m.sha256, hashSource(size, src), 'the body is intact across the pieces');

    const pieces = b.frames.filter((f) => f.kind === 'request' && f.header('Message-ID') === sent.messageId);
    assert.ok(pieces.length >= 2, `the chunk was interrupted (${pieces.length} piece(s))`);
    assert.equal(pieces[0]!.flag, '+');
    assert.equal(pieces.at(-1)!.flag, '$');
    // Each piece has its own tid, and its Byte-Range starts where the last one ended.
    assert.equal(new Set(pieces.map((f) => f.tid)).size, pieces.length);
    let next = 1;
    for (const f of pieces) {
      const br = parseByteRange(f.header('Byte-Range')!);
      assert.ok(br !== undefined);
      assert.equal(br.start, next);
      assert.equal(br.total, size);
      next = br.start + f.bodyLength;
    }
    assert.equal(next, size + 1);
    // The 200 arrived between the pieces, not after the whole chunk.
    const at = b.frames.indexOf(ok);
    assert.ok(at > b.frames.indexOf(pieces[0]!) && at < b.frames.indexOf(pieces.at(-1)!), 'the response was not held behind the chunk');
    // A got one 200 for its one chunk, from its own hop.
    assert.equal(sent.responses.length, 1);
    assert.equal(sent.responses[0]!.status, 200);
    await a.waitFor((x) => x.header('Message-ID') === 'interrupt1');
    await Promise.all([a.close(), b.close()]);
  });

  it('a REPORT for B (R-63: a far end answered 486) goes out in the middle of the chunk B is receiving', async () => {
    const a = await MsrpTestClient.connect({ port: t.tcpPort, storeBodies: false, timeoutMs: 20000 });
    const b = await MsrpTestClient.connect({ port: t.tcpPort, storeBodies: false, timeoutMs: 20000 });
    const c = await MsrpTestClient.connect({ port: t.tcpPort, autoRespond: false, timeoutMs: 20000 });
    const ta = (await a.auth({ relayUri: 'msrp://example.com;tcp', username: 'alice', password: 'secret' })).usePath[0]!;
    const tb = (await b.auth({ relayUri: 'msrp://example.com;tcp', username: 'bob', password: 'secret' })).usePath[0]!;
    const tc = (await c.auth({ relayUri: 'msrp://example.com;tcp', username: 'alice', password: 'secret' })).usePath[0]!;

    b.pauseReading();
    const size = 16 * 2 ** 20;
    const src = seededSource(4);
    const sending = a.streamMessage({ toPath: [ta, tb, b.uri], size, source: src });
    await new Promise((r) => setTimeout(r, 200));
    // B writes to C; C refuses with 486, which the relay turns into a REPORT for B.
    b.sendRequest({ method: 'SEND', toPath: [tb, tc, c.uri], headers: [['Message-ID', 'tocarol1'], ['Byte-Range', '1-3/3']], body: 'hey' });
    const atC = await c.waitFor((x) => x.header('Message-ID') === 'tocarol1');
    c.respond(atC, 486, 'Busy Here');
    await new Promise((r) => setTimeout(r, 100));
    b.resumeReading();

    const report = await b.waitFor((x) => x.method === 'REPORT' && x.header('Message-ID') === 'tocarol1');
    assert.match(report.header('Status') ?? '', /^000 486/);
    const sent = await sending;
    const m = await b.waitForMessage(sent.messageId, 30000);
    assert.equal(m.sha256, hashSource(size, src));
    const pieces = b.frames.filter((f) => f.kind === 'request' && f.header('Message-ID') === sent.messageId);
    const at = b.frames.indexOf(report);
    assert.ok(pieces.length >= 2 && at > b.frames.indexOf(pieces[0]!) && at < b.frames.indexOf(pieces.at(-1)!), 'the REPORT interrupted the chunk');
    await Promise.all([a.close(), b.close(), c.close()]);
  });
});
