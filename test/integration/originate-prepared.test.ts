/**
 * relay.prepare(): a request checked and rendered once, sent as copies (a fan-out, C-1), used as
 * a plugin author would, against real TCP and WebSocket clients of a real relay: the copies are
 * MSRP the clients parse, each with its own tid, Message-ID and paths; back-pressure holds; a
 * copy never cuts, nor is cut by, a stream on the same connection (R-67, W-4); bad input is
 * refused with a clear error.
 */

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { ConnectionContext, LocalRequest, PluginHost, RelayPlugin, SentCopy, SessionInfo } from '../../core/index.ts';
import { hashSource, MsrpTestClient, seededSource, startTestRelay, testCertificates, type ReceivedFrame, type TestRelay } from '../../core/testing/index.ts';
import { connectWs } from '../support/ws-client.ts';

interface Way {
  target: ConnectionContext | SessionInfo;
  toPath: readonly string[];
  fromPath: readonly string[];
}

/** An endpoint that learns the way back to each client from a first SEND (its Message-ID names the client). */
class FanoutPlugin implements RelayPlugin {
  readonly name = 'fanout';
  id = '';
  relay!: PluginHost;
  readonly ways = new Map<string, Way>();

  apply(relay: PluginHost): void {
    this.relay = relay;
    this.id = relay.newSessionId();
    relay.hooks.claimRequest.tapPromise(this.name, async (lr: LocalRequest) => {
      if (lr.uri.sessionId !== this.id) return undefined;
      this.ways.set(lr.request.messageId!, { target: lr.session ?? lr.connection, toPath: lr.reply.toPath, fromPath: lr.reply.fromPath });
      return { onEnd: () => ({ status: 200 }) };
    });
  }

  uri(host: string, port: number): string {
    return `msrp://${host}:${port}/${this.id};tcp`;
  }
}

const users = [
  { username: 'alice', domain: 'example.com', password: 'secret' },
  { username: 'bob', domain: 'example.com', password: 'secret' },
];

async function waitUntil(cond: () => boolean, timeoutMs = 30_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > until) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('relay.prepare(): one request sent as copies', () => {
  let t: TestRelay;
  const fanout = new FanoutPlugin();

  before(async () => {
    t = await startTestRelay({ users, plugins: [fanout] });
  });
  after(() => t.close());

  /** A client with its own token that showed the plugin the way back (way `name`). */
  async function member(name: string, username = 'alice', o: { storeBodies?: boolean } = {}): Promise<{ c: MsrpTestClient; usePath: string[]; way: Way }> {
    const c = await MsrpTestClient.connect({ port: t.tcpPort, timeoutMs: 60_000, ...o });
    const r = await c.auth({ relayUri: 'msrp://example.com;tcp', username, password: 'secret' });
    assert.equal(r.status, 200);
    const s = await c.sendMessage({ toPath: [...r.usePath, fanout.uri(t.relay.hostname, t.tcpPort)], body: 'here', messageId: name });
    assert.equal(s.responses[0]!.status, 200);
    return { c, usePath: r.usePath, way: fanout.ways.get(name)! };
  }

  const send = (p: ReturnType<PluginHost['prepare']>, w: Way, messageId?: string): SentCopy =>
    p.send(w.target, { toPath: w.toPath, fromPath: w.fromPath, ...(messageId !== undefined ? { messageId } : {}) });

  it('each copy is a SEND of its own that the clients parse: own tid and Message-ID, their paths, the body whole', async () => {
    const alice = await member('m-alice');
    const bob = await member('m-bob', 'bob');
    const body = 'hello everyone, é';
    const given = Buffer.from(body);
    const p = fanout.relay.prepare({ method: 'SEND', headers: [['Failure-Report', 'partial']], contentType: 'text/plain;charset=UTF-8', body: given });
    // prepare() keeps a copy: the caller may reuse its Buffer.
    given.fill(0x21);
    const copies: SentCopy[] = [];
    for (const [m, ids] of [[alice, ['a1', 'a2', 'a3']], [bob, ['b1', 'b2', 'b3']]] as const) {
      for (const id of ids) copies.push(send(p, m.way, `copy-${id}`));
    }
    assert.ok(copies.every((c) => c.written), 'an idle connection takes each copy at once');
    const results = await Promise.all(copies.map((c) => c.result));
    assert.ok(results.every((r) => r.status === 0 && !r.timedOut), 'nothing awaited with Failure-Report partial (R-65)');
    for (const [m, ids] of [[alice, ['a1', 'a2', 'a3']], [bob, ['b1', 'b2', 'b3']]] as const) {
      const got: ReceivedFrame[] = [];
      for (const id of ids) got.push(await m.c.waitFor((f) => f.kind === 'request' && f.header('Message-ID') === `copy-${id}`));
      assert.equal(new Set(got.map((f) => f.tid)).size, 3, 'a new transaction id per copy');
      for (const f of got) {
        assert.equal(f.method, 'SEND');
        assert.equal(f.problem, undefined);
        assert.equal(f.flag, '$');
        assert.deepEqual(f.toPath, [m.c.uri]);
        assert.deepEqual(f.fromPath, [m.usePath[0], fanout.uri(t.relay.hostname, t.tcpPort)]);
        assert.equal(f.header('Byte-Range'), `1-${Buffer.byteLength(body)}/${Buffer.byteLength(body)}`);
        assert.equal(f.header('Failure-Report'), 'partial');
        assert.equal(f.header('Content-Type'), 'text/plain;charset=UTF-8');
        // Content-Type is the last header.
        assert.equal(f.headers.at(-1)![0], 'Content-Type');
        assert.equal(f.body.toString('utf8'), body);
      }
      assert.equal(m.c.lastError, undefined);
    }
    // A SEND copy without a Message-ID of its own gets a random one; a bodiless one stays bodiless.
    send(p, alice.way);
    const bare = fanout.relay.prepare({ method: 'SEND', headers: [['Failure-Report', 'no']] });
    const c = send(bare, alice.way, 'bare-one');
    assert.equal((await c.result).status, 0);
    const none = await alice.c.waitFor((f) => f.kind === 'request' && f.header('Message-ID') === 'bare-one');
    assert.equal(none.hasBody, false);
    assert.equal(none.header('Byte-Range'), undefined);
    await alice.c.close();
    await bob.c.close();
  });

  it('a copy that asks for a 200 gets its answer as result, through a transaction of its own', async () => {
    const alice = await member('m-answer');
    const p = fanout.relay.prepare({ method: 'SEND', contentType: 'text/plain', body: 'answer me' });
    const c = send(p, alice.way, 'wants-200');
    const r = await c.result;
    assert.equal(r.status, 200);
    assert.equal(r.timedOut, false);
    await alice.c.close();
  });

  it('a client that reads nothing holds the copies back: written turns false, onWritable once it reads again, every copy arrives in order', async () => {
    const alice = await member('m-slow', 'alice', { storeBodies: false });
    const p = fanout.relay.prepare({ method: 'SEND', headers: [['Failure-Report', 'partial']], contentType: 'text/plain', body: Buffer.alloc(2000, 0x61) });
    alice.c.pauseReading();
    // Copies go while the connection takes them; after one finds it full, the next waits for its onWritable.
    let n = 0;
    let full = 0;
    let writable = 0;
    const burst = (): void => {
      while (n < 20_000) {
        const c = send(p, alice.way, `slow${n++}`);
        if (!c.written) {
          full++;
          c.onWritable = () => {
            writable++;
            burst();
          };
          return;
        }
      }
    };
    burst();
    // The kernel's buffers take some more; then the relay holds the rest and no onWritable comes.
    await waitUntil(() => full > writable);
    let stalled = -1;
    while (stalled !== n) {
      stalled = n;
      await new Promise((r) => setTimeout(r, 300));
    }
    assert.ok(n < 20_000, 'a client that reads nothing holds the sender back');
    assert.equal(full, writable + 1, 'the last copy waits for its onWritable');
    const order: string[] = [];
    alice.c.onRequest((f) => order.push(f.header('Message-ID')!));
    alice.c.resumeReading();
    await waitUntil(() => n === 20_000 && order.length === n, 120_000);
    assert.equal(full, writable);
    assert.deepEqual(order, Array.from({ length: n }, (_, i) => `slow${i}`));
    assert.equal(alice.c.lastError, undefined);
    await alice.c.close();
  });

  it('copies to a connection busy with a stream wait for it, whole, and the stream arrives whole too (R-67)', async () => {
    const alice = await member('m-busy', 'alice', { storeBodies: false });
    const relay = fanout.relay;
    // More than the kernel's socket buffers take: the stream is still on the connection when the copies come.
    const size = 32 * 2 ** 20;
    const source = seededSource(11);
    alice.c.pauseReading();
    // A streamed SEND on the same connection, written as fast as the connection takes it.
    const out = relay.originate(alice.way.target, {
      method: 'SEND',
      toPath: alice.way.toPath,
      fromPath: alice.way.fromPath,
      headers: [['Message-ID', 'the-stream'], ['Byte-Range', `1-*/${size}`]],
      contentType: 'application/octet-stream',
    });
    let at = 0;
    const pump = (): void => {
      while (at < size) {
        const piece = source(at, 64 * 1024);
        at += piece.length;
        if (!out.write(piece)) return;
      }
      out.end('$');
    };
    out.onWritable = pump;
    pump();
    const body = Buffer.alloc(1500, 0x7a);
    const p = relay.prepare({ method: 'SEND', headers: [['Failure-Report', 'partial']], contentType: 'text/plain', body });
    const copies = Array.from({ length: 5 }, (_, i) => send(p, alice.way, `behind${i}`));
    assert.ok(copies.every((c) => !c.written), 'each copy waits behind the stream');
    const frames: ReceivedFrame[] = [];
    alice.c.onRequest((f) => frames.push(f));
    let writable = 0;
    for (const c of copies) c.onWritable = () => writable++;
    alice.c.resumeReading();
    const streamed = await alice.c.waitForMessage('the-stream', 60_000);
    assert.equal(streamed.complete, true);
    assert.equal(streamed.sha256, hashSource(size, source));
    await waitUntil(() => writable === 5);
    for (let i = 0; i < 5; i++) {
      const pieces = frames.filter((f) => f.header('Message-ID') === `behind${i}`);
      // Announced as 1500 octets (2048 or less): one piece, never cut.
      assert.equal(pieces.length, 1);
      assert.equal(pieces[0]!.bodyLength, body.length);
      assert.equal(pieces[0]!.header('Byte-Range'), `1-${body.length}/${body.length}`);
      assert.equal(pieces[0]!.flag, '$');
    }
    assert.ok((await Promise.all(copies.map((c) => c.result))).every((r) => r.status === 0));
    await alice.c.close();
  });

  it('refuses what is not valid MSRP, with what is wrong', async () => {
    const relay = fanout.relay;
    const alice = await member('m-bad');
    const bad = (o: Parameters<PluginHost['prepare']>[0], re: RegExp) => assert.throws(() => relay.prepare(o), re);
    bad({ method: 'SEND', headers: [['Message-ID', 'fixed']], contentType: 'text/plain', body: 'x' }, /Message-ID is given per copy/);
    bad({ method: 'SEND', headers: [['To-Path', 'msrp://a.example:1/x;tcp']] }, /To-Path is given per copy/);
    bad({ method: 'SEND', headers: [['Content-Type', 'text/plain']], body: 'x' }, /Content-Type is contentType/);
    bad({ method: 'SEND', headers: [['Subject', 'hi\r\nTo-Path: msrp://evil.example:1/x;tcp']], contentType: 'text/plain', body: 'x' }, /line break/);
    bad({ method: 'SEND', headers: [['Bad Name', 'x']] }, /not a token/);
    bad({ method: 'SEND', body: 'x' }, /a body needs its contentType/);
    bad({ method: 'SEND', contentType: 'text/plain' }, /sent whole: give its body/);
    bad({ method: 'SEND', headers: [['Byte-Range', '1-5/5']], contentType: 'text/plain', body: 'four' }, /Byte-Range 1-5 is not the body's 4 octets/);
    bad({ method: 'SEND', headers: [['Failure-Report', 'sometimes']], contentType: 'text/plain', body: 'x' }, /not valid MSRP: Failure-Report/);
    bad({ method: 'send', contentType: 'text/plain', body: 'x' }, /not valid MSRP: the method/);
    const p = relay.prepare({ method: 'SEND', headers: [['Failure-Report', 'partial']], contentType: 'text/plain', body: 'x' });
    const w = alice.way;
    assert.throws(() => p.send(w.target, { toPath: w.toPath, fromPath: w.fromPath, messageId: 'not an ident' }), /Message-ID is not an ident/);
    assert.throws(() => p.send(w.target, { toPath: ['msrp://relay.example/noport;tcp'], fromPath: w.fromPath }), /To-Path URI has no port/);
    assert.throws(() => p.send(w.target, { toPath: ['not a uri'], fromPath: w.fromPath }), /not valid MSRP: unreadable path/);
    assert.throws(() => p.send({} as ConnectionContext, { toPath: w.toPath, fromPath: w.fromPath }), /not a connection of this relay/);
    assert.throws(() => relay.prepare({ method: 'REPORT' }).send(w.target, { toPath: w.toPath, fromPath: w.fromPath }), /REPORT without Message-ID/);
    // relay.originate() refuses a header that would end its line too.
    assert.throws(
      () => relay.originate(w.target, { method: 'SEND', toPath: w.toPath, fromPath: w.fromPath, headers: [['Message-ID', 'ok1234'], ['Subject', 'a\nb']], contentType: 'text/plain', body: 'x' }),
      /relay.originate\(\): the value of Subject has a line break/,
    );
    // Nothing of the refused copies reached the client; a good one still does.
    send(p, w, 'after-bad');
    const f = await alice.c.waitFor((x) => x.kind === 'request' && x.method === 'SEND' && x.header('Message-ID') !== undefined);
    assert.equal(f.header('Message-ID'), 'after-bad');
    await alice.c.close();
  });
});

describe('relay.prepare() toward a WebSocket client (W-3)', () => {
  it('every copy leaves as one WebSocket message holding one whole frame', async () => {
    const fanout = new FanoutPlugin();
    const t = await startTestRelay({
      users,
      tls: true,
      certificates: await testCertificates(),
      listen: [{ transport: 'ws', host: '127.0.0.1', port: 0, path: '/msrp', insecureAuth: true }],
      plugins: [['websocket', { origins: ['https://chat.example.com'] }], fanout],
    });
    try {
      const port = t.relay.listeners.find((l) => l.transport === 'ws')!.port;
      const ws = await connectWs(`ws://127.0.0.1:${port}/msrp`);
      const a = await ws.client.auth({ relayUri: `msrp://example.com:${port};ws`, username: 'alice', password: 'secret', digestUri: 'include' });
      assert.equal(a.status, 200);
      const messages: Buffer[] = [];
      ws.ws.on('message', (m: Buffer) => messages.push(Buffer.from(m)));
      const s = await ws.client.sendMessage({ toPath: [...a.usePath, fanout.uri(t.relay.hostname, t.tcpPort)], body: 'here', messageId: 'ws-member' });
      assert.equal(s.responses[0]!.status, 200);
      const w = fanout.ways.get('ws-member')!;
      const body = Buffer.alloc(2048, 0x71);
      const p = fanout.relay.prepare({ method: 'SEND', headers: [['Failure-Report', 'partial']], contentType: 'text/plain', body });
      messages.length = 0;
      for (let i = 0; i < 20; i++) p.send(w.target, { toPath: w.toPath, fromPath: w.fromPath, messageId: `ws-copy-${i}` });
      await waitUntil(() => messages.length >= 20);
      for (let i = 0; i < 20; i++) {
        const text = messages[i]!.toString('latin1');
        const tid = /^MSRP (\S+) SEND\r\n/.exec(text)?.[1];
        assert.ok(tid !== undefined, 'a message starts with a request line');
        assert.ok(text.includes(`\r\nMessage-ID: ws-copy-${i}\r\n`));
        assert.ok(text.endsWith(`\r\n-------${tid}$\r\n`), 'and ends with its end-line');
      }
      for (let i = 0; i < 20; i++) {
        const f = await ws.client.waitFor((x) => x.kind === 'request' && x.header('Message-ID') === `ws-copy-${i}`);
        assert.equal(f.bodyLength, body.length);
      }
      await ws.client.close();
    } finally {
      await t.close();
    }
  });
});
