// The metrics plugin through a real relay: exact counts on /metrics after known traffic,
// /status.json, and the status page as a person sees it in headless Chromium.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { chromium, type Browser } from 'playwright-core';
import { MsrpTestClient } from '../../core/testing/client.ts';
import { startTestRelay, type TestRelay } from '../../core/testing/harness.ts';
import MetricsPlugin from '../../plugins/metrics/index.ts';

const users = [
  { username: 'alice', domain: 'example.com', password: 'secret' },
  { username: 'bob', domain: 'example.com', password: 'secret' },
];

/** The page's document as functions run in the browser see it (the project compiles without DOM types). */
interface PageWindow {
  document: { getElementById(id: string): { textContent: string | null; getAttribute(name: string): string | null } | null };
}

/** `name{a="x",b="y"}` → value, labels sorted by name. */
function parseMetrics(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (m === null) continue;
    const labels = (m[2] ?? '')
      .split(/,(?=[a-zA-Z_]+=")/)
      .filter((x) => x !== '')
      .sort()
      .join(',');
    out.set(labels === '' ? m[1]! : `${m[1]}{${labels}}`, Number(m[3]));
  }
  return out;
}

/** The parsed /metrics of the metrics server on `port`. */
async function scrape(port: number): Promise<Map<string, number>> {
  return parseMetrics(await (await fetch(`http://127.0.0.1:${port}/metrics`)).text());
}

/** A `direction`-labelled series summed over both directions (an absent one counts 0). */
function bothWays(v: Map<string, number>, name: string): number {
  return (v.get(`${name}{direction="inward"}`) ?? 0) + (v.get(`${name}{direction="outward"}`) ?? 0);
}

describe('metrics plugin', () => {
  let t: TestRelay;
  let base = '';
  let a: MsrpTestClient;
  let b: MsrpTestClient;
  let m: MsrpTestClient;
  let browser: Browser | undefined;

  before(async () => {
    t = await startTestRelay({ users, plugins: [['metrics', { port: 0 }]] });
    const addr = MetricsPlugin.address(t.relay);
    assert.ok(addr !== undefined && addr.port > 0);
    base = `http://127.0.0.1:${addr.port}`;

    a = await MsrpTestClient.connect({ port: t.tcpPort, timeoutMs: 10000 });
    b = await MsrpTestClient.connect({ port: t.tcpPort, timeoutMs: 10000 });
    m = await MsrpTestClient.connect({ port: t.tcpPort, timeoutMs: 10000 });
    const relayUri = 'msrp://example.com;tcp';
    const ra = await a.auth({ relayUri, username: 'alice', password: 'secret' });
    const rb = await b.auth({ relayUri, username: 'bob', password: 'secret' });
    const rm = await m.auth({ relayUri, username: 'alice', password: 'not-it' });
    assert.deepEqual([ra.status, rb.status, rm.status], [200, 200, 401]);
    const ta = ra.usePath[0]!;
    const tb = rb.usePath[0]!;
    // 5 SEND chunks: alice → bob 9 bytes, then 300 bytes in 3 chunks; bob → alice 2 bytes.
    const m1 = await a.sendMessage({ toPath: [ta, tb, b.uri], body: 'Hello Bob' });
    const m2 = await a.sendMessage({ toPath: [ta, tb, b.uri], body: Buffer.alloc(300, 0x62), chunkSize: 100 });
    const m3 = await b.sendMessage({ toPath: [tb, ta, a.uri], body: 'Hi' });
    await b.waitForMessage(m1.messageId);
    await b.waitForMessage(m2.messageId);
    await a.waitForMessage(m3.messageId);
  });

  after(async () => {
    await browser?.close();
    await Promise.all([a.close(), b.close(), m.close()]);
    await t.close();
  });

  it('serves /metrics with the exact counts of the traffic', async () => {
    const res = await fetch(`${base}/metrics`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain/);
    const v = parseMetrics(await res.text());
    const get = (k: string) => v.get(k);
    assert.equal(get('msrprelay_auth_total{result="success",status="200"}'), 2);
    assert.equal(get('msrprelay_auth_total{result="failure",status="401"}'), 1);
    assert.equal(get('msrprelay_requests_total{method="SEND"}'), 5);
    assert.equal(get('msrprelay_requests_total{method="AUTH"}'), 6);
    assert.equal(get('msrprelay_responses_total{method="SEND",status="200"}'), 5);
    assert.equal(get('msrprelay_responses_total{method="AUTH",status="200"}'), 2);
    assert.equal(get('msrprelay_responses_total{method="AUTH",status="401"}'), 4);
    // Both clients use this relay: every chunk is handed over toward the receiving session's owner.
    assert.equal(bothWays(v, 'msrprelay_forwarded_bytes_total'), 311);
    assert.equal(bothWays(v, 'msrprelay_forwarded_messages_total'), 3);
    assert.equal(get('msrprelay_chunk_size_bytes_count{direction="inward"}'), 5);
    assert.equal(get('msrprelay_chunk_size_bytes_sum{direction="inward"}'), 311);
    assert.equal(get('msrprelay_chunk_size_bytes_bucket{direction="inward",le="64"}'), 2);
    assert.equal(get('msrprelay_forward_duration_seconds_count{method="SEND"}'), 5);
    assert.equal(get('msrprelay_active_sessions'), 2);
    assert.equal(get('msrprelay_sessions_total'), 2);
    assert.equal(get('msrprelay_open_connections{direction="inbound",transport="tcp"}'), 3);
    assert.equal(get('msrprelay_connections_total{direction="inbound",transport="tcp"}'), 3);
    assert.equal(get('msrprelay_open_connections_all'), 3);
    assert.equal(get('msrprelay_throttle_hits_total{kind="any"}'), 0);
    // Event-loop lag comes with the default process metrics, in this relay's registry.
    assert.ok(v.has('nodejs_eventloop_lag_seconds'));
  });

  it('keeps each relay in its own registry', async () => {
    const other = await startTestRelay({ users, plugins: [['metrics', { port: 0 }]] });
    try {
      const v = await scrape(MetricsPlugin.address(other.relay)!.port);
      assert.equal(v.get('msrprelay_auth_total{result="success",status="200"}'), 0);
      assert.equal(v.get('msrprelay_requests_total{method="SEND"}'), undefined);
    } finally {
      await other.close();
    }
  });

  it('serves /status.json and answers 404 elsewhere', async () => {
    const s = (await (await fetch(`${base}/status.json`)).json()) as Record<string, any>;
    assert.deepEqual(s.sessions, { active: 2, total: 2 });
    assert.deepEqual(s.auth, { success: 2, failure: 1 });
    assert.equal(s.requests.SEND, 5);
    assert.equal(s.bytes.inward + s.bytes.outward, 311);
    assert.equal((await fetch(`${base}/nope`)).status, 404);
    assert.equal((await fetch(`${base}/metrics`, { method: 'POST' })).status, 405);
  });

  it('the status page shows the live session count and a throughput sparkline in Chromium', async () => {
    browser = await chromium.launch({
      executablePath: '/usr/bin/chromium',
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    const page = await browser.newPage();
    const failed: string[] = [];
    page.on('requestfailed', (r) => failed.push(r.url()));
    page.on('pageerror', (e) => failed.push(e.message));
    await page.goto(`${base}/`);
    assert.equal(await page.title(), 'msrprelay status');
    assert.equal(await page.locator('#sessions').textContent(), '2');
    assert.equal(await page.locator('#send').textContent(), '5');
    assert.equal(await page.locator('svg#sparkline').count(), 1);
    assert.match((await page.locator('svg#sparkline polyline').getAttribute('points')) ?? '', /^[\d.]+,[\d.]+( [\d.]+,[\d.]+)+$/);

    // Live: bob leaves, the page learns it from status.json without a reload.
    await b.close();
    await page.waitForFunction(() => (globalThis as unknown as PageWindow).document.getElementById('sessions')?.textContent === '1', undefined, { timeout: 15000 });
    // The sparkline grows one point per sampled second.
    await page.waitForFunction(() => ((globalThis as unknown as PageWindow).document.getElementById('spark')?.getAttribute('points') ?? '').split(' ').length >= 3, undefined, { timeout: 15000 });
    assert.deepEqual(failed, []);
  });
});

describe('metrics plugin with the throttle plugin', () => {
  it('counts throttle hits by kind (a message over the size limit)', async () => {
    const t = await startTestRelay({ users, plugins: [['throttle', { users: { maxMessageSize: 100 } }], ['metrics', { port: 0 }]] });
    const a = await MsrpTestClient.connect({ port: t.tcpPort, timeoutMs: 10000 });
    const b = await MsrpTestClient.connect({ port: t.tcpPort, timeoutMs: 10000 });
    try {
      const relayUri = 'msrp://example.com;tcp';
      const ta = (await a.auth({ relayUri, username: 'alice', password: 'secret' })).usePath[0]!;
      const tb = (await b.auth({ relayUri, username: 'bob', password: 'secret' })).usePath[0]!;
      const { responses } = await a.sendMessage({ toPath: [ta, tb, b.uri], body: Buffer.alloc(200, 0x63) });
      assert.equal(responses[0]!.status, 413);
      const v = await scrape(MetricsPlugin.address(t.relay)!.port);
      assert.equal(v.get('msrprelay_throttle_hits_total{kind="size"}'), 1);
      assert.equal(v.get('msrprelay_responses_total{method="SEND",status="413"}'), 1);
    } finally {
      await Promise.all([a.close(), b.close()]);
      await t.close();
    }
  });
});

describe('metrics plugin across a reload', () => {
  it('keeps serving on the same port with the counts it had', async () => {
    const t = await startTestRelay({ users, plugins: [['metrics', { port: 0 }]] });
    const a = await MsrpTestClient.connect({ port: t.tcpPort, timeoutMs: 10000 });
    try {
      assert.equal((await a.auth({ relayUri: 'msrp://example.com;tcp', username: 'alice', password: 'secret' })).status, 200);
      const before = MetricsPlugin.address(t.relay)!.port;
      await t.relay.reload(t.relay.config);
      assert.equal(MetricsPlugin.address(t.relay)!.port, before);
      const v = await scrape(before);
      assert.equal(v.get('msrprelay_auth_total{result="success",status="200"}'), 1);
      assert.equal(v.get('msrprelay_active_sessions'), 1);
    } finally {
      await a.close();
      await t.close();
    }
  });
});

describe('metrics plugin: why connections closed', () => {
  it('counts closes by reason, including the relay\'s own (a framing error)', async () => {
    const t = await startTestRelay({ users, plugins: [['metrics', { port: 0 }]] });
    try {
      const { connect } = await import('node:net');
      const s = connect({ host: '127.0.0.1', port: t.tcpPort });
      s.on('error', () => {});
      await new Promise((r) => s.once('connect', r));
      // not MSRP: the relay closes the connection.
      s.write('GET / HTTP/1.1\r\n\r\n');
      await new Promise((r) => s.once('close', r));
      // The relay's side of the socket may close a moment after the client's.
      const key = 'msrprelay_connections_closed_total{direction="inbound",reason="protocol-error"}';
      let v = await scrape(MetricsPlugin.address(t.relay)!.port);
      for (let i = 0; i < 100 && !v.has(key); i++) {
        await new Promise((r) => setTimeout(r, 20));
        v = await scrape(MetricsPlugin.address(t.relay)!.port);
      }
      assert.equal(v.get(key), 1);
    } finally {
      await t.close();
    }
  });
});
