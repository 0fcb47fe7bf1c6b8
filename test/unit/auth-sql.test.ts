// auth-sql without a server: named placeholders, option checking at load time, the credential cache.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { loadPlugins } from '../../core/plugin-loader.ts';
import AuthSql from '../../plugins/auth-sql/index.ts';
import type { DriverName } from '../../plugins/auth-sql/driver.ts';
import { importDriverPackage, MissingDriverError } from '../../plugins/auth-sql/load-driver.ts';
import { CredentialCache } from '../../plugins/auth-sql/credential-cache.ts';
import { bindValues, compileStatement, StatementError } from '../../plugins/auth-sql/statement.ts';
import { QUERY_PLACEHOLDERS } from '../../plugins/auth-sql/subscriber-table.ts';

const pg = (i: number) => `$${i + 1}`;
const q = () => '?';

describe('named placeholders', () => {
  it('become each driver’s positional form, values in order of appearance', () => {
    const s = compileStatement('SELECT ha1 FROM t WHERE username = :username AND (domain = :domain OR :domain = \'\')', pg);
    assert.equal(s.text, "SELECT ha1 FROM t WHERE username = $1 AND (domain = $2 OR $3 = '')");
    assert.deepEqual(bindValues(s, { username: 'alice', domain: 'example.com' }), ['alice', 'example.com', 'example.com']);
    assert.equal(compileStatement('SELECT 1 FROM t WHERE a = :username', q).text, 'SELECT 1 FROM t WHERE a = ?');
  });

  it('leave quoted text, quoted identifiers, comments and ::casts alone', () => {
    const sql = `SELECT ':x', "a:b", \`c:d\`, 'it''s :y', ha1::text -- :z\n FROM t /* :w */ WHERE u = :username`;
    const s = compileStatement(sql, pg, QUERY_PLACEHOLDERS);
    assert.deepEqual(s.names, ['username']);
    assert.equal(s.text, `SELECT ':x', "a:b", \`c:d\`, 'it''s :y', ha1::text -- :z\n FROM t /* :w */ WHERE u = $1`);
  });

  it('refuse a name the lookup does not provide', () => {
    assert.throws(() => compileStatement('SELECT ha1 FROM t WHERE u = :user', q, QUERY_PLACEHOLDERS), (e: unknown) => e instanceof StatementError && /:user\b.*:username/.test(e.message));
  });
});

describe('options', () => {
  // As the relay loads a config entry: schema (defaults filled in), then the constructor.
  const load = async (options: Record<string, unknown>) => (await loadPlugins([['auth-sql', options]], { baseDir: process.cwd() }))[0] as AuthSql;

  it('a query with an unknown placeholder is refused when the config loads, naming it', async () => {
    await assert.rejects(load({ filename: ':memory:', query: 'SELECT ha1 FROM subscriber WHERE username = :user' }), /auth-sql.*unknown placeholder :user/);
  });

  it('a query that is not a SELECT is refused', async () => {
    await assert.rejects(load({ filename: ':memory:', query: 'DELETE FROM subscriber WHERE username = :username' }), /auth-sql.*must be a SELECT/);
  });

  it('table and column names must be plain identifiers (they are written into SQL)', async () => {
    await assert.rejects(load({ filename: ':memory:', table: 'subscriber; DROP TABLE x' }), /auth-sql.*table/);
    await assert.rejects(load({ filename: ':memory:', columns: { ha1: 'ha1 --' } }), /auth-sql.*ha1/);
  });

  it('defaults: sqlite3, the subscriber table and its OpenSIPS columns, auto mode, no cache, timeouts of 2 s', async () => {
    const p = await load({ filename: ':memory:' });
    assert.equal(p.options.driver, 'sqlite3');
    assert.equal(p.options.table, 'subscriber');
    assert.deepEqual(p.options.columns, { username: 'username', domain: 'domain', password: 'password', ha1: 'ha1' });
    assert.equal(p.options.mode, 'auto');
    assert.deepEqual(p.options.cache, { ttl: 0, max: 10000 });
    assert.deepEqual(p.options.timeouts, { connect: 2, query: 2 });
    assert.equal(p.createsTable, true);
    assert.equal((await load({ driver: 'pg' })).createsTable, false);
  });

  it('a driver package that is not installed is named with the command that installs it', async () => {
    const name = 'msrprelay-no-such-driver' as DriverName;
    await assert.rejects(importDriverPackage(name), (e: unknown) => e instanceof MissingDriverError && /auth-sql: .*npm install msrprelay-no-such-driver/.test(e.message));
  });
});

describe('credential cache', () => {
  it('keeps found credentials for ttl seconds, drops the oldest when full, and is off at ttl 0', () => {
    const c = new CredentialCache(10, 2);
    c.set('a', { ha1: '0'.repeat(32) }, 0);
    c.set('b', { password: 'x' }, 0);
    c.set('c', { password: 'y' }, 0);
    assert.equal(c.get('a', 1), undefined);
    assert.deepEqual(c.get('b', 1), { password: 'x' });
    assert.equal(c.get('b', 10_000), undefined);
    const off = new CredentialCache(0, 100);
    off.set('a', { password: 'x' });
    assert.equal(off.get('a'), undefined);
  });
});
