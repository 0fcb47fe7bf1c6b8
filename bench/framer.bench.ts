/**
 * Framer throughput, framer alone (no sockets, no message layer).
 *
 *   node --import tsx bench/framer.bench.ts
 *
 * Cases: SEND chunks with 2 KiB, 64 KiB and 100-byte bodies and realistic headers (To-Path with
 * 3 URIs, From-Path with 2, Message-ID, Byte-Range, Content-Type), each fed in 64 KiB reads (what
 * a socket delivers) and as one buffer. Streams are built once, before timing, from a fixed
 * pseudo-random sequence, so every run frames the same octets.
 *
 * Each case is warmed up, then timed 5 times for about 2 s each; the median is reported.
 * MB/s counts every framed octet (start line, headers, body, end-line) in 10^6 octets.
 * FRAMER_BENCH_SECONDS overrides the 2 s per run (for a quick look; report the default).
 * Results go to bench/results/framer.json.
 */

import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Framer } from '../core/protocol/framer.ts';
import type { EndFlag, FrameHandler, FrameHead } from '../core/protocol/framer.ts';

const RUN_SECONDS = Number(process.env['FRAMER_BENCH_SECONDS'] ?? 2);
const WARMUP_SECONDS = Math.min(1, RUN_SECONDS / 2);
const REPEATS = 5;
const READ_SIZE = 64 * 1024;
/** Each stream holds about this many octets, so a pass is long enough to time and short enough to loop. */
const STREAM_TARGET = 8 * 1024 * 1024;

// ----------------------------------------------------------------------- inputs

/** xorshift32: deterministic filler for bodies and ids. */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}

const ALNUM = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';

function ident(next: () => number, n: number): string {
  let s = '';
  for (let i = 0; i < n; i++) s += ALNUM[next() % ALNUM.length];
  return s;
}

function body(next: () => number, n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = next() & 0xff;
  return b;
}

/** A stream of SEND chunks with `bodySize`-octet bodies, about STREAM_TARGET octets long. */
function buildStream(bodySize: number, seed: number): { wire: Buffer; messages: number } {
  const next = rng(seed);
  const to =
    `msrps://relay1.example.com:2855/${ident(next, 22)};tcp ` +
    `msrps://relay2.example.net:2855/${ident(next, 22)};tcp ` +
    `msrps://bob.example.org:9003/${ident(next, 12)};tcp`;
  const from = `msrps://relay1.example.com:2855/${ident(next, 22)};tcp msrps://alice.example.com:9892/${ident(next, 12)};tcp`;
  const messageId = ident(next, 16);
  const parts: Buffer[] = [];
  let size = 0;
  let messages = 0;
  let offset = 1;
  while (size < STREAM_TARGET) {
    const tid = ident(next, 22); // 128 bits, as the relay's own (I-5)
    const range = bodySize > 2048 ? `${offset}-*/*` : `${offset}-${offset + bodySize - 1}/${offset + bodySize - 1}`;
    const head = Buffer.from(
      `MSRP ${tid} SEND\r\n` +
        `To-Path: ${to}\r\n` +
        `From-Path: ${from}\r\n` +
        `Message-ID: ${messageId}\r\n` +
        `Byte-Range: ${range}\r\n` +
        'Content-Type: application/octet-stream\r\n' +
        '\r\n',
      'latin1',
    );
    const m = Buffer.concat([head, body(next, bodySize), Buffer.from(`\r\n-------${tid}+\r\n`, 'latin1')]);
    parts.push(m);
    size += m.length;
    messages++;
    offset += bodySize;
  }
  return { wire: Buffer.concat(parts), messages };
}

/** Views of `wire` as a socket would deliver it. */
function reads(wire: Buffer, size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < wire.length; i += size) out.push(wire.subarray(i, i + size));
  return out;
}

// ---------------------------------------------------------------------- measure

interface Counting extends FrameHandler {
  messages: number;
  bodyOctets: number;
}

function counter(): Counting {
  return {
    messages: 0,
    bodyOctets: 0,
    onHead(_h: FrameHead) {},
    onBody(d: Buffer) {
      this.bodyOctets += d.length;
    },
    onEnd(_f: EndFlag) {
      this.messages++;
    },
  };
}

/** Frames the whole stream once with a fresh framer. */
function pass(chunks: Buffer[], h: Counting): void {
  const framer = new Framer(h);
  for (let i = 0; i < chunks.length; i++) framer.push(chunks[i]!);
}

/** Loops passes for about `seconds`; returns octets/s and messages/s. */
function timed(chunks: Buffer[], octetsPerPass: number, seconds: number): { octetsPerSec: number; messagesPerSec: number } {
  const h = counter();
  const budget = BigInt(Math.round(seconds * 1e9));
  const t0 = process.hrtime.bigint();
  let passes = 0;
  let elapsed = 0n;
  do {
    pass(chunks, h);
    passes++;
    elapsed = process.hrtime.bigint() - t0;
  } while (elapsed < budget);
  const s = Number(elapsed) / 1e9;
  return { octetsPerSec: (passes * octetsPerPass) / s, messagesPerSec: h.messages / s };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1]!;
}

interface CaseResult {
  case: string;
  bodySize: number;
  feed: '64 KiB reads' | 'one buffer';
  streamOctets: number;
  messagesPerPass: number;
  mbPerSec: number;
  messagesPerSec: number;
  runs: { mbPerSec: number; messagesPerSec: number }[];
}

const cases: { name: string; bodySize: number }[] = [
  { name: 'SEND 2 KiB', bodySize: 2048 },
  { name: 'SEND 64 KiB', bodySize: 64 * 1024 },
  { name: 'SEND 100 B', bodySize: 100 },
];

const cpu = cpus()[0]?.model ?? 'unknown';
console.log(`node ${process.version}  ${process.platform}/${process.arch}`);
console.log(`cpu  ${cpu}`);
console.log(`${REPEATS} runs of ~${RUN_SECONDS} s per case, median shown\n`);

const results: CaseResult[] = [];
for (const [i, c] of cases.entries()) {
  const { wire, messages } = buildStream(c.bodySize, 0x4975 + i);
  for (const feed of ['64 KiB reads', 'one buffer'] as const) {
    const chunks = feed === 'one buffer' ? [wire] : reads(wire, READ_SIZE);
    // Sanity: the stream frames into exactly the messages it was built from.
    const check = counter();
    pass(chunks, check);
    if (check.messages !== messages || check.bodyOctets !== messages * c.bodySize) {
      throw new Error(`${c.name} / ${feed}: framed ${check.messages} messages, expected ${messages}`);
    }
    timed(chunks, wire.length, WARMUP_SECONDS);
    const runs: { mbPerSec: number; messagesPerSec: number }[] = [];
    for (let r = 0; r < REPEATS; r++) {
      const t = timed(chunks, wire.length, RUN_SECONDS);
      runs.push({ mbPerSec: t.octetsPerSec / 1e6, messagesPerSec: t.messagesPerSec });
    }
    const res: CaseResult = {
      case: `${c.name}, ${feed}`,
      bodySize: c.bodySize,
      feed,
      streamOctets: wire.length,
      messagesPerPass: messages,
      mbPerSec: median(runs.map((x) => x.mbPerSec)),
      messagesPerSec: median(runs.map((x) => x.messagesPerSec)),
      runs,
    };
    results.push(res);
    console.log(`  measured ${res.case}`);
  }
}

const w0 = Math.max(4, ...results.map((r) => r.case.length));
const line = (a: string, b: string, c: string) => `${a.padEnd(w0)}  ${b.padStart(10)}  ${c.padStart(12)}`;
console.log('\n' + line('case', 'MB/s', 'messages/s'));
console.log(line('-'.repeat(w0), '-'.repeat(10), '-'.repeat(12)));
for (const r of results) {
  console.log(line(r.case, r.mbPerSec.toFixed(1), Math.round(r.messagesPerSec).toLocaleString('en-US')));
}

const outDir = fileURLToPath(new URL('./results/', import.meta.url));
mkdirSync(outDir, { recursive: true });
const out = `${outDir}framer.json`;
writeFileSync(
  out,
  JSON.stringify(
    {
      bench: 'framer',
      node: process.version,
      platform: `${process.platform}/${process.arch}`,
      cpu,
      runSeconds: RUN_SECONDS,
      repeats: REPEATS,
      readSize: READ_SIZE,
      date: new Date().toISOString(),
      results,
    },
    null,
    2,
  ) + '\n',
);
console.log(`\nwrote ${out}`);
