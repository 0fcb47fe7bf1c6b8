/**
 * bulk: one file from A to B, cut into SEND chunks of a fixed body size (RFC 4975
 * §7.1: `+` on every chunk but the last, `$` on the last; one Message-ID, a
 * Byte-Range per chunk), or sent as a single chunk streamed in 1 MiB writes.
 * B frames what arrives, places each chunk's octets at its Byte-Range, and
 * the run counts only if the SHA-256 of the reassembled file matches the sent one
 * (hashed after the clock stops, as a client would on completion).
 * MB/s (10^6 octets per second) is the file size over the time from A's first
 * write to B's last end-line.
 *
 * A keeps at most `bulkWindow` octets in flight: sent but not yet both answered
 * 200 (the relay's hop-by-hop answer) and delivered to B. The default (8 MiB)
 * does not limit a relay with back-pressure; a target that needs less says so
 * (Kamailio drops a receiver whose write queue passes tcp_conn_wq_max, 32 KiB,
 * so it runs with a window below that; the report shows it).
 */

import { createHash, randomBytes } from 'node:crypto';
import type { FrameHead } from '../../core/protocol/framer.ts';
import { formatEndLine, formatRequestHead, getHeader, newTransactionId, parseByteRange } from '../../core/protocol/message.ts';
import { isMessageMode } from '../loadgen/endpoint.ts';
import { Meter, nowNs } from '../meter.ts';
import { pathAtoB } from '../targets/target.ts';
import type { Scenario } from './scenario.ts';

const STREAM_WRITE = 1024 * 1024;
/** The websocket plugin's default maxPayload. */
const WS_MAX_MESSAGE = 2 ** 20;
const BATCH = 256 * 1024;

let payload: { buf: Buffer; sha256: string } | undefined;

/** The file, made once per process (random octets: nothing in it can be mistaken for an end-line). */
function file(size: number): { buf: Buffer; sha256: string } {
  if (payload === undefined || payload.buf.length !== size) {
    const buf = randomBytes(size);
    payload = { buf, sha256: createHash('sha256').update(buf).digest('hex') };
  }
  return payload;
}

export function chunkLabel(n: number): string {
  if (n === 0) return 'one chunk';
  if (n % (1024 * 1024) === 0) return `${n / (1024 * 1024)} MiB`;
  if (n % 1024 === 0) return `${n / 1024} KiB`;
  return `${n} B`;
}

export const bulk: Scenario = {
  name: 'bulk',
  metrics: [
    { key: 'MB/s', unit: 'MB/s', higherIsBetter: true, perCpu: true },
  ],
  variants: (o) => o.chunks.map((c) => ({ name: chunkLabel(c), params: { chunk: c } })),
  // A whole transfer of the same size: measured here, a fresh Node relay needs a few thousand
  // 64 KiB chunks before its throughput settles (JIT tiers, and its allocator's and the
  // kernel's first touches of socket and read-buffer memory); a shorter warm-up left 64 KiB
  // chunks 20-40% below their steady state.
  warmup: (o) => o,
  notApplicable(v, spec, o) {
    const chunk = v.params['chunk']!;
    const body = chunk === 0 ? o.size : Math.min(chunk, o.size);
    // A WebSocket sender puts each chunk in one message (W-3): the relay takes up to 1 MiB.
    if (v.legs !== undefined && isMessageMode(v.legs.a) && body + 400 > WS_MAX_MESSAGE) return 'a WebSocket sender sends a chunk as one message (at most 1 MiB)';
    // head (~300 octets with three long path URIs) + body + end-line
    if (spec.maxFrameBytes !== undefined && body + 400 > spec.maxFrameBytes) {
      return `frames over ${spec.maxFrameBytes} octets are not relayed`;
    }
    return undefined;
  },
  async run(target, spec, v, o) {
    const size = o.size;
    const chunk = v.params['chunk'] === 0 ? size : Math.min(v.params['chunk']!, size);
    const { buf, sha256 } = file(size);
    const pair = await target.pair();
    const failures: string[] = [];
    const toPath = pathAtoB(pair);
    const fromPath = [pair.a.uri];
    const messageId = newTransactionId().slice(0, 20);
    const a = pair.a.ep;
    const b = pair.b.ep;

    // ------------------------------------------------------------ receiver
    // Chunks are placed by their Byte-Range, as a receiver reassembles a file: a
    // relay may deliver the chunks of one message out of order (Kamailio's
    // workers do), and may split a chunk with a continuing Byte-Range.
    const into = Buffer.allocUnsafe(size);
    const window = spec.bulkWindow !== undefined && (o.bulkWindow === 0 || spec.bulkWindow < o.bulkWindow) ? spec.bulkWindow : o.bulkWindow;
    let sentBytes = 0;
    let acked = 0;
    let ackedBytes = 0;
    let ackWaiter: (() => void) | undefined;
    let received = 0;
    let at = -1;
    let endAt = 0n;
    let finish!: () => void;
    let fail!: (e: Error) => void;
    const done = new Promise<void>((resolve, reject) => {
      finish = resolve;
      fail = reject;
    });
    b.sink = {
      requestHead(h: FrameHead) {
        if (h.method !== 'SEND') return;
        const range = parseByteRange(getHeader(h.headers, 'Byte-Range') ?? '');
        if (range === undefined || range.total !== size) {
          fail(new Error(`bad Byte-Range ${getHeader(h.headers, 'Byte-Range')}`));
          at = -1;
          return;
        }
        at = range.start - 1;
      },
      requestBody(slice) {
        if (at < 0) return;
        if (at + slice.length > size) {
          fail(new Error('body beyond the Byte-Range total'));
          return;
        }
        slice.copy(into, at);
        at += slice.length;
        received += slice.length;
        if (ackWaiter !== undefined && sentBytes - Math.min(ackedBytes, received) <= window) {
          const w = ackWaiter;
          ackWaiter = undefined;
          w();
        }
      },
      requestEnd(_h, flag) {
        if (flag === '#') fail(new Error('the message was aborted (#) on the way'));
        if (received >= size) {
          endAt = nowNs();
          finish();
        }
      },
      closed: () => fail(new Error('B was disconnected')),
    };

    // -------------------------------------------------------------- sender
    const inFlight = new Map<string, number>();
    a.sink = {
      response(h) {
        const n = inFlight.get(h.tid);
        if (n === undefined) return;
        inFlight.delete(h.tid);
        if (h.status !== 200) failures.push(`a chunk was answered ${h.status} ${h.comment}`);
        acked++;
        ackedBytes += n;
        const w = ackWaiter;
        ackWaiter = undefined;
        w?.();
      },
      closed: () => fail(new Error('A was disconnected')),
    };
    const sock = a.socket;

    /** The head of a SEND chunk carrying file octets [from, to). */
    const head = (tid: string, from: number, to: number) =>
      formatRequestHead({
        tid,
        method: 'SEND',
        toPath,
        fromPath,
        headers: [['Message-ID', messageId], ['Byte-Range', `${from + 1}-${to}/${size}`], ['Content-Type', 'application/octet-stream']],
        hasBody: true,
      });

    const send = async () => {
      if (chunk >= size) {
        const tid = newTransactionId();
        inFlight.set(tid, size);
        if (a.messageMode) {
          sock.write(Buffer.concat([Buffer.from(head(tid, 0, size)), buf, Buffer.from(formatEndLine(tid, '$', true))]));
          return;
        }
        sock.write(head(tid, 0, size));
        for (let off = 0; off < size; off += STREAM_WRITE) {
          if (!sock.write(buf.subarray(off, Math.min(size, off + STREAM_WRITE)))) await a.drained();
          if (a.closed) return;
        }
        sock.write(formatEndLine(tid, '$', true));
        return;
      }
      let off = 0;
      while (off < size) {
        if (window > 0) {
          while (sentBytes - Math.min(ackedBytes, received) > window && !a.closed) await new Promise<void>((r) => (ackWaiter = r));
        }
        if (a.closed) return;
        sock.cork?.();
        let batch = 0;
        let room = true;
        while (off < size && batch < BATCH && room && (window === 0 || sentBytes - Math.min(ackedBytes, received) <= window)) {
          const end = Math.min(size, off + chunk);
          const tid = newTransactionId();
          inFlight.set(tid, end - off);
          const endLine = formatEndLine(tid, end === size ? '$' : '+', true);
          if (a.messageMode) {
            // A WebSocket message holds one frame, whole (W-3), as a browser sends it.
            room = sock.write(Buffer.concat([Buffer.from(head(tid, off, end)), buf.subarray(off, end), Buffer.from(endLine)]));
          } else {
            sock.write(head(tid, off, end));
            sock.write(buf.subarray(off, end));
            room = sock.write(endLine);
          }
          batch += end - off;
          sentBytes += end - off;
          off = end;
        }
        sock.uncork?.();
        if (!room || sock.writableNeedDrain) await a.drained();
      }
    };

    const meter = new Meter(target.pids);
    const timeoutMs = 30_000 + size / 2000; // 2 MB/s at worst
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        Promise.all([send(), done]),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs / 1000} s at ${received} of ${size} octets`)), timeoutMs);
        }),
      ]);
    } catch (e) {
      failures.push((e as Error).message);
    } finally {
      clearTimeout(timer);
    }
    const metered = meter.stop(endAt === 0n ? nowNs() : endAt);
    if (failures.length === 0 && received !== size) failures.push(`received ${received} octets for a file of ${size}`);
    if (failures.length === 0 && createHash('sha256').update(into).digest('hex') !== sha256) {
      failures.push('SHA-256 of the reassembled file differs from the sent one');
    }
    a.destroy();
    b.destroy();
    return {
      metrics: { 'MB/s': size / 1e6 / metered.seconds, chunks: acked, 'window octets': window },
      metered,
      failures,
    };
  },
};
