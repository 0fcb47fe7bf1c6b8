/**
 * A relay for tests: loopback listeners on port 0, plugins of your choice, and
 * helpers to address it. For the project's integration tests and for plugin
 * authors (`import { startTestRelay, MsrpTestClient } from 'msrprelay/testing'`).
 *
 * ```ts
 * const t = await startTestRelay({ plugins: [[MyAuthPlugin, { ... }]] });
 * const alice = await MsrpTestClient.connect({ port: t.tcpPort });
 * const r = await alice.auth({ relayUri: t.authUri('tcp'), username: 'alice', password: 'secret' });
 * await t.close();
 * ```
 */

import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ListenConfig, RelayConfigInput } from '../config/schema.ts';
import type { Logger } from '../plugin.ts';
import { createRelay, type Relay } from '../relay.ts';
import { makeTestCertificates, type TestCertificates } from '../transport/self-signed.ts';

export interface TestRelayOptions extends Omit<RelayConfigInput, 'listen'> {
  /** Also open a TLS listener with a certificate made for the test (default false). */
  tls?: boolean;
  /** Reuse certificates made earlier (saves a second or so per relay). */
  certificates?: TestCertificates;
  /** Extra listeners, as in the config. */
  listen?: ListenConfig[];
  /** Demo users added through auth-memory (realm = domain). */
  users?: Array<{ username: string; domain: string; password: string; disabled?: boolean }>;
  logger?: Logger;
}

export interface TestRelay {
  readonly relay: Relay;
  readonly tcpPort: number;
  /** Set when `tls` was asked for. */
  readonly tlsPort: number | undefined;
  readonly certificates: TestCertificates | undefined;
  /** The URI a client puts in an AUTH To-Path for this relay. */
  authUri(transport?: 'tcp' | 'tls'): string;
  close(): Promise<void>;
}

let sharedCerts: Promise<TestCertificates> | undefined;

/** Certificates made once per process (CA, server for localhost/127.0.0.1, client). */
export function testCertificates(): Promise<TestCertificates> {
  sharedCerts ??= makeTestCertificates(mkdtempSync(join(tmpdir(), 'msrprelay-certs-')));
  return sharedCerts;
}

export async function startTestRelay(o: TestRelayOptions = {}): Promise<TestRelay> {
  const { tls: wantTls, certificates, listen: extra, users, logger, plugins, ...rest } = o;
  const certs = wantTls === true ? (certificates ?? (await testCertificates())) : certificates;
  const listen: ListenConfig[] = [{ transport: 'tcp', host: '127.0.0.1', port: 0, insecureAuth: true }];
  if (wantTls === true && certs !== undefined) {
    listen.push({ transport: 'tls', host: '127.0.0.1', port: 0, cert: certs.server.certFile, key: certs.server.keyFile });
  }
  if (extra !== undefined) listen.push(...extra);
  const allPlugins = [...(plugins ?? [])];
  if (users !== undefined) allPlugins.push(['auth-memory', { users }]);
  const relay = await createRelay(
    { hostname: '127.0.0.1', outboundTls: { rejectUnauthorized: false }, ...rest, listen, plugins: allPlugins },
    logger !== undefined ? { logger } : {},
  );
  await relay.listen();
  const tcp = relay.listeners.find((l) => l.transport === 'tcp')!;
  const tlsL = relay.listeners.find((l) => l.transport === 'tls');
  const host = relay.hostname;
  return {
    relay,
    tcpPort: tcp.port,
    tlsPort: tlsL?.port,
    certificates: certs,
    authUri(transport = 'tcp') {
      return transport === 'tls' ? `msrps://${host}:${tlsL!.port};tcp` : `msrp://${host}:${tcp.port};tcp`;
    },
    close: () => relay.close(),
  };
}
