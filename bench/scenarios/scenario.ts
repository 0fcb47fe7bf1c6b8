/** The contract between the runner and a scenario. */

import type { Legs, RunningTarget, TargetSpec } from '../targets/target.ts';
import type { Metered } from '../meter.ts';

export interface BenchOptions {
  /** bulk: file size in octets. */
  size: number;
  /** bulk: chunk body sizes in octets; 0 = the whole file as one chunk. */
  chunks: number[];
  /** bulk: most unacknowledged body octets in flight (0 = no limit). */
  bulkWindow: number;
  /** rate: session pairs, messages in flight per pair, body size, seconds. */
  pairs: number;
  window: number;
  messageSize: number;
  duration: number;
  /** auth: concurrent clients, seconds. */
  authClients: number;
  authDuration: number;
  /** idle: sessions held, sessions per connection, SENDs sampled. */
  idleSessions: number;
  idlePerConnection: number;
  idleSamples: number;
  /** idle: seconds the sessions are held after setup before `held B/session` is read (0: not read). */
  idleHold: number;
  /** latency: round trips timed (after a warm-up of 5 s and at least a tenth of them). */
  roundTrips: number;
  /** chat: sessions in the room, how many of them send, messages outstanding per sender, how they reach the focus, the half-rate phase. */
  chatParticipants: number;
  chatSenders: number;
  chatWindow: number;
  chatPaths: Array<'token' | 'direct'>;
  chatHalf: boolean;
  /** No unmeasured warm-up run after a target starts (see Scenario.warmup). */
  cold: boolean;
  /**
   * --instructions: switches the relay's counting on and off. A scenario that sets up much
   * before the work it reports (chat: a hundred AUTHs and joins) calls these around its
   * measured phase; for the others the runner counts the whole run.
   */
  counting?: { on(): void; off(): void };
  /** --instructions: the relay runs under callgrind, some 40 times slower (longer warm-ups). */
  slow?: boolean;
  log(msg: string): void;
}

export interface Variant {
  /** Shown in the table after the scenario name ('' for a single variant). */
  readonly name: string;
  readonly params: Record<string, number>;
  /** The transports of endpoint A (the sender) and B (--transports; default both tcp). */
  readonly legs?: Legs;
}

export type { Legs } from '../targets/target.ts';

/** What one run of one variant on one target measured. */
export interface Outcome {
  metrics: Record<string, number>;
  metered: Metered;
  /** Checks that failed (content hash, undelivered sample, errors): the run does not count. */
  failures: string[];
}

export interface Metric {
  key: string;
  unit: string;
  /** True for rates (more is better); false for latencies and memory. */
  higherIsBetter: boolean;
  /** Also report it per CPU-second of the relay. */
  perCpu: boolean;
}

export interface Scenario {
  readonly name: string;
  readonly metrics: readonly Metric[];
  variants(o: BenchOptions): Variant[];
  /** Why this variant cannot run on this target (undefined = it can). */
  notApplicable?(v: Variant, spec: TargetSpec, o: BenchOptions): string | undefined;
  run(target: RunningTarget, spec: TargetSpec, v: Variant, o: BenchOptions): Promise<Outcome>;
  /**
   * The system this scenario runs on in place of a target of --targets (chat: this relay with
   * the chat focus for msrprelay and baseline, the raw fan-out for raw); one whose
   * unavailable() says why for the others. Undefined: the targets as they are.
   */
  target?(spec: TargetSpec, o: BenchOptions): TargetSpec;
  /**
   * Options for one unmeasured run of each variant right after a target starts (steady
   * state is what is compared: a relay on a JIT runtime runs its first thousands of
   * messages in unoptimised code, a compiled one needs no warm-up and loses nothing by
   * it). Undefined: the scenario needs none (idle measures memory from a fresh start;
   * latency warms up inside its own run). `--cold` skips every warm-up.
   */
  warmup?(o: BenchOptions): BenchOptions;
  /** It calls BenchOptions.counting around its measured phase itself (--instructions). */
  readonly countsOwnPhase?: boolean;
}
