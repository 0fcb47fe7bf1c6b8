/**
 * A small pool of LDAP connections bound as the service account, for
 * auth-ldap's searches.
 *
 * Each connection multiplexes searches (LDAP message ids), so a pool of two or
 * three serves many AUTHs at once. A connection is opened, upgraded with
 * StartTLS when asked, and bound on first use; when it breaks (server restart,
 * idle close, operation timeout) it is dropped and the next search opens a new
 * one, so the relay recovers by itself when the directory comes back. Nothing
 * here waits longer than the connect and operation timeouts, and the caller
 * puts its own deadline on top.
 */

import type { ConnectionOptions } from 'node:tls';
import { Client, InvalidCredentialsError, ResultCodeError, type Entry, type SearchOptions } from 'ldapts';

export interface DirectoryOptions {
  url: string;
  bindDN: string | undefined;
  bindCredentials: string | undefined;
  startTls: boolean;
  tls: ConnectionOptions | undefined;
  poolSize: number;
  connectTimeoutMs: number;
  timeoutMs: number;
}

/** The directory could not be used: down, slow, refusing the service account. */
export class DirectoryUnavailableError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'DirectoryUnavailableError';
  }
}

interface Slot {
  /** A connection being opened and bound, or ready. */
  ready: Promise<Client> | undefined;
  client: Client | undefined;
  /** True once `ready` has resolved. */
  opened: boolean;
}

export class Directory {
  private readonly o: DirectoryOptions;
  private readonly slots: Slot[];
  private next = 0;
  private closed = false;

  constructor(options: DirectoryOptions) {
    this.o = options;
    this.slots = Array.from({ length: options.poolSize }, () => ({ ready: undefined, client: undefined, opened: false }));
  }

  /**
   * One search on a pooled connection. A connection that was already open and
   * breaks under the search is retried once on a fresh one (the server may have
   * restarted since it was last used); a fresh connection that fails is final.
   */
  async search(base: string, options: SearchOptions): Promise<Entry[]> {
    if (this.closed) throw new DirectoryUnavailableError('the plugin is closed');
    const slot = this.slots[this.next]!;
    this.next = (this.next + 1) % this.slots.length;
    const reused = slot.opened && slot.client?.isConnected === true;
    try {
      return await this.searchOn(slot, base, options);
    } catch (e) {
      if (!reused || e instanceof ResultCodeError || e instanceof DirectoryUnavailableError) throw e;
      return await this.searchOn(slot, base, options);
    }
  }

  private async searchOn(slot: Slot, base: string, options: SearchOptions): Promise<Entry[]> {
    const client = await this.acquire(slot);
    // ldapts reopens a closed socket by itself, unbound: a search there would run
    // anonymously and find nobody (401 for everyone). Never search on such a one.
    if (!client.isConnected || (this.o.bindDN !== undefined && !client.isBound)) {
      this.drop(slot, client);
      throw new Error('connection to the directory closed');
    }
    try {
      const { searchEntries } = await client.search(base, options);
      return searchEntries;
    } catch (e) {
      // An LDAP result code (no such object, size limit...) is an answer; the
      // connection is fine. Anything else (timeout, socket closed) breaks it.
      if (!(e instanceof ResultCodeError)) this.drop(slot, client);
      throw e;
    }
  }

  private acquire(slot: Slot): Promise<Client> {
    const current = slot.client;
    // Reuse a connection still opening, or an open one; one that closed since is replaced.
    if (slot.ready !== undefined && current !== undefined && (!slot.opened || current.isConnected)) return slot.ready;
    if (current !== undefined) this.drop(slot, current);
    const client = new Client({
      url: this.o.url,
      connectTimeout: this.o.connectTimeoutMs,
      timeout: this.o.timeoutMs,
      strictDN: true,
      // ldapts speaks TLS from the first byte whenever tlsOptions is set, so with
      // StartTLS the options go to startTLS() only.
      ...(this.o.tls !== undefined && !this.o.startTls ? { tlsOptions: this.o.tls } : {}),
    });
    const ready = this.open(client).then(
      (c) => {
        if (slot.client === c) slot.opened = true;
        return c;
      },
      (e: unknown) => {
        this.drop(slot, client);
        throw e;
      },
    );
    slot.client = client;
    slot.ready = ready;
    slot.opened = false;
    return ready;
  }

  private async open(client: Client): Promise<Client> {
    if (this.o.startTls) {
      try {
        await client.startTLS({ ...(this.o.tls ?? {}) });
      } catch (e) {
        throw new DirectoryUnavailableError(`StartTLS failed: ${describe(e)}`, { cause: e });
      }
    }
    if (this.o.bindDN !== undefined) {
      try {
        await client.bind(this.o.bindDN, this.o.bindCredentials ?? '');
      } catch (e) {
        if (e instanceof InvalidCredentialsError) {
          throw new DirectoryUnavailableError(`service account bind refused (invalid credentials for ${this.o.bindDN})`, { cause: e });
        }
        if (e instanceof ResultCodeError) {
          throw new DirectoryUnavailableError(`service account bind refused (${describe(e)})`, { cause: e });
        }
        throw e;
      }
    }
    return client;
  }

  private drop(slot: Slot, client: Client): void {
    if (slot.client === client) {
      slot.client = undefined;
      slot.ready = undefined;
      slot.opened = false;
    }
    // unbind() ends the socket; on a broken one it settles at once.
    client.unbind().catch(() => undefined);
  }

  /** Unbinds every connection. */
  async close(): Promise<void> {
    this.closed = true;
    const clients = this.slots.map((s) => s.client).filter((c): c is Client => c !== undefined);
    for (const s of this.slots) {
      s.client = undefined;
      s.ready = undefined;
    }
    await Promise.all(clients.map((c) => c.unbind().catch(() => undefined)));
  }
}

/** An error's message without anything the server could have echoed from a bind. */
export function describe(e: unknown): string {
  if (e instanceof ResultCodeError) return `${e.name}: result code ${e.code}${e.message ? ` (${firstLine(e.message)})` : ''}`;
  if (e instanceof Error) {
    const code = (e as NodeJS.ErrnoException).code;
    return code !== undefined ? `${code}: ${firstLine(e.message)}` : firstLine(e.message);
  }
  return String(e);
}

function firstLine(s: string): string {
  const line = s.split('\n')[0] ?? '';
  return line.length > 200 ? `${line.slice(0, 200)}…` : line;
}
