import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { createHmac } from 'node:crypto';
import {
  computeDigestResponse,
  computeHa1,
  computeRspauth,
  DigestParseError,
  formatAuthenticationInfo,
  formatAuthorization,
  formatChallenge,
  md5Hex,
  newOpaque,
  HmacSha256,
  NonceManager,
  parseAuthenticationInfo,
  parseAuthHeader,
  parseAuthorization,
  parseChallenge,
  timingSafeHexEqual,
  verifyDigest,
} from '../../core/protocol/digest.ts';
import type { DigestCredentials, DigestParseReason, NonceState } from '../../core/protocol/digest.ts';

// RFC.md §1.9 test vector.
const V = {
  username: 'alice',
  realm: 'relay.example.com',
  password: 'wonderland',
  nonce: 'dcd98b7102dd2f0e8b11d0f600bfb0c093',
  cnonce: '0a4f113b',
  nc: '00000001',
  uri: 'msrps://relay.example.com:2855;tcp',
  ha1: '5a87026b4215991e6de7793bc98f7bf2',
  ha2: '411143037b458496a13294d764ae3c9c',
  response: '1efbea411a4e0d69283ea3ca9c383e2c',
  rspauth: 'cadd510fbf830be587e51fe7e4851117',
} as const;

// RFC 4976 §5.1, the second AUTH (its line breaks are presentation only).
const RFC4976_AUTHORIZATION =
  'Digest username="Alice", realm="intra.example.com", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", ' +
  'qop=auth, nc=00000001, cnonce="0a4f113b", response="6629fae49393a05397450978507c4ef1"';

// RFC.md I-2: python-msrplib quotes every value, sends no uri=, nc always 1.
const MSRPLIB_AUTHORIZATION =
  'Digest username="alice", realm="example.com", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", qop="auth", ' +
  'nc="00000001", cnonce="7a9f2c1d0e4b5a6c8d9e0f1a2b3c4d5e", response="1EFBEA411A4E0D69283EA3CA9C383E2C", ' +
  'opaque="5ccc069c403ebaf9f0171e9517f40e41"';

function parseError(fn: () => unknown, reason: DigestParseReason): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof DigestParseError, `expected DigestParseError, got ${String(e)}`);
    assert.equal(e.reason, reason);
    return true;
  });
}

/** A clock the tests move by hand. */
function manualClock(start = 1_700_000_000_000): { now: () => number; advance: (ms: number) => void } {
  let t = start;
  return { now: () => t, advance: (ms) => (t += ms) };
}

/** Builds a client's Authorization for a nonce, as a conforming client would. */
function clientAuthorization(o: {
  nonce: string;
  nc?: string;
  password?: string;
  uri?: string;
  opaque?: string;
  realm?: string;
  cnonce?: string;
}): string {
  const realm = o.realm ?? V.realm;
  const nc = o.nc ?? '00000001';
  const cnonce = o.cnonce ?? 'c0ffee01';
  const ha1 = computeHa1(V.username, realm, o.password ?? V.password);
  const response = computeDigestResponse({ ha1, nonce: o.nonce, nc, cnonce, qop: 'auth', method: 'AUTH', uri: o.uri ?? V.uri });
  const header: Parameters<typeof formatAuthorization>[0] = { username: V.username, realm, nonce: o.nonce, response, cnonce, nc };
  if (o.opaque !== undefined) header.opaque = o.opaque;
  if (o.uri !== undefined) header.uri = o.uri;
  return formatAuthorization(header);
}

describe('digest hashes (RFC.md §1.9)', () => {
  it('md5Hex is lower-case hex of UTF-8', () => {
    assert.equal(md5Hex(''), 'd41d8cd98f00b204e9800998ecf8427e');
    assert.equal(md5Hex('é'), '66ddcd97cfdeabb2f6fb8a999b4bc76f'); // MD5 of the bytes C3 A9
    assert.match(md5Hex('abc'), /^[0-9a-f]{32}$/);
  });

  it('reproduces the §1.9 test vector exactly', () => {
    const ha1 = computeHa1(V.username, V.realm, V.password);
    assert.equal(ha1, V.ha1);
    assert.equal(md5Hex(`AUTH:${V.uri}`), V.ha2);
    assert.equal(
      computeDigestResponse({ ha1, nonce: V.nonce, nc: V.nc, cnonce: V.cnonce, qop: 'auth', method: 'AUTH', uri: V.uri }),
      V.response,
    );
    assert.equal(computeRspauth({ ha1, nonce: V.nonce, nc: V.nc, cnonce: V.cnonce, qop: 'auth', uri: V.uri }), V.rspauth);
  });

  it('HA2 uses the method for the response and none for rspauth', () => {
    const base = { ha1: V.ha1, nonce: V.nonce, nc: V.nc, cnonce: V.cnonce, qop: 'auth' as const, uri: V.uri };
    assert.notEqual(computeDigestResponse({ ...base, method: 'SEND' }), V.response);
    assert.equal(computeDigestResponse({ ...base, method: '' }), V.rspauth);
  });

  it('timingSafeHexEqual compares equal-length hex, ignoring case', () => {
    assert.equal(timingSafeHexEqual(V.response, V.response), true);
    assert.equal(timingSafeHexEqual(V.response, V.response.toUpperCase()), true);
    assert.equal(timingSafeHexEqual(V.response, V.rspauth), false);
    assert.equal(timingSafeHexEqual(V.response, V.response.slice(1)), false);
    assert.equal(timingSafeHexEqual('', ''), true);
  });
});

describe('parseAuthHeader', () => {
  it('lower-cases names, unquotes and unescapes values', () => {
    const h = parseAuthHeader('Digest A="x", b=y, C="q\\"uoted", d="back\\\\slash", e="", f="a, b=c"');
    assert.equal(h.scheme, 'Digest');
    assert.deepEqual(
      [...h.params],
      [
        ['a', 'x'],
        ['b', 'y'],
        ['c', 'q"uoted'],
        ['d', 'back\\slash'],
        ['e', ''],
        ['f', 'a, b=c'],
      ],
    );
  });

  it('tolerates whitespace, folded lines and empty list elements', () => {
    const h = parseAuthHeader('  Digest \t a = "x" ,b=y,\r\n   c="z" ,, ');
    assert.deepEqual([...h.params], [
      ['a', 'x'],
      ['b', 'y'],
      ['c', 'z'],
    ]);
    assert.equal(parseAuthHeader('Digest').params.size, 0);
  });

  it('rejects syntax errors with a reason', () => {
    parseError(() => parseAuthHeader('Digest a="x'), 'unterminated-quote');
    parseError(() => parseAuthHeader('Digest a="x\\'), 'unterminated-quote');
    parseError(() => parseAuthHeader('Digest a "x"'), 'missing-equals');
    parseError(() => parseAuthHeader('Digest a'), 'missing-equals');
    parseError(() => parseAuthHeader('Digest ="x"'), 'empty-name');
    parseError(() => parseAuthHeader('Digest a="x", ="y"'), 'empty-name');
    parseError(() => parseAuthHeader('Digest a="x", A="y"'), 'duplicate-param');
    parseError(() => parseAuthHeader('Digest a=, b=1'), 'empty-value');
    parseError(() => parseAuthHeader('Digest a=x"y"'), 'bad-value');
    parseError(() => parseAuthHeader('Digest a="x" b="y"'), 'missing-comma');
    parseError(() => parseAuthHeader('Digest a@b="x"'), 'bad-name');
    parseError(() => parseAuthHeader(''), 'no-scheme');
    parseError(() => parseAuthHeader('username="x"'), 'no-scheme');
  });
});

describe('parseAuthorization', () => {
  it('accepts the RFC 4976 §5.1 header as written', () => {
    const c = parseAuthorization(RFC4976_AUTHORIZATION);
    const expected: DigestCredentials = {
      username: 'Alice',
      realm: 'intra.example.com',
      nonce: 'dcd98b7102dd2f0e8b11d0f600bfb0c093',
      response: '6629fae49393a05397450978507c4ef1',
      cnonce: '0a4f113b',
      nc: '00000001',
      qop: 'auth',
      uri: undefined,
      opaque: undefined,
      algorithm: undefined,
    };
    assert.deepEqual(c, expected);
    // The same header folded over lines as the RFC prints it.
    const folded =
      'Digest username="Alice",\r\n   realm="intra.example.com",\r\n   nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093",\r\n' +
      '   qop=auth, nc=00000001, cnonce="0a4f113b",\r\n   response="6629fae49393a05397450978507c4ef1"';
    assert.deepEqual(parseAuthorization(folded), expected);
  });

  it('accepts python-msrplib credentials (I-2: quoted qop and nc, no uri) and normalises case', () => {
    const c = parseAuthorization(MSRPLIB_AUTHORIZATION);
    assert.equal(c.qop, 'auth');
    assert.equal(c.nc, '00000001');
    assert.equal(c.uri, undefined);
    assert.equal(c.opaque, '5ccc069c403ebaf9f0171e9517f40e41');
    assert.equal(c.response, '1efbea411a4e0d69283ea3ca9c383e2c');
    assert.equal(parseAuthorization('digest username=u, realm=r, nonce=n, response=ABCDEF0123456789ABCDEF0123456789, cnonce=c, nc=0000000A, qop=AUTH').nc, '0000000a');
  });

  it('keeps uri, opaque and algorithm; accepts algorithm MD5 in any case', () => {
    const c = parseAuthorization(`${RFC4976_AUTHORIZATION}, uri="msrps://r.example.com:2855;tcp", opaque="o", algorithm=md5`);
    assert.equal(c.uri, 'msrps://r.example.com:2855;tcp');
    assert.equal(c.opaque, 'o');
    assert.equal(c.algorithm, 'md5');
  });

  it('rejects Basic with reason "basic" (R-34) and other schemes with "not-digest"', () => {
    parseError(() => parseAuthorization('Basic YWxpY2U6d29uZGVybGFuZA=='), 'basic');
    parseError(() => parseAuthorization('basic YWxpY2U6d29uZGVybGFuZA=='), 'basic');
    parseError(() => parseAuthorization('Bearer abc'), 'not-digest');
    parseError(() => parseAuthorization(''), 'no-scheme');
  });

  it('reports each missing required parameter (R-35)', () => {
    const all: Array<[string, string]> = [
      ['username', '"Alice"'],
      ['realm', '"intra.example.com"'],
      ['nonce', '"dcd98b7102dd2f0e8b11d0f600bfb0c093"'],
      ['response', '"6629fae49393a05397450978507c4ef1"'],
      ['cnonce', '"0a4f113b"'],
      ['nc', '00000001'],
      ['qop', 'auth'],
    ];
    for (const [missing] of all) {
      const header = 'Digest ' + all.filter(([n]) => n !== missing).map(([n, v]) => `${n}=${v}`).join(', ');
      parseError(() => parseAuthorization(header), `missing-${missing}` as DigestParseReason);
    }
  });

  it('rejects malformed qop, nc, response and algorithm', () => {
    const replace = (name: string, value: string): string =>
      RFC4976_AUTHORIZATION.replace(new RegExp(`${name}=("[^"]*"|[^,]*)`), `${name}=${value}`);
    parseError(() => parseAuthorization(replace('qop', 'auth-int')), 'bad-qop');
    parseError(() => parseAuthorization(replace('qop', '"auth,auth-int"')), 'bad-qop');
    parseError(() => parseAuthorization(replace('nc', '0000001')), 'bad-nc');
    parseError(() => parseAuthorization(replace('nc', '000000001')), 'bad-nc');
    parseError(() => parseAuthorization(replace('nc', '0000000g')), 'bad-nc');
    parseError(() => parseAuthorization(replace('response', '"6629fae49393a05397450978507c4ef"')), 'bad-response');
    parseError(() => parseAuthorization(replace('response', '"6629fae49393a05397450978507c4efz"')), 'bad-response');
    parseError(() => parseAuthorization(replace('response', '""')), 'bad-response');
    parseError(() => parseAuthorization(`${RFC4976_AUTHORIZATION}, algorithm=MD5-sess`), 'bad-algorithm');
    parseError(() => parseAuthorization(`${RFC4976_AUTHORIZATION}, algorithm=SHA-256`), 'bad-algorithm');
    parseError(() => parseAuthorization(`${RFC4976_AUTHORIZATION}, nc=00000002`), 'duplicate-param');
    parseError(() => parseAuthorization(`${RFC4976_AUTHORIZATION}, opaque="x`), 'unterminated-quote');
  });
});

describe('challenge and Authentication-Info formatting', () => {
  it('formats WWW-Authenticate literally (R-33, I-1)', () => {
    assert.equal(
      formatChallenge({ realm: 'r.example.com', nonce: 'n1', opaque: 'o1' }),
      'Digest realm="r.example.com", nonce="n1", opaque="o1", qop="auth"',
    );
    assert.equal(
      formatChallenge({ realm: 'r', nonce: 'n', opaque: 'o', stale: true }),
      'Digest realm="r", nonce="n", opaque="o", qop="auth", stale=TRUE',
    );
    assert.equal(
      formatChallenge({ realm: 'r', nonce: 'n', opaque: 'o', stale: false, algorithm: 'MD5' }),
      'Digest realm="r", nonce="n", opaque="o", qop="auth", algorithm=MD5',
    );
    assert.equal(
      formatChallenge({ realm: 'r', nonce: 'n', opaque: 'o', stale: true, algorithm: 'MD5' }),
      'Digest realm="r", nonce="n", opaque="o", qop="auth", stale=TRUE, algorithm=MD5',
    );
  });

  it('never offers domain, auth-int or MD5-sess; escapes quotes and backslashes', () => {
    const s = formatChallenge({ realm: 'a"b\\c', nonce: 'n', opaque: 'o', stale: true, algorithm: 'MD5' });
    assert.equal(s, 'Digest realm="a\\"b\\\\c", nonce="n", opaque="o", qop="auth", stale=TRUE, algorithm=MD5');
    assert.doesNotMatch(s, /domain|auth-int|MD5-sess/i);
    assert.equal(parseChallenge(s).realm, 'a"b\\c');
  });

  it('refuses an empty opaque (I-1) and header-breaking values', () => {
    assert.throws(() => formatChallenge({ realm: 'r', nonce: 'n', opaque: '' }));
    assert.throws(() => formatChallenge({ realm: '', nonce: 'n', opaque: 'o' }));
    assert.throws(() => formatChallenge({ realm: 'r\r\nX-Evil: 1', nonce: 'n', opaque: 'o' }));
  });

  it('parseChallenge round-trips formatChallenge', () => {
    const nonces = new NonceManager({ lifetimeMs: 15_000 });
    const c = { realm: 'relay.example.com', nonce: nonces.issue(), opaque: newOpaque() };
    assert.deepEqual(parseChallenge(formatChallenge(c)), { ...c, qop: ['auth'] });
    assert.deepEqual(parseChallenge(formatChallenge({ ...c, stale: true, algorithm: 'MD5' })), {
      ...c,
      qop: ['auth'],
      stale: true,
      algorithm: 'MD5',
    });
    const other = parseChallenge('Digest realm="x", nonce="y", qop="auth,auth-int", stale=false');
    assert.deepEqual(other, { realm: 'x', nonce: 'y', opaque: '', qop: ['auth', 'auth-int'], stale: false });
    parseError(() => parseChallenge('Basic realm="x"'), 'basic');
    parseError(() => parseChallenge('Digest nonce="y"'), 'missing-realm');
    parseError(() => parseChallenge('Digest realm="x"'), 'missing-nonce');
    parseError(() => parseChallenge('Digest realm="x", nonce="y", algorithm=SHA-256'), 'bad-algorithm');
  });

  it('parseChallenge round-trips arbitrary header-safe values', () => {
    const safe = fc.string({ minLength: 1 }).filter((s) => !/[\r\n\0]/.test(s));
    fc.assert(
      fc.property(safe, safe, safe, fc.boolean(), (realm, nonce, opaque, stale) => {
        const ch = stale ? { realm, nonce, opaque, stale } : { realm, nonce, opaque };
        assert.deepEqual(parseChallenge(formatChallenge(ch)), { ...ch, qop: ['auth'] });
      }),
    );
  });

  it('a challenge reads back through python-msrplib\'s own splitting (I-1)', () => {
    const c = { realm: 'example.com', nonce: new NonceManager({ lifetimeMs: 1000 }).issue(), opaque: newOpaque() };
    const value = formatChallenge(c);
    // msrplib: algo, params = encoded.split(" ", 1); dict(x.strip('"') for x in p.split("=", 1)) for p in params.split(", ")
    const [algo, params] = [value.slice(0, value.indexOf(' ')), value.slice(value.indexOf(' ') + 1)];
    assert.equal(algo, 'Digest');
    const dict = Object.fromEntries(
      params.split(', ').map((p) => {
        const eq = p.indexOf('=');
        return [p.slice(0, eq), p.slice(eq + 1).replace(/^"+|"+$/g, '')];
      }),
    );
    assert.deepEqual(dict, { realm: c.realm, nonce: c.nonce, opaque: c.opaque, qop: 'auth' });
  });

  it('formats Authorization in the RFC 4976 form and parses it back', () => {
    const value = formatAuthorization({
      username: 'Alice',
      realm: 'intra.example.com',
      nonce: 'dcd98b7102dd2f0e8b11d0f600bfb0c093',
      response: '6629fae49393a05397450978507c4ef1',
      cnonce: '0a4f113b',
      nc: '00000001',
    });
    assert.equal(value, RFC4976_AUTHORIZATION);
    const full = formatAuthorization({
      username: V.username,
      realm: V.realm,
      nonce: V.nonce,
      uri: V.uri,
      response: V.response,
      cnonce: V.cnonce,
      nc: V.nc,
      opaque: 'op',
      algorithm: 'MD5',
    });
    assert.equal(
      full,
      'Digest username="alice", realm="relay.example.com", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", ' +
        'uri="msrps://relay.example.com:2855;tcp", qop=auth, nc=00000001, cnonce="0a4f113b", ' +
        'response="1efbea411a4e0d69283ea3ca9c383e2c", opaque="op", algorithm=MD5',
    );
    assert.deepEqual(parseAuthorization(full), {
      username: V.username,
      realm: V.realm,
      nonce: V.nonce,
      response: V.response,
      cnonce: V.cnonce,
      nc: V.nc,
      qop: 'auth',
      uri: V.uri,
      opaque: 'op',
      algorithm: 'MD5',
    });
  });

  it('formats Authentication-Info literally (R-42)', () => {
    assert.equal(
      formatAuthenticationInfo({ rspauth: V.rspauth, cnonce: V.cnonce, nc: V.nc }),
      'qop=auth, rspauth="cadd510fbf830be587e51fe7e4851117", cnonce="0a4f113b", nc=00000001',
    );
    const withNext = formatAuthenticationInfo({ rspauth: V.rspauth, cnonce: V.cnonce, nc: V.nc, nextnonce: 'abc' });
    assert.equal(withNext, 'qop=auth, rspauth="cadd510fbf830be587e51fe7e4851117", cnonce="0a4f113b", nc=00000001, nextnonce="abc"');
    assert.deepEqual(parseAuthenticationInfo(withNext), {
      qop: 'auth',
      rspauth: V.rspauth,
      cnonce: V.cnonce,
      nc: V.nc,
      nextnonce: 'abc',
    });
    parseError(() => parseAuthenticationInfo('qop=auth, nc=00000001'), 'missing-rspauth');
  });

  it('newOpaque is 32 random hex digits', () => {
    const a = newOpaque();
    assert.match(a, /^[0-9a-f]{32}$/);
    assert.notEqual(a, newOpaque());
  });
});

describe('NonceManager (R-39, R-40)', () => {
  it('issues unique, header-safe nonces that carry >= 128 random bits', () => {
    const m = new NonceManager({ lifetimeMs: 15_000 });
    const seen = new Set<string>();
    for (let i = 0; i < 1000; i++) {
      const n = m.issue();
      assert.match(n, /^[A-Za-z0-9_-]+$/);
      assert.equal(n.length, 54);
      seen.add(n);
    }
    assert.equal(seen.size, 1000);
    assert.equal(m.size, 1000);
  });

  it('is valid up to the lifetime, then stale', () => {
    const clock = manualClock();
    const m = new NonceManager({ lifetimeMs: 15_000, now: clock.now });
    const n = m.issue();
    assert.equal(m.check(n), 'valid');
    clock.advance(15_000);
    assert.equal(m.check(n), 'valid');
    clock.advance(1);
    assert.equal(m.check(n), 'stale');
    // Still stale (authentic) once its state has been swept.
    clock.advance(60_000);
    m.sweep();
    assert.equal(m.size, 0);
    assert.equal(m.check(n), 'stale');
  });

  it('recognises forged and foreign nonces as unknown', () => {
    const m = new NonceManager({ lifetimeMs: 15_000 });
    const n = m.issue();
    for (let i = 0; i < n.length; i++) {
      const flipped = n.slice(0, i) + (n[i] === 'A' ? 'B' : 'A') + n.slice(i + 1);
      assert.equal(m.check(flipped), 'unknown', `flipped char ${i}`);
    }
    assert.equal(m.check(''), 'unknown');
    assert.equal(m.check(V.nonce), 'unknown');
    assert.equal(m.check(`${n}A`), 'unknown');
    assert.equal(m.check(new NonceManager({ lifetimeMs: 15_000 }).issue()), 'unknown');
    // Same secret, different manager: authentic but never tracked here.
    const secret = Buffer.alloc(32, 7);
    const a = new NonceManager({ lifetimeMs: 15_000, secret });
    const b = new NonceManager({ lifetimeMs: 15_000, secret });
    assert.equal(b.check(a.issue()), 'unknown');
    // A forged nonce with an old timestamp is unknown, not stale.
    const clock = manualClock();
    const c = new NonceManager({ lifetimeMs: 1000, now: clock.now });
    const old = c.issue();
    clock.advance(5000);
    assert.equal(c.check(old), 'stale');
    assert.equal(c.check(old.slice(0, 10) + (old[10] === 'x' ? 'y' : 'x') + old.slice(11)), 'unknown');
  });

  it('detects nc replay per nonce', () => {
    const m = new NonceManager({ lifetimeMs: 15_000 });
    const n1 = m.issue();
    const n2 = m.issue();
    assert.equal(m.useCount(n1, '00000001'), true);
    assert.equal(m.useCount(n1, '00000001'), false);
    assert.equal(m.useCount(n1, '00000002'), true);
    assert.equal(m.useCount(n1, '0000000A'), true);
    assert.equal(m.useCount(n1, '0000000a'), false);
    assert.equal(m.useCount(n2, '00000001'), true);
    assert.equal(m.useCount('not-issued', '00000001'), false);
  });

  it('bounds the nc values remembered per nonce', () => {
    const m = new NonceManager({ lifetimeMs: 15_000 });
    const n = m.issue();
    let accepted = 0;
    for (let i = 1; i <= 1000; i++) if (m.useCount(n, i.toString(16).padStart(8, '0'))) accepted++;
    assert.ok(accepted > 0 && accepted < 1000);
  });

  it('a consumed nonce can never be used again', () => {
    const m = new NonceManager({ lifetimeMs: 15_000 });
    const n = m.issue();
    assert.equal(m.useCount(n, '00000001'), true);
    m.consume(n);
    assert.equal(m.check(n), 'unknown');
    assert.equal(m.useCount(n, '00000002'), false);
    m.consume(n); // idempotent
    assert.equal(m.check(n), 'unknown');
  });

  it('stays bounded by maxTracked, evicting the oldest first', () => {
    const clock = manualClock();
    const m = new NonceManager({ lifetimeMs: 15_000, now: clock.now, maxTracked: 50 });
    const first = m.issue();
    let last = first;
    for (let i = 0; i < 10_000; i++) {
      clock.advance(1);
      last = m.issue();
      assert.ok(m.size <= 50);
    }
    assert.equal(m.size, 50);
    assert.equal(m.check(last), 'valid');
    // Evicted while still within its lifetime: never valid again.
    assert.equal(m.check(first), 'unknown');
    assert.equal(m.useCount(first, '00000001'), false);
  });

  it('sweeps state older than twice the lifetime as the clock advances', () => {
    const clock = manualClock();
    const m = new NonceManager({ lifetimeMs: 1000, now: clock.now });
    let max = 0;
    for (let i = 0; i < 10_000; i++) {
      clock.advance(10);
      m.issue();
      max = Math.max(max, m.size);
    }
    // At most 2 x lifetime / step (+1) entries survive.
    assert.ok(max <= 201, `size reached ${max}`);
    clock.advance(2001);
    assert.equal(m.check('x'), 'unknown'); // check() sweeps opportunistically
    assert.equal(m.size, 0);
  });

  it('tags each nonce with HMAC-SHA256 of its random part and issue time (R-39: stale needs no state)', () => {
    const secret = Buffer.from('an operator secret of any length, here longer than one 64-octet SHA-256 block');
    const clock = manualClock(1_800_000_000_123); // past 2^32 ms, as every real clock is
    const m = new NonceManager({ lifetimeMs: 15_000, now: clock.now, secret });
    const raw = Buffer.from(m.issue(), 'base64url');
    assert.equal(raw.length, 40);
    assert.equal(Number(raw.readBigUInt64BE(16)), 1_800_000_000_123);
    const body = raw.subarray(0, 24);
    assert.deepEqual(raw.subarray(24), createHmac('sha256', secret).update(body).digest().subarray(0, 16));
  });

  it("drops a nonce's state 2 x lifetime after issue, not sooner, even after others were consumed", () => {
    const clock = manualClock();
    const m = new NonceManager({ lifetimeMs: 1000, now: clock.now });
    const a = m.issue();
    clock.advance(500);
    const b = m.issue();
    clock.advance(100);
    const c = m.issue();
    m.consume(b);
    clock.advance(1400); // a is exactly 2 x lifetime old
    m.sweep();
    assert.equal(m.size, 2);
    clock.advance(1);
    m.sweep();
    assert.equal(m.size, 1);
    assert.equal(m.check(a), 'stale');
    clock.advance(598); // c is 2 x lifetime - 1 old
    assert.equal(m.check(c), 'stale');
    assert.equal(m.size, 1);
    clock.advance(2);
    m.sweep();
    assert.equal(m.size, 0);
    // A nonce issued into an empty manager is swept on the same schedule.
    m.issue();
    clock.advance(2000);
    m.sweep();
    assert.equal(m.size, 1);
    clock.advance(1);
    m.sweep();
    assert.equal(m.size, 0);
  });

  it('validates its options', () => {
    assert.throws(() => new NonceManager({ lifetimeMs: 0 }));
    assert.throws(() => new NonceManager({ lifetimeMs: 1000, maxTracked: 0 }));
  });
});

describe('HmacSha256', () => {
  it('equals crypto.createHmac for keys shorter than, equal to and longer than a block, and any message length', () => {
    for (const keyLength of [0, 16, 32, 64, 65, 200]) {
      const key = Buffer.alloc(keyLength, 0).map((_, i) => (i * 37 + keyLength) & 0xff);
      const h = new HmacSha256(Buffer.from(key));
      for (const len of [24, 0, 24, 1, 63, 64, 65, 1000, 24]) {
        const message = Buffer.alloc(len).map((_, i) => (i * 11 + len) & 0xff);
        assert.deepEqual(h.sign(Buffer.from(message)), createHmac('sha256', key).update(message).digest(), `key ${keyLength}, message ${len}`);
      }
    }
  });
});

describe('verifyDigest', () => {
  /** Accepts exactly the §1.9 vector's fixed nonce, once per nc, to run the vector end to end. */
  class FixedNonces extends NonceManager {
    private readonly seen = new Set<string>();
    consumed = false;
    override check(nonce: string): NonceState {
      return nonce === V.nonce && !this.consumed ? 'valid' : 'unknown';
    }
    override useCount(nonce: string, nc: string): boolean {
      if (this.seen.has(nc)) return false;
      this.seen.add(nc);
      return nonce === V.nonce;
    }
    override consume(): void {
      this.consumed = true;
    }
  }

  const vectorCredentials = (): DigestCredentials =>
    parseAuthorization(
      formatAuthorization({ username: V.username, realm: V.realm, nonce: V.nonce, response: V.response, cnonce: V.cnonce, nc: V.nc }),
    );

  it('accepts the §1.9 vector and returns its rspauth', () => {
    const nonces = new FixedNonces({ lifetimeMs: 15_000 });
    const verdict = verifyDigest({ credentials: vectorCredentials(), expectedRealm: V.realm, digestUri: V.uri, ha1: V.ha1, nonces });
    assert.deepEqual(verdict, { ok: true, rspauth: V.rspauth });
    assert.equal(nonces.consumed, true);
    // HA1 from a table in upper case works too.
    const again = verifyDigest({
      credentials: vectorCredentials(),
      expectedRealm: V.realm,
      digestUri: V.uri,
      ha1: V.ha1.toUpperCase(),
      nonces: new FixedNonces({ lifetimeMs: 15_000 }),
    });
    assert.deepEqual(again, { ok: true, rspauth: V.rspauth });
  });

  it('accepts a real nonce once, then never again (R-40)', () => {
    const nonces = new NonceManager({ lifetimeMs: 15_000 });
    const opaque = newOpaque();
    const nonce = nonces.issue();
    const credentials = parseAuthorization(clientAuthorization({ nonce, opaque }));
    const p = { credentials, expectedRealm: V.realm, expectedOpaque: opaque, digestUri: V.uri, ha1: V.ha1, nonces };
    const verdict = verifyDigest(p);
    assert.deepEqual(verdict, {
      ok: true,
      rspauth: computeRspauth({ ha1: V.ha1, nonce, nc: '00000001', cnonce: 'c0ffee01', qop: 'auth', uri: V.uri }),
    });
    assert.deepEqual(verifyDigest(p), { ok: false, reason: 'unknown-nonce' });
    const next = parseAuthorization(clientAuthorization({ nonce, opaque, nc: '00000002' }));
    assert.deepEqual(verifyDigest({ ...p, credentials: next }), { ok: false, reason: 'unknown-nonce' });
  });

  it('accepts a matching uri= and a custom method', () => {
    const nonces = new NonceManager({ lifetimeMs: 15_000 });
    const nonce = nonces.issue();
    const credentials = parseAuthorization(clientAuthorization({ nonce, uri: V.uri }));
    assert.equal(verifyDigest({ credentials, expectedRealm: V.realm, digestUri: V.uri, ha1: V.ha1, nonces }).ok, true);
    const n2 = nonces.issue();
    const ha1 = V.ha1;
    const response = computeDigestResponse({ ha1, nonce: n2, nc: '00000001', cnonce: 'x', qop: 'auth', method: 'SEND', uri: V.uri });
    const c2 = parseAuthorization(formatAuthorization({ username: 'alice', realm: V.realm, nonce: n2, response, cnonce: 'x', nc: '00000001' }));
    assert.deepEqual(verifyDigest({ credentials: c2, expectedRealm: V.realm, digestUri: V.uri, ha1, nonces }), { ok: false, reason: 'bad-response' });
    const n3 = nonces.issue();
    const r3 = computeDigestResponse({ ha1, nonce: n3, nc: '00000001', cnonce: 'x', qop: 'auth', method: 'SEND', uri: V.uri });
    const c3 = parseAuthorization(formatAuthorization({ username: 'alice', realm: V.realm, nonce: n3, response: r3, cnonce: 'x', nc: '00000001' }));
    assert.equal(verifyDigest({ credentials: c3, expectedRealm: V.realm, digestUri: V.uri, ha1, nonces, method: 'SEND' }).ok, true);
  });

  it('interoperates with a python-msrplib style client (I-1, I-2)', () => {
    const nonces = new NonceManager({ lifetimeMs: 15_000 });
    const opaque = newOpaque();
    const challenge = parseChallenge(formatChallenge({ realm: 'example.com', nonce: nonces.issue(), opaque }));
    const digestUri = 'msrps://example.com:2855;tcp';
    const cnonce = '00112233445566778899aabbccddeeff';
    const ha1 = computeHa1('alice', challenge.realm, 'secret');
    const response = computeDigestResponse({ ha1, nonce: challenge.nonce, nc: '00000001', cnonce, qop: 'auth', method: 'AUTH', uri: digestUri });
    const header =
      `Digest username="alice", realm="${challenge.realm}", nonce="${challenge.nonce}", qop="auth", nc="00000001", ` +
      `cnonce="${cnonce}", response="${response}", opaque="${challenge.opaque}"`;
    const verdict = verifyDigest({ credentials: parseAuthorization(header), expectedRealm: 'example.com', expectedOpaque: opaque, digestUri, ha1, nonces });
    assert.deepEqual(verdict, {
      ok: true,
      rspauth: computeRspauth({ ha1, nonce: challenge.nonce, nc: '00000001', cnonce, qop: 'auth', uri: digestUri }),
    });
  });

  it('fails with realm-mismatch before looking at the nonce', () => {
    const nonces = new NonceManager({ lifetimeMs: 15_000 });
    const credentials = parseAuthorization(clientAuthorization({ nonce: 'forged', realm: 'other.example.com' }));
    assert.deepEqual(verifyDigest({ credentials, expectedRealm: V.realm, digestUri: V.uri, ha1: V.ha1, nonces }), {
      ok: false,
      reason: 'realm-mismatch',
    });
  });

  it('fails with unknown-nonce for a nonce it did not issue', () => {
    const nonces = new NonceManager({ lifetimeMs: 15_000 });
    const credentials = parseAuthorization(clientAuthorization({ nonce: V.nonce }));
    assert.deepEqual(verifyDigest({ credentials, expectedRealm: V.realm, digestUri: V.uri, ha1: V.ha1, nonces }), {
      ok: false,
      reason: 'unknown-nonce',
    });
  });

  it('fails with stale for an expired nonce even when the response is right (R-39)', () => {
    const clock = manualClock();
    const nonces = new NonceManager({ lifetimeMs: 15_000, now: clock.now });
    const nonce = nonces.issue();
    const credentials = parseAuthorization(clientAuthorization({ nonce }));
    clock.advance(15_001);
    assert.deepEqual(verifyDigest({ credentials, expectedRealm: V.realm, digestUri: V.uri, ha1: V.ha1, nonces }), {
      ok: false,
      reason: 'stale',
    });
  });

  it('fails with uri-mismatch when uri= differs from the rightmost To-Path URI (R-36)', () => {
    const nonces = new NonceManager({ lifetimeMs: 15_000 });
    const nonce = nonces.issue();
    const other = 'msrps://relay.example.com:2856;tcp';
    const credentials = parseAuthorization(clientAuthorization({ nonce, uri: other }));
    assert.deepEqual(verifyDigest({ credentials, expectedRealm: V.realm, digestUri: V.uri, ha1: V.ha1, nonces }), {
      ok: false,
      reason: 'uri-mismatch',
    });
    // Byte for byte: a case difference is a mismatch too.
    const n2 = nonces.issue();
    const c2 = parseAuthorization(clientAuthorization({ nonce: n2, uri: V.uri.toUpperCase() }));
    assert.deepEqual(verifyDigest({ credentials: c2, expectedRealm: V.realm, digestUri: V.uri, ha1: V.ha1, nonces }), {
      ok: false,
      reason: 'uri-mismatch',
    });
  });

  it('fails with opaque-mismatch for a wrong or missing opaque', () => {
    const nonces = new NonceManager({ lifetimeMs: 15_000 });
    const wrong = parseAuthorization(clientAuthorization({ nonce: nonces.issue(), opaque: 'nope' }));
    const missing = parseAuthorization(clientAuthorization({ nonce: nonces.issue() }));
    for (const credentials of [wrong, missing]) {
      assert.deepEqual(
        verifyDigest({ credentials, expectedRealm: V.realm, expectedOpaque: 'abc', digestUri: V.uri, ha1: V.ha1, nonces }),
        { ok: false, reason: 'opaque-mismatch' },
      );
    }
  });

  it('fails with bad-response for a wrong password (R-37), then replay for the same nc (R-40)', () => {
    const nonces = new NonceManager({ lifetimeMs: 15_000 });
    const nonce = nonces.issue();
    const bad = parseAuthorization(clientAuthorization({ nonce, password: 'wrong' }));
    const p = { expectedRealm: V.realm, digestUri: V.uri, ha1: V.ha1, nonces };
    assert.deepEqual(verifyDigest({ ...p, credentials: bad }), { ok: false, reason: 'bad-response' });
    const good = parseAuthorization(clientAuthorization({ nonce }));
    assert.deepEqual(verifyDigest({ ...p, credentials: good }), { ok: false, reason: 'replay' });
    // A new nc on the same (still valid) nonce is accepted.
    const good2 = parseAuthorization(clientAuthorization({ nonce, nc: '00000002' }));
    assert.equal(verifyDigest({ ...p, credentials: good2 }).ok, true);
  });

  it('computes the response over digestUri, not over a uri= parameter', () => {
    const nonces = new NonceManager({ lifetimeMs: 15_000 });
    const nonce = nonces.issue();
    // Response computed over another URI: wrong even though no uri= is sent.
    const credentials = { ...parseAuthorization(clientAuthorization({ nonce, uri: 'msrp://elsewhere:1;tcp' })), uri: undefined };
    assert.deepEqual(
      verifyDigest({ credentials, expectedRealm: V.realm, digestUri: V.uri, ha1: V.ha1, nonces }),
      { ok: false, reason: 'bad-response' },
    );
  });
});
