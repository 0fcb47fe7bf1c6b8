// auth-sql against real databases: SQLite files (sqlite3, better-sqlite3), PostgreSQL and MariaDB
// on 127.0.0.1 (RFC 4976 §5.1, §9.1; RFC.md R-31 … R-43). Tables get a unique name per run and
// are dropped afterwards; "the database is down" goes through a TCP proxy the test controls.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { MsrpTestClient } from '../../core/testing/client.ts';
import { startTestRelay, type TestRelay } from '../../core/testing/harness.ts';
import { computeHa1, parseChallenge } from '../../core/protocol/digest.ts';
import type { Logger } from '../../core/plugin.ts';
import AuthSql from '../../plugins/auth-sql/index.ts';
import type { Dialect, DriverName, SqlDriver } from '../../plugins/auth-sql/driver.ts';
import { createDriver } from '../../plugins/auth-sql/load-driver.ts';
import { bindValues, compileStatement } from '../../plugins/auth-sql/statement.ts';
import { TcpProxy } from './auth-sql-proxy.ts';

const DOMAIN = 'example.com';
const ha1 = (u: string, p: string, realm = DOMAIN) => computeHa1(u, realm, p);

interface Backend {
  driver: DriverName;
  dialect: Dialect;
  /** Connection options of a network server (absent for SQLite). */
  server?: { host: string; port: number; user: string; password?: string; database: string };
}

const backends: Backend[] = [
  { driver: 'sqlite3', dialect: 'sqlite' },
  { driver: 'better-sqlite3', dialect: 'sqlite' },
  { driver: 'pg', dialect: 'postgres', server: { host: '127.0.0.1', port: 5432, user: 'postgres', database: 'test' } },
  { driver: 'mysql2', dialect: 'mysql', server: { host: '127.0.0.1', port: 3306, user: 'root', password: '', database: 'test' } },
];

/** An OpenSIPS 3.x `subscriber` table, with the columns auth-sql does not read. */
function subscriberDdl(dialect: Dialect, table: string): string {
  const id = dialect === 'sqlite' ? 'id INTEGER PRIMARY KEY AUTOINCREMENT' : dialect === 'postgres' ? 'id SERIAL PRIMARY KEY' : 'id INT UNSIGNED AUTO_INCREMENT PRIMARY KEY';
  return `CREATE TABLE ${table} (${id}, username VARCHAR(64) NOT NULL DEFAULT '', domain VARCHAR(64) NOT NULL DEFAULT '',
    password VARCHAR(25) NOT NULL DEFAULT '', email_address VARCHAR(64) NOT NULL DEFAULT '',
    ha1 VARCHAR(64) NOT NULL DEFAULT '', ha1b VARCHAR(64) NOT NULL DEFAULT '', rpid VARCHAR(64) DEFAULT NULL,
    UNIQUE (username, domain))`;
}

/** A home-grown accounts table for the custom query and renamed-column tests. */
function customDdl(table: string): string {
  return `CREATE TABLE ${table} (login VARCHAR(64) NOT NULL, sip_domain VARCHAR(64) NOT NULL, pw_hash VARCHAR(64) NOT NULL, pw_plain VARCHAR(64) NOT NULL, active INTEGER NOT NULL)`;
}

async function exec(db: SqlDriver, sql: string, values: Record<string, unknown> = {}): Promise<void> {
  const s = compileStatement(sql, (i) => db.placeholder(i));
  await db.run(s.text, bindValues(s, values));
}

/**
 * Another process takes the write lock of a SQLite file (BEGIN EXCLUSIVE) until released. A separate
 * process, as in production: two SQLite libraries in one process do not see each other's locks.
 */
async function lockInAnotherProcess(filename: string): Promise<() => Promise<void>> {
  const script = `
    const sqlite3 = require('sqlite3');
    const db = new sqlite3.Database(process.argv[1]);
    db.run('BEGIN EXCLUSIVE', (err) => {
      if (err) { console.error(err.message); process.exit(1); }
      process.stdout.write('locked\\n');
      process.stdin.resume();
      process.stdin.on('end', () => db.run('COMMIT', () => db.close(() => process.exit(0))));
    });`;
  const child = spawn(process.execPath, ['-e', script, filename], { stdio: ['pipe', 'pipe', 'inherit'] });
  const [data] = (await once(child.stdout!, 'data')) as [Buffer];
  assert.match(data.toString(), /locked/);
  return async () => {
    child.stdin!.end();
    await once(child, 'exit');
  };
}

function capturingLogger(): Logger & { lines: string[] } {
  const lines: string[] = [];
  const push = (level: string) => (msg: string, fields?: Record<string, unknown>) => lines.push(`${level} ${msg} ${JSON.stringify(fields ?? {})}`);
  return { lines, debug() {}, info: push('info'), warn: push('warn'), error: push('error') };
}

for (const b of backends) {
  describe(`auth-sql with ${b.driver}`, () => {
    const suffix = `${process.pid}_${randomBytes(4).toString('hex')}`;
    const table = `msrp_sub_${suffix}`;
    const custom = `msrp_acct_${suffix}`;
    let dir: string;
    let filename: string;
    let admin: SqlDriver;
    let proxy: TcpProxy | undefined;
    const relays: TestRelay[] = [];

    /** Plugin options that reach the database (through the proxy for network servers). */
    const connection = (): Record<string, unknown> =>
      b.server === undefined
        ? { driver: b.driver, filename, createTable: false }
        : { driver: b.driver, ...b.server, host: '127.0.0.1', port: proxy!.port, timeouts: { connect: 1, query: 1 } };

    const relayWith = async (options: Record<string, unknown>, logger?: Logger): Promise<TestRelay> => {
      const t = await startTestRelay({
        plugins: [[AuthSql, { ...connection(), table, ...options }], ['domain-map', { default: DOMAIN }]],
        ...(logger !== undefined ? { logger } : {}),
      });
      relays.push(t);
      return t;
    };

    const authStatus = async (t: TestRelay, username: string, password: string): Promise<number> => {
      const c = await MsrpTestClient.connect({ port: t.tcpPort });
      try {
        return (await c.auth({ relayUri: t.authUri(), username, password })).status;
      } finally {
        await c.close();
      }
    };

    before(async () => {
      dir = mkdtempSync(join(tmpdir(), 'msrprelay-auth-sql-'));
      filename = join(dir, 'users.db');
      admin = await createDriver(b.driver, {
        filename,
        create: true,
        ...(b.server ?? {}),
        poolSize: 1,
        connectTimeoutMs: 5000,
        queryTimeoutMs: 5000,
      });
      if (b.server !== undefined) proxy = await new TcpProxy({ host: b.server.host, port: b.server.port }).start();
      await exec(admin, subscriberDdl(b.dialect, table));
      const insert = `INSERT INTO ${table} (username, domain, password, ha1) VALUES (:u, :d, :p, :h)`;
      // alice: HA1 only; bob: plain text only; carol: both; dave: another domain.
      await exec(admin, insert, { u: 'alice', d: DOMAIN, p: '', h: ha1('alice', 'secret') });
      await exec(admin, insert, { u: 'bob', d: DOMAIN, p: 'secret', h: '' });
      await exec(admin, insert, { u: 'carol', d: DOMAIN, p: 'secret', h: ha1('carol', 'secret') });
      await exec(admin, insert, { u: 'dave', d: 'example.org', p: '', h: ha1('dave', 'secret', 'example.org') });
      await exec(admin, customDdl(custom));
      const insertCustom = `INSERT INTO ${custom} (login, sip_domain, pw_hash, pw_plain, active) VALUES (:u, :d, :h, '', :a)`;
      await exec(admin, insertCustom, { u: 'eve', d: DOMAIN, h: ha1('eve', 'secret'), a: 1 });
      await exec(admin, insertCustom, { u: 'frank', d: DOMAIN, h: ha1('frank', 'secret'), a: 0 });
    });

    after(async () => {
      for (const t of relays) await t.close();
      if (b.server !== undefined) {
        await exec(admin, `DROP TABLE IF EXISTS ${table}`).catch(() => {});
        await exec(admin, `DROP TABLE IF EXISTS ${custom}`).catch(() => {});
      }
      await admin.close();
      await proxy?.close();
      rmSync(dir, { recursive: true, force: true });
    });

    describe('an OpenSIPS subscriber table, default mode (ha1, else password)', () => {
      let t: TestRelay;
      before(async () => {
        t = await relayWith({});
      });

      it('R-42: a subscriber with only an HA1 gets 200 with Use-Path', async () => {
        const c = await MsrpTestClient.connect({ port: t.tcpPort });
        const r = await c.auth({ relayUri: t.authUri(), username: 'alice', password: 'secret' });
        assert.equal(r.status, 200);
        assert.equal(r.usePath.length, 1);
        await c.close();
      });

      it('a subscriber with only a plain-text password gets 200, and one with both', async () => {
        assert.equal(await authStatus(t, 'bob', 'secret'), 200);
        assert.equal(await authStatus(t, 'carol', 'secret'), 200);
      });

      it('R-37: a wrong password gets 401 with a fresh challenge in the realm', async () => {
        const c = await MsrpTestClient.connect({ port: t.tcpPort });
        const r = await c.auth({ relayUri: t.authUri(), username: 'alice', password: 'wrong' });
        assert.equal(r.status, 401);
        const ch = parseChallenge(r.response.header('WWW-Authenticate')!);
        assert.equal(ch.realm, DOMAIN);
        assert.notEqual(ch.nonce, parseChallenge(r.challenge.header('WWW-Authenticate')!).nonce);
        await c.close();
      });

      it('R-37: an unknown user gets 401, and so does a user of another domain', async () => {
        assert.equal(await authStatus(t, 'zed', 'secret'), 401);
        assert.equal(await authStatus(t, 'dave', 'secret'), 401);
      });
    });

    it('mode "ha1" reads only the ha1 column', async () => {
      const t = await relayWith({ mode: 'ha1' });
      assert.equal(await authStatus(t, 'alice', 'secret'), 200);
      assert.equal(await authStatus(t, 'carol', 'secret'), 200);
      assert.equal(await authStatus(t, 'bob', 'secret'), 401);
    });

    it('mode "plaintext" reads only the password column', async () => {
      const t = await relayWith({ mode: 'plaintext' });
      assert.equal(await authStatus(t, 'bob', 'secret'), 200);
      assert.equal(await authStatus(t, 'carol', 'secret'), 200);
      assert.equal(await authStatus(t, 'bob', 'wrong'), 401);
      assert.equal(await authStatus(t, 'alice', 'secret'), 401);
    });

    it('a configured query with named placeholders decides who may authenticate', async () => {
      const t = await relayWith({
        query: `SELECT pw_hash AS ha1 FROM ${custom} WHERE login = :username AND sip_domain = :domain AND active = 1`,
      });
      assert.equal(await authStatus(t, 'eve', 'secret'), 200);
      assert.equal(await authStatus(t, 'eve', 'wrong'), 401);
      // Inactive: the query finds no row, so the user is unknown.
      assert.equal(await authStatus(t, 'frank', 'secret'), 401);
      assert.equal(await authStatus(t, 'alice', 'secret'), 401);
    });

    it('a renamed table and columns are read in place of subscriber', async () => {
      const t = await relayWith({ table: custom, columns: { username: 'login', domain: 'sip_domain', ha1: 'pw_hash', password: 'pw_plain' } });
      assert.equal(await authStatus(t, 'eve', 'secret'), 200);
      assert.equal(await authStatus(t, 'frank', 'secret'), 200);
      assert.equal(await authStatus(t, 'frank', 'wrong'), 401);
    });

    it('a username that looks like SQL is only ever a value', async () => {
      const t = await relayWith({});
      assert.equal(await authStatus(t, "alice' OR '1'='1", 'secret'), 401);
      assert.equal(await authStatus(t, 'alice', 'secret'), 200);
    });

    if (b.server !== undefined) {
      it('the server down or hanging: AUTH is answered 500 at once, the client stays connected, and service resumes by itself', async () => {
        const log = capturingLogger();
        const t = await relayWith({}, log);
        const c = await MsrpTestClient.connect({ port: t.tcpPort });
        const auth = async () => (await c.auth({ relayUri: t.authUri(), username: 'alice', password: 'secret' })).status;
        assert.equal(await auth(), 200);

        await proxy!.down();
        // Connections refused. Fails closed with a server-side status, not 401/403 (the password was never checked).
        assert.equal(await auth(), 500);
        // R-43 counts only 401/403: an outage does not disconnect clients.
        assert.equal(await auth(), 500);
        assert.equal(await auth(), 500);
        assert.equal(await auth(), 500);
        assert.equal(c.isClosed, false);

        // A server that accepts and never answers: the connect timeout answers before the hook timeout.
        await proxy!.blackhole();
        assert.equal(await auth(), 500);

        await proxy!.up();
        assert.equal(await auth(), 200);
        assert.equal(await auth(), 200);
        await c.close();

        const errors = log.lines.filter((l) => l.startsWith('error '));
        assert.ok(errors.some((l) => /auth-sql: the credential store is unavailable/.test(l)), log.lines.join('\n'));
        assert.ok(log.lines.some((l) => /auth-sql: the credential store answers again/.test(l)), log.lines.join('\n'));
      });

      // pg with trust authentication ignores a password (MariaDB's root would refuse one).
      if (b.driver === 'pg') it('a password in the options never reaches the log', async () => {
        const log = capturingLogger();
        const t = await relayWith({ password: 'pg-pass-7d1c' }, log);
        await proxy!.down();
        try {
          assert.equal(await authStatus(t, 'alice', 'secret'), 500);
        } finally {
          await proxy!.up();
        }
        assert.ok(log.lines.length > 0);
        for (const l of log.lines) assert.doesNotMatch(l, /pg-pass-7d1c/);
        assert.equal(await authStatus(t, 'alice', 'secret'), 200);
      });
    } else {
      it('a locked database file: AUTH is answered 500, and 200 once the lock is gone', async () => {
        const log = capturingLogger();
        const t = await relayWith({ timeouts: { connect: 1, query: 0.3 } }, log);
        const c = await MsrpTestClient.connect({ port: t.tcpPort });
        const auth = async () => (await c.auth({ relayUri: t.authUri(), username: 'alice', password: 'secret' })).status;
        assert.equal(await auth(), 200);
        // Another process holds the write lock: readers wait for the busy timeout, then give up.
        const release = await lockInAnotherProcess(filename);
        try {
          assert.equal(await auth(), 500);
          assert.equal(c.isClosed, false);
        } finally {
          await release();
        }
        assert.equal(await auth(), 200);
        await c.close();
        assert.ok(log.lines.some((l) => /^error auth-sql: the credential store is unavailable/.test(l)), log.lines.join('\n'));
      });

      it('a missing database file (createTable off): 500, then 200 once the file is there', async () => {
        const missing = join(dir, 'later', 'users.db');
        const t = await startTestRelay({
          plugins: [[AuthSql, { driver: b.driver, filename: missing, createTable: false }], ['domain-map', { default: DOMAIN }]],
        });
        relays.push(t);
        assert.equal(await authStatus(t, 'alice', 'secret'), 500);
        const db = await createDriver(b.driver, { filename: missing, create: true, poolSize: 1, connectTimeoutMs: 5000, queryTimeoutMs: 5000 });
        await exec(db, subscriberDdl('sqlite', 'subscriber'));
        await exec(db, `INSERT INTO subscriber (username, domain, ha1) VALUES ('alice', :d, :h)`, { d: DOMAIN, h: ha1('alice', 'secret') });
        await db.close();
        assert.equal(await authStatus(t, 'alice', 'secret'), 200);
      });

      it('createTable (SQLite default) makes the folder, file and table, and seeds an empty table once', async () => {
        const fresh = join(dir, 'new', 'deeper', 'users.db');
        const seed = [
          { username: 'alice', domain: DOMAIN, password: 'secret' },
          { username: 'bob', domain: DOMAIN, password: 'secret' },
        ];
        const t = await startTestRelay({
          plugins: [[AuthSql, { driver: b.driver, filename: fresh, seed }], ['domain-map', { default: DOMAIN }]],
        });
        assert.equal(await authStatus(t, 'alice', 'secret'), 200);
        assert.equal(await authStatus(t, 'bob', 'wrong'), 401);
        await t.close();
        // A second start does not seed again: a removed demo account stays removed.
        const db = await createDriver(b.driver, { filename: fresh, create: false, poolSize: 1, connectTimeoutMs: 5000, queryTimeoutMs: 5000 });
        await exec(db, `DELETE FROM subscriber WHERE username = 'bob'`);
        const t2 = await startTestRelay({
          plugins: [[AuthSql, { driver: b.driver, filename: fresh, seed }], ['domain-map', { default: DOMAIN }]],
        });
        relays.push(t2);
        assert.equal(await authStatus(t2, 'bob', 'secret'), 401);
        assert.equal(await authStatus(t2, 'alice', 'secret'), 200);
        // The seed was stored as HA1, never as the password itself.
        const rows = await db.all(`SELECT password, ha1 FROM subscriber WHERE username = 'alice'`, []);
        assert.deepEqual(rows.map((r) => [r.password, r.ha1]), [['', ha1('alice', 'secret')]]);
        await db.close();
      });

      it('with cache.ttl, a changed password takes effect at once after a reload (SIGHUP)', async () => {
        const plugins = [[AuthSql, { ...connection(), table, cache: { ttl: 60 } }], ['domain-map', { default: DOMAIN }]];
        const t = await startTestRelay({ plugins });
        relays.push(t);
        await exec(admin, `INSERT INTO ${table} (username, domain, ha1) VALUES ('gina', :d, :h)`, { d: DOMAIN, h: ha1('gina', 'old-pw') });
        assert.equal(await authStatus(t, 'gina', 'old-pw'), 200);
        await exec(admin, `UPDATE ${table} SET ha1 = :h WHERE username = 'gina'`, { h: ha1('gina', 'new-pw') });
        // Still cached.
        assert.equal(await authStatus(t, 'gina', 'old-pw'), 200);
        await t.relay.reload({ hostname: '127.0.0.1', listen: [{ transport: 'tcp', host: '127.0.0.1', port: 0, insecureAuth: true }], plugins });
        assert.equal(await authStatus(t, 'gina', 'old-pw'), 401);
        assert.equal(await authStatus(t, 'gina', 'new-pw'), 200);
      });

      it('with cache.ttl, a known account still authenticates while the file is locked', async () => {
        const t = await relayWith({ cache: { ttl: 60 }, timeouts: { connect: 1, query: 0.3 } });
        assert.equal(await authStatus(t, 'carol', 'secret'), 200);
        const release = await lockInAnotherProcess(filename);
        try {
          assert.equal(await authStatus(t, 'carol', 'secret'), 200);
          assert.equal(await authStatus(t, 'carol', 'wrong'), 401);
          // Not cached: the database must answer.
          assert.equal(await authStatus(t, 'bob', 'secret'), 500);
        } finally {
          await release();
        }
      });
    }
  });
}
