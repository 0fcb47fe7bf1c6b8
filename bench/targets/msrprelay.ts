/**
 * This project's relay, as an operator runs it: `node bin/msrprelay.js --config FILE`
 * in a child process, with a config generated for the run (one plain TCP listener
 * on a free loopback port, AUTH allowed on it, limits raised so the bench, not
 * the relay's abuse limits, decides how much load there is).
 *
 * Variants:
 * - `msrprelay`        auth-memory with alice and bob;
 * - `msrprelay-sql`    auth-sql on a SQLite file (runs when plugins/auth-sql exists);
 * - `msrprelay-wN`     `msrprelay --workers N`: N worker processes (DESIGN.md §7)
 *                      sharing the listener; the process group holds them all.
 */

import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { computeHa1 } from '../../core/protocol/digest.ts';
import { testCertificates } from '../../core/testing/harness.ts';
import type { Address, Transport } from '../loadgen/endpoint.ts';
import { exitedBeforeListening, freePort, relayClient, spawnGroup, tail, waitForPort, REALM, USERS, type RunningTarget, type TargetSpec } from './target.ts';

export interface MsrprelayOptions {
  /** The repository root (where bin/ and plugins/ are). */
  root: string;
  auth: 'memory' | 'sql';
  /** Worker processes (1 = today's single process). */
  workers: number;
  /** Extra node flags for the relay process (e.g. --cpu-prof). */
  nodeArgs?: string[];
  /** A command the relay's node runs under (e.g. valgrind's callgrind, --instructions). */
  wrapper?: string[];
  /** Keep the temp dir (config, log, profiles) after stop. */
  keep?: boolean;
  /** The target's name instead of the variant's (`baseline`: another checkout's relay, for A/B runs). */
  label?: string;
  /** Listeners to open besides TCP (--transports): tls, ws, wss (ws/wss when the checkout has the websocket plugin). */
  transports?: ReadonlySet<Transport>;
}

/** True when the checkout's dist/ build is there and newer than its sources. */
export function distIsFresh(root: string): boolean {
  const built = join(root, 'dist/core/cli.js');
  if (!existsSync(built)) return false;
  return Math.max(newestTs(join(root, 'core')), newestTs(join(root, 'plugins'))) <= statSync(built).mtimeMs;
}

/** Which code the relay child runs: the build in dist/ when it is there and fresh, else the sources through tsx. */
export function relayRunner(root: string): { args: string[]; note: string } {
  const bin = join(root, 'bin/msrprelay.js');
  const built = join(root, 'dist/core/cli.js');
  if (!existsSync(built)) return { args: [bin], note: 'bin/msrprelay.js, no dist/: sources through tsx (same code, slower start)' };
  if (!distIsFresh(root)) {
    return {
      // tsx by its resolved location: the relay runs in a temp dir, where a bare 'tsx' does not resolve.
      args: ['--import', import.meta.resolve('tsx'), join(root, 'bench/targets/relay-main.ts')],
      note: 'dist/ is older than the sources: core/cli.ts through tsx (npm run build to use dist/)',
    };
  }
  return { args: [bin], note: 'bin/msrprelay.js on dist/ (npm run build output)' };
}

function newestTs(dir: string): number {
  let newest = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) newest = Math.max(newest, newestTs(p));
    else if (e.name.endsWith('.ts')) newest = Math.max(newest, statSync(p).mtimeMs);
  }
  return newest;
}

export function msrprelayTarget(o: MsrprelayOptions): TargetSpec {
  const name = o.label ?? (o.workers > 1 ? `msrprelay-w${o.workers}` : o.auth === 'sql' ? 'msrprelay-sql' : 'msrprelay');
  const hasWebSocket = existsSync(join(o.root, 'plugins/websocket/index.ts'));
  const wanted = [...(o.transports ?? [])].filter((t) => t !== 'tcp' && (hasWebSocket || (t !== 'ws' && t !== 'wss')));
  return {
    name,
    kind: 'relay',
    root: o.root,
    ...(o.nodeArgs !== undefined ? { nodeArgs: o.nodeArgs } : {}),
    ...(o.wrapper !== undefined ? { wrapper: o.wrapper } : {}),
    keep: o.keep === true,
    workers: o.workers,
    auth: o.auth,
    transports: ['tcp', ...wanted],
    description:
      o.label !== undefined
        ? `the relay of ${o.root}`
        : o.auth === 'sql'
        ? 'this relay, auth-sql on SQLite (sqlite3 driver)'
        : o.workers > 1
          ? `this relay with ${o.workers} worker processes`
          : 'this relay, auth-memory',
    unavailable() {
      if (o.auth === 'sql' && !existsSync(join(o.root, 'plugins/auth-sql/index.ts'))) return 'plugins/auth-sql is not there yet';
      return undefined;
    },
    skips(scenario) {
      // The SQL variant differs from the memory one only on the AUTH path.
      if (o.auth === 'sql' && scenario !== 'auth') return 'auth-sql only changes AUTH: measured in the auth scenario';
      return undefined;
    },
    async start(): Promise<RunningTarget> {
      const dir = mkdtempSync(join(tmpdir(), 'msrprelay-bench-'));
      const port = await freePort();
      const plugins: unknown[] = [['domain-map', { default: REALM }]];
      if (o.auth === 'sql') {
        const filename = join(dir, 'users.db');
        await makeSubscriberDb(filename);
        plugins.unshift(['auth-sql', { driver: 'sqlite3', filename }]);
      } else {
        plugins.unshift(['auth-memory', { users: Object.values(USERS).map((u) => ({ ...u, domain: REALM })) }]);
      }
      // Other transports on their own ports; ws is loopback, AUTH allowed on it like on TCP.
      const extra: Array<{ transport: Transport; port: number }> = [];
      for (const t of wanted) extra.push({ transport: t, port: await freePort() });
      const certs = extra.some((e) => e.transport === 'tls' || e.transport === 'wss') ? await testCertificates() : undefined;
      const listen: unknown[] = [{ transport: 'tcp', host: '127.0.0.1', port, insecureAuth: true }];
      for (const e of extra) {
        const tlsFiles = e.transport === 'tls' || e.transport === 'wss' ? { cert: certs!.server.certFile, key: certs!.server.keyFile } : {};
        listen.push({ transport: e.transport, host: '127.0.0.1', port: e.port, ...(e.transport === 'ws' ? { insecureAuth: true } : {}), ...tlsFiles });
      }
      const config = {
        hostname: '127.0.0.1',
        listen,
        limits: {
          // the single-chunk bulk case sends one chunk of the whole file
          maxMessageSize: 2 ** 40,
          maxConnectionsPerIp: 1_000_000,
          maxConnections: 1_000_000,
          maxSessionsPerConnection: 10_000,
        },
        plugins,
      };
      const configFile = join(dir, 'msrprelay.config.json');
      writeFileSync(configFile, JSON.stringify(config, null, 2));
      const args = [...(o.nodeArgs ?? []), ...relayRunner(o.root).args, '--config', configFile];
      if (o.workers > 1) args.push('--workers', String(o.workers));
      const w = o.wrapper;
      const g = w !== undefined && w.length > 0 ? spawnGroup(w[0]!, [...w.slice(1), process.execPath, ...args], { cwd: dir, log: join(dir, 'relay.log') }) : spawnGroup(process.execPath, args, { cwd: dir, log: join(dir, 'relay.log') });
      // Under valgrind the relay takes tens of seconds to start.
      const startMs = w !== undefined ? 300_000 : 60_000;
      try {
        await waitForPort(port, startMs, () => exitedBeforeListening(g));
        for (const e of extra) await waitForPort(e.port, startMs, () => exitedBeforeListening(g));
      } catch (e) {
        await g.stop();
        throw new Error(`${name} did not start: ${(e as Error).message}\n${tail(g.log)}`);
      }
      const addrs: Partial<Record<Transport, Address>> = { tcp: { host: '127.0.0.1', port, transport: 'tcp' } };
      for (const e of extra) addrs[e.transport] = { host: '127.0.0.1', port: e.port, transport: e.transport };
      return relayClient(addrs, g.pids, async () => {
        await g.stop();
        if (o.keep !== true) rmSync(dir, { recursive: true, force: true });
      });
    },
  };
}

/**
 * An OpenSIPS-style `subscriber` table (DESIGN.md §5) with alice and bob, written
 * with the sqlite3 package the relay itself depends on.
 */
async function makeSubscriberDb(filename: string): Promise<void> {
  const mod = (await import('sqlite3')) as unknown as { default: { Database: new (f: string, cb: (e: Error | null) => void) => SqliteDb } };
  const db = await new Promise<SqliteDb>((resolve, reject) => {
    const d = new mod.default.Database(filename, (e) => (e ? reject(e) : resolve(d)));
  });
  const run = (sql: string, params: unknown[] = []) =>
    new Promise<void>((resolve, reject) => db.run(sql, params, (e) => (e ? reject(e) : resolve())));
  await run(
    'CREATE TABLE subscriber (id INTEGER PRIMARY KEY AUTOINCREMENT, username TEXT NOT NULL, domain TEXT NOT NULL, ' +
      "password TEXT NOT NULL DEFAULT '', ha1 TEXT NOT NULL DEFAULT '', ha1b TEXT NOT NULL DEFAULT '', email_address TEXT, rpid TEXT)",
  );
  for (const u of Object.values(USERS)) {
    await run('INSERT INTO subscriber (username, domain, password, ha1) VALUES (?, ?, ?, ?)', [
      u.username,
      REALM,
      u.password,
      computeHa1(u.username, REALM, u.password),
    ]);
  }
  await new Promise<void>((resolve, reject) => db.close((e) => (e ? reject(e) : resolve())));
}

interface SqliteDb {
  run(sql: string, params: unknown[], cb: (e: Error | null) => void): void;
  close(cb: (e: Error | null) => void): void;
}
