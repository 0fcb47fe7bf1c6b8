import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { DEFAULT_FRAMER_LIMITS, Framer, FramerError } from '../../core/protocol/framer.ts';
import type { EndFlag, FrameHandler, FrameHead, FramerLimits, RawHeader } from '../../core/protocol/framer.ts';

// Fixed seeds: a failure reproduces run after run (fast-check prints the path to shrink from).
// Lengths that matter (bodies, tids, garbage) ask for size 'max': fast-check's default size
// would cap them at about 10 whatever maxLength says.
const SEED = 4975;

// --------------------------------------------------------------------------- model

/** One generated message, and what the framer must report for it. */
interface GenMessage {
  kind: 'request' | 'response';
  tid: string;
  method: string;
  status: number;
  /** undefined: no SP after the status code. */
  comment: string | undefined;
  headers: RawHeader[];
  /** undefined: a bodiless message (no blank line). */
  body: Buffer | undefined;
  flag: EndFlag;
  /** Stray CRLFs before the start line (tolerated up to 4). */
  stray: number;
}

interface Seen {
  kind: string;
  tid: string;
  method: string;
  status: number;
  comment: string;
  headers: RawHeader[];
  hasBody: boolean;
  problem: string | undefined;
  body: Buffer;
  flag: EndFlag | undefined;
}

function expected(ms: GenMessage[]): Seen[] {
  return ms.map((m) => ({
    kind: m.kind,
    tid: m.tid,
    method: m.method,
    status: m.status,
    comment: m.comment ?? '',
    headers: m.headers,
    hasBody: m.body !== undefined,
    problem: undefined,
    body: m.body ?? Buffer.alloc(0),
    flag: m.flag,
  }));
}

function encode(ms: GenMessage[]): Buffer {
  const parts: Buffer[] = [];
  for (const m of ms) {
    let head = '\r\n'.repeat(m.stray) + `MSRP ${m.tid} `;
    head += m.kind === 'request' ? m.method : String(m.status) + (m.comment === undefined ? '' : ` ${m.comment}`);
    head += '\r\n';
    for (const [n, v] of m.headers) head += `${n}: ${v}\r\n`;
    parts.push(Buffer.from(head, 'utf8'));
    if (m.body !== undefined) parts.push(Buffer.from('\r\n'), m.body, Buffer.from('\r\n'));
    parts.push(Buffer.from(`-------${m.tid}${m.flag}\r\n`, 'latin1'));
  }
  return Buffer.concat(parts);
}

/** Records events and checks their order as they come. */
class Recorder implements FrameHandler {
  readonly seen: Seen[] = [];
  private open = false;
  constructor(private readonly onEvent: () => void = () => {}) {}
  onHead(h: FrameHead): void {
    assert.equal(this.open, false, 'onHead while a message is open');
    this.open = true;
    this.seen.push({
      kind: h.kind,
      tid: h.tid,
      method: h.method,
      status: h.status,
      comment: h.comment,
      headers: h.headers,
      hasBody: h.hasBody,
      problem: h.problem,
      body: Buffer.alloc(0),
      flag: undefined,
    });
    this.onEvent();
  }
  onBody(d: Buffer): void {
    assert.ok(this.open, 'onBody outside a message');
    assert.ok(d.length > 0, 'empty onBody');
    const cur = this.seen.at(-1)!;
    assert.ok(cur.hasBody, 'onBody for a bodiless message');
    cur.body = Buffer.concat([cur.body, d]);
    this.onEvent();
  }
  onEnd(f: EndFlag): void {
    assert.ok(this.open, 'onEnd outside a message');
    this.open = false;
    this.seen.at(-1)!.flag = f;
    this.onEvent();
  }
}

/** Cuts `wire` at the given offsets (any order, duplicates give empty pushes). */
function pieces(wire: Buffer, cuts: number[] | 'bytewise'): Buffer[] {
  if (cuts === 'bytewise') return Array.from({ length: wire.length }, (_, i) => wire.subarray(i, i + 1));
  const at = cuts.map((c) => c % (wire.length + 1)).sort((a, b) => a - b);
  const out: Buffer[] = [];
  let from = 0;
  for (const c of at) {
    out.push(wire.subarray(from, c));
    from = c;
  }
  out.push(wire.subarray(from));
  return out;
}

// ---------------------------------------------------------------------- arbitraries

const ALPHA = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ';
const ALNUM = ALPHA + '0123456789';
const IDENT = ALNUM + '.-+%=';
const TOKEN = ALNUM + "-.!%*_+`'~";
const chars = (s: string) => fc.constantFrom(...s.split(''));

/** ident: ALPHANUM 3*31ident-char (RFC 4975 §9). */
const identArb = fc
  .tuple(chars(ALNUM), fc.string({ unit: chars(IDENT), minLength: 3, maxLength: 31, size: 'max' }))
  .map(([a, b]) => a + b);

const PRINTABLE = Array.from({ length: 0x7e - 0x21 + 1 }, (_, i) => String.fromCharCode(0x21 + i)).join('');
/** utf8text with surrounding blanks removed, as the framer reports it. */
const valueArb = fc
  .string({
    unit: fc.oneof(
      { weight: 8, arbitrary: chars(PRINTABLE) },
      { weight: 2, arbitrary: fc.constantFrom(' ', '\t') },
      { weight: 1, arbitrary: fc.constantFrom('é', 'ë', '€', 'ß', '漢', '🐘') },
    ),
    maxLength: 60,
    size: 'medium',
  })
  .map((v) => v.replace(/^[ \t]+|[ \t]+$/g, ''));

const nameArb = fc.tuple(chars(ALPHA), fc.string({ unit: chars(TOKEN), maxLength: 20 })).map(([a, b]) => a + b);

const uriArb = fc
  .tuple(fc.constantFrom('msrp', 'msrps'), fc.constantFrom('relay.example.com', 'a.example', '192.0.2.7'), fc.integer({ min: 1, max: 65535 }), identArb)
  .map(([s, h, p, id]) => `${s}://${h}:${p}/${id};tcp`);
const pathArb = fc.array(uriArb, { minLength: 1, maxLength: 3 }).map((us) => us.join(' '));

const flagArb = fc.constantFrom<EndFlag>('$', '+', '#');

/** A body that may hold end-line look-alikes, but never the true end-line of `tid`. */
function bodyArb(tid: string): fc.Arbitrary<Buffer> {
  const lookalike = fc
    .tuple(
      fc.constantFrom('\r\n', '\r\n', '\r\n', '', '\n', '\r', 'x\r\n'),
      fc.constantFrom('-------', '-------', '------', '--------'),
      fc.oneof(
        { weight: 5, arbitrary: fc.constant(tid) },
        { weight: 1, arbitrary: identArb },
        { weight: 1, arbitrary: fc.constant(tid.slice(0, -1)) },
        { weight: 1, arbitrary: fc.constant(tid + 'x') },
        { weight: 1, arbitrary: fc.constant(tid.toUpperCase()) },
      ),
      fc.constantFrom('$', '+', '#', 'X', '', '$$', '\r'),
      fc.constantFrom('\r\n', '\r', '\n', '', ' ', '\r\r\n'),
    )
    .map((p) => Buffer.from(p.join(''), 'latin1'));
  const segment = fc.oneof(
    { weight: 3, arbitrary: fc.uint8Array({ maxLength: 1500, size: 'max' }).map((u) => Buffer.from(u)) },
    { weight: 2, arbitrary: lookalike },
    { weight: 1, arbitrary: fc.constantFrom(Buffer.from('\r\n'), Buffer.from('\r'), Buffer.from('\n'), Buffer.from([0])) },
  );
  return fc.array(segment, { maxLength: 8, size: 'max' }).map((segs) => sanitize(Buffer.concat(segs).subarray(0, 5000), tid));
}

/**
 * Breaks every true end-line of `tid` found in body + CRLF + end-line before the real one
 * (a sender "MUST ensure that the end-line ... is not present in the body", §1.2): its flag
 * octet, always inside the body, becomes "!".
 */
function sanitize(body: Buffer, tid: string): Buffer {
  const out = Buffer.from(body);
  const needle = Buffer.from(`\r\n-------${tid}`, 'latin1');
  for (;;) {
    const probe = Buffer.concat([out, Buffer.from(`\r\n-------${tid}$\r\n`, 'latin1')]);
    let changed = false;
    for (let idx = probe.indexOf(needle); idx !== -1 && idx < out.length; idx = probe.indexOf(needle, idx + 1)) {
      const f = probe[idx + needle.length];
      if ((f === 0x24 || f === 0x2b || f === 0x23) && probe[idx + needle.length + 1] === 0x0d && probe[idx + needle.length + 2] === 0x0a) {
        assert.ok(idx + needle.length < out.length, 'the flag of a body end-line lies in the body');
        out[idx + needle.length] = 0x21;
        changed = true;
        break;
      }
    }
    if (!changed) return out;
  }
}

const requestArb: fc.Arbitrary<GenMessage> = identArb.chain((tid) =>
  fc
    .record({
      method: fc.constantFrom('SEND', 'REPORT', 'AUTH', 'NICKNAME', 'FILE_OFFSET'),
      to: pathArb,
      from: pathArb,
      extra: fc.array(fc.tuple(nameArb, valueArb), { maxLength: 7 }),
      body: fc.option(bodyArb(tid), { nil: undefined, freq: 3 }),
      contentType: fc.constantFrom('text/plain', 'message/cpim', 'application/octet-stream; x=1'),
      flag: flagArb,
      stray: fc.constantFrom(0, 0, 0, 1, 4),
    })
    .map((r): GenMessage => ({
      kind: 'request',
      tid,
      method: r.method,
      status: 0,
      comment: undefined,
      headers: [
        ['To-Path', r.to],
        ['From-Path', r.from],
        ...r.extra,
        ...(r.body !== undefined ? [['Content-Type', r.contentType] as RawHeader] : []),
      ],
      body: r.body,
      flag: r.flag,
      stray: r.stray,
    })),
);

const responseArb: fc.Arbitrary<GenMessage> = fc
  .record({
    tid: identArb,
    status: fc.integer({ min: 100, max: 699 }),
    comment: fc.option(valueArb, { nil: undefined }),
    to: pathArb,
    from: pathArb,
    extra: fc.array(fc.tuple(nameArb, valueArb), { maxLength: 3 }),
    stray: fc.constantFrom(0, 0, 2),
  })
  .map((r): GenMessage => ({
    kind: 'response',
    tid: r.tid,
    method: '',
    status: r.status,
    comment: r.comment,
    headers: [['To-Path', r.to], ['From-Path', r.from], ...r.extra],
    body: undefined,
    flag: '$', // 4975 §7.2: a response's flag is always "$"
    stray: r.stray,
  }));

const streamArb = fc.array(fc.oneof({ weight: 3, arbitrary: requestArb }, { weight: 1, arbitrary: responseArb }), {
  minLength: 1,
  maxLength: 5,
});

const cutsArb: fc.Arbitrary<number[] | 'bytewise'> = fc.oneof(
  { weight: 1, arbitrary: fc.constant<'bytewise'>('bytewise') },
  { weight: 6, arbitrary: fc.array(fc.nat(), { maxLength: 15 }) },
);

// -------------------------------------------------------------------------- drivers

function runWhole(wire: Buffer): Seen[] {
  const rec = new Recorder();
  new Framer(rec).push(wire);
  return rec.seen;
}

/** Feeds the pieces; after each push, checks what the framer holds. */
function runSplit(wire: Buffer, cuts: number[] | 'bytewise'): Seen[] {
  const rec = new Recorder();
  const framer = new Framer(rec);
  for (const p of pieces(wire, cuts)) {
    framer.push(p);
    if (framer.inBody) {
      // Only a possible end-line start is held back: `\r\n-------<tid>` + flag + CR.
      const tid = rec.seen.at(-1)!.tid;
      assert.ok(framer.bufferedBytes <= tid.length + 9 + 2, `holds ${framer.bufferedBytes} body octets`);
    }
  }
  assert.equal(framer.bufferedBytes, 0);
  assert.equal(framer.inBody, false);
  return rec.seen;
}

type ResumeMode = 'microtask' | 'next-push' | 'same-callback' | 'push-inside';

/** Feeds the pieces, pausing in callbacks as `plan` says, and resuming per the plan's mode. */
async function runPausing(wire: Buffer, cuts: number[] | 'bytewise', plan: [boolean, ResumeMode][]): Promise<Seen[]> {
  const queue = pieces(wire, cuts);
  let framer!: Framer;
  let k = 0;
  let pushIndex = 0;
  let resumeAfter: number | undefined;
  const rec = new Recorder(() => {
    const [pause, mode] = plan[k++ % plan.length]!;
    if (!pause) return;
    framer.pause();
    switch (mode) {
      case 'microtask':
        queueMicrotask(() => framer.resume());
        break;
      case 'next-push':
        resumeAfter = pushIndex + 1;
        break;
      case 'same-callback':
        framer.resume();
        break;
      case 'push-inside': {
        // The next read arrives from inside the callback, while paused, then resume.
        const next = queue.shift();
        if (next !== undefined) framer.push(next);
        framer.resume();
        break;
      }
    }
  });
  // Events must never arrive while paused.
  const guarded: FrameHandler = {
    onHead: (h) => {
      assert.equal(framer.isPaused, false, 'onHead while paused');
      rec.onHead(h);
    },
    onBody: (d) => {
      assert.equal(framer.isPaused, false, 'onBody while paused');
      rec.onBody(d);
    },
    onEnd: (f) => {
      assert.equal(framer.isPaused, false, 'onEnd while paused');
      rec.onEnd(f);
    },
  };
  framer = new Framer(guarded);
  while (queue.length > 0) {
    framer.push(queue.shift()!);
    if (resumeAfter !== undefined && pushIndex >= resumeAfter) {
      resumeAfter = undefined;
      framer.resume();
    }
    pushIndex++;
    if (pushIndex % 3 === 0) await Promise.resolve();
  }
  for (let spins = 0; framer.isPaused; spins++) {
    assert.ok(spins < 100_000, 'the framer stays paused');
    await new Promise<void>((r) => setImmediate(r));
    if (framer.isPaused && resumeAfter !== undefined) {
      resumeAfter = undefined;
      framer.resume();
    }
  }
  assert.equal(framer.bufferedBytes, 0);
  return rec.seen;
}

// ------------------------------------------------------------------------ properties

describe('framer properties: valid streams', () => {
  it('any split of a stream (1-byte reads, empty pushes) gives the events of one push, which are the generated messages', () => {
    fc.assert(
      fc.property(streamArb, cutsArb, (ms, cuts) => {
        const wire = encode(ms);
        const whole = runWhole(wire);
        assert.deepEqual(whole, expected(ms));
        assert.deepEqual(runSplit(wire, cuts), whole);
      }),
      { seed: SEED, numRuns: 400 },
    );
  });

  it('pausing in random callbacks and resuming later gives the same events', async () => {
    const modeArb = fc.constantFrom<ResumeMode>('microtask', 'next-push', 'same-callback', 'push-inside');
    await fc.assert(
      fc.asyncProperty(
        streamArb,
        cutsArb,
        fc.array(fc.tuple(fc.boolean(), modeArb), { minLength: 1, maxLength: 30 }),
        async (ms, cuts, plan) => {
          const wire = encode(ms);
          assert.deepEqual(await runPausing(wire, cuts, plan), expected(ms));
        },
      ),
      { seed: SEED + 1, numRuns: 300 },
    );
  });
});

// --------------------------------------------------------------------- garbage input

const limitsArb: fc.Arbitrary<FramerLimits> = fc.oneof(
  fc.constant({ ...DEFAULT_FRAMER_LIMITS }),
  fc.record({
    maxStartLine: fc.integer({ min: 8, max: 200 }),
    maxHeaderLine: fc.integer({ min: 8, max: 300 }),
    maxHeaderSection: fc.integer({ min: 16, max: 1000 }),
    maxHeaders: fc.integer({ min: 1, max: 10 }),
  }),
);

/** Feeds the pieces until the first error; only FramerError may escape, and memory stays bounded. */
function feedGarbage(pieces: Buffer[], limits: FramerLimits): FramerError | undefined {
  const framer = new Framer(new Recorder(), limits);
  let biggest = 0;
  for (const p of pieces) {
    biggest = Math.max(biggest, p.length);
    try {
      framer.push(p);
    } catch (e) {
      assert.ok(e instanceof FramerError, `only FramerError escapes push, got ${String(e)}`);
      assert.notEqual(e.kind, 'dead');
      let again: unknown;
      try {
        framer.push(Buffer.from('MSRP abcd SEND\r\n'));
      } catch (e2) {
        again = e2;
      }
      assert.ok(again instanceof FramerError && again.kind === 'dead', 'a failed framer stays dead');
      return e;
    }
    const bound = limits.maxHeaderSection + limits.maxStartLine + biggest;
    assert.ok(framer.bufferedBytes <= bound, `bufferedBytes ${framer.bufferedBytes} > ${bound}`);
  }
  return undefined;
}

type Mutation =
  | { op: 'set'; at: number; byte: number }
  | { op: 'delete'; at: number; len: number }
  | { op: 'insert'; at: number; bytes: Uint8Array }
  | { op: 'duplicate'; at: number; len: number };

const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ op: fc.constant<'set'>('set'), at: fc.nat(), byte: fc.constantFrom(0, 0x0a, 0x0d, 0x20, 0x2d, 0x3a, 0x24, 0x80, 0xff, 0x41) }),
  fc.record({ op: fc.constant<'delete'>('delete'), at: fc.nat(), len: fc.integer({ min: 1, max: 40 }) }),
  fc.record({
    op: fc.constant<'insert'>('insert'),
    at: fc.nat(),
    bytes: fc.oneof(fc.uint8Array({ minLength: 1, maxLength: 30 }), fc.constant(new Uint8Array([0x0d, 0x0a])), fc.constant(new Uint8Array([0x20]))),
  }),
  fc.record({ op: fc.constant<'duplicate'>('duplicate'), at: fc.nat(), len: fc.integer({ min: 1, max: 200 }) }),
);

function mutate(wire: Buffer, ms: Mutation[]): Buffer {
  let b = Buffer.from(wire);
  for (const m of ms) {
    const at = m.at % (b.length + 1);
    switch (m.op) {
      case 'set':
        if (at < b.length) b[at] = m.byte;
        break;
      case 'delete':
        b = Buffer.concat([b.subarray(0, at), b.subarray(at + m.len)]);
        break;
      case 'insert':
        b = Buffer.concat([b.subarray(0, at), Buffer.from(m.bytes), b.subarray(at)]);
        break;
      case 'duplicate':
        b = Buffer.concat([b.subarray(0, at + m.len), b.subarray(at)]);
        break;
    }
  }
  return b;
}

/** Bytes with no CR and no LF, so no line ever ends. */
const noEolArb = (min: number, max: number) =>
  fc.uint8Array({ minLength: min, maxLength: max, size: 'max' }).map((u) => Buffer.from(u.map((x) => (x === 0x0d || x === 0x0a ? 0x20 : x))));

describe('framer properties: garbage', () => {
  it('random bytes: push throws nothing but FramerError, and buffers stay bounded', () => {
    const garbageArb = fc.oneof(
      fc.uint8Array({ maxLength: 3000, size: 'max' }).map((u) => Buffer.from(u)),
      fc.uint8Array({ maxLength: 3000, size: 'max' }).map((u) => Buffer.concat([Buffer.from('MSRP '), u])),
      fc.uint8Array({ maxLength: 3000, size: 'max' }).map((u) => Buffer.concat([Buffer.from('MSRP abcd SEND\r\n'), u])),
      fc.uint8Array({ maxLength: 3000, size: 'max' }).map((u) => Buffer.concat([Buffer.from('MSRP abcd SEND\r\nTo-Path: x\r\nFrom-Path: y\r\n\r\n'), u])),
    );
    fc.assert(
      fc.property(garbageArb, cutsArb, limitsArb, (g, cuts, limits) => {
        feedGarbage(pieces(g, cuts), limits);
      }),
      { seed: SEED + 2, numRuns: 300 },
    );
  });

  it('mutated valid streams: push throws nothing but FramerError, and buffers stay bounded', () => {
    fc.assert(
      fc.property(streamArb, fc.array(mutationArb, { minLength: 1, maxLength: 6 }), cutsArb, limitsArb, (ms, muts, cuts, limits) => {
        feedGarbage(pieces(mutate(encode(ms), muts), cuts), limits);
      }),
      { seed: SEED + 3, numRuns: 200 },
    );
  });

  it('a line that never ends hits a line or section limit instead of growing', () => {
    const prefixArb = fc.constantFrom<['start' | 'header', string]>(
      ['start', 'MSRP '],
      ['start', 'MSRP abcd SE'],
      ['header', 'MSRP abcd SEND\r\n'],
      ['header', 'MSRP abcd SEND\r\nTo-Path: msrp://a.example:1/s;tcp\r\nFrom-Path: msrp://b.example:2/t;tcp\r\nX-Y: '],
      ['header', 'MSRP abcd 200 OK\r\nTo-Path: msrp://a.example:1/s;tcp\r\n'],
    );
    fc.assert(
      fc.property(prefixArb, limitsArb, fc.array(fc.integer({ min: 1, max: 9000 }), { minLength: 1, maxLength: 8 }), fc.nat(), (prefix, limits, sizes, seed) => {
        const [where, text] = prefix;
        // The prefix must itself fit the limits to reach the state under test.
        fc.pre(text.split('\r\n').every((l) => l.length <= Math.min(limits.maxStartLine, limits.maxHeaderLine)));
        fc.pre(text.length <= limits.maxHeaderSection && text.split('\r\n').length - 2 < limits.maxHeaders);
        const reads: Buffer[] = [Buffer.from(text, 'latin1')];
        const limit = where === 'start' ? limits.maxStartLine : Math.min(limits.maxHeaderLine, limits.maxHeaderSection);
        // Enough octets to pass any limit, in reads of the generated sizes.
        let total = 0;
        let x = seed;
        for (let i = 0; total <= limit + 2; i++) {
          const n = sizes[i % sizes.length]!;
          const chunk = Buffer.alloc(n);
          for (let j = 0; j < n; j++) {
            x = (Math.imul(x, 1103515245) + 12345) >>> 0;
            const v = (x >>> 16) & 0xff;
            chunk[j] = v === 0x0d || v === 0x0a ? 0x20 : v;
          }
          reads.push(chunk);
          total += n;
        }
        const err = feedGarbage(reads, limits);
        assert.ok(err !== undefined, 'a limit error happens');
        const kinds = where === 'start' ? ['start-line-too-long'] : ['header-line-too-long', 'header-section-too-long'];
        assert.ok(kinds.includes(err.kind), `${err.kind} for a line that never ends in the ${where} section`);
      }),
      { seed: SEED + 4, numRuns: 200 },
    );
  });

  it('a body without end-line streams through with a bounded hold-back', () => {
    fc.assert(
      fc.property(identArb, fc.array(noEolArb(0, 4000), { minLength: 1, maxLength: 10 }), fc.array(fc.nat(), { maxLength: 10 }), (tid, chunks, crs) => {
        const rec = new Recorder();
        const framer = new Framer(rec);
        framer.push(Buffer.from(`MSRP ${tid} SEND\r\nTo-Path: a\r\nFrom-Path: b\r\nContent-Type: x/y\r\n\r\n`, 'latin1'));
        let sent = 0;
        let i = 0;
        for (const c of chunks) {
          // Sprinkle partial end-lines at the ends of reads, never completed.
          const tail = crs[i++] === undefined ? '' : `\r\n-------${tid}`.slice(0, 1 + (crs[i - 1]! % (tid.length + 9)));
          const read = Buffer.concat([c, Buffer.from(tail, 'latin1')]);
          framer.push(read);
          sent += read.length;
          assert.ok(framer.inBody);
          assert.ok(framer.bufferedBytes <= tid.length + 11);
          assert.equal(rec.seen[0]!.body.length + framer.bufferedBytes, sent);
        }
      }),
      { seed: SEED + 5, numRuns: 200 },
    );
  });
});
