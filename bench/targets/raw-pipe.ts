/**
 * Two reference points without a relay:
 *
 * - `raw`: the raw pipe proxy (raw-pipe-proxy.ts) in its own process, in the
 *   same topology as a relay (A and B each connect to it; it copies bytes).
 *   What moving the bytes through one more process costs: the physical limit a
 *   relay is compared against. A pairing line replaces AUTH (see the proxy). In
 *   the auth scenario it answers AUTH with canned responses: the floor under AUTH.
 * - `direct`: A connects to a listener in the load generator and the accepted
 *   socket is B. No process in between: the load generator's own ceiling.
 *
 * Both give A and B stand-in routes shaped like Use-Path URIs, so frames are as
 * long as through a relay; the MSRP on the wire is otherwise identical.
 */

import net from 'node:net';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Endpoint, connectSocket, relayAuthUri, type Address } from '../loadgen/endpoint.ts';
import { USERS, exitedBeforeListening, freePort, spawnGroup, tail, waitForPort, type Leg, type Pair, type RunningTarget, type TargetSpec } from './target.ts';

function standInRoute(port: number): string[] {
  return [`msrp://127.0.0.1:${port}/${randomBytes(16).toString('hex')};tcp`];
}

/** Connects and pairs one half through the proxy; resolves once the other half is there too. */
async function pairHalf(port: number, token: string): Promise<Endpoint> {
  const sock = await connectSocket({ host: '127.0.0.1', port, transport: 'tcp' });
  await new Promise<void>((resolve, reject) => {
    let acc = Buffer.alloc(0);
    const timer = setTimeout(() => reject(new Error('raw pipe: no OK after 10 s')), 10_000);
    const onData = (d: Buffer) => {
      acc = Buffer.concat([acc, d]);
      const eol = acc.indexOf('\r\n');
      if (eol === -1) return;
      clearTimeout(timer);
      sock.off('data', onData);
      sock.pause();
      if (acc.subarray(0, eol).toString('latin1') !== 'OK') {
        reject(new Error('raw pipe: bad answer'));
        return;
      }
      // The peer may already have written: its bytes go to the endpoint's framer.
      if (acc.length > eol + 2) sock.unshift(acc.subarray(eol + 2));
      resolve();
    };
    sock.on('data', onData);
    sock.once('close', () => reject(new Error('raw pipe: closed before OK')));
    sock.write(`PAIR ${token}\r\n`);
  });
  const ep = new Endpoint(sock, 'tcp');
  sock.resume();
  return ep;
}

export function rawPipeTarget(root: string): TargetSpec {
  return {
    name: 'raw',
    kind: 'pipe',
    description: 'raw TCP pipe proxy (Node stream.pipe, no MSRP parsing)',
    unavailable: () => undefined,
    skips: () => undefined,
    async start(): Promise<RunningTarget> {
      const dir = mkdtempSync(join(tmpdir(), 'raw-pipe-bench-'));
      const port = await freePort();
      const g = spawnGroup(process.execPath, ['--import', 'tsx', join(root, 'bench/targets/raw-pipe-proxy.ts'), '--port', String(port)], {
        cwd: root,
        log: join(dir, 'proxy.log'),
      });
      try {
        await waitForPort(port, 30_000, () => exitedBeforeListening(g));
      } catch (e) {
        await g.stop();
        throw new Error(`raw pipe did not start: ${(e as Error).message}\n${tail(g.log)}`);
      }
      const addr: Address = { host: '127.0.0.1', port, transport: 'tcp' };
      return {
        async pair(): Promise<Pair> {
          const token = randomBytes(12).toString('hex');
          const [ea, eb] = await Promise.all([pairHalf(port, token), pairHalf(port, token)]);
          const a: Leg = { ep: ea, uri: ea.uri, route: standInRoute(port) };
          const b: Leg = { ep: eb, uri: eb.uri, route: standInRoute(port) };
          return { a, b };
        },
        // Canned answers, nothing checked: the floor under AUTH (see the proxy).
        authAddress: {
          connect: () => Endpoint.connect(addr),
          relayUri: relayAuthUri(addr),
          user: USERS.a,
        },
        pids: g.pids,
        async stop() {
          await g.stop();
          rmSync(dir, { recursive: true, force: true });
        },
      };
    },
  };
}

export function directTarget(): TargetSpec {
  return {
    name: 'direct',
    kind: 'direct',
    description: 'A connected straight to B inside the load generator (its own ceiling)',
    unavailable: () => undefined,
    skips(scenario) {
      if (scenario === 'auth') return 'no AUTH without a relay';
      if (scenario === 'idle') return 'no relay process to measure';
      return undefined;
    },
    async start(): Promise<RunningTarget> {
      const port = await freePort();
      const accepted = new Map<number, (s: net.Socket) => void>();
      const early = new Map<number, net.Socket>();
      const open = new Set<net.Socket>();
      const server = net.createServer((s) => {
        s.setNoDelay(true);
        open.add(s);
        s.once('close', () => open.delete(s));
        const w = accepted.get(s.remotePort ?? 0);
        if (w !== undefined) {
          accepted.delete(s.remotePort ?? 0);
          w(s);
        } else early.set(s.remotePort ?? 0, s);
      });
      await new Promise<void>((r) => server.listen(port, '127.0.0.1', () => r()));
      return {
        async pair(): Promise<Pair> {
          const sa = await connectSocket({ host: '127.0.0.1', port, transport: 'tcp' });
          const local = sa.localPort ?? 0;
          const sb =
            early.get(local) ??
            (await new Promise<net.Socket>((resolve) => {
              accepted.set(local, resolve);
            }));
          early.delete(local);
          const ea = new Endpoint(sa, 'tcp');
          const eb = new Endpoint(sb, 'tcp');
          return { a: { ep: ea, uri: ea.uri, route: standInRoute(port) }, b: { ep: eb, uri: eb.uri, route: standInRoute(port) } };
        },
        pids: () => [],
        async stop() {
          for (const s of open) s.destroy();
          await new Promise<void>((r) => server.close(() => r()));
        },
      };
    },
  };
}
