/**
 * auth-sql: Digest credentials from an SQL table (RFC.md R-31 … R-37). It
 * answers `lookupCredentials` for core:digest from an OpenSIPS/Kamailio style
 * `subscriber` table, in SQLite (embedded default), PostgreSQL or MySQL/MariaDB.
 *
 * A database that is down or slow fails closed: the driver's connect and query
 * timeouts end the lookup and the AUTH is answered 500 (the client learns the
 * relay cannot check credentials now, rather than a 401 that would read as a
 * wrong password or a 403 that would read as a banned account), one error line
 * is logged, and the next AUTH tries the database again, so service resumes by
 * itself. The lookup waits no longer than the relay waits on the tap: its signal
 * ends the wait at the hook's deadline (the relay then answers, see hooks.md).
 */

import { MsrpError, type PluginCommand, type PluginHost, type RelayPlugin, type CredentialQuery, type Credentials } from '../../core/index.ts';
import { CredentialCache } from './credential-cache.ts';
import { timedOut, untilAborted } from '../shared/deadline.ts';
import type { ConnectionOptions, DriverName, SqlDriver } from './driver.ts';
import { secretColumns, type AuthSqlOptions } from './accounts.ts';
import { createDriver } from './load-driver.ts';
import { compileStatement } from './statement.ts';
import { QUERY_PLACEHOLDERS, SubscriberTable, type Columns, type PasswordMode } from './subscriber-table.ts';

export { secretColumns, type AuthSqlOptions, type SeedAccount } from './accounts.ts';

const IDENT = '^[A-Za-z_][A-Za-z0-9_]*$';
const TABLE = '^[A-Za-z_][A-Za-z0-9_]*(\\.[A-Za-z_][A-Za-z0-9_]*)?$';
const HA1 = /^[0-9a-fA-F]{32}$/;

/** Outage log lines are at most this often (ms). */
const LOG_EVERY_MS = 10_000;

export default class AuthSql implements RelayPlugin {
  static readonly schema = {
    type: 'object',
    additionalProperties: false,
    properties: {
      driver: { enum: ['sqlite3', 'better-sqlite3', 'pg', 'mysql2'], default: 'sqlite3' },
      filename: { type: 'string', minLength: 1, default: './data/users.db' },
      url: { type: 'string', minLength: 1 },
      host: { type: 'string', minLength: 1 },
      port: { type: 'integer', minimum: 1, maximum: 65535 },
      user: { type: 'string' },
      password: { type: 'string' },
      database: { type: 'string' },
      ssl: { type: ['boolean', 'object'] },
      poolSize: { type: 'integer', minimum: 1, maximum: 1000, default: 5 },
      timeouts: {
        type: 'object',
        additionalProperties: false,
        default: {},
        properties: {
          connect: { type: 'number', exclusiveMinimum: 0, default: 2 },
          query: { type: 'number', exclusiveMinimum: 0, default: 2 },
        },
      },
      mode: { enum: ['auto', 'ha1', 'plaintext'], default: 'auto' },
      table: { type: 'string', pattern: TABLE, default: 'subscriber' },
      columns: {
        type: 'object',
        additionalProperties: false,
        default: {},
        properties: {
          username: { type: 'string', pattern: IDENT, default: 'username' },
          domain: { type: 'string', pattern: IDENT, default: 'domain' },
          password: { type: 'string', pattern: IDENT, default: 'password' },
          ha1: { type: 'string', pattern: IDENT, default: 'ha1' },
        },
      },
      useDomain: { type: 'boolean', default: true },
      query: { type: 'string', minLength: 1 },
      cache: {
        type: 'object',
        additionalProperties: false,
        default: {},
        properties: {
          ttl: { type: 'number', minimum: 0, default: 0 },
          max: { type: 'integer', minimum: 1, default: 10000 },
        },
      },
      createTable: { type: 'boolean' },
      seed: {
        type: 'array',
        default: [],
        items: {
          type: 'object',
          additionalProperties: false,
          required: ['username', 'domain', 'password'],
          properties: {
            username: { type: 'string', minLength: 1 },
            domain: { type: 'string', minLength: 1 },
            password: { type: 'string', minLength: 1 },
            realm: { type: 'string', minLength: 1 },
          },
        },
      },
    },
  } as const;

  /** `msrprelay users …` manages the accounts of the config's auth-sql entry (users-cli.ts, imported when it runs). */
  static readonly commands: Readonly<Record<string, PluginCommand<AuthSqlOptions>>> = {
    users: {
      summary: 'manage the accounts: add, passwd, remove, list',
      // The command gets the class to open the table with (users-cli.ts does not import this file).
      run: async (argv, ctx) => (await import('./users-cli.ts')).runUsers(argv, ctx, (options) => new AuthSql(options)),
    },
  };

  readonly name = 'auth-sql';
  readonly options: AuthSqlOptions;
  private relay: PluginHost | undefined;
  private driver: SqlDriver | undefined;
  private table: SubscriberTable | undefined;
  private prepared: Promise<void> | undefined;
  private readonly cache: CredentialCache;
  private outage: { since: number; lastLog: number; failures: number } | undefined;

  constructor(options: AuthSqlOptions) {
    this.options = options;
    this.cache = new CredentialCache(options.cache.ttl, options.cache.max);
    if (options.query !== undefined && !/^\s*(select|with)\b/i.test(options.query)) {
      throw new Error('query must be a SELECT returning columns named ha1 and/or password');
    }
    // Checked now, so a wrong placeholder is a config error rather than a failing AUTH.
    if (options.query !== undefined) compileStatement(options.query, () => '?', QUERY_PLACEHOLDERS);
  }

  /** SQLite drivers by default create the file, folder and table; network databases are left alone. */
  get createsTable(): boolean {
    return this.options.createTable ?? isSqlite(this.options.driver);
  }

  async apply(relay: PluginHost): Promise<void> {
    this.relay = relay;
    this.cache.clear();
    const connectMs = this.options.timeouts.connect * 1000;
    const queryMs = this.options.timeouts.query * 1000;
    // Haraka's lesson (STYLE.md): I/O timeouts sit below the hook timeout, so the plugin answers
    // first (500). Past it, the relay's deadline ends the lookup (the tap's signal) and answers.
    const hookMs = relay.config.timeouts.hook * 1000;
    if (connectMs + queryMs >= hookMs) {
      relay.log.warn('auth-sql: timeouts.connect + timeouts.query is not below timeouts.hook; a database that hangs is cut by the hook timeout', {
        connectMs,
        queryMs,
        hookMs,
      });
    }
    // Imports the driver's package now, so --check-config reports a missing one; no connection is opened yet.
    await this.openDriver(connectMs, queryMs);

    relay.hooks.beforeListen.tapPromise(this.name, async () => {
      try {
        await this.prepare();
      } catch (e) {
        // SQLite is a local file: failing to create it is a broken install, reported at start.
        if (isSqlite(this.options.driver)) throw new Error(`auth-sql: cannot open ${this.options.filename}: ${this.scrub(e)}`);
        relay.log.warn('auth-sql: the database is not reachable yet; AUTH is answered 500 until it is', { driver: this.options.driver, error: this.scrub(e) });
      }
    });
    relay.hooks.lookupCredentials.tapPromise(this.name, (q) => this.lookup(q));
  }

  async close(): Promise<void> {
    this.cache.clear();
    const d = this.driver;
    this.driver = undefined;
    this.table = undefined;
    this.prepared = undefined;
    await d?.close();
  }

  /** The table, created and seeded as on start when createTable is on: for `msrprelay users` (users-cli.ts). */
  async openTable(): Promise<SubscriberTable> {
    const table = await this.openDriver(this.options.timeouts.connect * 1000, this.options.timeouts.query * 1000);
    await this.prepare();
    return table;
  }

  /** Makes the driver and the table once (until close()); the timeouts apply to a new driver only. */
  private async openDriver(connectTimeoutMs: number, queryTimeoutMs: number): Promise<SubscriberTable> {
    if (this.table === undefined) {
      const { driver, filename, url, host, port, user, password, database, ssl, poolSize } = this.options;
      const connection = { filename, url, host, port, user, password, database, ssl, poolSize };
      this.driver = await createDriver(driver, { ...connection, create: this.createsTable, connectTimeoutMs, queryTimeoutMs });
      this.table = new SubscriberTable(this.driver, this.options);
    }
    return this.table;
  }

  /** Creates the table and seeds it, once; a failure is retried on the next lookup. */
  private prepare(): Promise<void> {
    if (!this.createsTable) return Promise.resolve();
    this.prepared ??= (async () => {
      const table = this.table!;
      await table.create();
      if (this.options.seed.length > 0 && (await table.count()) === 0) {
        for (const a of this.options.seed) await table.insert(secretColumns(this.options.mode, { ...a, domain: a.domain.toLowerCase() }));
        this.relay?.log.info('auth-sql: created the accounts table with the seed accounts', { accounts: this.options.seed.map((a) => `${a.username}@${a.domain}`) });
      }
    })().catch((e: unknown) => {
      this.prepared = undefined;
      throw e;
    });
    return this.prepared;
  }

  private async lookup(q: CredentialQuery): Promise<Credentials | undefined> {
    const key = `${q.username}\u0000${q.domain}\u0000${q.realm}`;
    const hit = this.cache.get(key);
    if (hit !== undefined) return hit;
    const table = this.table;
    if (table === undefined) throw new MsrpError('MSRP_ERR_INTERNAL', 'The credential store is closed');
    let found;
    try {
      found = await untilAborted(
        (async () => {
          await this.prepare();
          return table.lookup({ username: q.username, domain: q.domain, realm: q.realm });
        })(),
        q.signal,
      );
    } catch (e) {
      // The connection closed: nobody waits for the answer, and the database did nothing wrong.
      if (q.signal.aborted && !timedOut(q.signal)) throw new MsrpError('MSRP_ERR_INTERNAL', 'The connection closed during the lookup');
      // A failure, or no answer by the relay's deadline (e is then the HookTimeoutError the relay answered with).
      this.noteFailure(e);
      // Fail closed with a server-side status: the client's credentials were never checked.
      throw new MsrpError('MSRP_ERR_INTERNAL', 'The credential store is unavailable', { cause: e });
    }
    this.noteSuccess();
    const creds = pick(this.options.mode, found);
    if (creds !== undefined) this.cache.set(key, creds);
    return creds;
  }

  private noteFailure(e: unknown): void {
    const now = Date.now();
    this.outage ??= { since: now, lastLog: 0, failures: 0 };
    this.outage.failures++;
    if (now - this.outage.lastLog < LOG_EVERY_MS) return;
    this.outage.lastLog = now;
    this.relay?.log.error('auth-sql: the credential store is unavailable, AUTH answered 500', {
      driver: this.options.driver,
      error: this.scrub(e),
      failedLookups: this.outage.failures,
    });
  }

  private noteSuccess(): void {
    if (this.outage === undefined) return;
    this.relay?.log.info('auth-sql: the credential store answers again', {
      driver: this.options.driver,
      downSeconds: Math.round((Date.now() - this.outage.since) / 1000),
      failedLookups: this.outage.failures,
    });
    this.outage = undefined;
  }

  /** An error message with the configured password and URL credentials masked (STYLE.md 7). */
  private scrub(e: unknown): string {
    let text = e instanceof Error ? e.message || e.name : String(e);
    const code = (e as { code?: unknown })?.code;
    if (typeof code === 'string' && !text.includes(code)) text = `${code}: ${text}`;
    for (const secret of [this.options.password, this.options.url]) {
      if (secret !== undefined && secret !== '') text = text.split(secret).join('***');
    }
    return text.replace(/(\/\/[^:@/\s]+):[^@/\s]+@/g, '$1:***@');
  }
}

/** What the row gives core:digest in this mode; an empty or malformed secret is no secret. */
function pick(mode: PasswordMode, found: { ha1?: string; password?: string } | undefined): Credentials | undefined {
  if (found === undefined) return undefined;
  const ha1 = found.ha1?.trim();
  const hasHa1 = ha1 !== undefined && HA1.test(ha1);
  const hasPassword = found.password !== undefined && found.password !== '';
  if (mode !== 'plaintext' && hasHa1) return { ha1: ha1.toLowerCase() };
  if (mode !== 'ha1' && hasPassword) return { password: found.password! };
  return undefined;
}

function isSqlite(driver: DriverName): boolean {
  return driver === 'sqlite3' || driver === 'better-sqlite3';
}
