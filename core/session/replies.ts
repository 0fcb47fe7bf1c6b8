/**
 * The relay's own replies: the responses it composes to requests it received (a hop-by-hop
 * 200, an error, an AUTH answer, a local endpoint's or a plugin's answer), and the 400
 * before closing a connection whose framing failed. Every one goes through write(), which
 * tells responseSent taps.
 */

import type { RelayHooks } from '../hooks.ts';
import { isTapped } from '../hooks.ts';
import { nameIs, formatResponse, type MsrpRequestHead } from '../protocol/message.ts';
import type { FramerError, RawHeader } from '../protocol/framer.ts';
import { statusComment } from '../protocol/status.ts';
import { tryParseUri } from '../protocol/uri.ts';
import type { Connection } from './connection.ts';

/** The tid grammar: a response can be addressed only to one. */
const TID = /^[A-Za-z0-9][A-Za-z0-9.+%=-]{3,31}$/;

export class Replies {
  constructor(private readonly hooks: () => RelayHooks<unknown>) {}

  /**
   * A response to `req`, or undefined when none may be sent: never to a REPORT,
   * nothing with Failure-Report no, no 200 with partial. SEND responses go to
   * the previous hop only; others follow the whole From-Path, and come from the
   * relay URIs the request passed (`from`, default its first To-Path URI).
   */
  frame(req: MsrpRequestHead, status: number, comment?: string, headers?: readonly RawHeader[], from?: readonly string[]): Buffer | undefined {
    if (req.method === 'REPORT') return undefined;
    if (req.failureReport === 'no') return undefined;
    if (req.failureReport === 'partial' && status === 200) return undefined;
    const isSend = req.method === 'SEND';
    const toPath = isSend ? [req.fromPath[0]!] : req.fromPath;
    const fromPath = from === undefined || isSend ? [req.toPath[0]!] : from;
    return formatResponse({ tid: req.tid, status, comment: comment ?? statusComment(status), toPath, fromPath, headers: headers ?? [] });
  }

  /** Answers `req` on `conn` when an answer may be sent (see frame()). */
  send(conn: Connection, req: MsrpRequestHead, status: number, comment?: string, headers?: readonly RawHeader[], from?: readonly string[]): void {
    const f = this.frame(req, status, comment, headers, from);
    if (f !== undefined) this.write(conn, f, req.method, req.tid, status);
  }

  /** Writes a response the relay composed, and tells responseSent taps (skipped when untapped). */
  write(conn: Connection, frame: Buffer, method: string, tid: string, status: number): void {
    conn.sendFrame(frame);
    const hooks = this.hooks();
    if (isTapped(hooks.responseSent)) hooks.responseSent.call({ connection: conn, method, tid, status });
  }

  /** a framing limit crossed: 400 when the request's paths and tid were read, then close in any case. */
  framingError(conn: Connection, err: FramerError): void {
    if (err.tid !== undefined && err.messageKind === 'request') {
      const to = err.headers[0];
      const from = err.headers[1];
      if (to !== undefined && from !== undefined && nameIs(to[0], 'to-path') && nameIs(from[0], 'from-path')) {
        const toUri = to[1].split(/[ \t]+/)[0];
        const fromUri = from[1].split(/[ \t]+/)[0];
        if (toUri && fromUri && tryParseUri(toUri) !== undefined && tryParseUri(fromUri) !== undefined && TID.test(err.tid)) {
          conn.sendFrame(formatResponse({ tid: err.tid, status: 400, comment: err.message, toPath: [fromUri], fromPath: [toUri] }));
        }
      }
    }
    conn.close({ code: 'protocol-error', message: err.message });
  }
}
