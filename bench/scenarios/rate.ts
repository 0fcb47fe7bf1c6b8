/**
 * rate: many sessions sending small messages. `pairs` session pairs (A_i -> B_i),
 * each keeping `window` SENDs of `messageSize` octets in flight: A_i sends the
 * next one when one has been both delivered to B_i and answered 200 to A_i.
 * Every pair sends for `duration` seconds, then the run waits for what is in
 * flight. Messages/s = SENDs delivered to the B side over the time to the last
 * delivery; latency = A's write to B's end-line of the same Message-ID (one
 * process, one clock), p50/p99/max over every message.
 */

import type { FrameHead } from '../../core/protocol/framer.ts';
import { formatRequest, getHeader, newTransactionId } from '../../core/protocol/message.ts';
import { Meter, nowNs } from '../meter.ts';
import { latencySummary } from '../stats.ts';
import { pathAtoB, type Pair } from '../targets/target.ts';
import type { Scenario } from './scenario.ts';

const OPEN_CONCURRENCY = 20;
const DRAIN_MS = 15_000;

export async function openPairs(target: { pair(): Promise<Pair> }, n: number): Promise<Pair[]> {
  const out: Pair[] = [];
  for (let i = 0; i < n; i += OPEN_CONCURRENCY) {
    const batch = await Promise.all(Array.from({ length: Math.min(OPEN_CONCURRENCY, n - i) }, () => target.pair()));
    out.push(...batch);
  }
  return out;
}

export const rate: Scenario = {
  name: 'rate',
  metrics: [
    { key: 'msg/s', unit: 'msg/s', higherIsBetter: true, perCpu: true },
    { key: 'p50 ms', unit: 'ms', higherIsBetter: false, perCpu: false },
    { key: 'p99 ms', unit: 'ms', higherIsBetter: false, perCpu: false },
    { key: 'max ms', unit: 'ms', higherIsBetter: false, perCpu: false },
  ],
  warmup: (o) => ({ ...o, duration: Math.min(o.duration, 2) }),
  variants: (o) => [{ name: `${o.pairs}x${o.window}`, params: { pairs: o.pairs, window: o.window } }],
  async run(target, _spec, v, o) {
    const pairs = await openPairs(target, v.params['pairs']!);
    const window = v.params['window']!;
    const body = Buffer.alloc(o.messageSize, 0x61);
    const failures: string[] = [];
    const latencies: number[] = [];
    let delivered = 0;
    let outstanding = 0;
    let stopping = false;
    let lastDelivery = 0n;
    let drained: (() => void) | undefined;
    let errors = 0;

    const lanes = pairs.map((p, i) => {
      const lane = { sent: 0, delivered: 0, acked: 0, sentAt: new Map<string, bigint>(), acks: new Set<string>(), pump: () => {} };
      const toPath = pathAtoB(p);
      const fromPath = [p.a.uri];
      lane.pump = () => {
        while (!stopping && lane.sent - Math.min(lane.delivered, lane.acked) < window) {
          const tid = newTransactionId();
          const mid = `m${i}x${lane.sent}`;
          lane.acks.add(tid);
          lane.sentAt.set(mid, nowNs());
          lane.sent++;
          outstanding++;
          p.a.ep.write(
            formatRequest({ tid, method: 'SEND', toPath, fromPath, headers: [['Message-ID', mid], ['Byte-Range', `1-${body.length}/${body.length}`], ['Content-Type', 'text/plain']], body }),
          );
        }
      };
      p.b.ep.sink = {
        requestEnd(h: FrameHead) {
          if (h.method !== 'SEND') return;
          const t = lane.sentAt.get(getHeader(h.headers, 'Message-ID') ?? '');
          if (t === undefined) return;
          lane.sentAt.delete(getHeader(h.headers, 'Message-ID') ?? '');
          const now = nowNs();
          latencies.push(Number(now - t) / 1e6);
          lastDelivery = now;
          lane.delivered++;
          delivered++;
          outstanding--;
          if (stopping && outstanding === 0) drained?.();
          lane.pump();
        },
      };
      p.a.ep.sink = {
        response(h) {
          if (!lane.acks.delete(h.tid)) return;
          if (h.status !== 200) errors++;
          lane.acked++;
          lane.pump();
        },
      };
      return lane;
    });

    const meter = new Meter(target.pids);
    const t0 = nowNs();
    for (const l of lanes) l.pump();
    await new Promise((r) => setTimeout(r, o.duration * 1000));
    stopping = true;
    if (outstanding > 0) {
      await Promise.race([
        new Promise<void>((r) => (drained = r)),
        new Promise<void>((r) => setTimeout(r, DRAIN_MS).unref()),
      ]);
    }
    const metered = meter.stop(lastDelivery === 0n ? nowNs() : lastDelivery);
    if (outstanding > 0) failures.push(`${outstanding} SENDs were never delivered`);
    if (errors > 0) failures.push(`${errors} SENDs were answered with an error`);
    for (const p of pairs) {
      p.a.ep.destroy();
      p.b.ep.destroy();
    }
    const lat = latencySummary(latencies);
    const seconds = Number((lastDelivery === 0n ? nowNs() : lastDelivery) - t0) / 1e9;
    return {
      metrics: { 'msg/s': delivered / seconds, 'p50 ms': lat.p50, 'p99 ms': lat.p99, 'max ms': lat.max, delivered },
      metered,
      failures,
    };
  },
};
