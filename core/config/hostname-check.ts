/**
 * Is `hostname` something a peer can reach? It is written into every Use-Path URI the relay
 * issues (RFC 4976 §4.2, R-42), so a far end or a peer relay on another host connects to it:
 * `localhost` (the sample config's) or a single-label name works only on this host or network.
 *
 * hostnameWarnings() checks the form, without DNS, so `--check-config` says the same on any
 * machine: an IP literal passes, except the unspecified address, and a loopback address while a
 * listener accepts from other hosts; a name passes when it has at least two labels of letters,
 * digits and hyphens (RFC 1123), a last label that is not all digits, and is not under a
 * special-use suffix that never resolves elsewhere (localhost, localdomain, invalid, local:
 * RFC 6761, RFC 6762). Whether the name is in public DNS is not judged there.
 *
 * hostnameLookupWarning() adds the one DNS fact that is reliable from this host: the name does
 * not exist at all (ENOTFOUND, ENODATA). A failing or absent resolver (EAI_AGAIN, a timeout) says
 * nothing about the name and gives no warning; nor does a name that resolves here, which split
 * DNS may still hide from peers. The relay runs it at start without waiting for it.
 */

import { lookup as dnsLookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { addressBytes, classOf, isLoopbackHost } from '../transport/destination-policy.ts';

const LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

const ADVICE = "Set the relay's fully qualified domain name (or an IP address peers can reach).";

/** Warnings about `hostname` as a Use-Path host, one line each ([] when there is nothing to say). */
export function hostnameWarnings(hostname: string, listen: ReadonlyArray<{ readonly host: string }> = []): string[] {
  const shown = JSON.stringify(hostname);
  const bare = hostname.startsWith('[') && hostname.endsWith(']') ? hostname.slice(1, -1) : hostname;
  if (isIP(bare) !== 0) {
    const cls = classOf(addressBytes(bare)!);
    if (bare === '0.0.0.0' || bare === '::') return [`/hostname ${shown} is the unspecified address: no peer can connect to it (R-42). ${ADVICE}`];
    if (cls === 'loopback') {
      const open = listen.findIndex((l) => !isLoopbackHost(l.host));
      if (open >= 0) {
        return [
          `/hostname ${shown} is a loopback address, but /listen/${open} (${listen[open]!.host}) accepts connections from other hosts: they cannot reach the Use-Path URIs it is written into (R-42). ${ADVICE}`,
        ];
      }
    }
    return [];
  }
  const name = hostname.toLowerCase().replace(/\.$/, '');
  const labels = name.split('.');
  const last = labels[labels.length - 1]!;
  if (name === 'localhost' || name.endsWith('.localhost') || last === 'localdomain') {
    return [`/hostname ${shown} names this host only: peer relays and far ends on other hosts cannot reach the Use-Path URIs it is written into (R-42). ${ADVICE}`];
  }
  if (name.length > 253 || !labels.every((l) => LABEL.test(l))) return [`/hostname ${shown} is not a valid DNS name. ${ADVICE}`];
  if (labels.length < 2) {
    return [`/hostname ${shown} is not a fully qualified domain name: peers on other networks cannot resolve it in Use-Path URIs (R-42). ${ADVICE}`];
  }
  if (/^\d+$/.test(last)) return [`/hostname ${shown} is neither a DNS name (its last label is all digits) nor an IP address. ${ADVICE}`];
  if (last === 'invalid') return [`/hostname ${shown} is under .invalid, which never resolves (RFC 6761). ${ADVICE}`];
  if (last === 'local') return [`/hostname ${shown} is a multicast DNS name: only hosts on the same link resolve it (RFC 6762). ${ADVICE}`];
  return [];
}

export type HostnameLookup = (host: string) => Promise<unknown>;

/**
 * A warning when DNS says `hostname` does not exist; undefined otherwise (an IP literal, a name
 * hostnameWarnings() already warned about, a name that resolves, or no answer within `timeoutMs`).
 */
export async function hostnameLookupWarning(
  hostname: string,
  options: { lookup?: HostnameLookup; timeoutMs?: number } = {},
): Promise<string | undefined> {
  const bare = hostname.startsWith('[') && hostname.endsWith(']') ? hostname.slice(1, -1) : hostname;
  if (isIP(bare) !== 0 || hostnameWarnings(hostname).length > 0) return undefined;
  const lookup = options.lookup ?? ((h: string) => dnsLookup(h, { all: true }));
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((r) => {
    timer = setTimeout(() => r('timeout'), options.timeoutMs ?? 5000);
    timer.unref();
  });
  try {
    await Promise.race([lookup(bare), timeout]);
    return undefined;
  } catch (e) {
    const code = (e as { code?: unknown }).code;
    if (code !== 'ENOTFOUND' && code !== 'ENODATA') return undefined;
    return `/hostname ${JSON.stringify(hostname)} does not resolve from this host (${code}): peers must resolve it to reach the Use-Path URIs it is written into (R-42). ${ADVICE}`;
  } finally {
    clearTimeout(timer);
  }
}
