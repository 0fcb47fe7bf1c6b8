/**
 * What the logging and metrics plugins cost on the forwarding path.
 *
 *   node --import tsx bench/plugins-cost.bench.ts
 *
 * One relay on loopback, two clients (alice → bob through two sessions of the relay), run
 * with no observer plugin ("off") and with logging (info, to a file, accounting records to a
 * file) plus metrics (port 0) ("on"). Two cases:
 *   - bulk: one message of BULK_MIB MiB in 1 MiB chunks (a file transfer): MB/s of body;
 *   - small: SMALL_COUNT messages of 100 bytes, pipelined (Failure-Report no): messages/s.
 * Each case runs REPEATS times per setup, alternating off/on; the median is reported with the
 * on/off ratio. Loopback on a shared machine: the numbers are indicative, the ratio is the point.
 * PLUGINS_BENCH_REPEATS, PLUGINS_BENCH_BULK_MIB and PLUGINS_BENCH_SMALL override the sizes.
 * Results go to bench/results/plugins-cost.json.
 */

import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MsrpTestClient, seededSource } from '../core/testing/client.ts';
import { startTestRelay, type TestRelay } from '../core/testing/harness.ts';
import type { PluginEntry } from '../core/config/schema.ts';

const REPEATS = Number(process.env['PLUGINS_BENCH_REPEATS'] ?? 3);
const BULK_MIB = Number(process.env['PLUGINS_BENCH_BULK_MIB'] ?? 64);
const SMALL_COUNT = Number(process.env['PLUGINS_BENCH_SMALL'] ?? 5000);
const users = [
  { username: 'alice', domain: 'example.com', password: 'bench' },
  { username: 'bob', domain: 'example.com', password: 'bench' },
];

type Setup = 'off' | 'on';

async function withRelay<T>(setup: Setup, run: (t: TestRelay, a: MsrpTestClient, b: MsrpTestClient, ab: string[]) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), 'msrprelay-bench-'));
  const plugins: PluginEntry[] =
    setup === 'on'
      ? [
          ['logging', { level: 'info', destination: join(dir, 'relay.log'), accounting: { file: join(dir, 'accounting.jsonl') } }],
          ['metrics', { port: 0 }],
        ]
      : [];
  const t = await startTestRelay({ users, plugins });
  const a = await MsrpTestClient.connect({ port: t.tcpPort, timeoutMs: 120000 });
  const b = await MsrpTestClient.connect({ port: t.tcpPort, timeoutMs: 120000, storeBodies: false });
  try {
    const relayUri = 'msrp://example.com;tcp';
    const ra = await a.auth({ relayUri, username: 'alice', password: 'bench' });
    const rb = await b.auth({ relayUri, username: 'bob', password: 'bench' });
    return await run(t, a, b, [ra.usePath[0]!, rb.usePath[0]!, b.uri]);
  } finally {
    await Promise.all([a.close(), b.close()]);
    await t.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** MB/s (10^6 octets of body) of one large message. */
function bulk(setup: Setup): Promise<number> {
  return withRelay(setup, async (_t, a, b, ab) => {
    const size = BULK_MIB * 1024 * 1024;
    const started = process.hrtime.bigint();
    const { messageId } = await a.streamMessage({ toPath: ab, size, source: seededSource(7), chunkSize: 1024 * 1024, pieceSize: 256 * 1024 });
    await b.waitForMessage(messageId);
    const s = Number(process.hrtime.bigint() - started) / 1e9;
    return size / 1e6 / s;
  });
}

/** Messages/s of small pipelined messages. */
function small(setup: Setup): Promise<number> {
  return withRelay(setup, async (_t, a, b, ab) => {
    const body = Buffer.alloc(100, 0x61);
    // Warm the path once.
    await b.waitForMessage((await a.sendMessage({ toPath: ab, body })).messageId);
    const started = process.hrtime.bigint();
    let last = '';
    for (let i = 0; i < SMALL_COUNT; i++) last = (await a.sendMessage({ toPath: ab, body, failureReport: 'no' })).messageId;
    await b.waitForMessage(last);
    const s = Number(process.hrtime.bigint() - started) / 1e9;
    return SMALL_COUNT / s;
  });
}

function median(xs: number[]): number {
  const s = [...xs].sort((x, y) => x - y);
  return s[Math.floor(s.length / 2)]!;
}

async function main(): Promise<void> {
  const results: Record<string, Record<Setup, number[]>> = { bulkMBps: { off: [], on: [] }, smallMsgps: { off: [], on: [] } };
  for (let i = 0; i < REPEATS; i++) {
    for (const setup of ['off', 'on'] as const) {
      results.bulkMBps![setup].push(await bulk(setup));
      results.smallMsgps![setup].push(await small(setup));
    }
  }
  const summary = Object.fromEntries(
    Object.entries(results).map(([k, r]) => {
      const off = median(r.off);
      const on = median(r.on);
      return [k, { off: Math.round(off * 10) / 10, on: Math.round(on * 10) / 10, ratio: Math.round((on / off) * 1000) / 1000, runs: r }];
    }),
  );
  const report = {
    date: new Date().toISOString(),
    node: process.version,
    cpus: cpus().length,
    repeats: REPEATS,
    bulkMiB: BULK_MIB,
    smallCount: SMALL_COUNT,
    results: summary,
  };
  console.log('case            off        on      on/off');
  for (const [k, v] of Object.entries(summary)) {
    console.log(`${k.padEnd(12)} ${String(v.off).padStart(9)} ${String(v.on).padStart(9)}   ${v.ratio}`);
  }
  const dir = fileURLToPath(new URL('./results/', import.meta.url));
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'plugins-cost.json'), `${JSON.stringify(report, null, 2)}\n`);
}

await main();
