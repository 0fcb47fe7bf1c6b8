import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  UriError,
  formatUri,
  hostEquals,
  isFqdn,
  isIpLiteral,
  parsePath,
  parseUri,
  sessionUri,
  tryParseUri,
  uriEquals,
} from '../../core/protocol/uri.ts';
import type { MsrpUri, MsrpUriParts } from '../../core/protocol/uri.ts';

function rejects(text: string, reason?: string | RegExp): void {
  assert.throws(
    () => parseUri(text),
    (e: unknown) => {
      assert.ok(e instanceof UriError, `expected UriError for ${JSON.stringify(text)}, got ${String(e)}`);
      assert.equal(e.input, text);
      if (typeof reason === 'string') assert.equal(e.reason, reason);
      else if (reason !== undefined) assert.match(e.reason, reason);
      return true;
    },
  );
  assert.equal(tryParseUri(text), undefined);
}

function eq(a: string, b: string): boolean {
  const r = uriEquals(parseUri(a), parseUri(b));
  assert.equal(uriEquals(parseUri(b), parseUri(a)), r, 'uriEquals must be symmetric');
  return r;
}

describe('parseUri: wire samples from the RFCs (§1.7)', () => {
  it('plain TCP: msrp://host.example.com:8493/asfd34;tcp', () => {
    const u = parseUri('msrp://host.example.com:8493/asfd34;tcp');
    assert.deepEqual({ ...u }, {
      scheme: 'msrp',
      user: undefined,
      host: 'host.example.com',
      hostType: 'name',
      port: 8493,
      sessionId: 'asfd34',
      transport: 'tcp',
      params: [],
      raw: 'msrp://host.example.com:8493/asfd34;tcp',
    });
  });

  it('TLS relay: msrps://relay.example.com:2855/jui787s2f;tcp', () => {
    const u = parseUri('msrps://relay.example.com:2855/jui787s2f;tcp');
    assert.equal(u.scheme, 'msrps');
    assert.equal(u.host, 'relay.example.com');
    assert.equal(u.port, 2855);
    assert.equal(u.sessionId, 'jui787s2f');
    assert.equal(u.transport, 'tcp');
  });

  it('WebSocket client: msrps://df7jal23ls0d.invalid:2855/98cjs;ws', () => {
    const u = parseUri('msrps://df7jal23ls0d.invalid:2855/98cjs;ws');
    assert.equal(u.host, 'df7jal23ls0d.invalid');
    assert.equal(u.sessionId, '98cjs');
    assert.equal(u.transport, 'ws');
  });

  it('AUTH To-Path with userinfo and no port: msrps://alice@intra.example.com;tcp (R-44)', () => {
    const u = parseUri('msrps://alice@intra.example.com;tcp');
    assert.equal(u.user, 'alice');
    assert.equal(u.host, 'intra.example.com');
    assert.equal(u.port, undefined);
    assert.equal(u.sessionId, undefined);
    assert.equal(u.transport, 'tcp');
  });

  it('AUTH To-Path to a bare SIP domain: msrps://example.com;tcp (R-44, I-3)', () => {
    const u = parseUri('msrps://example.com;tcp');
    assert.equal(u.host, 'example.com');
    assert.equal(u.port, undefined);
  });

  it('IPv6: msrp://[2001:db8::1]:2855/abc;tcp', () => {
    const u = parseUri('msrp://[2001:db8::1]:2855/abc;tcp');
    assert.equal(u.host, '2001:db8::1');
    assert.equal(u.hostType, 'ipv6');
    assert.equal(u.port, 2855);
    assert.equal(u.sessionId, 'abc');
  });

  it('IPv4: msrp://10.0.0.1:2855/s;tcp', () => {
    const u = parseUri('msrp://10.0.0.1:2855/s;tcp');
    assert.equal(u.host, '10.0.0.1');
    assert.equal(u.hostType, 'ipv4');
    assert.equal(u.port, 2855);
  });

  it('extra parameters in order: ;tcp;foo=bar;baz', () => {
    const u = parseUri('msrp://h.example.com:1/s;tcp;foo=bar;baz');
    assert.equal(u.transport, 'tcp');
    assert.deepEqual(u.params, [['foo', 'bar'], ['baz', undefined]]);
  });

  it('scheme and transport are lower-cased, everything else is kept as written', () => {
    const u = parseUri('MSRPS://Bob@Relay.Example.COM:2855/AbC+=/x;TCP;Foo=Bar');
    assert.equal(u.scheme, 'msrps');
    assert.equal(u.transport, 'tcp');
    assert.equal(u.user, 'Bob');
    assert.equal(u.host, 'Relay.Example.COM');
    assert.equal(u.sessionId, 'AbC+=/x');
    assert.deepEqual(u.params, [['Foo', 'Bar']]);
    assert.equal(parseUri('msrp://h:1;WS').transport, 'ws');
    assert.equal(parseUri('msrp://h:1;Sctp').transport, 'sctp');
  });

  it('session-ids may hold base64 characters (unreserved / "+" / "=" / "/")', () => {
    assert.equal(parseUri('msrp://h:1/aB9-._~+=/;tcp').sessionId, 'aB9-._~+=/');
    assert.equal(parseUri('msrp://h:1/x//y;tcp').sessionId, 'x//y');
  });

  it('userinfo may use unreserved, sub-delims and percent-encoding', () => {
    assert.equal(parseUri("msrp://a.b-c_d~%41!$&'()*+,;=@h:1;tcp").user, "a.b-c_d~%41!$&'()*+,;=");
  });

  it('token characters in parameters (RFC 4975 §9)', () => {
    const u = parseUri("msrp://h:1;tcp;a-.!%*_+`'~=b-.!%*_+`'~");
    assert.deepEqual(u.params, [["a-.!%*_+`'~", "b-.!%*_+`'~"]]);
  });

  it('ports at both ends of the range, and leading zeros within five digits', () => {
    assert.equal(parseUri('msrp://h:1;tcp').port, 1);
    assert.equal(parseUri('msrp://h:65535;tcp').port, 65535);
    assert.equal(parseUri('msrp://h:02855;tcp').port, 2855);
  });

  it('reg-names may be single labels, percent-encoded, or use "_" and "~"', () => {
    assert.equal(parseUri('msrp://localhost:1;tcp').host, 'localhost');
    assert.equal(parseUri('msrp://ex%41mple.com:1;tcp').host, 'ex%41mple.com');
    assert.equal(parseUri('msrp://_srv.x~y.com:1;tcp').hostType, 'name');
    assert.equal(parseUri('msrp://123:1;tcp').hostType, 'name');
  });

  it('IPv6 forms: compressed, full, loopback, embedded IPv4', () => {
    assert.equal(parseUri('msrp://[::1]:1;tcp').host, '::1');
    assert.equal(parseUri('msrp://[0:0:0:0:0:0:0:1]:1;tcp').host, '0:0:0:0:0:0:0:1');
    assert.equal(parseUri('msrp://[::ffff:192.0.2.1]:1;tcp').host, '::ffff:192.0.2.1');
    assert.equal(parseUri('msrp://u@[2001:DB8::A]:9/s;tcp').user, 'u');
  });

  it('params are frozen, and the empty params array shared by all URIs is too', () => {
    const u = parseUri('msrp://h:1/s;tcp;a=b');
    assert.ok(Object.isFrozen(u.params));
    assert.ok(Object.isFrozen(u.params[0]));
    assert.ok(Object.isFrozen(parseUri('msrp://h:1/s;tcp').params));
  });
});

describe('parseUri: rejections (§1.7)', () => {
  it('no transport parameter (RFC 4975 §6)', () => {
    rejects('msrp://host.example.com:8493/asfd34', 'missing transport parameter');
    rejects('msrp://host.example.com:8493', 'missing transport parameter');
    rejects('msrp://host.example.com:8493/s;', 'missing transport parameter');
  });

  it('bad transport token', () => {
    rejects('msrp://h:1;tcp=1', /transport/);
    rejects('msrp://h:1;t-cp', /transport/);
  });

  it('bad scheme', () => {
    rejects('sip://h:1;tcp', 'scheme must be "msrp" or "msrps"');
    rejects('msrpx://h:1;tcp', 'scheme must be "msrp" or "msrps"');
    rejects('msr://h:1;tcp', 'scheme must be "msrp" or "msrps"');
    rejects('msrpss://h:1;tcp', 'scheme must be "msrp" or "msrps"');
    rejects('msrp:h:1;tcp', 'missing "//" after the scheme');
    rejects('msrp:/h:1;tcp', 'missing "//" after the scheme');
    rejects('msrp', 'scheme must be "msrp" or "msrps"');
  });

  it('an IP address without a port (RFC 4975 §6)', () => {
    rejects('msrp://10.0.0.1/s;tcp', 'an IP address needs a port');
    rejects('msrp://10.0.0.1;tcp', 'an IP address needs a port');
    rejects('msrp://[2001:db8::1]/s;tcp', 'an IP address needs a port');
    rejects('msrps://[::1];tcp', 'an IP address needs a port');
  });

  it('port 0, 65536, too many digits, non-digits, empty', () => {
    rejects('msrp://h:0;tcp', 'port out of range (1..65535)');
    rejects('msrp://h:65536;tcp', 'port out of range (1..65535)');
    rejects('msrp://h:123456;tcp', 'port out of range (1..65535)');
    rejects('msrp://h:99999;tcp', 'port out of range (1..65535)');
    rejects('msrp://h:28a5;tcp', 'invalid port');
    rejects('msrp://h:-1;tcp', 'invalid port');
    rejects('msrp://h:+1;tcp', 'invalid port');
    rejects('msrp://h:;tcp', 'empty port');
    rejects('msrp://h:/s;tcp', 'empty port');
    rejects('msrp://h:1:2;tcp', 'invalid port');
  });

  it('empty host', () => {
    rejects('msrp://:2855/s;tcp', 'empty host');
    rejects('msrp:///s;tcp', 'empty host');
    rejects('msrp://;tcp', 'empty host');
    rejects('msrp://', 'empty host');
    rejects('msrp://alice@:1;tcp', 'empty host');
    rejects('msrp://[]:1;tcp', 'empty host');
  });

  it('spaces, controls and non-ASCII (URIs are US-ASCII only)', () => {
    rejects('msrp://h:1/s ;tcp', 'contains whitespace');
    rejects(' msrp://h:1/s;tcp', 'contains whitespace');
    rejects('msrp://h:1/s;tcp\t', 'contains whitespace');
    rejects('msrp://h:1/s;tcp\r\n', 'contains a control character');
    rejects('msrp://h:1/s\u0000;tcp', 'contains a control character');
    rejects('msrp://h:1/s\u007f;tcp', 'contains a control character');
    rejects('msrp://h\u00e9.example.com:1/s;tcp', 'contains a non-ASCII character');
    rejects('msrp://h:1/s\u2028;tcp', 'contains a non-ASCII character');
    rejects('msrp://h:1/\ud83d\ude00;tcp', 'contains a non-ASCII character');
  });

  it('empty input', () => {
    rejects('', 'empty URI');
  });

  it('userinfo with password information (RFC 4975 §6)', () => {
    rejects('msrp://a:b@host:1/s;tcp', 'userinfo must not contain a password');
    rejects('msrp://a:@host;tcp', 'userinfo must not contain a password');
  });

  it('bad userinfo', () => {
    rejects('msrp://@host:1;tcp', 'empty userinfo');
    rejects('msrp://a%4@host:1;tcp', 'bad percent-encoding in the userinfo');
    rejects('msrp://a"b@host:1;tcp', /invalid character/);
    rejects('msrp://a@b@host:1;tcp', /invalid character "@" in the host/);
  });

  it('empty session-id', () => {
    rejects('msrp://h:1/;tcp', 'empty session-id');
    rejects('msrp://h/;tcp', 'empty session-id');
  });

  it('bad session-id characters', () => {
    rejects('msrp://h:1/a%20b;tcp', /session-id/);
    rejects('msrp://h:1/a?b;tcp', /session-id/);
    rejects('msrp://h:1/a#b;tcp', /session-id/);
    rejects('msrp://h:1/a@b;tcp', /session-id/);
    rejects('msrp://h:1/a:b;tcp', /session-id/);
    rejects('msrp://h:1/a,b;tcp', /session-id/);
  });

  it('unclosed or malformed IPv6 literal', () => {
    rejects('msrp://[2001:db8::1:2855/s;tcp', 'unclosed "[" in the host');
    rejects('msrp://[2001:db8::1:2855', 'unclosed "[" in the host');
    rejects('msrp://[2001:db8::g]:1;tcp', 'invalid IPv6 address');
    rejects('msrp://[1::2::3]:1;tcp', 'invalid IPv6 address');
    rejects('msrp://[10.0.0.1]:1;tcp', 'invalid IPv6 address');
    rejects('msrp://[fe80::1%25eth0]:1;tcp', 'IPv6 zone identifiers are not allowed');
    rejects('msrp://[v1.fe]:1;tcp', 'IPvFuture addresses are not supported');
    rejects('msrp://[::1]x:1;tcp', /after "\]"/);
    rejects('msrp://2001:db8::1:2855;tcp', /port/);
    rejects('msrp://h]:1;tcp', /in the host/);
  });

  it('malformed IPv4 and bad host characters', () => {
    rejects('msrp://10.0.0.256:1;tcp', 'invalid IPv4 address');
    rejects('msrp://10.0.0:1;tcp', 'invalid IPv4 address');
    rejects('msrp://010.0.0.1:1;tcp', 'invalid IPv4 address');
    rejects('msrp://h!x:1;tcp', /invalid character "!" in the host/);
    rejects('msrp://h%zz:1;tcp', 'bad percent-encoding in the host');
    rejects('msrp://h%4:1;tcp', 'bad percent-encoding in the host');
    rejects('msrp://h%', 'bad percent-encoding in the host');
  });

  it('bad URI parameters', () => {
    rejects('msrp://h:1;tcp;', 'empty URI parameter');
    rejects('msrp://h:1;tcp;;a', 'empty URI parameter');
    rejects('msrp://h:1;tcp;=b', 'empty URI parameter');
    rejects('msrp://h:1;tcp;a=', 'empty URI parameter value');
    rejects('msrp://h:1;tcp;a=b=c', /URI parameter/);
    rejects('msrp://h:1;tcp;a/b', /URI parameter/);
    rejects('msrp://h:1;tcp;a"b', /URI parameter/);
  });

  it('UriError: message, name, reason, input, truncation', () => {
    const long = `msrp://h:1/${'x'.repeat(200)} ;tcp`;
    try {
      parseUri(long);
      assert.fail('should throw');
    } catch (e) {
      assert.ok(e instanceof UriError);
      assert.ok(e instanceof Error);
      assert.equal(e.name, 'UriError');
      assert.equal(e.input, long);
      assert.equal(e.reason, 'contains whitespace');
      assert.equal(e.message, `invalid MSRP URI ${JSON.stringify(`${long.slice(0, 100)}...`)}: contains whitespace`);
    }
    const e2 = new UriError('msrp://h;tcp\r\nX: y', 'contains a control character');
    assert.equal(e2.message, 'invalid MSRP URI "msrp://h;tcp\\r\\nX: y": contains a control character');
  });

  it('a non-string input is a UriError, not a TypeError', () => {
    assert.throws(() => parseUri(undefined as unknown as string), UriError);
    assert.equal(tryParseUri(42 as unknown as string), undefined);
  });
});

describe('uriEquals: RFC 4975 §6.1 (§1.8)', () => {
  it('identical URIs are equal', () => {
    assert.ok(eq('msrp://host.example.com:8493/asfd34;tcp', 'msrp://host.example.com:8493/asfd34;tcp'));
  });

  it('rule 1: scheme compared case-insensitively; msrp != msrps', () => {
    assert.ok(eq('MSRP://h.example.com:1/s;tcp', 'msrp://h.example.com:1/s;tcp'));
    assert.ok(!eq('msrp://h.example.com:1/s;tcp', 'msrps://h.example.com:1/s;tcp'));
  });

  it('rule 1 holds for hand-built URIs with upper-case schemes too', () => {
    const a = parseUri('msrp://h:1/s;tcp');
    const b = { ...a, scheme: 'MSRP' } as unknown as MsrpUri;
    assert.ok(uriEquals(a, b));
    const c = { ...a, transport: 'TCP' };
    assert.ok(uriEquals(a, c));
  });

  it('rule 2: host compared case-insensitively', () => {
    assert.ok(eq('msrp://Relay.EXAMPLE.com:1/s;tcp', 'msrp://relay.example.com:1/s;tcp'));
    assert.ok(!eq('msrp://relay.example.com:1/s;tcp', 'msrp://relay2.example.com:1/s;tcp'));
  });

  it('rule 2: percent-encoded unreserved characters are decoded first', () => {
    assert.ok(eq('msrp://%72elay.example.com:1/s;tcp', 'msrp://relay.example.com:1/s;tcp'));
    assert.ok(eq('msrp://%52ELAY.example.com:1/s;tcp', 'msrp://relay.example.com:1/s;tcp'));
    assert.ok(eq('msrp://a%2db.com:1/s;tcp', 'msrp://a-b.com:1/s;tcp'));
    assert.ok(!eq('msrp://%73elay.example.com:1/s;tcp', 'msrp://relay.example.com:1/s;tcp'));
  });

  it('rule 2: IPv6 addresses compared as addresses', () => {
    assert.ok(eq('msrp://[::1]:1/s;tcp', 'msrp://[0:0:0:0:0:0:0:1]:1/s;tcp'));
    assert.ok(eq('msrp://[2001:DB8::1]:1/s;tcp', 'msrp://[2001:0db8:0:0::0001]:1/s;tcp'));
    assert.ok(eq('msrp://[::ffff:192.0.2.1]:1/s;tcp', 'msrp://[::ffff:c000:201]:1/s;tcp'));
    assert.ok(!eq('msrp://[::1]:1/s;tcp', 'msrp://[::2]:1/s;tcp'));
    assert.ok(!eq('msrp://[2001:db8::1]:1/s;tcp', 'msrp://[2001:db8:1::]:1/s;tcp'));
  });

  it('rule 2: IPv4 compared as address; an IP never equals a name', () => {
    assert.ok(eq('msrp://10.0.0.1:1/s;tcp', 'msrp://10.0.0.1:1/s;tcp'));
    assert.ok(!eq('msrp://10.0.0.1:1/s;tcp', 'msrp://10.0.0.2:1/s;tcp'));
    assert.ok(!eq('msrp://10.0.0.1:1/s;tcp', 'msrp://[::ffff:10.0.0.1]:1/s;tcp'));
    assert.ok(!eq('msrp://10.0.0.1:1/s;tcp', 'msrp://localhost:1/s;tcp'));
  });

  it('rule 2: userinfo is not considered', () => {
    assert.ok(eq('msrps://alice@intra.example.com;tcp', 'msrps://intra.example.com;tcp'));
    assert.ok(eq('msrps://alice@intra.example.com;tcp', 'msrps://bob@intra.example.com;tcp'));
    assert.ok(!eq('msrps://alice@intra.example.com;tcp', 'msrps://alice@extra.example.com;tcp'));
  });

  it('rule 3: a port present in either must be present in both and equal (no default port)', () => {
    assert.ok(eq('msrps://relay.example.com:2855/s;tcp', 'msrps://relay.example.com:02855/s;tcp'));
    assert.ok(!eq('msrps://relay.example.com:2855/s;tcp', 'msrps://relay.example.com/s;tcp'));
    assert.ok(!eq('msrps://relay.example.com:2855/s;tcp', 'msrps://relay.example.com:2856/s;tcp'));
    assert.ok(eq('msrps://relay.example.com/s;tcp', 'msrps://relay.example.com/s;tcp'));
  });

  it('rule 4: session-id compared case-sensitively', () => {
    assert.ok(eq('msrp://h:1/jui787s2f;tcp', 'msrp://h:1/jui787s2f;tcp'));
    assert.ok(!eq('msrp://h:1/jui787s2f;tcp', 'msrp://h:1/JUI787S2F;tcp'));
  });

  it('rule 4: a URI without a session-id never equals one with', () => {
    assert.ok(!eq('msrp://h:1;tcp', 'msrp://h:1/s;tcp'));
    assert.ok(eq('msrp://h:1;tcp', 'msrp://h:1;tcp'));
  });

  it('rule 5: transports compared case-insensitively and must be equal', () => {
    assert.ok(eq('msrp://h:1/s;TCP', 'msrp://h:1/s;tcp'));
    assert.ok(!eq('msrp://h:1/s;tcp', 'msrp://h:1/s;ws'));
    assert.ok(!eq('msrps://df7jal23ls0d.invalid:2855/98cjs;ws', 'msrps://df7jal23ls0d.invalid:2855/98cjs;tcp'));
  });

  it('other parameters are ignored', () => {
    assert.ok(eq('msrp://h:1/s;tcp;foo=bar;baz', 'msrp://h:1/s;tcp'));
    assert.ok(eq('msrp://h:1/s;tcp;foo=bar', 'msrp://h:1/s;tcp;foo=other'));
    assert.ok(!eq('msrp://h:1/s;tcp;foo=bar', 'msrp://h:1/t;tcp;foo=bar'));
  });

  it('rule 6: no path normalisation', () => {
    assert.ok(!eq('msrp://h:1/a/b;tcp', 'msrp://h:1/a//b;tcp'));
    assert.ok(!eq('msrp://h:1/a;tcp', 'msrp://h:1/a/;tcp'));
  });

  it('R-50: an issued token matches its Use-Path URI only', () => {
    const issued = parseUri('msrps://relay.example.com:2855/jui787s2f;tcp');
    assert.ok(uriEquals(issued, parseUri('MSRPS://RELAY.example.com:2855/jui787s2f;TCP')));
    for (const other of [
      'msrp://relay.example.com:2855/jui787s2f;tcp',
      'msrps://relay.example.com:2856/jui787s2f;tcp',
      'msrps://relay.example.com/jui787s2f;tcp',
      'msrps://relay.example.com:2855/Jui787s2f;tcp',
      'msrps://relay.example.com:2855;tcp',
      'msrps://relay.example.com:2855/jui787s2f;ws',
      'msrps://other.example.com:2855/jui787s2f;tcp',
    ]) {
      assert.ok(!uriEquals(issued, parseUri(other)), other);
    }
  });
});

describe('parsePath', () => {
  const a = 'msrps://relay.example.com:2855/jui787s2f;tcp';
  const b = 'msrp://host.example.com:8493/asfd34;tcp';
  const c = 'msrps://df7jal23ls0d.invalid:2855/98cjs;ws';

  it('a single URI', () => {
    const p = parsePath(a);
    assert.equal(p.length, 1);
    assert.equal(p[0]!.raw, a);
  });

  it('several URIs separated by single SP, in order', () => {
    const p = parsePath(`${a} ${b} ${c}`);
    assert.deepEqual(p.map((u) => u.raw), [a, b, c]);
  });

  it('tolerates tabs, double spaces, leading and trailing blanks', () => {
    const p = parsePath(`  ${a}\t${b}  \t ${c} `);
    assert.deepEqual(p.map((u) => u.raw), [a, b, c]);
  });

  it('16 URIs pass, 17 fail with the count and the limit', () => {
    const sixteen = Array.from({ length: 16 }, (_, k) => `msrp://h${k}.example.com:1/s${k};tcp`);
    assert.equal(parsePath(sixteen.join(' ')).length, 16);
    const seventeen = [...sixteen, 'msrp://x.example.com:1/s;tcp'].join(' ');
    assert.throws(
      () => parsePath(seventeen),
      (e: unknown) => e instanceof UriError && e.reason === 'path has 17 URIs, limit is 16' && e.input === seventeen,
    );
  });

  it('the limit is refused before parsing, even when URIs are bad', () => {
    const junk = Array.from({ length: 20 }, () => 'x').join(' ');
    assert.throws(() => parsePath(junk), (e: unknown) => e instanceof UriError && /20 URIs, limit is 16/.test(e.reason));
  });

  it('maxUris is configurable', () => {
    assert.equal(parsePath(`${a} ${b}`, 2).length, 2);
    assert.throws(() => parsePath(`${a} ${b} ${c}`, 2), /path has 3 URIs, limit is 2/);
  });

  it('empty or blank value', () => {
    for (const v of ['', ' ', '\t \t']) {
      assert.throws(() => parsePath(v), (e: unknown) => e instanceof UriError && e.reason === 'empty path');
    }
  });

  it('any bad URI fails the whole path, with that URI as the input', () => {
    assert.throws(
      () => parsePath(`${a} msrp://10.0.0.1/s;tcp ${c}`),
      (e: unknown) => e instanceof UriError && e.input === 'msrp://10.0.0.1/s;tcp' && e.reason === 'an IP address needs a port',
    );
    assert.throws(() => parsePath(`${a}\r\n${b}`), UriError);
  });
});

describe('isIpLiteral / isFqdn / hostEquals', () => {
  it('isIpLiteral', () => {
    assert.ok(isIpLiteral('10.0.0.1'));
    assert.ok(isIpLiteral('::1'));
    assert.ok(isIpLiteral('[2001:db8::1]'));
    assert.ok(!isIpLiteral('relay.example.com'));
    assert.ok(!isIpLiteral('10.0.0.256'));
    assert.ok(!isIpLiteral(''));
  });

  it('isFqdn accepts DNS names with a dot', () => {
    for (const h of ['relay.example.com', 'a.b', 'df7jal23ls0d.invalid', 'x-1.example.com', 'Relay.Example.COM', 'example.com.', '123.example.com', 'a.b2']) {
      assert.ok(isFqdn(h), h);
    }
  });

  it('isFqdn rejects IPs, single labels and malformed names', () => {
    const label63 = 'a'.repeat(63);
    assert.ok(isFqdn(`${label63}.com`));
    const long = `${Array.from({ length: 4 }, () => label63).join('.')}.com`; // 4*64 + 3 = 259
    for (const h of [
      '10.0.0.1', '::1', '[::1]', 'localhost', '', '.', '.com', 'a..b', 'a.b..', '-a.com', 'a-.com', 'a.-com', 'a.com-',
      `${'a'.repeat(64)}.com`, long, 'a_b.com', 'a b.com', 'ex%41mple.com', 'example.123', 'caf\u00e9.com', 'a.b/c',
    ]) {
      assert.ok(!isFqdn(h), h);
    }
  });

  it('isFqdn length limit: 253 passes, 254 fails', () => {
    const l = 'a'.repeat(61);
    const name253 = `${l}.${l}.${l}.${l}.b`; // 4*62 + 1 = 249
    assert.equal(name253.length, 249);
    const exact = `${'a'.repeat(63)}.${'a'.repeat(63)}.${'a'.repeat(63)}.${'a'.repeat(61)}`;
    assert.equal(exact.length, 253);
    assert.ok(isFqdn(exact));
    assert.ok(isFqdn(`${exact}.`));
    const over = `${'a'.repeat(63)}.${'a'.repeat(63)}.${'a'.repeat(63)}.${'a'.repeat(62)}`;
    assert.equal(over.length, 254);
    assert.ok(!isFqdn(over));
  });

  it('hostEquals: names case-insensitive, percent-decoding of unreserved', () => {
    assert.ok(hostEquals('Relay.Example.com', 'relay.example.COM'));
    assert.ok(hostEquals('ex%41mple.com', 'example.com'));
    assert.ok(hostEquals('ex%7Eample.com', 'ex~ample.com'));
    assert.ok(hostEquals('a%2fb', 'A%2Fb'), 'reserved triplets compare case-insensitively but stay encoded');
    assert.ok(!hostEquals('a%2fb', 'a/b'));
    assert.ok(!hostEquals('relay.example.com', 'relay.example.org'));
  });

  it('hostEquals: IPv6 forms', () => {
    assert.ok(hostEquals('::1', '0:0:0:0:0:0:0:1'));
    assert.ok(hostEquals('[::1]', '::1'));
    assert.ok(hostEquals('2001:DB8::', '2001:db8:0:0:0:0:0:0'));
    assert.ok(hostEquals('::', '0:0:0:0:0:0:0:0'));
    assert.ok(hostEquals('1:0:0:2::', '1::2:0:0:0:0'));
    assert.ok(!hostEquals('1:0:0:2::', '1::2:0:0:0'));
    assert.ok(hostEquals('::ffff:1.2.3.4', '::ffff:102:304'));
    assert.ok(hostEquals('fe80::1%ETH0', 'fe80:0::1%eth0'));
    assert.ok(!hostEquals('fe80::1%eth0', 'fe80::1%eth1'));
    assert.ok(!hostEquals('::1', '::2'));
    assert.ok(!hostEquals('1::', '::1'));
  });

  it('hostEquals: IPv4 as address', () => {
    assert.ok(hostEquals('192.0.2.1', '192.0.2.1'));
    assert.ok(!hostEquals('192.0.2.1', '192.0.2.10'));
    assert.ok(!hostEquals('10.0.0.1', '::ffff:10.0.0.1'));
  });
});

describe('formatUri / sessionUri', () => {
  const samples = [
    'msrp://host.example.com:8493/asfd34;tcp',
    'msrps://relay.example.com:2855/jui787s2f;tcp',
    'msrps://df7jal23ls0d.invalid:2855/98cjs;ws',
    'msrps://alice@intra.example.com;tcp',
    'msrp://[2001:db8::1]:2855/abc;tcp',
    'msrp://10.0.0.1:2855/s;tcp',
    'msrp://h.example.com:1/s;tcp;foo=bar;baz',
    'msrp://u%20x@ex%41mple.com:9/a+b=c/d;sctp;x',
  ];

  it('round-trips parse for the samples', () => {
    for (const s of samples) {
      const u = parseUri(s);
      assert.equal(formatUri(u), s);
      assert.deepEqual(parseUri(formatUri(u)), u);
    }
  });

  it('brackets IPv6 hosts, by hostType or by a colon when hostType is absent', () => {
    assert.equal(formatUri({ scheme: 'msrp', host: '::1', hostType: 'ipv6', port: 1, transport: 'tcp' }), 'msrp://[::1]:1;tcp');
    assert.equal(formatUri({ scheme: 'msrp', host: '::1', port: 1, transport: 'tcp' }), 'msrp://[::1]:1;tcp');
    assert.equal(formatUri({ scheme: 'msrp', host: '[::1]', port: 1, transport: 'tcp' }), 'msrp://[::1]:1;tcp');
    assert.equal(formatUri({ scheme: 'msrp', host: '10.0.0.1', port: 1, transport: 'tcp' }), 'msrp://10.0.0.1:1;tcp');
  });

  it('writes only the parts given', () => {
    assert.equal(formatUri({ scheme: 'msrps', host: 'relay.example.com', transport: 'tcp' }), 'msrps://relay.example.com;tcp');
    assert.equal(
      formatUri({ scheme: 'msrps', user: 'bob', host: 'r.example.com', port: 2855, sessionId: 'x', transport: 'ws', params: [['a', undefined], ['b', 'c']] }),
      'msrps://bob@r.example.com:2855/x;ws;a;b=c',
    );
  });

  it('sessionUri swaps in a session-id and keeps the rest', () => {
    const base = parseUri('msrps://relay.example.com:2855;tcp');
    assert.equal(sessionUri(base, 'jui787s2f'), 'msrps://relay.example.com:2855/jui787s2f;tcp');
    const withId = parseUri('msrps://[2001:db8::1]:2855/old;tcp;k=v');
    assert.equal(sessionUri(withId, 'new'), 'msrps://[2001:db8::1]:2855/new;tcp;k=v');
    assert.ok(uriEquals(parseUri(sessionUri(base, 'abc')), parseUri('msrps://RELAY.example.com:2855/abc;tcp')));
  });
});

// ---------------------------------------------------------------------------
// Seeded random tests

function mulberry32(seed: number): () => number {
  let t = seed >>> 0;
  return () => {
    t = (t + 0x6d2b79f5) >>> 0;
    let r = Math.imul(t ^ (t >>> 15), 1 | t);
    r = (r + Math.imul(r ^ (r >>> 7), 61 | r)) ^ r;
    return ((r ^ (r >>> 14)) >>> 0) / 4294967296;
  };
}

const ALPHA = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
const DIGITS = '0123456789';
const UNRESERVED = `${ALPHA}${DIGITS}-._~`;
const SUB_DELIMS = "!$&'()*+,;=";
const TOKEN = `${ALPHA}${DIGITS}-.!%*_+\`'~`;
const SESSION = `${UNRESERVED}+=/`;
const HEXD = '0123456789abcdefABCDEF';

class Gen {
  constructor(private readonly rnd: () => number) {}
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.rnd() * (hi - lo + 1));
  }
  bool(p = 0.5): boolean {
    return this.rnd() < p;
  }
  pick<T>(xs: ArrayLike<T>): T {
    return xs[Math.floor(this.rnd() * xs.length)]!;
  }
  str(alphabet: string, lo: number, hi: number): string {
    let s = '';
    for (let n = this.int(lo, hi); n > 0; n--) s += this.pick(alphabet);
    return s;
  }
  pct(): string {
    return `%${this.pick(HEXD)}${this.pick(HEXD)}`;
  }
  withPct(alphabet: string, lo: number, hi: number): string {
    let s = '';
    for (let n = this.int(lo, hi); n > 0; n--) s += this.bool(0.1) ? this.pct() : this.pick(alphabet);
    return s;
  }
  ipv4(): string {
    return Array.from({ length: 4 }, () => String(this.int(0, 255))).join('.');
  }
  ipv6(): string {
    const words = Array.from({ length: 8 }, () => (this.bool(0.4) ? 0 : this.int(0, 0xffff)));
    const hex = (w: number): string => {
      const h = w.toString(16);
      return this.bool(0.3) ? h.toUpperCase() : h;
    };
    const v4tail = this.bool(0.15);
    const groups = words.map(hex);
    if (v4tail) groups.splice(6, 2, this.ipv4());
    if (this.bool(0.6)) {
      // compress a run of groups (possibly empty on either side) into '::'
      const n = groups.length;
      const start = this.int(0, n - 1);
      const end = this.int(start + 1, n);
      const left = groups.slice(0, start).join(':');
      const right = groups.slice(end).join(':');
      return `${left}::${right}`;
    }
    return groups.join(':');
  }
  name(): string {
    // A reg-name that is never dotted digits only (which would be an IPv4 attempt).
    const labels = Array.from({ length: this.int(1, 4) }, () => this.withPct(UNRESERVED.replace('.', ''), 1, 12));
    return `${labels.join('.')}${this.pick(ALPHA)}`;
  }
  parts(): MsrpUriParts & { hostType: 'name' | 'ipv4' | 'ipv6' } {
    const hostType = this.pick(['name', 'name', 'ipv4', 'ipv6'] as const);
    const host = hostType === 'name' ? this.name() : hostType === 'ipv4' ? this.ipv4() : this.ipv6();
    const port = hostType !== 'name' || this.bool(0.7) ? this.int(1, 65535) : undefined;
    const params: Array<[string, string | undefined]> = [];
    for (let n = this.int(0, 3); n > 0; n--) params.push([this.str(TOKEN, 1, 8), this.bool() ? this.str(TOKEN, 1, 8) : undefined]);
    return {
      scheme: this.bool() ? 'msrp' : 'msrps',
      user: this.bool(0.2) ? this.withPct(UNRESERVED + SUB_DELIMS, 1, 10) : undefined,
      host,
      hostType,
      port,
      sessionId: this.bool(0.8) ? this.str(SESSION, 1, 24) : undefined,
      transport: this.bool(0.5) ? 'tcp' : this.bool(0.5) ? 'ws' : this.str(`abcdefghijklmnopqrstuvwxyz${DIGITS}`, 1, 6),
      params,
    };
  }
}

function flip(s: string, rnd: Gen): string {
  let out = '';
  for (const ch of s) out += rnd.bool() ? ch.toUpperCase() : ch.toLowerCase();
  return out;
}

describe('seeded random URIs', () => {
  it('2000 random valid URIs: parse(format(u)) keeps every field, uriEquals is reflexive', () => {
    const g = new Gen(mulberry32(0x4975));
    for (let n = 0; n < 2000; n++) {
      const p = g.parts();
      const text = formatUri(p);
      const u = parseUri(text);
      assert.equal(u.scheme, p.scheme, text);
      assert.equal(u.user, p.user, text);
      assert.equal(u.host, p.host, text);
      assert.equal(u.hostType, p.hostType, text);
      assert.equal(u.port, p.port, text);
      assert.equal(u.sessionId, p.sessionId, text);
      assert.equal(u.transport, p.transport, text);
      assert.deepEqual(u.params, p.params, text);
      assert.equal(u.raw, text);

      const again = parseUri(formatUri(u));
      assert.deepEqual(again, u, text);
      assert.ok(uriEquals(u, u), text);
      assert.ok(uriEquals(u, again), text);

      // Case changes in scheme and transport, and a different userinfo, do not matter.
      const variant = formatUri({ ...u, scheme: flip(u.scheme, g) as 'msrp', transport: flip(u.transport, g), user: 'someone', params: [] });
      assert.ok(uriEquals(u, parseUri(variant)), `${text} vs ${variant}`);
      // A changed session-id always matters.
      const changed = parseUri(sessionUri(u, `${u.sessionId ?? ''}X`));
      assert.ok(!uriEquals(u, changed), text);
    }
  });

  it('random ASCII garbage never throws anything but UriError', () => {
    const g = new Gen(mulberry32(0x4976));
    const pieces = [
      'msrp://', 'msrps://', 'MSRP://', '@', ':', '/', ';', '[', ']', '::', '%', '%4', '%41', '=', 'tcp', 'ws', '.',
      '10.0.0.1', '2855', '65536', '0', 'h', '::1', ' ', '\t', '\r\n', '\u0000', '\u00e9', '\u2028', '\ud800', '\uffff', 'v1.x', 'a:b@', '[v1.x]', '[fe80::1%25x]',
    ];
    let parsed = 0;
    for (let n = 0; n < 5000; n++) {
      let s: string;
      if (g.bool(0.5)) {
        // Free-form garbage built from URI delimiters and random ASCII.
        s = g.bool(0.5) ? g.pick(['msrp://', 'msrps://']) : '';
        for (let k = g.int(0, 12); k > 0; k--) {
          s += g.bool(0.6) ? g.pick(pieces) : String.fromCharCode(g.int(0, 127));
        }
      } else {
        // A valid URI with a few edits: near misses exercise every branch.
        s = formatUri(g.parts());
        for (let k = g.int(0, 3); k > 0; k--) {
          const at = g.int(0, s.length);
          const op = g.int(0, 2);
          const piece = g.bool(0.5) ? g.pick(pieces) : String.fromCharCode(g.int(0, 127));
          if (op === 0) s = s.slice(0, at) + s.slice(at + 1);
          else if (op === 1) s = s.slice(0, at) + piece + s.slice(at);
          else s = s.slice(0, at) + piece + s.slice(at + 1);
        }
      }
      let u: MsrpUri | undefined;
      try {
        u = parseUri(s);
      } catch (e) {
        assert.ok(e instanceof UriError, `${JSON.stringify(s)} threw ${String(e)}`);
        assert.equal(e.input, s);
      }
      assert.equal(tryParseUri(s) === undefined, u === undefined);
      if (u !== undefined) {
        parsed++;
        assert.match(s, /^[\x21-\x7e]+$/, 'only printable US-ASCII can parse');
        // Anything accepted is stable under format/parse.
        const back = parseUri(formatUri(u));
        assert.deepEqual({ ...back, raw: '' }, { ...u, raw: '' }, s);
        assert.ok(uriEquals(u, back), s);
      }
      try {
        parsePath(`${s} ${s}`);
      } catch (e) {
        assert.ok(e instanceof UriError, `path ${JSON.stringify(s)} threw ${String(e)}`);
      }
    }
    assert.ok(parsed > 0, 'some garbage should happen to be valid');
  });
});
