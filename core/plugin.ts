/**
 * The plugin contract (DESIGN.md §4, STYLE.md convention 3).
 *
 * A plugin is a class: a `name`, a static JSON `schema` for its options, a
 * constructor that takes validated options (defaults filled in by the schema),
 * `apply(relay)` that taps hooks, and an optional `close()`. The tap name is the
 * plugin name. Per-connection state lives in `ctx.notes`, keyed by plugin name.
 *
 * ```ts
 * export default class Hello implements RelayPlugin {
 *   static schema = { type: 'object', properties: { greeting: { type: 'string', default: 'hi' } } };
 *   readonly name = 'hello';
 *   constructor(private options: { greeting: string }) {}
 *   apply(relay: PluginHost) {
 *     relay.hooks.authenticated.tap(this.name, (identity) => relay.log.info(`${this.options.greeting} ${identity.username}`));
 *   }
 * }
 * ```
 */

import type { RelayConfigInput } from './config/schema.ts';
import type { RelayConfig } from './config/schema.ts';
import type { RelayHooks } from './hooks.ts';
import type { Transports } from './transport/stream.ts';
import type { ConnectionContext, ListenerInfo, OriginateOptions, OutgoingRequest, PrepareOptions, PreparedRequest, SessionInfo } from './types.ts';

export type { Logger } from './types.ts';
import type { Logger } from './types.ts';

/** A read-only view of the live sessions. */
export interface SessionsView {
  get(id: string): SessionInfo | undefined;
  readonly size: number;
  values(): IterableIterator<SessionInfo>;
}

/** What `apply()` receives: the relay as a plugin may use it. */
export interface PluginHost {
  readonly hooks: RelayHooks<PluginHost>;
  readonly config: Readonly<RelayConfig>;
  /** The host written into Use-Path URIs. */
  readonly hostname: string;
  /** The bound listeners (ports are real once listen() has resolved). */
  readonly listeners: readonly ListenerInfo[];
  readonly sessions: SessionsView;
  /** Live connection count. */
  readonly connectionCount: number;
  readonly log: Logger;
  /** Replaces the relay's logger (the logging plugin does this). */
  setLogger(logger: Logger): void;
  /** The transport providers (DESIGN.md §3a): a plugin registers its own in apply(). */
  readonly transports: Transports;
  /**
   * Sends a request from the relay itself, on a connection or toward the owner of a session
   * (DESIGN.md §3a: a local endpoint's copies). See OriginateOptions and OutgoingRequest.
   */
  originate(target: ConnectionContext | SessionInfo, options: OriginateOptions): OutgoingRequest;
  /**
   * A request checked and rendered once, to send as many copies (a fan-out, C-1): each copy
   * costs its own transaction id, Message-ID and paths only. Throws when it is not valid MSRP.
   */
  prepare(options: PrepareOptions): PreparedRequest;
  /** A fresh session-id for a URI of this relay that is no token (a local endpoint's; R-47). */
  newSessionId(): string;
  /**
   * Cluster mode (`--workers`): opens a connection of its own over the worker link to the worker
   * that holds the token `uri` names, for originate() toward it (To-Path starting with that
   * token): a local endpoint's way to a far end whose token another worker issued. Close it when
   * done; it closes when that session ends. Undefined when `uri` is no token of another worker.
   */
  openWorkerLink(uri: string): Promise<ConnectionContext> | undefined;
}

export interface RelayPlugin {
  readonly name: string;
  apply(relay: PluginHost): void | Promise<void>;
  close?(): void | Promise<void>;
}

/** A plugin class as a config names it. */
export interface RelayPluginClass<O = any> {
  new (options: O): RelayPlugin;
  /** JSON schema of the options; ajv fills defaults from it before the constructor runs. */
  readonly schema?: object;
  /** Subcommands of `msrprelay` this plugin adds (`msrprelay users …`), by name: see PluginCommand. */
  readonly commands?: Readonly<Record<string, PluginCommand<O>>>;
}

/**
 * A subcommand of `msrprelay` that a plugin class contributes (`static commands`). `msrprelay NAME ARGS…`
 * loads the config (`--config FILE` or `-c FILE` anywhere in ARGS, else as `msrprelay` finds it),
 * takes the first configured plugin whose class has the command, and calls `run` with ARGS less
 * the config option. The plugin is not constructed and the relay does not start.
 */
export interface PluginCommand<O = any> {
  /** One line for `msrprelay --help`. */
  readonly summary: string;
  /** Runs the command; resolves with the exit status (0 done, 1 failed, 2 a bad command line). */
  run(argv: string[], ctx: PluginCommandContext<O>): Promise<number>;
}

/** What a plugin command receives besides its arguments. */
export interface PluginCommandContext<O = any> {
  /** Writes to standard output, a newline added when missing. */
  stdout(text: string): void;
  /** Writes to standard error, a newline added when missing. */
  stderr(text: string): void;
  /** Standard input: piped data, or a terminal (`isTTY`, `setRawMode`). */
  readonly stdin: NodeJS.ReadableStream & { isTTY?: boolean; setRawMode?(mode: boolean): unknown };
  /** The working directory. */
  readonly cwd: string;
  /** The config the command was found in, validated, with every plugin entry resolved (loadConfig). */
  readonly config: LoadedConfig;
  /** The options of the plugin entry that provides the command, validated against the class's schema, defaults filled in. */
  readonly options: O;
}

export const silentLogger: Logger = Object.freeze({
  debug() {},
  info() {},
  warn() {},
  error() {},
});

export function isRelayPlugin(x: unknown): x is RelayPlugin {
  return (
    typeof x === 'object' &&
    x !== null &&
    typeof (x as RelayPlugin).name === 'string' &&
    typeof (x as RelayPlugin).apply === 'function'
  );
}

/**
 * A plugin entry of a config resolved as the relay resolves it, short of
 * `new Class(options)`: what a plugin-contributed command (RelayPluginClass.commands)
 * and `msrprelay --help` need to know about the configured plugins.
 */
export interface ConfiguredPlugin {
  /** Position of the entry in `plugins`. */
  readonly index: number;
  /** The entry as messages name it: its name or path as written (`auth-sql`, `./my-auth.ts`), or the class or instance name. */
  readonly name: string;
  /** The plugin class; undefined when the entry is an instance (embedding). */
  readonly Class: RelayPluginClass | undefined;
  /** The options, validated against `Class.schema` with its defaults filled in ({} when none were given); undefined for an instance. */
  readonly options: unknown;
}

/** A config file read as `msrprelay` reads it, its plugin entries resolved but not constructed. */
export interface LoadedConfig {
  /**
   * The config as the file exports it. Only its plugin entries are checked here; the relay's
   * own settings are validated when a relay is made from it (createRelay, `--check-config`).
   */
  config: RelayConfigInput;
  /** Absolute path of the file. */
  filepath: string;
  /** The file's folder: relative paths in the config are resolved against it. */
  baseDir: string;
  /** The file as messages name it: relative to the working directory when it lies below it. */
  source: string;
  /** Every entry of `config.plugins`, in order: its class and validated options. */
  plugins: ConfiguredPlugin[];
  /** The first entry named `name` as the config names it (`'domain-map'`), or undefined. */
  plugin(name: string): ConfiguredPlugin | undefined;
}
