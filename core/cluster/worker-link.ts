/**
 * Connections between the workers of one relay (`msrprelay --workers N`, DESIGN.md §7).
 *
 * Every worker listens on a private Unix socket, `<socketDir>/w<index>.sock` (the folder is
 * made by the primary with mode 0700, so only the relay's user can connect). Two kinds of
 * connections arrive there:
 *
 * - a hop: another worker relays frames toward a token of this worker. It writes plain MSRP
 *   from the first byte and is handled like a connection from another relay.
 * - a hand-over: a client's fresh connection landed on another worker, whose first request
 *   names a token of this worker. That worker writes one preamble line,
 *   `HANDOFF <transport> <listenerPort> <remoteAddress> <remotePort> <localAddress> <localPort>`,
 *   then the bytes it already read, and pipes both ways from then on. TLS stays with the
 *   worker that accepted (a TLS session cannot change process), which pipes plaintext.
 */

import { unlink } from 'node:fs/promises';
import net from 'node:net';
import { join } from 'node:path';
import { tryParseUri, type MsrpUri } from '../protocol/uri.ts';
import type { TransportName } from '../types.ts';

/** What a relay needs to know to run as one worker of a cluster. */
export interface WorkerOptions {
  /** This worker's index, 0 … count-1 (the first character of its session-ids). */
  readonly index: number;
  readonly count: number;
  /** The folder holding every worker's Unix socket. */
  readonly socketDir: string;
}

/** The Unix socket worker `index` listens on. */
export function workerSocketPath(socketDir: string, index: number): string {
  return join(socketDir, `w${index}.sock`);
}

/** The preamble of a connection handed over to another worker. */
export interface Handoff {
  readonly transport: TransportName;
  readonly listenerPort: number;
  readonly remoteAddress: string;
  readonly remotePort: number;
  readonly localAddress: string;
  readonly localPort: number;
}

const HANDOFF = 'HANDOFF';
/** A preamble line is short; anything longer is not one. */
export const MAX_PREAMBLE = 512;

export function formatHandoff(h: Handoff): string {
  const addr = (a: string) => (a === '' ? '-' : a);
  return `${HANDOFF} ${h.transport} ${h.listenerPort} ${addr(h.remoteAddress)} ${h.remotePort} ${addr(h.localAddress)} ${h.localPort}\r\n`;
}

/** Parses a preamble line (without its CRLF); undefined when it is not one. */
export function parseHandoff(line: string): Handoff | undefined {
  const p = line.split(' ');
  if (p.length !== 7 || p[0] !== HANDOFF) return undefined;
  const [, transport, lport, raddr, rport, laddr, lp] = p as [string, string, string, string, string, string, string];
  const num = (s: string) => (/^\d{1,5}$/.test(s) ? Number(s) : NaN);
  const addr = (a: string) => (a === '-' ? '' : a);
  if (!/^[a-z]{2,8}$/.test(transport) || [lport, rport, lp].some((s) => Number.isNaN(num(s)))) return undefined;
  return {
    transport: transport as TransportName,
    listenerPort: num(lport),
    remoteAddress: addr(raddr),
    remotePort: num(rport),
    localAddress: addr(laddr),
    localPort: num(lp),
  };
}

/** True when `data` starts with a hand-over preamble (as opposed to an MSRP frame of a hop). */
export function isHandoff(data: Buffer): boolean {
  return data.length >= HANDOFF.length && data.toString('latin1', 0, HANDOFF.length) === HANDOFF;
}

/**
 * Reads from a fresh socket until `lines` CRLF-ended lines are in, `maxBytes` are buffered,
 * or `timeoutMs` passes, then pauses it and resolves with what was read (to be pushed back
 * with socket.unshift or passed on). Resolves undefined when the socket ends or fails first.
 */
export function readLines(socket: net.Socket, lines: number, maxBytes: number, timeoutMs: number): Promise<Buffer | undefined> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let seen = 0;
    let done = false;
    const finish = (v: Buffer | undefined) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.pause();
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.off('close', onEnd);
      socket.off('error', onEnd);
      resolve(v);
    };
    const onData = (d: Buffer) => {
      chunks.push(d);
      size += d.length;
      for (let i = d.indexOf(0x0a); i !== -1 && seen < lines; i = d.indexOf(0x0a, i + 1)) seen++;
      if (seen >= lines || size >= maxBytes) finish(Buffer.concat(chunks, size));
    };
    const onEnd = () => {
      socket.on('error', () => {});
      finish(undefined);
    };
    const timer = setTimeout(() => finish(Buffer.concat(chunks, size)), timeoutMs);
    timer.unref();
    socket.on('data', onData);
    socket.once('end', onEnd);
    socket.once('close', onEnd);
    socket.once('error', onEnd);
    socket.resume();
  });
}

/**
 * The first To-Path URI of the request that `data` starts with, when its start line and
 * To-Path line (the first header, RFC 4975 §7.1) are complete; undefined otherwise.
 */
export function firstToPathUri(data: Buffer): MsrpUri | undefined {
  const text = data.toString('latin1', 0, Math.min(data.length, 65536));
  const m = /^MSRP [!-~]+ [A-Z]+\r?\nTo-Path:[ \t]*([!-~]+)/i.exec(text);
  return m === null ? undefined : tryParseUri(m[1]!);
}

/** Opens a worker's private socket, removing a stale file a dead worker left. */
export async function openInternalServer(path: string, onSocket: (socket: net.Socket) => void): Promise<{ close(): Promise<void> }> {
  await unlink(path).catch(() => {});
  const server = net.createServer(onSocket);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    // exclusive: the cluster must not share this one between the workers.
    server.listen({ path, exclusive: true }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return { close: () => new Promise<void>((r) => server.close(() => r())) };
}

/** Connects to another worker's private socket; rejects after `timeoutMs`. */
export function dialWorker(path: string, timeoutMs: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ path });
    const fail = (e: Error) => {
      clearTimeout(timer);
      socket.destroy();
      reject(new Error(`cannot reach worker socket ${path}: ${e.message}`));
    };
    const timer = setTimeout(() => fail(new Error('connect timeout')), timeoutMs);
    socket.once('error', fail);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.off('error', fail);
      resolve(socket);
    });
  });
}

/**
 * Pipes two sockets into each other (back-pressure included); when either closes, the
 * other is ended. `onClosed` runs once both are closed.
 */
export function pipeBoth(a: net.Socket, b: net.Socket, onClosed: () => void): void {
  let open = 2;
  const closed = () => {
    if (--open === 0) onClosed();
  };
  for (const [x, y] of [
    [a, b],
    [b, a],
  ] as const) {
    x.on('error', () => y.destroy());
    x.once('close', () => {
      if (!y.destroyed) y.end();
      // A peer that never reads must not keep the other socket.
      setTimeout(() => y.destroy(), 2000).unref();
      closed();
    });
    x.pipe(y);
  }
  a.resume();
  b.resume();
}
