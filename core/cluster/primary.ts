/**
 * `msrprelay --workers N` (DESIGN.md §7): one primary process forks N workers with
 * node:cluster. Every worker binds the same listeners (cluster shares them, port 0
 * included) and a private Unix socket; a worker's session-ids start with its index, so a
 * request for another worker's token goes there (core/transport/internal.ts).
 *
 * The primary serves no traffic. It forwards SIGHUP (reload) to every worker; on SIGTERM
 * or SIGINT it sends SIGTERM to every worker, waits for them to drain and exit, removes the
 * socket folder and exits. A worker that dies is forked again with the same index after a
 * short back-off; the sessions it held are lost.
 */

import cluster, { type Worker } from 'node:cluster';
import { EventEmitter } from 'node:events';
import { rmSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from '../plugin.ts';
import { MAX_WORKERS } from '../session/session-table.ts';
import type { WorkerOptions } from './worker-link.ts';

export const WORKER_ID_ENV = 'MSRPRELAY_WORKER_ID';
export const WORKER_COUNT_ENV = 'MSRPRELAY_WORKERS';
export const CLUSTER_DIR_ENV = 'MSRPRELAY_CLUSTER_DIR';

const READY = 'msrprelay:ready';
/** First delay before a dead worker is forked again; doubled while it keeps dying, up to MAX_BACKOFF_MS. */
const BACKOFF_MS = 500;
const MAX_BACKOFF_MS = 30_000;
/** A worker that ran this long before dying is restarted after the first delay again. */
const STABLE_MS = 60_000;

/** Parses `--workers`: a whole number 1 … 62, or `auto` for one per CPU (os.availableParallelism). */
export function parseWorkerCount(text: string): number {
  const n = text === 'auto' ? Math.min(availableParallelism(), MAX_WORKERS) : /^\d+$/.test(text) ? Number(text) : NaN;
  if (!Number.isInteger(n) || n < 1 || n > MAX_WORKERS) throw new Error(`--workers must be a whole number from 1 to ${MAX_WORKERS}, or "auto"; got "${text}"`);
  return n;
}

/** This process's place in a cluster, when the primary forked it. */
export function workerFromEnv(env: NodeJS.ProcessEnv = process.env): WorkerOptions | undefined {
  const id = env[WORKER_ID_ENV];
  const count = env[WORKER_COUNT_ENV];
  const dir = env[CLUSTER_DIR_ENV];
  if (id === undefined || count === undefined || dir === undefined || cluster.isPrimary) return undefined;
  const index = Number(id);
  const n = Number(count);
  if (!Number.isInteger(index) || !Number.isInteger(n) || index < 0 || index >= n || n > MAX_WORKERS) {
    throw new Error(`bad cluster environment: ${WORKER_ID_ENV}=${id} ${WORKER_COUNT_ENV}=${count}`);
  }
  return { index, count: n, socketDir: dir };
}

/**
 * The signals a worker obeys: SIGTERM and SIGHUP as sent by the primary. SIGINT is left to
 * the primary (a terminal's Ctrl-C reaches the whole process group), and losing the primary
 * counts as SIGTERM. A second SIGTERM does not cut the drain short here: a service manager
 * that signals the whole group reaches each worker twice (directly and from the primary);
 * a second signal to the primary kills the workers instead.
 */
export function workerSignals(): Pick<NodeJS.EventEmitter, 'on' | 'off'> {
  const e = new EventEmitter();
  let terminating = false;
  const term = () => {
    if (terminating) return;
    terminating = true;
    e.emit('SIGTERM');
  };
  process.on('SIGTERM', term);
  process.on('SIGHUP', () => e.emit('SIGHUP'));
  process.on('SIGINT', () => {});
  process.on('disconnect', term);
  return e;
}

/** Tells the primary this worker listens; worker 0 also sends the lines the primary prints. */
export function reportReady(lines: string[]): void {
  process.send?.({ type: READY, lines });
}

/** Lets a worker that has shut down exit (the IPC channel would keep it alive). */
export function leaveCluster(): void {
  if (process.connected) process.disconnect();
}

export interface PrimaryOptions {
  count: number;
  /** The command line the workers run (the primary's own). */
  args: string[];
  log: Logger;
  stdout(text: string): void;
  signals: Pick<NodeJS.EventEmitter, 'on' | 'off'>;
  exit(code: number): void;
}

/** Forks the workers and supervises them until SIGTERM/SIGINT; resolves with the exit code. */
export async function runPrimary(o: PrimaryOptions): Promise<number> {
  // mkdtemp makes the folder with mode 0700: only this user reaches the workers' sockets.
  const dir = await mkdtemp(join(tmpdir(), 'msrprelay-'));
  // Workers accept from the shared listening socket themselves (the kernel picks one)
  // instead of the primary accepting every connection and passing it over IPC, which
  // made each new client cost more in cluster mode than in one process. Node's own
  // NODE_CLUSTER_SCHED_POLICY=rr brings the primary's round-robin back.
  if (process.env['NODE_CLUSTER_SCHED_POLICY'] === undefined) cluster.schedulingPolicy = cluster.SCHED_NONE;
  cluster.setupPrimary({ args: o.args });
  const workers: Array<Worker | undefined> = new Array<Worker | undefined>(o.count).fill(undefined);
  const startedAt = new Array<number>(o.count).fill(0);
  const backoff = new Array<number>(o.count).fill(BACKOFF_MS);
  const ready = new Set<number>();
  let serving = false;
  let stopping = false;
  let failed = false;

  return new Promise<number>((done) => {
    const alive = () => workers.filter((w): w is Worker => w !== undefined);
    const finish = () => {
      o.signals.off('SIGTERM', onTerm);
      o.signals.off('SIGINT', onInt);
      o.signals.off('SIGHUP', onHup);
      rmSync(dir, { recursive: true, force: true });
      done(failed ? 1 : 0);
    };
    const stopAll = () => {
      stopping = true;
      const live = alive();
      if (live.length === 0) finish();
      for (const w of live) w.process.kill('SIGTERM');
    };
    const fork = (i: number) => {
      const w = cluster.fork({ [WORKER_ID_ENV]: String(i), [WORKER_COUNT_ENV]: String(o.count), [CLUSTER_DIR_ENV]: dir });
      workers[i] = w;
      startedAt[i] = Date.now();
      w.on('message', (m: { type?: unknown; lines?: unknown }) => {
        if (m?.type !== READY) return;
        ready.add(i);
        if (i === 0 && !serving && Array.isArray(m.lines)) pendingLines = m.lines.map(String);
        if (!serving && ready.size === o.count) {
          serving = true;
          for (const l of pendingLines) o.stdout(l);
          o.log.info('workers ready', { workers: o.count });
        } else if (serving) {
          o.log.info('worker restarted', { worker: i });
        }
      });
      w.on('exit', (code, signal) => {
        if (workers[i] === w) workers[i] = undefined;
        ready.delete(i);
        if (code !== 0) failed ||= stopping;
        if (stopping) {
          if (alive().length === 0) finish();
          return;
        }
        if (!serving) {
          o.log.error(`worker ${i} exited while starting: stopping`, { code, signal });
          failed = true;
          stopAll();
          return;
        }
        const delay = Date.now() - startedAt[i]! > STABLE_MS ? BACKOFF_MS : Math.min(backoff[i]! * 2, MAX_BACKOFF_MS);
        backoff[i] = delay;
        o.log.error(`worker ${i} died: forking it again in ${delay} ms (its sessions are lost)`, { code, signal });
        setTimeout(() => {
          if (!stopping) fork(i);
        }, delay);
      });
    };
    let pendingLines: string[] = [];

    const stop = (signal: string) => {
      if (stopping) {
        o.log.error(`${signal} again: exiting without draining`);
        for (const w of alive()) w.process.kill('SIGKILL');
        rmSync(dir, { recursive: true, force: true });
        o.exit(1);
        return;
      }
      o.log.info(`${signal}: closing every worker (send it again to exit at once)`);
      stopAll();
    };
    const onTerm = () => stop('SIGTERM');
    const onInt = () => stop('SIGINT');
    const onHup = () => {
      if (stopping) return;
      o.log.info('SIGHUP: reloading every worker');
      for (const w of alive()) w.process.kill('SIGHUP');
    };
    o.signals.on('SIGTERM', onTerm);
    o.signals.on('SIGINT', onInt);
    o.signals.on('SIGHUP', onHup);
    for (let i = 0; i < o.count; i++) fork(i);
  });
}
