/**
 * `npm run bench`: the load generator against this relay, Kamailio's msrp module
 * and a raw TCP pipe, side by side. See bench/README.md for the options.
 *
 * Order: for each scenario, for each repetition, each target in turn (A B C A B
 * C ...), each started fresh and stopped after the scenario's variants ran, so
 * a noisy minute on a shared machine hits every target rather than one. The
 * report gives medians over the repetitions.
 */

import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { execFileSync } from 'node:child_process';
import { auth } from './scenarios/auth.ts';
import { bulk } from './scenarios/bulk.ts';
import { chat } from './scenarios/chat.ts';
import { idle } from './scenarios/idle.ts';
import { latency } from './scenarios/latency.ts';
import { rate } from './scenarios/rate.ts';
import type { BenchOptions, Legs, Scenario, Variant } from './scenarios/scenario.ts';
import type { Transport } from './loadgen/endpoint.ts';
import { kamailioTarget } from './targets/kamailio.ts';
import { msrprelayTarget, relayRunner } from './targets/msrprelay.ts';
import { directTarget, rawPipeTarget } from './targets/raw-pipe.ts';
import type { RunningTarget, TargetSpec } from './targets/target.ts';
import { chart, summarise, table, type RunRecord } from './report.ts';
import { summariseProfile } from './profile-summary.ts';
import { callgrindWrapper, countInstructions } from './instructions.ts';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const SCENARIOS: Scenario[] = [bulk, rate, auth, idle, latency, chat];

const HELP = `usage: npm run bench -- [options]

  --scenarios LIST     bulk,rate,auth,idle,latency,chat (default: all)
  --targets LIST       msrprelay,kamailio,raw,direct (default; msrprelay-sql is added when
                       plugins/auth-sql exists; msrprelay-wN runs --workers N)
  --transports LIST    tcp,tls,ws,wss, or A-B pairs such as tcp-ws (A, the sender, on TCP;
                       B, the receiver, on WebSocket): every scenario runs over each
                       (default tcp). Kamailio serves tcp, tls and ws; raw and direct tcp only
  --reps N             repetitions per target, alternated (default 3)
  --quick              a run under two minutes: --reps 1 --size 16M --duration 2
                       --auth-duration 2 --idle-sessions 2000 --round-trips 1000
  bulk:    --size SIZE (256M)  --chunks LIST (2K,64K,whole)  --bulk-window SIZE (8M, 0 = none)
  rate:    --pairs N (100)  --window N (16)  --message-size SIZE (100)  --duration S (5)
  auth:    --auth-clients N (20)  --auth-duration S (5)
  idle:    --idle-sessions N (10000)  --idle-per-conn N (1)  --idle-samples N (50)
           --idle-hold S (60; 0 with --quick: no held reading)
  latency: --round-trips N (20000)
  chat:    --participants N (100)  --senders N (10)  --chat-window N (8)  --message-size SIZE
           (100, the text)  --duration S (5, each phase)  --chat-paths token,direct (token)
           --no-half (skip the phase at half the measured rate)
  --cold               no unmeasured warm-up run of each variant after a target starts
                       (default: one, so steady state is compared; see bench/README.md)
  --profile            instead of comparing: run this relay under node --cpu-prof for
                       bulk 64K, rate and auth (or --scenarios, --chunks), and print the
                       top self-time functions
  --instructions       instead of timing: run this relay (and --baseline's) under valgrind's
                       callgrind and count the instructions of each measured run per KiB
                       (bulk, 64K unless --chunks), per message (rate), per AUTH (auth),
                       per copy (chat), or
                       --scenarios: repeatable on a busy machine, for A/B of the hot path
  --pin R:G            run every target's processes on CPUs R and the load generator on
                       CPUs G (taskset lists, e.g. 1:0 on two cores): steadier numbers
                       when the two would otherwise share cores
  --baseline DIR       also run the relay of another checkout (built with npm run build)
                       as target \`baseline\`, alternated with the others: a change against
                       main in one run (git worktree add ../base main)
  --out DIR            where results go (default bench/results)
  --keep               keep the relay's temp dir (config, log); with --instructions, each
                       measured run's callgrind file in --out
`;

function parseSize(s: string): number {
  if (s === 'whole' || s === 'one') return 0;
  const m = /^(\d+(?:\.\d+)?)\s*([kmg]?)i?b?$/i.exec(s.trim());
  if (m === null) throw new Error(`not a size: ${s}`);
  const mult = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[m[2]!.toLowerCase() as '' | 'k' | 'm' | 'g'];
  return Math.round(Number(m[1]) * mult);
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      scenarios: { type: 'string' },
      targets: { type: 'string' },
      transports: { type: 'string' },
      reps: { type: 'string' },
      quick: { type: 'boolean' },
      pin: { type: 'string' },
      size: { type: 'string' },
      chunks: { type: 'string' },
      'bulk-window': { type: 'string' },
      pairs: { type: 'string' },
      window: { type: 'string' },
      'message-size': { type: 'string' },
      duration: { type: 'string' },
      'auth-clients': { type: 'string' },
      'auth-duration': { type: 'string' },
      'idle-sessions': { type: 'string' },
      'idle-per-conn': { type: 'string' },
      'idle-samples': { type: 'string' },
      'idle-hold': { type: 'string' },
      'round-trips': { type: 'string' },
      participants: { type: 'string' },
      senders: { type: 'string' },
      'chat-window': { type: 'string' },
      'chat-paths': { type: 'string' },
      'no-half': { type: 'boolean' },
      profile: { type: 'boolean' },
      instructions: { type: 'boolean' },
      cold: { type: 'boolean' },
      out: { type: 'string' },
      baseline: { type: 'string' },
      keep: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help === true) {
    process.stdout.write(HELP);
    return 0;
  }
  const quick = values.quick === true;
  const num = (v: string | undefined, def: number) => (v === undefined ? def : Number(v));
  const log = (m: string) => process.stderr.write(`${m}\n`);
  const o: BenchOptions = {
    size: values.size !== undefined ? parseSize(values.size) : quick ? 16 * 2 ** 20 : 256 * 2 ** 20,
    chunks: (values.chunks ?? '2K,64K,whole').split(',').map(parseSize),
    bulkWindow: values['bulk-window'] !== undefined ? parseSize(values['bulk-window']) : 8 * 2 ** 20,
    pairs: num(values.pairs, 100),
    window: num(values.window, 16),
    messageSize: values['message-size'] !== undefined ? parseSize(values['message-size']) : 100,
    duration: num(values.duration, quick ? 2 : 5),
    authClients: num(values['auth-clients'], 20),
    authDuration: num(values['auth-duration'], quick ? 2 : 5),
    idleSessions: num(values['idle-sessions'], quick ? 2000 : 10_000),
    idlePerConnection: num(values['idle-per-conn'], 1),
    idleSamples: num(values['idle-samples'], 50),
    idleHold: num(values['idle-hold'], quick ? 0 : 60),
    roundTrips: num(values['round-trips'], quick ? 1000 : 20_000),
    chatParticipants: num(values.participants, 100),
    chatSenders: num(values.senders, 10),
    chatWindow: num(values['chat-window'], 8),
    chatPaths: (values['chat-paths'] ?? 'token').split(',').map((p) => {
      if (p !== 'token' && p !== 'direct') throw new Error(`--chat-paths: ${p}: not token or direct`);
      return p;
    }),
    chatHalf: values['no-half'] !== true,
    cold: values.cold === true,
    log,
  };
  const reps = num(values.reps, quick ? 1 : 3);
  const outDir = resolve(values.out ?? join(ROOT, 'bench/results'));
  mkdirSync(outDir, { recursive: true });

  const legsList = parseTransports(values.transports ?? 'tcp');
  const needed = new Set<Transport>(legsList.flatMap((l) => [l.a, l.b]));
  if (values.profile === true) {
    return profile({ ...o, chunks: values.chunks !== undefined ? o.chunks : [64 * 1024] }, values.scenarios?.split(','), outDir, log, legsList, needed);
  }

  if (values.instructions === true) {
    // Under callgrind the relay runs some 40 times slower: a 5 s run (and its warm-up) ends
    // before the JIT has compiled the hot path, and the counts then measure the compiler.
    const slow = { duration: values.duration !== undefined ? o.duration : 30, authDuration: values['auth-duration'] !== undefined ? o.authDuration : 30 };
    // chat: only the max phase is counted; the half-rate phase would only take time.
    return instructions({ ...o, ...slow, slow: true, chatHalf: false, chunks: values.chunks !== undefined ? o.chunks : [64 * 1024] }, values.scenarios?.split(',') ?? ['bulk', 'rate', 'auth'], values.baseline, reps, legsList, needed, log, values.keep === true ? outDir : undefined);
  }

  const wanted = (values.scenarios ?? SCENARIOS.map((s) => s.name).join(',')).split(',');
  const scenarios = wanted.map((n) => SCENARIOS.find((x) => x.name === n) ?? unknownScenario(n));
  const defaultTargets = ['msrprelay', 'kamailio', 'raw', 'direct'];
  if (existsSync(join(ROOT, 'plugins/auth-sql/index.ts'))) defaultTargets.splice(1, 0, 'msrprelay-sql');
  const targets = (values.targets ?? defaultTargets.join(',')).split(',').map((n) => targetByName(n, values.keep === true, needed));
  if (values.baseline !== undefined) {
    const root = resolve(values.baseline);
    if (!existsSync(join(root, 'bin/msrprelay.js'))) throw new Error(`--baseline ${values.baseline}: no bin/msrprelay.js there`);
    targets.splice(1, 0, msrprelayTarget({ root, auth: 'memory', workers: 1, keep: values.keep === true, label: 'baseline', transports: needed }));
    log(`baseline runs from ${root}: ${relayRunner(root).note}`);
  }

  const pin = values.pin !== undefined ? parsePin(values.pin) : undefined;
  if (pin !== undefined) {
    pinTo(pin.gen, [process.pid]);
    log(`pinned: relays to CPU ${pin.relay}, the load generator to CPU ${pin.gen}`);
  }
  const runner = relayRunner(ROOT);
  log(`msrprelay runs from ${runner.note}`);
  const started = new Date();
  const load0 = loadavg();
  const records: RunRecord[] = [];

  for (const sc of scenarios) {
    // Every variant over every transport pair; the names keep their old form for TCP alone.
    const onlyTcp = legsList.length === 1 && legsList[0]!.name === 'tcp';
    const variants: Variant[] = sc.variants(o).flatMap((v) => legsList.map((legs) => ({ ...v, name: onlyTcp ? v.name : `${v.name} ${legs.name}`.trim(), legs })));
    for (let rep = 1; rep <= reps; rep++) {
      for (const generic of targets) {
        const spec = sc.target?.(generic, o) ?? generic;
        const skip = spec.unavailable() ?? spec.skips(sc.name);
        const served = spec.transports ?? ['tcp'];
        const notHere = (v: Variant) =>
          v.legs === undefined || (served.includes(v.legs.a) && served.includes(v.legs.b)) ? sc.notApplicable?.(v, spec, o) : `no ${served.includes(v.legs.a) ? v.legs.b : v.legs.a} listener`;
        const runnable = variants.filter((v) => notHere(v) === undefined);
        for (const v of variants) {
          const na = skip ?? notHere(v);
          if (na !== undefined) records.push({ scenario: sc.name, variant: v.name, target: spec.name, rep, status: 'n/a', reason: na, metrics: {} });
        }
        if (skip !== undefined || runnable.length === 0) continue;
        let running;
        try {
          running = await spec.start();
          if (pin !== undefined) pinTo(pin.relay, running.pids());
        } catch (e) {
          log(`${spec.name}: ${(e as Error).message}`);
          for (const v of runnable) {
            records.push({ scenario: sc.name, variant: v.name, target: spec.name, rep, status: 'failed', reason: `did not start: ${firstLine(e)}`, metrics: {} });
          }
          continue;
        }
        try {
          const warm = o.cold ? undefined : sc.warmup?.(o);
          if (warm !== undefined) {
            for (const v of runnable) {
              log(`${sc.name} ${v.name} on ${spec.name}: warm-up (not measured) ...`);
              try {
                const out = await sc.run(over(running, v), spec, v, warm);
                if (out.failures.length > 0) log(`  warm-up failed: ${out.failures.join('; ')}`);
              } catch (e) {
                log(`  warm-up failed: ${(e as Error).message}`);
              }
            }
          }
          for (const v of runnable) {
            log(`${sc.name} ${v.name} on ${spec.name}, rep ${rep}/${reps} ...`);
            try {
              const out = await sc.run(over(running, v), spec, v, o);
              const status = out.failures.length === 0 ? 'ok' : 'failed';
              records.push({
                scenario: sc.name,
                variant: v.name,
                target: spec.name,
                rep,
                status,
                ...(status === 'failed' ? { reason: out.failures.join('; ') } : {}),
                metrics: out.metrics,
                metered: out.metered,
              });
              const m = sc.metrics[0]!;
              log(`  ${m.key} ${fmtNum(out.metrics[m.key])}  relay CPU ${out.metered.relayCpu.toFixed(2)} s  wall ${out.metered.seconds.toFixed(2)} s${status === 'ok' ? '' : `  FAILED: ${out.failures.join('; ')}`}`);
            } catch (e) {
              log(`  FAILED: ${(e as Error).message}`);
              records.push({ scenario: sc.name, variant: v.name, target: spec.name, rep, status: 'failed', reason: firstLine(e), metrics: {} });
            }
          }
        } finally {
          await running.stop();
        }
      }
    }
  }

  const rows = summarise(records, scenarios);
  const stamp = started.toISOString().replace(/[:.]/g, '-');
  const command = `npm run bench -- ${process.argv.slice(2).join(' ')}`.trim();
  const text = table(rows, scenarios);
  process.stdout.write(`\n${command}\n${cpus().length} CPUs (${cpus()[0]?.model ?? '?'}), load ${load0.map((x) => x.toFixed(2)).join(' ')} at start; medians of ${reps} rep(s), ${o.cold ? 'cold (no warm-up run)' : 'each after an unmeasured warm-up run per target start'}\n\n${text}\n`);
  process.stdout.write(
    '\nvs columns: value / reference value (and the same per relay CPU-second). For MB/s, msg/s and auth/s above 1 is better;\n' +
      'for latency and memory rows below 1 is better. "gen CPU" is the load generator\'s CPU share of one core.\n',
  );
  const json = {
    command,
    started: started.toISOString(),
    machine: { cpus: cpus().length, model: cpus()[0]?.model, loadavgAtStart: load0, node: process.version },
    relayRunner: runner.note,
    options: { ...o, log: undefined, reps, transports: legsList.map((l) => l.name) },
    targets: targets.map((t) => ({ name: t.name, kind: t.kind, description: t.description })),
    summary: rows,
    runs: records,
  };
  const base = join(outDir, `bench-${stamp}`);
  writeFileSync(`${base}.json`, `${JSON.stringify(json, null, 2)}\n`);
  writeFileSync(`${base}.svg`, chart(rows, scenarios, `msrprelay bench ${started.toISOString().slice(0, 16)} — ${command}`));
  writeFileSync(join(outDir, 'latest.json'), `${JSON.stringify(json, null, 2)}\n`);
  writeFileSync(join(outDir, 'latest.svg'), chart(rows, scenarios, `msrprelay bench ${started.toISOString().slice(0, 16)} — ${command}`));
  process.stdout.write(`\nwrote ${base}.json and .svg (and latest.json / latest.svg)\n`);
  return 0;
}

function targetByName(name: string, keep: boolean, transports: ReadonlySet<Transport>): TargetSpec {
  if (name === 'msrprelay') return msrprelayTarget({ root: ROOT, auth: 'memory', workers: 1, keep, transports });
  if (name === 'msrprelay-sql') return msrprelayTarget({ root: ROOT, auth: 'sql', workers: 1, keep, transports });
  const w = /^msrprelay-w(\d+)$/.exec(name);
  if (w !== null) return msrprelayTarget({ root: ROOT, auth: 'memory', workers: Number(w[1]), keep, transports });
  if (name === 'kamailio') return kamailioTarget({ keep, transports });
  if (name === 'raw') return rawPipeTarget(ROOT);
  if (name === 'direct') return directTarget();
  throw new Error(`unknown target ${name}`);
}

/**
 * Runs this relay under the V8 sampling profiler for bulk (64 KiB unless --chunks), rate and
 * auth, or the --scenarios named; prints where the time goes.
 */
async function profile(opts: BenchOptions, names: string[] | undefined, outDir: string, log: (m: string) => void, legsList: Legs[], needed: ReadonlySet<Transport>): Promise<number> {
  const cases = names === undefined ? [bulk, rate, auth] : names.map((n) => SCENARIOS.find((x) => x.name === n) ?? unknownScenario(n));
  for (const sc of cases) {
    const dir = join(outDir, `profile-${sc.name}`);
    mkdirSync(dir, { recursive: true });
    const relay = msrprelayTarget({ root: ROOT, auth: 'memory', workers: 1, nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${dir}`], transports: needed });
    const spec = sc.target?.(relay, opts) ?? relay;
    const before = new Set(readdirSync(dir));
    const t0 = Date.now();
    const running = await spec.start();
    const startupMs = Date.now() - t0 + 300;
    try {
      for (const v of sc.variants(opts).flatMap((x) => legsList.map((legs) => ({ ...x, name: `${x.name} ${legs.name}`, legs })))) {
        if (sc.notApplicable?.(v, spec, opts) !== undefined) continue;
        log(`profiling ${sc.name} ${v.name} ...`);
        const out = await sc.run(over(running, v), spec, v, opts);
        log(`  ${sc.metrics[0]!.key} ${fmtNum(out.metrics[sc.metrics[0]!.key])} ${out.failures.join('; ')}`);
      }
    } finally {
      await running.stop();
    }
    // CPU.<date>.<time>.<pid>.<thread>.<seq>.cpuprofile: thread 0 is the relay's main thread
    // (the others are tsx's module-loader thread when the relay runs from sources)
    const fresh = readdirSync(dir).filter((f) => /\.\d+\.0\.\d+\.cpuprofile$/.test(f) && !before.has(f));
    for (const f of fresh) {
      const text = summariseProfile(join(dir, f), 25, startupMs);
      if (text !== undefined) process.stdout.write(`\n== ${sc.name} (${f}, first ${startupMs} ms skipped)\n${text}\n`);
    }
  }
  return 0;
}

/** `--pin 1:0`: the CPUs (taskset lists) of the relay's processes and of the load generator. */
function parsePin(text: string): { relay: string; gen: string } {
  const m = /^([\d,-]+):([\d,-]+)$/.exec(text);
  if (m === null) throw new Error(`--pin: RELAY_CPUS:GENERATOR_CPUS, e.g. 1:0, not "${text}"`);
  return { relay: m[1]!, gen: m[2]! };
}

/** Every thread of these processes on `cpus` (taskset -a): the relay and the generator stop competing for one core. */
function pinTo(cpus: string, pids: number[]): void {
  for (const pid of pids) execFileSync('taskset', ['-a', '-cp', cpus, String(pid)], { stdio: 'ignore' });
}

/** --instructions: this relay and the baseline's under callgrind (bench/instructions.ts). */
async function instructions(o: BenchOptions, names: string[], baseline: string | undefined, reps: number, legsList: Legs[], needed: ReadonlySet<Transport>, log: (m: string) => void, keepDir: string | undefined): Promise<number> {
  const scenarios = names.map((n) => SCENARIOS.find((x) => x.name === n) ?? unknownScenario(n));
  const roots: Array<{ root: string; label?: string }> = [{ root: ROOT }];
  if (baseline !== undefined) roots.push({ root: resolve(baseline), label: 'baseline' });
  const targets = roots.map((r) => {
    const dir = mkdtempSync(join(tmpdir(), 'msrprelay-callgrind-'));
    log(`${r.label ?? 'msrprelay'} runs from ${r.root}: ${relayRunner(r.root).note}`);
    return { dir, spec: msrprelayTarget({ root: r.root, auth: 'memory', workers: 1, wrapper: callgrindWrapper(dir), transports: needed, ...(r.label !== undefined ? { label: r.label } : {}) }) };
  });
  try {
    const text = await countInstructions(targets, scenarios, o, reps, legsList, over, log, keepDir);
    if (keepDir !== undefined) log(`callgrind files of the measured runs in ${keepDir} (callgrind_annotate FILE)`);
    process.stdout.write(`\nnpm run bench -- ${process.argv.slice(2).join(' ')}\n${cpus().length} CPUs (${cpus()[0]?.model ?? '?'}); each relay under valgrind --tool=callgrind, counted only during measured runs\n\n${text}`);
  } finally {
    for (const t of targets) rmSync(t.dir, { recursive: true, force: true });
  }
  return 0;
}

const TRANSPORTS: readonly Transport[] = ['tcp', 'tls', 'ws', 'wss'];

/** `tcp,ws,tcp-ws`: both endpoints on one transport, or A's and B's. */
function parseTransports(list: string): Legs[] {
  return list.split(',').map((name) => {
    const [a, b = a] = name.split('-') as [Transport, Transport | undefined];
    for (const t of [a, b]) if (!TRANSPORTS.includes(t!)) throw new Error(`--transports: ${name}: not ${TRANSPORTS.join(', ')} or A-B`);
    return { name, a, b: b! };
  });
}

/** The running target with A and B on the variant's transports. */
function over(running: RunningTarget, v: Variant): RunningTarget {
  if (v.legs === undefined || (v.legs.a === 'tcp' && v.legs.b === 'tcp')) return running;
  if (running.via === undefined) throw new Error(`the target runs over tcp only, not ${v.legs.name}`);
  return running.via(v.legs);
}

function unknownScenario(n: string): never {
  throw new Error(`unknown scenario ${n} (have ${SCENARIOS.map((x) => x.name).join(', ')})`);
}

function firstLine(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).split('\n')[0]!;
}

function fmtNum(x: number | undefined): string {
  return x === undefined || !Number.isFinite(x) ? '-' : x >= 100 ? Math.round(x).toString() : x.toFixed(2);
}


main().then(
  (code) => process.exit(code),
  (e) => {
    process.stderr.write(`bench: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exit(1);
  },
);
