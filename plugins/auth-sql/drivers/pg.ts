/**
 * PostgreSQL through `pg` (optional peer dependency): a pool whose connect and
 * query timeouts come from the plugin's `timeouts`. A connection the server
 * drops is discarded by the pool, and the next query opens a fresh one, so the
 * plugin recovers by itself when the server comes back.
 */

import type { Pool, PoolConfig } from 'pg';
import { defaultExport, type DriverOptions, type Row, type SqlDriver } from '../driver.ts';

export class PgDriver implements SqlDriver {
  readonly name = 'pg';
  readonly dialect = 'postgres';
  private readonly pool: Pool;

  constructor(pkg: unknown, o: DriverOptions) {
    const { Pool: PoolClass } = defaultExport<{ Pool: new (c: PoolConfig) => Pool }>(pkg);
    const config: PoolConfig = {
      max: o.poolSize,
      connectionTimeoutMillis: o.connectTimeoutMs,
      // Client side: the query promise fails; server side: the statement is cancelled.
      query_timeout: o.queryTimeoutMs,
      statement_timeout: o.queryTimeoutMs,
      idleTimeoutMillis: 30_000,
      keepAlive: true,
      allowExitOnIdle: true,
    };
    if (o.url !== undefined) config.connectionString = o.url;
    if (o.host !== undefined) config.host = o.host;
    if (o.port !== undefined) config.port = o.port;
    if (o.user !== undefined) config.user = o.user;
    if (o.password !== undefined) config.password = o.password;
    if (o.database !== undefined) config.database = o.database;
    if (o.ssl !== undefined) config.ssl = o.ssl as PoolConfig['ssl'];
    this.pool = new PoolClass(config);
    // An idle connection the server closed: the pool drops it; without a listener the error would end the process.
    this.pool.on('error', () => {});
  }

  placeholder(index: number): string {
    return `$${index + 1}`;
  }

  async all(sql: string, params: readonly unknown[]): Promise<Row[]> {
    const r = await this.pool.query(sql, [...params]);
    return r.rows as Row[];
  }

  async run(sql: string, params: readonly unknown[]): Promise<number> {
    const r = await this.pool.query(sql, [...params]);
    return r.rowCount ?? 0;
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}
