/**
 * Who a URI names, for the focus's comparisons: the CPIM From against the participant's
 * identity (C-4), a private message's To against the participants (C-11), a user's several
 * sessions (C-10, C-14), roles and bans, room URIs.
 *
 * The key of `sip:alice@Example.COM;transport=tls` is `alice@example.com`: the user part as
 * written (percent-decoded; user parts are case-sensitive, RFC 3261 §19.1.4), the host in lower
 * case, port, parameters and headers left out. The schemes sip, sips, im and pres name the same
 * user (a client may write its SIP AOR or its im: URI in CPIM From); tel URIs are keyed by
 * their number; any other scheme by the whole URI.
 */

const SAME_USER_SCHEMES = new Set(['sip', 'sips', 'im', 'pres']);

/** The key of a user URI, or undefined when it is not a URI. */
export function userKey(uri: string): string | undefined {
  const m = /^([A-Za-z][A-Za-z0-9+.-]*):(.+)$/.exec(uri.trim());
  if (m === null) return undefined;
  const scheme = m[1]!.toLowerCase();
  let rest = m[2]!;
  if (scheme === 'tel') return `tel:${rest.split(';')[0]!.replace(/[-.()]/g, '')}`;
  if (!SAME_USER_SCHEMES.has(scheme)) return `${scheme}:${rest}`;
  rest = rest.split(/[;?]/)[0]!;
  const at = rest.lastIndexOf('@');
  const user = at === -1 ? '' : rest.slice(0, at);
  let host = at === -1 ? rest : rest.slice(at + 1);
  if (host === '') return undefined;
  // The port does not change who the user is.
  host = host.startsWith('[') ? host.slice(0, host.indexOf(']') + 1) : host.split(':')[0]!;
  let decoded: string;
  try {
    decoded = decodeURIComponent(user);
  } catch {
    decoded = user;
  }
  return `${decoded}@${host.toLowerCase()}`;
}

/** True when both URIs name the same user. */
export function sameUser(a: string, b: string): boolean {
  const ka = userKey(a);
  return ka !== undefined && ka === userKey(b);
}

/**
 * A pattern of an ACL entry: a full URI (`sip:alice@example.com`), a user key
 * (`alice@example.com`), or a domain wildcard (`*@example.com`).
 */
export function matchesUserPattern(pattern: string, key: string): boolean {
  const p = pattern.trim();
  if (p.startsWith('*@')) return key.endsWith(`@${p.slice(2).toLowerCase()}`);
  const pk = p.includes(':') ? userKey(p) : userKey(`sip:${p}`);
  return pk !== undefined && pk === key;
}
