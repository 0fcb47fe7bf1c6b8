/**
 * MySQL and MariaDB through `mysql2` (optional peer dependency): a pool of
 * connections with server-side prepared statements. A connection that fails is
 * removed from the pool, so queries work again as soon as the server is back.
 */

import type { Pool, PoolOptions, QueryError } from 'mysql2';
import { defaultExport, type DriverOptions, type Row, type SqlDriver } from '../driver.ts';

type Mysql2Module = { createPool(o: PoolOptions | string): Pool };

export class Mysql2Driver implements SqlDriver {
  readonly name = 'mysql2';
  readonly dialect = 'mysql';
  private readonly pool: Pool;
  private readonly queryTimeoutMs: number;

  constructor(pkg: unknown, o: DriverOptions) {
    const mysql = defaultExport<Mysql2Module>(pkg);
    const options: PoolOptions = {
      connectionLimit: o.poolSize,
      maxIdle: o.poolSize,
      idleTimeout: 30_000,
      connectTimeout: o.connectTimeoutMs,
      waitForConnections: true,
      enableKeepAlive: true,
    };
    if (o.url !== undefined) options.uri = o.url;
    if (o.host !== undefined) options.host = o.host;
    if (o.port !== undefined) options.port = o.port;
    if (o.user !== undefined) options.user = o.user;
    if (o.password !== undefined) options.password = o.password;
    if (o.database !== undefined) options.database = o.database;
    if (o.ssl !== undefined && o.ssl !== false) options.ssl = o.ssl === true ? {} : (o.ssl as PoolOptions['ssl']);
    this.pool = mysql.createPool(options);
    this.queryTimeoutMs = o.queryTimeoutMs;
  }

  placeholder(): string {
    return '?';
  }

  all(sql: string, params: readonly unknown[]): Promise<Row[]> {
    return this.execute(sql, params).then((r) => (Array.isArray(r) ? (r as Row[]) : []));
  }

  run(sql: string, params: readonly unknown[]): Promise<number> {
    return this.execute(sql, params).then((r) => (r as { affectedRows?: number }).affectedRows ?? 0);
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.pool.end(() => resolve()));
  }

  private execute(sql: string, params: readonly unknown[]): Promise<unknown> {
    return new Promise((resolve, reject) => {
      this.pool.execute({ sql, values: [...params] as never, timeout: this.queryTimeoutMs }, (err: QueryError | null, result: unknown) => {
        if (err !== null) reject(err);
        else resolve(result);
      });
    });
  }
}
