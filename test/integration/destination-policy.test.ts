// Where the relay may dial (outbound.allow / deny / loopback) and how many outward legs a client
// may hold (outbound.maxLegsPer*): real relays and a plain TCP server standing for a far end or
// for a service on the relay's host. Only loopback addresses are ever dialled here.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { MsrpTestClient } from '../../core/testing/client.ts';
import { startTestRelay, type TestRelay, type TestRelayOptions } from '../../core/testing/harness.ts';
import type { Logger } from '../../core/plugin.ts';

const users = [
  { username: 'alice', domain: 'example.com', password: 'secret' },
  { username: 'bob', domain: 'example.com', password: 'secret' },
];
const AUTH_URI = 'msrp://example.com;tcp';
const plugins: Array<[string, object]> = [['domain-map', { default: 'example.com' }]];

/** A plain TCP server on 127.0.0.1: counts the connections it gets and keeps what they send. */
interface Service {
  readonly port: number;
  readonly uri: string;
  connections: number;
  received: string;
  close(): Promise<void>;
}

async function service(): Promise<Service> {
  const sockets = new Set<net.Socket>();
  const s: Service = {
    port: 0,
    uri: '',
    connections: 0,
    received: '',
    close: () =>
      new Promise<void>((r) => {
        for (const x of sockets) x.destroy();
        server.close(() => r());
      }),
  };
  const server = net.createServer((socket) => {
    s.connections++;
    sockets.add(socket);
    socket.on('data', (d: Buffer) => (s.received += d.toString('latin1')));
    socket.on('error', () => {});
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as net.AddressInfo).port;
  return Object.assign(s, { port, uri: `msrp://127.0.0.1:${port}/far;tcp` });
}

async function until(cond: () => boolean, what: string, ms = 10000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A client of `t` with a session: the client and its Use-Path URI. */
async function client(t: TestRelay, username = 'alice', c?: MsrpTestClient): Promise<{ c: MsrpTestClient; token: string }> {
  const conn = c ?? (await MsrpTestClient.connect({ port: t.tcpPort }));
  const r = await conn.auth({ relayUri: AUTH_URI, username, password: 'secret' });
  assert.equal(r.status, 200);
  return { c: conn, token: r.usePath[0]! };
}

/** The status of the response to one SEND from `from` through its token to `farUri`. */
async function sendTo(from: { c: MsrpTestClient; token: string }, farUri: string, body = 'hello far end'): Promise<number> {
  const m = await from.c.sendMessage({ toPath: [from.token, farUri], body });
  return m.responses[0]!.status;
}

function capturingLogger(): Logger & { warnings: Array<{ msg: string; fields: Record<string, unknown> | undefined }> } {
  const warnings: Array<{ msg: string; fields: Record<string, unknown> | undefined }> = [];
  const none = () => {};
  return { debug: none, info: none, error: none, warn: (msg, fields) => warnings.push({ msg, fields }), warnings };
}

/** A relay that some address outside this host can reach: one listener on 0.0.0.0 besides the harness's loopback one. */
const PUBLIC_LISTENER: TestRelayOptions['listen'] = [{ transport: 'tcp', host: '0.0.0.0', port: 0 }];

describe('outbound destination policy', () => {
  let svc: Service;
  let other: Service;
  before(async () => {
    svc = await service();
    other = await service();
  });
  after(async () => {
    await svc.close();
    await other.close();
  });

  it('a relay whose listeners are all on loopback dials a loopback next hop (the default for tests and the sample config)', async () => {
    const t = await startTestRelay({ users, plugins });
    try {
      const before = svc.connections;
      const a = await client(t);
      assert.equal(await sendTo(a, svc.uri, 'loopback is fine here'), 200);
      await until(() => svc.received.includes('loopback is fine here'), 'the SEND at the far end');
      assert.equal(svc.connections, before + 1);
      await a.c.close();
    } finally {
      await t.close();
    }
  });

  it('a relay with a listener off loopback refuses 127.0.0.1:<port> with 403, does not connect, and logs why', async () => {
    const log = capturingLogger();
    const t = await startTestRelay({ users, plugins, listen: PUBLIC_LISTENER, logger: log });
    try {
      const before = svc.connections;
      const a = await client(t);
      const m = await a.c.sendMessage({ toPath: [a.token, svc.uri], body: 'SET pwned 1\r\n' });
      assert.equal(m.responses[0]!.status, 403);
      assert.deepEqual(m.responses[0]!.toPath, [a.c.uri], 'answered to the previous hop (R-57)');
      // The chunk after it is refused as well (no connection was opened to reuse).
      assert.equal(await sendTo(a, svc.uri), 403);
      assert.equal(svc.connections, before, 'the service saw no connection');
      assert.ok(!svc.received.includes('pwned'));
      const w = log.warnings.find((x) => x.msg === 'next hop refused by the outbound policy');
      assert.ok(w !== undefined, JSON.stringify(log.warnings));
      assert.equal(w.fields?.rule, 'built-in: loopback');
      assert.equal(w.fields?.address, '127.0.0.1');
      assert.equal(w.fields?.user, 'alice@example.com');
      // The session is still usable for what is allowed: nothing was bound to it.
      assert.equal(t.relay.sessions.size, 1);
      await a.c.close();
    } finally {
      await t.close();
    }
  });

  it('outbound.loopback: false makes a loopback-only relay refuse loopback too', async () => {
    const t = await startTestRelay({ users, plugins, outbound: { loopback: false } });
    try {
      const before = svc.connections;
      const a = await client(t);
      assert.equal(await sendTo(a, svc.uri), 403);
      assert.equal(svc.connections, before);
      await a.c.close();
    } finally {
      await t.close();
    }
  });

  it('a name that resolves to loopback (localhost) is refused like the address', async () => {
    const t = await startTestRelay({ users, plugins, listen: PUBLIC_LISTENER });
    try {
      const before = svc.connections;
      const a = await client(t);
      assert.equal(await sendTo(a, `msrp://localhost:${svc.port}/far;tcp`), 403);
      assert.equal(svc.connections, before);
      await a.c.close();
    } finally {
      await t.close();
    }
  });

  it('outbound.allow lets an address and port through on a public relay, and only that port', async () => {
    const t = await startTestRelay({ users, plugins, listen: PUBLIC_LISTENER, outbound: { allow: [`127.0.0.1:${svc.port}`] } });
    try {
      const [before, otherBefore] = [svc.connections, other.connections];
      const a = await client(t);
      assert.equal(await sendTo(a, svc.uri, 'allowed by rule'), 200);
      await until(() => svc.received.includes('allowed by rule'), 'the SEND at the far end');
      assert.equal(svc.connections, before + 1);
      const b = await client(t, 'bob');
      assert.equal(await sendTo(b, other.uri), 403, 'another port of the same address is not allowed');
      assert.equal(other.connections, otherBefore);
      await Promise.all([a.c.close(), b.c.close()]);
    } finally {
      await t.close();
    }
  });

  it('outbound.deny refuses a port, and a CIDR, even where loopback is allowed', async () => {
    const byPort = await startTestRelay({ users, plugins, outbound: { deny: [`:${svc.port}`] } });
    const byCidr = await startTestRelay({ users, plugins, outbound: { deny: ['127.0.0.0/8'], allow: ['127.0.0.1'] } });
    try {
      const [before, otherBefore] = [svc.connections, other.connections];
      const a = await client(byPort);
      assert.equal(await sendTo(a, svc.uri), 403);
      assert.equal(svc.connections, before);
      const b = await client(byPort, 'bob');
      assert.equal(await sendTo(b, other.uri, 'another port'), 200, 'the deny names one port');
      await until(() => other.received.includes('another port'), 'the SEND at the other service');
      assert.equal(other.connections, otherBefore + 1);
      const c = await client(byCidr);
      assert.equal(await sendTo(c, other.uri), 403, 'deny wins over allow');
      assert.equal(other.connections, otherBefore + 1);
      await Promise.all([a.c.close(), b.c.close(), c.c.close()]);
    } finally {
      await byPort.close();
      await byCidr.close();
    }
  });

  it('a bad rule stops the relay from starting, naming the rule', async () => {
    await assert.rejects(startTestRelay({ users, outbound: { deny: ['10.0.0.0/33'] } }), /\/outbound\/deny\/0: "10\.0\.0\.0\/33": the prefix length must be 0-32/);
  });
});

describe('outward legs per connection and per user', () => {
  let far: Service[];
  before(async () => {
    far = await Promise.all([service(), service(), service()]);
  });
  after(async () => {
    for (const s of far) await s.close();
  });

  it('outbound.maxLegsPerConnection: a second session of the same connection may not open a second leg', async () => {
    const t = await startTestRelay({ users, plugins, outbound: { maxLegsPerConnection: 1 } });
    try {
      const before = far.map((s) => s.connections);
      const s1 = await client(t);
      const s2 = await client(t, 'alice', s1.c);
      assert.notEqual(s1.token, s2.token);
      assert.equal(await sendTo(s1, far[0]!.uri), 200);
      assert.equal(await sendTo(s2, far[1]!.uri), 403);
      assert.equal(far[1]!.connections, before[1]);
      // Another connection has its own count.
      const b = await client(t, 'bob');
      assert.equal(await sendTo(b, far[2]!.uri), 200);
      await until(() => far[0]!.connections === before[0]! + 1 && far[2]!.connections === before[2]! + 1, 'the two legs');
      await Promise.all([s1.c.close(), b.c.close()]);
    } finally {
      await t.close();
    }
  });

  it('outbound.maxLegsPerUser: counted across connections, per user, and given back when the leg goes', async () => {
    const t = await startTestRelay({ users, plugins, outbound: { maxLegsPerUser: 1 } });
    try {
      const before = far.map((s) => s.connections);
      const a1 = await client(t);
      const a2 = await client(t);
      const b = await client(t, 'bob');
      assert.equal(await sendTo(a1, far[0]!.uri), 200);
      assert.equal(await sendTo(a2, far[1]!.uri), 403, "alice's second leg");
      assert.equal(await sendTo(b, far[1]!.uri, 'bob may'), 200, "bob's first");
      await until(() => far[1]!.received.includes('bob may'), "bob's SEND");
      assert.equal(far[1]!.connections, before[1]! + 1);
      // Alice's first connection goes, and its leg with it: her other session may dial now.
      await a1.c.close();
      await until(() => t.relay.sessions.size === 2, 'the relay to drop the closed connection');
      assert.equal(await sendTo(a2, far[2]!.uri), 200);
      await until(() => far[2]!.connections === before[2]! + 1, "alice's new leg");
      await Promise.all([a2.c.close(), b.c.close()]);
    } finally {
      await t.close();
    }
  });
});
