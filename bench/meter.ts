/**
 * Wall time and CPU time of one measured phase: the relay's processes (from
 * /proc) and the load generator's own process, so every throughput also reads
 * per CPU-second of the relay, and a run where the load generator was the
 * bottleneck shows it.
 */

import { cpuSeconds, ownCpuSeconds } from './process-stats.ts';

export interface Metered {
  seconds: number;
  relayCpu: number;
  loadgenCpu: number;
}

export class Meter {
  private readonly pids: number[];
  private readonly t0: bigint;
  private readonly cpu0: number;
  private readonly own0: number;

  constructor(pids: () => number[]) {
    // Kamailio's and our relay's process sets do not change during a phase.
    this.pids = pids();
    this.cpu0 = cpuSeconds(this.pids);
    this.own0 = ownCpuSeconds();
    this.t0 = process.hrtime.bigint();
  }

  stop(at: bigint = process.hrtime.bigint()): Metered {
    return {
      seconds: Number(at - this.t0) / 1e9,
      relayCpu: cpuSeconds(this.pids) - this.cpu0,
      loadgenCpu: ownCpuSeconds() - this.own0,
    };
  }
}

export const nowNs = (): bigint => process.hrtime.bigint();
export const msSince = (t: bigint): number => Number(process.hrtime.bigint() - t) / 1e6;
