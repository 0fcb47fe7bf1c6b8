// auth-ldap's templates without a server: RFC 4515 §3 filter escaping, RFC 4514 §2.4 DN escaping.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { FilterParser } from 'ldapts';
import { checkFilterTemplate, domainToDn, escapeDnValue, escapeFilterValue, fillBase, fillFilter } from '../../plugins/auth-ldap/filter.ts';

const v = (username: string, domain = 'example.com') => ({ username, domain, realm: domain });

describe('RFC 4515 §3: a username is an assertion value, never filter syntax', () => {
  it('escapes * ( ) \\ and NUL as \\2a \\28 \\29 \\5c \\00', () => {
    assert.equal(escapeFilterValue('*'), '\\2a');
    assert.equal(escapeFilterValue('a)(uid=*'), 'a\\29\\28uid=\\2a');
    assert.equal(escapeFilterValue('ali\\63e'), 'ali\\5c63e');
    assert.equal(escapeFilterValue('a\u0000b'), 'a\\00b');
  });

  it('leaves ordinary names, dots, @ and non-ASCII letters alone', () => {
    assert.equal(escapeFilterValue('alice.smith+sip@example.com'), 'alice.smith+sip@example.com');
    assert.equal(escapeFilterValue('jos\u00e9'), 'jos\u00e9');
  });

  for (const username of ['*', 'alic*', 'a)(uid=*', 'x)(|(uid=alice', 'ali\\63e', '(', ')', '\\']) {
    it(`the filled filter for ${JSON.stringify(username)} parses as one equality match on that exact value`, () => {
      const filter = FilterParser.parseString(fillFilter('(&(objectClass=msrpAccount)(uid={username}))', v(username)));
      const text = filter.toString();
      // One AND of two equality assertions, the second carrying the username verbatim.
      const parsed = filter as unknown as { filters: Array<{ attribute: string; value: string; constructor: { name: string } }> };
      assert.equal(parsed.filters.length, 2, text);
      assert.equal(parsed.filters[1]!.constructor.name, 'EqualityFilter', text);
      assert.equal(parsed.filters[1]!.attribute, 'uid');
      assert.equal(parsed.filters[1]!.value, username);
    });
  }

  it('fills {domain} and {realm} escaped too', () => {
    assert.equal(fillFilter('(mail={username}@{domain})', v('bob', 'ex*ample.com')), '(mail=bob@ex\\2aample.com)');
  });
});

describe('RFC 4514 §2.4: values placed in a base DN', () => {
  it('escapes the DN specials', () => {
    assert.equal(escapeDnValue('a,b+c"d\\e<f>g;h'), 'a\\,b\\+c\\"d\\\\e\\<f\\>g\\;h');
    assert.equal(escapeDnValue(' #x '), '\\ #x\\ ');
    assert.equal(escapeDnValue('#x'), '\\#x');
  });

  it('{domainDn} turns example.com into dc=example,dc=com (RFC 2247)', () => {
    assert.equal(domainToDn('example.com'), 'dc=example,dc=com');
    assert.equal(fillBase('ou=people,{domainDn}', v('alice')), 'ou=people,dc=example,dc=com');
    assert.equal(fillBase('ou={domain},dc=sip', v('alice', 'a,b.org')), 'ou=a\\,b.org,dc=sip');
  });
});

describe('filter templates are checked at start', () => {
  it('accepts one balanced filter with {username}', () => {
    assert.equal(checkFilterTemplate('(uid={username})'), undefined);
    assert.equal(checkFilterTemplate('(&(uid={username})(cn=a\\29b))'), undefined);
  });
  it('refuses unbalanced, bare, several or username-less filters', () => {
    assert.match(checkFilterTemplate('(&(uid={username})')!, /unbalanced/);
    assert.match(checkFilterTemplate('uid={username}')!, /parenthesised/);
    assert.match(checkFilterTemplate('(uid={username})(cn=x)')!, /single filter/);
    assert.match(checkFilterTemplate('(uid=alice)')!, /\{username\}/);
  });
});
