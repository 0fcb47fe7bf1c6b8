import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_FRAMER_LIMITS, Framer, FramerError, isOneFrame } from '../../core/protocol/framer.ts';
import type { EndFlag, FrameHandler, FrameHead, FramerErrorKind, FramerLimits, RawHeader } from '../../core/protocol/framer.ts';

// ---------------------------------------------------------------------------- helpers

/** One message as the framer delivered it. */
interface Got {
  head: FrameHead;
  /** Every onBody slice, copied at delivery. */
  slices: Buffer[];
  flag: EndFlag | undefined;
}

/** Records events; `log` keeps their order ('head', 'body', 'end $'). */
class Recorder implements FrameHandler {
  readonly got: Got[] = [];
  readonly log: string[] = [];
  onHead(head: FrameHead): void {
    this.log.push('head');
    this.got.push({ head, slices: [], flag: undefined });
  }
  onBody(data: Buffer): void {
    assert.ok(data.length > 0, 'onBody is never called with an empty slice');
    this.log.push('body');
    const cur = this.got.at(-1);
    assert.ok(cur !== undefined && cur.flag === undefined, 'onBody between onHead and onEnd');
    cur.slices.push(Buffer.from(data));
  }
  onEnd(flag: EndFlag): void {
    this.log.push(`end ${flag}`);
    const cur = this.got.at(-1);
    assert.ok(cur !== undefined && cur.flag === undefined, 'onEnd once per head');
    cur.flag = flag;
  }
}

/** What a message boils down to, whatever the read splits were. */
function summary(got: Got[]) {
  return got.map((g) => ({
    kind: g.head.kind,
    tid: g.head.tid,
    method: g.head.method,
    status: g.head.status,
    comment: g.head.comment,
    headers: g.head.headers,
    hasBody: g.head.hasBody,
    problem: g.head.problem,
    body: Buffer.concat(g.slices),
    flag: g.flag,
  }));
}

const bin = (s: string): Buffer => Buffer.from(s, 'latin1');

/** Feeds `wire` cut at `cuts` (sorted offsets) and returns what came out. */
function feed(wire: Buffer | string, cuts: number[] = [], limits?: Partial<FramerLimits>): Recorder {
  const b = typeof wire === 'string' ? bin(wire) : wire;
  const rec = new Recorder();
  const framer = new Framer(rec, limits);
  let from = 0;
  for (const c of cuts) {
    framer.push(b.subarray(from, c));
    from = c;
  }
  framer.push(b.subarray(from));
  return rec;
}

function feedBytewise(wire: Buffer | string, limits?: Partial<FramerLimits>): Recorder {
  const b = typeof wire === 'string' ? bin(wire) : wire;
  return feed(b, Array.from({ length: b.length }, (_, i) => i), limits);
}

/** Whole buffer, two parts at every index, and 1-byte reads all give the same messages. */
function assertSplitInvariant(wire: Buffer | string): ReturnType<typeof summary> {
  const b = typeof wire === 'string' ? bin(wire) : wire;
  const whole = summary(feed(b).got);
  for (let i = 0; i <= b.length; i++) {
    assert.deepEqual(summary(feed(b, [i]).got), whole, `split at ${i}`);
  }
  assert.deepEqual(summary(feedBytewise(b).got), whole, '1-byte reads');
  return whole;
}

/** Runs `fn` and checks that it throws a FramerError of `kind`; returns the error. */
function framingError(fn: () => void, kind: FramerErrorKind): FramerError {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof FramerError, `expected a FramerError (${kind}), got ${String(caught)}`);
  assert.equal(caught.kind, kind, caught.message);
  return caught;
}

/** A deterministic, end-line-free filler (xorshift32 bytes, never CR). */
function filler(n: number, seed = 0x9e3779b9): Buffer {
  const out = Buffer.alloc(n);
  let x = seed >>> 0;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    const v = x & 0xff;
    out[i] = v === 0x0d ? 0x0c : v;
  }
  return out;
}

const TO = 'To-Path: msrp://biloxi.example.com:12763/kjhd37s2s20w2a;tcp\r\n';
const FROM = 'From-Path: msrp://atlanta.example.com:7654/jshA7weztas;tcp\r\n';
const PATHS: RawHeader[] = [
  ['To-Path', 'msrp://biloxi.example.com:12763/kjhd37s2s20w2a;tcp'],
  ['From-Path', 'msrp://atlanta.example.com:7654/jshA7weztas;tcp'],
];

/** A SEND carrying `body` (latin1 string or bytes) under tid `tid`. */
function send(tid: string, body: string | Buffer, flag: EndFlag = '$'): Buffer {
  return Buffer.concat([
    bin(`MSRP ${tid} SEND\r\n` + TO + FROM + 'Message-ID: 87652491\r\n' + 'Content-Type: application/octet-stream\r\n' + '\r\n'),
    typeof body === 'string' ? bin(body) : body,
    bin(`\r\n-------${tid}${flag}\r\n`),
  ]);
}

/** A bodiless SEND under tid `tid`. */
function bodiless(tid: string, flag: EndFlag = '$'): string {
  return `MSRP ${tid} SEND\r\n` + TO + FROM + 'Message-ID: 456\r\n' + 'Byte-Range: 1-0/0\r\n' + `-------${tid}${flag}\r\n`;
}

// ------------------------------------------------------------------ RFC wire samples

describe('RFC 4975 / 4976 / 7701 wire samples', () => {
  it('RFC 4975 §7.1: a SEND with a body', () => {
    const wire =
      'MSRP a786hjs2 SEND\r\n' +
      'To-Path: msrp://biloxi.example.com:12763/kjhd37s2s20w2a;tcp\r\n' +
      'From-Path: msrp://atlanta.example.com:7654/jshA7weztas;tcp\r\n' +
      'Message-ID: 87652491\r\n' +
      'Byte-Range: 1-25/25\r\n' + // as printed in the RFC; the framer does not judge it
      'Content-Type: text/plain\r\n' +
      '\r\n' +
      'Hey Bob, are you there?\r\n' +
      '-------a786hjs2$\r\n';
    const [m, ...rest] = assertSplitInvariant(wire);
    assert.equal(rest.length, 0);
    assert.deepEqual(m, {
      kind: 'request',
      tid: 'a786hjs2',
      method: 'SEND',
      status: 0,
      comment: '',
      headers: [
        ...PATHS,
        ['Message-ID', '87652491'],
        ['Byte-Range', '1-25/25'],
        ['Content-Type', 'text/plain'],
      ],
      hasBody: true,
      problem: undefined,
      body: bin('Hey Bob, are you there?'),
      flag: '$',
    });
  });

  it('RFC 4975 §7.2: its 200 response', () => {
    const wire =
      'MSRP a786hjs2 200 OK\r\n' +
      'To-Path: msrp://atlanta.example.com:7654/jshA7weztas;tcp\r\n' +
      'From-Path: msrp://biloxi.example.com:12763/kjhd37s2s20w2a;tcp\r\n' +
      '-------a786hjs2$\r\n';
    const [m] = assertSplitInvariant(wire);
    assert.deepEqual(m, {
      kind: 'response',
      tid: 'a786hjs2',
      method: '',
      status: 200,
      comment: 'OK',
      headers: [
        ['To-Path', 'msrp://atlanta.example.com:7654/jshA7weztas;tcp'],
        ['From-Path', 'msrp://biloxi.example.com:12763/kjhd37s2s20w2a;tcp'],
      ],
      hasBody: false,
      problem: undefined,
      body: Buffer.alloc(0),
      flag: '$',
    });
  });

  it('a bodiless SEND: the end-line follows the last header with no extra CRLF', () => {
    const wire =
      'MSRP dkei38sd SEND\r\n' +
      'To-Path: msrp://alice.example.com:7777/iau39soe2843z;tcp\r\n' +
      'From-Path: msrp://bob.example.com:8888/9di4eae923wzd;tcp\r\n' +
      'Message-ID: 456\r\n' +
      'Byte-Range: 1-0/0\r\n' +
      '-------dkei38sd$\r\n';
    const rec = feed(wire);
    assert.deepEqual(rec.log, ['head', 'end $']);
    const [m] = assertSplitInvariant(wire);
    assert.equal(m!.hasBody, false);
    assert.equal(m!.method, 'SEND');
    assert.deepEqual(m!.headers.map(([n]) => n), ['To-Path', 'From-Path', 'Message-ID', 'Byte-Range']);
  });

  it('RFC 4975 §7.1.2: a REPORT with Status', () => {
    const wire =
      'MSRP dkei38sd REPORT\r\n' +
      'To-Path: msrp://alice.example.com:7777/iau39soe2843z;tcp\r\n' +
      'From-Path: msrp://bob.example.com:8888/9di4eae923wzd;tcp\r\n' +
      'Message-ID: 12339sdqwer\r\n' +
      'Byte-Range: 1-106/106\r\n' +
      'Status: 000 200 OK\r\n' +
      '-------dkei38sd$\r\n';
    const [m] = assertSplitInvariant(wire);
    assert.equal(m!.method, 'REPORT');
    assert.equal(m!.hasBody, false);
    assert.deepEqual(m!.headers.at(-1), ['Status', '000 200 OK']);
  });

  it('RFC 4976 §5.1: an AUTH to the relay', () => {
    const wire =
      'MSRP 49fh AUTH\r\n' +
      'To-Path: msrps://relay.example.com:2855;tcp\r\n' +
      'From-Path: msrps://alice.example.com:9892/98cjs;tcp\r\n' +
      '-------49fh$\r\n';
    const [m] = assertSplitInvariant(wire);
    assert.equal(m!.kind, 'request');
    assert.equal(m!.tid, '49fh');
    assert.equal(m!.method, 'AUTH');
    assert.deepEqual(m!.headers, [
      ['To-Path', 'msrps://relay.example.com:2855;tcp'],
      ['From-Path', 'msrps://alice.example.com:9892/98cjs;tcp'],
    ]);
    assert.equal(m!.flag, '$');
  });

  it('RFC 4976 §5.1: the 401 with WWW-Authenticate', () => {
    const challenge =
      'Digest realm="relay.example.com", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", ' +
      'qop="auth", opaque="5ccc069c403ebaf9f0171e9517f40e41"';
    const wire =
      'MSRP 49fh 401 Unauthorized\r\n' +
      'To-Path: msrps://alice.example.com:9892/98cjs;tcp\r\n' +
      'From-Path: msrps://relay.example.com:2855;tcp\r\n' +
      `WWW-Authenticate: ${challenge}\r\n` +
      '-------49fh$\r\n';
    const [m] = assertSplitInvariant(wire);
    assert.equal(m!.kind, 'response');
    assert.equal(m!.status, 401);
    assert.equal(m!.comment, 'Unauthorized');
    assert.deepEqual(m!.headers[2], ['WWW-Authenticate', challenge]);
  });

  it('RFC 4976 §5.1: the 200 with Use-Path, Expires and Authentication-Info', () => {
    const info = 'nextnonce="9a8b7c6d5e4f", qop=auth, rspauth="6629fae49393a05397450978507c4ef1", cnonce="0a4f113b", nc=00000001';
    const wire =
      'MSRP 49fi 200 OK\r\n' +
      'To-Path: msrps://alice.example.com:9892/98cjs;tcp\r\n' +
      'From-Path: msrps://relay.example.com:2855;tcp\r\n' +
      'Use-Path: msrps://relay.example.com:2855/hjdhf4567;tcp\r\n' +
      'Expires: 900\r\n' +
      `Authentication-Info: ${info}\r\n` +
      '-------49fi$\r\n';
    const [m] = assertSplitInvariant(wire);
    assert.equal(m!.status, 200);
    assert.deepEqual(m!.headers.slice(2), [
      ['Use-Path', 'msrps://relay.example.com:2855/hjdhf4567;tcp'],
      ['Expires', '900'],
      ['Authentication-Info', info],
    ]);
  });

  it('RFC 7701 §7.1: a NICKNAME with Use-Nickname', () => {
    const wire =
      'MSRP di2fs53v NICKNAME\r\n' +
      'To-Path: msrp://chat.example.com:12763/kjhd37s2s20w2a;tcp\r\n' +
      'From-Path: msrp://alice.example.com:7654/jshA7weztas;tcp\r\n' +
      'Use-Nickname: "Alice the great"\r\n' +
      '-------di2fs53v$\r\n';
    const [m] = assertSplitInvariant(wire);
    assert.equal(m!.method, 'NICKNAME');
    assert.deepEqual(m!.headers[2], ['Use-Nickname', '"Alice the great"']);
  });

  it('FILE_OFFSET (msrplib, I-7): a method with an underscore', () => {
    const wire =
      'MSRP fo9x2ka1 FILE_OFFSET\r\n' +
      'To-Path: msrp://relay.example.com:2855/t0k3n;tcp\r\n' +
      'From-Path: msrp://bob.example.com:8888/9di4eae923wzd;tcp\r\n' +
      'Message-ID: 9s7d6f\r\n' +
      '-------fo9x2ka1$\r\n';
    const [m] = assertSplitInvariant(wire);
    assert.equal(m!.method, 'FILE_OFFSET');
    assert.equal(m!.hasBody, false);
  });

  it('an empty body: Content-Type, blank line, CRLF, end-line (hasBody, no onBody)', () => {
    const wire =
      'MSRP e3mpty00 SEND\r\n' + TO + FROM +
      'Message-ID: 5jk2\r\n' +
      'Byte-Range: 1-0/0\r\n' +
      'Content-Type: text/plain\r\n' +
      '\r\n' +
      '\r\n' +
      '-------e3mpty00$\r\n';
    assert.deepEqual(feed(wire).log, ['head', 'end $']);
    assert.deepEqual(feedBytewise(wire).log, ['head', 'end $']);
    const [m] = assertSplitInvariant(wire);
    assert.equal(m!.hasBody, true);
    assert.equal(m!.body.length, 0);
    assert.equal(m!.flag, '$');
  });

  it('"+" (more chunks follow) and "#" (aborted) flags', () => {
    const wire =
      'MSRP k1chunk1 SEND\r\n' + TO + FROM +
      'Message-ID: m55\r\n' +
      'Byte-Range: 1-*/4096\r\n' +
      'Content-Type: text/plain\r\n' +
      '\r\n' +
      'first part\r\n' +
      '-------k1chunk1+\r\n' +
      'MSRP k1chunk2 SEND\r\n' + TO + FROM +
      'Message-ID: m55\r\n' +
      'Byte-Range: 11-*/4096\r\n' +
      'Content-Type: text/plain\r\n' +
      '\r\n' +
      'second\r\n' +
      '-------k1chunk2#\r\n' +
      bodiless('k1chunk3', '+');
    const ms = assertSplitInvariant(wire);
    assert.deepEqual(ms.map((m) => [m.tid, m.body.toString('latin1'), m.flag]), [
      ['k1chunk1', 'first part', '+'],
      ['k1chunk2', 'second', '#'],
      ['k1chunk3', '', '+'],
    ]);
  });
});

// ------------------------------------------------------------------- binary bodies

describe('bodies are opaque octets (§1.1, §1.3)', () => {
  const tid = 'b1n4ryTid';
  const cases: [string, Buffer][] = [
    ['NUL bytes', bin('\0\0a\0b\0')],
    ['a lone CR', bin('abc\rdef')],
    ['a lone LF', bin('abc\ndef')],
    ['CRLFs, also at both ends', bin('\r\nline one\r\nline two\r\n\r\n')],
    ['a lone CR at the very end', bin('xyz\r')],
    ['an end-line of another tid', bin(`hi\r\n-------othertid$\r\nthere`)],
    ['an end-line of a tid that starts with ours', bin(`hi\r\n-------${tid}x$\r\nthere`)],
    ['the same tid with a wrong flag', bin(`hi\r\n-------${tid}X\r\nthere`)],
    ['the same tid and flag with no CRLF after', bin(`hi\r\n-------${tid}$ there`)],
    ['the same tid and flag followed by a lone CR', bin(`hi\r\n-------${tid}$\rthere`)],
    ['the same tid at the very end, without a flag', bin(`hi\r\n-------${tid}`)],
    ['the end-line without its leading CRLF', bin(`-------${tid}$\r\nat the start`)],
    ['six dashes and eight dashes', bin(`a\r\n------${tid}$\r\nb\r\n--------${tid}$\r\nc`)],
    ['invalid UTF-8', Buffer.from([0xff, 0xfe, 0xc3, 0x28, 0xe2, 0x82, 0xed, 0xa0, 0x80, 0xf8, 0x88, 0x80, 0x80, 0x80])],
    ['every octet value', Buffer.from(Array.from({ length: 256 }, (_, i) => i))],
  ];
  for (const [name, body] of cases) {
    it(`${name}: the onBody bytes are the body exactly, at every split`, () => {
      const ms = assertSplitInvariant(Buffer.concat([send(tid, body), bin(bodiless('n3xtmsg1'))]));
      assert.equal(ms.length, 2);
      assert.deepEqual(ms[0]!.body, body);
      assert.equal(ms[0]!.flag, '$');
      assert.equal(ms[1]!.tid, 'n3xtmsg1');
    });
  }
});

// ------------------------------------------------------------------- read splitting

describe('read boundaries', () => {
  it('an end-line straddling each split point of two reads, and 1-byte reads', () => {
    const ms = assertSplitInvariant(Buffer.concat([send('str4ddle', 'body text'), send('str4ddlf', '\r\n-------str4ddle$\r\n')]));
    assert.deepEqual(ms.map((m) => [m.tid, m.body.toString('latin1'), m.flag]), [
      ['str4ddle', 'body text', '$'],
      ['str4ddlf', '\r\n-------str4ddle$\r\n', '$'],
    ]);
  });

  it('several messages in one Buffer', () => {
    const wire = Buffer.concat([
      send('m1aaaa', 'one'),
      bin(bodiless('m2bbbb')),
      bin('MSRP m1aaaa 200 OK\r\n' + TO + FROM + '-------m1aaaa$\r\n'),
      send('m3cccc', ''),
      send('m4dddd', 'four', '+'),
    ]);
    const rec = feed(wire);
    assert.deepEqual(rec.log, ['head', 'body', 'end $', 'head', 'end $', 'head', 'end $', 'head', 'end $', 'head', 'body', 'end +']);
    assert.deepEqual(
      summary(rec.got).map((m) => [m.tid, m.kind, m.body.toString('latin1')]),
      [
        ['m1aaaa', 'request', 'one'],
        ['m2bbbb', 'request', ''],
        ['m1aaaa', 'response', ''],
        ['m3cccc', 'request', ''],
        ['m4dddd', 'request', 'four'],
      ],
    );
    assertSplitInvariant(wire);
  });

  it('a 64 KiB body over 3 and over 7 pushes: streamed as views, not copied', () => {
    const body = filler(64 * 1024);
    const wire = Buffer.concat([send('b1gb0dy9', body), send('aft3rwrd', 'next')]);
    const head = wire.indexOf(bin('\r\n\r\n')) + 4;
    for (const cuts of [
      [head + 1000, head + 40000],
      [17, head + 1, head + 9999, head + 30001, head + 65535, head + 65537, head + 65540],
    ]) {
      const rec = new Recorder();
      let viewBytes = 0;
      let bodyBytes = 0;
      const spy: FrameHandler = {
        onHead: (h) => rec.onHead(h),
        onBody: (d) => {
          if (d.buffer === wire.buffer) viewBytes += d.length;
          if (rec.got.length === 1) bodyBytes += d.length;
          rec.onBody(d);
        },
        onEnd: (f) => rec.onEnd(f),
      };
      const framer = new Framer(spy);
      let from = 0;
      for (const c of [...cuts, wire.length]) {
        framer.push(wire.subarray(from, c));
        from = c;
        // Never waiting for the whole chunk: all but a possible end-line start is out already.
        const arrived = Math.min(Math.max(c - head, 0), body.length);
        assert.ok(bodyBytes >= arrived - 32, `after ${c} octets, ${bodyBytes} of ${arrived} body octets delivered`);
      }
      const [m1, m2] = summary(rec.got);
      assert.deepEqual(m1!.body, body);
      assert.equal(m2!.body.toString(), 'next');
      // Only the few bytes held back at each read boundary (a possible end-line start) are copies.
      assert.ok(viewBytes >= body.length - cuts.length * 32, `${viewBytes} bytes delivered as views`);
    }
  });

  it('body bytes are delivered before the end-line arrives', () => {
    const rec = new Recorder();
    const framer = new Framer(rec);
    framer.push(bin('MSRP s7r3am SEND\r\n' + TO + FROM + 'Content-Type: text/plain\r\n\r\nhello '));
    assert.deepEqual(rec.log, ['head', 'body']);
    assert.ok(framer.inBody);
    framer.push(bin('world\r\n-----'));
    assert.deepEqual(Buffer.concat(rec.got[0]!.slices).toString(), 'hello world');
    assert.equal(framer.bufferedBytes, 7, 'only "\\r\\n-----" is held back');
    framer.push(bin('--s7r3am$\r\n'));
    assert.deepEqual(rec.log, ['head', 'body', 'body', 'end $']);
    assert.equal(framer.inBody, false);
    assert.equal(framer.bufferedBytes, 0);
  });

  it('empty pushes are harmless anywhere', () => {
    const wire = send('empt1es', 'abc');
    const rec = new Recorder();
    const framer = new Framer(rec);
    for (const byte of wire) {
      framer.push(Buffer.alloc(0));
      framer.push(Buffer.from([byte]));
    }
    framer.push(Buffer.alloc(0));
    assert.deepEqual(summary(rec.got), summary(feed(wire).got));
  });
});

// -------------------------------------------------------------------------- limits

describe('R-88 limits', () => {
  it('the defaults are 1024 / 8192 / 16384 / 64', () => {
    assert.deepEqual({ ...DEFAULT_FRAMER_LIMITS }, {
      maxStartLine: 1024,
      maxHeaderLine: 8192,
      maxHeaderSection: 16384,
      maxHeaders: 64,
    });
  });

  /** A request whose start line is exactly `n` octets long. */
  const startLineOf = (n: number): string => {
    const line = 'MSRP l1m1t SEND';
    return line + 'X'.repeat(n - line.length);
  };

  it('start line: 1024 octets pass, 1025 fail (start-line-too-long, no tid)', () => {
    const ok = startLineOf(1024) + '\r\n' + TO + FROM + '-------l1m1t$\r\n';
    assert.equal(summary(feed(ok).got)[0]!.method.length, 1024 - 'MSRP l1m1t '.length);
    assert.equal(feedBytewise(ok).got.length, 1, 'also when the CR and the LF arrive apart');
    const err = framingError(() => feed(startLineOf(1025) + '\r\n' + TO + FROM + '-------l1m1t$\r\n'), 'start-line-too-long');
    assert.equal(err.limit, 1024);
    assert.equal(err.tid, undefined);
    assert.equal(err.messageKind, undefined);
    assert.deepEqual(err.headers, []);
  });

  it('start line: fails as soon as 1025 octets without CRLF are buffered', () => {
    const framer = new Framer(new Recorder());
    framer.push(bin(startLineOf(1024)));
    framer.push(bin('\r')); // may be half of the CRLF
    const f2 = new Framer(new Recorder());
    f2.push(bin(startLineOf(1024)));
    const err = framingError(() => f2.push(bin('Y')), 'start-line-too-long');
    assert.equal(err.limit, 1024);
  });

  it('header line: 8192 octets pass, 8193 fail with the tid and the path headers', () => {
    const line = (n: number) => 'X-Long: ' + 'a'.repeat(n - 'X-Long: '.length) + '\r\n';
    const ok = 'MSRP l0ngh SEND\r\n' + TO + FROM + line(8192) + '-------l0ngh$\r\n';
    assert.equal(feed(ok).got[0]!.head.headers[2]![1].length, 8192 - 8);
    assert.equal(feedBytewise(ok).got.length, 1, 'also when the CR and the LF arrive apart');
    for (const rec of [() => feed(ok.replace(line(8192), line(8193))), () => feedBytewise(ok.replace(line(8192), line(8193)))]) {
      const err = framingError(rec, 'header-line-too-long');
      assert.equal(err.limit, 8192);
      assert.equal(err.tid, 'l0ngh');
      assert.equal(err.messageKind, 'request');
      assert.deepEqual(err.headers, PATHS);
    }
  });

  it('header section: 16384 octets pass, 16385 fail (the blank line or end-line counts)', () => {
    // The section runs from the first header line to the end-line, each line with its CRLF.
    const wire = (n: number): string => {
      const fixed = TO.length + FROM.length + '-------s3ct$\r\n'.length;
      const rest = n - fixed;
      const a = 'X-A: ' + 'a'.repeat(8000 - 7) + '\r\n';
      const b = 'X-B: ' + 'b'.repeat(8000 - 7) + '\r\n';
      const c = 'X-C: ' + 'c'.repeat(rest - a.length - b.length - 7) + '\r\n';
      const s = 'MSRP s3ct SEND\r\n' + TO + FROM + a + b + c + '-------s3ct$\r\n';
      assert.equal(s.length - 'MSRP s3ct SEND\r\n'.length, n);
      return s;
    };
    assert.equal(feed(wire(16384)).got.length, 1);
    assert.equal(feedBytewise(wire(16384)).got.length, 1);
    const err = framingError(() => feed(wire(16385)), 'header-section-too-long');
    assert.equal(err.limit, 16384);
    assert.equal(err.tid, 's3ct');
    assert.deepEqual(err.headers.slice(0, 2), PATHS);
  });

  it('header section: fails before a line completes when no CRLF comes', () => {
    const framer = new Framer(new Recorder());
    framer.push(bin('MSRP s10w SEND\r\n' + TO + FROM));
    const line = 'X-Fill: ' + 'f'.repeat(8000) + '\r\n';
    framer.push(bin(line + line));
    const err = framingError(() => framer.push(bin('X-Drip: ' + 'd'.repeat(500))), 'header-section-too-long');
    assert.equal(err.tid, 's10w');
    assert.deepEqual(err.headers.slice(0, 2), PATHS);
  });

  it('header count: 64 lines pass, 65 fail (too-many-headers)', () => {
    const wire = (n: number): string => {
      let s = 'MSRP c0unt SEND\r\n' + TO + FROM;
      for (let i = 2; i < n; i++) s += `X-H${i}: ${i}\r\n`;
      return s + '-------c0unt$\r\n';
    };
    assert.equal(feed(wire(64)).got[0]!.head.headers.length, 64);
    const err = framingError(() => feed(wire(65)), 'too-many-headers');
    assert.equal(err.limit, 64);
    assert.equal(err.tid, 'c0unt');
    assert.equal(err.headers.length, 64);
  });

  it('header count: malformed lines count too (the limit is on lines)', () => {
    let s = 'MSRP c0unt SEND\r\n' + TO + FROM;
    for (let i = 0; i < 70; i++) s += 'no colon here\r\n';
    const err = framingError(() => feed(s + '-------c0unt$\r\n'), 'too-many-headers');
    assert.deepEqual(err.headers, PATHS);
  });

  it('custom smaller limits: each one is enforced with its own value', () => {
    const limits: FramerLimits = { maxStartLine: 24, maxHeaderLine: 60, maxHeaderSection: 160, maxHeaders: 4 };
    const to = 'To-Path: msrp://a.example:1/s;tcp\r\n';
    const from = 'From-Path: msrp://b.example:2/t;tcp\r\n';
    const ok = 'MSRP sm4ll SEND\r\n' + to + from + 'X-A: 1\r\nX-B: 2\r\n-------sm4ll$\r\n';
    assert.equal(feed(ok, [], limits).got.length, 1);
    assert.equal(feedBytewise(ok, limits).got.length, 1);

    let err = framingError(() => feed('MSRP sm4ll ABCDEFGHIJKLMN\r\n', [], limits), 'start-line-too-long');
    assert.equal(err.limit, 24);
    err = framingError(() => feed('MSRP sm4ll SEND\r\n' + to + from + `X-A: ${'x'.repeat(60)}\r\n`, [], limits), 'header-line-too-long');
    assert.equal(err.limit, 60);
    assert.equal(err.tid, 'sm4ll');
    assert.deepEqual(err.headers.map(([n]) => n), ['To-Path', 'From-Path']);
    err = framingError(
      () => feed('MSRP sm4ll SEND\r\n' + to + from + `X-A: ${'x'.repeat(40)}\r\nX-B: ${'y'.repeat(40)}\r\n`, [], limits),
      'header-section-too-long',
    );
    assert.equal(err.limit, 160);
    err = framingError(() => feed('MSRP sm4ll SEND\r\n' + to + from + 'X-A: 1\r\nX-B: 2\r\nX-C: 3\r\n', [], limits), 'too-many-headers');
    assert.equal(err.limit, 4);
    assert.equal(err.headers.length, 4);
  });

  it('a limit error kills the framer: later pushes throw kind "dead"', () => {
    const framer = new Framer(new Recorder(), { maxStartLine: 20 });
    framingError(() => framer.push(bin('MSRP t00l0ng SEND_SOMETHING_LONG\r\n')), 'start-line-too-long');
    framingError(() => framer.push(bin(bodiless('fine1'))), 'dead');
    framingError(() => framer.push(Buffer.alloc(0)), 'dead');
  });
});

// ------------------------------------------------------------------- start lines

describe('start lines (R-17)', () => {
  it('"GET / HTTP/1.1" fails on its first octet, before a full line arrives', () => {
    const framer = new Framer(new Recorder());
    const err = framingError(() => framer.push(bin('G')), 'bad-start-line');
    assert.equal(err.tid, undefined);
    framingError(() => framer.push(bin('ET / HTTP/1.1\r\n')), 'dead');
  });

  it('a TLS ClientHello on a plain port fails at once', () => {
    framingError(() => feed(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00])), 'bad-start-line');
  });

  it('"MSRP" is read octet by octet: "MSR" waits, "MSRPX" and "msrp " fail', () => {
    const framer = new Framer(new Recorder());
    framer.push(bin('MSR'));
    framer.push(bin('P'));
    assert.equal(framer.bufferedBytes, 4);
    framingError(() => framer.push(bin('X')), 'bad-start-line');
    framingError(() => feed('msrp abcd SEND\r\n'), 'bad-start-line');
  });

  const bad: [string, string][] = [
    ['no method', 'MSRP abcd\r\n'],
    ['no method after the SP', 'MSRP abcd \r\n'],
    ['an empty tid', 'MSRP  SEND\r\n'],
    ['a blank in the method', 'MSRP abcd SEND NOW\r\n'],
    ['a control octet in the tid', 'MSRP ab\x01cd SEND\r\n'],
    ['a non-ASCII octet in the tid', 'MSRP ab\xe9cd SEND\r\n'],
    ['a lone LF ending the line', 'MSRP abcd\nSEND\r\n'],
  ];
  for (const [name, line] of bad) {
    it(`${name}: bad-start-line`, () => {
      const err = framingError(() => feed(line + TO + FROM + '-------abcd$\r\n'), 'bad-start-line');
      assert.equal(err.tid, undefined);
    });
  }

  it('responses: "MSRP tid 200 OK" and "MSRP tid 481" (no comment)', () => {
    const [a, b, c] = summary(
      feed(
        'MSRP r35p0nse 200 OK\r\n' + TO + FROM + '-------r35p0nse$\r\n' +
          'MSRP r35p0nsf 481\r\n' + TO + FROM + '-------r35p0nsf$\r\n' +
          'MSRP r35p0nsg 408 Request Timeout, sort of\r\n' + TO + FROM + '-------r35p0nsg$\r\n',
      ).got,
    );
    assert.deepEqual([a!.kind, a!.status, a!.comment, a!.method], ['response', 200, 'OK', '']);
    assert.deepEqual([b!.kind, b!.status, b!.comment], ['response', 481, '']);
    assert.deepEqual([c!.status, c!.comment], [408, 'Request Timeout, sort of']);
  });

  it('a response comment is UTF-8', () => {
    const [m] = summary(feed(Buffer.from('MSRP r35p 403 Interdit à Zoë\r\n' + TO + FROM + '-------r35p$\r\n', 'utf8')).got);
    assert.equal(m!.comment, 'Interdit à Zoë');
  });

  it('three digits not followed by SP or CRLF are a method, not a status', () => {
    const [m] = summary(feed('MSRP abcd 2000\r\n' + TO + FROM + '-------abcd$\r\n').got);
    assert.deepEqual([m!.kind, m!.method, m!.status], ['request', '2000', 0]);
  });

  it('a lower-case method is still framed: its grammar is the message layer\'s (R-18)', () => {
    const [m] = summary(feed(bodiless('l0wer').replace(' SEND\r\n', ' send\r\n')).got);
    assert.equal(m!.kind, 'request');
    assert.equal(m!.method, 'send');
  });

  it('the tid is kept exactly, with every ident character', () => {
    const tid = 'aZ9.-+%=xyz';
    const [m] = summary(feed(send(tid, `x\r\n-------${tid.slice(0, -1)}$\r\ny`)).got);
    assert.equal(m!.tid, tid);
    assert.equal(m!.body.toString(), `x\r\n-------${tid.slice(0, -1)}$\r\ny`);
  });
});

// --------------------------------------------------------------- header problems

describe('header-level defects are reported on head.problem; the stream stays in sync (R-20, R-22, R-23)', () => {
  const cases: [string, string, RegExp][] = [
    ['folding (a line starting with SP)', 'X-Folded: part one\r\n  part two\r\n', /folding/],
    ['folding (a line starting with HTAB)', 'X-Folded: part one\r\n\tpart two\r\n', /folding/],
    ['a line with no colon', 'This line has no colon\r\n', /name:/],
    ['a line starting with a colon', ': no name\r\n', /name:/],
    ['NUL in a value', 'X-Nul: a\0b\r\n', /control/],
    ['a control character in a value', 'X-Ctl: a\x01b\r\n', /control/],
    ['DEL in a value', 'X-Del: a\x7fb\r\n', /control/],
    ['a lone CR in a value', 'X-Cr: a\rb\r\n', /control/],
    ['a lone LF in a value', 'X-Lf: a\nb\r\n', /control/],
    ['invalid UTF-8 in a value', 'X-Utf: caf\xe9\r\n', /UTF-8/],
    ['an overlong UTF-8 sequence in a value', 'X-Utf: \xc0\xaf\r\n', /UTF-8/],
    ['a blank in a header name', 'Bad Name: x\r\n', /token/],
    ['an "@" in a header name', 'Bad@Name: x\r\n', /token/],
    ['a non-ASCII octet in a header name', 'Na\xefve: x\r\n', /token/],
  ];
  for (const [name, line, re] of cases) {
    it(`${name}`, () => {
      const wire =
        'MSRP pr0bl3m SEND\r\n' + TO + FROM + 'Message-ID: 1\r\n' + line + 'X-After: still read\r\n' + '-------pr0bl3m$\r\n' +
        bodiless('cl3an');
      const ms = assertSplitInvariant(wire);
      assert.equal(ms.length, 2);
      assert.match(ms[0]!.problem ?? '', re);
      assert.equal(ms[0]!.flag, '$');
      assert.deepEqual(ms[0]!.headers.slice(0, 3), [...PATHS, ['Message-ID', '1']]);
      assert.deepEqual(ms[0]!.headers.at(-1), ['X-After', 'still read']);
      assert.equal(ms[1]!.tid, 'cl3an');
      assert.equal(ms[1]!.problem, undefined, 'the next message is clean');
    });
  }

  it('a problem in a message with a body: the body is still framed', () => {
    const wire = Buffer.concat([
      bin('MSRP pr0bb0dy SEND\r\n' + TO + FROM + ' folded\r\n' + 'Content-Type: text/plain\r\n\r\nbody\r\n-------pr0bb0dy$\r\n'),
      bin(bodiless('cl3an')),
    ]);
    const [a, b] = assertSplitInvariant(wire);
    assert.match(a!.problem ?? '', /folding/);
    assert.equal(a!.body.toString(), 'body');
    assert.equal(b!.problem, undefined);
  });

  it('only the first problem is reported', () => {
    const [m] = summary(feed('MSRP tw0pr SEND\r\n' + TO + FROM + ' folded\r\nX-Nul: \0\r\n-------tw0pr$\r\n').got);
    assert.match(m!.problem ?? '', /folding/);
  });

  it('a valid UTF-8 value (Use-Nickname: "Zoë") has no problem and decodes', () => {
    const wire = Buffer.from(
      'MSRP n1ck SEND\r\n' + TO + FROM + 'Use-Nickname: "Zoë"\r\nX-Emoji: 🐘 €\r\n-------n1ck$\r\n',
      'utf8',
    );
    const [m] = assertSplitInvariant(wire);
    assert.equal(m!.problem, undefined);
    assert.deepEqual(m!.headers.slice(2), [
      ['Use-Nickname', '"Zoë"'],
      ['X-Emoji', '🐘 €'],
    ]);
  });

  it('a value keeps inner blanks; HTAB is allowed; surrounding blanks are trimmed', () => {
    const [m] = summary(feed('MSRP bl4nk SEND\r\n' + TO + FROM + 'X-Tab: a\tb  c \t\r\nX-Empty: \r\n-------bl4nk$\r\n').got);
    assert.equal(m!.problem, undefined);
    assert.deepEqual(m!.headers.slice(2), [
      ['X-Tab', 'a\tb  c'],
      ['X-Empty', ''],
    ]);
  });
});

// ------------------------------------------------------------------ pause / resume

describe('pause() and resume()', () => {
  const parts = [
    send('p4use001', 'hello, world'),
    bin(bodiless('p4use002')),
    send('p4use003', filler(5000)),
    bin('MSRP p4use001 200 OK\r\n' + TO + FROM + '-------p4use001$\r\n'),
  ];
  const wire = Buffer.concat(parts);
  const expected = feed(wire);

  /**
   * Octets of `wire` the recorded events account for: whole messages that ended, the head of a
   * bodiless message (its end-line is read with it), or the head and body slices so far.
   */
  function consumed(rec: Recorder): number {
    let n = 0;
    rec.got.forEach((g, i) => {
      const part = parts[i]!;
      if (g.flag !== undefined || !g.head.hasBody) n += part.length;
      else n += part.indexOf(bin('\r\n\r\n')) + 4 + g.slices.reduce((s, x) => s + x.length, 0);
    });
    return n;
  }

  /** A Recorder whose `when` decides, per event, whether to pause. */
  function pausing(when: (event: string, index: number) => boolean) {
    const rec = new Recorder();
    let framer!: Framer;
    let n = 0;
    const check = (event: string) => {
      assert.equal(framer.isPaused, false, `no ${event} while paused`);
      if (when(event, n++)) framer.pause();
    };
    framer = new Framer({
      onHead: (h) => {
        rec.onHead(h);
        check('head');
      },
      onBody: (d) => {
        rec.onBody(d);
        check('body');
      },
      onEnd: (f) => {
        rec.onEnd(f);
        check('end');
      },
    });
    return { rec, framer };
  }

  it('pause in onHead, push more while paused, resume: the same events', () => {
    const { rec, framer } = pausing((e, i) => e === 'head' && i === 0);
    const cut = 2000;
    framer.push(wire.subarray(0, cut));
    assert.deepEqual(rec.log, ['head']);
    assert.ok(framer.isPaused);
    assert.equal(framer.bufferedBytes, cut - consumed(rec));
    framer.push(wire.subarray(cut, 2001));
    framer.push(wire.subarray(2001));
    assert.deepEqual(rec.log, ['head'], 'nothing is delivered while paused');
    assert.equal(framer.bufferedBytes, wire.length - consumed(rec));
    framer.resume();
    assert.equal(framer.isPaused, false);
    assert.deepEqual(rec.log, expected.log);
    assert.deepEqual(summary(rec.got), summary(expected.got));
    assert.equal(framer.bufferedBytes, 0);
  });

  it('pause in onBody: bufferedBytes is what was pushed and not yet delivered', () => {
    const { rec, framer } = pausing((e) => e === 'body');
    const cuts = [1, 150, 3000, 4000, 5700, wire.length];
    let from = 0;
    let pushed = 0;
    let resumes = 0;
    for (const c of cuts) {
      framer.push(wire.subarray(from, c));
      pushed += c - from;
      from = c;
      while (framer.isPaused) {
        assert.equal(framer.bufferedBytes, pushed - consumed(rec));
        resumes++;
        framer.resume();
      }
    }
    assert.ok(resumes >= 3);
    assert.deepEqual(summary(rec.got), summary(expected.got));
    assert.equal(framer.bufferedBytes, 0);
  });

  it('pause in onHead of a bodiless message: onEnd waits for resume()', () => {
    const { rec, framer } = pausing((e, i) => e === 'head' && i === 0);
    framer.push(bin(bodiless('w4itend1') + bodiless('w4itend2')));
    assert.deepEqual(rec.log, ['head']);
    assert.equal(framer.inBody, false);
    framer.resume();
    assert.deepEqual(rec.log, ['head', 'end $', 'head', 'end $']);
  });

  it('pause in every onEnd: one message per resume()', () => {
    const { rec, framer } = pausing((e) => e === 'end');
    framer.push(wire);
    const ends = () => rec.log.filter((l) => l.startsWith('end')).length;
    for (let i = 1; i <= 4; i++) {
      assert.equal(ends(), i);
      assert.ok(framer.isPaused);
      framer.resume();
    }
    assert.deepEqual(rec.log, expected.log);
  });

  it('pause in every event, resumed from a microtask: the same events', async () => {
    const { rec, framer } = pausing(() => true);
    for (let i = 0; i < wire.length; i += 700) framer.push(wire.subarray(i, i + 700));
    while (framer.isPaused) {
      await new Promise<void>((r) => queueMicrotask(r));
      framer.resume();
    }
    assert.deepEqual(rec.log, expected.log);
    assert.deepEqual(summary(rec.got), summary(expected.got));
  });

  it('pause, push and resume inside one onBody: the pushed input follows in order', () => {
    const rec = new Recorder();
    let framer!: Framer;
    let once = true;
    const extra = send('1nside00', 'pushed from a callback');
    framer = new Framer({
      onHead: (h) => rec.onHead(h),
      onBody: (d) => {
        rec.onBody(d);
        if (once) {
          once = false;
          framer.pause();
          framer.push(extra);
          framer.resume();
        }
      },
      onEnd: (f) => rec.onEnd(f),
    });
    framer.push(send('0utside0', 'first'));
    assert.deepEqual(
      summary(rec.got).map((m) => [m.tid, m.body.toString()]),
      [
        ['0utside0', 'first'],
        ['1nside00', 'pushed from a callback'],
      ],
    );
  });

  it('push from inside a callback (not paused) is queued after the current input', () => {
    const rec = new Recorder();
    let framer!: Framer;
    let once = true;
    framer = new Framer({
      onHead: (h) => {
        rec.onHead(h);
        if (once) {
          once = false;
          framer.push(bin(bodiless('s3cond00')));
        }
      },
      onBody: (d) => rec.onBody(d),
      onEnd: (f) => rec.onEnd(f),
    });
    framer.push(send('f1rst000', 'one'));
    assert.deepEqual(summary(rec.got).map((m) => m.tid), ['f1rst000', 's3cond00']);
  });

  it('resume() when not paused does nothing', () => {
    const framer = new Framer(new Recorder());
    framer.resume();
    framer.push(bin('MSRP ab'));
    framer.resume();
    assert.equal(framer.bufferedBytes, 7);
  });
});

// ------------------------------------------------------------------ stray CRLFs

describe('stray CRLFs between messages', () => {
  it('up to 4 before the first message and between messages are skipped, at every split', () => {
    const wire = '\r\n'.repeat(4) + bodiless('str4y001') + '\r\n'.repeat(4) + bodiless('str4y002') + '\r\n';
    const ms = assertSplitInvariant(wire);
    assert.deepEqual(ms.map((m) => m.tid), ['str4y001', 'str4y002']);
  });

  it('a trailing stray CR waits for its LF', () => {
    const framer = new Framer(new Recorder());
    framer.push(bin(bodiless('str4y003') + '\r'));
    assert.equal(framer.bufferedBytes, 1);
    framer.push(bin('\n'));
    assert.equal(framer.bufferedBytes, 0);
  });

  it('a fifth fails (bad-start-line), and so do many more', () => {
    framingError(() => feed('\r\n'.repeat(5) + bodiless('str4y004')), 'bad-start-line');
    framingError(() => feed(bodiless('str4y005') + '\r\n'.repeat(5) + bodiless('str4y006')), 'bad-start-line');
    framingError(() => feedBytewise('\r\n'.repeat(1000)), 'bad-start-line');
  });

  it('a CR followed by anything but LF is garbage', () => {
    framingError(() => feed(bodiless('str4y007') + '\rMSRP'), 'bad-start-line');
  });
});

describe('isOneFrame (W-3: one MSRP frame per transport message)', () => {
  const frame = (tid: string, body?: string) =>
    body === undefined
      ? `MSRP ${tid} SEND\r\nTo-Path: msrp://a:1/s;tcp\r\nFrom-Path: msrp://b:2/t;tcp\r\n-------${tid}$\r\n`
      : `MSRP ${tid} SEND\r\nTo-Path: msrp://a:1/s;tcp\r\nFrom-Path: msrp://b:2/t;tcp\r\nContent-Type: text/plain\r\n\r\n${body}\r\n-------${tid}+\r\n`;
  it('accepts one frame, with or without a body, whose end-line is the last octets', () => {
    assert.equal(isOneFrame(Buffer.from(frame('abcd1234'))), true);
    assert.equal(isOneFrame(Buffer.from(frame('abcd1234', 'hello'))), true);
    // Another tid's end-line in the body is body data (§1.3).
    assert.equal(isOneFrame(Buffer.from(frame('abcd1234', 'x\r\n-------other99$\r\ny'))), true);
  });
  it('refuses two frames, part of one, and bytes after the end-line', () => {
    assert.equal(isOneFrame(Buffer.from(frame('abcd1234') + frame('efgh5678'))), false);
    assert.equal(isOneFrame(Buffer.from(frame('abcd1234', 'hello').slice(0, 60))), false);
    assert.equal(isOneFrame(Buffer.from(`${frame('abcd1234')}\r\n`)), false);
    assert.equal(isOneFrame(Buffer.from('GET / HTTP/1.1\r\n\r\n')), false);
  });
});
