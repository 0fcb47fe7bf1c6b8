/**
 * Starts the independent Kamailio MSRP relay of ../shared/peers/kamailio on free
 * loopback ports in a private run directory, for interop tests. Its users are
 * alice/secret and bob/secret in realm example.com.
 */

import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from '../../core/testing/ports.ts';

const run = promisify(execFile);

/** Where the peer lives: $MSRPRELAY_KAMAILIO_PEER, else ../shared/peers/kamailio beside the checkout. */
export function kamailioPeerDir(): string | undefined {
  const candidates = [process.env.MSRPRELAY_KAMAILIO_PEER, resolve(import.meta.dirname, '../../../shared/peers/kamailio')];
  return candidates.find((d): d is string => d !== undefined && existsSync(join(d, 'start.sh')));
}

export interface KamailioPeer {
  readonly tcpPort: number;
  /** The URI a client puts in its AUTH To-Path. */
  readonly authUri: string;
  stop(): Promise<void>;
}

export async function startKamailio(dir: string): Promise<KamailioPeer> {
  const rundir = mkdtempSync(join(tmpdir(), 'kam-msrp-'));
  const tcpPort = await freePort();
  const env = {
    ...process.env,
    KAM_MSRP_RUNDIR: rundir,
    KAM_MSRP_TCP_PORT: String(tcpPort),
    KAM_MSRP_TLS: '0',
    KAM_MSRP_WS: '0',
    KAM_MSRP_TCP_CHILDREN: '2',
    KAM_MSRP_SHM_MB: '64',
    // The cmap tracking of this Kamailio version loses sessions in some orders; the
    // htable mode of the peer's README avoids that.
    KAM_MSRP_TRACKING: 'htable',
  };
  await run('bash', [join(dir, 'start.sh')], { env, timeout: 120_000 });
  return {
    tcpPort,
    authUri: `msrp://127.0.0.1:${tcpPort};tcp`,
    async stop() {
      try {
        await run('bash', [join(dir, 'stop.sh')], { env, timeout: 30_000 });
      } finally {
        rmSync(rundir, { recursive: true, force: true });
      }
    },
  };
}
