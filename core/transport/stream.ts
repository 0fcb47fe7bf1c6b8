/**
 * The transport seam (DESIGN.md §3a): what carries a connection's bytes.
 *
 * The relay's Connection and Writer depend on MsrpStream, never on net.Socket, so any
 * byte carrier can be a transport: TCP and TLS (core/transport/tcp.ts), the link between
 * cluster workers (core/cluster/), a WebSocket (the websocket plugin), or an in-memory
 * pair for tests (msrprelay/testing). A net.Socket or tls.TLSSocket is an MsrpStream as it is.
 *
 * A TransportProvider is registered by name (`relay.transports.register(provider)`, from a
 * plugin's apply()). It opens listeners for `listen` entries of its transports and may dial
 * next hops; every stream it accepts it hands to the relay with `adopt()`, so connection
 * caps, acceptConnection, probation, the AUTH-over-TLS rule and framing are the core's
 * whatever carries the bytes.
 */

import type { EventEmitter } from 'node:events';
import type { ListenConfig, RelayConfig } from '../config/schema.ts';
import type { CloseReason, ConnectionContext, ListenerInfo, Logger, NextHop } from '../types.ts';

/**
 * A duplex byte stream as the relay uses it. An EventEmitter (listeners are called with the
 * stream as `this`, as Node's emitters do) that emits:
 * - `data` (Buffer): bytes read; in message mode, exactly one transport message per event;
 * - `end`: the peer finished sending; `close`: the stream is gone (emitted once, last);
 * - `error` (Error); `drain`: write() may be called again after it returned false.
 */
export interface MsrpStream extends EventEmitter {
  readonly remoteAddress?: string | undefined;
  readonly remotePort?: number | undefined;
  readonly localAddress?: string | undefined;
  readonly localPort?: number | undefined;
  /** True when the bytes are encrypted on the wire (TLS, wss): R-7 lets AUTH in only then. */
  readonly encrypted?: boolean;
  /** Octets read and written so far: the idle sweep watches them move. */
  readonly bytesRead: number;
  readonly bytesWritten: number;
  /** True while written data waits above the high-water mark (wait for `drain`). */
  readonly writableNeedDrain: boolean;
  /** Octets written and not yet taken by the peer (net.Socket has it); bounds a peer that does not read. */
  readonly writableLength?: number;
  readonly destroyed: boolean;
  /**
   * Present for a transport that carries exactly one MSRP frame per transport message
   * (RFC 7977 §5.1, W-3): the Writer then writes each frame with one write() call and cuts
   * chunks longer than `maxMessageSize` octets into pieces (R-66/R-67 re-chunking, W-4);
   * the framer refuses a transport message that does not hold exactly one frame.
   */
  readonly messageMode?: { readonly maxMessageSize: number } | undefined;
  /** Queues data; false when the caller should wait for `drain` (back-pressure). */
  write(data: Buffer | string): boolean;
  /** Stops and restarts `data` events (back-pressure toward the peer, R-71). */
  pause(): unknown;
  resume(): unknown;
  /** Finishes writing what is queued, then closes. */
  end(): unknown;
  /** Closes at once, dropping what is queued. */
  destroy(): unknown;
  /** Optional: gather writes until uncork() (one system call for a head, body and end-line). */
  cork?(): void;
  uncork?(): void;
  /** Optional: Nagle off (TCP). */
  setNoDelay?(noDelay?: boolean): unknown;
  /**
   * Optional: told why the relay ends or destroys the stream, just before it calls end() or
   * destroy(), so a transport can say so in its own terms (a WebSocket close code: 1002 for
   * a framing error, W-3; 1001 at shutdown).
   */
  closing?(reason: CloseReason): void;
}

/** How a provider hands an accepted stream to the relay. */
export interface AdoptOptions {
  /** The listener the stream arrived on (its Use-Path and insecureAuth settings apply). */
  readonly listener: ListenerInfo;
  /**
   * The client's addresses when the stream's own are not the client's (a connection handed
   * over between cluster workers; a WebSocket behind a proxy the operator declared).
   */
  readonly peer?: { readonly remoteAddress: string; readonly remotePort: number; readonly localAddress?: string; readonly localPort?: number };
  /** Overrides `stream.encrypted` (TLS terminated in another process of this relay). */
  readonly encrypted?: boolean;
  /**
   * False when another part of this relay already counted the client against the connection
   * caps (a hand-over from another worker). Default true.
   */
  readonly counted?: boolean;
  /** Bytes already read from the stream that belong before what it emits next. */
  readonly head?: Buffer;
  /** The place under the caps taken by admit() when the raw connection came in (it moves to the connection). */
  readonly admission?: Admission;
}

/** A place under the connection caps, held from the raw accept (before a TLS or WebSocket handshake). */
export interface Admission {
  /** Gives the place back (the handshake failed or timed out); a second call does nothing. */
  release(): void;
}

/** What the relay gives a provider. */
export interface TransportContext {
  /**
   * Hands an accepted stream to the relay. The relay applies the connection caps,
   * runs acceptConnection and starts reading; it returns the connection, or undefined when
   * the stream was refused (the relay has destroyed it).
   */
  adopt(stream: MsrpStream, options: AdoptOptions): ConnectionContext | undefined;
  /**
   * Takes a place under the connection caps for a raw connection from `remoteAddress`
   * whose handshake (TLS, WebSocket) is still to come; undefined when the relay refuses it
   * (close it). Give it to adopt() as `admission`, or release() it if the handshake fails.
   * Bound the handshake by `timeouts.tlsHandshake`.
   */
  admit(remoteAddress: string): Admission | undefined;
  /** The current config (it changes on reload). */
  config(): Readonly<RelayConfig>;
  readonly log: Logger;
}

/** An open listening endpoint of a provider. */
export interface TransportListener {
  readonly info: ListenerInfo;
  /** Stops accepting at once; connections already adopted are the relay's to close. */
  close(): Promise<void>;
  /** SIGHUP: the entry again, with possibly new certificate files; open connections stay. */
  reload?(entry: ListenConfig): void;
}

export interface TransportProvider {
  /** A name for logs and errors (usually the plugin's). */
  readonly name: string;
  /** The `listen` entry transports it serves, e.g. ['ws', 'wss']. */
  readonly transports: readonly string[];
  /**
   * Checks a `listen` entry of one of its transports without binding anything (for
   * `--check-config` and before start); returns the problems, each a readable sentence.
   */
  check?(entry: ListenConfig): string[];
  /** Opens a listener for one `listen` entry. Rejects with a message naming the entry. */
  listen(entry: ListenConfig, ctx: TransportContext): Promise<TransportListener>;
  /** Opens a stream to a next hop whose `transport` is one of `transports`; rejects after `timeoutMs`. */
  dial?(hop: NextHop, ctx: TransportContext, timeoutMs: number): Promise<MsrpStream>;
}

/** The transport providers of a relay (PluginHost.transports; core/transport/registry.ts). */
export interface Transports {
  /** Adds a provider for its transport names; a name already served by another provider is an error. */
  register(provider: TransportProvider): void;
  /** The provider serving a transport name. */
  get(transport: string): TransportProvider | undefined;
  /** Every registered transport name. */
  names(): string[];
}

/** `tcp://127.0.0.1:2856`: how errors and logs name a listen entry. */
export function describeEntry(entry: Pick<ListenConfig, 'transport' | 'host' | 'port'>): string {
  const host = entry.host.includes(':') ? `[${entry.host}]` : entry.host;
  return `${entry.transport}://${host}:${entry.port}`;
}

/** The transport name of the links between cluster workers (core/cluster/worker.ts). */
export const WORKER_TRANSPORT = 'worker';
