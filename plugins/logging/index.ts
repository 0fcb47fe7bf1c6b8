/**
 * logging: structured JSON logs (pino) and access/accounting records.
 *
 * The plugin becomes the relay's logger (`setLogger`), so the core's own lines
 * (listening, reload, refused connections, plugin errors) come out as JSON with
 * the rest. Every connection gets a child logger carrying its id, every session
 * one carrying its masked id and user. Secrets never reach the output:
 * pino's redact censors known fields and every value is walked for session-ids
 * in MSRP URIs and Digest parameters (see secret-mask.ts).
 *
 * Accounting records (AUTH success and failure, session start and end with bytes
 * and messages each way) go to their own JSON-lines file and, optionally, to an
 * SQLite table (accounting.ts).
 */

import { resolve } from 'node:path';
import pino from 'pino';
import type { Logger, PluginHost, RelayPlugin, ConnectionContext, SessionInfo } from '../../core/index.ts';
import { AccountingWriter, endDestination, type AccountingOptions, type SessionFields } from './accounting.ts';
import { MASK, REDACT_PATHS, maskFields, maskSessionId, maskText } from './secret-mask.ts';

export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent';

export interface LoggingOptions {
  /** Lowest level written (default info). */
  level: LogLevel;
  /** `stdout` (default), `stderr`, or a file path (appended to, folders created). */
  destination: string;
  /** Write each line before the call returns (default false: buffered, flushed on close). */
  sync: boolean;
  /** The `name` field of every line (default msrprelay). */
  name: string;
  /** More field paths to censor, in pino's redact syntax (`user.email`, `*.apiKey`). */
  redact: string[];
  /** Access/accounting records; off when absent. */
  accounting?: AccountingOptions;
}

type PinoLogger = pino.Logger;

interface Leg {
  address: string;
  port: number;
}

export default class LoggingPlugin implements RelayPlugin {
  static readonly schema = {
    type: 'object',
    additionalProperties: false,
    properties: {
      level: { enum: ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'], default: 'info' },
      destination: { type: 'string', minLength: 1, default: 'stdout' },
      sync: { type: 'boolean', default: false },
      name: { type: 'string', default: 'msrprelay' },
      redact: { type: 'array', items: { type: 'string', minLength: 1 }, default: [] },
      accounting: {
        type: 'object',
        additionalProperties: false,
        properties: {
          file: { type: 'string', minLength: 1 },
          sql: {
            type: 'object',
            additionalProperties: false,
            required: ['filename'],
            properties: {
              driver: { enum: ['sqlite3', 'better-sqlite3'], default: 'sqlite3' },
              filename: { type: 'string', minLength: 1 },
              table: { type: 'string', pattern: '^[A-Za-z_][A-Za-z0-9_]{0,62}$', default: 'msrp_accounting' },
            },
          },
        },
      },
    },
  } as const;

  readonly name = 'logging';
  private readonly options: LoggingOptions;
  private destination: ReturnType<typeof pino.destination> | undefined;
  private root: PinoLogger | undefined;
  private relayLogger: Logger | undefined;
  private previousLogger: Logger | undefined;
  private relay: PluginHost | undefined;
  private accounting: AccountingWriter | undefined;
  private readonly sessionLoggers = new WeakMap<SessionInfo, PinoLogger>();
  private readonly farLegs = new WeakMap<SessionInfo, Leg>();
  private closed = false;

  constructor(options: Partial<LoggingOptions> = {}) {
    this.options = {
      level: options.level ?? 'info',
      destination: options.destination ?? 'stdout',
      sync: options.sync ?? false,
      name: options.name ?? 'msrprelay',
      redact: options.redact ?? [],
      ...(options.accounting !== undefined ? { accounting: options.accounting } : {}),
    };
  }

  /** The root pino logger (for an embedding application that wants to log alongside). */
  get logger(): PinoLogger | undefined {
    return this.root;
  }

  async apply(relay: PluginHost): Promise<void> {
    const o = this.options;
    this.relay = relay;
    const dest = o.destination;
    this.destination =
      dest === 'stdout' || dest === 'stderr'
        ? pino.destination({ dest: dest === 'stdout' ? 1 : 2, sync: o.sync })
        : pino.destination({ dest: resolve(dest), sync: o.sync, mkdir: true, append: true });
    this.destination.on('error', () => {
      // A full disk or a closed pipe must not take the relay down; lines are lost.
    });
    const root = pino(
      {
        name: o.name,
        level: o.level,
        redact: { paths: [...REDACT_PATHS, ...o.redact], censor: MASK },
        timestamp: pino.stdTimeFunctions.isoTime,
        formatters: { level: (label) => ({ level: label }) },
      },
      this.destination,
    );
    this.root = root;

    const acc = o.accounting;
    if (acc !== undefined && (acc.file !== undefined || acc.sql !== undefined)) {
      this.accounting = await AccountingWriter.open(acc, (e) => root.error({ error: maskText(e.message) }, 'accounting write failed'));
    }

    this.previousLogger = relay.log;
    this.relayLogger = adapt(root);
    relay.setLogger(this.relayLogger);
    this.tap(relay, root);
  }

  private tap(relay: PluginHost, root: PinoLogger): void {
    const hooks = relay.hooks;
    const debug = root.isLevelEnabled('debug');
    const accounting = this.accounting;

    hooks.connectionClosed.tap(this.name, (conn, reason) => {
      if (this.closed) return;
      const log = this.connLogger(conn);
      if (!log.isLevelEnabled('info')) return;
      log.info(
        {
          direction: conn.direction,
          transport: conn.transport,
          remote: `${conn.remoteAddress}:${conn.remotePort}`,
          reason: reason.code,
          ...(reason.message !== undefined ? { detail: maskText(reason.message) } : {}),
          durationMs: Date.now() - conn.openedAt,
        },
        'connection closed',
      );
    });

    hooks.authenticated.tap(this.name, (identity, auth, session) => {
      if (this.closed) return;
      const log = this.sessionLogger(session);
      log.info({ method: identity.method, remote: `${auth.connection.remoteAddress}:${auth.connection.remotePort}` }, 'authenticated');
      accounting?.write({
        type: 'auth',
        time: new Date().toISOString(),
        result: 'success',
        status: 200,
        reason: 'authenticated',
        user: identity.username,
        domain: identity.domain,
        remoteAddress: auth.connection.remoteAddress,
        remotePort: auth.connection.remotePort,
        transport: auth.connection.transport,
        connection: auth.connection.id,
        session: maskSessionId(session.id),
      });
      accounting?.write({
        type: 'session-start',
        time: new Date(session.createdAt).toISOString(),
        ...sessionFields(session),
        expiresAt: new Date(session.expiresAt).toISOString(),
      });
    });

    hooks.authFailed.tap(this.name, (f) => {
      if (this.closed) return;
      const c = f.connection;
      const reason = maskText(f.reason);
      this.connLogger(c).warn({ status: f.status, reason, user: f.username ?? null, domain: f.domain ?? null, remote: `${c.remoteAddress}:${c.remotePort}` }, 'authentication failed');
      accounting?.write({
        type: 'auth',
        time: new Date().toISOString(),
        result: 'failure',
        status: f.status,
        reason,
        user: f.username ?? null,
        domain: f.domain ?? null,
        remoteAddress: c.remoteAddress,
        remotePort: c.remotePort,
        transport: c.transport,
        connection: c.id,
        session: null,
      });
    });

    hooks.sessionClosed.tap(this.name, (s, reason) => {
      if (this.closed) return;
      const now = Date.now();
      const st = s.stats;
      const far = this.farLegs.get(s) ?? legOf(s.far);
      this.sessionLogger(s).info(
        {
          reason: reason.code,
          bytesOut: st.bytesOut,
          messagesOut: st.messagesOut,
          bytesIn: st.bytesIn,
          messagesIn: st.messagesIn,
          durationMs: now - s.createdAt,
          far: far !== undefined ? `${far.address}:${far.port}` : null,
        },
        'session closed',
      );
      accounting?.write({
        type: 'session-end',
        time: new Date(now).toISOString(),
        ...sessionFields(s),
        farAddress: far?.address ?? null,
        farPort: far?.port ?? null,
        startedAt: new Date(s.createdAt).toISOString(),
        endedAt: new Date(now).toISOString(),
        durationMs: now - s.createdAt,
        bytesOut: st.bytesOut,
        messagesOut: st.messagesOut,
        bytesIn: st.bytesIn,
        messagesIn: st.messagesIn,
        closeReason: reason.code,
        closeMessage: reason.message !== undefined ? maskText(reason.message) : null,
      });
    });

    hooks.error.tap(this.name, (err, ctx) => {
      if (this.closed) return;
      const log = ctx.connection !== undefined ? this.connLogger(ctx.connection) : root;
      log.error({ error: maskText(err.message), errorName: err.name, plugin: ctx.plugin, hook: ctx.hook }, 'relay error');
    });

    // The far leg of a session is released before sessionClosed fires: note it while it is known.
    if (accounting !== undefined || debug) {
      hooks.requestReceived.tap(this.name, (ctx) => {
        if (this.closed) return;
        const req = ctx.request;
        this.noteLegs(relay, ctx.connection, req.toUris);
        if (debug) {
          this.connLogger(ctx.connection).debug({ method: req.method, tid: req.tid, messageId: req.messageId, to: maskText(req.toPath.join(' ')) }, 'request');
        }
      });
      hooks.chunkForwarded.tap(this.name, (c) => {
        if (this.closed) return;
        if (!this.farLegs.has(c.session)) {
          const leg = legOf(c.session.far);
          if (leg !== undefined) this.farLegs.set(c.session, leg);
        }
        if (debug) {
          this.sessionLogger(c.session).debug({ method: c.method, direction: c.direction, bytes: c.bytes, flag: c.flag, ms: c.endedAt - c.startedAt }, 'chunk forwarded');
        }
      });
    }
    if (debug) {
      hooks.responseSent.tap(this.name, (r) => {
        if (this.closed) return;
        this.connLogger(r.connection).debug({ method: r.method, tid: r.tid, status: r.status }, 'response');
      });
    }
  }

  /** Which connection (or local client) is the far leg of the sessions a request names. */
  private noteLegs(relay: PluginHost, conn: ConnectionContext, uris: ReadonlyArray<{ sessionId?: string | undefined }>): void {
    const own = (i: number): SessionInfo | undefined => {
      const id = uris[i]?.sessionId;
      return id === undefined ? undefined : relay.sessions.get(id);
    };
    const first = own(0);
    if (first === undefined) return;
    if (first.owner !== conn) {
      if (!this.farLegs.has(first)) this.farLegs.set(first, { address: conn.remoteAddress, port: conn.remotePort });
      return;
    }
    const next = own(1);
    if (next !== undefined) {
      // A hand-over inside this relay: each client is the other's far leg.
      if (!this.farLegs.has(first)) this.farLegs.set(first, { address: next.owner.remoteAddress, port: next.owner.remotePort });
      if (!this.farLegs.has(next)) this.farLegs.set(next, { address: conn.remoteAddress, port: conn.remotePort });
      return;
    }
    const leg = legOf(first.far);
    if (leg !== undefined && !this.farLegs.has(first)) this.farLegs.set(first, leg);
  }

  private connLogger(conn: ConnectionContext): PinoLogger {
    const have = conn.notes.get(this.name) as PinoLogger | undefined;
    if (have !== undefined) return have;
    const child = this.root!.child({ conn: conn.id });
    conn.notes.set(this.name, child);
    return child;
  }

  private sessionLogger(s: SessionInfo): PinoLogger {
    let log = this.sessionLoggers.get(s);
    if (log === undefined) {
      log = this.connLogger(s.owner).child({ session: maskSessionId(s.id), user: `${s.identity.username}@${s.identity.domain}` });
      this.sessionLoggers.set(s, log);
    }
    return log;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // Handing the relay back its former logger, unless a newer logging plugin took over (reload).
    if (this.relay !== undefined && this.relay.log === this.relayLogger && this.previousLogger !== undefined) {
      this.relay.setLogger(this.previousLogger);
    }
    await this.accounting?.close();
    const d = this.destination;
    if (d === undefined) return;
    if (this.options.destination === 'stdout' || this.options.destination === 'stderr') {
      try {
        d.flushSync();
      } catch {
        // not open yet, or the pipe is gone: nothing more can be done
      }
    } else {
      await endDestination(d);
    }
  }
}

/** The relay's Logger interface on top of pino, with every message and field masked. */
function adapt(p: PinoLogger): Logger {
  const at = (level: 'debug' | 'info' | 'warn' | 'error') => (msg: string, fields?: Record<string, unknown>) => {
    if (!p.isLevelEnabled(level)) return;
    p[level](maskFields(fields) ?? {}, maskText(msg));
  };
  return { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

/** The fields the session start and end records share, in their order. */
function sessionFields(s: SessionInfo): SessionFields {
  return {
    session: maskSessionId(s.id),
    user: s.identity.username,
    domain: s.identity.domain,
    connection: s.owner.id,
    clientAddress: s.owner.remoteAddress,
    clientPort: s.owner.remotePort,
    transport: s.owner.transport,
  };
}

function legOf(c: ConnectionContext | undefined): Leg | undefined {
  return c === undefined ? undefined : { address: c.remoteAddress, port: c.remotePort };
}
