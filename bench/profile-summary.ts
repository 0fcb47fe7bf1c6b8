/**
 * Reads a V8 .cpuprofile (node --cpu-prof) and lists where the process spent its
 * own time: the top functions by self time, and self time per source file
 * (core/protocol/framer.ts, core/session/router.ts, core/session/writer.ts,
 * Node's internals, ...). Idle time is left out of the percentages; the first
 * SKIP_MS milliseconds (the process starting up) can be left out too.
 *
 *   node --import tsx bench/profile-summary.ts FILE.cpuprofile [TOP] [SKIP_MS]
 */

import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

function shortUrl(url: string): string {
  if (url === '') return '';
  const p = url.replace(/^file:\/\//, '');
  for (const marker of ['/core/', '/plugins/', '/bench/', '/node_modules/']) {
    const i = p.lastIndexOf(marker);
    if (i !== -1) return p.slice(i + 1);
  }
  if (p.startsWith('node:')) return p;
  return p.split('/').slice(-2).join('/');
}

/** Self time per function and per file; undefined when the file is not a CPU profile. */
export function summariseProfile(file: string, top = 25, skipMs = 0): string | undefined {
  const prof = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  if (!Array.isArray(prof.nodes) || !Array.isArray(prof.samples)) return undefined;
  const byId = new Map<number, ProfileNode>();
  for (const n of prof.nodes) byId.set(n.id, n);
  const selfUs = new Map<number, number>();
  let clock = 0;
  for (let i = 0; i < prof.samples.length; i++) {
    const id = prof.samples[i]!;
    const dt = prof.timeDeltas[i] ?? 0;
    clock += dt;
    // start-up (module loading, config validation) is not what a profile of the load is about
    if (clock < skipMs * 1000) continue;
    selfUs.set(id, (selfUs.get(id) ?? 0) + dt);
  }
  const fn = new Map<string, number>();
  const files = new Map<string, number>();
  let busy = 0;
  let idle = 0;
  for (const [id, us] of selfUs) {
    const cf = byId.get(id)!.callFrame;
    if (cf.functionName === '(idle)') {
      idle += us;
      continue;
    }
    busy += us;
    const url = shortUrl(cf.url);
    const name = `${cf.functionName === '' ? '(anonymous)' : cf.functionName}${url === '' ? '' : `  ${url}:${cf.lineNumber + 1}`}`;
    fn.set(name, (fn.get(name) ?? 0) + us);
    const f = url === '' ? cf.functionName : url.startsWith('node:') ? 'node: internals' : url;
    files.set(f, (files.get(f) ?? 0) + us);
  }
  const pct = (us: number) => `${((100 * us) / busy).toFixed(1).padStart(5)}%`;
  const lines = [`busy ${(busy / 1e6).toFixed(2)} s, idle ${(idle / 1e6).toFixed(2)} s`, '', 'self time by file:'];
  for (const [f, us] of [...files].sort((a, b) => b[1] - a[1]).slice(0, 15)) lines.push(`  ${pct(us)}  ${f}`);
  lines.push('', `top ${top} functions by self time:`);
  for (const [f, us] of [...fn].sort((a, b) => b[1] - a[1]).slice(0, top)) lines.push(`  ${pct(us)}  ${f}`);
  return lines.join('\n');
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const file = process.argv[2];
  if (file === undefined) {
    process.stderr.write('usage: node --import tsx bench/profile-summary.ts FILE.cpuprofile [TOP] [SKIP_MS]\n');
    process.exit(2);
  }
  process.stdout.write(`${summariseProfile(file, Number(process.argv[3] ?? 25), Number(process.argv[4] ?? 0)) ?? 'not a CPU profile'}\n`);
}
