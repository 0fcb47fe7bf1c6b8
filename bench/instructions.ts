/**
 * `--instructions`: the relay's CPU cost counted in machine instructions rather than timed.
 *
 * On a small or shared machine, throughput and CPU-seconds of two checkouts move by ±15% from
 * run to run (the load generator shares the cores, frequency and caches change), more than the
 * few per cent a change to the hot path costs or saves. valgrind's callgrind counts the
 * instructions the relay process executes; for the same build and the same work that count is
 * the same whatever else the machine does. So each relay (this checkout's and, with
 * `--baseline DIR`, the other one, alternated) runs under callgrind with instrumentation off;
 * it is switched on (callgrind_control) only around each measured run, after the usual
 * unmeasured warm-up, and the count is divided by the work done: instructions per KiB
 * relayed (bulk), per message delivered (rate), per AUTH (auth), per copy delivered (chat:
 * its max phase only, not the participants' AUTHs and joins, nor the half-rate phase).
 *
 * The relay runs some 30-50 times slower under callgrind. Runs must be long enough for the JIT
 * to have compiled the hot path during the warm-up (rate and auth run 30 s by default here):
 * measured with 5 s runs, a third of the count was the optimizing compiler, and a build
 * with more, smaller functions looked 9% dearer per message than it is (30 s: equal).
 * The counts compare builds; they say nothing of latency. Scenarios whose result is a
 * time (latency) do not apply.
 */

import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Legs, Scenario, Variant, BenchOptions } from './scenarios/scenario.ts';
import type { RunningTarget, TargetSpec } from './targets/target.ts';

/** What one measured run counted. */
interface Count {
  scenario: string;
  variant: string;
  target: string;
  rep: number;
  /** Instructions per unit of work; undefined when the run failed. */
  perUnit: number | undefined;
  /** The same without V8's compilers and garbage collector (see table()). */
  ownPerUnit: number | undefined;
  reason?: string;
}

/** The unit of work a scenario's measured run did, from its outcome. */
function workOf(sc: Scenario, o: BenchOptions, metrics: Record<string, number>, seconds: number): { amount: number; unit: string } | undefined {
  if (sc.name === 'bulk') return { amount: o.size / 1024, unit: 'KiB' };
  if (sc.name === 'rate') return metrics['delivered'] !== undefined ? { amount: metrics['delivered'], unit: 'message' } : undefined;
  if (sc.name === 'chat') return metrics['deliveries'] !== undefined ? { amount: metrics['deliveries'], unit: 'copy' } : undefined;
  const rateKey = sc.metrics[0]!.key;
  if (rateKey.endsWith('/s') && metrics[rateKey] !== undefined) return { amount: metrics[rateKey] * seconds, unit: rateKey.slice(0, -2) };
  return undefined;
}

/** The valgrind command line a target's relay runs under. */
export function callgrindWrapper(dir: string): string[] {
  return [
    'valgrind',
    '--tool=callgrind',
    '--instr-atstart=no',
    // V8 writes and rewrites machine code in anonymous memory.
    '--smc-check=all-non-file',
    `--callgrind-out-file=${join(dir, 'callgrind.out.%p')}`,
  ];
}

function control(pid: number, ...args: string[]): void {
  execFileSync('callgrind_control', [...args, String(pid)], { stdio: 'ignore' });
}

/** A measured run's instructions: all of them, and those of V8's compilers and of its garbage collector. */
export interface Split {
  total: number;
  compiler: number;
  gc: number;
}

const COMPILER = /compiler::|Compiler|Turbofan|maglev::|Maglev|interpreter::|baseline::|Parser|Scanner|Bytecode|CompileLazy/;
const GC = /Scavenger|Heap|GC|Mark|Sweep|Evacuat|heap::|cppgc::|RememberedSet/;

/**
 * Self instructions of a callgrind file split by what ran: compiler, GC, the rest. The format:
 * `fn=(id) name` opens a function (later `fn=(id)` alone), cost lines are `position count`,
 * and the line after `calls=` is the inclusive cost of that call, not the caller's own.
 */
export function splitCallgrind(text: string): Split {
  const names = new Map<string, string>();
  const split: Split = { total: 0, compiler: 0, gc: 0 };
  let kind: 'compiler' | 'gc' | 'rest' = 'rest';
  let skipNext = false;
  for (const line of text.split('\n')) {
    if (line.startsWith('fn=')) {
      const m = /^fn=\((\d+)\)(?: (.*))?$/.exec(line);
      let name = line.slice(3);
      if (m !== null) {
        if (m[2] !== undefined) names.set(m[1]!, m[2]);
        name = names.get(m[1]!) ?? '';
      }
      kind = COMPILER.test(name) ? 'compiler' : GC.test(name) ? 'gc' : 'rest';
      continue;
    }
    if (line.startsWith('cfn=')) {
      // a callee's name may be given here first, and later only its id after fn=
      const m = /^cfn=\((\d+)\) (.*)$/.exec(line);
      if (m !== null) names.set(m[1]!, m[2]!);
      continue;
    }
    if (line.startsWith('calls=')) {
      skipNext = true;
      continue;
    }
    const c = /^(?:[+-]?\d+|\*)\s+(\d+)/.exec(line);
    if (c === null) continue;
    if (skipNext) {
      skipNext = false;
      continue;
    }
    const n = Number(c[1]);
    split.total += n;
    if (kind !== 'rest') split[kind] += n;
  }
  return split;
}

/**
 * The instructions counted in `pid`'s dumps in `dir` so far; the files are removed, or kept
 * as `<keepAs>.callgrind` for callgrind_annotate.
 */
function collected(dir: string, pid: number, keepAs?: string): Split {
  const sum: Split = { total: 0, compiler: 0, gc: 0 };
  for (const f of readdirSync(dir)) {
    if (!f.startsWith(`callgrind.out.${pid}.`)) continue;
    const s = splitCallgrind(readFileSync(join(dir, f), 'latin1'));
    sum.total += s.total;
    sum.compiler += s.compiler;
    sum.gc += s.gc;
    if (keepAs !== undefined) renameSync(join(dir, f), `${keepAs}.callgrind`);
    else rmSync(join(dir, f), { force: true });
  }
  return sum;
}

/** Runs the scenarios on the targets under callgrind; prints instructions per unit and the ratios to the first target. */
export async function countInstructions(
  targets: Array<{ spec: TargetSpec; dir: string }>,
  scenarios: Scenario[],
  o: BenchOptions,
  reps: number,
  legsList: Legs[],
  over: (r: RunningTarget, v: Variant) => RunningTarget,
  log: (m: string) => void,
  /** Keep each measured run's callgrind file here (--keep). */
  keepDir?: string,
): Promise<string> {
  const counts: Count[] = [];
  for (const sc of scenarios) {
    if (sc.name === 'latency' || sc.name === 'idle') {
      log(`${sc.name}: a time or a memory reading, not counted in instructions`);
      continue;
    }
    const variants: Variant[] = sc.variants(o).flatMap((v) => legsList.map((legs) => ({ ...v, name: legsList.length === 1 ? v.name : `${v.name} ${legs.name}`.trim(), legs })));
    for (let rep = 1; rep <= reps; rep++) {
      for (const { spec: given, dir } of targets) {
        // chat: this relay with the chat focus, started the same way (under callgrind).
        const spec = sc.target?.(given, o) ?? given;
        const runnable = variants.filter((v) => sc.notApplicable?.(v, spec, o) === undefined);
        if (runnable.length === 0) continue;
        const running = await spec.start();
        try {
          const pid = running.pids()[0]!;
          const warm = o.cold ? undefined : sc.warmup?.(o);
          const on = () => {
            collected(dir, pid);
            control(pid, '--zero');
            control(pid, '--instr=on');
          };
          const off = () => control(pid, '--instr=off');
          for (const v of runnable) {
            if (warm !== undefined) {
              log(`${sc.name} ${v.name} on ${spec.name}: warm-up under callgrind, not counted ...`);
              await sc.run(over(running, v), spec, v, warm);
            }
            log(`${sc.name} ${v.name} on ${spec.name}, rep ${rep}/${reps}: counting ...`);
            let out;
            if (sc.countsOwnPhase === true) {
              out = await sc.run(over(running, v), spec, v, { ...o, counting: { on, off } });
            } else {
              on();
              out = await sc.run(over(running, v), spec, v, o);
              off();
            }
            control(pid, '--dump');
            const ir = collected(dir, pid, keepDir !== undefined ? join(keepDir, `${sc.name}-${v.name.replace(/\W+/g, '_')}-${spec.name}-${rep}`) : undefined);
            const work = workOf(sc, o, out.metrics, out.metered.seconds);
            const failed = out.failures.length > 0 ? out.failures.join('; ') : work === undefined || ir.total === 0 ? 'nothing counted' : undefined;
            const own = ir.total - ir.compiler - ir.gc;
            counts.push({
              scenario: sc.name,
              variant: v.name,
              target: spec.name,
              rep,
              perUnit: failed === undefined ? ir.total / work!.amount : undefined,
              ownPerUnit: failed === undefined ? own / work!.amount : undefined,
              ...(failed !== undefined ? { reason: failed } : {}),
            });
            const per = (x: number) => Math.round(x / work!.amount).toLocaleString('en');
            log(
              failed === undefined
                ? `  ${per(ir.total)} instructions per ${work!.unit}: ${per(own)} without V8's compiler (${per(ir.compiler)}) and GC (${per(ir.gc)}); ${(ir.total / 1e9).toFixed(2)} G in all`
                : `  FAILED: ${failed}`,
            );
          }
        } finally {
          await running.stop();
        }
      }
    }
  }
  return table(counts, scenarios, targets.map((t) => t.spec.name));
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

function table(counts: Count[], scenarios: Scenario[], names: string[]): string {
  const unit: Record<string, string> = { bulk: 'KiB', rate: 'message', auth: 'auth', chat: 'copy' };
  const lines = [
    `| scenario | variant | counted | ${names.map((n) => `${n} (median per unit)`).join(' | ')} | ${names.slice(1).map((n) => `${names[0]} / ${n}`).join(' | ')} | runs |`,
    `|${'---|'.repeat(3 + names.length + names.length - 1 + 1)}`,
  ];
  const kinds: Array<{ label: string; of: (c: Count) => number | undefined }> = [
    { label: 'all', of: (c) => c.perUnit },
    { label: 'without compiler and GC', of: (c) => c.ownPerUnit },
  ];
  for (const sc of scenarios) {
    const variants = [...new Set(counts.filter((c) => c.scenario === sc.name).map((c) => c.variant))];
    for (const v of variants) {
      const per = names.map((n) => counts.filter((c) => c.scenario === sc.name && c.variant === v && c.target === n));
      const runs = per.map((cs) => `${cs.filter((c) => c.perUnit !== undefined).length}/${cs.length}`).join(', ');
      for (const k of kinds) {
        const med = per.map((cs) => {
          const ok = cs.map(k.of).filter((x): x is number => x !== undefined);
          return ok.length > 0 ? median(ok) : undefined;
        });
        const fmt = (x: number | undefined) => (x === undefined ? '-' : `${Math.round(x).toLocaleString('en')} / ${unit[sc.name] ?? 'unit'}`);
        const ratios = med.slice(1).map((m) => (m === undefined || med[0] === undefined ? '-' : (med[0] / m).toFixed(3)));
        lines.push(`| ${sc.name} | ${v} | ${k.label} | ${med.map(fmt).join(' | ')} | ${ratios.join(' | ')} | ${runs} |`);
      }
    }
  }
  return (
    `${lines.join('\n')}\n\nratios: instructions of the first target over the other's, for the same work (below 1: the first does less).\n` +
    '"without compiler and GC": V8\'s optimising compilers still run during short runs under callgrind, and a major\n' +
    'collection falls in some measured runs and not in others; the rest (the relay\'s JavaScript, builtins, libuv, libc)\n' +
    'is the steadiest measure of the work a change adds or saves.\n'
  );
}
