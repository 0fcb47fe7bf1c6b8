// auth-ldap against a real slapd (RFC.md §1.9 Digest, R-37 unknown user / wrong password, R-43 failure counting).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MsrpTestClient } from '../../core/testing/client.ts';
import { startTestRelay, testCertificates, type TestRelay } from '../../core/testing/harness.ts';
import { computeHa1 } from '../../core/protocol/digest.ts';
import { createRelay } from '../../core/relay.ts';
import type { Logger } from '../../core/plugin.ts';
import type { TestCertificates } from '../../core/transport/self-signed.ts';
import type { AuthLdapOptions } from '../../plugins/auth-ldap/index.ts';
import { startSlapd, type Slapd } from '../support/slapd.ts';

const SUFFIX = 'dc=example,dc=com';
const REALM = 'example.com';
const SERVICE_DN = `cn=relay,ou=services,${SUFFIX}`;
const SERVICE_PASSWORD = 'relay-service-pw';

/** The directory every suite starts from: a service account, people with HA1s and passwords. */
function directoryLdif(): string {
  return `dn: ${SUFFIX}
objectClass: dcObject
objectClass: organization
o: Example
dc: example

dn: ou=services,${SUFFIX}
objectClass: organizationalUnit
ou: services

dn: ${SERVICE_DN}
objectClass: applicationProcess
objectClass: simpleSecurityObject
cn: relay
userPassword: ${SERVICE_PASSWORD}

dn: ou=people,${SUFFIX}
objectClass: organizationalUnit
ou: people

dn: uid=alice,ou=people,${SUFFIX}
objectClass: inetOrgPerson
objectClass: msrpAccount
uid: alice
cn: Alice
sn: Liddell
mail: alice@example.com
associatedDomain: example.com
userPassword: wonderland
msrpDigestHA1: ${computeHa1('alice', REALM, 'wonderland')}

dn: uid=bob,ou=people,${SUFFIX}
objectClass: inetOrgPerson
objectClass: msrpAccount
uid: bob
cn: Bob
sn: Builder
associatedDomain: example.com
userPassword: {CLEARTEXT}canwefixit
msrpDigestHA1: ${computeHa1('bob', REALM, 'canwefixit').toUpperCase()}

dn: uid=carol,ou=people,${SUFFIX}
objectClass: inetOrgPerson
uid: carol
cn: Carol
sn: Hashed
userPassword: {SSHA}mTYJ/8qGQXbE2ohAiKQoSp6f8ysUdcyd

dn: uid=erin,ou=people,${SUFFIX}
objectClass: inetOrgPerson
objectClass: msrpAccount
uid: erin
cn: Erin
sn: Elsewhere
associatedDomain: other.org
userPassword: elsewhere
msrpDigestHA1: ${computeHa1('erin', REALM, 'elsewhere')}
`;
}

/** The service account reads secrets; nobody else does (anonymous may only bind). */
const ACL = `access to attrs=userPassword,msrpDigestHA1
  by dn.exact="${SERVICE_DN}" read
  by anonymous auth
  by * none
access to * by * read
`;

/** Log lines kept for assertions. */
class MemoryLogger implements Logger {
  readonly lines: Array<{ level: string; msg: string; fields: Record<string, unknown> | undefined }> = [];
  debug(msg: string, fields?: Record<string, unknown>): void {
    this.lines.push({ level: 'debug', msg, fields });
  }
  info(msg: string, fields?: Record<string, unknown>): void {
    this.lines.push({ level: 'info', msg, fields });
  }
  warn(msg: string, fields?: Record<string, unknown>): void {
    this.lines.push({ level: 'warn', msg, fields });
  }
  error(msg: string, fields?: Record<string, unknown>): void {
    this.lines.push({ level: 'error', msg, fields });
  }
  text(): string {
    return this.lines.map((l) => `${l.level} ${l.msg} ${JSON.stringify(l.fields ?? {})}`).join('\n');
  }
}

function ldapOptions(slapd: Slapd, extra: Partial<AuthLdapOptions> = {}): AuthLdapOptions {
  return {
    url: slapd.url,
    bindDN: SERVICE_DN,
    bindCredentials: SERVICE_PASSWORD,
    searchBase: `ou=people,${SUFFIX}`,
    ha1Attribute: 'msrpDigestHA1',
    ...extra,
  };
}

async function relayWith(options: AuthLdapOptions, logger?: Logger): Promise<TestRelay> {
  return startTestRelay({
    plugins: [
      ['domain-map', { default: REALM }],
      ['auth-ldap', options],
    ],
    ...(logger !== undefined ? { logger } : {}),
  });
}

/** One AUTH exchange on a fresh connection (R-43 closes a connection after three failures). */
async function authOnce(t: TestRelay, username: string, password: string): Promise<number> {
  const c = await MsrpTestClient.connect({ port: t.tcpPort, timeoutMs: 8000 });
  try {
    return (await c.auth({ relayUri: t.authUri(), username, password })).status;
  } finally {
    await c.close();
  }
}

describe('auth-ldap: HA1 mode (the entry stores MD5(username:realm:password))', () => {
  let slapd: Slapd;
  let t: TestRelay;
  before(async () => {
    slapd = await startSlapd({ suffix: SUFFIX, ldif: directoryLdif(), databaseConfig: ACL });
    t = await relayWith(ldapOptions(slapd, { attributes: ['mail', 'cn'] }));
  });
  after(async () => {
    await t?.close();
    await slapd?.close();
  });

  it('§1.9: the right password authenticates: 200 with Use-Path', async () => {
    const c = await MsrpTestClient.connect({ port: t.tcpPort });
    const r = await c.auth({ relayUri: t.authUri(), username: 'alice', password: 'wonderland' });
    assert.equal(r.status, 200);
    assert.equal(r.usePath.length, 1);
    await c.close();
  });

  it('an HA1 stored in upper-case hex works too', async () => {
    assert.equal(await authOnce(t, 'bob', 'canwefixit'), 200);
  });

  it('R-37: a wrong password gets 401 with a fresh challenge', async () => {
    const c = await MsrpTestClient.connect({ port: t.tcpPort });
    const r = await c.auth({ relayUri: t.authUri(), username: 'alice', password: 'looking-glass' });
    assert.equal(r.status, 401);
    assert.match(r.response.header('WWW-Authenticate')!, /^Digest /);
    await c.close();
  });

  it('R-37: an unknown user gets 401, like a wrong password', async () => {
    assert.equal(await authOnce(t, 'mallory', 'wonderland'), 401);
  });

  it('an entry without an HA1 (carol) cannot authenticate in HA1 mode: 401', async () => {
    assert.equal(await authOnce(t, 'carol', 'anything'), 401);
  });

  it('the configured attributes and the DN reach authorize taps as identity.attributes', async () => {
    let seen: Record<string, unknown> | undefined;
    const probe = {
      name: 'probe',
      apply(relay: { hooks: TestRelay['relay']['hooks'] }) {
        relay.hooks.authenticated.tap('probe', (identity) => {
          seen = identity.attributes;
        });
      },
    };
    const r2 = await startTestRelay({
      plugins: [['domain-map', { default: REALM }], ['auth-ldap', ldapOptions(slapd, { attributes: ['mail', 'cn'] })], probe],
    });
    try {
      assert.equal(await authOnce(r2, 'alice', 'wonderland'), 200);
      assert.deepEqual(seen, { dn: `uid=alice,ou=people,${SUFFIX}`, mail: 'alice@example.com', cn: 'Alice' });
    } finally {
      await r2.close();
    }
  });
});

describe('auth-ldap: password mode (the entry stores the cleartext password)', () => {
  let slapd: Slapd;
  let t: TestRelay;
  const log = new MemoryLogger();
  before(async () => {
    slapd = await startSlapd({ suffix: SUFFIX, ldif: directoryLdif(), databaseConfig: ACL });
    t = await relayWith(ldapOptions(slapd, { ha1Attribute: undefined, passwordAttribute: 'userPassword' }), log);
  });
  after(async () => {
    await t?.close();
    await slapd?.close();
  });

  it('§1.9: the relay computes HA1 from the stored password: 200', async () => {
    assert.equal(await authOnce(t, 'alice', 'wonderland'), 200);
  });

  it('a {CLEARTEXT} scheme prefix is stripped', async () => {
    assert.equal(await authOnce(t, 'bob', 'canwefixit'), 200);
  });

  it('R-37: a wrong password gets 401', async () => {
    assert.equal(await authOnce(t, 'alice', 'looking-glass'), 401);
  });

  it('a hashed userPassword ({SSHA}) cannot serve Digest: 401, and a warning names the scheme, not the hash', async () => {
    assert.equal(await authOnce(t, 'carol', 'anything'), 401);
    const line = log.lines.find((l) => l.level === 'warn' && /hashed/.test(l.msg));
    assert.ok(line, log.text());
    assert.equal(line.fields?.scheme, 'SSHA');
    assert.doesNotMatch(log.text(), /mTYJ|wonderland|canwefixit/);
  });

  // RFC 4515: the username is an assertion value, never filter syntax. In password
  // mode an unescaped `alic*` would find alice's entry, and a client that knows her
  // password would get in under the name "alic*".
  for (const username of ['alic*', '*', 'a)(uid=*', 'x)(|(uid=alice', 'alice)(uid=alice', 'ali\\63e']) {
    it(`filter injection: username ${JSON.stringify(username)} with alice's password gets 401, not 200 or a server error`, async () => {
      assert.equal(await authOnce(t, username, 'wonderland'), 401);
    });
  }
});

describe('auth-ldap: filter and base templates', () => {
  let slapd: Slapd;
  before(async () => {
    slapd = await startSlapd({ suffix: SUFFIX, ldif: directoryLdif(), databaseConfig: ACL });
  });
  after(async () => {
    await slapd?.close();
  });

  it('a custom filter with {domain} only finds accounts of the AUTH domain', async () => {
    const t = await relayWith(
      ldapOptions(slapd, { searchFilter: '(&(objectClass=msrpAccount)(uid={username})(associatedDomain={domain}))', scope: 'one' }),
    );
    try {
      assert.equal(await authOnce(t, 'alice', 'wonderland'), 200);
      // erin's password is right, but her entry belongs to other.org.
      assert.equal(await authOnce(t, 'erin', 'elsewhere'), 401);
    } finally {
      await t.close();
    }
  });

  it('a filter on mail=({username}@{domain}) finds the entry by address', async () => {
    const t = await relayWith(ldapOptions(slapd, { searchFilter: '(mail={username}@{domain})' }));
    try {
      assert.equal(await authOnce(t, 'alice', 'wonderland'), 200);
      assert.equal(await authOnce(t, 'bob', 'canwefixit'), 401);
    } finally {
      await t.close();
    }
  });

  it('a base with {domainDn} that does not exist in the directory means unknown user: 401', async () => {
    // example.com → dc=example,dc=com: people live right under it only with scope sub.
    const t = await relayWith(ldapOptions(slapd, { searchBase: 'ou=people,{domainDn}' }));
    try {
      assert.equal(await authOnce(t, 'alice', 'wonderland'), 200);
    } finally {
      await t.close();
    }
    const other = await startTestRelay({
      plugins: [['domain-map', { default: 'other.org' }], ['auth-ldap', ldapOptions(slapd, { searchBase: 'ou=people,{domainDn}' })]],
    });
    try {
      assert.equal(await authOnce(other, 'erin', 'elsewhere'), 401);
    } finally {
      await other.close();
    }
  });

  it('a config with both ha1Attribute and passwordAttribute is refused at start, naming the plugin', async () => {
    await assert.rejects(
      createRelay({
        listen: [{ transport: 'tcp', host: '127.0.0.1', port: 0 }],
        plugins: [['auth-ldap', ldapOptions(slapd, { passwordAttribute: 'userPassword' })]],
      }),
      /auth-ldap/,
    );
  });

  it('a malformed filter template is refused at start', async () => {
    await assert.rejects(
      createRelay({
        listen: [{ transport: 'tcp', host: '127.0.0.1', port: 0 }],
        plugins: [['auth-ldap', ldapOptions(slapd, { searchFilter: '(&(uid={username})' })]],
      }),
      /searchFilter/,
    );
  });
});

describe('auth-ldap: failures of the directory fail closed and recover', () => {
  let slapd: Slapd;
  before(async () => {
    slapd = await startSlapd({ suffix: SUFFIX, ldif: directoryLdif(), databaseConfig: ACL });
  });
  after(async () => {
    await slapd?.close();
  });

  it('a refused service-account bind answers 500 (not 401) and logs why, without any password', async () => {
    const log = new MemoryLogger();
    const t = await relayWith(ldapOptions(slapd, { bindCredentials: 'not-the-service-pw' }), log);
    try {
      const c = await MsrpTestClient.connect({ port: t.tcpPort });
      const r = await c.auth({ relayUri: t.authUri(), username: 'alice', password: 'wonderland' });
      assert.equal(r.status, 500);
      // A directory failure is not the client's failure: the connection stays usable.
      assert.equal(c.isClosed, false);
      await c.close();
      const line = log.lines.find((l) => l.level === 'error');
      assert.ok(line, log.text());
      assert.match(String(line.fields?.reason), /service account bind refused \(invalid credentials for cn=relay/);
      assert.doesNotMatch(log.text(), /not-the-service-pw|wonderland|relay-service-pw/);
    } finally {
      await t.close();
    }
  });

  it('server down: AUTH gets a prompt 500 and an error line; once slapd is back, AUTH works without restarting the relay', async () => {
    const log = new MemoryLogger();
    const t = await relayWith(ldapOptions(slapd), log);
    try {
      assert.equal(await authOnce(t, 'alice', 'wonderland'), 200);
      await slapd.stop();
      assert.equal(await authOnce(t, 'alice', 'wonderland'), 500);
      assert.equal(await authOnce(t, 'bob', 'canwefixit'), 500);
      const errors = log.lines.filter((l) => l.level === 'error');
      // One line for the outage, not one per AUTH.
      assert.equal(errors.length, 1, log.text());
      assert.match(errors[0]!.msg, /directory unavailable/);
      assert.match(String(errors[0]!.fields?.reason), /ECONNREFUSED/);
      await slapd.start();
      assert.equal(await authOnce(t, 'alice', 'wonderland'), 200);
      assert.ok(log.lines.some((l) => l.level === 'info' && /reachable again/.test(l.msg)), log.text());
    } finally {
      if (!slapd.running) await slapd.start();
      await t.close();
    }
  });

  it('a server that accepts but never answers (SIGSTOP) gets 500 from the operation timeout, before the hook timeout', async () => {
    const t = await relayWith(ldapOptions(slapd, { timeout: 1.5, connectTimeout: 1 }));
    try {
      assert.equal(await authOnce(t, 'alice', 'wonderland'), 200);
      slapd.pause();
      // 403 would be the hook timeout's answer (the relay giving up on the plugin); 500 is ours.
      assert.equal(await authOnce(t, 'alice', 'wonderland'), 500);
      slapd.resume();
      assert.equal(await authOnce(t, 'alice', 'wonderland'), 200);
    } finally {
      slapd.resume();
      await t.close();
    }
  });

  it('with the cache on, a user seen recently still authenticates while the server is down; others get 500', async () => {
    const t = await relayWith(ldapOptions(slapd, { cache: { ttl: 300 } }));
    try {
      assert.equal(await authOnce(t, 'alice', 'wonderland'), 200);
      await slapd.stop();
      assert.equal(await authOnce(t, 'alice', 'wonderland'), 200);
      assert.equal(await authOnce(t, 'alice', 'looking-glass'), 401);
      assert.equal(await authOnce(t, 'bob', 'canwefixit'), 500);
    } finally {
      if (!slapd.running) await slapd.start();
      await t.close();
    }
  });

  it('entries added while the relay runs are found (no cache by default)', async () => {
    const t = await relayWith(ldapOptions(slapd));
    try {
      assert.equal(await authOnce(t, 'frank', 'franky'), 401);
      await slapd.add(`dn: uid=frank,ou=people,${SUFFIX}
objectClass: inetOrgPerson
objectClass: msrpAccount
uid: frank
cn: Frank
sn: F
msrpDigestHA1: ${computeHa1('frank', REALM, 'franky')}
`);
      assert.equal(await authOnce(t, 'frank', 'franky'), 200);
    } finally {
      await t.close();
    }
  });
});

describe('auth-ldap: TLS to the directory', () => {
  let slapd: Slapd;
  let certs: TestCertificates;
  before(async () => {
    certs = await testCertificates();
    slapd = await startSlapd({ suffix: SUFFIX, ldif: directoryLdif(), databaseConfig: ACL, certificates: certs });
  });
  after(async () => {
    await slapd?.close();
  });

  it('ldaps:// with the CA file: 200', async () => {
    const t = await relayWith(ldapOptions(slapd, { url: slapd.ldapsUrl!, tls: { ca: certs.ca.certFile } }));
    try {
      assert.equal(await authOnce(t, 'alice', 'wonderland'), 200);
    } finally {
      await t.close();
    }
  });

  it('StartTLS on ldap:// with the CA file: 200', async () => {
    const t = await relayWith(ldapOptions(slapd, { startTls: true, tls: { ca: certs.ca.certFile } }));
    try {
      assert.equal(await authOnce(t, 'alice', 'wonderland'), 200);
    } finally {
      await t.close();
    }
  });

  it('ldaps:// to a server whose certificate is not trusted: 500 and a log line about the certificate', async () => {
    const log = new MemoryLogger();
    const t = await relayWith(ldapOptions(slapd, { url: slapd.ldapsUrl! }), log);
    try {
      assert.equal(await authOnce(t, 'alice', 'wonderland'), 500);
      assert.match(log.text(), /certificate/i);
    } finally {
      await t.close();
    }
  });

  it('ldaps:// with a servername the certificate does not carry: 500', async () => {
    const t = await relayWith(ldapOptions(slapd, { url: slapd.ldapsUrl!, tls: { ca: certs.ca.certFile, servername: 'ldap.elsewhere.test' } }));
    try {
      assert.equal(await authOnce(t, 'alice', 'wonderland'), 500);
    } finally {
      await t.close();
    }
  });
});
