/**
 * What auth-sql's options and account rows are, for the plugin (index.ts) and for its
 * `msrprelay users` command (users-cli.ts) alike.
 */

import { computeHa1 } from '../../core/protocol/index.ts';
import type { ConnectionOptions, DriverName } from './driver.ts';
import type { Columns, PasswordMode } from './subscriber-table.ts';

export interface SeedAccount {
  username: string;
  domain: string;
  password: string;
  /** The Digest realm of the stored HA1; default the domain. */
  realm?: string;
}

export interface AuthSqlOptions extends ConnectionOptions {
  driver: DriverName;
  /** Seconds: the driver's connect and query timeouts (keep their sum below the relay's timeouts.hook). */
  timeouts: { connect: number; query: number };
  mode: PasswordMode;
  table: string;
  columns: Columns;
  useDomain: boolean;
  /** A whole lookup query with :username, :domain, :realm placeholders, returning `ha1` and/or `password`. */
  query?: string;
  /** ttl seconds (0 = off) and the most entries kept. */
  cache: { ttl: number; max: number };
  /** Create the table (and for SQLite the file and its folder) when missing; default true for SQLite, false otherwise. */
  createTable?: boolean;
  /** Accounts inserted when the table was just found empty (demo accounts). */
  seed: SeedAccount[];
}

/** The columns of an account row for a password, as `mode` wants them stored. */
export function secretColumns(
  mode: PasswordMode,
  a: { username: string; domain: string; password: string; realm?: string },
): { username: string; domain: string; password: string; ha1: string } {
  const { username, domain, password } = a;
  if (mode === 'plaintext') return { username, domain, password, ha1: '' };
  // the realm is the SIP domain unless the relay is set up otherwise.
  return { username, domain, password: '', ha1: computeHa1(username, a.realm ?? domain, password) };
}

