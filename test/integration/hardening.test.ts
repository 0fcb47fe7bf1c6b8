// Exhaustion and the protocol's last edge cases (RFC.md ):
// the relay's counts are read from the relay itself (relay.counts, the connectionClosed hook).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import type { CloseReason, PluginHost, RelayPlugin } from '../../core/index.ts';
import { MsrpTestClient, startTestRelay, type TestRelay } from '../../core/testing/index.ts';

const users = [
  { username: 'alice', domain: 'example.com', password: 'secret' },
  { username: 'bob', domain: 'example.com', password: 'secret' },
];
const AUTH_URI = 'msrp://example.com;tcp';

/** Records why connections closed, as the relay says it. */
class Closes implements RelayPlugin {
  readonly name = 'closes';
  readonly reasons: CloseReason[] = [];
  apply(relay: PluginHost): void {
    relay.hooks.connectionClosed.tap(this.name, (_c, r) => this.reasons.push(r));
  }
}

/** Waits until `pred` holds, checking on every turn of the event loop (bounded). */
async function until(pred: () => boolean, what: string, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

function perIp(t: TestRelay): number {
  return t.relay.counts.perIp.get('127.0.0.1') ?? 0;
}

describe('no peer can exhaust the relay', () => {
  it('a peer that does not read its answers stops being read, then is closed; another client is served meanwhile', async () => {
    const closes = new Closes();
    const t = await startTestRelay({ users, plugins: [closes], limits: { maxBufferedPerConnection: 262144 }, timeouts: { outputStall: 0.5 } });
    try {
      const bad = await MsrpTestClient.connect({ port: t.tcpPort });
      const r = await bad.auth({ relayUri: AUTH_URI, username: 'alice', password: 'secret' });
      bad.pauseReading();
      // Bodiless SENDs to an unknown token of this relay: each is answered 481.
      const unknown = `msrp://127.0.0.1:${t.tcpPort}/nosuchsession00001;tcp`;
      // Far more answers than the kernel's socket buffers hold, so they queue in the relay.
      for (let batch = 0; batch < 100; batch++) {
        let frames = '';
        for (let j = 0; j < 2000; j++) {
          const tid = `t${String(batch * 2000 + j).padStart(7, '0')}`;
          frames += `MSRP ${tid} SEND\r\nTo-Path: ${unknown}\r\nFrom-Path: ${bad.uri}\r\nMessage-ID: m${tid}\r\n-------${tid}$\r\n`;
        }
        bad.write(frames);
      }
      assert.equal(r.status, 200);
      // The control session goes on.
      const { a, b, ta, tb } = await pair(t);
      const ok = await a.sendMessage({ toPath: [ta, tb, b.uri], body: 'still served' });
      assert.equal(ok.responses[0]!.status, 200);
      await until(() => closes.reasons.some((x) => x.code === 'limit'), 'the close of the peer that does not read');
      assert.match(closes.reasons.find((x) => x.code === 'limit')!.message ?? '', /does not read|did not read/);
      await Promise.all([a.close(), b.close()]);
      bad.destroy();
    } finally {
      await t.close();
    }
  });

  it('R-10: a connection asking for challenges without ever answering one is closed after a few', async () => {
    const t = await startTestRelay({ users });
    try {
      const c = await MsrpTestClient.connect({ port: t.tcpPort });
      const statuses: number[] = [];
      for (let i = 0; i < 5 && !c.isClosed; i++) {
        const tid = c.sendRequest({ method: 'AUTH', toPath: [AUTH_URI] });
        try {
          statuses.push((await c.waitForResponse(tid)).status);
        } catch {
          break;
        }
      }
      await c.closed;
      assert.deepEqual(statuses, [401, 401, 401]);
      // A client that answers its challenges opens many sessions on one connection.
      const d = await MsrpTestClient.connect({ port: t.tcpPort });
      for (let i = 0; i < 6; i++) assert.equal((await d.auth({ relayUri: AUTH_URI, username: 'alice', password: 'secret' })).status, 200);
      await d.close();
    } finally {
      await t.close();
    }
  });

  it('R-88: a TLS connection counts from its TCP accept; a handshake that never comes is cut at timeouts.tlsHandshake', async () => {
    const t = await startTestRelay({ users, tls: true, limits: { maxConnectionsPerIp: 3 }, timeouts: { tlsHandshake: 0.5 } });
    try {
      const raw: net.Socket[] = [];
      const closed: Array<Promise<void>> = [];
      for (let i = 0; i < 3; i++) {
        const s = net.connect({ host: '127.0.0.1', port: t.tlsPort! });
        s.on('error', () => {});
        closed.push(new Promise((r) => s.once('close', () => r())));
        raw.push(s);
      }
      await until(() => perIp(t) === 3, 'three half-open TLS connections counted');
      // A fourth from the same address is refused at once, handshake or not.
      const fourth = net.connect({ host: '127.0.0.1', port: t.tlsPort! });
      fourth.on('error', () => {});
      await new Promise((r) => fourth.once('close', r));
      // The three never send a ClientHello: cut, and their places given back.
      await Promise.all(closed);
      await until(() => perIp(t) === 0, 'the places given back');
      const c = await MsrpTestClient.connect({ port: t.tlsPort!, tls: true });
      assert.equal((await c.auth({ relayUri: 'msrps://example.com;tcp', username: 'alice', password: 'secret' })).status, 200);
      await c.close();
    } finally {
      await t.close();
    }
  });

  it('R-88: at maxConnections the oldest connection in probation makes room; an authenticated one never does', async () => {
    const closes = new Closes();
    const t = await startTestRelay({ users, plugins: [closes], limits: { maxConnections: 4 } });
    try {
      const authed = await MsrpTestClient.connect({ port: t.tcpPort });
      const s = await authed.auth({ relayUri: AUTH_URI, username: 'bob', password: 'secret' });
      const idle: MsrpTestClient[] = [];
      for (let i = 0; i < 3; i++) idle.push(await MsrpTestClient.connect({ port: t.tcpPort }));
      await until(() => t.relay.counts.inbound === 4, 'the cap filled');
      // Strangers keep coming: each one evicts an idle stranger, never Bob.
      const fresh: MsrpTestClient[] = [];
      for (let i = 0; i < 5; i++) fresh.push(await MsrpTestClient.connect({ port: t.tcpPort }));
      const newcomer = fresh[fresh.length - 1]!;
      assert.equal((await newcomer.auth({ relayUri: AUTH_URI, username: 'alice', password: 'secret' })).status, 200);
      await Promise.all(idle.map((c) => c.closed));
      assert.ok(closes.reasons.filter((r) => r.code === 'limit').length >= 3);
      assert.equal(authed.isClosed, false);
      assert.equal((await authed.sendMessage({ toPath: [s.usePath[0]!, `msrp://127.0.0.1:${t.tcpPort}/x;tcp`], body: 'x' })).responses[0]!.status, 481);
      await Promise.all([authed.close(), ...fresh.map((c) => c.close())]);
    } finally {
      await t.close();
    }
  });

  it('a connection the relay closed gives its place back at once, even while the peer keeps it open', async () => {
    const t = await startTestRelay({ users, limits: { maxConnectionsPerIp: 1 } });
    try {
      const bad = net.connect({ host: '127.0.0.1', port: t.tcpPort });
      bad.on('error', () => {});
      await new Promise((r) => bad.once('connect', r));
      // garbage: the relay closes. The peer does not close its end and keeps writing.
      bad.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
      await until(() => perIp(t) === 0, 'the place given back');
      bad.write('more bytes the relay does not read\r\n');
      const c = await MsrpTestClient.connect({ port: t.tcpPort });
      assert.equal((await c.auth({ relayUri: AUTH_URI, username: 'alice', password: 'secret' })).status, 200);
      await c.close();
      bad.destroy();
    } finally {
      await t.close();
    }
  });

  it('outward legs have their own cap (limits.maxOutboundConnections)', async () => {
    const servers = await Promise.all([farEnd(), farEnd()]);
    const t = await startTestRelay({ users, limits: { maxOutboundConnections: 1 } });
    try {
      const a = await MsrpTestClient.connect({ port: t.tcpPort });
      const b = await MsrpTestClient.connect({ port: t.tcpPort });
      const ta = (await a.auth({ relayUri: AUTH_URI, username: 'alice', password: 'secret' })).usePath[0]!;
      const tb = (await b.auth({ relayUri: AUTH_URI, username: 'bob', password: 'secret' })).usePath[0]!;
      const first = await a.sendMessage({ toPath: [ta, `msrp://127.0.0.1:${servers[0]!.port}/far1;tcp`], body: 'x' });
      assert.equal(first.responses[0]!.status, 200);
      assert.equal(t.relay.counts.outbound, 1);
      const second = await b.sendMessage({ toPath: [tb, `msrp://127.0.0.1:${servers[1]!.port}/far2;tcp`], body: 'x' });
      assert.equal(second.responses[0]!.status, 403);
      assert.equal(servers[1]!.accepted(), 0);
      await Promise.all([a.close(), b.close()]);
    } finally {
      await t.close();
      for (const s of servers) s.close();
    }
  });
});

describe('the protocol\'s last edge cases', () => {
  it('R-19: a tid shorter than 4 characters whose paths parse gets 400', async () => {
    const t = await startTestRelay({ users });
    try {
      const { a, ta, tb, b } = await pair(t);
      a.write(`MSRP ab SEND\r\nTo-Path: ${ta} ${tb} ${b.uri}\r\nFrom-Path: ${a.uri}\r\nMessage-ID: m1234\r\n-------ab$\r\n`);
      const res = await a.waitFor((f) => f.kind === 'response' && f.tid === 'ab');
      assert.equal(res.status, 400);
      await Promise.all([a.close(), b.close()]);
    } finally {
      await t.close();
    }
  });

  it('R-23: lines ending in a bare LF close the connection at once, not at the header timer', async () => {
    // Longer than the test runner lets a test run: waiting for a timer would fail the test.
    const t = await startTestRelay({ users, timeouts: { headerCompletion: 3600, firstRequest: 3600 } });
    try {
      const c = await MsrpTestClient.connect({ port: t.tcpPort });
      c.write(`MSRP abcd1234 SEND\nTo-Path: msrp://127.0.0.1:${t.tcpPort}/x;tcp\nFrom-Path: ${c.uri}\nMessage-ID: m1\n-------abcd1234$\n`);
      await c.closed;
      // Header lines in bare LF after a proper start line: the same.
      const d = await MsrpTestClient.connect({ port: t.tcpPort });
      d.write(`MSRP abcd1234 SEND\r\nTo-Path: msrp://127.0.0.1:${t.tcpPort}/x;tcp\nFrom-Path: ${d.uri}\nMessage-ID: m1\n`);
      await d.closed;
    } finally {
      await t.close();
    }
  });

  it('R-29: an AUTH with a body over 10240 octets gets 400 and a close, before any AUTH processing', async () => {
    const t = await startTestRelay({ users });
    try {
      const c = await MsrpTestClient.connect({ port: t.tcpPort });
      const tid = c.sendRequest({ method: 'AUTH', toPath: [AUTH_URI], body: 'x'.repeat(12_000), contentType: 'text/plain' });
      const res = await c.waitForResponse(tid);
      assert.equal(res.status, 400);
      assert.equal(res.header('WWW-Authenticate'), undefined);
      await c.closed;
      assert.equal(c.frames.filter((f) => f.kind === 'response').length, 1);
    } finally {
      await t.close();
    }
  });

  it('a request for a session URI of this relay with nothing after it gets 481', async () => {
    const t = await startTestRelay({ users });
    try {
      const { a, ta, b } = await pair(t);
      assert.equal((await a.sendMessage({ toPath: [ta], body: 'x' })).responses[0]!.status, 481);
      await Promise.all([a.close(), b.close()]);
    } finally {
      await t.close();
    }
  });
});

async function pair(t: TestRelay): Promise<{ a: MsrpTestClient; b: MsrpTestClient; ta: string; tb: string }> {
  const a = await MsrpTestClient.connect({ port: t.tcpPort });
  const b = await MsrpTestClient.connect({ port: t.tcpPort });
  const ta = (await a.auth({ relayUri: AUTH_URI, username: 'alice', password: 'secret' })).usePath[0]!;
  const tb = (await b.auth({ relayUri: AUTH_URI, username: 'bob', password: 'secret' })).usePath[0]!;
  return { a, b, ta, tb };
}

/** A plain TCP server standing for a far end: answers every SEND with 200. */
async function farEnd(): Promise<{ port: number; accepted(): number; close(): void }> {
  let n = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    n++;
    sockets.add(s);
    s.on('error', () => {});
    s.on('data', (d) => {
      const text = d.toString('latin1');
      for (const m of text.matchAll(/^MSRP (\S+) SEND\r\nTo-Path: (\S+)\r\nFrom-Path: (\S+)/gm)) {
        s.write(`MSRP ${m[1]} 200 OK\r\nTo-Path: ${m[3]}\r\nFrom-Path: ${m[2]}\r\n-------${m[1]}$\r\n`);
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    port: (server.address() as net.AddressInfo).port,
    accepted: () => n,
    close: () => {
      for (const s of sockets) s.destroy();
      server.close();
    },
  };
}
