// The destination policy (outbound.allow / deny, SSRF guard): rule syntax, address classes,
// IPv4-mapped and NAT64 forms, names, ports, precedence, and every resolved address checked.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  addressBytes,
  classOf,
  CompiledPolicy,
  DestinationPolicy,
  isLoopbackHost,
  parseRule,
  type DestinationPolicyConfig,
  type LookupAll,
} from '../../core/transport/destination-policy.ts';
import { OutwardLegs } from '../../core/session/outward-legs.ts';
import type { NextHop } from '../../core/types.ts';

const PUBLIC = ['0.0.0.0'];
const LOOPBACK = ['127.0.0.1'];
const cfg = (o: Partial<DestinationPolicyConfig> = {}): DestinationPolicyConfig => ({ allow: [], deny: [], loopback: 'auto', ...o });
const policy = (o: Partial<DestinationPolicyConfig> = {}, listen = PUBLIC) => new CompiledPolicy(cfg(o), listen);
/** The refusal for an address literal at a port, or undefined when allowed. */
const refusal = (p: CompiledPolicy, address: string, port = 2855) => p.decide(address, port, [address]);

/** A resolver from a table; unknown names fail like getaddrinfo does. */
function fakeLookup(table: Record<string, string[]>): LookupAll & { calls: string[] } {
  const calls: string[] = [];
  const f = async (host: string) => {
    calls.push(host);
    const list = table[host];
    if (list === undefined) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' });
    return list.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
  };
  return Object.assign(f, { calls });
}

describe('addresses', () => {
  it('IPv4, IPv4-mapped IPv6 (dotted and hex), and NAT64 are one address', () => {
    const v4 = addressBytes('127.0.0.1')!;
    for (const same of ['::ffff:127.0.0.1', '::ffff:7f00:1', '[::ffff:127.0.0.1]', '64:ff9b::7f00:1', '64:ff9b::127.0.0.1']) {
      assert.deepEqual(addressBytes(same), v4, same);
    }
    assert.deepEqual(addressBytes('fe80::1%eth0'), addressBytes('fe80::1'));
    assert.deepEqual([...addressBytes('2001:db8::1')!], [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    assert.equal(addressBytes('relay.example.com'), undefined);
    assert.equal(addressBytes('127.1'), undefined, 'only the dotted quad is an IPv4 literal (a name then, resolved)');
  });

  it('classes: metadata before link-local, unspecified is loopback', () => {
    assert.equal(classOf('127.0.0.53'), 'loopback');
    assert.equal(classOf('::1'), 'loopback');
    assert.equal(classOf('0.0.0.0'), 'loopback');
    assert.equal(classOf('::'), 'loopback');
    assert.equal(classOf('::ffff:127.0.0.1'), 'loopback');
    assert.equal(classOf('169.254.169.254'), 'metadata');
    assert.equal(classOf('fd00:ec2::254'), 'metadata');
    assert.equal(classOf('169.254.1.1'), 'link-local');
    assert.equal(classOf('fe80::abcd'), 'link-local');
    assert.equal(classOf('10.1.2.3'), 'private');
    assert.equal(classOf('172.31.255.255'), 'private');
    assert.equal(classOf('172.32.0.1'), undefined);
    assert.equal(classOf('192.168.0.1'), 'private');
    assert.equal(classOf('100.64.0.1'), 'private');
    assert.equal(classOf('fd12:3456::1'), 'private');
    assert.equal(classOf('224.0.0.1'), 'reserved');
    assert.equal(classOf('255.255.255.255'), 'reserved');
    assert.equal(classOf('ff02::1'), 'reserved');
    assert.equal(classOf('93.184.215.14'), undefined);
    assert.equal(classOf('2001:db8::1'), undefined);
  });

  it('a listener on 127/8, ::1 or localhost is loopback; 0.0.0.0, :: and names are not', () => {
    for (const h of ['127.0.0.1', '127.0.0.2', '::1', 'localhost', 'LOCALHOST.', 'relay.localhost']) assert.equal(isLoopbackHost(h), true, h);
    for (const h of ['0.0.0.0', '::', '10.0.0.1', 'relay.example.com', '::ffff:10.0.0.1']) assert.equal(isLoopbackHost(h), false, h);
  });
});

describe('rule syntax', () => {
  it('addresses, CIDRs, names, classes, * and ports', () => {
    const ok = (s: string) => {
      const r = parseRule(s);
      assert.notEqual(typeof r, 'string', `${s}: ${String(r)}`);
      return r as Exclude<ReturnType<typeof parseRule>, string>;
    };
    assert.deepEqual(ok('10.0.0.0/8').target.kind, 'cidr');
    assert.deepEqual(ok('192.168.1.7').target.kind, 'cidr');
    assert.deepEqual(ok('fd00::/8').target.kind, 'cidr');
    assert.deepEqual(ok('::1').target.kind, 'cidr');
    assert.deepEqual(ok('[::1]:2855').ports, { from: 2855, to: 2855 });
    assert.deepEqual(ok('[fd00::/8]:1-1023').ports, { from: 1, to: 1023 });
    assert.deepEqual(ok('Relay.Example.COM').target, { kind: 'name', name: 'relay.example.com', wildcard: false });
    assert.deepEqual(ok('*.example.com:2855').target, { kind: 'name', name: 'example.com', wildcard: true });
    assert.deepEqual(ok('private').target, { kind: 'class', name: 'private' });
    assert.deepEqual(ok('*').target, { kind: 'any' });
    assert.deepEqual(ok(':25'), { text: ':25', target: { kind: 'any' }, ports: { from: 25, to: 25 } });
    assert.deepEqual(ok('*:8000-8999').ports, { from: 8000, to: 8999 });
    assert.deepEqual(ok('10.0.0.0/8:22').ports, { from: 22, to: 22 });
  });

  it('says what is wrong with a bad rule', () => {
    assert.equal(parseRule('10.0.0.0/33'), 'the prefix length must be 0-32');
    assert.equal(parseRule('fd00::/129'), 'the prefix length must be 0-128');
    assert.equal(parseRule('10.0.0'), 'not an IPv4 address');
    assert.equal(parseRule(':0'), 'ports are 1-65535');
    assert.equal(parseRule(':70000'), 'ports are 1-65535');
    assert.equal(parseRule(':9-1'), 'the range 9-1 is empty');
    assert.equal(parseRule('host:smtp'), '"smtp" is not a port or a port range (25, 8000-8999)');
    assert.equal(parseRule('[::1'), 'unclosed "["');
    assert.equal(parseRule('[relay]:1'), 'brackets hold an IPv6 address or CIDR');
    assert.equal(parseRule('   '), 'empty');
    assert.match(parseRule('bad host') as string, /^not an address, a CIDR, a host name/);
  });
});

describe('decisions', () => {
  it('by default: loopback, link-local, metadata and reserved refused; private and public allowed', () => {
    const p = policy();
    for (const a of ['127.0.0.1', '::1', '::ffff:127.0.0.1', '64:ff9b::7f00:1', '0.0.0.0', '169.254.169.254', 'fe80::1', 'fd00:ec2::254', '224.0.0.1']) {
      assert.notEqual(refusal(p, a), undefined, a);
    }
    assert.deepEqual(refusal(p, '127.0.0.1'), { address: '127.0.0.1', rule: 'built-in: loopback' });
    assert.deepEqual(refusal(p, '169.254.169.254'), { address: '169.254.169.254', rule: 'built-in: metadata' });
    for (const a of ['10.1.2.3', '192.168.1.1', 'fd12::1', '93.184.215.14', '2001:db8::1']) assert.equal(refusal(p, a), undefined, a);
  });

  it('loopback: auto allows it when every listener is on loopback, never link-local or metadata', () => {
    const p = policy({}, ['127.0.0.1', '::1']);
    assert.equal(refusal(p, '127.0.0.1'), undefined);
    assert.equal(refusal(p, '::1'), undefined);
    assert.notEqual(refusal(p, '169.254.169.254'), undefined);
    assert.notEqual(refusal(p, 'fe80::1'), undefined);
    assert.notEqual(refusal(policy({}, ['127.0.0.1', '0.0.0.0']), '127.0.0.1'), undefined, 'one listener off loopback makes the relay public');
    assert.notEqual(refusal(policy({}, []), '127.0.0.1'), undefined);
    assert.notEqual(refusal(policy({ loopback: false }, LOOPBACK), '127.0.0.1'), undefined);
    assert.equal(refusal(policy({ loopback: true }, PUBLIC), '127.0.0.1'), undefined);
  });

  it('allow lifts a built-in refusal for what it matches, by address, class, port or name', () => {
    assert.equal(refusal(policy({ allow: ['127.0.0.1'] }), '127.0.0.1'), undefined);
    assert.notEqual(refusal(policy({ allow: ['127.0.0.1'] }), '127.0.0.2'), undefined);
    assert.equal(refusal(policy({ allow: ['loopback'] }), '::ffff:127.0.0.9'), undefined);
    assert.equal(refusal(policy({ allow: ['127.0.0.1:2855'] }), '127.0.0.1', 2855), undefined);
    assert.notEqual(refusal(policy({ allow: ['127.0.0.1:2855'] }), '127.0.0.1', 6379), undefined);
    assert.equal(refusal(policy({ allow: ['[::1]:2855'] }), '::1', 2855), undefined);
    const byName = policy({ allow: ['peer.example.net'] });
    assert.equal(byName.decide('peer.example.net', 2855, ['127.0.0.1']), undefined);
    assert.notEqual(byName.decide('other.example.net', 2855, ['127.0.0.1']), undefined);
  });

  it('deny refuses whatever allow says: private CIDRs, ports, names, classes', () => {
    const p = policy({ deny: ['10.0.0.0/8', ':1-1023', '*.evil.example', 'fd00::/8'], allow: ['10.1.2.3', '*'] });
    assert.deepEqual(refusal(p, '10.1.2.3'), { address: '10.1.2.3', rule: '10.0.0.0/8' });
    assert.deepEqual(refusal(p, '::ffff:10.9.9.9'), { address: '::ffff:10.9.9.9', rule: '10.0.0.0/8' }, 'a mapped address meets the IPv4 rule');
    assert.deepEqual(refusal(p, '93.184.215.14', 25), { address: '93.184.215.14', rule: ':1-1023' });
    assert.equal(refusal(p, '93.184.215.14', 2855), undefined);
    assert.deepEqual(p.decide('a.b.evil.example', 2855, ['93.184.215.14']), { address: undefined, rule: '*.evil.example' });
    assert.equal(p.decide('evil.example', 2855, ['93.184.215.14']), undefined, '*.name matches below the name only');
    assert.deepEqual(refusal(p, 'fd12::1'), { address: 'fd12::1', rule: 'fd00::/8' });
    assert.deepEqual(refusal(policy({ deny: ['private'] }), '172.20.0.1'), { address: '172.20.0.1', rule: 'private' });
    assert.deepEqual(refusal(policy({ deny: ['loopback'] }, LOOPBACK), '127.0.0.1'), { address: '127.0.0.1', rule: 'loopback' });
  });

  it('every address a name resolves to is checked', () => {
    const p = policy();
    assert.deepEqual(p.decide('twofaced.example', 2855, ['93.184.215.14', '127.0.0.1']), { address: '127.0.0.1', rule: 'built-in: loopback' });
    assert.deepEqual(policy({ deny: ['10.0.0.0/8'] }).decide('x.example', 2855, ['2001:db8::1', '10.0.0.1']), { address: '10.0.0.1', rule: '10.0.0.0/8' });
  });

  it('a bad rule in a config that skipped validation is an error naming it', () => {
    assert.throws(() => policy({ deny: ['ok.example', '10.0.0.0/40'] }), /outbound\.deny\[1\]: the prefix length must be 0-32/);
  });
});

describe('DestinationPolicy.check', () => {
  const hop = (host: string, port = 2855, transport: 'tcp' | 'tls' = 'tcp'): NextHop => ({ host, port, transport });

  it('resolves a name and pins the hop to the checked address; TLS keeps the name for SNI (R-8)', async () => {
    const lookup = fakeLookup({ 'peer.example.net': ['192.0.2.10', '2001:db8::10'] });
    const d = new DestinationPolicy({ lookup });
    const v = await d.check(hop('peer.example.net', 2855, 'tls'), cfg(), PUBLIC, 1000);
    assert.deepEqual(v, { kind: 'allowed', hop: { host: '192.0.2.10', port: 2855, transport: 'tls', servername: 'peer.example.net' }, addresses: ['192.0.2.10', '2001:db8::10'] });
    const t = await d.check(hop('peer.example.net'), cfg(), PUBLIC, 1000);
    assert.deepEqual(t.kind === 'allowed' ? t.hop : t, { host: '192.0.2.10', port: 2855, transport: 'tcp' });
    const kept = await d.check({ host: 'peer.example.net', port: 2855, transport: 'tls', servername: 'other.example.net' }, cfg(), PUBLIC, 1000);
    assert.equal(kept.kind === 'allowed' ? kept.hop.servername : kept.kind, 'other.example.net', 'a servername given by resolveNextHop stays');
  });

  it('a name that resolves to loopback is refused (localhost, or a public name with one loopback address)', async () => {
    const d = new DestinationPolicy({ lookup: fakeLookup({ localhost: ['127.0.0.1', '::1'], 'rebind.example': ['192.0.2.1', '127.0.0.1'] }) });
    assert.deepEqual(await d.check(hop('localhost'), cfg(), PUBLIC, 1000), { kind: 'denied', address: '127.0.0.1', rule: 'built-in: loopback' });
    assert.deepEqual(await d.check(hop('rebind.example'), cfg(), PUBLIC, 1000), { kind: 'denied', address: '127.0.0.1', rule: 'built-in: loopback' });
  });

  it('an address literal is not looked up; a bracketed one is dialled bare', async () => {
    const lookup = fakeLookup({});
    const d = new DestinationPolicy({ lookup });
    assert.deepEqual(await d.check(hop('192.0.2.7', 80), cfg(), PUBLIC, 1000), { kind: 'allowed', hop: hop('192.0.2.7', 80), addresses: ['192.0.2.7'] });
    const v6 = await d.check(hop('[2001:db8::7]'), cfg(), PUBLIC, 1000);
    assert.equal(v6.kind === 'allowed' ? v6.hop.host : v6.kind, '2001:db8::7');
    assert.deepEqual(lookup.calls, []);
  });

  it('a name denied by a rule is refused without a lookup', async () => {
    const lookup = fakeLookup({ 'db.corp.example': ['10.0.0.5'] });
    const d = new DestinationPolicy({ lookup });
    assert.deepEqual(await d.check(hop('db.corp.example', 5432), cfg({ deny: ['*.corp.example'] }), PUBLIC, 1000), { kind: 'denied', address: undefined, rule: '*.corp.example' });
    assert.deepEqual(lookup.calls, []);
  });

  it('a name that does not resolve, or not in time, is unresolved (not allowed, not a refusal)', async () => {
    const d = new DestinationPolicy({ lookup: fakeLookup({ 'empty.example': [] }) });
    assert.deepEqual(await d.check(hop('nowhere.example'), cfg(), PUBLIC, 1000), { kind: 'unresolved', reason: 'cannot resolve nowhere.example: ENOTFOUND' });
    assert.deepEqual(await d.check(hop('empty.example'), cfg(), PUBLIC, 1000), { kind: 'unresolved', reason: 'empty.example has no address' });
    // A resolver that never answers (the timeout's timer is unref'd: keep the loop alive meanwhile).
    const hang = new DestinationPolicy({ lookup: () => new Promise(() => {}) });
    const alive = setInterval(() => {}, 1000);
    try {
      assert.deepEqual(await hang.check(hop('slow.example'), cfg(), PUBLIC, 20), { kind: 'unresolved', reason: 'cannot resolve slow.example: lookup timed out after 20 ms' });
    } finally {
      clearInterval(alive);
    }
  });

  it('compiles a config once, and again for a new config or other listeners', () => {
    const d = new DestinationPolicy({ lookup: fakeLookup({}) });
    const c = cfg();
    const first = d.compile(c, PUBLIC);
    assert.equal(d.compile(c, PUBLIC), first);
    assert.notEqual(d.compile(c, LOOPBACK), first);
    assert.notEqual(d.compile(cfg(), LOOPBACK), first);
  });
});

describe('outward legs', () => {
  it('counts per owner and per user, refuses at the cap, and gives places back once', () => {
    const legs = new OutwardLegs<object, object>();
    const caps = { perConnection: 2, perUser: 3 };
    const [c1, c2] = [{}, {}];
    const [s1, s2, s3, s4, s5] = [{}, {}, {}, {}, {}];
    assert.equal(legs.open(s1, c1, 'alice@example.com', caps), undefined);
    assert.equal(legs.open(s1, c1, 'alice@example.com', caps), undefined, 'a session holds one place however often it asks');
    assert.equal(legs.open(s2, c1, 'alice@example.com', caps), undefined);
    assert.equal(legs.open(s3, c1, 'alice@example.com', caps), 'connection');
    assert.equal(legs.open(s3, c2, 'alice@example.com', caps), undefined);
    assert.equal(legs.open(s4, c2, 'alice@example.com', caps), 'user');
    assert.equal(legs.open(s4, c2, 'bob@example.com', caps), undefined);
    assert.deepEqual([legs.ofOwner(c1), legs.ofOwner(c2), legs.ofUser('alice@example.com'), legs.size], [2, 2, 3, 4]);
    legs.close(s1);
    legs.close(s1);
    legs.close(s5);
    assert.deepEqual([legs.ofOwner(c1), legs.ofUser('alice@example.com'), legs.size], [1, 2, 3]);
    assert.equal(legs.open(s5, c1, 'alice@example.com', caps), undefined);
  });
});
