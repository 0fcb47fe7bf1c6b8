// R-42, RFC 4976 §4.2: the hostname written into Use-Path must be reachable by peers; the
// relay warns at start and in --check-config when it is not (core/config/hostname-check.ts).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { hostnameLookupWarning, hostnameWarnings } from '../../core/config/hostname-check.ts';

const LOOPBACK = [{ host: '127.0.0.1' }];
const OPEN = [{ host: '127.0.0.1' }, { host: '0.0.0.0' }];

describe('hostnameWarnings (by form, no DNS)', () => {
  it('warns about localhost and names that only this host resolves', () => {
    for (const h of ['localhost', 'LOCALHOST', 'localhost.', 'relay.localhost', 'localhost.localdomain']) {
      const w = hostnameWarnings(h, LOOPBACK);
      assert.equal(w.length, 1, h);
      assert.match(w[0]!, /names this host only: .*\(R-42\)\. Set the relay's fully qualified domain name/, h);
    }
  });

  it('warns about a single-label name', () => {
    assert.deepEqual(hostnameWarnings('relay'), [
      '/hostname "relay" is not a fully qualified domain name: peers on other networks cannot resolve it in Use-Path URIs (R-42). ' +
        "Set the relay's fully qualified domain name (or an IP address peers can reach).",
    ]);
  });

  it('accepts a name of FQDN form, whatever DNS says of it', () => {
    for (const h of ['relay.example.com', 'Relay.Example.COM.', 'msrp-1.eu.example.net', 'xn--bcher-kva.example']) assert.deepEqual(hostnameWarnings(h, OPEN), [], h);
  });

  it('warns about malformed names, names under .invalid or .local, and a numeric last label', () => {
    assert.match(hostnameWarnings('relay-.example.com')[0]!, /is not a valid DNS name/);
    assert.match(hostnameWarnings('a..example')[0]!, /is not a valid DNS name/);
    assert.match(hostnameWarnings('relay.invalid')[0]!, /never resolves \(RFC 6761\)/);
    assert.match(hostnameWarnings('relay.local')[0]!, /multicast DNS name/);
    assert.match(hostnameWarnings('10.0.0')[0]!, /last label is all digits/);
  });

  it('accepts IP literals; warns about the unspecified address, and loopback while a listener is open to other hosts', () => {
    for (const h of ['127.0.0.1', '::1', '[::1]', '192.0.2.10', '2001:db8::1']) assert.deepEqual(hostnameWarnings(h, LOOPBACK), [], h);
    assert.deepEqual(hostnameWarnings('192.0.2.10', OPEN), []);
    assert.match(hostnameWarnings('0.0.0.0')[0]!, /the unspecified address/);
    assert.match(hostnameWarnings('::')[0]!, /the unspecified address/);
    assert.match(hostnameWarnings('127.0.0.1', OPEN)[0]!, /is a loopback address, but \/listen\/1 \(0\.0\.0\.0\) accepts connections from other hosts/);
    assert.match(hostnameWarnings('::1', [{ host: '::' }])[0]!, /\/listen\/0 \(::\)/);
  });
});

describe('hostnameLookupWarning (DNS, only what it can know)', () => {
  const failing = (code: string) => async () => {
    throw Object.assign(new Error(`getaddrinfo ${code}`), { code });
  };

  it('warns when the name does not exist', async () => {
    for (const code of ['ENOTFOUND', 'ENODATA']) {
      const w = await hostnameLookupWarning('relay.example.com', { lookup: failing(code) });
      assert.match(w ?? '', new RegExp(`^/hostname "relay\\.example\\.com" does not resolve from this host \\(${code}\\)`));
    }
  });

  it('says nothing when it resolves, when the resolver fails or is slow, or for an address', async () => {
    assert.equal(await hostnameLookupWarning('relay.example.com', { lookup: async () => [{ address: '192.0.2.10', family: 4 }] }), undefined);
    assert.equal(await hostnameLookupWarning('relay.example.com', { lookup: failing('EAI_AGAIN') }), undefined);
    // A resolver that never answers (the timeout's timer is unref'd: keep the loop alive meanwhile).
    const alive = setInterval(() => {}, 1000);
    try {
      assert.equal(await hostnameLookupWarning('relay.example.com', { lookup: () => new Promise(() => {}), timeoutMs: 10 }), undefined);
    } finally {
      clearInterval(alive);
    }
    const asked: string[] = [];
    const lookup = async (h: string) => {
      asked.push(h);
      throw Object.assign(new Error('x'), { code: 'ENOTFOUND' });
    };
    assert.equal(await hostnameLookupWarning('192.0.2.10', { lookup }), undefined);
    assert.equal(await hostnameLookupWarning('localhost', { lookup }), undefined, 'already warned about by form');
    assert.deepEqual(asked, []);
  });
});
