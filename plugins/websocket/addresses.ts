/**
 * Who is at the other end of an upgrade: the declared proxies whose X-Forwarded-For is
 * believed, the client address taken from it, loopback, and the Origin allow-list (W-10).
 */

import { BlockList, isIP } from 'node:net';

/** An IPv4-mapped IPv6 address (`::ffff:192.0.2.1`) as the IPv4 address it is. */
export function plainAddress(a: string): string {
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(a);
  return m !== null ? m[1]! : a;
}

export function isLoopback(host: string): boolean {
  const h = plainAddress(host.replace(/^\[|\]$/g, '')).toLowerCase();
  return h === 'localhost' || h === '::1' || /^127\./.test(h);
}

/** Addresses and CIDRs (`10.0.0.0/8`, `2001:db8::/32`, `192.0.2.7`). */
export class AddressSet {
  private readonly list = new BlockList();
  readonly size: number;

  /** @throws Error naming an entry that is neither an address nor a CIDR. */
  constructor(entries: readonly string[]) {
    for (const e of entries) {
      const [addr, bits] = e.split('/') as [string, string | undefined];
      const a = plainAddress(addr);
      const family = isIP(a);
      if (family === 0) throw new Error(`"${e}" is not an IP address or CIDR`);
      const type = family === 4 ? 'ipv4' : 'ipv6';
      if (bits === undefined) this.list.addAddress(a, type);
      else {
        const n = Number(bits);
        if (!/^\d+$/.test(bits) || n > (family === 4 ? 32 : 128)) throw new Error(`"${e}": bad prefix length`);
        this.list.addSubnet(a, n, type);
      }
    }
    this.size = entries.length;
  }

  has(address: string): boolean {
    if (this.size === 0) return false;
    const a = plainAddress(address);
    const family = isIP(a);
    if (family === 0) return false;
    return this.list.check(a, family === 4 ? 'ipv4' : 'ipv6');
  }
}

/**
 * The client's address behind trusted proxies: X-Forwarded-For read from the right, skipping
 * the proxies' own addresses; the first address that is no trusted proxy is the client. The
 * header is believed only when the socket's peer is a trusted proxy. Anything unparsable ends
 * the walk at the last trusted hop.
 */
export function clientAddress(peer: string, forwardedFor: string | string[] | undefined, trusted: AddressSet): string {
  const direct = plainAddress(peer);
  if (!trusted.has(direct) || forwardedFor === undefined) return direct;
  const hops = (Array.isArray(forwardedFor) ? forwardedFor.join(',') : forwardedFor)
    .split(',')
    .map((s) => stripPort(s.trim()))
    .filter((s) => s !== '');
  let client = direct;
  for (let i = hops.length - 1; i >= 0; i--) {
    const h = plainAddress(hops[i]!);
    if (isIP(h) === 0) break;
    client = h;
    if (!trusted.has(h)) break;
  }
  return client;
}

/** `192.0.2.1:4711`, `[2001:db8::1]:4711` → the address alone. */
function stripPort(s: string): string {
  const v6 = /^\[([^\]]+)\](?::\d+)?$/.exec(s);
  if (v6 !== null) return v6[1]!;
  const v4 = /^(\d+\.\d+\.\d+\.\d+):\d+$/.exec(s);
  return v4 !== null ? v4[1]! : s;
}

/**
 * W-10: an Origin allow-list. Entries are origins (`https://chat.example.com`), with `*` for
 * one or more DNS labels (`https://*.example.com`), or `*` for any. An empty list allows any.
 */
export class OriginList {
  private readonly exact = new Set<string>();
  private readonly patterns: RegExp[] = [];
  private readonly any: boolean;

  constructor(entries: readonly string[]) {
    this.any = entries.length === 0 || entries.includes('*');
    for (const e of entries) {
      if (e === '*') continue;
      const o = e.toLowerCase().replace(/\/+$/, '');
      if (!o.includes('*')) this.exact.add(o);
      else this.patterns.push(new RegExp(`^${o.split('*').map(escapeRegExp).join('[a-z0-9-]+(?:\\.[a-z0-9-]+)*')}$`));
    }
  }

  /** True when a browser from `origin` may connect (no Origin header: not a browser, allowed unless `required`). */
  allows(origin: string | undefined, required: boolean): boolean {
    if (origin === undefined) return !required;
    if (this.any) return true;
    const o = origin.toLowerCase();
    return this.exact.has(o) || this.patterns.some((p) => p.test(o));
  }
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}
