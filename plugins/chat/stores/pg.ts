/**
 * PostgreSQL through `pg` (an optional peer dependency: `npm install pg`), a pool of poolSize
 * connections. Several relays may share one database: each keeps its rooms' history there.
 */

import type { ChatOptions } from '../options.ts';
import { SqlStore, type Row, type SqlConnection } from './sql.ts';

interface PgPool {
  query(sql: string, params: unknown[]): Promise<{ rows: Row[] }>;
  end(): Promise<void>;
}

class PgConnection implements SqlConnection {
  readonly dialect = 'postgres';
  private pool: Promise<PgPool> | undefined;

  constructor(private readonly o: ChatOptions['store']) {}

  private open(): Promise<PgPool> {
    this.pool ??= (async () => {
      let pkg: { default?: { Pool: new (c: object) => PgPool }; Pool?: new (c: object) => PgPool };
      try {
        pkg = (await import('pg')) as typeof pkg;
      } catch (e) {
        throw new Error('chat: store driver "pg" needs the npm package "pg", which is not installed: run "npm install pg"', { cause: e });
      }
      const Pool = (pkg.default ?? pkg).Pool!;
      const o = this.o;
      const ms = o.queryTimeout * 1000;
      return new Pool({
        ...(o.url !== undefined ? { connectionString: o.url } : {}),
        ...(o.host !== undefined ? { host: o.host } : {}),
        ...(o.port !== undefined ? { port: o.port } : {}),
        ...(o.user !== undefined ? { user: o.user } : {}),
        ...(o.password !== undefined ? { password: o.password } : {}),
        ...(o.database !== undefined ? { database: o.database } : {}),
        max: o.poolSize,
        connectionTimeoutMillis: ms,
        query_timeout: ms,
      });
    })();
    return this.pool;
  }

  async all(sql: string, params: readonly unknown[]): Promise<Row[]> {
    return (await (await this.open()).query(sql, [...params])).rows;
  }

  async run(sql: string, params: readonly unknown[]): Promise<void> {
    await (await this.open()).query(sql, [...params]);
  }

  async close(): Promise<void> {
    const pool = await this.pool?.catch(() => undefined);
    this.pool = undefined;
    await pool?.end();
  }
}

export class PgStore extends SqlStore {
  constructor(o: ChatOptions['store']) {
    super(new PgConnection(o), o.tablePrefix);
  }
}
