/**
 * AUTH handshakes per second with auth-ldap against a private slapd.
 *
 *   node --import tsx bench/auth-ldap.bench.ts
 *
 * One handshake = TCP connect + AUTH (401 challenge) + AUTH with Digest
 * credentials (200) + close, as an MSRP client does it before its first SEND.
 * 20 clients run handshakes back to back for AUTH_BENCH_SECONDS (default 8)
 * after a 2 s warm-up, against one relay in this process. Cases:
 *   auth-memory            the same handshake with no directory (the ceiling)
 *   auth-ldap              HA1 searched in slapd on every credentialed AUTH
 *   auth-ldap cache 30 s   the same with the plugin's cache on
 * Reported: handshakes/s, latency p50/p99 of a whole handshake, and CPU
 * seconds of this process (relay + clients) and of slapd per 1000 handshakes.
 * The machine's other load shows in the numbers: they are indicative.
 */

import { cpus } from 'node:os';
import { computeHa1 } from '../core/protocol/digest.ts';
import { MsrpTestClient } from '../core/testing/client.ts';
import { startTestRelay, type TestRelay } from '../core/testing/harness.ts';
import { startSlapd, type Slapd } from '../test/support/slapd.ts';
import { cpuSeconds, ownCpuSeconds } from './process-stats.ts';
import { latencySummary } from './stats.ts';

const SECONDS = Number(process.env['AUTH_BENCH_SECONDS'] ?? 8);
const WARMUP_SECONDS = 2;
const CLIENTS = 20;
const USERS = 200;
const REALM = 'example.com';
const SUFFIX = 'dc=example,dc=com';
const SERVICE_DN = `cn=relay,ou=services,${SUFFIX}`;

function directory(): string {
  let ldif = `dn: ${SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\no: Example\ndc: example\n\n`;
  ldif += `dn: ou=services,${SUFFIX}\nobjectClass: organizationalUnit\nou: services\n\n`;
  ldif += `dn: ${SERVICE_DN}\nobjectClass: applicationProcess\nobjectClass: simpleSecurityObject\ncn: relay\nuserPassword: bench-service\n\n`;
  ldif += `dn: ou=people,${SUFFIX}\nobjectClass: organizationalUnit\nou: people\n\n`;
  for (let i = 0; i < USERS; i++) {
    const uid = `user${i}`;
    ldif += `dn: uid=${uid},ou=people,${SUFFIX}\nobjectClass: inetOrgPerson\nobjectClass: msrpAccount\nuid: ${uid}\ncn: ${uid}\nsn: ${uid}\n`;
    ldif += `msrpDigestHA1: ${computeHa1(uid, REALM, `pw${i}`)}\n\n`;
  }
  return ldif;
}

interface CaseResult {
  name: string;
  handshakes: number;
  perSecond: number;
  p50: number;
  p99: number;
  ownCpuPer1000: number;
  slapdCpuPer1000: number;
  errors: number;
}

async function runCase(name: string, t: TestRelay, slapd: Slapd): Promise<CaseResult> {
  let stopAt = 0;
  let measuring = false;
  const latencies: number[] = [];
  let errors = 0;
  let next = 0;

  const worker = async (): Promise<void> => {
    while (Date.now() < stopAt) {
      const i = next++ % USERS;
      const t0 = performance.now();
      try {
        const c = await MsrpTestClient.connect({ port: t.tcpPort, timeoutMs: 10_000 });
        const r = await c.auth({ relayUri: t.authUri(), username: `user${i}`, password: `pw${i}` });
        await c.close();
        if (r.status !== 200) throw new Error(`AUTH ${r.status}`);
        if (measuring) latencies.push(performance.now() - t0);
      } catch {
        if (measuring) errors++;
      }
    }
  };

  stopAt = Date.now() + WARMUP_SECONDS * 1000;
  await Promise.all(Array.from({ length: CLIENTS }, worker));

  const pid = slapd.pid!;
  const own0 = ownCpuSeconds();
  const slapd0 = cpuSeconds([pid]);
  measuring = true;
  const start = performance.now();
  stopAt = Date.now() + SECONDS * 1000;
  await Promise.all(Array.from({ length: CLIENTS }, worker));
  const elapsed = (performance.now() - start) / 1000;
  const own = ownCpuSeconds() - own0;
  const slapdCpu = cpuSeconds([pid]) - slapd0;
  const s = latencySummary(latencies);
  const n = latencies.length;
  return {
    name,
    handshakes: n,
    perSecond: n / elapsed,
    p50: s.p50,
    p99: s.p99,
    ownCpuPer1000: (own / n) * 1000,
    slapdCpuPer1000: (slapdCpu / n) * 1000,
    errors,
  };
}

async function main(): Promise<void> {
  const slapd = await startSlapd({ suffix: SUFFIX, ldif: directory(), databaseConfig: 'index uid eq\n' });
  const ldap = {
    url: slapd.url,
    bindDN: SERVICE_DN,
    bindCredentials: 'bench-service',
    searchBase: `ou=people,${SUFFIX}`,
    ha1Attribute: 'msrpDigestHA1',
  };
  const memoryUsers = Array.from({ length: USERS }, (_, i) => ({ username: `user${i}`, domain: REALM, password: `pw${i}` }));
  const cases: Array<[string, () => Promise<TestRelay>]> = [
    ['auth-memory (no directory)', () => startTestRelay({ users: memoryUsers, plugins: [['domain-map', { default: REALM }]] })],
    ['auth-ldap', () => startTestRelay({ plugins: [['domain-map', { default: REALM }], ['auth-ldap', ldap]] })],
    ['auth-ldap, cache ttl 30 s', () => startTestRelay({ plugins: [['domain-map', { default: REALM }], ['auth-ldap', { ...ldap, cache: { ttl: 30 } }]] })],
  ];
  const results: CaseResult[] = [];
  try {
    for (const [name, make] of cases) {
      const t = await make();
      try {
        results.push(await runCase(name, t, slapd));
      } finally {
        await t.close();
      }
    }
  } finally {
    await slapd.close();
  }
  console.log(`AUTH handshakes (connect + 401 + 200 + close), ${CLIENTS} concurrent clients, ${SECONDS} s per case, ${cpus().length} CPUs, Node ${process.version}`);
  console.log('case                         handshakes/s   p50 ms   p99 ms   node CPU s/1000   slapd CPU s/1000   errors');
  for (const r of results) {
    console.log(
      `${r.name.padEnd(28)} ${r.perSecond.toFixed(0).padStart(12)} ${r.p50.toFixed(1).padStart(8)} ${r.p99.toFixed(1).padStart(8)}` +
        ` ${r.ownCpuPer1000.toFixed(3).padStart(17)} ${r.slapdCpuPer1000.toFixed(3).padStart(18)} ${String(r.errors).padStart(8)}`,
    );
  }
}

await main();
