// Limits, expiry, IPv6 and certificate reload (RFC.md; §2H).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tls from 'node:tls';
import { MsrpTestClient } from '../../core/testing/client.ts';
import { startTestRelay } from '../../core/testing/harness.ts';
import { createRelay } from '../../core/relay.ts';
import { makeTestCertificates } from '../../core/transport/self-signed.ts';

const users = [
  { username: 'alice', domain: 'example.com', password: 'secret' },
  { username: 'bob', domain: 'example.com', password: 'secret' },
];
const AUTH_URI = 'msrp://example.com;tcp';

/** Alice and Bob, each on a connection of their own with a session: the clients and their Use-Path URIs. */
async function aliceAndBob(port: number): Promise<{ a: MsrpTestClient; b: MsrpTestClient; ta: string; tb: string }> {
  const a = await MsrpTestClient.connect({ port });
  const b = await MsrpTestClient.connect({ port });
  const ta = (await a.auth({ relayUri: AUTH_URI, username: 'alice', password: 'secret' })).usePath[0]!;
  const tb = (await b.auth({ relayUri: AUTH_URI, username: 'bob', password: 'secret' })).usePath[0]!;
  return { a, b, ta, tb };
}

const hasIpv6Loopback = Object.values(networkInterfaces()).some((list) => list?.some((i) => i.family === 'IPv6' && i.internal));

describe('limits and expiry', () => {
  it('R-88: past limits.maxConnectionsPerIp, new connections from that address are closed at once; others go on', async () => {
    const t = await startTestRelay({ users, limits: { maxConnectionsPerIp: 2 } });
    try {
      const a = await MsrpTestClient.connect({ port: t.tcpPort });
      const b = await MsrpTestClient.connect({ port: t.tcpPort });
      const c = await MsrpTestClient.connect({ port: t.tcpPort });
      await c.closed;
      assert.equal((await a.auth({ relayUri: AUTH_URI, username: 'alice', password: 'secret' })).status, 200);
      await b.close();
      await new Promise((r) => setTimeout(r, 50));
      // A slot is free again.
      const d = await MsrpTestClient.connect({ port: t.tcpPort });
      assert.equal((await d.auth({ relayUri: AUTH_URI, username: 'bob', password: 'secret' })).status, 200);
      await Promise.all([a.close(), d.close()]);
    } finally {
      await t.close();
    }
  });

  it('R-88 defaults fit NAT: 50 connections from one address each AUTH and keep their session', async () => {
    // Clients open a connection per session; an office behind one address is many such clients.
    const t = await startTestRelay({ users });
    try {
      const clients: MsrpTestClient[] = [];
      for (let i = 0; i < 50; i++) clients.push(await MsrpTestClient.connect({ port: t.tcpPort }));
      const results = await Promise.all(clients.map((c, i) => c.auth({ relayUri: AUTH_URI, username: i % 2 === 0 ? 'alice' : 'bob', password: 'secret' })));
      assert.deepEqual(
        results.map((r) => r.status),
        new Array<number>(50).fill(200),
      );
      assert.equal(t.relay.sessions.size, 50);
      assert.equal(clients.filter((c) => c.isClosed).length, 0);
      await Promise.all(clients.map((c) => c.close()));
    } finally {
      await t.close();
    }
  });

  it('R-14: a connection that moves no octet either way for timeouts.idle is closed; one with traffic stays', async () => {
    const t = await startTestRelay({ users, timeouts: { idle: 0.6 } });
    try {
      const quiet = await MsrpTestClient.connect({ port: t.tcpPort });
      const { a, b, ta, tb } = await aliceAndBob(t.tcpPort);
      assert.equal((await quiet.auth({ relayUri: AUTH_URI, username: 'alice', password: 'secret' })).status, 200);
      const started = Date.now();
      // a and b talk every 150 ms for 1.5 s (more than twice the idle limit); quiet says nothing.
      for (let i = 0; i < 10; i++) {
        const m = await a.sendMessage({ toPath: [ta, tb, b.uri], body: `still here ${i}` });
        assert.equal(m.responses[0]!.status, 200);
        await b.waitFor((x) => x.header('Message-ID') === m.messageId);
        await new Promise((r) => setTimeout(r, 150));
      }
      assert.ok(quiet.isClosed, 'the silent connection was closed');
      assert.ok(!a.isClosed && !b.isClosed, 'connections with traffic stay open');
      assert.ok(Date.now() - started >= 1200);
      await Promise.all([a.close(), b.close()]);
    } finally {
      await t.close();
    }
  });

  it('R-14: a peer that stops reading is closed when idle, and its socket is let go even though queued data cannot drain', async () => {
    const t = await startTestRelay({ users, timeouts: { idle: 0.5 } });
    try {
      const { a, b, ta, tb } = await aliceAndBob(t.tcpPort);
      b.pauseReading();
      // 32 MiB toward a reader that never reads: the relay's buffers toward B fill and stay full.
      void a.sendMessage({ toPath: [ta, tb, b.uri], body: Buffer.alloc(32 * 1024 * 1024, 0x61), chunkSize: 1024 * 1024, waitResponses: false }).catch(() => {});
      await new Promise((r) => setTimeout(r, 300));
      assert.ok(t.relay.connectionCount >= 2, 'both connections are up while data moves');
      // Nothing moves any more: idle closes both; B's socket cannot flush, so only the close
      // grace (2 s after close) lets it go.
      const deadline = Date.now() + 8000;
      while (t.relay.connectionCount > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      assert.equal(t.relay.connectionCount, 0, 'the relay holds no socket for the stalled peer');
      a.destroy();
      b.destroy();
    } finally {
      await t.close();
    }
  });

  it('R-88: past limits.maxSessionsPerConnection, another AUTH is refused and the tokens already given keep working', async () => {
    const t = await startTestRelay({ users, limits: { maxSessionsPerConnection: 2 } });
    try {
      const a = await MsrpTestClient.connect({ port: t.tcpPort });
      const b = await MsrpTestClient.connect({ port: t.tcpPort });
      const t1 = (await a.auth({ relayUri: AUTH_URI, username: 'alice', password: 'secret' })).usePath[0]!;
      assert.equal((await a.auth({ relayUri: AUTH_URI, username: 'alice', password: 'secret' })).status, 200);
      const third = await a.auth({ relayUri: AUTH_URI, username: 'alice', password: 'secret' });
      assert.ok(third.status >= 400, `refused (${third.status})`);
      assert.equal(third.usePath.length, 0);
      const tb = (await b.auth({ relayUri: AUTH_URI, username: 'bob', password: 'secret' })).usePath[0]!;
      const m = await a.sendMessage({ toPath: [t1, tb, b.uri], body: 'first token still good' });
      assert.equal(m.responses[0]!.status, 200);
      await b.waitFor((x) => x.header('Message-ID') === m.messageId);
      await Promise.all([a.close(), b.close()]);
    } finally {
      await t.close();
    }
  });

  it('R-41, R-52: a token nobody used expires after its Expires and then gets 481', async () => {
    const t = await startTestRelay({ users, session: { minExpires: 1, defaultExpires: 1, maxExpires: 5 } });
    try {
      const a = await MsrpTestClient.connect({ port: t.tcpPort });
      const b = await MsrpTestClient.connect({ port: t.tcpPort });
      const ra = await a.auth({ relayUri: AUTH_URI, username: 'alice', password: 'secret', expires: 1 });
      assert.equal(ra.status, 200);
      assert.equal(ra.response.header('Expires'), '1');
      const tb = (await b.auth({ relayUri: AUTH_URI, username: 'bob', password: 'secret', expires: 5 })).usePath[0]!;
      await new Promise((r) => setTimeout(r, 1600));
      const late = await b.sendMessage({ toPath: [tb, ra.usePath[0]!, a.uri], body: 'too late' });
      assert.equal(late.responses[0]!.status, 481);
      await Promise.all([a.close(), b.close()]);
    } finally {
      await t.close();
    }
  });
});

describe('listeners', () => {
  it('an IPv6 listener: AUTH over [::1] gets a Use-Path with that listener\'s port', { skip: hasIpv6Loopback ? false : 'no IPv6 loopback here' }, async () => {
    const t = await startTestRelay({ users, listen: [{ transport: 'tcp', host: '::1', port: 0, insecureAuth: true }] });
    try {
      const v6 = t.relay.listeners.find((l) => l.host === '::1')!;
      const c = await MsrpTestClient.connect({ host: '::1', port: v6.port });
      const r = await c.auth({ relayUri: AUTH_URI, username: 'alice', password: 'secret' });
      assert.equal(r.status, 200);
      assert.match(r.usePath[0]!, new RegExp(`^msrp://127\\.0\\.0\\.1:${v6.port}/`));
      await c.close();
    } finally {
      await t.close();
    }
  });

  it('reload re-reads a renewed certificate: new TLS connections get it, open ones stay', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'msrprelay-reload-'));
    try {
      const first = await makeTestCertificates(join(dir, 'one'));
      const second = await makeTestCertificates(join(dir, 'two'));
      const cert = join(dir, 'relay.pem');
      const key = join(dir, 'relay.key');
      copyFileSync(first.server.certFile, cert);
      copyFileSync(first.server.keyFile, key);
      const config = {
        hostname: '127.0.0.1',
        listen: [{ transport: 'tls' as const, host: '127.0.0.1', port: 0, cert, key }],
        plugins: [['auth-memory', { users }]] as Array<[string, object]>,
      };
      const relay = await createRelay(config);
      await relay.listen();
      const port = relay.listeners[0]!.port;
      const issuer = async (ca: string) =>
        new Promise<string>((resolve, reject) => {
          const s = tls.connect({ host: '127.0.0.1', port, ca, servername: 'localhost' }, () => {
            const who = s.getPeerCertificate().fingerprint256;
            s.end();
            resolve(who);
          });
          s.once('error', reject);
        });
      const before = await issuer(first.ca.cert);
      const open = await MsrpTestClient.connect({ port, tls: { ca: first.ca.cert, servername: 'localhost' } });
      copyFileSync(second.server.certFile, cert);
      copyFileSync(second.server.keyFile, key);
      await relay.reload(config);
      const after = await issuer(second.ca.cert);
      assert.notEqual(after, before, 'the new certificate is served');
      await assert.rejects(issuer(first.ca.cert), 'the old CA no longer verifies the relay');
      const r = await open.auth({ relayUri: 'msrps://example.com;tcp', username: 'alice', password: 'secret' });
      assert.equal(r.status, 200, 'the connection opened before the reload still works');
      await open.close();
      await relay.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('close() does not wait for idle peers: their connections are closed and close() resolves', async () => {
    const t = await startTestRelay({ users });
    const a = await MsrpTestClient.connect({ port: t.tcpPort });
    assert.equal((await a.auth({ relayUri: AUTH_URI, username: 'alice', password: 'secret' })).status, 200);
    const idle = await MsrpTestClient.connect({ port: t.tcpPort });
    await t.close();
    await a.closed;
    await idle.closed;
    assert.ok(a.isClosed && idle.isClosed);
  });
});
