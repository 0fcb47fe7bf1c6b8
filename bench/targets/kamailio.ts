/**
 * The reference peer: Debian's Kamailio 5.6 msrp module, as set up in
 * /work/shared/peers/kamailio (start.sh / stop.sh). Each start gets a private
 * run directory and a free TCP port, with the TLS and WebSocket listeners off.
 *
 * Limits that shape the scenarios (peers/kamailio/README.md, caveats 5 and 7):
 * it relays no frame over 11238 octets, so only the 2 KiB bulk case runs; its
 * tcp_max_connections is 8192, so the idle scenario puts more than one session
 * on a connection when it needs more; and both relay hops of the same Kamailio
 * go through a loopback connection to itself, so every SEND is handled twice
 * (that is how it relays, and it is what it costs).
 *
 * Its CPU and memory are those of the whole process group: the main process and
 * every worker (TCP children, timers, the ctl process).
 */

import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { execFile } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { groupMembers, processGroupOf } from '../process-stats.ts';
import type { Address, Transport } from '../loadgen/endpoint.ts';
import { freePort, relayClient, type RunningTarget, type TargetSpec } from './target.ts';

export const KAMAILIO_DIR = process.env['KAM_MSRP_PEER_DIR'] ?? '/work/shared/peers/kamailio';
/** README caveat 7: the largest frame the script can route. */
export const KAMAILIO_MAX_FRAME = 11238;

function run(script: string, env: NodeJS.ProcessEnv): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('bash', [script], { env, timeout: 120_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${script}: ${err.message}\n${stdout}${stderr}`));
      else resolve(stdout);
    });
  });
}

export function kamailioTarget(o: { keep?: boolean; transports?: ReadonlySet<Transport> } = {}): TargetSpec {
  // Its TLS and WebSocket listeners (README: plain ws only, no wss) are started when the run uses them.
  const tlsOn = o.transports?.has('tls') === true;
  const wsOn = o.transports?.has('ws') === true;
  return {
    name: 'kamailio',
    kind: 'relay',
    transports: ['tcp', ...(tlsOn ? ['tls' as const] : []), ...(wsOn ? ['ws' as const] : [])],
    description: 'Kamailio 5.6 msrp module (Debian), cmap tracking, 4 TCP workers',
    maxFrameBytes: KAMAILIO_MAX_FRAME,
    maxConnections: 8000,
    bulkWindow: Number(process.env['KAM_BENCH_BULK_WINDOW'] ?? 16 * 1024),
    unavailable() {
      if (!existsSync(join(KAMAILIO_DIR, 'start.sh'))) return `no ${KAMAILIO_DIR}/start.sh`;
      if (!existsSync('/usr/sbin/kamailio')) return 'kamailio is not installed (start.sh installs it as root)';
      return undefined;
    },
    skips() {
      return undefined;
    },
    async start(): Promise<RunningTarget> {
      const rundir = mkdtempSync(join(tmpdir(), 'kamailio-bench-'));
      const port = await freePort();
      const tlsPort = tlsOn ? await freePort() : 0;
      const wsPort = wsOn ? await freePort() : 0;
      const env = {
        ...process.env,
        KAM_MSRP_RUNDIR: rundir,
        KAM_MSRP_TCP_PORT: String(port),
        KAM_MSRP_TLS: tlsOn ? '1' : '0',
        KAM_MSRP_WS: wsOn ? '1' : '0',
        ...(tlsOn ? { KAM_MSRP_TLS_PORT: String(tlsPort) } : {}),
        ...(wsOn ? { KAM_MSRP_WS_PORT: String(wsPort) } : {}),
      };
      await run(join(KAMAILIO_DIR, 'start.sh'), env);
      const main = Number(readFileSync(join(rundir, 'kamailio.pid'), 'utf8').trim());
      const pgid = processGroupOf(main);
      if (pgid === undefined) throw new Error('kamailio started but its pid is gone');
      const addrs: Partial<Record<Transport, Address>> = { tcp: { host: '127.0.0.1', port, transport: 'tcp' } };
      if (tlsOn) addrs.tls = { host: '127.0.0.1', port: tlsPort, transport: 'tls' };
      if (wsOn) addrs.ws = { host: '127.0.0.1', port: wsPort, transport: 'ws' };
      let stopped = false;
      return relayClient(
        addrs,
        () => (stopped ? [] : groupMembers(pgid)),
        async () => {
          if (stopped) return;
          stopped = true;
          await run(join(KAMAILIO_DIR, 'stop.sh'), env);
          if (o.keep !== true) rmSync(rundir, { recursive: true, force: true });
          else process.stderr.write(`kamailio run directory kept: ${rundir}\n`);
        },
      );
    },
  };
}
