/**
 * Refusals for a participant behind another relay. The focus answers a SEND it refuses (415
 * C-3, 403 C-4/C-5, 404 and 428 C-11, 413 C-17) with a transaction response, which goes to the
 * previous hop only. A participant connected to this relay gets it; one behind another relay
 * does not when that relay has already answered its hop with 200 and turns no error response
 * into a REPORT (RFC 4976 §6.4.3, RFC.md R-63: Kamailio's msrp module does neither). So the
 * focus also sends the failure REPORT such a relay would have sent: Status `000 <code>`, the
 * Message-ID and the Byte-Range of the chunk, To-Path the sender's From-Path (R-78), once per
 * message, unless Failure-Report is no (R-64).
 */

import type { ConnectionContext, LocalReceiver, LocalRequest, LocalResponse, PluginHost, SessionInfo } from '../../core/index.ts';
import { formatByteRange } from '../../core/protocol/index.ts';

/** A worker link (--workers) joins workers of this relay, not another relay. */
const isWorkerLink = (c: ConnectionContext | SessionInfo) => 'transport' in c && c.transport === 'worker';

/**
 * Whether copies on this route pass another relay: its To-Path names more than the participant's
 * own URI, and it is not a worker link to the token's worker (that one is this relay).
 */
export function throughOtherRelay(route: { target: ConnectionContext | SessionInfo; toPath: readonly string[] }): boolean {
  return route.toPath.length > 1 && !isWorkerLink(route.target);
}

/** Messages already reported, per participant session (bounded: the last few). */
const REMEMBERED = 64;

export class RelayedRefusals {
  private readonly reported = new Map<string, string[]>();

  constructor(private readonly relay: () => PluginHost) {}

  /** Whether the request came through a relay other than this one (its way back has more than the sender's URI). */
  static behindRelay(lr: LocalRequest): boolean {
    return lr.request.method === 'SEND' && lr.reply.toPath.length > 1 && !isWorkerLink(lr.connection);
  }

  /** The receiver, with a REPORT for a refusal at its end-line. */
  wrap(lr: LocalRequest, key: string, r: LocalReceiver): LocalReceiver {
    const onEnd = r.onEnd.bind(r);
    return {
      ...(r.onBody !== undefined ? { onBody: r.onBody.bind(r) } : {}),
      ...(r.onAbort !== undefined ? { onAbort: r.onAbort.bind(r) } : {}),
      onEnd: async (flag, delivery) => {
        const answer = await onEnd(flag, delivery);
        if (answer !== undefined && answer.status !== 200) this.report(lr, key, answer, delivery.bytes);
        return answer;
      },
    };
  }

  /** Sends the failure REPORT for a refused chunk of `bytes` body octets. */
  report(lr: LocalRequest, key: string, answer: LocalResponse, bytes?: number): void {
    const req = lr.request;
    if (req.failureReport === 'no' || req.messageId === undefined) return;
    const seen = this.reported.get(key) ?? [];
    if (seen.includes(req.messageId)) return;
    seen.push(req.messageId);
    if (seen.length > REMEMBERED) seen.shift();
    this.reported.set(key, seen);
    const br = req.byteRange;
    const start = br?.start ?? 1;
    const end = bytes !== undefined ? start + bytes - 1 : br !== undefined && br.end >= 0 ? br.end : start - 1;
    const range = formatByteRange({ start, end: Math.max(start - 1, end), total: br?.total ?? -1 });
    try {
      this.relay().originate(lr.session ?? lr.connection, {
        method: 'REPORT',
        toPath: lr.reply.toPath,
        fromPath: lr.reply.fromPath,
        headers: [
          ['Message-ID', req.messageId],
          ['Byte-Range', range],
          ['Status', `000 ${answer.status}${answer.comment !== undefined && answer.comment !== '' ? ` ${answer.comment}` : ''}`],
        ],
      });
    } catch {
      // The way back is gone: nobody to tell.
    }
  }

  /** The participant session left: forget what was reported to it. */
  forget(key: string): void {
    this.reported.delete(key);
  }
}
