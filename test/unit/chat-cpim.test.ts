/**
 * Message/CPIM as the chat focus reads it (plugins/chat/cpim.ts): RFC 3862 headers, namespaces,
 * escapes, From / To / cc / DateTime, the encapsulated content headers, and the one change the
 * focus makes: header lines of its own namespace inserted before the blank line (C-6, C-18).
 */

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  CPIM_NAMESPACE,
  CpimError,
  INCOMPLETE,
  buildCpim,
  decodeEscapes,
  focusHeaderLines,
  focusPrefix,
  headersInNamespace,
  insertHeaderLines,
  parseAddress,
  parseDateTime,
  quoteCpimString,
  scanCpim,
  type CpimMessage,
} from '../../plugins/chat/cpim.ts';

const CRLF = '\r\n';
const lines = (...l: string[]) => Buffer.from(l.join(CRLF), 'utf8');

/** The RFC 3862 §3.2 example, as a chat client would send it inside MSRP. */
const RFC_EXAMPLE = lines(
  'From: MR SANDERS <im:piglet@100akerwood.com>',
  'To: Depressed Donkey <im:eeyore@100akerwood.com>',
  'DateTime: 2000-12-13T13:40:00-08:00',
  'Subject: the weather will be fine today',
  'Subject:;lang=fr beau temps prevu pour aujourd\'hui',
  'NS: MyFeatures <mid:MessageFeatures@id.foo.com>',
  'Require: MyFeatures.VitalMessageOption',
  'MyFeatures.VitalMessageOption: Confirmation-requested',
  'MyFeatures.WackyMessageOption: Use-silly-font',
  '',
  'Content-type: text/xml; charset=utf-8',
  'Content-ID: <1234567890@foo.com>',
  '',
  '<body>',
  'Here is the text of my message.',
  '</body>',
);

function scan(body: Buffer, complete = true): CpimMessage {
  const m = scanCpim(body, complete);
  assert.notEqual(m, INCOMPLETE);
  return m as CpimMessage;
}

function problem(body: Buffer, complete = true): string {
  try {
    scanCpim(body, complete);
  } catch (e) {
    assert.ok(e instanceof CpimError, String(e));
    return e.problem;
  }
  assert.fail('expected a CpimError');
}

describe('CPIM message headers (RFC 3862 §3)', () => {
  it('reads From, To, DateTime, NS, Require and the content headers of a message with a repeated Subject', () => {
    // Subject occurs twice in RFC 3862's own example; C-18 allows only NS, To and cc twice.
    assert.equal(problem(RFC_EXAMPLE), 'malformed');
    const body = Buffer.from(RFC_EXAMPLE.toString('utf8').replace(/Subject:;lang=fr[^\r]*\r\n/, ''), 'utf8');
    const m = scan(body);
    assert.deepEqual(m.from, { displayName: 'MR SANDERS', uri: 'im:piglet@100akerwood.com' });
    assert.deepEqual(m.to, [{ displayName: 'Depressed Donkey', uri: 'im:eeyore@100akerwood.com' }]);
    assert.equal(m.dateTime, '2000-12-13T13:40:00-08:00');
    assert.equal(m.date?.toISOString(), '2000-12-13T21:40:00.000Z');
    assert.equal(m.subject, 'the weather will be fine today');
    assert.equal(m.namespaces.get('MyFeatures'), 'mid:MessageFeatures@id.foo.com');
    assert.deepEqual(m.require, ['MyFeatures.VitalMessageOption']);
    const vital = m.headers.find((h) => h.localName === 'VitalMessageOption')!;
    assert.equal(vital.prefix, 'MyFeatures');
    assert.equal(vital.namespace, 'mid:MessageFeatures@id.foo.com');
    assert.equal(vital.value, 'Confirmation-requested');
    assert.equal(m.contentType, 'text/xml; charset=utf-8');
    assert.equal(m.mediaType, 'text/xml');
    assert.deepEqual(m.contentHeaders[1], ['Content-ID', '<1234567890@foo.com>']);
    assert.equal(body.subarray(m.contentStart).toString(), '<body>\r\nHere is the text of my message.\r\n</body>');
    assert.equal(body.subarray(m.headerEnd, m.headerEnd + 2).toString(), CRLF);
  });

  it('reads the parameters between the colon and the value (Subject:;lang=fr)', () => {
    const m = scan(lines('From: <sip:a@example.com>', 'To: <sip:room@example.com>', 'Subject:;lang=fr Bonjour', '', 'Content-Type: text/plain', '', 'x'));
    const s = m.headers.find((h) => h.name === 'Subject')!;
    assert.deepEqual(s.params, ['lang=fr']);
    assert.equal(s.value, 'Bonjour');
  });

  it('header names are case-sensitive: "from:" is not From, so a message with only "from:" has no From (C-6, C-18)', () => {
    const body = lines('from: <sip:a@example.com>', 'To: <sip:room@example.com>', '', 'Content-Type: text/plain', '', 'hi');
    assert.equal(problem(body), 'from');
    const ok = scan(lines('From: <sip:a@example.com>', 'from: <sip:mallory@example.com>', 'To: <sip:room@example.com>', '', '', 'hi'));
    assert.equal(ok.from.uri, 'sip:a@example.com');
    assert.equal(ok.headers[1]!.name, 'from');
    assert.equal(ok.headers[1]!.namespace, CPIM_NAMESPACE);
  });

  it('"cc" is the CPIM header; "CC" is an unknown one', () => {
    const m = scan(lines('From: <sip:a@example.com>', 'To: <sip:room@example.com>', 'cc: <sip:c@example.com>', 'cc: <sip:d@example.com>', 'CC: <sip:e@example.com>', '', '', ''));
    assert.deepEqual(m.cc.map((a) => a.uri), ['sip:c@example.com', 'sip:d@example.com']);
  });

  it('several To headers are read in order (the focus answers 403 to them, C-5)', () => {
    const m = scan(lines('From: <sip:a@example.com>', 'To: <sip:b@example.com>', 'To: "Carol" <sip:c@example.com>', '', 'Content-Type: text/plain', '', 'hi'));
    assert.deepEqual(m.to.map((a) => a.displayName), ['', 'Carol']);
  });

  it('C-18: From, DateTime, Subject and Require occur once; NS, To and cc may repeat', () => {
    for (const twice of ['From: <sip:a@example.com>', 'DateTime: 2024-01-01T00:00:00Z', 'Subject: s', 'Require: X.y']) {
      const body = lines('From: <sip:a@example.com>', 'To: <sip:room@example.com>', 'DateTime: 2024-01-01T00:00:00Z', 'Subject: s', 'Require: X.y', twice, '', '', 'x');
      assert.equal(problem(body), 'malformed', twice);
    }
    const m = scan(lines('From: <sip:a@example.com>', 'NS: A <urn:a>', 'NS: B <urn:b>', 'To: <sip:room@example.com>', 'To: <sip:b@example.com>', '', '', 'x'));
    assert.equal(m.namespaces.size, 2);
  });

  it('C-18: a message without From or without To is refused (From: 403 as C-4 says of an invalid From; To: 400)', () => {
    assert.equal(problem(lines('To: <sip:room@example.com>', '', '', 'x')), 'from');
    assert.equal(problem(lines('From: <sip:a@example.com>', '', '', 'x')), 'malformed');
    assert.equal(problem(lines('From: not a uri at all', 'To: <sip:room@example.com>', '', '', 'x')), 'from');
  });

  it('decodes the escapes \\", \\\\ and \\uXXXX in values; the raw value is kept as written (C-18)', () => {
    assert.equal(decodeEscapes('say \\"hi\\" \\\\ \\u00e9\\u263A \\x'), 'say "hi" \\ é☺ \\x');
    const m = scan(lines('From: "Zo\\u00eb \\"Z\\"" <sip:zoe@example.com>', 'To: <sip:room@example.com>', 'Subject: caf\\u00e9', '', '', 'x'));
    assert.equal(m.from.displayName, 'Zoë "Z"');
    assert.equal(m.subject, 'café');
    assert.equal(m.headers[2]!.raw, 'caf\\u00e9');
    // A surrogate pair is two escapes.
    assert.equal(decodeEscapes('\\ud83d\\ude00'), '😀');
  });

  it('UTF-8 display names and subjects are read as UTF-8; invalid UTF-8 and control characters are refused', () => {
    const m = scan(lines('From: Zoë <sip:zoe@example.com>', 'To: <sip:room@example.com>', 'Subject: 日本語', '', '', 'x'));
    assert.equal(m.from.displayName, 'Zoë');
    assert.equal(m.subject, '日本語');
    const bad = Buffer.concat([Buffer.from('From: '), Buffer.from([0xc3, 0x28]), Buffer.from(' <sip:a@example.com>\r\nTo: <sip:r@example.com>\r\n\r\n\r\n')]);
    assert.equal(problem(bad), 'malformed');
    assert.equal(problem(lines('From: <sip:a@example.com>', 'To: <sip:r@example.com>', 'Subject: a\x00b', '', '', '')), 'malformed');
  });

  it('no folding: a header line that starts with a blank is refused', () => {
    assert.equal(problem(lines('From: <sip:a@example.com>', 'To: <sip:room@example.com>', 'Subject: one', '  two', '', '', 'x')), 'malformed');
  });

  it('a header needs a space after the colon (or no value); names with a second dot are refused', () => {
    assert.equal(problem(lines('From:<sip:a@example.com>', 'To: <sip:room@example.com>', '', '', 'x')), 'malformed');
    assert.equal(problem(lines('From: <sip:a@example.com>', 'To: <sip:room@example.com>', 'A.B.C: x', '', '', 'x')), 'malformed');
    const m = scan(lines('From: <sip:a@example.com>', 'To: <sip:room@example.com>', 'Subject:', '', '', 'x'));
    assert.equal(m.subject, '');
  });

  it('a prefix that no NS declares has no namespace; unprefixed names stay in the CPIM namespace', () => {
    const m = scan(lines('From: <sip:a@example.com>', 'To: <sip:room@example.com>', 'Who.Knows: x', '', '', ''));
    assert.equal(m.headers[2]!.namespace, undefined);
    // An NS without a prefix cannot take From away from the CPIM namespace (C-4 checks that From).
    const d = scan(lines('NS: <urn:other>', 'From: <sip:a@example.com>', 'To: <sip:room@example.com>', '', '', ''));
    assert.equal(d.headers[1]!.namespace, CPIM_NAMESPACE);
    assert.equal(d.from.uri, 'sip:a@example.com');
    assert.equal(problem(lines('From: <sip:a@example.com>', 'To: <sip:room@example.com>', 'NS: bad value', '', '', '')), 'malformed');
  });
});

describe('the encapsulated MIME object', () => {
  it('Content-Type defaults to text/plain; MIME header names are case-insensitive and may be folded', () => {
    const m = scan(lines('From: <sip:a@example.com>', 'To: <sip:room@example.com>', '', '', 'hello'));
    assert.equal(m.mediaType, 'text/plain');
    const f = scan(lines('From: <sip:a@example.com>', 'To: <sip:room@example.com>', '', 'CONTENT-TYPE: Application/IM-IsComposing+XML;', ' charset=utf-8', '', '<x/>'));
    assert.equal(f.mediaType, 'application/im-iscomposing+xml');
    assert.equal(f.contentType, 'Application/IM-IsComposing+XML; charset=utf-8');
  });

  it('a malformed content header or Content-Type is refused', () => {
    assert.equal(problem(lines('From: <sip:a@example.com>', 'To: <sip:room@example.com>', '', 'no colon here', '', 'x')), 'malformed');
    assert.equal(problem(lines('From: <sip:a@example.com>', 'To: <sip:room@example.com>', '', 'Content-Type: text', '', 'x')), 'malformed');
  });

  it('content bytes are opaque: binary content after the headers is not looked at', () => {
    const head = lines('From: <sip:a@example.com>', 'To: <sip:room@example.com>', '', 'Content-Type: image/png', '', '');
    const body = Buffer.concat([head, Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0xff])]);
    const m = scan(body);
    assert.equal(m.contentStart, head.length);
    assert.equal(m.mediaType, 'image/png');
  });
});

describe('scanning a body that arrives in pieces (C-8: forward once the CPIM headers are in)', () => {
  const whole = lines('From: <sip:a@example.com>', 'To: <sip:room@example.com>', '', 'Content-Type: text/plain', '', 'hello world');

  it('is INCOMPLETE until both header blocks have arrived, then reads the same message at every later cut', () => {
    const cut = whole.indexOf('hello');
    for (let n = 0; n < cut; n++) assert.equal(scanCpim(whole.subarray(0, n), false), INCOMPLETE, `cut at ${n}`);
    for (let n = cut; n <= whole.length; n++) assert.equal(scan(whole.subarray(0, n), false).contentStart, cut);
  });

  it('headers that do not end within the limit are refused, arrived in full or not', () => {
    const long = lines('From: <sip:a@example.com>', 'To: <sip:room@example.com>', `Subject: ${'x'.repeat(20000)}`, '', '', '');
    assert.equal(problem(long.subarray(0, 17000), false), 'malformed');
    assert.throws(() => scanCpim(whole.subarray(0, 20), true), CpimError);
  });

  it('a bare LF ends lines as CRLF does, and the terminator used is reported for insertion', () => {
    const lf = Buffer.from('From: <sip:a@example.com>\nTo: <sip:room@example.com>\n\nContent-Type: text/plain\n\nhi');
    const m = scan(lf);
    assert.equal(m.lineEnding, '\n');
    assert.equal(lf.subarray(m.contentStart).toString(), 'hi');
    assert.equal(scan(whole).lineEnding, '\r\n');
  });
});

describe('addresses and DateTime', () => {
  it('parses quoted and unquoted formal names and bare URIs', () => {
    assert.deepEqual(parseAddress('"Alice Liddell" <sip:alice@example.com>'), { displayName: 'Alice Liddell', uri: 'sip:alice@example.com' });
    assert.deepEqual(parseAddress('Alice <im:alice@example.com>'), { displayName: 'Alice', uri: 'im:alice@example.com' });
    assert.deepEqual(parseAddress('<sip:alice@example.com;transport=tls>'), { displayName: '', uri: 'sip:alice@example.com;transport=tls' });
    assert.deepEqual(parseAddress('sip:alice@example.com'), { displayName: '', uri: 'sip:alice@example.com' });
    assert.throws(() => parseAddress('Alice <alice>'));
    assert.throws(() => parseAddress('<sip:alice@example.com'));
  });

  it('DateTime is RFC 3339: fractions and offsets are read; other forms give no date', () => {
    assert.equal(parseDateTime('2024-02-29T23:59:59.123456+01:00')?.toISOString(), '2024-02-29T22:59:59.123Z');
    assert.equal(parseDateTime('2024-01-01t00:00:00z')?.toISOString(), '2024-01-01T00:00:00.000Z');
    for (const bad of ['2024-01-01 00:00:00Z', '2024-13-01T00:00:00Z', '2024-01-01T00:00:00', 'yesterday']) assert.equal(parseDateTime(bad), undefined, bad);
  });
});

describe('what the focus adds: lines of its own namespace, nothing else changed (C-6)', () => {
  const ns = { prefix: 'Chat', uri: 'urn:example:chat-focus' };
  const body = lines(
    'From: Alice <sip:alice@example.com>',
    'To: <sip:room@example.com>',
    'DateTime: 2024-05-01T10:00:00+02:00',
    'NS: MyFeatures <mid:MessageFeatures@id.foo.com>',
    'MyFeatures.VitalMessageOption: Confirmation-requested',
    '',
    'Content-Type: text/plain;charset=UTF-8',
    '',
    'Hello, room',
  );

  it('inserts after the last CPIM header: every original byte stays, in order, and the result scans', () => {
    const m = scan(body);
    const added = focusHeaderLines(focusPrefix(m, ns), ns.uri, [['Timestamp', '2024-05-01T08:00:01.000Z'], ['Nickname', quoteCpimString('al "the" ice')]], m.lineEnding);
    const out = insertHeaderLines(body, m, added);
    assert.equal(out.length, body.length + Buffer.byteLength(added));
    assert.deepEqual(out.subarray(0, m.headerEnd), body.subarray(0, m.headerEnd));
    assert.deepEqual(out.subarray(m.headerEnd + Buffer.byteLength(added)), body.subarray(m.headerEnd));
    const again = scan(out);
    assert.equal(again.from.uri, 'sip:alice@example.com');
    assert.equal(again.dateTime, '2024-05-01T10:00:00+02:00');
    const nick = again.headers.find((h) => h.localName === 'Nickname')!;
    assert.equal(nick.namespace, ns.uri);
    assert.equal(nick.value, '"al "the" ice"');
    assert.equal(headersInNamespace(again, ns.uri).length, 3);
    assert.equal(headersInNamespace(m, ns.uri).length, 0);
  });

  it('picks another prefix when the sender uses the configured one for another namespace', () => {
    const taken = scan(lines('From: <sip:a@example.com>', 'To: <sip:room@example.com>', 'NS: Chat <urn:someone-else>', '', '', 'x'));
    assert.equal(focusPrefix(taken, ns), 'Chat2');
    assert.equal(focusPrefix(scan(body), ns), 'Chat');
  });

  it('a sender writing the focus namespace is found (the focus refuses it: its headers would pass for the focus\'s)', () => {
    const forged = scan(lines('From: <sip:a@example.com>', 'To: <sip:room@example.com>', 'NS: X <urn:example:chat-focus>', 'X.History: yes', '', '', 'x'));
    assert.equal(headersInNamespace(forged, ns.uri).length, 2);
  });

  it('buildCpim writes a CPIM message of the focus that scans back', () => {
    const b = buildCpim({
      from: { displayName: 'Room "One"', uri: 'sip:room@example.com' },
      to: [{ displayName: '', uri: 'sip:alice@example.com' }],
      dateTime: new Date('2024-05-01T08:00:00Z'),
      extra: [focusHeaderLines('Chat', ns.uri, [['Type', 'status']]).trimEnd()],
      contentType: 'text/plain; charset=utf-8',
      content: 'Welcome',
    });
    const m = scan(b);
    assert.equal(m.from.displayName, 'Room "One"');
    assert.equal(m.dateTime, '2024-05-01T08:00:00.000Z');
    assert.equal(m.headers.find((h) => h.localName === 'Type')?.value, 'status');
    assert.equal(b.subarray(m.contentStart).toString(), 'Welcome');
  });
});

describe('CPIM scanning, by property (fixed seed)', () => {
  const SEED = 3862;
  const headerValue = fc.string({ unit: fc.constantFrom('a', 'Z', ' ', 'é', '日', '"', '\\', '<', '>', '@', ':', ';', '.'), maxLength: 30 });

  it('a valid message read whole is read the same from every prefix on, and INCOMPLETE before', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.constantFrom('Subject', 'X.Y', 'MyNS.Thing', 'Require'), headerValue), { maxLength: 4 }),
        fc.uint8Array({ maxLength: 200 }),
        fc.boolean(),
        (extra, content, lf) => {
          const eol = lf ? '\n' : '\r\n';
          const seen = new Set<string>();
          const extraLines = extra.filter(([n]) => (n === 'X.Y' || n === 'MyNS.Thing' ? true : !seen.has(n) && (seen.add(n), true))).map(([n, v]) => `${n}: ${v}`);
          const head = ['From: "A" <sip:a@example.com>', 'NS: MyNS <urn:x>', 'To: <sip:room@example.com>', ...extraLines].join(eol);
          const body = Buffer.concat([Buffer.from(`${head}${eol}${eol}Content-Type: text/plain${eol}${eol}`), Buffer.from(content)]);
          const whole = scan(body);
          for (let n = 0; n < body.length; n++) {
            const r = scanCpim(body.subarray(0, n), false);
            if (n < whole.contentStart) assert.equal(r, INCOMPLETE, `cut ${n}`);
            else assert.deepEqual((r as CpimMessage).headers, whole.headers);
          }
          assert.deepEqual(body.subarray(whole.contentStart), Buffer.from(content));
        },
      ),
      { seed: SEED, numRuns: 150 },
    );
  });

  it('any bytes at all: the scanner answers a message, INCOMPLETE, or a CpimError, never another error', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 400, size: 'max' }), fc.boolean(), (bytes, complete) => {
        try {
          scanCpim(Buffer.from(bytes), complete);
        } catch (e) {
          assert.ok(e instanceof CpimError, String(e));
        }
      }),
      { seed: SEED, numRuns: 2000 },
    );
  });
});
