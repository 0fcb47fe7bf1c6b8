/**
 * The message layer (core/protocol/message.ts): validation of framed heads (RFC.md §2B,
 * R-17 … R-30, R-41, R-44, R-88), typed header values, transaction ids (I-5) and
 * serialisation (§1.1, §1.4, I-6).
 *
 * Every head is built from wire bytes run through the real Framer, so each sample reads
 * as it would on the connection.
 */

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Framer } from '../../core/protocol/framer.ts';
import type { EndFlag, FrameHead, RawHeader } from '../../core/protocol/framer.ts';
import {
  MessageError,
  formatByteRange,
  formatEndLine,
  formatRequest,
  formatRequestHead,
  formatResponse,
  formatStatusHeader,
  getHeader,
  getHeaders,
  isIdent,
  isMethod,
  lowerName,
  nameIs,
  newTransactionId,
  parseByteRange,
  parseRequestHead,
  parseResponseHead,
  parseSeconds,
  parseStatusHeader,
} from '../../core/protocol/message.ts';
import type { ByteRange, MsrpRequestHead, MsrpResponseHead, ValidationOptions } from '../../core/protocol/message.ts';

// ------------------------------------------------------------------ helpers

interface Framed {
  head: FrameHead;
  body: Buffer;
  flag: EndFlag | undefined;
}

/** Runs wire bytes through the Framer (in one push, or byte by byte) and returns every message. */
function frameAll(wire: string | Buffer, byteByByte = false): Framed[] {
  const out: Framed[] = [];
  let cur: { head: FrameHead; parts: Buffer[]; flag: EndFlag | undefined } | undefined;
  const framer = new Framer({
    onHead(head) {
      cur = { head, parts: [], flag: undefined };
      out.push({ head, body: Buffer.alloc(0), flag: undefined });
    },
    onBody(data) {
      cur!.parts.push(Buffer.from(data));
    },
    onEnd(flag) {
      const last = out[out.length - 1]!;
      last.body = Buffer.concat(cur!.parts);
      last.flag = flag;
    },
  });
  const bytes = typeof wire === 'string' ? Buffer.from(wire, 'latin1') : wire;
  if (byteByByte) for (let i = 0; i < bytes.length; i++) framer.push(bytes.subarray(i, i + 1));
  else framer.push(bytes);
  return out;
}

/** The one complete message in `wire`. */
function frameOne(wire: string | Buffer): Framed {
  const all = frameAll(wire);
  assert.equal(all.length, 1, 'exactly one message on the wire');
  assert.notEqual(all[0]!.flag, undefined, 'the message has its end-line');
  return all[0]!;
}

function headOf(wire: string): FrameHead {
  return frameOne(wire).head;
}

function request(wire: string, opts?: ValidationOptions): MsrpRequestHead {
  return parseRequestHead(headOf(wire), opts);
}

function response(wire: string, opts?: ValidationOptions): MsrpResponseHead {
  return parseResponseHead(headOf(wire), opts);
}

/** Asserts a MessageError with the given status and respond flag (and optionally message text). */
function refused(fn: () => unknown, respond: boolean, match?: RegExp, status = 400): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof MessageError, `expected a MessageError, got ${String(e)}`);
    assert.equal(e.status, status, `status (${e.message})`);
    assert.equal(e.respond, respond, `respond (${e.message})`);
    if (match !== undefined) assert.match(e.message, match);
    return true;
  });
}

function refusedRequest(wire: string, respond: boolean, match?: RegExp, opts?: ValidationOptions): void {
  const head = headOf(wire);
  refused(() => parseRequestHead(head, opts), respond, match);
}

const TO = 'msrp://biloxi.example.com:12763/kjhd37s2s20w2a;tcp';
const FROM = 'msrp://atlanta.example.com:7654/jshA7weztas;tcp';

/** A bodiless request with the given tid, method and headers after To-Path and From-Path. */
function bodiless(tid: string, method: string, ...lines: string[]): string {
  return `MSRP ${tid} ${method}\r\nTo-Path: ${TO}\r\nFrom-Path: ${FROM}\r\n${lines.map((l) => `${l}\r\n`).join('')}-------${tid}$\r\n`;
}

/** A SEND with a body, the given headers between From-Path and the blank line. */
function withBody(tid: string, method: string, body: string, ...lines: string[]): string {
  return `MSRP ${tid} ${method}\r\nTo-Path: ${TO}\r\nFrom-Path: ${FROM}\r\n${lines.map((l) => `${l}\r\n`).join('')}\r\n${body}\r\n-------${tid}$\r\n`;
}

// ------------------------------------------------------- valid request samples

describe('parseRequestHead: the RFC 4975 §7.1 SEND sample (R-17, §1.1, §1.4)', () => {
  const wire =
    'MSRP a786hjs2 SEND\r\n' +
    'To-Path: msrp://biloxi.example.com:12763/kjhd37s2s20w2a;tcp\r\n' +
    'From-Path: msrp://atlanta.example.com:7654/jshA7weztas;tcp\r\n' +
    'Message-ID: 87652491\r\n' +
    'Byte-Range: 1-25/25\r\n' +
    'Content-Type: text/plain\r\n' +
    '\r\n' +
    'Hey Bob, are you there?\r\n' +
    '-------a786hjs2$\r\n';

  it('yields every field', () => {
    const f = frameOne(wire);
    assert.equal(f.body.toString('latin1'), 'Hey Bob, are you there?');
    assert.equal(f.flag, '$');
    const r = parseRequestHead(f.head);
    assert.equal(r.kind, 'request');
    assert.equal(r.tid, 'a786hjs2');
    assert.equal(r.method, 'SEND');
    assert.deepEqual(r.toPath, ['msrp://biloxi.example.com:12763/kjhd37s2s20w2a;tcp']);
    assert.deepEqual(r.fromPath, ['msrp://atlanta.example.com:7654/jshA7weztas;tcp']);
    assert.equal(r.toUris.length, 1);
    assert.equal(r.toUris[0]!.host, 'biloxi.example.com');
    assert.equal(r.toUris[0]!.port, 12763);
    assert.equal(r.toUris[0]!.sessionId, 'kjhd37s2s20w2a');
    assert.equal(r.fromUris[0]!.port, 7654);
    assert.equal(r.hasBody, true);
    assert.equal(r.messageId, '87652491');
    assert.deepEqual(r.byteRange, { start: 1, end: 25, total: 25 });
    assert.equal(r.contentType, 'text/plain');
    assert.equal(r.failureReport, 'yes');
    assert.equal(r.successReport, 'no');
  });

  it('keeps the headers after From-Path, in order, as received (R-24, R-61)', () => {
    const r = request(wire);
    assert.deepEqual(r.headers, [
      ['Message-ID', '87652491'],
      ['Byte-Range', '1-25/25'],
      ['Content-Type', 'text/plain'],
    ]);
  });

  it('keeps every URI of a multi-hop path, in order', () => {
    const r = request(
      'MSRP 6aef SEND\r\n' +
        'To-Path: msrps://relay.example.com:2855/jui787s2f;tcp msrp://bob.example.com:8888/9di4eae923wzd;tcp\r\n' +
        'From-Path: msrps://alicepc.example.com:7777/iau39soe2843z;tcp\r\n' +
        'Message-ID: 87652491\r\n' +
        '-------6aef$\r\n',
    );
    assert.deepEqual(r.toPath, ['msrps://relay.example.com:2855/jui787s2f;tcp', 'msrp://bob.example.com:8888/9di4eae923wzd;tcp']);
    assert.deepEqual(
      r.toUris.map((u) => u.host),
      ['relay.example.com', 'bob.example.com'],
    );
  });
});

describe('parseRequestHead: a bodiless SEND (§1.1 "No extra CRLF", I-8)', () => {
  it('is accepted with hasBody false and no Content-Type', () => {
    const r = request(bodiless('kx7w', 'SEND', 'Message-ID: 2f5q7a', 'Keep-Alive: yes'));
    assert.equal(r.hasBody, false);
    assert.equal(r.contentType, undefined);
    assert.equal(r.byteRange, undefined);
    assert.equal(r.messageId, '2f5q7a');
    assert.deepEqual(r.headers, [
      ['Message-ID', '2f5q7a'],
      ['Keep-Alive', 'yes'],
    ]);
  });

  it('is distinct from a SEND with an empty body, which has a Content-Type (§1.1)', () => {
    const f = frameOne(
      'MSRP kx7w SEND\r\n' +
        `To-Path: ${TO}\r\n` +
        `From-Path: ${FROM}\r\n` +
        'Message-ID: 2f5q7a\r\n' +
        'Byte-Range: 1-0/0\r\n' +
        'Content-Type: text/plain\r\n' +
        '\r\n' +
        '\r\n' +
        '-------kx7w$\r\n',
    );
    assert.equal(f.body.length, 0);
    const r = parseRequestHead(f.head);
    assert.equal(r.hasBody, true);
    assert.equal(r.contentType, 'text/plain');
    assert.deepEqual(r.byteRange, { start: 1, end: 0, total: 0 });
  });
});

describe('parseRequestHead: REPORT with Status (4975 §7.1.2)', () => {
  it('is accepted; Status stays among the headers', () => {
    const r = request(
      'MSRP dkei38sd REPORT\r\n' +
        'To-Path: msrp://alicepc.example.com:7777/iau39soe2843z;tcp\r\n' +
        'From-Path: msrp://bob.example.com:8888/9di4eae923wzd;tcp\r\n' +
        'Message-ID: 12339sdqwer\r\n' +
        'Byte-Range: 1-106/106\r\n' +
        'Status: 000 200 OK\r\n' +
        '-------dkei38sd$\r\n',
    );
    assert.equal(r.method, 'REPORT');
    assert.equal(r.messageId, '12339sdqwer');
    assert.deepEqual(r.byteRange, { start: 1, end: 106, total: 106 });
    assert.equal(getHeader(r.headers, 'Status'), '000 200 OK');
    assert.deepEqual(parseStatusHeader(getHeader(r.headers, 'Status')!), { namespace: '000', code: 200, comment: 'OK' });
  });

  it('a REPORT Byte-Range with end > total is forwarded without judging it (I-9)', () => {
    const r = request(bodiless('dkei38sd', 'REPORT', 'Message-ID: 12339sdqwer', 'Byte-Range: 1-10/5', 'Status: 000 200 OK'));
    assert.deepEqual(r.byteRange, { start: 1, end: 10, total: 5 });
    assert.deepEqual(getHeader(r.headers, 'Byte-Range'), '1-10/5');
  });

  it('a REPORT without Message-ID is refused (4975 §7.1.2 MUST; the router never answers a REPORT, R-77)', () => {
    refusedRequest(bodiless('dkei38sd', 'REPORT', 'Status: 000 200 OK'), true, /Message-ID/);
  });
});

describe('parseRequestHead: AUTH To-Path forms (R-44, I-3, 4976 §5.1)', () => {
  const from = 'msrps://alicepc.example.com:7777/iau39soe2843z;tcp';

  it('AUTH to the relay with a port: msrps://relay.example.com:2855;tcp', () => {
    const r = request(`MSRP 49fh AUTH\r\nTo-Path: msrps://relay.example.com:2855;tcp\r\nFrom-Path: ${from}\r\n-------49fh$\r\n`);
    assert.equal(r.method, 'AUTH');
    assert.equal(r.toUris[0]!.scheme, 'msrps');
    assert.equal(r.toUris[0]!.host, 'relay.example.com');
    assert.equal(r.toUris[0]!.port, 2855);
    assert.equal(r.toUris[0]!.sessionId, undefined);
    assert.equal(r.messageId, undefined, 'AUTH needs no Message-ID');
  });

  it('AUTH to the bare SIP domain without a port: msrps://example.com;tcp (allowed for AUTH only)', () => {
    const r = request(`MSRP 49fh AUTH\r\nTo-Path: msrps://example.com;tcp\r\nFrom-Path: ${from}\r\n-------49fh$\r\n`);
    assert.equal(r.toUris[0]!.host, 'example.com');
    assert.equal(r.toUris[0]!.port, undefined);
    assert.deepEqual(r.toPath, ['msrps://example.com;tcp']);
  });

  it('AUTH with userinfo and no port (4976 §8: msrps://alice@intra.example.com;tcp)', () => {
    const r = request(`MSRP 49fh AUTH\r\nTo-Path: msrps://alice@intra.example.com;tcp\r\nFrom-Path: ${from}\r\n-------49fh$\r\n`);
    assert.equal(r.toUris[0]!.user, 'alice');
    assert.equal(r.toUris[0]!.port, undefined);
  });

  it('AUTH with Expires and Authorization keeps them as headers', () => {
    const auth = 'Digest username="alice", realm="example.com", nonce="dcd98b71", qop="auth", nc="00000001", cnonce="0a4f113b", response="1efbea411a4e0d69283ea3ca9c383e2c", opaque="5ccc069c"';
    const r = request(`MSRP 49fh AUTH\r\nTo-Path: msrps://example.com;tcp\r\nFrom-Path: ${from}\r\nAuthorization: ${auth}\r\nExpires: 900\r\n-------49fh$\r\n`);
    assert.equal(getHeader(r.headers, 'authorization'), auth);
    assert.equal(getHeader(r.headers, 'Expires'), '900');
  });
});

describe('parseRequestHead: NICKNAME (RFC 7701 §7.1, I-7)', () => {
  it('is accepted, Use-Nickname kept as written', () => {
    const r = request(bodiless('di2fs53v', 'NICKNAME', 'Use-Nickname: "Alice the great"'));
    assert.equal(r.method, 'NICKNAME');
    assert.equal(r.messageId, undefined);
    assert.deepEqual(r.headers, [['Use-Nickname', '"Alice the great"']]);
  });
});

describe('parseRequestHead: FILE_OFFSET, a method with "_" (R-18, I-7)', () => {
  it('is accepted', () => {
    const r = request(bodiless('fo11aa', 'FILE_OFFSET', 'Message-ID: 7bc44ea1'));
    assert.equal(r.method, 'FILE_OFFSET');
    assert.equal(isMethod('FILE_OFFSET'), true);
  });
});

describe('parseRequestHead: unknown extension headers are kept in order (R-24)', () => {
  it('keeps unknown headers, their case and their order, interleaved with known ones', () => {
    const r = request(
      withBody(
        'x8e1',
        'SEND',
        'hi',
        'X-First: 1',
        'Message-ID: m1m1m1',
        'x-lower-case: two words',
        'Success-Report: yes',
        'X-Empty-ish: ;',
        'Content-Type: text/plain',
      ),
    );
    assert.deepEqual(r.headers, [
      ['X-First', '1'],
      ['Message-ID', 'm1m1m1'],
      ['x-lower-case', 'two words'],
      ['Success-Report', 'yes'],
      ['X-Empty-ish', ';'],
      ['Content-Type', 'text/plain'],
    ]);
  });

  it('an unknown header may repeat (R-21 lists only the known single headers)', () => {
    const r = request(bodiless('x8e1', 'SEND', 'Message-ID: m1m1m1', 'X-Trace: a', 'X-Trace: b'));
    assert.deepEqual(getHeaders(r.headers, 'X-Trace'), ['a', 'b']);
  });
});

describe('parseRequestHead: report header defaults and values (R-28)', () => {
  it('absent Failure-Report means yes, absent Success-Report means no', () => {
    const r = request(bodiless('r28a', 'SEND', 'Message-ID: m1m1m1'));
    assert.equal(r.failureReport, 'yes');
    assert.equal(r.successReport, 'no');
  });

  it('explicit values are read; the literals are case-insensitive (RFC 5234 §2.3)', () => {
    const r = request(bodiless('r28a', 'SEND', 'Message-ID: m1m1m1', 'Failure-Report: partial', 'Success-Report: yes'));
    assert.equal(r.failureReport, 'partial');
    assert.equal(r.successReport, 'yes');
    const u = request(bodiless('r28a', 'SEND', 'Message-ID: m1m1m1', 'failure-report: NO', 'SUCCESS-REPORT: No'));
    assert.equal(u.failureReport, 'no');
    assert.equal(u.successReport, 'no');
  });
});

describe('parseRequestHead: Byte-Range forms (R-27, §1.5)', () => {
  for (const [text, want] of [
    ['1-*/*', { start: 1, end: -1, total: -1 }],
    ['1-0/0', { start: 1, end: 0, total: 0 }],
    ['1-25/25', { start: 1, end: 25, total: 25 }],
    ['26-*/100', { start: 26, end: -1, total: 100 }],
    ['1-2048/*', { start: 1, end: 2048, total: -1 }],
  ] as const) {
    it(`Byte-Range: ${text}`, () => {
      const r = request(bodiless('br01', 'SEND', 'Message-ID: m1m1m1', `Byte-Range: ${text}`));
      assert.deepEqual(r.byteRange, want);
    });
  }
});

// ------------------------------------------------------------------ refusals

describe('R-20: To-Path and From-Path missing, swapped or unreadable: no response (respond false)', () => {
  it('no headers at all', () => {
    refusedRequest('MSRP r20a SEND\r\n-------r20a$\r\n', false);
  });
  it('To-Path missing', () => {
    refusedRequest(`MSRP r20a SEND\r\nFrom-Path: ${FROM}\r\nMessage-ID: m1m1m1\r\n-------r20a$\r\n`, false);
  });
  it('From-Path missing', () => {
    refusedRequest(`MSRP r20a SEND\r\nTo-Path: ${TO}\r\nMessage-ID: m1m1m1\r\n-------r20a$\r\n`, false);
  });
  it('From-Path before To-Path', () => {
    refusedRequest(`MSRP r20a SEND\r\nFrom-Path: ${FROM}\r\nTo-Path: ${TO}\r\nMessage-ID: m1m1m1\r\n-------r20a$\r\n`, false);
  });
  it('another header before the paths', () => {
    refusedRequest(`MSRP r20a SEND\r\nMessage-ID: m1m1m1\r\nTo-Path: ${TO}\r\nFrom-Path: ${FROM}\r\n-------r20a$\r\n`, false);
  });
  it('To-Path unparseable', () => {
    refusedRequest(`MSRP r20a SEND\r\nTo-Path: http://biloxi.example.com/\r\nFrom-Path: ${FROM}\r\nMessage-ID: m1m1m1\r\n-------r20a$\r\n`, false, /unreadable path/);
  });
  it('From-Path unparseable (no transport)', () => {
    refusedRequest(`MSRP r20a SEND\r\nTo-Path: ${TO}\r\nFrom-Path: msrp://atlanta.example.com:7654/jshA7weztas\r\nMessage-ID: m1m1m1\r\n-------r20a$\r\n`, false, /unreadable path/);
  });
  it('an empty To-Path', () => {
    refusedRequest(`MSRP r20a SEND\r\nTo-Path: \r\nFrom-Path: ${FROM}\r\nMessage-ID: m1m1m1\r\n-------r20a$\r\n`, false);
  });
  it('a control character inside To-Path makes the path unreadable (R-22 "or close, if the paths are affected")', () => {
    refusedRequest(`MSRP r20a SEND\r\nTo-Path: msrp://biloxi.example.com:12763/kj\x01hd;tcp\r\nFrom-Path: ${FROM}\r\nMessage-ID: m1m1m1\r\n-------r20a$\r\n`, false);
  });
  it('paths are checked before the tid and the method: nothing can be addressed', () => {
    refusedRequest(`MSRP abc send\r\nFrom-Path: ${FROM}\r\n-------abc$\r\n`, false);
  });
});

describe('R-18: the method is upper-case letters and "_" (400, respond true)', () => {
  for (const method of ['send', 'Send', 'SEND2', '_SEND']) {
    it(`refuses "${method}"`, () => {
      refusedRequest(bodiless('r18a', method, 'Message-ID: m1m1m1'), true, /method/);
    });
  }
  it('isMethod', () => {
    assert.equal(isMethod('SEND'), true);
    assert.equal(isMethod('NICKNAME'), true);
    assert.equal(isMethod('FILE_OFFSET'), true);
    assert.equal(isMethod('send'), false);
    assert.equal(isMethod(''), false);
  });
});

describe('R-19: the tid is an ident of 4 to 32 characters (400, respond true)', () => {
  it('refuses a 3-character tid', () => {
    refusedRequest(bodiless('abc', 'SEND', 'Message-ID: m1m1m1'), true, /transaction id/);
  });
  it('refuses a 33-character tid', () => {
    refusedRequest(bodiless('a'.repeat(33), 'SEND', 'Message-ID: m1m1m1'), true, /transaction id/);
  });
  it('refuses a tid with "_"', () => {
    refusedRequest(bodiless('ab_cd', 'SEND', 'Message-ID: m1m1m1'), true, /transaction id/);
  });
  it('refuses a tid that does not start with a letter or digit', () => {
    refusedRequest(bodiless('.abcd', 'SEND', 'Message-ID: m1m1m1'), true, /transaction id/);
  });
  it('accepts 4 and 32 characters and every ident-char', () => {
    assert.equal(request(bodiless('abcd', 'SEND', 'Message-ID: m1m1m1')).tid, 'abcd');
    assert.equal(request(bodiless('Z'.repeat(32), 'SEND', 'Message-ID: m1m1m1')).tid, 'Z'.repeat(32));
    assert.equal(request(bodiless('0a.b-c+d%e=f', 'SEND', 'Message-ID: m1m1m1')).tid, '0a.b-c+d%e=f');
  });
  it('isIdent', () => {
    assert.equal(isIdent('abcd'), true);
    assert.equal(isIdent('abc'), false);
    assert.equal(isIdent('a'.repeat(32)), true);
    assert.equal(isIdent('a'.repeat(33)), false);
    assert.equal(isIdent('ab_cd'), false);
    assert.equal(isIdent('-abcd'), false);
  });
});

describe('R-21: a repeated To-Path, From-Path or single-valued header is a 400', () => {
  const cases: Array<[string, string[]]> = [
    ['To-Path', ['Message-ID: m1m1m1', `To-Path: ${TO}`]],
    ['From-Path', ['Message-ID: m1m1m1', `From-Path: ${FROM}`]],
    ['Message-ID', ['Message-ID: m1m1m1', 'Message-ID: m2m2m2']],
    ['Message-ID (case differs)', ['Message-ID: m1m1m1', 'message-id: m1m1m1']],
    ['Byte-Range', ['Message-ID: m1m1m1', 'Byte-Range: 1-*/*', 'Byte-Range: 1-*/*']],
    ['Success-Report', ['Message-ID: m1m1m1', 'Success-Report: no', 'Success-Report: yes']],
    ['Failure-Report', ['Message-ID: m1m1m1', 'Failure-Report: no', 'Failure-Report: no']],
  ];
  for (const [name, lines] of cases) {
    it(`repeated ${name}`, () => {
      refusedRequest(bodiless('r21a', 'SEND', ...lines), true, /more than once/);
    });
  }
  it('repeated Content-Type', () => {
    refusedRequest(withBody('r21a', 'SEND', 'hi', 'Message-ID: m1m1m1', 'Content-Type: text/plain', 'Content-Type: text/html'), true, /more than once/);
  });
});

describe('R-22, R-23: a header-level defect reported by the framer is a 400 (respond true)', () => {
  const cases: Array<[string, string]> = [
    ['a NUL in a value', 'X-Note: a\x00b'],
    ['a control character in a value', 'X-Note: a\x01b'],
    ['a bare CR in a value', 'X-Note: a\rb'],
    ['a value that is not UTF-8', 'X-Note: caf\xe9'],
    ['a line without "name:"', 'just some text'],
    ['a header name outside the token set', 'X Note: a'],
    ['a folded line (R-23)', ' continued'],
  ];
  for (const [what, line] of cases) {
    it(what, () => {
      const head = headOf(bodiless('r22a', 'SEND', 'Message-ID: m1m1m1', line));
      assert.notEqual(head.problem, undefined, 'the framer reports it');
      refused(() => parseRequestHead(head), true);
    });
  }
  it('an HTAB and valid UTF-8 in a value are fine', () => {
    const wire = Buffer.concat([
      Buffer.from(`MSRP r22a SEND\r\nTo-Path: ${TO}\r\nFrom-Path: ${FROM}\r\nMessage-ID: m1m1m1\r\nX-Note: a\tb `, 'latin1'),
      Buffer.from('café', 'utf8'),
      Buffer.from('\r\n-------r22a$\r\n', 'latin1'),
    ]);
    const r = parseRequestHead(frameOne(wire).head);
    assert.equal(getHeader(r.headers, 'X-Note'), 'a\tb café');
  });
});

describe('R-25: only Content-* headers may follow Content-Type', () => {
  it('a non-Content header after Content-Type is a 400', () => {
    refusedRequest(withBody('r25a', 'SEND', 'hi', 'Content-Type: text/plain', 'Message-ID: m1m1m1'), true, /follows Content-Type/);
  });
  it('an extension header after Content-Type is a 400', () => {
    refusedRequest(withBody('r25a', 'SEND', 'hi', 'Message-ID: m1m1m1', 'Content-Type: text/plain', 'X-Late: 1'), true, /follows Content-Type/);
  });
  it('MIME headers before Content-Type, which is last (§1.4), are kept as they are', () => {
    const r = request(withBody('r25a', 'SEND', 'hi', 'Message-ID: m1m1m1', 'Content-ID: <x@y>', 'Content-Disposition: inline', 'Content-Type: text/plain'));
    assert.deepEqual(r.headers, [
      ['Message-ID', 'm1m1m1'],
      ['Content-ID', '<x@y>'],
      ['Content-Disposition', 'inline'],
      ['Content-Type', 'text/plain'],
    ]);
  });
  it('Content-Disposition after Content-Type is accepted (R-25 P) and Content-Type is moved last so the relay emits it last', () => {
    const r = request(withBody('r25a', 'SEND', 'hi', 'Message-ID: m1m1m1', 'Content-Type: text/plain', 'Content-Disposition: inline', 'Content-Description: note'));
    assert.equal(r.contentType, 'text/plain');
    assert.deepEqual(r.headers, [
      ['Message-ID', 'm1m1m1'],
      ['Content-Disposition', 'inline'],
      ['Content-Description', 'note'],
      ['Content-Type', 'text/plain'],
    ]);
  });
});

describe('R-26: SEND carries Message-ID; Byte-Range is optional on the first chunk', () => {
  it('a SEND without Message-ID is a 400', () => {
    refusedRequest(withBody('r26a', 'SEND', 'hi', 'Byte-Range: 1-2/2', 'Content-Type: text/plain'), true, /Message-ID/);
  });
  it('a bodiless SEND without Message-ID is a 400', () => {
    refusedRequest(bodiless('r26a', 'SEND'), true, /Message-ID/);
  });
  it('a SEND without Byte-Range is accepted (byteRange undefined, read as 1-*/*)', () => {
    const r = request(withBody('r26a', 'SEND', 'hi', 'Message-ID: m1m1m1', 'Content-Type: text/plain'));
    assert.equal(r.byteRange, undefined);
  });
  it('a Message-ID that is not an ident is a 400', () => {
    refusedRequest(bodiless('r26a', 'SEND', 'Message-ID: abc'), true, /Message-ID/);
    refusedRequest(bodiless('r26a', 'SEND', 'Message-ID: has_underscore'), true, /Message-ID/);
  });
  it('a non-SEND request needs no Message-ID', () => {
    assert.equal(request(bodiless('r26a', 'NICKNAME', 'Use-Nickname: "x"')).messageId, undefined);
  });
});

describe('R-27: Byte-Range grammar and order (SEND)', () => {
  for (const value of ['0-5/5', '5-3/10', '1-10/5', '1-5', '-1-5/5', 'a-5/5', '1-5/x', '*-5/5', '1 - 5/5', '1-5/5/5']) {
    it(`Byte-Range: ${value} is a 400`, () => {
      refusedRequest(bodiless('r27a', 'SEND', 'Message-ID: m1m1m1', `Byte-Range: ${value}`), true, /Byte-Range/);
    });
  }
});

describe('R-28: report header values outside the ABNF are a 400', () => {
  it('Failure-Report: maybe', () => {
    refusedRequest(bodiless('r28b', 'SEND', 'Message-ID: m1m1m1', 'Failure-Report: maybe'), true, /Failure-Report/);
  });
  it('Success-Report: partial (Success-Report is yes or no only)', () => {
    refusedRequest(bodiless('r28b', 'SEND', 'Message-ID: m1m1m1', 'Success-Report: partial'), true, /Success-Report/);
  });
});

describe('R-41: a non-numeric or negative Expires is a 400', () => {
  for (const value of ['-1', 'abc', '1.5', '+60', '']) {
    it(`Expires: ${JSON.stringify(value)}`, () => {
      refusedRequest(`MSRP r41a AUTH\r\nTo-Path: msrps://example.com;tcp\r\nFrom-Path: ${FROM}\r\nExpires: ${value}\r\n-------r41a$\r\n`, true, /Expires/);
    });
  }
  it('Min-Expires and Max-Expires are checked the same way', () => {
    refusedRequest(bodiless('r41a', 'NICKNAME', 'Min-Expires: soon'), true, /Min-Expires/);
    refusedRequest(bodiless('r41a', 'NICKNAME', 'Max-Expires: -5'), true, /Max-Expires/);
  });
  it('Expires: 0 and Expires: 3600 are accepted', () => {
    request(`MSRP r41a AUTH\r\nTo-Path: msrps://example.com;tcp\r\nFrom-Path: ${FROM}\r\nExpires: 0\r\n-------r41a$\r\n`);
    request(`MSRP r41a AUTH\r\nTo-Path: msrps://example.com;tcp\r\nFrom-Path: ${FROM}\r\nExpires: 3600\r\n-------r41a$\r\n`);
  });
});

describe('R-44: outside AUTH every To-Path URI has an explicit port (400, respond true)', () => {
  it('a SEND to a URI without a port', () => {
    refusedRequest(`MSRP r44a SEND\r\nTo-Path: msrps://relay.example.com/jui787s2f;tcp\r\nFrom-Path: ${FROM}\r\nMessage-ID: m1m1m1\r\n-------r44a$\r\n`, true, /port/);
  });
  it('a later To-Path URI without a port', () => {
    refusedRequest(`MSRP r44a SEND\r\nTo-Path: ${TO} msrp://bob.example.com/9di4;tcp\r\nFrom-Path: ${FROM}\r\nMessage-ID: m1m1m1\r\n-------r44a$\r\n`, true, /port/);
  });
  it('a NICKNAME to a URI without a port', () => {
    refusedRequest(`MSRP r44a NICKNAME\r\nTo-Path: msrp://chat.example.com/room;tcp\r\nFrom-Path: ${FROM}\r\nUse-Nickname: "a"\r\n-------r44a$\r\n`, true, /port/);
  });
  it('the AUTH exemption covers the method AUTH only, by exact (case-sensitive) name', () => {
    // "auth" is refused for its case first (R-18), never let through without a port.
    refusedRequest(`MSRP r44a auth\r\nTo-Path: msrps://example.com;tcp\r\nFrom-Path: ${FROM}\r\n-------r44a$\r\n`, true);
  });
});

describe('R-88: a path with more than 16 URIs is a 400 (respond true)', () => {
  const uri = (i: number) => `msrp://h${i}.example.com:2855/s${i};tcp`;
  const many = (n: number) => Array.from({ length: n }, (_, i) => uri(i)).join(' ');
  it('17 URIs in To-Path', () => {
    refusedRequest(`MSRP r88a SEND\r\nTo-Path: ${many(17)}\r\nFrom-Path: ${FROM}\r\nMessage-ID: m1m1m1\r\n-------r88a$\r\n`, true, /more than 16/);
  });
  it('17 URIs in From-Path', () => {
    refusedRequest(`MSRP r88a SEND\r\nTo-Path: ${TO}\r\nFrom-Path: ${many(17)}\r\nMessage-ID: m1m1m1\r\n-------r88a$\r\n`, true, /more than 16/);
  });
  it('16 URIs are accepted', () => {
    assert.equal(request(`MSRP r88a SEND\r\nTo-Path: ${many(16)}\r\nFrom-Path: ${many(16)}\r\nMessage-ID: m1m1m1\r\n-------r88a$\r\n`).toPath.length, 16);
  });
  it('the limit is configurable (maxPathUris)', () => {
    refusedRequest(`MSRP r88a SEND\r\nTo-Path: ${many(3)}\r\nFrom-Path: ${FROM}\r\nMessage-ID: m1m1m1\r\n-------r88a$\r\n`, true, /more than 2/, { maxPathUris: 2 });
  });
});

describe('§1.1: a body needs a well-formed Content-Type (400)', () => {
  it('a body without Content-Type', () => {
    refusedRequest(withBody('ct1a', 'SEND', 'hi', 'Message-ID: m1m1m1', 'Byte-Range: 1-2/2'), true, /Content-Type/);
  });
  it('an empty body without Content-Type', () => {
    refusedRequest(withBody('ct1a', 'SEND', '', 'Message-ID: m1m1m1'), true, /Content-Type/);
  });
  it('a Content-Type without a subtype', () => {
    refusedRequest(withBody('ct1a', 'SEND', 'hi', 'Message-ID: m1m1m1', 'Content-Type: text'), true, /Content-Type/);
  });
  it('Content-Type with parameters is accepted', () => {
    assert.equal(request(withBody('ct1a', 'SEND', 'hi', 'Message-ID: m1m1m1', 'Content-Type: text/plain; charset=utf-8')).contentType, 'text/plain; charset=utf-8');
  });
});

describe('MessageError', () => {
  it('carries status 400 by default and the respond flag', () => {
    const e = new MessageError('x', true);
    assert.equal(e.status, 400);
    assert.equal(e.respond, true);
    assert.equal(e.name, 'MessageError');
    assert.ok(e instanceof Error);
    assert.equal(new MessageError('y', false, 413).status, 413);
  });
});

// ------------------------------------------------------------------ responses

describe('parseResponseHead (4975 §7.2, R-30)', () => {
  it('200 OK', () => {
    const r = response(
      'MSRP a786hjs2 200 OK\r\n' +
        'To-Path: msrp://atlanta.example.com:7654/jshA7weztas;tcp\r\n' +
        'From-Path: msrp://biloxi.example.com:12763/kjhd37s2s20w2a;tcp\r\n' +
        '-------a786hjs2$\r\n',
    );
    assert.deepEqual(r, {
      kind: 'response',
      tid: 'a786hjs2',
      status: 200,
      comment: 'OK',
      toPath: ['msrp://atlanta.example.com:7654/jshA7weztas;tcp'],
      fromPath: ['msrp://biloxi.example.com:12763/kjhd37s2s20w2a;tcp'],
      headers: [],
    });
  });

  it('481 without a comment', () => {
    const r = response(`MSRP x9s2 481\r\nTo-Path: ${FROM}\r\nFrom-Path: ${TO}\r\n-------x9s2$\r\n`);
    assert.equal(r.status, 481);
    assert.equal(r.comment, '');
  });

  it('a 200 to AUTH keeps Use-Path, Expires and Authentication-Info', () => {
    const r = response(
      'MSRP 49fi 200 OK\r\n' +
        'To-Path: msrps://alicepc.example.com:7777/iau39soe2843z;tcp\r\n' +
        'From-Path: msrps://relay.example.com:2855;tcp\r\n' +
        'Use-Path: msrps://relay.example.com:2855/jui787s2f;tcp\r\n' +
        'Expires: 900\r\n' +
        '-------49fi$\r\n',
    );
    assert.deepEqual(r.headers, [
      ['Use-Path', 'msrps://relay.example.com:2855/jui787s2f;tcp'],
      ['Expires', '900'],
    ]);
  });

  it('a response with a body is refused and dropped (R-30, §1.1: responses never have a body)', () => {
    const head = headOf(`MSRP x9s2 200 OK\r\nTo-Path: ${FROM}\r\nFrom-Path: ${TO}\r\nContent-Type: text/plain\r\n\r\nhi\r\n-------x9s2$\r\n`);
    assert.equal(head.hasBody, true);
    refused(() => parseResponseHead(head), false, /body/);
  });

  it('a response with unreadable paths, a bad tid or a header defect is refused with respond false', () => {
    refused(() => parseResponseHead(headOf(`MSRP x9s2 200 OK\r\nFrom-Path: ${TO}\r\n-------x9s2$\r\n`)), false);
    refused(() => parseResponseHead(headOf(`MSRP x_s2 200 OK\r\nTo-Path: ${FROM}\r\nFrom-Path: ${TO}\r\n-------x_s2$\r\n`)), false);
    refused(() => parseResponseHead(headOf(`MSRP x9s2 200 OK\r\nTo-Path: ${FROM}\r\nFrom-Path: ${TO}\r\nX: a\x01\r\n-------x9s2$\r\n`)), false);
  });

  it('a response with an over-long path (R-88) is refused with respond false too: responses are never answered', () => {
    const many = Array.from({ length: 17 }, (_, i) => `msrp://h${i}.example.com:2855/s${i};tcp`).join(' ');
    refused(() => parseResponseHead(headOf(`MSRP x9s2 200 OK\r\nTo-Path: ${many}\r\nFrom-Path: ${TO}\r\n-------x9s2$\r\n`)), false, /more than 16/);
  });
});

// --------------------------------------------------------------- typed values

describe('parseByteRange / formatByteRange (§1.5, R-27)', () => {
  it('round trips', () => {
    for (const text of ['1-*/*', '1-0/0', '1-25/25', '2049-4096/*', '1-*/1048576', '100-199/1000', `1-${'9'.repeat(15)}/*`]) {
      const r = parseByteRange(text);
      assert.notEqual(r, undefined, text);
      assert.equal(formatByteRange(r!), text);
    }
  });
  it('formats -1 as "*"', () => {
    const r: ByteRange = { start: 5, end: -1, total: -1 };
    assert.equal(formatByteRange(r), '5-*/*');
    assert.equal(formatByteRange({ start: 1, end: 10, total: -1 }), '1-10/*');
  });
  it('refuses what R-27 refuses', () => {
    for (const text of ['0-5/5', '5-3/10', '1-10/5', '', '1-5', '1-5/', `1-${'9'.repeat(16)}/*`, ' 1-5/5']) {
      assert.equal(parseByteRange(text), undefined, JSON.stringify(text));
    }
  });
  it('an empty range at the end of a message (n-(n-1)/m) is allowed', () => {
    assert.deepEqual(parseByteRange('11-10/10'), { start: 11, end: 10, total: 10 });
  });
});

describe('parseStatusHeader / formatStatusHeader (§1.5 Status, R-78)', () => {
  it('parses 000 408 Request Timeout', () => {
    assert.deepEqual(parseStatusHeader('000 408 Request Timeout'), { namespace: '000', code: 408, comment: 'Request Timeout' });
  });
  it('parses a Status without a comment', () => {
    assert.deepEqual(parseStatusHeader('000 200'), { namespace: '000', code: 200, comment: '' });
  });
  it('refuses malformed values', () => {
    for (const text of ['', '000', '000 20', '0000 200', '000200', '000  200', 'abc 200', '000 2000']) {
      assert.equal(parseStatusHeader(text), undefined, JSON.stringify(text));
    }
  });
  it('formats with the registry comment by default, a given comment, or none', () => {
    assert.equal(formatStatusHeader(408), '000 408 Transaction-did-not-complete');
    assert.equal(formatStatusHeader(200), '000 200 OK');
    assert.equal(formatStatusHeader(413, 'Too big'), '000 413 Too big');
    assert.equal(formatStatusHeader(481, ''), '000 481');
  });
  it('format then parse gives the code and comment back', () => {
    assert.deepEqual(parseStatusHeader(formatStatusHeader(481)), { namespace: '000', code: 481, comment: 'Session-does-not-exist' });
  });
});

describe('parseSeconds (Expires, Min-Expires, Max-Expires: 1*DIGIT, R-41)', () => {
  it('reads digits', () => {
    assert.equal(parseSeconds('0'), 0);
    assert.equal(parseSeconds('600'), 600);
    assert.equal(parseSeconds('0060'), 60);
    assert.equal(parseSeconds('4294967296'), 4294967296);
  });
  it('refuses signs, blanks, fractions, exponents and overlong values', () => {
    for (const text of ['', '-1', '+1', ' 60', '60 ', '1.5', '1e3', 'abc', '0x10', '12345678901']) {
      assert.equal(parseSeconds(text), undefined, JSON.stringify(text));
    }
  });
});

// ------------------------------------------------------------ transaction ids

describe('newTransactionId (R-59, §1.2, I-5)', () => {
  it('is 32 characters of lower-case hex', () => {
    const id = newTransactionId();
    assert.equal(id.length, 32);
    assert.match(id, /^[0-9a-f]{32}$/);
  });
  it('10000 ids are distinct, hex only, and each is an ident', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 10000; i++) {
      const id = newTransactionId();
      assert.match(id, /^[0-9a-f]{32}$/);
      assert.equal(isIdent(id), true);
      seen.add(id);
    }
    assert.equal(seen.size, 10000);
  });
});

// -------------------------------------------------------------- serialisation

describe('formatRequestHead: To-Path first, From-Path second, "Name: value", Content-Type last (§1.4, I-6)', () => {
  it('a head with a body ends with the blank line', () => {
    assert.equal(
      formatRequestHead({
        tid: 'a786hjs2',
        method: 'SEND',
        toPath: ['msrp://biloxi.example.com:12763/kjhd37s2s20w2a;tcp'],
        fromPath: ['msrp://atlanta.example.com:7654/jshA7weztas;tcp'],
        headers: [
          ['Message-ID', '87652491'],
          ['Byte-Range', '1-25/25'],
          ['Content-Type', 'text/plain'],
        ],
        hasBody: true,
      }),
      'MSRP a786hjs2 SEND\r\n' +
        'To-Path: msrp://biloxi.example.com:12763/kjhd37s2s20w2a;tcp\r\n' +
        'From-Path: msrp://atlanta.example.com:7654/jshA7weztas;tcp\r\n' +
        'Message-ID: 87652491\r\n' +
        'Byte-Range: 1-25/25\r\n' +
        'Content-Type: text/plain\r\n' +
        '\r\n',
    );
  });
  it('a bodiless head has no blank line; paths are joined with one SP', () => {
    assert.equal(
      formatRequestHead({
        tid: '49fh',
        method: 'AUTH',
        toPath: ['msrps://relay.example.com:2855;tcp', 'msrps://far.example.net:2855;tcp'],
        fromPath: ['msrps://alicepc.example.com:7777/iau39soe2843z;tcp'],
        hasBody: false,
      }),
      'MSRP 49fh AUTH\r\n' +
        'To-Path: msrps://relay.example.com:2855;tcp msrps://far.example.net:2855;tcp\r\n' +
        'From-Path: msrps://alicepc.example.com:7777/iau39soe2843z;tcp\r\n',
    );
  });
});

describe('formatEndLine (§1.3)', () => {
  it('after a body it starts with the CRLF that closes the content', () => {
    assert.equal(formatEndLine('abcd', '$', true), '\r\n-------abcd$\r\n');
    assert.equal(formatEndLine('abcd', '+', true), '\r\n-------abcd+\r\n');
  });
  it('after a bodiless head it follows the last header directly', () => {
    assert.equal(formatEndLine('abcd', '#', false), '-------abcd#\r\n');
  });
});

describe('formatRequest: exact bytes (§1.1)', () => {
  const base = { toPath: [TO], fromPath: [FROM] };
  it('with a body', () => {
    const b = formatRequest({ ...base, tid: 'a786hjs2', method: 'SEND', headers: [['Message-ID', '87652491'], ['Byte-Range', '1-23/23'], ['Content-Type', 'text/plain']], body: 'Hey Bob, are you there?' });
    assert.equal(
      b.toString('latin1'),
      'MSRP a786hjs2 SEND\r\n' +
        `To-Path: ${TO}\r\n` +
        `From-Path: ${FROM}\r\n` +
        'Message-ID: 87652491\r\n' +
        'Byte-Range: 1-23/23\r\n' +
        'Content-Type: text/plain\r\n' +
        '\r\n' +
        'Hey Bob, are you there?\r\n' +
        '-------a786hjs2$\r\n',
    );
  });
  it('bodiless: no blank line, the end-line follows the last header', () => {
    const b = formatRequest({ ...base, tid: 'kx7w', method: 'SEND', headers: [['Message-ID', '2f5q7a'], ['Keep-Alive', 'yes']] });
    assert.equal(b.toString('latin1'), `MSRP kx7w SEND\r\nTo-Path: ${TO}\r\nFrom-Path: ${FROM}\r\nMessage-ID: 2f5q7a\r\nKeep-Alive: yes\r\n-------kx7w$\r\n`);
  });
  it('an empty body: Content-Type CRLF CRLF CRLF end-line', () => {
    const b = formatRequest({ ...base, tid: 'kx7w', method: 'SEND', headers: [['Message-ID', '2f5q7a'], ['Byte-Range', '1-0/0'], ['Content-Type', 'text/plain']], body: '' });
    assert.equal(b.toString('latin1'), `MSRP kx7w SEND\r\nTo-Path: ${TO}\r\nFrom-Path: ${FROM}\r\nMessage-ID: 2f5q7a\r\nByte-Range: 1-0/0\r\nContent-Type: text/plain\r\n\r\n\r\n-------kx7w$\r\n`);
  });
  it('the flag is written as given', () => {
    const b = formatRequest({ ...base, tid: 'kx7w', method: 'SEND', headers: [['Message-ID', '2f5q7a'], ['Byte-Range', '1-*/*'], ['Content-Type', 'text/plain']], body: 'ab', flag: '+' });
    assert.ok(b.toString('latin1').endsWith('\r\nab\r\n-------kx7w+\r\n'));
    const a = formatRequest({ ...base, tid: 'kx7w', method: 'SEND', headers: [['Message-ID', '2f5q7a']], flag: '#' });
    assert.ok(a.toString('latin1').endsWith('Message-ID: 2f5q7a\r\n-------kx7w#\r\n'));
  });
  it('a binary body is copied byte for byte; UTF-8 header values are written as UTF-8', () => {
    const body = Buffer.from([0x00, 0xff, 0x0d, 0x0a, 0x80]);
    const b = formatRequest({ ...base, tid: 'kx7w', method: 'SEND', headers: [['Message-ID', '2f5q7a'], ['X-Name', 'Zoë'], ['Content-Type', 'application/octet-stream']], body });
    const head = `MSRP kx7w SEND\r\nTo-Path: ${TO}\r\nFrom-Path: ${FROM}\r\nMessage-ID: 2f5q7a\r\nX-Name: Zoë\r\nContent-Type: application/octet-stream\r\n\r\n`;
    assert.deepEqual(b, Buffer.concat([Buffer.from(head, 'utf8'), body, Buffer.from('\r\n-------kx7w$\r\n', 'latin1')]));
  });
});

describe('formatResponse: exact bytes (4975 §7.2: no body, always "$")', () => {
  it('the default comment for the code', () => {
    const b = formatResponse({ tid: 'a786hjs2', status: 200, toPath: [FROM], fromPath: [TO] });
    assert.equal(b.toString('latin1'), `MSRP a786hjs2 200 OK\r\nTo-Path: ${FROM}\r\nFrom-Path: ${TO}\r\n-------a786hjs2$\r\n`);
  });
  it('no comment', () => {
    const b = formatResponse({ tid: 'x9s2', status: 481, comment: '', toPath: [FROM], fromPath: [TO] });
    assert.equal(b.toString('latin1'), `MSRP x9s2 481\r\nTo-Path: ${FROM}\r\nFrom-Path: ${TO}\r\n-------x9s2$\r\n`);
  });
  it('a custom comment', () => {
    const b = formatResponse({ tid: 'x9s2', status: 403, comment: 'Not here', toPath: [FROM], fromPath: [TO] });
    assert.equal(b.toString('latin1'), `MSRP x9s2 403 Not here\r\nTo-Path: ${FROM}\r\nFrom-Path: ${TO}\r\n-------x9s2$\r\n`);
  });
  it('extra headers after the paths: Min-Expires on a 423 (R-41)', () => {
    const from = 'msrps://alicepc.example.com:7777/iau39soe2843z;tcp';
    const b = formatResponse({ tid: '49fh', status: 423, toPath: [from], fromPath: ['msrps://relay.example.com:2855;tcp'], headers: [['Min-Expires', '60']] });
    assert.equal(
      b.toString('latin1'),
      'MSRP 49fh 423 Interval Out-of-Bounds\r\n' +
        `To-Path: ${from}\r\n` +
        'From-Path: msrps://relay.example.com:2855;tcp\r\n' +
        'Min-Expires: 60\r\n' +
        '-------49fh$\r\n',
    );
  });
  it('an end-to-end response with a multi-URI To-Path (R-42)', () => {
    const b = formatResponse({ tid: '49fh', status: 200, toPath: ['msrps://r1.example.com:2855/t1;tcp', FROM], fromPath: ['msrps://r2.example.com:2855;tcp'], headers: [['Use-Path', 'msrps://r2.example.com:2855/t2;tcp'], ['Expires', '600']] });
    assert.equal(
      b.toString('latin1'),
      'MSRP 49fh 200 OK\r\n' +
        `To-Path: msrps://r1.example.com:2855/t1;tcp ${FROM}\r\n` +
        'From-Path: msrps://r2.example.com:2855;tcp\r\n' +
        'Use-Path: msrps://r2.example.com:2855/t2;tcp\r\n' +
        'Expires: 600\r\n' +
        '-------49fh$\r\n',
    );
  });
  it('parses back', () => {
    const r = parseResponseHead(frameOne(formatResponse({ tid: '49fh', status: 423, toPath: [FROM], fromPath: [TO], headers: [['Min-Expires', '60']] })).head);
    assert.equal(r.status, 423);
    assert.equal(r.comment, 'Interval Out-of-Bounds');
    assert.deepEqual(r.headers, [['Min-Expires', '60']]);
  });
});

describe('round trip: formatRequest → Framer → parseRequestHead (R-61: fields and body bytes unchanged)', () => {
  const tid = 'f00dcafe';
  const headers: RawHeader[] = [
    ['Message-ID', 'msg42.x'],
    ['Byte-Range', '1-*/*'],
    ['Success-Report', 'yes'],
    ['Failure-Report', 'partial'],
    ['X-Vendor', 'kept as is'],
    ['Content-Disposition', 'attachment; filename="a.bin"'],
    ['Content-Type', 'application/octet-stream'],
  ];
  // NUL, high bytes, and end-line look-alikes that must stay body data (§1.3).
  const body = Buffer.concat([
    Buffer.from([0x00, 0x00, 0xff, 0xfe]),
    Buffer.from('\r\n-------othertid$\r\n', 'latin1'),
    Buffer.from(`\r\n-------${tid}X\r\n`, 'latin1'),
    Buffer.from(`\r\n-------${tid}$`, 'latin1'),
    Buffer.from(`abc-------${tid}$\r\n`, 'latin1'),
    Buffer.from('-------\r\n\r\n', 'latin1'),
    Buffer.from([0x0d]),
  ]);
  const wire = formatRequest({ tid, method: 'SEND', toPath: [TO, 'msrp://bob.example.com:8888/9di4eae923wzd;tcp'], fromPath: [FROM], headers, body });

  function check(f: Framed): void {
    assert.equal(f.flag, '$');
    assert.deepEqual(f.body, body);
    const r = parseRequestHead(f.head);
    assert.equal(r.tid, tid);
    assert.equal(r.method, 'SEND');
    assert.deepEqual(r.toPath, [TO, 'msrp://bob.example.com:8888/9di4eae923wzd;tcp']);
    assert.deepEqual(r.fromPath, [FROM]);
    assert.deepEqual(r.headers, headers);
    assert.equal(r.messageId, 'msg42.x');
    assert.deepEqual(r.byteRange, { start: 1, end: -1, total: -1 });
    assert.equal(r.successReport, 'yes');
    assert.equal(r.failureReport, 'partial');
    assert.equal(r.contentType, 'application/octet-stream');
    assert.equal(r.hasBody, true);
  }

  it('in one read', () => {
    check(frameOne(wire));
  });
  it('one byte at a time', () => {
    const all = frameAll(wire, true);
    assert.equal(all.length, 1);
    check(all[0]!);
  });
  it('a bodiless request and a response follow on the same stream', () => {
    const bodilessReq = formatRequest({ tid: 'n1ck', method: 'NICKNAME', toPath: [TO], fromPath: [FROM], headers: [['Use-Nickname', '"Zoë"']] });
    const resp = formatResponse({ tid: 'n1ck', status: 200, toPath: [FROM], fromPath: [TO] });
    const all = frameAll(Buffer.concat([wire, bodilessReq, resp]));
    assert.equal(all.length, 3);
    check(all[0]!);
    const nick = parseRequestHead(all[1]!.head);
    assert.equal(nick.method, 'NICKNAME');
    assert.equal(nick.hasBody, false);
    assert.equal(getHeader(nick.headers, 'Use-Nickname'), '"Zoë"');
    const res = parseResponseHead(all[2]!.head);
    assert.equal(res.tid, 'n1ck');
    assert.equal(res.status, 200);
  });
});

// ------------------------------------------------------------- header access

describe('getHeader / getHeaders: names compare case-insensitively (RFC 4975 §9)', () => {
  const headers: RawHeader[] = [
    ['To-Path', TO],
    ['Message-ID', 'first'],
    ['X-Trace', 'one'],
    ['message-id', 'second'],
    ['X-TRACE', 'two'],
    ['X-Trace-Id', 'other'],
  ];
  it('getHeader returns the first value, whatever the case of either name', () => {
    assert.equal(getHeader(headers, 'Message-ID'), 'first');
    assert.equal(getHeader(headers, 'MESSAGE-ID'), 'first');
    assert.equal(getHeader(headers, 'to-path'), TO);
    assert.equal(getHeader(headers, 'x-trace'), 'one');
  });
  it('getHeader returns undefined for an absent header, and does not match by prefix', () => {
    assert.equal(getHeader(headers, 'Content-Type'), undefined);
    assert.equal(getHeader(headers, 'X-Trac'), undefined);
    assert.equal(getHeader([], 'To-Path'), undefined);
  });
  it('getHeaders returns every value in order', () => {
    assert.deepEqual(getHeaders(headers, 'x-trace'), ['one', 'two']);
    assert.deepEqual(getHeaders(headers, 'MESSAGE-ID'), ['first', 'second']);
    assert.deepEqual(getHeaders(headers, 'Byte-Range'), []);
  });
});

describe('header names compare in any case (RFC 4975 §9: names are tokens)', () => {
  it('nameIs folds ASCII capitals only', () => {
    assert.equal(nameIs('To-Path', 'to-path'), true);
    assert.equal(nameIs('TO-PATH', 'to-path'), true);
    assert.equal(nameIs('to-path', 'to-path'), true);
    assert.equal(nameIs('To_Path', 'to-path'), false);
    assert.equal(nameIs('To-Pat', 'to-path'), false);
    assert.equal(nameIs('To-Paths', 'to-path'), false);
    // '[' is 0x5b: folding it with | 0x20 would make '{'; only A-Z fold.
    assert.equal(nameIs('[', '{'), false);
    assert.equal(nameIs('\u0130', 'i'), false);
  });

  it('lowerName returns the lower-case name, the same string for names the relay knows', () => {
    assert.equal(lowerName('Byte-Range'), 'byte-range');
    assert.equal(lowerName('X-Trace-ID'), 'x-trace-id');
    assert.equal(lowerName('MESSAGE-ID'), 'message-id');
  });

  it('header lookups and R-21 see names in any case as the same header', () => {
    const wire = `MSRP hcase1 SEND\r\nTO-PATH: ${TO}\r\nfrom-path: ${FROM}\r\nMESSAGE-ID: m1m1m1\r\nmessage-id: m2m2m2\r\n-------hcase1$\r\n`;
    refusedRequest(wire, true, /more than once/);
    const ok = request(`MSRP hcase2 SEND\r\nTO-PATH: ${TO}\r\nfrom-path: ${FROM}\r\nMESSAGE-ID: m1m1m1\r\nbyte-range: 1-0/0\r\n-------hcase2$\r\n`);
    assert.equal(ok.messageId, 'm1m1m1');
    assert.deepEqual(ok.byteRange, { start: 1, end: 0, total: 0 });
    assert.equal(getHeader([['CONTENT-TYPE', 'text/plain']], 'Content-Type'), 'text/plain');
    assert.deepEqual(getHeaders([['x-a', '1'], ['X-A', '2']], 'X-a'), ['1', '2']);
  });
});
