/**
 * chat: one room of `chatParticipants` (100) sessions on the chat focus, each an MSRP client on
 * its own TCP connection; `chatSenders` (10) of them send Message/CPIM messages of
 * `messageSize` octets of text to the room, each keeping `chatWindow` (8) messages outstanding.
 * A message is done when its last copy has been delivered (the end-line of the copy read by
 * the last of the other participants); then its sender sends the next one.
 *
 * Two phases, one after the other on the same room:
 *
 * 1. max: the senders at their window for `duration` s. Deliveries/s = copies delivered over
 *    the time to the last one; latency = the sender's write to the last copy's end-line (one
 *    process, one clock), p50/p99/max over every message. Relay CPU is metered over this phase.
 * 2. half: messages paced, open loop, at half the deliveries/s phase 1 measured (spread
 *    round-robin over the senders, a tick every millisecond) for `duration` s: the latency a
 *    room sees when the focus is not at its limit.
 *
 * Memory: what the participants' joining added to a fresh relay, over their number: its V8
 * heap and external (Buffer) octets after a full collection (`heap`, the steady figure), and
 * its RSS (`RSS`, which moves with what the allocator and V8 keep: noisy at 100). Read in the
 * first run of each variant on each relay process (its warm-up, unless --cold; the first
 * variant's is on a fresh relay) and reported for every run of it there: later runs start on
 * what earlier ones left, and read less than nothing at times.
 *
 * Participants reach the focus through their own AUTH token (`token`, the common case: a=path
 * `<token URI> <own URI>`, To-Path `<token URI> <focus URI>`), or straight to the focus URI
 * (`direct`, no AUTH: the focus learns the way back from the first, bodiless SEND). Every copy
 * is answered 200, as a client does (its Failure-Report is yes).
 *
 * On `raw` (targets/fanout-main.ts) the same participants connect to a plain Node process; each
 * sender writes the octets of one copy per message (as long as the focus's copies, focus lines
 * included) and the process writes them to the other participants. Same counting, same clock.
 */

import type net from 'node:net';
import { randomBytes } from 'node:crypto';
import { resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { FrameHead } from '../../core/protocol/framer.ts';
import { formatRequest, getHeader, newTransactionId } from '../../core/protocol/message.ts';
import { msrpMedia, parseSdp } from '../../plugins/chat/sdp.ts';
import { Endpoint } from '../loadgen/endpoint.ts';
import { Meter, nowNs } from '../meter.ts';
import { memoryBytes } from '../process-stats.ts';
import { latencySummary } from '../stats.ts';
import { BENCH_ROOM, BENCH_USER, chatRelayTarget, fanoutTarget, type ChatAccess } from '../targets/chat.ts';
import type { RunningTarget } from '../targets/target.ts';
import type { BenchOptions, Scenario } from './scenario.ts';

const ROOT = resolve(import.meta.dirname, '../..');
const OPEN_CONCURRENCY = 20;
const DRAIN_MS = 20_000;
/** A paced sender with this many times its window outstanding waits (the half phase is open loop up to there). */
const HALF_BACKLOG = 16;
/** What ends a message's text: `|<sender>:<seq>`, read back from each copy's last octets. */
const MARK = 0x7c;

export function chatOfferSdp(path: readonly string[]): string {
  return [
    'v=0',
    'o=- 3918217433 3918217433 IN IP4 127.0.0.1',
    's=bench',
    't=0 0',
    'm=message 2855 TCP/MSRP *',
    'c=IN IP4 127.0.0.1',
    `a=path:${path.join(' ')}`,
    'a=accept-types:message/cpim text/plain',
    'a=accept-wrapped-types:*',
    'a=chatroom:nickname private-messages',
    'a=setup:active',
    'a=sendrecv',
    '',
  ].join('\r\n');
}

/** The CPIM body a participant sends: `textBytes` octets of text ending in the mark. */
function cpim(i: number, seq: number, textBytes: number, focusLines = ''): Buffer {
  const mark = `|${i}:${seq}`;
  const text = 'a'.repeat(Math.max(0, textBytes - mark.length)) + mark;
  return Buffer.from(`From: <sip:u${i}@example.com>\r\nTo: <${BENCH_ROOM}>\r\nDateTime: 2024-05-01T10:00:00+02:00\r\n${focusLines}\r\nContent-Type: text/plain;charset=UTF-8\r\n\r\n${text}`, 'latin1');
}

interface Member {
  i: number;
  ep: Endpoint;
  /** SEND's To-Path and From-Path toward the focus (empty on the fan-out). */
  toPath: string[];
  fromPath: string[];
  /** The fan-out's sender socket of this participant. */
  out?: net.Socket;
}

async function openMembers(access: ChatAccess, n: number, path: 'token' | 'direct'): Promise<Member[]> {
  const members: Member[] = new Array(n);
  let next = 0;
  const open = async (i: number): Promise<Member> => {
    if (access.kind === 'fanout') return { i, ep: await access.member(i), toPath: [], fromPath: [] };
    const ep = await Endpoint.connect(access.address);
    const route = path === 'token' ? await ep.auth(access.authUri, BENCH_USER) : [];
    const answer = await access.join(chatOfferSdp([...route, ep.uri]), `sip:u${i}@example.com`);
    const focusUri = msrpMedia(parseSdp(answer))[0]!.path.at(-1)!;
    const m: Member = { i, ep, toPath: [...route, focusUri], fromPath: [ep.uri] };
    // Straight to the focus: the first request (bodiless, RFC 4975 §5.4) shows it the way back.
    if (path === 'direct') {
      const r = await ep.request('SEND', m.toPath, m.fromPath, [['Message-ID', randomBytes(8).toString('hex')]]);
      if (r.status !== 200) throw new Error(`the first SEND got ${r.status}`);
    }
    return m;
  };
  await Promise.all(
    Array.from({ length: OPEN_CONCURRENCY }, async () => {
      while (next < n) {
        const i = next++;
        members[i] = await open(i);
      }
    }),
  );
  return members;
}

/** The memory figures of the first run of a variant on a relay process, by its pid and the variant. */
const memoryOfFirstRun = new Map<string, { heap: number; rss: number }>();

interface Outstanding {
  t: bigint;
  left: number;
}

interface Phase {
  latencies: number[];
  deliveries: number;
  last: bigint;
}

export const chat: Scenario = {
  name: 'chat',
  metrics: [
    { key: 'deliveries/s', unit: '/s', higherIsBetter: true, perCpu: true },
    { key: 'p50 ms', unit: 'ms', higherIsBetter: false, perCpu: false },
    { key: 'p99 ms', unit: 'ms', higherIsBetter: false, perCpu: false },
    { key: 'max ms', unit: 'ms', higherIsBetter: false, perCpu: false },
    { key: 'half p50 ms', unit: 'ms', higherIsBetter: false, perCpu: false },
    { key: 'half p99 ms', unit: 'ms', higherIsBetter: false, perCpu: false },
    { key: 'heap KiB/participant', unit: 'KiB', higherIsBetter: false, perCpu: false },
    { key: 'RSS KiB/participant', unit: 'KiB', higherIsBetter: false, perCpu: false },
  ],
  // Under callgrind 2 s are some 3,000 copies: too few for the JIT to have compiled the fan-out.
  warmup: (o) => ({ ...o, duration: Math.min(o.duration, o.slow === true ? 10 : 2), chatHalf: false }),
  // --instructions counts the max phase only, not the participants' AUTHs and joins.
  countsOwnPhase: true,
  variants: (o) =>
    o.chatPaths.map((path) => ({
      name: `${o.chatParticipants} ${path} ${o.chatSenders}x${o.chatWindow}`,
      params: { participants: o.chatParticipants, senders: o.chatSenders, window: o.chatWindow, direct: path === 'direct' ? 1 : 0 },
    })),
  notApplicable(v, spec) {
    if (v.legs !== undefined && (v.legs.a !== 'tcp' || v.legs.b !== 'tcp')) return 'tcp only';
    if (spec.name === 'raw' && v.params['direct'] === 1) return 'the fan-out has no paths: see the token row';
    return undefined;
  },
  target(spec, o) {
    if (spec.kind === 'relay' && spec.root !== undefined && spec.workers === 1 && spec.auth === 'memory') return chatRelayTarget(spec, o.chatParticipants);
    if (spec.name === 'raw') return fanoutTarget(ROOT);
    const why = spec.kind === 'relay' && spec.root !== undefined ? (spec.workers !== 1 ? 'the chat focus has no cluster mode yet (--workers)' : 'auth-sql changes only AUTH') : 'no chat focus';
    return { ...spec, unavailable: () => why };
  },
  async run(target, _spec, v, o) {
    return runChat(target, v.params['participants']!, v.params['senders']!, v.params['window']!, v.params['direct'] === 1 ? 'direct' : 'token', o);
  },
};

async function runChat(target: RunningTarget, n: number, k: number, window: number, path: 'token' | 'direct', o: BenchOptions) {
  const access = target.chat;
  if (access === undefined) throw new Error('not a chat target');
  const failures: string[] = [];
  const pids = target.pids();
  const gc = access.kind === 'focus' ? access.gc : async () => Number.NaN;
  await sleep(1000);
  const heap0 = await gc();
  const before = memoryBytes(pids);
  const members = await openMembers(access, n, path);
  await sleep(1000);
  const heap1 = await gc();
  const joined = memoryBytes(pids);
  // Memory is read on a fresh relay: its first run (the warm-up, unless --cold) is kept for
  // the later ones, which start on what the runs before them left.
  const key = `${pids[0] ?? 0} ${path} ${n}`;
  const firstRun = memoryOfFirstRun.get(key) ?? { heap: (heap1 - heap0) / n, rss: (joined.rss - before.rss) / n };
  memoryOfFirstRun.set(key, firstRun);
  const senders = members.slice(0, Math.min(k, n));
  if (access.kind === 'fanout') for (const s of senders) s.out = await access.sender(s.i);

  // ------------------------------------------------------------------ counting
  const outstanding = senders.map(() => new Map<number, Outstanding>());
  const seqs = senders.map(() => 0);
  let phase: Phase = { latencies: [], deliveries: 0, last: 0n };
  let open = 0;
  let errors = 0;
  let firstError: string | undefined;
  let strays = 0;
  let drained: (() => void) | undefined;
  let pump: (s: number) => void = () => undefined;
  const copies = n - 1;

  const delivered = (sender: number, seq: number): void => {
    const m = outstanding[sender]?.get(seq);
    if (m === undefined) {
      strays++;
      return;
    }
    const now = nowNs();
    phase.deliveries++;
    phase.last = now;
    if (--m.left > 0) return;
    outstanding[sender]!.delete(seq);
    phase.latencies.push(Number(now - m.t) / 1e6);
    open--;
    if (open === 0) drained?.();
    pump(sender);
  };

  for (const m of members) {
    const ep = m.ep;
    // Answers to copies, corked per read: one write per burst, as a client on a busy room would.
    ep.answerSends = false;
    let corked = false;
    let tail = Buffer.alloc(0);
    ep.sink = {
      requestHead() {
        tail = Buffer.alloc(0);
      },
      requestBody(slice) {
        tail = tail.length === 0 && slice.length >= 24 ? Buffer.from(slice.subarray(slice.length - 24)) : Buffer.concat([tail, slice]).subarray(-24);
      },
      requestEnd(h: FrameHead) {
        if (h.method !== 'SEND') return;
        if (!corked) {
          corked = true;
          ep.socket.cork?.();
          process.nextTick(() => {
            corked = false;
            ep.socket.uncork?.();
          });
        }
        // A client answers a copy unless its Failure-Report says not to (no; partial: errors only).
        const fr = getHeader(h.headers, 'Failure-Report');
        if (fr !== 'no' && fr !== 'partial') ep.answer(h, 200);
        const bar = tail.lastIndexOf(MARK);
        if (bar === -1) return;
        const [a, b] = tail.subarray(bar + 1).toString('latin1').split(':');
        delivered(Number(a), Number(b));
      },
      response(h) {
        if (h.status === 200) return;
        errors++;
        firstError ??= `${h.status} ${h.comment}`;
      },
    };
  }

  // The fan-out writes the octets of one copy: as long as the focus's (its lines, its paths).
  const copyFrame = (i: number, seq: number): Buffer => {
    const body = cpim(i, seq, o.messageSize, `NS: Chat <urn:msrprelay:chat>\r\nChat.Timestamp: ${new Date().toISOString()}\r\n`);
    const tid = newTransactionId();
    const frame = formatRequest({
      tid,
      method: 'SEND',
      toPath: [`msrp://127.0.0.1:2855/${randomBytes(10).toString('hex')};tcp`],
      fromPath: [`msrp://127.0.0.1:2855/${randomBytes(16).toString('hex')};tcp`, `msrp://127.0.0.1:2855/${randomBytes(16).toString('hex')};tcp`],
      headers: [
        ['Message-ID', randomBytes(10).toString('hex')],
        ['Byte-Range', `1-${body.length}/${body.length}`],
        ['Content-Type', 'message/cpim'],
      ],
      body,
    });
    const len = Buffer.alloc(4);
    len.writeUInt32BE(frame.length);
    return Buffer.concat([len, frame]);
  };

  const send = (s: number): void => {
    const m = senders[s]!;
    const seq = seqs[s]!++;
    outstanding[s]!.set(seq, { t: nowNs(), left: copies });
    open++;
    if (m.out !== undefined) {
      m.out.write(copyFrame(m.i, seq));
      return;
    }
    const body = cpim(m.i, seq, o.messageSize);
    m.ep.write(
      formatRequest({
        tid: newTransactionId(),
        method: 'SEND',
        toPath: m.toPath,
        fromPath: m.fromPath,
        headers: [
          ['Message-ID', `msg${m.i}x${seq}`],
          ['Byte-Range', `1-${body.length}/${body.length}`],
          ['Content-Type', 'message/cpim'],
        ],
        body,
      }),
    );
  };

  const drain = async (): Promise<void> => {
    if (open === 0) return;
    await Promise.race([new Promise<void>((r) => (drained = r)), sleep(DRAIN_MS, undefined, { ref: false })]);
    drained = undefined;
  };

  // ------------------------------------------------------------------ 1: at the window
  let stopping = false;
  pump = (s) => {
    while (!stopping && outstanding[s]!.size < window) send(s);
  };
  o.counting?.on();
  const meter = new Meter(target.pids);
  const t0 = nowNs();
  for (let s = 0; s < senders.length; s++) pump(s);
  await sleep(o.duration * 1000);
  stopping = true;
  await drain();
  o.counting?.off();
  const max = phase;
  const metered = meter.stop(max.last === 0n ? nowNs() : max.last);
  if (open > 0) failures.push(`${open} messages never reached every participant`);
  const maxSeconds = Number((max.last === 0n ? nowNs() : max.last) - t0) / 1e9;
  const rate = max.deliveries / maxSeconds;
  const lat = latencySummary(max.latencies);

  // ------------------------------------------------------------------ 2: at half the rate
  const metrics: Record<string, number> = {};
  if (o.chatHalf && open === 0 && rate > 0) {
    phase = { latencies: [], deliveries: 0, last: 0n };
    pump = () => undefined;
    const perSecond = rate / 2 / copies;
    let sent = 0;
    let held = 0;
    let next = 0;
    const h0 = nowNs();
    await new Promise<void>((resolve) => {
      const tick = setInterval(() => {
        const elapsed = Number(nowNs() - h0) / 1e9;
        if (elapsed >= o.duration) {
          clearInterval(tick);
          resolve();
          return;
        }
        const due = Math.floor(elapsed * perSecond) - sent;
        for (let j = 0; j < due; j++) {
          const s = next++ % senders.length;
          sent++;
          if (outstanding[s]!.size >= window * HALF_BACKLOG) held++;
          else send(s);
        }
      }, 1);
    });
    await drain();
    const half = latencySummary(phase.latencies);
    metrics['half p50 ms'] = half.p50;
    metrics['half p99 ms'] = half.p99;
    metrics['half max ms'] = half.max;
    metrics['half deliveries/s'] = phase.deliveries / (Number(phase.last - h0) / 1e9);
    metrics['half messages held back'] = held;
    if (open > 0) failures.push(`${open} paced messages never reached every participant`);
  }

  if (errors > 0) failures.push(`${errors} SENDs were answered with an error (${firstError ?? ''})`);
  if (strays > 0) failures.push(`${strays} copies of no outstanding message`);
  const closed = members.filter((m) => m.ep.closed).length;
  if (closed > 0) failures.push(`${closed} participants were disconnected`);
  for (const m of members) {
    m.ep.sink = {};
    m.ep.destroy();
    m.out?.destroy();
  }
  // The participants leave as their connections close: the room is empty for the next run.
  await sleep(500);
  return {
    metrics: {
      'deliveries/s': rate,
      'p50 ms': lat.p50,
      'p99 ms': lat.p99,
      'max ms': lat.max,
      ...metrics,
      'heap KiB/participant': firstRun.heap / 1024,
      'RSS KiB/participant': firstRun.rss / 1024,
      'messages/s': rate / copies,
      deliveries: max.deliveries,
    },
    metered,
    failures,
  };
}
