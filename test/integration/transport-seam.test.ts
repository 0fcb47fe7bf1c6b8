/**
 * The transport seam (DESIGN.md §3a), used as a plugin author would: a transport provider
 * registered through the public API, over the socket-free stream pair of msrprelay/testing,
 * in message mode (one MSRP frame per transport message, as on a WebSocket, W-3).
 */

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { ListenConfig, ListenerInfo, PluginHost, RelayPlugin, TransportContext, TransportProvider } from '../../core/index.ts';
import { createStreamPair, MsrpTestClient, sha256Hex, startTestRelay, type PairedStream, type TestRelay } from '../../core/testing/index.ts';

const MAX = 16 * 1024;

/** A provider for `{ transport: 'pipe' }` listen entries: connect() makes a client stream adopted by the relay. */
class PipeTransport implements RelayPlugin, TransportProvider {
  readonly name = 'pipe';
  readonly transports = ['pipe'];
  private ctx: TransportContext | undefined;
  private info: ListenerInfo | undefined;
  /** The relay's ends, to see what the relay did with them. */
  readonly relaySides: PairedStream[] = [];

  apply(relay: PluginHost): void {
    relay.transports.register(this);
  }

  listen(entry: ListenConfig, ctx: TransportContext) {
    this.ctx = ctx;
    const info: ListenerInfo = { transport: 'pipe', host: entry.host, port: entry.port, insecureAuth: entry.insecureAuth === true, scheme: 'msrp' };
    this.info = info;
    return Promise.resolve({ info, close: () => Promise.resolve() });
  }

  /** A new client connection: the other end of a stream pair the relay adopts. */
  connect(): PairedStream {
    const [relaySide, clientSide] = createStreamPair({ messageMode: { maxMessageSize: MAX }, a: { address: '198.51.100.7', port: 2855 }, b: { address: '203.0.113.9', port: 50000 + this.relaySides.length } });
    this.relaySides.push(relaySide);
    this.ctx!.adopt(relaySide, { listener: this.info! });
    return clientSide;
  }
}

describe('a message-oriented transport registered by a plugin (stream pair)', () => {
  let t: TestRelay;
  const pipe = new PipeTransport();
  const users = [
    { username: 'alice', domain: 'example.com', password: 'secret' },
    { username: 'bob', domain: 'example.com', password: 'secret' },
  ];
  const relayUri = 'msrp://example.com;tcp';

  before(async () => {
    t = await startTestRelay({ users, plugins: [pipe], listen: [{ transport: 'pipe', host: 'pipe.invalid', port: 7, insecureAuth: true }] });
  });
  after(() => t.close());

  /** Alice on the pipe, Bob on TCP, both authenticated. */
  async function pair(bobOpts: { storeBodies?: boolean } = {}) {
    const aliceStream = pipe.connect();
    const seen: Buffer[] = [];
    aliceStream.on('data', (m: Buffer) => seen.push(m));
    const alice = MsrpTestClient.over(aliceStream, { timeoutMs: 60_000, uri: 'msrp://alice.invalid:2855/a1b2c3d4;tcp' });
    const bob = await MsrpTestClient.connect({ port: t.tcpPort, timeoutMs: 60_000, ...bobOpts });
    const ra = await alice.auth({ relayUri, username: 'alice', password: 'secret' });
    const rb = await bob.auth({ relayUri, username: 'bob', password: 'secret' });
    assert.equal(ra.status, 200);
    assert.equal(rb.status, 200);
    return { alice, bob, seen, ta: ra.usePath[0]!, tb: rb.usePath[0]! };
  }

  it('carries AUTH, SEND both ways and a REPORT; the client address is the stream\'s', async () => {
    const { alice, bob, ta, tb } = await pair();
    const conn = [...t.relay.sessions.values()].find((s) => s.identity.username === 'alice')!.owner;
    assert.equal(conn.transport, 'pipe');
    assert.equal(conn.remoteAddress, '203.0.113.9');
    const ab = await alice.sendMessage({ toPath: [ta, tb, bob.uri], body: 'from the pipe' });
    assert.equal(ab.responses[0]!.status, 200);
    assert.equal((await bob.waitForMessage(ab.messageId)).body!.toString(), 'from the pipe');
    const ba = await bob.sendMessage({ toPath: [tb, ta, alice.uri], body: 'to the pipe', successReport: 'yes' });
    assert.equal(ba.responses[0]!.status, 200);
    assert.equal((await alice.waitForMessage(ba.messageId)).body!.toString(), 'to the pipe');
    // Alice's client answers Success-Report yes with a REPORT (the test client does), which reaches Bob.
    alice.sendRequest({ method: 'REPORT', toPath: [ta, tb, bob.uri], headers: [['Message-ID', ba.messageId], ['Byte-Range', '1-11/11'], ['Status', '000 200 OK']] });
    const report = await bob.waitFor((f) => f.kind === 'request' && f.method === 'REPORT' && f.header('Message-ID') === ba.messageId);
    assert.equal(report.header('Status'), '000 200 OK');
    await bob.close();
    await alice.close();
  });

  it('cuts a chunk longer than the transport message size into pieces (W-4) and 50 MiB arrive whole both ways', async () => {
    const { alice, bob, seen, ta, tb } = await pair({ storeBodies: false });
    // Bob (TCP) sends 50 MiB in 1 MiB chunks: each is cut for Alice's transport.
    const big = randomBytes(50 * 2 ** 20);
    const toAlice = bob.sendMessage({ toPath: [tb, ta, alice.uri], body: big, chunkSize: 2 ** 20, contentType: 'application/octet-stream' });
    const got = await alice.waitForMessage((await toAlice).messageId, 120_000);
    assert.equal(got.complete, true);
    assert.equal(got.sha256, sha256Hex(big));
    // W-3: every message the relay wrote held one frame and fitted the transport.
    assert.ok(seen.length > 50 * 64, `${seen.length} messages`);
    assert.ok(seen.every((m) => m.length <= MAX));
    assert.ok(seen.every((m) => m.subarray(0, 5).toString() === 'MSRP ' && /-------[A-Za-z0-9.+%=-]+[$+#]\r\n$/.test(m.toString('latin1', m.length - 48))));
    // Alice sends 8 MiB back in chunks that fit her transport, each one message.
    const back = randomBytes(8 * 2 ** 20);
    const messageId = 'alicebulk01';
    const chunk = 12 * 1024;
    for (let off = 0; off < back.length; off += chunk) {
      const end = Math.min(off + chunk, back.length);
      const tid = alice.sendRequest({
        method: 'SEND',
        toPath: [ta, tb, bob.uri],
        headers: [['Message-ID', messageId], ['Byte-Range', `${off + 1}-${end}/${back.length}`]],
        body: back.subarray(off, end),
        contentType: 'application/octet-stream',
      });
      // A window of one: the transport never holds more than a chunk.
      assert.equal((await alice.waitForResponse(tid)).status, 200);
    }
    const atBob = await bob.waitForMessage(messageId, 60_000);
    assert.equal(atBob.complete, true);
    assert.equal(atBob.sha256, sha256Hex(back));
    await bob.close();
    await alice.close();
  });

  it('closes a connection whose transport message holds two frames, or part of one, and forwards nothing (W-3)', async () => {
    const { alice, bob, ta, tb } = await pair();
    const frame = (id: string) => `MSRP ${id} SEND\r\nTo-Path: ${ta} ${tb} ${bob.uri}\r\nFrom-Path: ${alice.uri}\r\nMessage-ID: ${id}\r\nByte-Range: 1-2/2\r\nContent-Type: text/plain\r\n\r\nhi\r\n-------${id}$\r\n`;
    alice.write(frame('twoframes1') + frame('twoframes2'));
    await alice.closed;
    assert.equal(await bob.expectNone((f) => f.kind === 'request' && f.method === 'SEND', 300), true);
    // Half a frame in one message: the same.
    const other = await pair();
    const half = frame('halfframe1');
    other.alice.write(half.slice(0, 40));
    await other.alice.closed;
    assert.equal(other.alice.frames.some((f) => f.kind === 'response' && f.tid === 'halfframe1'), false);
    await bob.close();
    await other.bob.close();
  });
});

describe('a listen entry that no transport provider serves', () => {
  it('is refused by createRelay and --check-config, naming its own entry and the cause', async () => {
    const { createRelay, ConfigError } = await import('../../core/index.ts');
    const { main } = await import('../../core/cli.ts');
    const { mkdtempSync, writeFileSync } = await import('node:fs');
    const { join } = await import('node:path');
    const { tmpdir } = await import('node:os');
    const listen = [
      { transport: 'tcp', host: '127.0.0.1', port: 0, insecureAuth: true },
      // ws and wss load the shipped websocket plugin by themselves (test/integration/websocket-config.test.ts).
      { transport: 'sctp', host: '127.0.0.1', port: 2857 },
    ];
    await assert.rejects(createRelay({ hostname: '127.0.0.1', listen: listen as never }), (e: unknown) => {
      assert.ok(e instanceof ConfigError);
      assert.match(String((e as Error).message), /listen sctp:\/\/127\.0\.0\.1:2857: no transport provider serves "sctp"; known: tcp, tls/);
      assert.doesNotMatch(String((e as Error).message), /tcp:\/\//);
      return true;
    });
    const dir = mkdtempSync(join(tmpdir(), 'msrprelay-ws-'));
    writeFileSync(join(dir, 'relay.json'), JSON.stringify({ hostname: '127.0.0.1', listen }));
    const err: string[] = [];
    const code = await main(['--check-config', '--config', join(dir, 'relay.json')], { stdout: () => {}, stderr: (t) => err.push(t), cwd: dir });
    assert.equal(code, 1);
    assert.match(err.join('\n'), /relay\.json: listen sctp:\/\/127\.0\.0\.1:2857: no transport provider serves "sctp"/);
  });
});
