// The throttle plugin without sockets: what its options accept and say, and the pacing arithmetic.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { loadPlugins, PluginLoadError } from '../../core/plugin-loader.ts';
import type { PluginEntry } from '../../core/config/schema.ts';
import { TokenBucket } from '../../plugins/throttle/token-bucket.ts';

async function loadError(entries: PluginEntry[]): Promise<PluginLoadError> {
  try {
    await loadPlugins(entries, { baseDir: process.cwd() });
  } catch (e) {
    assert.ok(e instanceof PluginLoadError, `expected a PluginLoadError, got ${String(e)}`);
    return e;
  }
  assert.fail('the plugins loaded');
}

describe('throttle options', () => {
  it('an empty entry loads with the defaults: memory store, AUTH back-off on', async () => {
    const [p] = await loadPlugins([['throttle', {}]], { baseDir: process.cwd() });
    const o = (p as unknown as { o: Record<string, any> }).o;
    assert.equal(p!.name, 'throttle');
    assert.equal(o.store, 'memory');
    assert.deepEqual(o.auth, { enabled: true, perIp: true, perUser: true, freeFailures: 5, window: 300, backoff: 30, maxBackoff: 3600, decay: 86400 });
    assert.equal(o.redis.url, 'redis://127.0.0.1:6379');
  });

  it('names the plugin and the JSON pointer of each bad value', async () => {
    const e = await loadError([['throttle', { store: 'mongo', auth: { backoff: 0 }, bandwidth: { perSession: {} } }]]);
    assert.match(e.message, /plugins\[0\] "throttle"/);
    assert.match(e.message, /\/store/);
    assert.match(e.message, /\/auth\/backoff/);
    assert.match(e.message, /\/bandwidth\/perSession/);
    assert.match(e.message, /bytesPerSecond/);
  });

  it('refuses an unknown key, and a userOverrides key that is not user@domain', async () => {
    assert.match((await loadError([['throttle', { bandwith: {} }]])).message, /bandwith/);
    assert.match((await loadError([['throttle', { userOverrides: { alice: { maxSessions: 1 } } }]])).message, /userOverrides/);
  });

  it('says when maxBackoff is below backoff', async () => {
    const e = await loadError([['throttle', { auth: { backoff: 60, maxBackoff: 10 } }]]);
    assert.match(e.message, /auth\.maxBackoff \(10\) must be >= auth\.backoff \(60\)/);
  });
});

describe('token bucket (bytes)', () => {
  it('lets a burst through, then asks to wait exactly for the debt at the rate', () => {
    const b = new TokenBucket(1000, 500, 0, 'total');
    assert.equal(b.take(500, 0), 0);
    // 250 bytes over: 250 ms at 1000 bytes/s.
    assert.equal(b.take(250, 0), 250);
    // Half of that time later, half the debt is left.
    assert.equal(b.take(0, 125), 125);
    assert.equal(b.take(0, 250), 0);
  });

  it('refills to the burst and no further after a quiet period', () => {
    const b = new TokenBucket(1000, 500, 0, 'total');
    b.take(500, 0);
    assert.equal(b.isFull(10_000), true);
    assert.equal(b.take(500, 10_000), 0);
    assert.equal(b.take(1, 10_000), 1);
  });
});
