// `msrprelay --workers 2` (DESIGN.md §7): real processes, real sockets, real signals.
// A session-id's first character names the worker that issued it, so a test can tell
// which worker a connection was served by.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MsrpTestClient, hashSource, seededSource, type ClientOptions } from '../../core/testing/client.ts';
import { testCertificates } from '../../core/testing/harness.ts';
import { MAX_WORKERS, newSessionId, newWorkerSessionId, workerOfSession } from '../../core/session/session-table.ts';
import { formatHandoff, parseHandoff } from '../../core/cluster/worker-link.ts';
import { parseUri } from '../../core/protocol/uri.ts';

const BIN = fileURLToPath(new URL('../../bin/msrprelay.js', import.meta.url));

describe('cluster session-ids', () => {
  it('a worker id is the worker index in base62, then 22 base62 characters', () => {
    for (const i of [0, 1, 9, 10, 35, 36, 61]) {
      const id = newWorkerSessionId(i);
      assert.match(id, /^[0-9A-Za-z]{23}$/);
      assert.equal(workerOfSession(id, MAX_WORKERS), i);
      assert.equal(workerOfSession(id, i + 1), i);
      assert.equal(workerOfSession(id, i), undefined, 'an index past the worker count is not a worker');
    }
    assert.equal(newWorkerSessionId(1)[0], '1');
    assert.equal(newWorkerSessionId(10)[0], 'A');
    // A single-process id (22 characters) never names a worker.
    assert.equal(workerOfSession(newSessionId(), MAX_WORKERS), undefined);
    assert.throws(() => newWorkerSessionId(MAX_WORKERS));
    assert.throws(() => newWorkerSessionId(-1));
  });

  it('the random part stays 128 bits (R-47): ids do not repeat', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 2000; i++) seen.add(newWorkerSessionId(3).slice(1));
    assert.equal(seen.size, 2000);
  });

  it('the hand-over preamble round-trips, IPv6 and unknown addresses included', () => {
    const h = { transport: 'tls' as const, listenerPort: 2855, remoteAddress: '::ffff:10.0.0.1', remotePort: 40000, localAddress: '', localPort: 2855 };
    const line = formatHandoff(h);
    assert.ok(line.endsWith('\r\n'));
    assert.deepEqual(parseHandoff(line.slice(0, -2)), h);
    assert.equal(parseHandoff('MSRP abc SEND'), undefined);
    assert.equal(parseHandoff('HANDOFF tcp x 1 2 3 4'), undefined);
  });
});

function configText(users: string[], cert: { certFile: string; keyFile: string }): string {
  const list = users.map((u) => `{ username: '${u}', domain: 'example.com', password: 'secret' }`).join(', ');
  return `export default {
  hostname: '127.0.0.1',
  listen: [
    { transport: 'tcp', host: '127.0.0.1', port: 0, insecureAuth: true },
    { transport: 'tls', host: '127.0.0.1', port: 0, cert: ${JSON.stringify(cert.certFile)}, key: ${JSON.stringify(cert.keyFile)} },
  ],
  plugins: [['auth-memory', { users: [${list}] }], ['domain-map', { default: 'example.com' }]],
};
`;
}

interface Running {
  child: ChildProcess;
  tcpPort: number;
  tlsPort: number;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<number | null>;
}

async function start(configFile: string, env?: NodeJS.ProcessEnv): Promise<Running> {
  const child = spawn(process.execPath, [BIN, '--config', configFile, '--workers', '2'], { stdio: ['ignore', 'pipe', 'pipe'], ...(env !== undefined ? { env } : {}) });
  let out = '';
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  const ports = await new Promise<[number, number]>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no "listening" lines; stderr:\n${err}`)), 30000);
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const tcp = /listening tcp:\/\/127\.0\.0\.1:(\d+)/.exec(out);
      const tls = /listening tls:\/\/127\.0\.0\.1:(\d+)/.exec(out);
      if (tcp && tls) {
        clearTimeout(timer);
        resolve([Number(tcp[1]), Number(tls[1])]);
      }
    });
    void exited.then((code) => reject(new Error(`exited ${code} before listening; stderr:\n${err}`)));
  });
  return { child, tcpPort: ports[0], tlsPort: ports[1], stdout: () => out, stderr: () => err, exited };
}

/** The worker that issued a Use-Path token. */
function workerOf(token: string): number {
  const id = parseUri(token).sessionId!;
  const w = workerOfSession(id, 2);
  assert.notEqual(w, undefined, `token ${token} names no worker`);
  return w!;
}

describe('msrprelay --workers 2', () => {
  let dir: string;
  let file: string;
  let r: Running;
  let cert: { certFile: string; keyFile: string; ca: string };
  const tcp = (extra: Partial<ClientOptions> = {}): ClientOptions => ({ port: r.tcpPort, timeoutMs: 20000, ...extra });
  const tls = (extra: Partial<ClientOptions> = {}): ClientOptions => ({ port: r.tlsPort, tls: { ca: cert.ca, servername: 'localhost' }, timeoutMs: 20000, ...extra });

  async function authed(opts: ClientOptions, username: string): Promise<{ c: MsrpTestClient; token: string }> {
    const c = await MsrpTestClient.connect(opts);
    const relayUri = opts.tls !== undefined ? 'msrps://example.com;tcp' : 'msrp://example.com;tcp';
    const res = await c.auth({ relayUri, username, password: 'secret' });
    assert.equal(res.status, 200);
    return { c, token: res.usePath[0]! };
  }

  /** Alice and Bob with tokens of different workers (connections are spread over the workers). */
  async function pairOnTwoWorkers(opts: () => ClientOptions) {
    const a = await authed(opts(), 'alice');
    for (let i = 0; i < 20; i++) {
      const b = await authed(opts(), 'bob');
      if (workerOf(b.token) !== workerOf(a.token)) return { a, b };
      await b.c.close();
    }
    throw new Error('every connection landed on one worker');
  }

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'msrprelay-cluster-'));
    file = join(dir, 'msrprelay.config.mjs');
    const certs = await testCertificates();
    cert = { certFile: certs.server.certFile, keyFile: certs.server.keyFile, ca: certs.ca.cert };
    writeFileSync(file, configText(['alice', 'bob'], cert));
    r = await start(file);
  });

  after(async () => {
    if (r !== undefined && r.child.exitCode === null) {
      r.child.kill('SIGKILL');
      await r.exited;
    }
    rmSync(dir, { recursive: true, force: true });
  });

  it('prints the listening lines once', () => {
    assert.equal(r.stdout().match(/^listening tcp:/gm)?.length, 1);
    assert.equal(r.stdout().match(/^listening tls:/gm)?.length, 1);
  });

  it('clients on two workers exchange messages both ways, intact, and a few MiB streamed', async () => {
    const { a, b } = await pairOnTwoWorkers(() => tcp({ storeBodies: false }));
    const ab = [a.token, b.token, b.c.uri];
    const ba = [b.token, a.token, a.c.uri];
    for (let i = 0; i < 3; i++) {
      const m1 = await a.c.sendMessage({ toPath: ab, body: `hello ${i} from A` });
      assert.equal(m1.responses[0]!.status, 200);
      const got1 = await b.c.waitFor((x) => x.header('Message-ID') === m1.messageId);
      assert.deepEqual(got1.fromPath, [b.token, a.token, a.c.uri]);
      const m2 = await b.c.sendMessage({ toPath: ba, body: `hello ${i} from B` });
      assert.equal(m2.responses[0]!.status, 200);
      const got2 = await a.c.waitFor((x) => x.header('Message-ID') === m2.messageId);
      assert.deepEqual(got2.fromPath, [a.token, b.token, b.c.uri]);
    }
    const size = 6 * 2 ** 20;
    const srcA = seededSource(11);
    const srcB = seededSource(12);
    const [ra, rb] = await Promise.all([
      a.c.streamMessage({ toPath: ab, size, source: srcA, chunkSize: 2 ** 20 }),
      b.c.streamMessage({ toPath: ba, size, source: srcB }),
    ]);
    assert.ok(ra.responses.every((x) => x.status === 200));
    assert.ok(rb.responses.every((x) => x.status === 200));
    const ma = await b.c.waitForMessage(ra.messageId, 60000);
    const mb = await a.c.waitForMessage(rb.messageId, 60000);
    assert.equal(ma.bytes, size);
    assert.equal(ma.sha256, hashSource(size, srcA));
    assert.equal(mb.bytes, size);
    assert.equal(mb.sha256, hashSource(size, srcB));
    await Promise.all([a.c.close(), b.c.close()]);
  });

  async function peerFirst(opts: (extra?: Partial<ClientOptions>) => ClientOptions): Promise<void> {
    // Several far ends, each on a fresh connection: the workers take turns accepting, so
    // some land on the worker that owns the token and some on the other (the hand-over).
    const a = await authed(opts(), 'alice');
    const owner = workerOf(a.token);
    const scheme = opts().tls !== undefined ? 'msrps' : 'msrp';
    for (let i = 0; i < 4; i++) {
      const relayUri = `${scheme}://example.com;tcp`;
      const again = await a.c.auth({ relayUri, username: 'alice', password: 'secret' });
      const ta = again.usePath[0]!;
      assert.equal(workerOf(ta), owner);
      // I-10: B connects straight to A's token, without AUTH, with a From-Path port that is not its own.
      const b = await MsrpTestClient.connect(opts({ uri: `${scheme}://127.0.0.1:2855/far${i};tcp` }));
      const first = await b.sendMessage({ toPath: [ta, a.c.uri], body: `hello ${i} from B` });
      assert.equal(first.responses[0]!.status, 200);
      const got = await a.c.waitFor((x) => x.header('Message-ID') === first.messageId);
      assert.deepEqual(got.fromPath, [ta, b.uri]);
      assert.equal(got.body.toString(), `hello ${i} from B`);
      const reply = await a.c.sendMessage({ toPath: [ta, b.uri], body: `hello back ${i}` });
      assert.equal(reply.responses[0]!.status, 200);
      const back = await b.waitFor((x) => x.header('Message-ID') === reply.messageId);
      assert.equal(back.body.toString(), `hello back ${i}`);
      assert.deepEqual(back.fromPath, [ta, a.c.uri]);
      // The connection is served by the owner whichever worker accepted it: a token issued
      // over it names the owner, and AUTH works (R-7: the TLS listener's connection is secure).
      const own = await b.auth({ relayUri, username: 'bob', password: 'secret' });
      assert.equal(own.status, 200);
      assert.equal(workerOf(own.usePath[0]!), owner, `far end ${i} was not served by the owner`);
      await b.close();
    }
    await a.c.close();
  }

  it('peer-first far end (I-10) on the other worker is handed over: TCP', async () => {
    await peerFirst(tcp);
  });

  it('peer-first far end (I-10) on the other worker is handed over: TLS', async () => {
    await peerFirst(tls);
  });

  it('SIGHUP reaches every worker: a user added to the config can AUTH on both', async () => {
    writeFileSync(file, configText(['alice', 'bob', 'carol'], cert));
    r.child.kill('SIGHUP');
    const seen = new Set<number>();
    const end = Date.now() + 20000;
    while (seen.size < 2) {
      if (Date.now() > end) throw new Error(`carol was accepted only by workers ${[...seen].join(',')}; stderr:\n${r.stderr()}`);
      const c = await MsrpTestClient.connect(tcp());
      const res = await c.auth({ relayUri: 'msrp://example.com;tcp', username: 'carol', password: 'secret' });
      if (res.status === 200) seen.add(workerOf(res.usePath[0]!));
      await c.close();
      if (res.status !== 200) await new Promise((x) => setTimeout(x, 100));
    }
    assert.match(r.stderr(), /\[w0\] .*reloaded/);
    assert.match(r.stderr(), /\[w1\] .*reloaded/);
  });

  it('SIGTERM: every worker drains, the primary exits 0', async () => {
    r.child.kill('SIGTERM');
    assert.equal(await r.exited, 0, r.stderr());
  });
});

describe('msrprelay --workers 2 with shareOutboundConnections: worker links are never shared', () => {
  let dir: string;
  let r: Running;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'msrprelay-cluster-share-'));
    const file = join(dir, 'msrprelay.config.mjs');
    const certs = await testCertificates();
    writeFileSync(file, configText(['alice', 'bob'], { certFile: certs.server.certFile, keyFile: certs.server.keyFile }).replace("hostname: '127.0.0.1',", "hostname: '127.0.0.1',\n  shareOutboundConnections: true,"));
    // The primary hands connections to the workers in turn, so both get some soon.
    r = await start(file, { ...process.env, NODE_CLUSTER_SCHED_POLICY: 'rr' });
  });

  after(async () => {
    if (r !== undefined && r.child.exitCode === null) {
      // SIGTERM: the primary stops its workers (a SIGKILL would leave them running).
      r.child.kill('SIGTERM');
      if ((await Promise.race([r.exited, new Promise((x) => setTimeout(() => x('late'), 30000).unref())])) === 'late') r.child.kill('SIGKILL');
    }
    rmSync(dir, { recursive: true, force: true });
  });

  async function on(w: number, username: string): Promise<{ c: MsrpTestClient; token: string }> {
    for (let i = 0; i < 40; i++) {
      const c = await MsrpTestClient.connect({ port: r.tcpPort, timeoutMs: 60000, storeBodies: false });
      const res = await c.auth({ relayUri: 'msrp://example.com;tcp', username, password: 'secret' });
      assert.equal(res.status, 200);
      if (workerOf(res.usePath[0]!) === w) return { c, token: res.usePath[0]! };
      await c.close();
    }
    throw new Error(`no connection landed on worker ${w}`);
  }

  it('a receiver on worker 1 that reads nothing holds back no other session between the two workers', async () => {
    const a1 = await on(0, 'alice');
    const a2 = await on(0, 'alice');
    const fast = await on(1, 'bob');
    const slow = await on(1, 'bob');
    // Both far legs from worker 0 to worker 1 are open (with sharing on, one link would carry both).
    for (const [a, b] of [[a1, fast], [a2, slow]] as const) {
      const m = await a.c.sendMessage({ toPath: [a.token, b.token, b.c.uri], body: 'hello' });
      assert.equal(m.responses[0]!.status, 200);
    }
    slow.c.pauseReading();
    // More than the slow receiver's socket and the workers' buffers take: its sender stalls.
    let asked = 0;
    const stuckSource = seededSource(31);
    const source = (off: number, len: number) => {
      asked = Math.max(asked, off + len);
      return stuckSource(off, len);
    };
    a2.c.streamMessage({ toPath: [a2.token, slow.token, slow.c.uri], size: 32 * 2 ** 20, source, chunkSize: 2 ** 20 }).catch(() => {});
    // Once 6 MiB went out the buffers toward the slow receiver are full (a shared link would be stalled).
    for (const end = Date.now() + 60000; asked < 6 * 2 ** 20; ) {
      if (Date.now() > end) throw new Error(`the stream to the slow receiver stopped at ${asked} bytes`);
      await new Promise((x) => setTimeout(x, 20));
    }
    const src = seededSource(32);
    const size = 4 * 2 ** 20;
    const sent = await a1.c.streamMessage({ toPath: [a1.token, fast.token, fast.c.uri], size, source: src, chunkSize: 2 ** 20 });
    assert.ok(sent.responses.every((x) => x.status === 200));
    const got = await fast.c.waitForMessage(sent.messageId, 30000);
    assert.equal(got.bytes, size);
    assert.equal(got.sha256, hashSource(size, src));
    for (const x of [a1, a2, fast, slow]) x.c.destroy();
  });
});
