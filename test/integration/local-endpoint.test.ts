/**
 * The local-endpoint and origination seams (DESIGN.md §3a), used as a plugin author would:
 * an echo service written against the public API only (claimRequest, relay.originate),
 * reached by two ordinary TCP clients through their own relay tokens.
 */

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { MsrpError, type LocalReceiver, type LocalRequest, type PluginHost, type RelayPlugin } from '../../core/index.ts';
import { hashSource, MsrpTestClient, seededSource, startTestRelay, type TestRelay } from '../../core/testing/index.ts';

/** Answers every SEND with 200 and sends its body back on the sender's session as a new SEND, streamed. */
class EchoPlugin implements RelayPlugin {
  readonly name = 'echo';
  /** The session-id of the echo's URI on this relay (not a relay token). */
  id = '';
  /** How often the echo had to pause its sender because the way back was full. */
  pauses = 0;
  results: number[] = [];

  apply(relay: PluginHost): void {
    this.id = relay.newSessionId();
    relay.hooks.claimRequest.tapPromise(this.name, async (lr: LocalRequest) => {
      if (lr.uri.sessionId !== this.id) return undefined;
      if (lr.request.method !== 'SEND') return { reject: new MsrpError('MSRP_ERR_METHOD_NOT_UNDERSTOOD', 'the echo takes SEND only') };
      return this.echo(relay, lr);
    });
  }

  uri(t: TestRelay): string {
    return `msrp://${t.relay.hostname}:${t.tcpPort}/${this.id};tcp`;
  }

  private echo(relay: PluginHost, lr: LocalRequest): LocalReceiver {
    const req = lr.request;
    const total = req.byteRange?.total ?? -1;
    const out = relay.originate(lr.session ?? lr.connection, {
      method: 'SEND',
      toPath: lr.reply.toPath,
      fromPath: lr.reply.fromPath,
      headers: [
        ['Message-ID', `e${req.messageId ?? 'x'}`.slice(0, 32)],
        ['Byte-Range', `1-*/${total === -1 ? '*' : total}`],
      ],
      contentType: req.contentType ?? 'application/octet-stream',
    });
    let delivery: { resume(): void } | undefined;
    out.onWritable = () => delivery?.resume();
    void out.result.then((r) => this.results.push(r.status));
    return {
      onBody: (data, d) => {
        delivery = d;
        if (out.write(data)) return true;
        this.pauses++;
        return false;
      },
      onEnd: (flag) => {
        out.end(flag);
        return { status: 200 };
      },
    };
  }
}

describe('a local endpoint (claimRequest) that originates requests (relay.originate)', () => {
  let t: TestRelay;
  const echo = new EchoPlugin();
  const users = [
    { username: 'alice', domain: 'example.com', password: 'secret' },
    { username: 'bob', domain: 'example.com', password: 'secret' },
  ];

  before(async () => {
    t = await startTestRelay({ users, plugins: [echo] });
  });
  after(() => t.close());

  async function client(name: string, storeBodies = true): Promise<{ c: MsrpTestClient; usePath: string[] }> {
    const c = await MsrpTestClient.connect({ port: t.tcpPort, storeBodies, timeoutMs: 60_000 });
    // I-3: clients address AUTH to their SIP domain, which is the realm.
    const r = await c.auth({ relayUri: 'msrp://example.com;tcp', username: name, password: 'secret' });
    assert.equal(r.status, 200);
    return { c, usePath: r.usePath };
  }

  it('answers a SEND with 200 and sends the body back as a new SEND with a new Message-ID', async () => {
    const { c: alice, usePath } = await client('alice');
    const sent = await alice.sendMessage({ toPath: [...usePath, echo.uri(t)], body: 'ping through the relay' });
    assert.equal(sent.responses[0]!.status, 200);
    const back = await alice.waitFor((f) => f.kind === 'request' && f.method === 'SEND' && f.header('Message-ID') === `e${sent.messageId}`, 5000);
    assert.equal(back.body.toString(), 'ping through the relay');
    assert.notEqual(back.header('Message-ID'), sent.messageId);
    // To-Path is Alice alone, From-Path the relay token then the echo's URI.
    assert.deepEqual(back.toPath, [alice.uri]);
    assert.deepEqual(back.fromPath, [usePath[0], echo.uri(t)]);
    await alice.close();
  });

  it('streams a 50 MiB body back with back-pressure to one client while another uses it too', async () => {
    const { c: bob, usePath: bobPath } = await client('bob', false);
    const { c: alice, usePath: alicePath } = await client('alice');
    const size = 50 * 2 ** 20;
    const source = seededSource(7);
    // Bob reads nothing for a while: the echo's way back fills and it must pause Bob's sending.
    bob.pauseReading();
    const sending = bob.streamMessage({ toPath: [...bobPath, echo.uri(t)], size, source, contentType: 'application/octet-stream' });
    const hello = await alice.sendMessage({ toPath: [...alicePath, echo.uri(t)], body: 'alice meanwhile' });
    assert.equal(hello.responses[0]!.status, 200);
    await alice.waitFor((f) => f.kind === 'request' && f.header('Message-ID') === `e${hello.messageId}`, 5000);
    await new Promise((r) => setTimeout(r, 300));
    assert.ok(echo.pauses > 0, 'the echo paused its sender while the way back was full');
    bob.resumeReading();
    const { messageId, sha256, responses } = await sending;
    assert.equal(responses[0]!.status, 200);
    const got = await bob.waitForMessage(`e${messageId}`, 120_000);
    assert.equal(got.bytes, size);
    assert.equal(got.complete, true);
    assert.equal(got.sha256, sha256);
    assert.equal(sha256, hashSource(size, source));
    await bob.close();
    await alice.close();
  });

  it('a request for a URI of the relay that no plugin claims gets 481 as before', async () => {
    const { c: alice, usePath } = await client('alice');
    const r = await alice.sendMessage({ toPath: [...usePath, `msrp://${t.relay.hostname}:${t.tcpPort}/nobodyhere123;tcp`], body: 'x' });
    assert.equal(r.responses[0]!.status, 481);
    await alice.close();
  });

  it('a claimRequest Rejection is answered with its status', async () => {
    const { c: alice, usePath } = await client('alice');
    const tid = alice.sendRequest({ method: 'NICKNAME', toPath: [...usePath, echo.uri(t)], headers: [['Use-Nickname', '"al"']] });
    const res = await alice.waitForResponse(tid);
    assert.equal(res.status, 501);
    // An end-to-end answer comes from the relay URIs the request passed.
    assert.deepEqual(res.fromPath, [usePath[0], echo.uri(t)]);
    await alice.close();
  });
});

describe('receiveRequest answering a request itself ({ respond })', () => {
  it('a NICKNAME gets the plugin\'s 200 or 425, end to end, and nothing is routed', async () => {
    const taken = new Set<string>();
    const nicknames: RelayPlugin = {
      name: 'nicknames',
      apply(relay: PluginHost) {
        relay.hooks.receiveRequest.tapPromise('nicknames', async ({ request }) => {
          if (request.method !== 'NICKNAME') return undefined;
          const nick = request.headers.find(([n]) => n.toLowerCase() === 'use-nickname')?.[1] ?? '';
          if (taken.has(nick)) return { respond: { status: 425, comment: 'Nickname reserved or already in use' } };
          taken.add(nick);
          return { respond: { status: 200, headers: [['Use-Nickname', nick]] } };
        });
      },
    };
    const t = await startTestRelay({ users: [{ username: 'alice', domain: 'example.com', password: 'secret' }], plugins: [nicknames] });
    try {
      const c = await MsrpTestClient.connect({ port: t.tcpPort });
      const r = await c.auth({ relayUri: 'msrp://example.com;tcp', username: 'alice', password: 'secret' });
      const focus = `msrp://${t.relay.hostname}:${t.tcpPort}/focus0001;tcp`;
      const first = await c.waitForResponse(c.sendRequest({ method: 'NICKNAME', toPath: [...r.usePath, focus], headers: [['Use-Nickname', '"al"']] }));
      assert.equal(first.status, 200);
      assert.equal(first.header('Use-Nickname'), '"al"');
      // A non-SEND answer follows the whole From-Path back.
      assert.deepEqual(first.toPath, [c.uri]);
      const again = await c.waitForResponse(c.sendRequest({ method: 'NICKNAME', toPath: [...r.usePath, focus], headers: [['Use-Nickname', '"al"']] }));
      assert.equal(again.status, 425);
      await c.close();
    } finally {
      await t.close();
    }
  });
});

/**
 * Whole bodies with Failure-Report partial, as a chat focus sends its copies: R-65, no 200 comes,
 * so none is awaited and no timer runs; a sender told that its last write found the connection
 * full hears onWritable once the request is written and the connection has room again.
 */
class BurstPlugin implements RelayPlugin {
  readonly name = 'burst';
  id = '';
  results: Array<{ status: number; timedOut: boolean }> = [];
  sent = 0;
  full = 0;
  drained = 0;

  apply(relay: PluginHost): void {
    this.id = relay.newSessionId();
    relay.hooks.claimRequest.tapPromise(this.name, async (lr: LocalRequest) => {
      if (lr.uri.sessionId !== this.id) return undefined;
      const count = Number(lr.request.messageId!.slice(5));
      return {
        onEnd: () => {
          setImmediate(() => this.burst(relay, lr, count));
          return { status: 200 };
        },
      };
    });
  }

  /** `count` SENDs of 2000 octets, each whole; after a write that found the connection full, the next waits for onWritable. */
  private burst(relay: PluginHost, lr: LocalRequest, count: number): void {
    const body = Buffer.alloc(2000, 0x62);
    while (this.sent < count) {
      const i = this.sent++;
      const out = relay.originate(lr.session ?? lr.connection, {
        method: 'SEND',
        toPath: lr.reply.toPath,
        fromPath: lr.reply.fromPath,
        headers: [
          ['Message-ID', `burst${i}x0000`],
          ['Byte-Range', `1-${body.length}/${body.length}`],
          ['Failure-Report', 'partial'],
        ],
        contentType: 'text/plain',
      });
      void out.result.then((r) => this.results.push({ status: r.status, timedOut: r.timedOut }));
      const ok = out.write(body);
      out.end('$');
      if (!ok) {
        this.full++;
        out.onWritable = () => {
          this.drained++;
          this.burst(relay, lr, count);
        };
        return;
      }
    }
  }
}

describe('originated whole bodies with Failure-Report partial (R-65)', () => {
  it('settle once written with no 200 awaited; after a write finds the connection full, onWritable comes once the peer reads again', async () => {
    const burst = new BurstPlugin();
    const t = await startTestRelay({ users: [{ username: 'alice', domain: 'example.com', password: 'secret' }], plugins: [burst] });
    try {
      const c = await MsrpTestClient.connect({ port: t.tcpPort, storeBodies: false, timeoutMs: 60_000 });
      const r = await c.auth({ relayUri: 'msrp://example.com;tcp', username: 'alice', password: 'secret' });
      const to = [...r.usePath, `msrp://${t.relay.hostname}:${t.tcpPort}/${burst.id};tcp`];
      assert.equal((await c.sendMessage({ toPath: to, body: 'go', messageId: 'count20000' })).responses[0]!.status, 200);
      // The client reads nothing: 40 MB do not fit in the sockets' buffers, so the burst stops at a full connection.
      c.pauseReading();
      await waitUntil(() => burst.full > burst.drained);
      await new Promise((r) => setTimeout(r, 300));
      assert.ok(burst.sent < 20_000, 'a peer that reads nothing holds the sender back');
      assert.ok(burst.results.every((x) => x.status === 0 && !x.timedOut), 'each settled as written, no 200 awaited');
      c.resumeReading();
      await c.waitFor((f) => f.kind === 'request' && f.header('Message-ID') === 'burst19999x0000', 60_000);
      await waitUntil(() => burst.results.length === 20_000);
      assert.equal(burst.drained, burst.full);
      assert.ok(burst.results.every((x) => x.status === 0 && !x.timedOut));
      // The client answered none of them (Failure-Report partial), and the relay waits for none.
      await c.close();
    } finally {
      await t.close();
    }
  });
});

async function waitUntil(cond: () => boolean, timeoutMs = 60_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > until) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 20));
  }
}
