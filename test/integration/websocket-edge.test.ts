/**
 * The websocket plugin's edges, on real sockets: keep-alive (W-11, I-18), the client address
 * behind declared proxies only (X-Forwarded-For), wss and its certificate reload, W-5, and a
 * ws listen entry being all a config needs (the plugin is loaded for it).
 */

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { copyFileSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import tls from 'node:tls';
import { describe, it } from 'node:test';
import { ConfigError, createRelay } from '../../core/index.ts';
import { main } from '../../core/cli.ts';
import { startTestRelay, testCertificates, type TestRelay } from '../../core/testing/index.ts';
import MetricsPlugin from '../../plugins/metrics/index.ts';
import WebSocketPlugin from '../../plugins/websocket/index.ts';
import { browserUri, connectWs, upgradeStatus } from '../support/ws-client.ts';

const users = [
  { username: 'alice', domain: 'example.com', password: 'secret' },
  { username: 'bob', domain: 'example.com', password: 'secret' },
];

function wsListener(t: TestRelay, transport = 'ws') {
  const l = t.relay.listeners.find((x) => x.transport === transport)!;
  const scheme = transport === 'wss' ? 'wss' : 'ws';
  return { url: `${scheme}://127.0.0.1:${l.port}/`, relayUri: `msrp${transport === 'wss' ? 's' : ''}://example.com:${l.port};ws` };
}

describe('websocket: keep-alive (W-11, I-18)', () => {
  it('keeps an idle connection that answers Pings open past the idle timeout, and closes one that does not', async () => {
    // Idle after half a second, a Ping every tenth of one: only the Pong traffic keeps a connection.
    const t = await startTestRelay({
      users,
      timeouts: { idle: 0.5 },
      listen: [{ transport: 'ws', host: '127.0.0.1', port: 0, insecureAuth: true }],
      plugins: [['websocket', { pingInterval: 0.1 }]],
    });
    const { url, relayUri } = wsListener(t);
    const live = await connectWs(url);
    assert.equal((await live.client.auth({ relayUri, username: 'alice', password: 'secret' })).status, 200);
    const dead = await connectWs(url, { autoPong: false });
    assert.equal((await dead.client.auth({ relayUri, username: 'bob', password: 'secret' })).status, 200);
    // The peer that does not answer is cut (no closing handshake: 1006 at the client).
    assert.equal(await dead.closeCode, 1006);
    // Twelve Pings answered: well past the idle timeout, and the connection is still there.
    let pings = 0;
    await new Promise<void>((resolve) => {
      live.ws.on('ping', () => {
        if (++pings === 12) resolve();
      });
    });
    assert.equal(live.client.isClosed, false);
    const stats = WebSocketPlugin.stats(t.relay)!;
    assert.ok(stats.pongTimeouts >= 1);
    assert.ok(stats.pings >= 12);
    // It still carries MSRP: a fresh AUTH on it.
    assert.equal((await live.client.auth({ relayUri, username: 'alice', password: 'secret' })).status, 200);
    await live.client.close();
    await t.close();
  });
});

describe('websocket: the client address behind declared proxies', () => {
  it('believes X-Forwarded-For only from a trusted proxy, and the address reaches the per-address cap', async () => {
    const t = await startTestRelay({
      users,
      limits: { maxConnectionsPerIp: 1 },
      // No insecureAuth: AUTH works only because the declared proxy terminates TLS (R-7, W-5).
      listen: [{ transport: 'ws', host: '127.0.0.1', port: 0 }],
      plugins: [
        ['websocket', { trustedProxies: ['127.0.0.0/8'], proxyTls: true, usePath: 'tcp' }],
        // The throttle sees the client's address too: one new connection per address per minute.
        ['throttle', { connections: { ratePerIp: { connections: 1, seconds: 60 } } }],
      ],
    });
    const { url, relayUri } = wsListener(t);
    const seen: Array<{ remote: string; secure: boolean }> = [];
    t.relay.hooks.acceptConnection.tapPromise('test', (c) => {
      seen.push({ remote: c.remoteAddress, secure: c.secure });
      return Promise.resolve(undefined);
    });
    // The rightmost address that is not a trusted proxy is the client.
    const a = await connectWs(url, { headers: { 'X-Forwarded-For': '203.0.113.5, 198.51.100.9, 127.0.0.2' } });
    assert.equal((await a.client.auth({ relayUri, username: 'alice', password: 'secret' })).status, 200);
    assert.deepEqual(seen[0], { remote: '198.51.100.9', secure: true });
    // usePath 'tcp': the Use-Path names the TCP listener (W-8).
    assert.match([...t.relay.sessions.values()][0]!.uri, new RegExp(`^msrp://127\\.0\\.0\\.1:${t.tcpPort}/`));
    const owner = [...t.relay.sessions.values()].find((s) => s.identity.username === 'alice')!.owner;
    assert.equal(owner.remoteAddress, '198.51.100.9');
    // Another client behind the same proxy is another address: admitted.
    const b = await connectWs(url, { headers: { 'X-Forwarded-For': '198.51.100.10' } });
    assert.equal((await b.client.auth({ relayUri, username: 'bob', password: 'secret' })).status, 200);
    // The same client address twice: over the per-address cap, closed by the relay.
    const c = await connectWs(url, { headers: { 'X-Forwarded-For': '198.51.100.9' } });
    await c.client.closed;
    assert.ok((WebSocketPlugin.stats(t.relay)!.handshakes.failed['relay-refused'] ?? 0) >= 1);
    // The throttle's rate per address: 198.51.100.10 has had its one connection this minute.
    await b.client.close();
    const e = await connectWs(url, { headers: { 'X-Forwarded-For': '198.51.100.10' } });
    await e.client.closed;
    const f = await connectWs(url, { headers: { 'X-Forwarded-For': '198.51.100.11' } });
    assert.equal((await f.client.auth({ relayUri, username: 'bob', password: 'secret' })).status, 200);
    await f.client.close();
    await a.client.close();
    await t.close();

    // Without declared proxies the header is the client's own claim: ignored; and plain ws is not encrypted.
    const u = await startTestRelay({ users, listen: [{ transport: 'ws', host: '127.0.0.1', port: 0 }] });
    const plain = wsListener(u);
    const remotes: string[] = [];
    u.relay.hooks.acceptConnection.tapPromise('test', (conn) => {
      remotes.push(conn.remoteAddress);
      return Promise.resolve(undefined);
    });
    const d = await connectWs(plain.url, { headers: { 'X-Forwarded-For': '198.51.100.9' } });
    const auth = await d.client.auth({ relayUri: plain.relayUri, username: 'alice', password: 'secret' });
    // AUTH only when encrypted (the listener has no insecureAuth): 403, then closed.
    assert.equal(auth.status, 403);
    await d.client.closed;
    assert.deepEqual(remotes, ['127.0.0.1']);
    await u.close();
  });
});

describe('websocket: wss', () => {
  it('serves wss with the listener\'s certificate, takes AUTH on it, and re-reads the certificate on reload (SIGHUP)', async () => {
    const certs = await testCertificates();
    const dir = mkdtempSync(join(tmpdir(), 'msrprelay-wss-'));
    const cert = join(dir, 'cert.pem');
    const key = join(dir, 'key.pem');
    copyFileSync(certs.server.certFile, cert);
    copyFileSync(certs.server.keyFile, key);
    const config = {
      hostname: '127.0.0.1',
      listen: [
        { transport: 'tls' as const, host: '127.0.0.1', port: 0, cert, key },
        { transport: 'wss' as const, host: '127.0.0.1', port: 0, cert, key },
      ],
      plugins: [['auth-memory', { users }]],
    };
    const relay = await createRelay(config);
    await relay.listen();
    // Loaded for the wss entry, though the config does not list it.
    assert.ok(relay.pluginNames.includes('websocket'));
    const port = relay.listeners.find((l) => l.transport === 'wss')!.port;
    const tlsPort = relay.listeners.find((l) => l.transport === 'tls')!.port;
    const subject = () =>
      new Promise<string>((resolve, reject) => {
        const s = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => {
          resolve(String(s.getPeerCertificate().subject.CN));
          s.destroy();
        });
        s.once('error', reject);
      });
    assert.equal(await subject(), 'localhost');
    const a = await connectWs(`wss://127.0.0.1:${port}/`);
    const r = await a.client.auth({ relayUri: `msrps://example.com:${port};ws`, username: 'alice', password: 'secret', digestUri: 'include' });
    assert.equal(r.status, 200);
    assert.match(r.usePath[0]!, new RegExp(`^msrps://127\\.0\\.0\\.1:${tlsPort}/[A-Za-z0-9]+;tcp$`));
    // New files under the same names, then a reload: new handshakes get the new certificate, the open socket stays.
    copyFileSync(certs.client.certFile, cert);
    copyFileSync(certs.client.keyFile, key);
    await relay.reload(config);
    assert.equal(await subject(), 'test-client');
    assert.equal(a.client.isClosed, false);
    assert.equal((await a.client.auth({ relayUri: `msrps://example.com:${port};ws`, username: 'alice', password: 'secret' })).status, 200);
    await a.client.close();
    await relay.close();
  });
});

describe('websocket: config', () => {
  it('refuses plain ws off loopback without a declared proxy (W-5), and --check-config validates ws entries', async () => {
    await assert.rejects(createRelay({ hostname: 'relay.example.com', listen: [{ transport: 'ws', host: '0.0.0.0', port: 0 }] }), (e: unknown) => {
      assert.ok(e instanceof ConfigError);
      assert.match((e as Error).message, /listen ws:\/\/0\.0\.0\.0:0: plain ws is for loopback or behind a TLS-terminating proxy \(RFC 7977 §5\.1, W-5\)/);
      return true;
    });
    const ok = await createRelay({ hostname: 'relay.example.com', listen: [{ transport: 'ws', host: '0.0.0.0', port: 0 }], plugins: [['websocket', { trustedProxies: ['10.0.0.0/8'], proxyTls: true }]] });
    assert.deepEqual(ok.pluginNames.filter((n) => n === 'websocket'), ['websocket']);
    await ok.close();
    await assert.rejects(createRelay({ hostname: 'x', listen: [{ transport: 'ws', host: '127.0.0.1', port: 0 }], plugins: [['websocket', { trustedProxies: ['not-an-address'] }]] }), /trustedProxies: "not-an-address" is not an IP address or CIDR/);

    const dir = mkdtempSync(join(tmpdir(), 'msrprelay-wscfg-'));
    writeFileSync(join(dir, 'ok.json'), JSON.stringify({ hostname: '127.0.0.1', listen: [{ transport: 'ws', host: '127.0.0.1', port: 2857, path: '/msrp' }] }));
    writeFileSync(join(dir, 'bad.json'), JSON.stringify({ hostname: '127.0.0.1', listen: [{ transport: 'wss', host: '127.0.0.1', port: 2857 }, { transport: 'ws', host: '192.0.2.1', port: 2858 }] }));
    const out: string[] = [];
    const err: string[] = [];
    const io = { stdout: (s: string) => out.push(s), stderr: (s: string) => err.push(s), cwd: dir };
    assert.equal(await main(['--check-config', '--config', join(dir, 'ok.json')], io), 0);
    assert.match(out.join('\n'), /config OK: .*ok\.json \(1 listener, 1 plugin\)/);
    assert.equal(await main(['--check-config', '--config', join(dir, 'bad.json')], io), 1);
    assert.match(err.join('\n'), /\/listen\/0: a wss listener needs "cert" and "key" files/);
  });
});

describe('websocket: metrics', () => {
  it('shows the WebSocket counters on /metrics: handshakes by reason, open sockets, messages, octets, closes by code', async () => {
    const t = await startTestRelay({ users, listen: [{ transport: 'ws', host: '127.0.0.1', port: 0, insecureAuth: true }], plugins: [['metrics', { port: 0, defaultMetrics: false }]] });
    const { url, relayUri } = wsListener(t);
    const scrape = async () => {
      const text = await (await fetch(`http://127.0.0.1:${MetricsPlugin.address(t.relay)!.port}/metrics`)).text();
      return new Map(text.split('\n').filter((l) => l.startsWith('msrprelay_websocket_')).map((l) => [l.slice(0, l.lastIndexOf(' ')), Number(l.slice(l.lastIndexOf(' ') + 1))]));
    };
    assert.equal(await upgradeStatus(url, { protocols: [] }), 400);
    const a = await connectWs(url);
    assert.equal((await a.client.auth({ relayUri, username: 'alice', password: 'secret' })).status, 200);
    let m = await scrape();
    assert.equal(m.get('msrprelay_websocket_handshakes_total{result="failed",reason="subprotocol"}'), 1);
    assert.equal(m.get('msrprelay_websocket_handshakes_total{result="ok",reason="upgraded"}'), 1);
    assert.equal(m.get('msrprelay_websocket_open_sockets'), 1);
    assert.equal(m.get('msrprelay_websocket_messages_total{direction="in"}'), 2);
    assert.equal(m.get('msrprelay_websocket_messages_total{direction="out"}'), 2);
    assert.ok(m.get('msrprelay_websocket_bytes_total{direction="in"}')! > 200);
    await a.client.close();
    m = await scrape();
    assert.equal(m.get('msrprelay_websocket_open_sockets'), 0);
    assert.equal(m.get('msrprelay_websocket_closes_total{code="1000"}'), 1);
    await t.close();
  });
});

describe('websocket: msrprelay --workers 2', () => {
  it('serves each WebSocket on the worker that accepted it, across workers, and a first request to another worker\'s token gets 481 without harm', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'msrprelay-wsworkers-'));
    const file = join(dir, 'relay.json');
    writeFileSync(file, JSON.stringify({ hostname: '127.0.0.1', listen: [{ transport: 'tcp', host: '127.0.0.1', port: 0, insecureAuth: true }, { transport: 'ws', host: '127.0.0.1', port: 0, insecureAuth: true }], plugins: [['auth-memory', { users }]] }));
    const child = spawn(process.execPath, [join(fileURLToPath(new URL('../../bin/msrprelay.js', import.meta.url))), '--config', file, '--workers', '2'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    try {
      const port = await new Promise<number>((resolve, reject) => {
        child.stdout.on('data', (d: Buffer) => {
          out += d.toString();
          // W-8: the line names the Use-Path a WebSocket client gets: the TCP listener's (no TLS one here).
          const tcp = /listening tcp:\/\/127\.0\.0\.1:(\d+)/.exec(out);
          const m = /listening ws:\/\/127\.0\.0\.1:(\d+) \(Use-Path msrp:\/\/127\.0\.0\.1:(\d+)\/\.\.\.;tcp\)/.exec(out);
          if (m !== null && tcp !== null) {
            assert.equal(m[2], tcp[1]);
            resolve(Number(m[1]));
          }
        });
        void exited.then((code) => reject(new Error(`exited ${code}: ${err}`)));
      });
      const url = `ws://127.0.0.1:${port}/`;
      const relayUri = `msrp://example.com:${port};ws`;
      const authed = async (username: string) => {
        const c = await connectWs(url);
        const a = await c.client.auth({ relayUri, username, password: 'secret' });
        assert.equal(a.status, 200);
        return { ...c, token: a.usePath[0]! };
      };
      const worker = (token: string) => token.split('/')[3]![0];
      const a = await authed('alice');
      let b = await authed('bob');
      for (let i = 0; i < 20 && worker(b.token) === worker(a.token); i++) {
        await b.client.close();
        b = await authed('bob');
      }
      assert.notEqual(worker(b.token), worker(a.token), 'connections landed on both workers');
      const m = await a.client.sendMessage({ toPath: [a.token, b.token, b.client.uri], body: 'across workers' });
      assert.equal(m.responses[0]!.status, 200);
      assert.equal((await b.client.waitForMessage(m.messageId)).body!.toString(), 'across workers');
      const back = await b.client.sendMessage({ toPath: [b.token, a.token, a.client.uri], body: 'and back' });
      assert.equal(back.responses[0]!.status, 200);
      await a.client.waitForMessage(back.messageId);
      // A WebSocket whose first request names a token (no AUTH of its own, against W-6) is not handed over between workers.
      for (let i = 0; i < 8; i++) {
        const target = await authed('alice');
        const c = await connectWs(url);
        const tid = c.client.sendRequest({ method: 'SEND', toPath: [target.token, target.client.uri], fromPath: [browserUri()], headers: [['Message-ID', `direct${i}x`], ['Byte-Range', '1-1/1']], body: 'x' });
        const status = (await c.client.waitForResponse(tid)).status;
        // Served by the token's own worker: delivered; by the other one: no such session there.
        assert.ok([200, 481].includes(status), `status ${status}`);
        await c.client.close();
        await target.client.close();
      }
      assert.doesNotMatch(err, /died/);
      await a.client.close();
      await b.client.close();
    } finally {
      child.kill('SIGTERM');
      await exited;
    }
  });
});

describe('websocket: the caps from the TCP accept (R-88)', () => {
  it('a WebSocket counts from its TCP accept; an upgrade that never comes is cut at timeouts.tlsHandshake', async () => {
    const { connect } = await import('node:net');
    const t = await startTestRelay({
      users: [{ username: 'alice', domain: 'example.com', password: 'secret' }],
      listen: [{ transport: 'ws', host: '127.0.0.1', port: 0, path: '/msrp', insecureAuth: true }],
      limits: { maxConnectionsPerIp: 3 },
      timeouts: { tlsHandshake: 0.5 },
    });
    try {
      const port = t.relay.listeners.find((l) => l.transport === 'ws')!.port;
      const counted = () => t.relay.counts.perIp.get('127.0.0.1') ?? 0;
      const closed: Array<Promise<unknown>> = [];
      for (let i = 0; i < 3; i++) {
        const s = connect({ host: '127.0.0.1', port });
        s.on('error', () => {});
        closed.push(new Promise((r) => s.once('close', r)));
      }
      for (let i = 0; i < 1000 && counted() < 3; i++) await new Promise((r) => setTimeout(r, 5));
      assert.equal(counted(), 3);
      // A fourth TCP connection from the address is refused before any HTTP.
      const fourth = connect({ host: '127.0.0.1', port });
      fourth.on('error', () => {});
      await new Promise((r) => fourth.once('close', r));
      // None of the three upgrades: cut, places given back; a real client then gets in.
      await Promise.all(closed);
      for (let i = 0; i < 1000 && counted() > 0; i++) await new Promise((r) => setTimeout(r, 5));
      assert.equal(counted(), 0);
      const w = await connectWs(`ws://127.0.0.1:${port}/msrp`);
      assert.equal((await w.client.auth({ relayUri: `msrp://example.com:${port};ws`, username: 'alice', password: 'secret', digestUri: 'include' })).status, 200);
      assert.equal(counted(), 1);
      await w.client.close();
    } finally {
      await t.close();
    }
  });
});
