/**
 * The throttle plugin: does a throttled transfer run at the configured rate, and what does the
 * plugin cost on the forwarding hot path?
 *
 *   node --import tsx bench/throttle.bench.ts
 *
 * 1. Rate: a 10 MiB message (one SEND chunk) from alice to bob through one relay with
 *    `bandwidth.perSession = { bytesPerSecond: RATE, burst: 64 KiB }`. Timed from the first byte
 *    written to the last byte received; the achieved rate is 10 MiB / time. Pass: within ±20%
 *    of RATE. Repeated 3 times. THROTTLE_BENCH_RATE (bytes/s) overrides RATE (default 4 MiB/s).
 * 2. Hot path: a 64 MiB message through the relay, without the plugin and with the plugin
 *    charging four buckets per slice (perSession, perUser, perIp, total) at rates far above what
 *    the machine reaches, so it never pauses: what is measured is the cost of the accounting.
 *    7 runs each, interleaved (the order flips every round), median MB/s (10^6 bytes/s) and the
 *    ratio on/off. On a shared machine the spread between runs is larger than the plugin's cost, so:
 * 3. Accounting alone: the same four-bucket Pacer.charge() called in a loop, ns per slice, and the
 *    slices per MB the relay really forwarded in (2), which give the cost per MB independent of noise.
 *
 * Clients, relay and Redis-free plugin all run in this process on loopback, so the numbers
 * include the test clients' framing and hashing; they compare, they do not promise.
 * Results go to bench/results/throttle.json.
 */

import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import { MsrpTestClient } from '../core/testing/client.ts';
import { startTestRelay, type TestRelay } from '../core/testing/harness.ts';
import type { ChunkContext } from '../core/types.ts';
import Throttle from '../plugins/throttle/index.ts';
import { Pacer } from '../plugins/throttle/pacer.ts';

const KiB = 1024;
const MiB = 1024 * KiB;
const RATE = Number(process.env['THROTTLE_BENCH_RATE'] ?? 4 * MiB);
const RATE_SIZE = 10 * MiB;
const BURST = 64 * KiB;
const HOT_SIZE = 64 * MiB;
const PIECE = 64 * KiB;
const RUNS = 7;
const users = [
  { username: 'alice', domain: 'example.com', password: 'secret' },
  { username: 'bob', domain: 'example.com', password: 'secret' },
];

/** Body bytes from a random pool (cheap to produce, so the sender is not the bottleneck). */
const pool = randomBytes(4 * MiB);
const source = (off: number, len: number): Buffer => {
  const at = off % pool.length;
  return at + len <= pool.length ? pool.subarray(at, at + len) : Buffer.concat([pool.subarray(at), pool.subarray(0, len - (pool.length - at))]);
};

async function transfer(t: TestRelay, size: number): Promise<number> {
  const relayUri = 'msrp://example.com;tcp';
  const a = await MsrpTestClient.connect({ port: t.tcpPort, storeBodies: false, timeoutMs: 120000 });
  const b = await MsrpTestClient.connect({ port: t.tcpPort, storeBodies: false, timeoutMs: 120000 });
  const ta = (await a.auth({ relayUri, username: 'alice', password: 'secret' })).usePath[0]!;
  const tb = (await b.auth({ relayUri, username: 'bob', password: 'secret' })).usePath[0]!;
  const started = performance.now();
  const sent = await a.streamMessage({ toPath: [ta, tb, b.uri], size, source, pieceSize: PIECE, failureReport: 'no' });
  const m = await b.waitForMessage(sent.messageId, 120000);
  const ms = performance.now() - started;
  if (!m.complete || m.sha256 !== sent.sha256) throw new Error('the message arrived damaged');
  await Promise.all([a.close(), b.close()]);
  return ms;
}

function median(xs: number[]): number {
  const s = [...xs].sort((x, y) => x - y);
  return s[Math.floor(s.length / 2)]!;
}

async function main(): Promise<void> {
  // ------------------------------------------------------------ 1. rate
  const throttled = await startTestRelay({ users, plugins: [[Throttle, { bandwidth: { perSession: { bytesPerSecond: RATE, burst: BURST } } }]] });
  const rateRuns: Array<{ seconds: number; bytesPerSecond: number; deviation: number }> = [];
  for (let i = 0; i < 3; i++) {
    const ms = await transfer(throttled, RATE_SIZE);
    const achieved = RATE_SIZE / (ms / 1000);
    rateRuns.push({ seconds: ms / 1000, bytesPerSecond: Math.round(achieved), deviation: achieved / RATE - 1 });
  }
  await throttled.close();
  const expectedSeconds = RATE_SIZE / RATE;
  console.log(`rate: 10 MiB at ${(RATE / MiB).toFixed(2)} MiB/s (burst 64 KiB), expected ~${expectedSeconds.toFixed(2)} s`);
  for (const r of rateRuns) {
    const ok = Math.abs(r.deviation) <= 0.2;
    console.log(
      `  ${r.seconds.toFixed(3)} s  ${(r.bytesPerSecond / MiB).toFixed(3)} MiB/s  ${(r.deviation * 100).toFixed(1)}%  ${ok ? 'within ±20%' : 'OUTSIDE ±20%'}`,
    );
  }

  // ------------------------------------------------------------ 2. hot path
  const huge = { bytesPerSecond: 1e12, burst: 1e12 };
  const off = await startTestRelay({ users });
  const on = await startTestRelay({
    users,
    plugins: [[Throttle, { bandwidth: { perSession: huge, perUser: huge, perIp: huge, total: huge } }]],
  });
  await transfer(off, 8 * MiB);
  await transfer(on, 8 * MiB);
  let slices = 0;
  on.relay.hooks.bodyForwarded.tap('bench', () => void slices++);
  const offRuns: number[] = [];
  const onRuns: number[] = [];
  const mbps = async (t: TestRelay): Promise<number> => HOT_SIZE / 1e6 / ((await transfer(t, HOT_SIZE)) / 1000);
  for (let i = 0; i < RUNS; i++) {
    if (i % 2 === 0) {
      offRuns.push(await mbps(off));
      onRuns.push(await mbps(on));
    } else {
      onRuns.push(await mbps(on));
      offRuns.push(await mbps(off));
    }
  }
  await off.close();
  await on.close();
  const offMed = median(offRuns);
  const onMed = median(onRuns);
  console.log(`hot path: 64 MiB through the relay, median of ${RUNS} (MB/s)`);
  console.log(`  throttle off  ${offMed.toFixed(1)}   runs ${offRuns.map((x) => x.toFixed(0)).join(' ')}`);
  console.log(`  throttle on   ${onMed.toFixed(1)}   runs ${onRuns.map((x) => x.toFixed(0)).join(' ')}  (4 buckets per slice, never pausing)`);
  console.log(`  on/off ratio  ${(onMed / offMed).toFixed(3)}`);

  // ------------------------------------------------------------ 3. accounting alone
  const slicesPerMB = slices / ((RUNS * HOT_SIZE) / 1e6);
  const pacer = new Pacer({
    bandwidth: { perSession: huge, perUser: huge, perIp: huge, total: huge },
    reason: 'bench',
    userRate: () => huge,
    exempt: () => false,
    onPause: () => {},
  });
  const identity = { username: 'alice', domain: 'example.com', realm: 'example.com', method: 'digest', attributes: {} };
  const chunk = {
    connection: { direction: 'inbound', remoteAddress: '127.0.0.1' },
    session: { id: 'abcdefghijklmnop', identity },
  } as unknown as ChunkContext;
  const N = 2_000_000;
  for (let i = 0; i < N / 10; i++) pacer.charge(chunk, 65536);
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < N; i++) pacer.charge(chunk, 65536);
  const nsPerSlice = Number(process.hrtime.bigint() - t0) / N;
  pacer.close();
  const usPerMB = (nsPerSlice * slicesPerMB) / 1000;
  console.log(`accounting: Pacer.charge() with 4 buckets ${nsPerSlice.toFixed(0)} ns per slice; the relay forwarded ${slicesPerMB.toFixed(1)} slices per MB`);
  console.log(`  = ${usPerMB.toFixed(1)} µs per MB, ${((usPerMB * offMed) / 1e4).toFixed(3)}% of the time per MB at the measured off rate`);

  const out = fileURLToPath(new URL('./results/', import.meta.url));
  mkdirSync(out, { recursive: true });
  writeFileSync(
    `${out}throttle.json`,
    `${JSON.stringify(
      {
        date: new Date().toISOString(),
        node: process.version,
        cpu: cpus()[0]?.model,
        cores: cpus().length,
        rate: { configuredBytesPerSecond: RATE, burst: BURST, size: RATE_SIZE, runs: rateRuns },
        hotPath: { size: HOT_SIZE, offMBps: offRuns, onMBps: onRuns, medianOff: offMed, medianOn: onMed, ratio: onMed / offMed },
        accounting: { nsPerSlice, slicesPerMB, usPerMB },
      },
      null,
      2,
    )}\n`,
  );
}

await main();
