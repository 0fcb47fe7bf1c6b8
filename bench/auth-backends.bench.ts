/**
 * AUTH handshakes per second against each credential backend.
 *
 *   node --import tsx bench/auth-backends.bench.ts
 *
 * A handshake is what a client does to get a relay session: connect over TCP, AUTH (401 with a
 * challenge), AUTH with Digest credentials (200 with Use-Path), close. CLIENTS clients (default 20)
 * loop on that concurrently, each as its own account, for SECONDS (default 5) after a 1 s warm-up.
 * Backends: auth-memory; auth-sql on sqlite3 (a file in a temp folder); auth-sql on pg
 * (127.0.0.1:5432, user postgres, database test) and mysql2 (127.0.0.1:3306, root, database test),
 * each in a table made for the run and dropped after. A server that does not answer is skipped.
 *
 * The relay and the clients share this one process and event loop, so the numbers compare
 * backends with each other; they are not the relay's capacity. AUTH_BENCH_SECONDS and
 * AUTH_BENCH_CLIENTS override the defaults. Results go to bench/results/auth-backends.json.
 */

import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { computeHa1 } from '../core/protocol/digest.ts';
import { MsrpTestClient, startTestRelay, type TestRelay } from '../core/testing/index.ts';
import AuthSql from '../plugins/auth-sql/index.ts';
import type { DriverName, SqlDriver } from '../plugins/auth-sql/driver.ts';
import { createDriver } from '../plugins/auth-sql/load-driver.ts';
import { bindValues, compileStatement } from '../plugins/auth-sql/statement.ts';

const SECONDS = Number(process.env['AUTH_BENCH_SECONDS'] ?? 5);
const CLIENTS = Number(process.env['AUTH_BENCH_CLIENTS'] ?? 20);
const WARMUP_SECONDS = 1;
const DOMAIN = 'example.com';
const PASSWORD = 'bench-secret';

interface Result {
  backend: string;
  handshakes: number;
  perSecond: number;
  p50ms: number;
  p99ms: number;
  failures: number;
  skipped?: string;
}

const users = Array.from({ length: CLIENTS }, (_, i) => `user${i}`);

async function fillTable(driver: DriverName, conn: Record<string, unknown>, table: string): Promise<SqlDriver> {
  const db = await createDriver(driver, { filename: '', create: true, poolSize: 1, connectTimeoutMs: 3000, queryTimeoutMs: 5000, ...conn });
  const id = driver === 'pg' ? 'id SERIAL PRIMARY KEY' : driver === 'mysql2' ? 'id INT AUTO_INCREMENT PRIMARY KEY' : 'id INTEGER PRIMARY KEY AUTOINCREMENT';
  await db.run(
    `CREATE TABLE ${table} (${id}, username VARCHAR(64) NOT NULL, domain VARCHAR(64) NOT NULL, password VARCHAR(64) NOT NULL DEFAULT '', ha1 VARCHAR(64) NOT NULL DEFAULT '', UNIQUE (username, domain))`,
    [],
  );
  const s = compileStatement(`INSERT INTO ${table} (username, domain, ha1) VALUES (:u, :d, :h)`, (i) => db.placeholder(i));
  for (const u of users) await db.run(s.text, bindValues(s, { u, d: DOMAIN, h: computeHa1(u, DOMAIN, PASSWORD) }));
  return db;
}

async function measure(backend: string, t: TestRelay): Promise<Result> {
  const latencies: number[] = [];
  let failures = 0;
  const start = performance.now();
  const warmEnd = start + WARMUP_SECONDS * 1000;
  const end = warmEnd + SECONDS * 1000;
  const client = async (username: string) => {
    while (performance.now() < end) {
      const t0 = performance.now();
      try {
        const c = await MsrpTestClient.connect({ port: t.tcpPort, timeoutMs: 10_000 });
        const r = await c.auth({ relayUri: t.authUri(), username, password: PASSWORD });
        await c.close();
        if (r.status !== 200) throw new Error(`AUTH ${r.status}`);
        if (t0 >= warmEnd) latencies.push(performance.now() - t0);
      } catch {
        if (t0 >= warmEnd) failures++;
      }
    }
  };
  await Promise.all(users.map(client));
  const elapsed = (performance.now() - warmEnd) / 1000;
  latencies.sort((a, b) => a - b);
  const pct = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor((latencies.length * p) / 100))] ?? NaN;
  return { backend, handshakes: latencies.length, perSecond: latencies.length / elapsed, p50ms: pct(50), p99ms: pct(99), failures };
}

async function run(): Promise<void> {
  const results: Result[] = [];
  const suffix = `${process.pid}_${randomBytes(3).toString('hex')}`;
  const dir = mkdtempSync(join(tmpdir(), 'msrprelay-auth-bench-'));
  const domainMap = ['domain-map', { default: DOMAIN }] as const;
  const backends: Array<{ name: string; driver?: DriverName; conn?: Record<string, unknown> }> = [
    { name: 'auth-memory' },
    { name: 'auth-sql sqlite3', driver: 'sqlite3', conn: { filename: join(dir, 'users.db') } },
    { name: 'auth-sql pg', driver: 'pg', conn: { host: '127.0.0.1', port: 5432, user: 'postgres', database: 'test' } },
    { name: 'auth-sql mysql2', driver: 'mysql2', conn: { host: '127.0.0.1', port: 3306, user: 'root', password: '', database: 'test' } },
  ];
  try {
    for (const b of backends) {
      let db: SqlDriver | undefined;
      const table = `msrp_bench_${suffix}`;
      let t: TestRelay | undefined;
      try {
        if (b.driver === undefined) {
          t = await startTestRelay({ users: users.map((username) => ({ username, domain: DOMAIN, password: PASSWORD })), plugins: [domainMap] });
        } else {
          db = await fillTable(b.driver, b.conn!, table);
          t = await startTestRelay({ plugins: [[AuthSql, { driver: b.driver, ...b.conn, table, mode: 'ha1', poolSize: 10, createTable: false }], domainMap] });
        }
        process.stderr.write(`${b.name}: ${WARMUP_SECONDS + SECONDS} s with ${CLIENTS} clients...\n`);
        results.push(await measure(b.name, t));
      } catch (e) {
        results.push({ backend: b.name, handshakes: 0, perSecond: 0, p50ms: NaN, p99ms: NaN, failures: 0, skipped: (e as Error).message });
      } finally {
        await t?.close();
        if (db !== undefined) {
          if (b.driver !== 'sqlite3') await db.run(`DROP TABLE IF EXISTS ${table}`, []).catch(() => {});
          await db.close();
        }
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }

  const rows = results.map((r) =>
    r.skipped !== undefined
      ? [r.backend, 'skipped', '', '', '', r.skipped]
      : [r.backend, r.perSecond.toFixed(0), String(r.handshakes), r.p50ms.toFixed(1), r.p99ms.toFixed(1), String(r.failures)],
  );
  const head = ['backend', 'handshakes/s', 'handshakes', 'p50 ms', 'p99 ms', 'failures'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  console.log(`AUTH handshakes (connect + AUTH 401 + AUTH 200 + close), ${CLIENTS} concurrent clients, ${SECONDS} s each`);
  console.log(`node ${process.version}, ${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}; relay and clients in one process`);
  console.log(line(head));
  for (const r of rows) console.log(line(r));

  const out = fileURLToPath(new URL('./results/', import.meta.url));
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, 'auth-backends.json'), JSON.stringify({ date: new Date().toISOString(), clients: CLIENTS, seconds: SECONDS, results }, null, 2));
}

await run();
