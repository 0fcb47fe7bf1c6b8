/**
 * latency: one session, ping-pong. A sends a 100-octet SEND to B; when B has it,
 * B answers 200 and sends one back to A; when A has that, the round trip is
 * timed and the next one starts. A round trip crosses the relay twice each way
 * (both hops of both directions live on the one relay).
 *
 * Steady state is what is timed: round trips first run for WARMUP_MS, 5 s (and at least a
 * tenth of `roundTrips`) without being counted, the same for every target. A relay on a
 * JIT runtime runs its first few thousand messages in unoptimised code; a compiled one
 * (Kamailio) needs no warm-up and loses nothing by it. The warm-up's own p99 is reported
 * too, as `cold p99 ms`, so a slow start is not hidden.
 *
 * 20,000 round trips are timed by default (about 5 s). With 2,000 (half a second) the p99 is
 * the 20th slowest round trip and moved more between consecutive windows of one run than
 * between targets: measured here on one relay in steady state, the p99 of successive
 * 2,000-round-trip windows went 0.38-0.62 ms, and Kamailio's 0.44-0.62 ms.
 */

import { formatRequest, newTransactionId } from '../../core/protocol/message.ts';
import { Meter, nowNs } from '../meter.ts';
import { latencySummary } from '../stats.ts';
import { pathAtoB, pathBtoA } from '../targets/target.ts';
import type { Scenario } from './scenario.ts';

/**
 * Round trips run this long (and at least a tenth of them) before any is counted. Measured on
 * the 2-core machine: after 1.5 s of round trips this relay's p99 was still 1.2 ms (V8 still
 * compiling on a background thread, which competes for the two cores), from about 5 s on it
 * stays at 0.47-0.56 ms.
 */
const WARMUP_MS = 5000;

export const latency: Scenario = {
  name: 'latency',
  metrics: [
    { key: 'p50 ms', unit: 'ms', higherIsBetter: false, perCpu: false },
    { key: 'p99 ms', unit: 'ms', higherIsBetter: false, perCpu: false },
    { key: 'cold p99 ms', unit: 'ms', higherIsBetter: false, perCpu: false },
  ],
  variants: (o) => [{ name: 'ping-pong', params: { roundTrips: o.roundTrips } }],
  async run(target, _spec, v, o) {
    const p = await target.pair();
    const total = v.params['roundTrips']!;
    const minWarm = Math.floor(total / 10);
    let warmUntil = 0n;
    let warm = Number.MAX_SAFE_INTEGER;
    const cold: number[] = [];
    const body = Buffer.alloc(o.messageSize, 0x62);
    const ab = pathAtoB(p);
    const ba = pathBtoA(p);
    const rtts: number[] = [];
    const failures: string[] = [];
    let n = 0;
    let t = 0n;
    const send = (from: typeof p.a, toPath: string[]) => {
      const tid = newTransactionId();
      from.ep.write(
        formatRequest({
          tid,
          method: 'SEND',
          toPath,
          fromPath: [from.uri],
          headers: [['Message-ID', `rt${n}x${tid.slice(0, 8)}`], ['Byte-Range', `1-${body.length}/${body.length}`], ['Content-Type', 'text/plain']],
          body,
        }),
      );
    };
    let meter: Meter | undefined;
    const done = new Promise<void>((resolve, reject) => {
      p.b.ep.sink = {
        requestEnd(h) {
          if (h.method === 'SEND') send(p.b, ba);
        },
        closed: () => reject(new Error('B was disconnected')),
      };
      p.a.ep.sink = {
        requestEnd(h) {
          if (h.method !== 'SEND') return;
          const now = nowNs();
          if (n >= warm) rtts.push(Number(now - t) / 1e6);
          else cold.push(Number(now - t) / 1e6);
          n++;
          if (warm === Number.MAX_SAFE_INTEGER && n >= minWarm && now >= warmUntil) {
            warm = n;
            meter = new Meter(target.pids);
          }
          if (n >= total + warm) {
            resolve();
            return;
          }
          t = nowNs();
          send(p.a, ab);
        },
        closed: () => reject(new Error('A was disconnected')),
      };
    });
    t = nowNs();
    warmUntil = t + BigInt(WARMUP_MS) * 1_000_000n;
    send(p.a, ab);
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        done,
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`timed out after ${n} round trips`)), 60_000 + total * 20);
        }),
      ]);
    } catch (e) {
      failures.push((e as Error).message);
    } finally {
      clearTimeout(timer);
    }
    const metered = (meter ?? new Meter(target.pids)).stop();
    p.a.ep.sink = {};
    p.b.ep.sink = {};
    p.a.ep.destroy();
    p.b.ep.destroy();
    const lat = latencySummary(rtts);
    const coldLat = latencySummary(cold);
    return {
      metrics: { 'p50 ms': lat.p50, 'p99 ms': lat.p99, 'max ms': lat.max, 'round trips/s': rtts.length / metered.seconds, 'cold p99 ms': coldLat.p99, 'warm-up round trips': cold.length },
      metered,
      failures,
    };
  },
};
