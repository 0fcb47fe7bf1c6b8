/**
 * Search filter and base DN templates for auth-ldap, with the escaping that
 * keeps an AUTH username from changing what is searched for.
 *
 * A Digest username is chosen by the peer (RFC.md R-35: any quoted string), so
 * it is data, never filter syntax: `*`, `(`, `)`, `\` and NUL are written as
 * `\2a`, `\28`, `\29`, `\5c` and `\00` (RFC 4515 §3). A username `*` then only
 * matches an entry whose uid is the one-character string "*", and
 * `a)(uid=*` stays one equality assertion value.
 */

/** Placeholders a filter or base template may hold. */
export interface TemplateValues {
  /** The Digest username. */
  username: string;
  /** The SIP domain the AUTH is for. */
  domain: string;
  /** The Digest realm (the domain, unless a resolveDomain tap said otherwise). */
  realm: string;
}

const PLACEHOLDER = /\{(username|domain|realm|domainDn)\}/g;

/** RFC 4515 §3: the characters an assertion value must not carry raw. */
export function escapeFilterValue(value: string): string {
  let out = '';
  for (const ch of value) {
    const code = ch.codePointAt(0)!;
    // Required by RFC 4515: NUL ( ) * \ ; other C0 controls are escaped too so a
    // log line or a server never sees a raw control byte.
    if (ch === '*' || ch === '(' || ch === ')' || ch === '\\' || code < 0x20 || code === 0x7f) {
      out += `\\${code.toString(16).padStart(2, '0')}`;
    } else {
      out += ch;
    }
  }
  return out;
}

/** RFC 4514 §2.4: an attribute value inside a DN (for `{domain}` in a base DN). */
export function escapeDnValue(value: string): string {
  let out = '';
  const chars = [...value];
  chars.forEach((ch, i) => {
    const code = ch.codePointAt(0)!;
    if (code === 0) out += '\\00';
    else if ('"+,;<>\\'.includes(ch)) out += `\\${ch}`;
    else if ((i === 0 && (ch === ' ' || ch === '#')) || (i === chars.length - 1 && ch === ' ')) out += `\\${ch}`;
    else if (code < 0x20 || code === 0x7f) out += `\\${code.toString(16).padStart(2, '0')}`;
    else out += ch;
  });
  return out;
}

/** `example.com` → `dc=example,dc=com` (the RFC 2247 layout), each label escaped. */
export function domainToDn(domain: string): string {
  return domain
    .split('.')
    .filter((label) => label.length > 0)
    .map((label) => `dc=${escapeDnValue(label)}`)
    .join(',');
}

/** Fills a filter template: every value is filter-escaped. */
export function fillFilter(template: string, v: TemplateValues): string {
  return template.replace(PLACEHOLDER, (_m, name: string) => {
    if (name === 'domainDn') return escapeFilterValue(domainToDn(v.domain));
    return escapeFilterValue(v[name as keyof TemplateValues]);
  });
}

/** Fills a base DN template: `{domain}`, `{realm}` DN-escaped, `{domainDn}` as dc= components. */
export function fillBase(template: string, v: TemplateValues): string {
  return template.replace(PLACEHOLDER, (_m, name: string) => {
    if (name === 'domainDn') return domainToDn(v.domain);
    return escapeDnValue(v[name as keyof TemplateValues]);
  });
}

/**
 * A filter template must be one parenthesised filter with balanced parentheses
 * (outside escapes). Checked at config time so a typo is named before the relay
 * starts instead of turning every AUTH into a 500.
 */
export function checkFilterTemplate(template: string): string | undefined {
  const t = template.trim();
  if (!t.startsWith('(') || !t.endsWith(')')) return 'must be a parenthesised LDAP filter, e.g. (uid={username})';
  let depth = 0;
  for (let i = 0; i < t.length; i++) {
    const ch = t[i];
    if (ch === '\\') {
      i += 2;
      continue;
    }
    if (ch === '(') depth++;
    else if (ch === ')') {
      depth--;
      if (depth < 0) return 'has an unbalanced ")"';
      if (depth === 0 && i !== t.length - 1) return 'must be a single filter: wrap several in (&...)';
    }
  }
  if (depth !== 0) return 'has an unbalanced "("';
  if (!/\{username\}/.test(t)) return 'must contain {username}';
  return undefined;
}
