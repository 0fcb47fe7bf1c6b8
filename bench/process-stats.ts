/**
 * CPU time and memory of a relay under test, read from /proc (Linux).
 *
 * A target is a process group: our relay and the raw pipe are spawned as group
 * leaders (their tsx/esbuild helpers belong to it too); Kamailio's main process
 * and its worker processes share the group the daemon made. CPU is utime + stime
 * of every live member; memory is the sum of Pss (shared pages split between the
 * processes that map them, so Kamailio's shared memory is not counted once per
 * worker), with Rss as a fallback where smaps_rollup cannot be read.
 */

import { readdirSync, readFileSync } from 'node:fs';

const CLOCK_TICKS = 100; // sysconf(_SC_CLK_TCK) on Linux

interface StatFields {
  pgrp: number;
  ticks: number;
}

function readStat(pid: number): StatFields | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'latin1');
  } catch {
    return undefined;
  }
  // comm may hold blanks and parentheses: fields start after the last ')'.
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return { pgrp: Number(rest[2]), ticks: Number(rest[11]) + Number(rest[12]) };
}

/** The process group id of `pid`. */
export function processGroupOf(pid: number): number | undefined {
  return readStat(pid)?.pgrp;
}

/** Every live process of group `pgid`. */
export function groupMembers(pgid: number): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    const c = name.charCodeAt(0);
    if (c < 0x30 || c > 0x39) continue;
    const pid = Number(name);
    if (readStat(pid)?.pgrp === pgid) out.push(pid);
  }
  return out;
}

/** utime + stime of the processes, in seconds. */
export function cpuSeconds(pids: readonly number[]): number {
  let ticks = 0;
  for (const pid of pids) ticks += readStat(pid)?.ticks ?? 0;
  return ticks / CLOCK_TICKS;
}

/** Memory of the processes in octets: Pss summed (Rss when Pss is unreadable). */
export function memoryBytes(pids: readonly number[]): { pss: number; rss: number } {
  let pss = 0;
  let rss = 0;
  for (const pid of pids) {
    let p: number | undefined;
    let r: number | undefined;
    try {
      const t = readFileSync(`/proc/${pid}/smaps_rollup`, 'latin1');
      p = kb(t, 'Pss:');
      r = kb(t, 'Rss:');
    } catch {
      /* fall back to status */
    }
    if (r === undefined) {
      try {
        r = kb(readFileSync(`/proc/${pid}/status`, 'latin1'), 'VmRSS:');
      } catch {
        r = 0;
      }
    }
    rss += r ?? 0;
    pss += p ?? r ?? 0;
  }
  return { pss, rss };
}

function kb(text: string, key: string): number | undefined {
  const i = text.indexOf(key);
  if (i === -1) return undefined;
  const m = /\s*(\d+)\s*kB/.exec(text.slice(i + key.length, i + key.length + 40));
  return m === null ? undefined : Number(m[1]) * 1024;
}

/** CPU seconds the load generator itself used (user + system), for the ceiling line. */
export function ownCpuSeconds(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}
