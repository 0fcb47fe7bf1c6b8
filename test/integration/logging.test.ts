// The logging plugin through a real relay: JSON log lines with levels and child ids,
// accounting records with exact byte and message counts, and no secret anywhere.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sqlite3 from 'sqlite3';
import { MsrpTestClient, type ReceivedFrame } from '../../core/testing/client.ts';
import { startTestRelay, type TestRelay } from '../../core/testing/harness.ts';
import type { PluginHost, RelayPlugin } from '../../core/plugin.ts';

const PASSWORD = 'Pa55-w0rd-Zq8xK';
const users = [
  { username: 'alice', domain: 'example.com', password: PASSWORD },
  { username: 'bob', domain: 'example.com', password: PASSWORD },
];

type Json = Record<string, any>;

function jsonLines(file: string): Json[] {
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Json);
}

function portOf(uri: string): number {
  return Number(/:(\d+)\//.exec(uri)![1]);
}

function sessionIdOf(uri: string): string {
  return /\/\/[^/]+\/([^;]+);/.exec(uri)![1]!;
}

function nonceOf(challenge: ReceivedFrame): string {
  return /nonce="([^"]+)"/.exec(challenge.header('WWW-Authenticate')!)![1]!;
}

/** Resolves once `n` sessions have closed (an observer plugin, as a user would write one). */
function sessionCloseWatcher(): { plugin: RelayPlugin; closed(n: number): Promise<void> } {
  let count = 0;
  const waiters: Array<{ n: number; resolve: () => void }> = [];
  return {
    plugin: {
      name: 'test-session-watch',
      apply(relay: PluginHost) {
        relay.hooks.sessionClosed.tap('test-session-watch', () => {
          count++;
          for (const w of waiters.filter((x) => count >= x.n)) w.resolve();
        });
      },
    },
    closed(n) {
      if (count >= n) return Promise.resolve();
      return new Promise((resolve) => waiters.push({ n, resolve }));
    },
  };
}

describe('logging plugin', () => {
  const dir = mkdtempSync(join(tmpdir(), 'msrprelay-logging-'));
  const logFile = join(dir, 'logs', 'relay.log');
  const accFile = join(dir, 'acct', 'accounting.jsonl');
  const dbFile = join(dir, 'acct', 'accounting.db');
  const watch = sessionCloseWatcher();
  let t: TestRelay;
  const secrets: string[] = [];
  let alicePort = 0;
  let bobPort = 0;
  let malloryPort = 0;
  let aliceToken = '';

  before(async () => {
    t = await startTestRelay({
      users,
      plugins: [['logging', { level: 'debug', destination: logFile, accounting: { file: accFile, sql: { filename: dbFile } } }], watch.plugin],
    });
    const a = await MsrpTestClient.connect({ port: t.tcpPort, timeoutMs: 10000 });
    const b = await MsrpTestClient.connect({ port: t.tcpPort, timeoutMs: 10000 });
    const m = await MsrpTestClient.connect({ port: t.tcpPort, timeoutMs: 10000 });
    alicePort = portOf(a.uri);
    bobPort = portOf(b.uri);
    malloryPort = portOf(m.uri);
    const relayUri = 'msrp://example.com;tcp';
    const ra = await a.auth({ relayUri, username: 'alice', password: PASSWORD });
    const rb = await b.auth({ relayUri, username: 'bob', password: PASSWORD });
    const rm = await m.auth({ relayUri, username: 'alice', password: 'wrong-guess-77' });
    assert.equal(ra.status, 200);
    assert.equal(rb.status, 200);
    assert.equal(rm.status, 401);
    const ta = ra.usePath[0]!;
    const tb = rb.usePath[0]!;
    aliceToken = sessionIdOf(ta);
    secrets.push(aliceToken, sessionIdOf(tb), nonceOf(ra.challenge), nonceOf(rb.challenge), nonceOf(rm.challenge), PASSWORD, 'wrong-guess-77');

    // A known transfer: alice → bob 9 + 300 bytes (2 messages, 4 chunks), bob → alice 2 bytes.
    const m1 = await a.sendMessage({ toPath: [ta, tb, b.uri], body: 'Hello Bob' });
    const m2 = await a.sendMessage({ toPath: [ta, tb, b.uri], body: Buffer.alloc(300, 0x61), chunkSize: 100 });
    const m3 = await b.sendMessage({ toPath: [tb, ta, a.uri], body: 'Hi' });
    await b.waitForMessage(m1.messageId);
    await b.waitForMessage(m2.messageId);
    await a.waitForMessage(m3.messageId);

    await Promise.all([a.close(), b.close(), m.close()]);
    await watch.closed(2);
    await t.close();
  });

  after(async () => {
    await t.close();
  });

  it('writes one JSON object per line, with a level, a time and a message', () => {
    const lines = jsonLines(logFile);
    assert.ok(lines.length > 10, `only ${lines.length} lines`);
    for (const l of lines) {
      assert.ok(['trace', 'debug', 'info', 'warn', 'error', 'fatal'].includes(l.level), `level ${String(l.level)}`);
      assert.equal(typeof l.time, 'string');
      assert.equal(typeof l.msg, 'string');
      assert.equal(l.name, 'msrprelay');
    }
    // The core's own lines go through the plugin too (it is the relay's logger).
    assert.ok(lines.some((l) => l.msg === 'listening' && l.level === 'info' && l.port === t.tcpPort));
    assert.ok(lines.some((l) => l.level === 'debug' && l.msg === 'request'));
    assert.ok(lines.some((l) => l.level === 'warn' && l.msg === 'authentication failed' && l.status === 401 && l.user === 'alice'));
  });

  it('connection lines carry the connection id, session lines the masked session id and user', () => {
    const lines = jsonLines(logFile);
    const authOk = lines.filter((l) => l.msg === 'authenticated');
    assert.equal(authOk.length, 2);
    for (const l of authOk) {
      assert.match(l.conn, /^[0-9a-z]+$/);
      assert.match(l.session, /^[0-9A-Za-z]{4}…$/);
      assert.match(l.user, /^(alice|bob)@example\.com$/);
    }
    const aliceLines = lines.filter((l) => l.session === `${aliceToken.slice(0, 4)}…`);
    assert.ok(aliceLines.some((l) => l.msg === 'session closed' && l.bytesOut === 309 && l.messagesOut === 2));
    const closed = lines.filter((l) => l.msg === 'connection closed');
    assert.equal(new Set(closed.map((l) => l.conn)).size, closed.length);
    assert.ok(closed.length >= 3);
    // Request lines show the To-Path with the session-ids masked.
    const req = lines.find((l) => l.msg === 'request' && l.method === 'SEND');
    assert.ok(req !== undefined);
    assert.match(req.to, /\/[0-9A-Za-z]{4}…;tcp/);
  });

  it('no token, nonce, password or Authorization value appears in the log, the accounting file or the table', () => {
    const outputs = { log: readFileSync(logFile), accounting: readFileSync(accFile), sql: readFileSync(dbFile) };
    for (const [where, data] of Object.entries(outputs)) {
      for (const s of secrets) assert.equal(data.indexOf(s), -1, `${where} holds a secret (${s.slice(0, 3)}…)`);
      assert.equal(data.indexOf('Digest username'), -1, `${where} holds an Authorization value`);
      assert.equal(data.indexOf('response="'), -1, `${where} holds a Digest response`);
    }
  });

  it('accounting: an AUTH success record per client and the AUTH failure with user, domain, address and reason', () => {
    const recs = jsonLines(accFile);
    const ok = recs.filter((r) => r.type === 'auth' && r.result === 'success');
    assert.deepEqual(ok.map((r) => r.user).sort(), ['alice', 'bob']);
    const aliceOk = ok.find((r) => r.user === 'alice')!;
    assert.equal(aliceOk.domain, 'example.com');
    assert.equal(aliceOk.remoteAddress, '127.0.0.1');
    assert.equal(aliceOk.remotePort, alicePort);
    assert.equal(aliceOk.status, 200);
    const failed = recs.filter((r) => r.type === 'auth' && r.result === 'failure');
    assert.equal(failed.length, 1);
    assert.equal(failed[0]!.user, 'alice');
    assert.equal(failed[0]!.domain, 'example.com');
    assert.equal(failed[0]!.status, 401);
    assert.equal(failed[0]!.remoteAddress, '127.0.0.1');
    assert.equal(failed[0]!.remotePort, malloryPort);
    assert.ok(typeof failed[0]!.reason === 'string' && failed[0]!.reason.length > 0);
  });

  it('accounting: session start and end with both legs, bytes and messages each way, duration and close reason', () => {
    const recs = jsonLines(accFile);
    assert.equal(recs.filter((r) => r.type === 'session-start').length, 2);
    const ends = recs.filter((r) => r.type === 'session-end');
    assert.equal(ends.length, 2);
    const alice = ends.find((r) => r.user === 'alice')!;
    const bob = ends.find((r) => r.user === 'bob')!;
    assert.deepEqual(
      { bytesOut: alice.bytesOut, messagesOut: alice.messagesOut, bytesIn: alice.bytesIn, messagesIn: alice.messagesIn },
      { bytesOut: 309, messagesOut: 2, bytesIn: 2, messagesIn: 1 },
    );
    assert.deepEqual(
      { bytesOut: bob.bytesOut, messagesOut: bob.messagesOut, bytesIn: bob.bytesIn, messagesIn: bob.messagesIn },
      { bytesOut: 2, messagesOut: 1, bytesIn: 309, messagesIn: 2 },
    );
    assert.equal(alice.clientPort, alicePort);
    assert.equal(alice.farPort, bobPort);
    assert.equal(bob.clientPort, bobPort);
    assert.equal(bob.farPort, alicePort);
    assert.equal(alice.closeReason, 'owner-closed');
    assert.ok(alice.durationMs >= 0 && alice.durationMs === Date.parse(alice.endedAt) - Date.parse(alice.startedAt));
    assert.equal(alice.session, `${aliceToken.slice(0, 4)}…`);
  });

  it('accounting: the same records as rows of an SQLite table', async () => {
    const db = await new Promise<sqlite3.Database>((ok, fail) => {
      const d = new sqlite3.Database(dbFile, sqlite3.OPEN_READONLY, (err) => (err === null ? ok(d) : fail(err)));
    });
    try {
      const rows = await new Promise<Json[]>((ok, fail) => db.all('SELECT * FROM msrp_accounting ORDER BY id', (err, r: Json[]) => (err === null ? ok(r) : fail(err))));
      assert.deepEqual(
        rows.map((r) => r.type).sort(),
        ['auth', 'auth', 'auth', 'session-end', 'session-end', 'session-start', 'session-start'],
      );
      const end = rows.find((r) => r.type === 'session-end' && r.username === 'alice')!;
      assert.deepEqual([end.bytes_out, end.messages_out, end.bytes_in, end.messages_in, end.client_port, end.far_port], [309, 2, 2, 1, alicePort, bobPort]);
      const fail = rows.find((r) => r.type === 'auth' && r.result === 'failure')!;
      assert.deepEqual([fail.username, fail.domain, fail.status, fail.client_address], ['alice', 'example.com', 401, '127.0.0.1']);
    } finally {
      await new Promise<void>((ok) => db.close(() => ok()));
    }
  });
});
