/**
 * idle: `idleSessions` authenticated sessions held open at once. Memory of the
 * relay's processes (Pss, see process-stats.ts) is read before the first
 * connection and again once every session is up and the relay had a few seconds
 * to settle; octets per session = the difference over the number of sessions.
 * Memory is also read halfway (after the first half of the sessions and a settle):
 * `marginal B/session` is what the second half cost per session, i.e. what one more
 * session costs without the fixed growth any process shows under a burst of setups.
 * Then the sessions are held `idleHold` seconds (60 by default) and memory read once
 * more: `held B/session`, what holding them costs once the setup burst is over. A
 * Node relay grows its young generation and old-space reserve during the burst and
 * gives them back only when V8's memory reducer runs, about 37 s after a full collection
 * (seen with --trace-gc as `Mark-Compact (reduce)`), and only if the setup caused one
 * (10,000 sessions do, 3,000 do not: then `held` equals the first reading). A relay holds
 * sessions for minutes, so that is the figure an operator sees. Kamailio does not change.
 * A freshly started Node relay shrinks the same way when idle (measured: 41 MiB 3 s after
 * start, 31 MiB from 18 s on; two workers 98 and 68 MiB), so with a hold the first reading
 * waits until the relay has idled 30 s too: both readings are then of a settled process.
 * Then `idleSamples` SENDs between random pairs of those sessions check that
 * they all still work.
 *
 * Sessions sit `idlePerConnection` to a connection (default one: each client its
 * own connection, as msrplib does); a target that cannot hold that many
 * connections (Kamailio: 8192) gets more sessions per connection, and the result
 * says so. Through the raw pipe a "session" is one paired connection.
 */

import { setTimeout as sleep } from 'node:timers/promises';
import { formatRequest, getHeader, newTransactionId } from '../../core/protocol/message.ts';
import type { Endpoint } from '../loadgen/endpoint.ts';
import { Meter, nowNs } from '../meter.ts';
import { memoryBytes } from '../process-stats.ts';
import type { Leg, Pair, RunningTarget } from '../targets/target.ts';
import type { Scenario } from './scenario.ts';

const OPEN_CONCURRENCY = 50;
const SETTLE_MS = 3000;

function settle(): Promise<void> {
  return sleep(SETTLE_MS);
}

async function openRelaySessions(target: RunningTarget, n: number, perConn: number, log: (m: string) => void): Promise<Leg[]> {
  const legs: Leg[] = [];
  const conns = Math.ceil(n / perConn);
  let next = 0;
  const worker = async () => {
    while (next < conns) {
      const c = next++;
      const user = c % 2 === 0 ? 'a' : 'b';
      const first = await target.session!(user);
      legs.push(first);
      const more = Math.min(perConn, n - c * perConn) - 1;
      for (let k = 0; k < more; k++) legs.push(await target.session!(user, first.ep));
      if (c > 0 && c % 2000 === 0) log(`  ${legs.length} sessions up`);
    }
  };
  await Promise.all(Array.from({ length: OPEN_CONCURRENCY }, worker));
  return legs;
}

export const idle: Scenario = {
  name: 'idle',
  metrics: [
    { key: 'B/session', unit: 'B', higherIsBetter: false, perCpu: false },
    { key: 'held B/session', unit: 'B', higherIsBetter: false, perCpu: false },
    { key: 'marginal B/session', unit: 'B', higherIsBetter: false, perCpu: false },
    { key: 'sessions/s', unit: '/s', higherIsBetter: true, perCpu: false },
  ],
  variants: (o) => [{ name: `${o.idleSessions} sessions`, params: { sessions: o.idleSessions } }],
  notApplicable(_v, spec) {
    return spec.kind === 'direct' ? 'no relay process to measure' : undefined;
  },
  async run(target, spec, v, o) {
    const n = v.params['sessions']!;
    let perConn = Math.max(1, o.idlePerConnection);
    if (spec.maxConnections !== undefined && Math.ceil(n / perConn) > spec.maxConnections) perConn = Math.ceil(n / spec.maxConnections);
    const failures: string[] = [];
    if (o.idleHold > 0) await sleep(Math.min(o.idleHold, 30) * 1000);
    else await settle();
    const pids = target.pids();
    const before = memoryBytes(pids);
    const meter = new Meter(target.pids);
    // Sessions open in two halves with a reading between them: the second half's memory over
    // its sessions is the marginal cost of one more session, without what a process holds
    // once whatever the number (code, the runtime's young generation grown by the setup).
    const half = Math.floor(n / 2);
    let mid = before;
    /** Sessions up when `mid` was read. */
    let atMid = 0;
    let setupSeconds = 0;
    let legs: Leg[];
    /** Pairs that can reach each other: any two sessions of a relay, the two halves of a pipe pair. */
    let reachable: (i: number) => [Leg, Leg];
    if (spec.kind === 'relay') {
      let t0 = nowNs();
      legs = await openRelaySessions(target, half, perConn, o.log);
      setupSeconds += Number(nowNs() - t0) / 1e9;
      await settle();
      mid = memoryBytes(pids);
      atMid = legs.length;
      t0 = nowNs();
      legs.push(...(await openRelaySessions(target, n - half, perConn, o.log)));
      setupSeconds += Number(nowNs() - t0) / 1e9;
      // R-57a: a session binds to the first far end that uses it, so every
      // sampled session is used once: disjoint pairs from a shuffled list.
      const order = legs.map((_, i) => i).sort(() => Math.random() - 0.5);
      reachable = (i) => {
        const x = legs[order[(2 * i) % order.length]!]!;
        let y = legs[order[(2 * i + 1) % order.length]!]!;
        if (y.ep === x.ep) y = legs[order[(2 * i + 2 + o.idleSamples * 2) % order.length]!]!;
        return [x, y];
      };
    } else {
      legs = [];
      const pairs: Pair[] = [];
      // n / 2 pairs of connections: each connection stands for a session.
      const openPairs = async (count: number) => {
        const t0 = nowNs();
        for (let i = 0; i < count; i += OPEN_CONCURRENCY) {
          const batch = await Promise.all(Array.from({ length: Math.min(OPEN_CONCURRENCY, count - i) }, () => target.pair()));
          pairs.push(...batch);
        }
        setupSeconds += Number(nowNs() - t0) / 1e9;
      };
      await openPairs(Math.floor(half / 2));
      await settle();
      mid = memoryBytes(pids);
      atMid = 2 * pairs.length;
      await openPairs(Math.floor(n / 2) - Math.floor(half / 2));
      for (const p of pairs) legs.push(p.a, p.b);
      reachable = () => {
        const p = pairs[Math.floor(Math.random() * pairs.length)]!;
        return [p.a, p.b];
      };
    }
    const setupDone = Date.now();
    await settle();
    const after = memoryBytes(pids);
    const metered = meter.stop();
    let held: number | undefined;
    if (o.idleHold > 0) {
      o.log(`  holding ${legs.length} sessions for ${o.idleHold} s`);
      await sleep(Math.max(0, setupDone + o.idleHold * 1000 - Date.now()));
      held = (memoryBytes(pids).pss - before.pss) / n;
    }

    // ------------------------------------------------------------- samples
    const waiting = new Map<string, () => void>();
    const eps = new Set<Endpoint>(legs.map((l) => l.ep));
    for (const ep of eps) {
      ep.sink = {
        requestEnd(h) {
          const mid = getHeader(h.headers, 'Message-ID') ?? '';
          const w = waiting.get(mid);
          if (w !== undefined) {
            waiting.delete(mid);
            w();
          }
        },
      };
    }
    let ok = 0;
    for (let i = 0; i < o.idleSamples; i++) {
      const [x, y] = reachable(i);
      const mid = `idle${i}x${newTransactionId().slice(0, 8)}`;
      const got = new Promise<boolean>((resolve) => {
        const t = setTimeout(() => {
          waiting.delete(mid);
          resolve(false);
        }, 5000);
        waiting.set(mid, () => {
          clearTimeout(t);
          resolve(true);
        });
      });
      x.ep.write(
        formatRequest({
          tid: newTransactionId(),
          method: 'SEND',
          toPath: [...x.route, ...y.route, y.uri],
          fromPath: [x.uri],
          headers: [['Message-ID', mid], ['Byte-Range', '1-5/5'], ['Content-Type', 'text/plain']],
          body: 'hello',
        }),
      );
      if (await got) ok++;
    }
    if (ok < o.idleSamples) failures.push(`${o.idleSamples - ok} of ${o.idleSamples} sampled sessions did not deliver`);
    const closedEarly = [...eps].filter((e) => e.closed).length;
    if (closedEarly > 0) failures.push(`${closedEarly} connections were closed while idle`);
    for (const ep of eps) ep.destroy();
    return {
      metrics: {
        'B/session': (after.pss - before.pss) / n,
        ...(held !== undefined ? { 'held B/session': held } : {}),
        'marginal B/session': (after.pss - mid.pss) / (legs.length - atMid),
        'sessions/s': n / setupSeconds,
        'rss B/session': (after.rss - before.rss) / n,
        'sessions per connection': perConn,
        'samples delivered': ok,
      },
      metered,
      failures,
    };
  },
};
