/**
 * The accounts table as auth-sql reads and the `msrprelay users` command writes
 * it. The default layout is OpenSIPS's (and Kamailio's) `subscriber` table:
 * `username`, `domain`, `password` (plain text) and `ha1` = MD5(username ":"
 * realm ":" password). Table and column names are configurable and checked to be
 * plain identifiers (the schema's pattern), so they are written into SQL as
 * they are; every value goes through a placeholder.
 */

import type { Dialect, Row, SqlDriver } from './driver.ts';
import { bindValues, compileStatement, type Statement } from './statement.ts';

export interface Columns {
  username: string;
  domain: string;
  password: string;
  ha1: string;
}

export type PasswordMode = 'ha1' | 'plaintext' | 'auto';

export interface TableLayout {
  table: string;
  columns: Columns;
  /** False: one domain only, lookups ignore the domain column (Kamailio's use_domain=0). */
  useDomain: boolean;
  /** Which column the lookup reads: ha1, password, or ha1 when set else password. */
  mode: PasswordMode;
  /** A whole lookup query instead of the default one (`:username`, `:domain`, `:realm`). */
  query?: string;
}

/** What a lookup found: the columns that hold a secret, named `ha1` and `password`. */
export interface StoredSecret {
  ha1?: string;
  password?: string;
}

export interface AccountRow {
  username: string;
  domain: string;
  /** Which secret the row holds (the secret itself is never returned). */
  stored: 'ha1' | 'plaintext' | 'none';
}

/** Placeholders a configured lookup query may use. */
export const QUERY_PLACEHOLDERS: ReadonlySet<string> = new Set(['username', 'domain', 'realm']);

export class SubscriberTable {
  readonly layout: TableLayout;
  private readonly driver: SqlDriver;
  private readonly statements = new Map<string, Statement>();
  private readonly lookupStatement: Statement;

  constructor(driver: SqlDriver, layout: TableLayout) {
    this.driver = driver;
    this.layout = layout;
    this.lookupStatement = compileStatement(layout.query ?? this.defaultLookup(), (i) => driver.placeholder(i), QUERY_PLACEHOLDERS);
  }

  /** The lookup query as written before compilation (for docs and --print-config). */
  defaultLookup(): string {
    const { table, columns: c, mode } = this.layout;
    const wanted = mode === 'ha1' ? [`${c.ha1} AS ha1`] : mode === 'plaintext' ? [`${c.password} AS password`] : [`${c.ha1} AS ha1`, `${c.password} AS password`];
    return `SELECT ${wanted.join(', ')} FROM ${table} WHERE ${this.where()} LIMIT 1`;
  }

  /** The secret of (username, domain), or undefined when no row matches. */
  async lookup(q: { username: string; domain: string; realm: string }): Promise<StoredSecret | undefined> {
    const rows = await this.driver.all(this.lookupStatement.text, bindValues(this.lookupStatement, q));
    const row = rows[0];
    if (row === undefined) return undefined;
    const out: StoredSecret = {};
    for (const [k, v] of Object.entries(row)) {
      const key = k.toLowerCase();
      if ((key === 'ha1' || key === 'password') && v !== null && v !== undefined) out[key] = Buffer.isBuffer(v) ? v.toString('utf8') : String(v);
    }
    return out;
  }

  /** Creates the table when it does not exist (OpenSIPS column types, one row per username and domain). */
  async create(): Promise<void> {
    const { table, columns: c, useDomain } = this.layout;
    const d: Dialect = this.driver.dialect;
    const id = d === 'sqlite' ? 'id INTEGER PRIMARY KEY AUTOINCREMENT' : d === 'postgres' ? 'id SERIAL PRIMARY KEY' : 'id INT UNSIGNED AUTO_INCREMENT PRIMARY KEY';
    const text = (n: number) => (d === 'sqlite' ? 'TEXT' : `VARCHAR(${n})`);
    const unique = useDomain ? `${c.username}, ${c.domain}` : c.username;
    await this.driver.run(
      `CREATE TABLE IF NOT EXISTS ${table} (${id}, ` +
        `${c.username} ${text(64)} NOT NULL DEFAULT '', ${c.domain} ${text(64)} NOT NULL DEFAULT '', ` +
        `${c.password} ${text(64)} NOT NULL DEFAULT '', ${c.ha1} ${text(64)} NOT NULL DEFAULT '', ` +
        `UNIQUE (${unique}))`,
      [],
    );
  }

  async count(): Promise<number> {
    const rows = await this.exec('all', `SELECT COUNT(*) AS n FROM ${this.layout.table}`, {});
    return Number(rows[0]?.n ?? rows[0]?.N ?? 0);
  }

  async exists(username: string, domain: string): Promise<boolean> {
    const c = this.layout.columns;
    const rows = await this.exec('all', `SELECT ${c.username} AS username FROM ${this.layout.table} WHERE ${this.where()}`, { username, domain });
    return rows.length > 0;
  }

  async insert(a: { username: string; domain: string; password: string; ha1: string }): Promise<void> {
    const c = this.layout.columns;
    await this.exec(
      'run',
      `INSERT INTO ${this.layout.table} (${c.username}, ${c.domain}, ${c.password}, ${c.ha1}) VALUES (:username, :domain, :password, :ha1)`,
      a,
    );
  }

  /** Sets the secret of an account; resolves with the number of rows changed. */
  async update(a: { username: string; domain: string; password: string; ha1: string }): Promise<number> {
    const c = this.layout.columns;
    return this.exec('run', `UPDATE ${this.layout.table} SET ${c.password} = :password, ${c.ha1} = :ha1 WHERE ${this.where()}`, a);
  }

  async remove(username: string, domain: string): Promise<number> {
    return this.exec('run', `DELETE FROM ${this.layout.table} WHERE ${this.where()}`, { username, domain });
  }

  async list(domain?: string): Promise<AccountRow[]> {
    const c = this.layout.columns;
    const filter = domain !== undefined ? ` WHERE ${c.domain} = :domain` : '';
    const rows = await this.exec(
      'all',
      `SELECT ${c.username} AS username, ${c.domain} AS domain, ${c.ha1} AS ha1, ${c.password} AS password FROM ${this.layout.table}${filter} ORDER BY ${c.domain}, ${c.username}`,
      domain !== undefined ? { domain } : {},
    );
    return rows.map((r) => {
      const v = lower(r);
      const ha1 = String(v.ha1 ?? '');
      const password = String(v.password ?? '');
      return { username: String(v.username), domain: String(v.domain), stored: ha1 !== '' ? 'ha1' : password !== '' ? 'plaintext' : 'none' };
    });
  }

  private where(): string {
    const c = this.layout.columns;
    return this.layout.useDomain ? `${c.username} = :username AND ${c.domain} = :domain` : `${c.username} = :username`;
  }

  private exec(kind: 'all', sql: string, values: Record<string, unknown>): Promise<Row[]>;
  private exec(kind: 'run', sql: string, values: Record<string, unknown>): Promise<number>;
  private exec(kind: 'all' | 'run', sql: string, values: Record<string, unknown>): Promise<Row[] | number> {
    let s = this.statements.get(sql);
    if (s === undefined) {
      s = compileStatement(sql, (i) => this.driver.placeholder(i));
      this.statements.set(sql, s);
    }
    const params = bindValues(s, values);
    return kind === 'all' ? this.driver.all(s.text, params) : this.driver.run(s.text, params);
  }
}

function lower(r: Row): Row {
  const out: Row = {};
  for (const [k, v] of Object.entries(r)) out[k.toLowerCase()] = v;
  return out;
}
