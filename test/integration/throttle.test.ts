// The throttle plugin through a real relay (RFC.md ): connection limits, AUTH
// back-off, per-user caps, bandwidth pacing by back-pressure, and limits shared in Redis.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { MsrpTestClient, hashSource, seededSource } from '../../core/testing/client.ts';
import { startTestRelay, type TestRelay } from '../../core/testing/harness.ts';
import { describeTaps, type RelayHooks } from '../../core/hooks.ts';
import Throttle, { type ThrottleEvent } from '../../plugins/throttle/index.ts';

const users = [
  { username: 'alice', domain: 'example.com', password: 'secret' },
  { username: 'bob', domain: 'example.com', password: 'secret' },
];
const relayUri = 'msrp://example.com;tcp';
const KiB = 1024;
const MiB = 1024 * KiB;

interface Pair {
  a: MsrpTestClient;
  b: MsrpTestClient;
  ab: string[];
}

async function authed(t: TestRelay, username: string, o: { storeBodies?: boolean } = {}): Promise<{ c: MsrpTestClient; token: string }> {
  const c = await MsrpTestClient.connect({ port: t.tcpPort, timeoutMs: 30000, storeBodies: o.storeBodies ?? true });
  const r = await c.auth({ relayUri, username, password: 'secret' });
  assert.equal(r.status, 200);
  return { c, token: r.usePath[0]! };
}

async function pair(t: TestRelay, o: { storeBodies?: boolean } = {}): Promise<Pair> {
  const a = await authed(t, 'alice', o);
  const b = await authed(t, 'bob', o);
  return { a: a.c, b: b.c, ab: [a.token, b.token, b.c.uri] };
}

/** Collects the throttle's events for one relay. */
function events(t: TestRelay): ThrottleEvent[] {
  const seen: ThrottleEvent[] = [];
  Throttle.getHooks(t.relay).throttled.tap('test', (e) => seen.push(e));
  return seen;
}

/** Resolves when the relay has closed `n` sessions. */
function sessionsClosed(t: TestRelay, n: number): Promise<void> {
  let left = n;
  return new Promise((resolve) => {
    t.relay.hooks.sessionClosed.tap('test', () => {
      if (--left === 0) resolve();
    });
  });
}

/** An AUTH attempt with a password, on a fresh connection; the final status and response. */
async function attempt(t: TestRelay, username: string, password: string) {
  const c = await MsrpTestClient.connect({ port: t.tcpPort });
  try {
    return await c.auth({ relayUri, username, password });
  } finally {
    await c.close();
  }
}

describe('bandwidth: paced by back-pressure, never refused', () => {
  const rate = 1 * MiB;
  const burst = 64 * KiB;
  let t: TestRelay;
  before(async () => {
    t = await startTestRelay({ users, plugins: [[Throttle, { bandwidth: { perSession: { bytesPerSecond: rate, burst } } }]] });
  });
  after(() => t.close());

  it('a 3 MiB transfer at 1 MiB/s arrives intact, and no sooner than the rate allows', async () => {
    const seen = events(t);
    const p = await pair(t, { storeBodies: false });
    const size = 3 * MiB;
    const source = seededSource(7);
    const started = performance.now();
    const sent = await p.a.streamMessage({ toPath: p.ab, size, source, chunkSize: 1 * MiB });
    const m = await p.b.waitForMessage(sent.messageId, 60000);
    const elapsed = performance.now() - started;
    assert.equal(m.complete, true);
    assert.equal(m.bytes, size);
    assert.equal(m.sha256, hashSource(size, source));
    assert.deepEqual(
      sent.responses.map((r) => r.status),
      [200, 200, 200],
    );
    // Unthrottled this takes a few ms. A bucket lets through at most burst + rate × time, plus
    // the one socket read (≤ 64 KiB) charged after it was forwarded.
    const floorMs = ((size - burst - 64 * KiB) / rate) * 1000;
    assert.ok(elapsed >= floorMs, `took ${elapsed.toFixed(0)} ms, the rate allows no less than ${floorMs.toFixed(0)} ms`);
    const paused = seen.filter((e) => e.kind === 'bandwidth');
    assert.ok(paused.length > 0);
    assert.match(paused[0]!.key, /^session:.{6}…$/);
    assert.equal(paused[0]!.limit, rate);
    await Promise.all([p.a.close(), p.b.close()]);
  });

  it('an untouched session is not slowed by another one being throttled', async () => {
    const p = await pair(t, { storeBodies: true });
    const { messageId, responses } = await p.a.sendMessage({ toPath: p.ab, body: 'small and quick' });
    assert.equal(responses[0]!.status, 200);
    assert.equal((await p.b.waitForMessage(messageId)).body!.toString(), 'small and quick');
    await Promise.all([p.a.close(), p.b.close()]);
  });
});

describe('connections: rate per address and open connections', () => {
  it('R-88: the third new connection within the window is closed without an answer', async () => {
    const t = await startTestRelay({ users, plugins: [[Throttle, { connections: { ratePerIp: { connections: 2, seconds: 60 } } }]] });
    const seen = events(t);
    const ok1 = await MsrpTestClient.connect({ port: t.tcpPort });
    const ok2 = await MsrpTestClient.connect({ port: t.tcpPort });
    assert.equal((await ok2.auth({ relayUri, username: 'alice', password: 'secret' })).status, 200);
    const third = await MsrpTestClient.connect({ port: t.tcpPort });
    await third.closed;
    assert.equal(third.frames.length, 0);
    assert.deepEqual(
      seen.map((e) => [e.kind, e.key, e.limit]),
      [['connection', 'ip:127.0.0.1', 2]],
    );
    await Promise.all([ok1.close(), ok2.close()]);
    await t.close();
  });

  it('maxPerIp counts open connections: once one closes, a new one is served', async () => {
    const t = await startTestRelay({ users, plugins: [[Throttle, { connections: { maxPerIp: 1 } }]] });
    const closed = new Promise<void>((r) => t.relay.hooks.connectionClosed.tap('test', () => r()));
    const first = await MsrpTestClient.connect({ port: t.tcpPort });
    const second = await MsrpTestClient.connect({ port: t.tcpPort });
    await second.closed;
    await first.close();
    await closed;
    const third = await MsrpTestClient.connect({ port: t.tcpPort });
    assert.equal((await third.auth({ relayUri, username: 'alice', password: 'secret' })).status, 200);
    await third.close();
    await t.close();
  });

  it('exemptAddresses are not limited', async () => {
    const t = await startTestRelay({
      users,
      plugins: [[Throttle, { exemptAddresses: ['127.0.0.1'], connections: { ratePerIp: { connections: 1, seconds: 60 } } }]],
    });
    const cs = [await MsrpTestClient.connect({ port: t.tcpPort }), await MsrpTestClient.connect({ port: t.tcpPort })];
    assert.equal((await cs[1]!.auth({ relayUri, username: 'bob', password: 'secret' })).status, 200);
    await Promise.all(cs.map((c) => c.close()));
    await t.close();
  });
});

describe('AUTH back-off (R-43)', () => {
  it('per address: after 2 failed guesses every AUTH gets 403 with Retry-After, even with the right password, until the block ends', async () => {
    const t = await startTestRelay({
      users,
      plugins: [[Throttle, { auth: { perUser: false, freeFailures: 2, backoff: 1, maxBackoff: 8 } }]],
    });
    const seen = events(t);
    assert.equal((await attempt(t, 'alice', 'guess1')).status, 401);
    assert.equal((await attempt(t, 'alice', 'guess2')).status, 401);
    // Blocked: refused at the first AUTH, before any challenge, and for any user of the address.
    const blocked = await attempt(t, 'bob', 'secret');
    assert.equal(blocked.status, 403);
    assert.equal(blocked.challenge, blocked.response);
    assert.equal(blocked.response.header('Retry-After'), '1');
    assert.deepEqual(
      seen.filter((e) => e.kind === 'auth').map((e) => e.key),
      ['ip:127.0.0.1', 'ip:127.0.0.1'],
    );
    // The block decays: the legitimate user behind the same address gets in afterwards.
    await new Promise((r) => setTimeout(r, 1100));
    assert.equal((await attempt(t, 'bob', 'secret')).status, 200);
    // Two more failures: the second block lasts twice as long.
    assert.equal((await attempt(t, 'alice', 'guess3')).status, 401);
    assert.equal((await attempt(t, 'alice', 'guess4')).status, 401);
    assert.equal((await attempt(t, 'alice', 'secret')).response.header('Retry-After'), '2');
    await t.close();
  });

  it('per user: guessing one account blocks that account only; a success clears its count', async () => {
    const t = await startTestRelay({
      users,
      plugins: [[Throttle, { auth: { perIp: false, freeFailures: 2, backoff: 60 } }]],
    });
    // alice: one failure, a success (count cleared), one failure: not blocked.
    assert.equal((await attempt(t, 'alice', 'typo')).status, 401);
    assert.equal((await attempt(t, 'alice', 'secret')).status, 200);
    assert.equal((await attempt(t, 'alice', 'typo')).status, 401);
    assert.equal((await attempt(t, 'alice', 'secret')).status, 200);
    // bob: two failures in a row block bob, on any connection, with the right password too.
    assert.equal((await attempt(t, 'bob', 'x1')).status, 401);
    assert.equal((await attempt(t, 'bob', 'x2')).status, 401);
    const r = await attempt(t, 'bob', 'secret');
    assert.equal(r.status, 403);
    assert.equal(r.challenge.status, 401, 'the first AUTH carries no username, so it is challenged');
    assert.equal(r.response.header('Retry-After'), '60');
    // alice, from the same address, is not affected.
    assert.equal((await attempt(t, 'alice', 'secret')).status, 200);
    await t.close();
  });

  it('R-43: a client that keeps trying on one blocked connection is disconnected', async () => {
    const t = await startTestRelay({ users, plugins: [[Throttle, { auth: { freeFailures: 1, backoff: 60 } }]] });
    assert.equal((await attempt(t, 'alice', 'nope')).status, 401);
    const c = await MsrpTestClient.connect({ port: t.tcpPort });
    for (let i = 0; i < 3; i++) {
      const tid = c.sendRequest({ method: 'AUTH', toPath: [relayUri] });
      assert.equal((await c.waitForResponse(tid)).status, 403);
    }
    await c.closed;
    await t.close();
  });
});

describe('per-user caps', () => {
  let t: TestRelay;
  before(async () => {
    t = await startTestRelay({
      users,
      plugins: [[Throttle, { users: { maxSessions: 2, maxMessageSize: 1 * MiB }, userOverrides: { 'alice@example.com': { maxMessageSize: 1000 } } }]],
    });
  });
  after(() => t.close());

  it('maxSessions: the third session of a user gets 403; closing one frees a place', async () => {
    const c1 = await MsrpTestClient.connect({ port: t.tcpPort });
    const c2 = await MsrpTestClient.connect({ port: t.tcpPort });
    // two sessions on one connection, then a third on another.
    assert.equal((await c1.auth({ relayUri, username: 'bob', password: 'secret' })).status, 200);
    assert.equal((await c1.auth({ relayUri, username: 'bob', password: 'secret' })).status, 200);
    assert.equal((await c2.auth({ relayUri, username: 'bob', password: 'secret' })).status, 403);
    // Another user is not counted against bob.
    assert.equal((await c2.auth({ relayUri, username: 'alice', password: 'secret' })).status, 200);
    const gone = sessionsClosed(t, 2);
    await c1.close();
    await gone;
    assert.equal((await c2.auth({ relayUri, username: 'bob', password: 'secret' })).status, 200);
    await c2.close();
  });

  it('R-72: a message over the user\'s size cap gets 413 and is not forwarded', async () => {
    const p = await pair(t);
    const big = await p.a.sendMessage({ toPath: p.ab, body: Buffer.alloc(2000, 0x61) });
    assert.equal(big.responses[0]!.status, 413);
    assert.equal(await p.b.expectNone((f) => f.header('Message-ID') === big.messageId, 200), true);
    const small = await p.a.sendMessage({ toPath: p.ab, body: Buffer.alloc(1000, 0x62) });
    assert.equal(small.responses[0]!.status, 200);
    await p.b.waitForMessage(small.messageId);
    await Promise.all([p.a.close(), p.b.close()]);
  });

  it('R-72: with an unknown total, the chunk that crosses the cap gets 413, and so does every later chunk of that message', async () => {
    const p = await pair(t);
    const send = (range: string, bytes: number) =>
      p.a.waitForResponse(
        p.a.sendRequest({
          method: 'SEND',
          toPath: p.ab,
          headers: [['Message-ID', 'm-star'], ['Byte-Range', range]],
          body: Buffer.alloc(bytes, 0x63),
        }),
      );
    assert.equal((await send('1-600/*', 600)).status, 200);
    assert.equal((await send('601-1200/*', 600)).status, 413);
    assert.equal((await send('1-600/*', 600)).status, 413);
    await Promise.all([p.a.close(), p.b.close()]);
  });
});

describe('Redis: two relay nodes share limits', () => {
  const keyPrefix = `msrprelay-test:${randomBytes(6).toString('hex')}:`;
  const redis = new Redis('redis://127.0.0.1:6379', { lazyConnect: true });
  let r1: TestRelay;
  let r2: TestRelay;
  before(async () => {
    await redis.connect();
    const options = {
      store: 'redis',
      redis: { keyPrefix },
      connections: { ratePerIp: { connections: 6, seconds: 60 } },
      auth: { perIp: false, freeFailures: 2, backoff: 60 },
      users: { maxSessions: 1 },
    };
    r1 = await startTestRelay({ users, plugins: [[Throttle, options]] });
    r2 = await startTestRelay({ users, plugins: [[Throttle, options]] });
  });
  after(async () => {
    await r1.close();
    await r2.close();
    const keys = await redis.keys(`${keyPrefix}*`);
    if (keys.length > 0) await redis.del(...keys);
    await redis.quit();
  });

  it('a user blocked on one node is blocked on the other', async () => {
    assert.equal((await attempt(r1, 'bob', 'x1')).status, 401);
    assert.equal((await attempt(r1, 'bob', 'x2')).status, 401);
    const r = await attempt(r2, 'bob', 'secret');
    assert.equal(r.status, 403);
    assert.match(r.response.header('Retry-After') ?? '', /^(59|60)$/);
  });

  it('a session held on one node counts on the other, until it closes', async () => {
    const c1 = await MsrpTestClient.connect({ port: r1.tcpPort });
    assert.equal((await c1.auth({ relayUri, username: 'alice', password: 'secret' })).status, 200);
    const c2 = await MsrpTestClient.connect({ port: r2.tcpPort });
    assert.equal((await c2.auth({ relayUri, username: 'alice', password: 'secret' })).status, 403);
    const gone = sessionsClosed(r1, 1);
    await c1.close();
    await gone;
    assert.equal((await c2.auth({ relayUri, username: 'alice', password: 'secret' })).status, 200);
    await c2.close();
  });

  it('new connections from one address are counted across both nodes', async () => {
    // 6 per window in all; the tests above opened 5 (3 on r1, 2 on r2).
    const c = await MsrpTestClient.connect({ port: r1.tcpPort });
    const refused = await MsrpTestClient.connect({ port: r2.tcpPort });
    await refused.closed;
    assert.equal(refused.frames.length, 0);
    await c.close();
  });

  it('the counters live under the configured prefix', async () => {
    const keys = await redis.keys(`${keyPrefix}*`);
    assert.ok(keys.some((k) => k.startsWith(`${keyPrefix}auth-fail`)));
    assert.ok(keys.some((k) => k.startsWith(`${keyPrefix}conn-ip`)));
  });
});

describe('cost and failure modes', () => {
  it('with only the defaults, no per-connection or per-chunk hook is tapped', async () => {
    const t = await startTestRelay({ users, plugins: [['throttle', {}]] });
    const tapped = describeTaps(t.relay.hooks as unknown as RelayHooks<unknown>)
      .filter((h) => h.taps.some((x) => x.name === 'throttle'))
      .map((h) => h.hook);
    assert.deepEqual(tapped, ['authenticate', 'authenticated', 'authFailed']);
    await t.close();
  });

  it('Redis unreachable: the relay starts and warns; AUTH still works (counters fall back to this node, caps fail open)', async () => {
    const warnings: string[] = [];
    const logger = { debug() {}, info() {}, error() {}, warn: (msg: string) => void warnings.push(msg) };
    const t = await startTestRelay({
      users,
      logger,
      plugins: [['throttle', { store: 'redis', redis: { url: 'redis://127.0.0.1:1', connectTimeoutMs: 300 }, users: { maxSessions: 5 } }]],
    });
    assert.ok(warnings.some((w) => w.startsWith('throttle:')));
    assert.equal((await attempt(t, 'alice', 'secret')).status, 200);
    await t.close();
  });
});
