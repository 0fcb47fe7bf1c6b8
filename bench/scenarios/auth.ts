/**
 * auth: new clients per second. `authClients` clients run in parallel, each in a
 * loop: connect, AUTH (401 with a challenge), AUTH with Digest credentials
 * (200 with Use-Path), close. AUTHs/s counts completed loops over `authDuration`
 * seconds; latency is the whole loop, connect to 200.
 */

import { Endpoint } from '../loadgen/endpoint.ts';
import { Meter, nowNs } from '../meter.ts';
import { latencySummary } from '../stats.ts';
import type { Scenario } from './scenario.ts';

export const auth: Scenario = {
  name: 'auth',
  metrics: [
    { key: 'auth/s', unit: 'auth/s', higherIsBetter: true, perCpu: true },
    { key: 'p50 ms', unit: 'ms', higherIsBetter: false, perCpu: false },
    { key: 'p99 ms', unit: 'ms', higherIsBetter: false, perCpu: false },
  ],
  warmup: (o) => ({ ...o, authDuration: Math.min(o.authDuration, 2) }),
  variants: (o) => [{ name: `${o.authClients} clients`, params: { clients: o.authClients } }],
  notApplicable(_v, spec) {
    // The raw pipe answers AUTH with canned responses (the floor, see raw-pipe-proxy.ts).
    return spec.kind === 'direct' ? 'no AUTH without a relay' : undefined;
  },
  async run(target, _spec, v, o) {
    const at = target.authAddress;
    if (at === undefined) throw new Error('not a relay');
    const failures: string[] = [];
    const latencies: number[] = [];
    let completed = 0;
    let errors = 0;
    let firstError = '';
    let stop = false;
    const meter = new Meter(target.pids);
    const t0 = nowNs();
    const client = async () => {
      while (!stop) {
        const t = nowNs();
        let ep: Endpoint | undefined;
        try {
          ep = await at.connect();
          await ep.auth(at.relayUri, at.user);
          latencies.push(Number(nowNs() - t) / 1e6);
          completed++;
        } catch (e) {
          errors++;
          firstError ||= (e as Error).message;
          // do not spin on a relay that refuses everything
          await new Promise((r) => setTimeout(r, 10));
        } finally {
          ep?.close();
        }
      }
    };
    const timer = setTimeout(() => (stop = true), o.authDuration * 1000);
    await Promise.all(Array.from({ length: v.params['clients']! }, client));
    clearTimeout(timer);
    const metered = meter.stop();
    const seconds = Number(nowNs() - t0) / 1e9;
    if (errors > Math.max(2, completed / 100)) failures.push(`${errors} AUTH loops failed (first: ${firstError})`);
    const lat = latencySummary(latencies);
    return { metrics: { 'auth/s': completed / seconds, 'p50 ms': lat.p50, 'p99 ms': lat.p99, errors }, metered, failures };
  },
};
