/**
 * Where the relay may dial (`outbound.allow` / `outbound.deny`): a guard against a client
 * using the relay to reach hosts and ports it should not (SSRF). RFC 4976 has a relay connect
 * to whatever next hop a To-Path names, so an authenticated user picks host and port, and the
 * body of a SEND is written there. See docs/guides/deployment.md for the reasoning.
 *
 * The decision is taken on the addresses the next hop resolves to, every one of them (a name
 * that resolves to a public address and to 127.0.0.1 is refused), and the relay then dials the
 * address that was checked, not the name again: a second lookup could answer otherwise (DNS
 * rebinding). IPv4 addresses are compared as IPv4-mapped IPv6 addresses, so `127.0.0.1`,
 * `::ffff:127.0.0.1` and `::ffff:7f00:1` are one destination; an address under the NAT64
 * prefix 64:ff9b::/96 is judged as the IPv4 address it carries.
 *
 * Nothing here opens a socket: names are resolved through an injectable `lookup` (dns.lookup
 * with `all: true` by default), so the module is tested without a network.
 *
 * Rules are strings:
 *
 *   10.0.0.0/8   192.168.1.7   fd00::/8   ::1   [fd00::/8]:2855   (addresses and CIDRs)
 *   relay.example.com   *.example.com                              (names, before resolution)
 *   loopback   link-local   metadata   private   reserved           (built-in address classes)
 *   *   :25   :1-1023   10.0.0.0/8:22   *.example.com:2855          (any host; ports)
 *
 * Precedence: a `deny` rule always refuses; an `allow` rule lifts the built-in refusals
 * (loopback, link-local, metadata, reserved) and nothing else; the rest is allowed.
 */

import { lookup as dnsLookup } from 'node:dns/promises';
import { isIP, isIPv4, isIPv6 } from 'node:net';
import type { NextHop } from '../types.ts';

/** Address classes a rule may name; all but `private` are refused unless allowed. */
export type AddressClass = 'loopback' | 'link-local' | 'metadata' | 'private' | 'reserved';

export const ADDRESS_CLASSES: readonly AddressClass[] = ['loopback', 'link-local', 'metadata', 'private', 'reserved'];

/** What `outbound` in the config says about destinations (core/config/schema.ts). */
export interface DestinationPolicyConfig {
  readonly allow: readonly string[];
  readonly deny: readonly string[];
  /** `auto`: loopback may be dialled when every listener is on loopback. */
  readonly loopback: 'auto' | boolean;
}

export interface PortRange {
  readonly from: number;
  readonly to: number;
}

export type RuleTarget =
  | { readonly kind: 'any' }
  | { readonly kind: 'cidr'; readonly net: Uint8Array; readonly bits: number }
  | { readonly kind: 'name'; readonly name: string; readonly wildcard: boolean }
  | { readonly kind: 'class'; readonly name: AddressClass };

export interface DestinationRule {
  /** The rule as written, for logs. */
  readonly text: string;
  readonly target: RuleTarget;
  /** Absent: every port. */
  readonly ports: PortRange | undefined;
}

/** The outcome of check(). */
export type DestinationVerdict =
  /** Dial `hop`: the next hop with its host replaced by the first checked address. */
  | { readonly kind: 'allowed'; readonly hop: NextHop; readonly addresses: readonly string[] }
  /** Refused: the address that was refused (absent for a name rule) and why. */
  | { readonly kind: 'denied'; readonly address: string | undefined; readonly rule: string }
  /** The name did not resolve (in time): the next hop is unreachable, not refused. */
  | { readonly kind: 'unresolved'; readonly reason: string };

export type LookupAll = (host: string) => Promise<ReadonlyArray<{ address: string; family: number }>>;

const defaultLookup: LookupAll = (host) => dnsLookup(host, { all: true });

// ------------------------------------------------------------------ addresses

/**
 * The 16 octets of an IPv4 or IPv6 address (IPv4 as ::ffff:a.b.c.d), or undefined when `text`
 * is neither. A zone (`fe80::1%eth0`) is ignored. Brackets are accepted.
 */
export function addressBytes(text: string): Uint8Array | undefined {
  let s = text;
  if (s.startsWith('[') && s.endsWith(']')) s = s.slice(1, -1);
  const zone = s.indexOf('%');
  if (zone >= 0) s = s.slice(0, zone);
  if (isIPv4(s)) return mappedV4(s);
  if (!isIPv6(s)) return undefined;
  const out = new Uint8Array(16);
  // An IPv4 dotted tail (::ffff:1.2.3.4) stands for the last two groups.
  const lastColon = s.lastIndexOf(':');
  const v4Tail = s.slice(lastColon + 1);
  if (v4Tail.includes('.')) {
    const b = mappedV4(v4Tail);
    s = `${s.slice(0, lastColon + 1)}${((b[12]! << 8) | b[13]!).toString(16)}:${((b[14]! << 8) | b[15]!).toString(16)}`;
  }
  const groups = (part: string): number[] => (part === '' ? [] : part.split(':').map((g) => parseInt(g, 16)));
  const dbl = s.indexOf('::');
  let words: number[];
  if (dbl >= 0) {
    const left = groups(s.slice(0, dbl));
    const right = groups(s.slice(dbl + 2));
    words = [...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right];
  } else {
    words = groups(s);
  }
  if (words.length !== 8) return undefined;
  words.forEach((w, i) => {
    out[2 * i] = w >> 8;
    out[2 * i + 1] = w & 0xff;
  });
  return canonical(out);
}

function mappedV4(s: string): Uint8Array {
  const out = new Uint8Array(16);
  out[10] = 0xff;
  out[11] = 0xff;
  s.split('.').forEach((p, i) => (out[12 + i] = Number(p)));
  return out;
}

const NAT64 = new Uint8Array([0x00, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0]);

/** An address under 64:ff9b::/96 (NAT64) is the IPv4 address it embeds. */
function canonical(b: Uint8Array): Uint8Array {
  for (let i = 0; i < 12; i++) if (b[i] !== NAT64[i]) return b;
  const out = new Uint8Array(16);
  out[10] = 0xff;
  out[11] = 0xff;
  out.set(b.subarray(12), 12);
  return out;
}

function inNet(addr: Uint8Array, net: Uint8Array, bits: number): boolean {
  let i = 0;
  for (; bits >= 8; bits -= 8, i++) if (addr[i] !== net[i]) return false;
  if (bits === 0) return true;
  const mask = (0xff << (8 - bits)) & 0xff;
  return (addr[i]! & mask) === (net[i]! & mask);
}

/** A CIDR from its text; IPv4 prefixes count from the mapped prefix (::ffff:0:0/96). */
function cidr(text: string): { net: Uint8Array; bits: number } | string {
  const slash = text.indexOf('/');
  const addr = slash < 0 ? text : text.slice(0, slash);
  const bytes = addressBytes(addr);
  if (bytes === undefined) return `"${addr}" is not an IP address`;
  const v4 = isIPv4(addr);
  const max = v4 ? 32 : 128;
  let len = max;
  if (slash >= 0) {
    const l = text.slice(slash + 1);
    if (!/^\d{1,3}$/.test(l) || Number(l) > max) return `the prefix length must be 0-${max}`;
    len = Number(l);
  }
  return { net: bytes, bits: v4 ? 96 + len : len };
}

function nets(...texts: string[]): Array<{ net: Uint8Array; bits: number }> {
  return texts.map((t) => cidr(t) as { net: Uint8Array; bits: number });
}

/**
 * The built-in classes. `loopback` includes the unspecified addresses, which reach the host
 * itself on Linux; `metadata` is the cloud providers' instance-metadata and platform addresses
 * (AWS, GCP, Azure, Oracle, DigitalOcean: 169.254.169.254; AWS IPv6: fd00:ec2::254; Alibaba:
 * 100.100.100.200; Azure's platform endpoint: 168.63.129.16).
 */
const CLASS_NETS: Record<AddressClass, Array<{ net: Uint8Array; bits: number }>> = {
  metadata: nets('169.254.169.254/32', 'fd00:ec2::254/128', '100.100.100.200/32', '168.63.129.16/32'),
  loopback: nets('127.0.0.0/8', '0.0.0.0/8', '::1/128', '::/128'),
  'link-local': nets('169.254.0.0/16', 'fe80::/10'),
  reserved: nets('224.0.0.0/4', '240.0.0.0/4', 'ff00::/8'),
  private: nets('10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '100.64.0.0/10', 'fc00::/7', 'fec0::/10'),
};

/** Most specific first: 169.254.169.254 is told as metadata, not link-local. */
const CLASS_ORDER: readonly AddressClass[] = ['metadata', 'loopback', 'link-local', 'reserved', 'private'];

export function inClass(address: string | Uint8Array, cls: AddressClass): boolean {
  const b = typeof address === 'string' ? addressBytes(address) : address;
  return b !== undefined && CLASS_NETS[cls].some((n) => inNet(b, n.net, n.bits));
}

/** The most telling class of an address (metadata before link-local), if any. */
export function classOf(address: string | Uint8Array): AddressClass | undefined {
  const b = typeof address === 'string' ? addressBytes(address) : address;
  if (b === undefined) return undefined;
  return CLASS_ORDER.find((c) => CLASS_NETS[c].some((n) => inNet(b, n.net, n.bits)));
}

/** A listener host that only this machine can connect to: 127/8, ::1, `localhost`. */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase().replace(/\.$/, '');
  if (h === 'localhost' || h.endsWith('.localhost')) return true;
  const b = addressBytes(h);
  if (b === undefined) return false;
  // Not the unspecified addresses: a listener on 0.0.0.0 or :: accepts from everywhere.
  return inNet(b, CLASS_NETS.loopback[0]!.net, CLASS_NETS.loopback[0]!.bits) || inNet(b, CLASS_NETS.loopback[2]!.net, 128);
}

// ------------------------------------------------------------------ rules

const LABEL = /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/;

function parsePorts(text: string): PortRange | string {
  const m = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(text);
  if (m === null) return `"${text}" is not a port or a port range (25, 8000-8999)`;
  const from = Number(m[1]);
  const to = m[2] !== undefined ? Number(m[2]) : from;
  if (from < 1 || to > 65535) return 'ports are 1-65535';
  if (from > to) return `the range ${text} is empty`;
  return { from, to };
}

function parseTarget(text: string): RuleTarget | string {
  if (text === '*') return { kind: 'any' };
  if ((ADDRESS_CLASSES as readonly string[]).includes(text)) return { kind: 'class', name: text as AddressClass };
  if (text.includes('/') || isIP(text) !== 0) {
    const c = cidr(text);
    return typeof c === 'string' ? c : { kind: 'cidr', ...c };
  }
  if (/^[0-9.]+$/.test(text)) return 'not an IPv4 address';
  const wildcard = text.startsWith('*.');
  const name = (wildcard ? text.slice(2) : text).replace(/\.$/, '');
  if (name.length === 0 || name.length > 253 || !name.split('.').every((l) => LABEL.test(l))) {
    return `not an address, a CIDR, a host name (*.example.com), a class (${ADDRESS_CLASSES.join(', ')}) or *`;
  }
  return { kind: 'name', name, wildcard };
}

/** Parses one allow/deny entry; a string is the reason it is not one (to follow the quoted entry). */
export function parseRule(entry: string): DestinationRule | string {
  const text = entry.trim().toLowerCase();
  if (text === '') return 'empty';
  let host: string;
  let portText: string | undefined;
  if (text.startsWith(':') && !text.startsWith('::')) {
    host = '*';
    portText = text.slice(1);
  } else if (text.startsWith('[')) {
    const close = text.indexOf(']');
    if (close < 0) return 'unclosed "["';
    host = text.slice(1, close);
    const rest = text.slice(close + 1);
    if (rest !== '' && !rest.startsWith(':')) return 'only ":<port>" may follow "]"';
    if (rest !== '') portText = rest.slice(1);
    if (!isIPv6(host.split('/')[0]!)) return 'brackets hold an IPv6 address or CIDR';
  } else {
    const colons = text.split(':').length - 1;
    if (colons >= 2) {
      host = text; // bare IPv6 (with or without a prefix length): no port; write [addr]:port for one
    } else if (colons === 1) {
      const i = text.indexOf(':');
      host = text.slice(0, i);
      portText = text.slice(i + 1);
    } else {
      host = text;
    }
  }
  const target = parseTarget(host);
  if (typeof target === 'string') return target;
  let ports: PortRange | undefined;
  if (portText !== undefined) {
    const p = parsePorts(portText);
    if (typeof p === 'string') return p;
    ports = p;
  }
  return { text: entry, target, ports };
}

function portMatches(rule: DestinationRule, port: number): boolean {
  return rule.ports === undefined || (port >= rule.ports.from && port <= rule.ports.to);
}

function nameMatches(rule: DestinationRule, host: string): boolean {
  const t = rule.target;
  if (t.kind !== 'name') return false;
  return t.wildcard ? host.endsWith(`.${t.name}`) : host === t.name;
}

function addressMatches(rule: DestinationRule, addr: Uint8Array): boolean {
  const t = rule.target;
  switch (t.kind) {
    case 'any':
      return true;
    case 'cidr':
      return inNet(addr, t.net, t.bits);
    case 'class':
      return CLASS_NETS[t.name].some((n) => inNet(addr, n.net, n.bits));
    case 'name':
      return false;
  }
}

// ------------------------------------------------------------------ the policy

/** A policy compiled from the config: decide() is pure and synchronous. */
export class CompiledPolicy {
  readonly allow: readonly DestinationRule[];
  readonly deny: readonly DestinationRule[];
  /** Classes refused unless an allow rule matches. */
  readonly refused: readonly AddressClass[];

  /** @throws Error naming the first bad rule (the config validator reports them all first). */
  constructor(config: DestinationPolicyConfig, listenHosts: readonly string[]) {
    const compile = (list: readonly string[], key: string) =>
      list.map((e, i) => {
        const r = parseRule(e);
        if (typeof r === 'string') throw new Error(`outbound.${key}[${i}]: ${r}`);
        return r;
      });
    this.allow = compile(config.allow, 'allow');
    this.deny = compile(config.deny, 'deny');
    const loopbackOk = config.loopback === 'auto' ? listenHosts.length > 0 && listenHosts.every(isLoopbackHost) : config.loopback;
    this.refused = loopbackOk ? ['metadata', 'link-local', 'reserved'] : ['metadata', 'loopback', 'link-local', 'reserved'];
  }

  /**
   * The decision for a next hop `host` (a name or an address, as resolveNextHop gave it) at
   * `port` that resolved to `addresses`: undefined when allowed, else the refused address and rule.
   */
  decide(host: string, port: number, addresses: readonly string[]): { address: string | undefined; rule: string } | undefined {
    const name = hostName(host);
    let named = false;
    if (name !== undefined) {
      const d = this.deny.find((r) => nameMatches(r, name) && portMatches(r, port));
      if (d !== undefined) return { address: undefined, rule: d.text };
      named = this.allow.some((r) => nameMatches(r, name) && portMatches(r, port));
    }
    for (const a of addresses) {
      const b = addressBytes(a);
      if (b === undefined) return { address: a, rule: 'not an IP address' };
      const d = this.deny.find((r) => addressMatches(r, b) && portMatches(r, port));
      if (d !== undefined) return { address: a, rule: d.text };
      if (named || this.allow.some((r) => addressMatches(r, b) && portMatches(r, port))) continue;
      const cls = this.refused.find((c) => CLASS_NETS[c].some((n) => inNet(b, n.net, n.bits)));
      if (cls !== undefined) return { address: a, rule: `built-in: ${cls}` };
    }
    return undefined;
  }
}

/** The host as a lower-case name without a trailing dot, or undefined for an IP literal. */
function hostName(host: string): string | undefined {
  if (addressBytes(host) !== undefined) return undefined;
  return host.toLowerCase().replace(/\.$/, '');
}

export interface DestinationPolicyOptions {
  /** Resolves a name to all its addresses (default: dns.lookup with `all: true`). */
  lookup?: LookupAll;
}

/**
 * Checks next hops against the config's `outbound` rules. One per relay; the rules are
 * compiled once per config object (a reload brings a new one).
 */
export class DestinationPolicy {
  private readonly lookup: LookupAll;
  private compiled: { config: DestinationPolicyConfig; hosts: string; policy: CompiledPolicy } | undefined;

  constructor(options: DestinationPolicyOptions = {}) {
    this.lookup = options.lookup ?? defaultLookup;
  }

  compile(config: DestinationPolicyConfig, listenHosts: readonly string[]): CompiledPolicy {
    const hosts = listenHosts.join(' ');
    const c = this.compiled;
    if (c !== undefined && c.config === config && c.hosts === hosts) return c.policy;
    const policy = new CompiledPolicy(config, listenHosts);
    this.compiled = { config, hosts, policy };
    return policy;
  }

  /**
   * Resolves `hop.host` (unless it is an address) and decides. An allowed hop comes back with
   * its host replaced by the first address checked, and, for TLS to a name, `servername` set to
   * that name so SNI and the certificate check are unchanged.
   */
  async check(hop: NextHop, config: DestinationPolicyConfig, listenHosts: readonly string[], timeoutMs: number): Promise<DestinationVerdict> {
    const policy = this.compile(config, listenHosts);
    const bare = hop.host.startsWith('[') && hop.host.endsWith(']') ? hop.host.slice(1, -1) : hop.host;
    const literal = addressBytes(bare) !== undefined;
    // A name refused as such needs no lookup.
    if (!literal) {
      const byName = policy.decide(bare, hop.port, []);
      if (byName !== undefined) return { kind: 'denied', ...byName };
    }
    let addresses: string[];
    if (literal) {
      addresses = [bare];
    } else {
      try {
        addresses = (await withTimeout(this.lookup(bare), timeoutMs)).map((a) => a.address);
      } catch (e) {
        const code = (e as { code?: unknown }).code;
        return { kind: 'unresolved', reason: `cannot resolve ${bare}: ${typeof code === 'string' ? code : (e as Error).message}` };
      }
      if (addresses.length === 0) return { kind: 'unresolved', reason: `${bare} has no address` };
    }
    const refusal = policy.decide(bare, hop.port, addresses);
    if (refusal !== undefined) return { kind: 'denied', ...refusal };
    const first = addresses[0]!;
    if (literal) return { kind: 'allowed', hop: bare === hop.host ? hop : { ...hop, host: bare }, addresses };
    const pinned: NextHop = {
      ...hop,
      host: first,
      ...(hop.transport === 'tls' && hop.servername === undefined ? { servername: bare } : {}),
    };
    return { kind: 'allowed', hop: pinned, addresses };
  }
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  if (!(ms > 0)) return p;
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`lookup timed out after ${ms} ms`)), ms);
    timer.unref?.();
    p.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(timer);
        reject(e instanceof Error ? e : new Error(String(e)));
      },
    );
  });
}
