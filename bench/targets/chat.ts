/**
 * The two systems the chat scenario compares:
 *
 * - `msrprelay` (and `baseline`): this relay with the chat focus (chat-relay-main.ts), in its
 *   own process group, from the checkout's dist/ when it is fresh, else its sources through tsx.
 *   Participants connect to its TCP listener, AUTH (the common case: a client behind its own
 *   relay token) or not (straight to the focus URI, RFC 4976 §3), and join the bench room
 *   through the control port, as a SIP application would hand the focus their offers.
 * - `raw`: the fan-out limit (fanout-main.ts), a plain Node process that writes the octets of
 *   each copy to every other participant's socket, no MSRP in between.
 */

import net from 'node:net';
import { request } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connectSocket, Endpoint, relayAuthUri, type Address } from '../loadgen/endpoint.ts';
import { distIsFresh } from './msrprelay.ts';
import { exitedBeforeListening, freePort, spawnGroup, tail, waitForPort, type Pair, type RunningTarget, type TargetSpec } from './target.ts';

export const BENCH_ROOM = 'sip:bench@example.com';
export const BENCH_USER = { username: 'alice', password: 'secret' } as const;

export type { ChatAccess } from './target.ts';

function noPair(): Promise<Pair> {
  return Promise.reject(new Error('the chat targets have rooms, not pairs'));
}

function post(port: number, path: string, body: unknown): Promise<Record<string, unknown>> {
  const data = Buffer.from(JSON.stringify(body));
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method: 'POST', headers: { 'content-type': 'application/json', 'content-length': data.length }, agent: false }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (d: Buffer) => parts.push(d));
      res.on('end', () => {
        const json = JSON.parse(Buffer.concat(parts).toString('utf8')) as Record<string, unknown>;
        if (res.statusCode !== 200) reject(new Error(`${path}: ${String(json['error'])}`));
        else resolve(json);
      });
    });
    req.on('error', reject);
    req.end(data);
  });
}

/** This project's relay with the chat focus; `base` is the msrprelay target it stands for. */
export function chatRelayTarget(base: TargetSpec, participants: number): TargetSpec {
  const root = base.root!;
  return {
    name: base.name,
    kind: 'relay',
    description: `${base.description}, with the chat focus (memory store)`,
    unavailable: () => undefined,
    skips: () => undefined,
    async start(): Promise<RunningTarget> {
      const dir = mkdtempSync(join(tmpdir(), 'chat-bench-'));
      const port = await freePort();
      const control = await freePort();
      const dist = distIsFresh(root);
      const main = join(import.meta.dirname, 'chat-relay-main.ts');
      const args = [
        '--expose-gc',
        ...(base.nodeArgs ?? []),
        '--import',
        import.meta.resolve('tsx'),
        main,
        '--root',
        root,
        ...(dist ? ['--dist'] : []),
        '--port',
        String(port),
        '--control',
        String(control),
        '--participants',
        String(participants),
      ];
      const w = base.wrapper;
      const g = w !== undefined && w.length > 0 ? spawnGroup(w[0]!, [...w.slice(1), process.execPath, ...args], { cwd: dir, log: join(dir, 'relay.log') }) : spawnGroup(process.execPath, args, { cwd: dir, log: join(dir, 'relay.log') });
      // Under valgrind (--instructions) the relay takes minutes to start.
      const startMs = w !== undefined ? 300_000 : 60_000;
      try {
        await waitForPort(port, startMs, () => exitedBeforeListening(g));
        await waitForPort(control, startMs, () => exitedBeforeListening(g));
      } catch (e) {
        await g.stop();
        throw new Error(`${base.name} (chat) did not start: ${(e as Error).message}\n${tail(g.log)}`);
      }
      const address: Address = { host: '127.0.0.1', port, transport: 'tcp' };
      return {
        pair: noPair,
        pids: g.pids,
        chat: {
          kind: 'focus',
          address,
          authUri: relayAuthUri(address),
          join: async (sdpOffer, uri) => String((await post(control, '/join', { sdpOffer, identity: { uri } }))['sdpAnswer']),
          gc: async () => {
            const m = await post(control, '/gc', {});
            return Number(m['heapUsed']) + Number(m['external']);
          },
        },
        async stop() {
          await g.stop();
          if (base.keep !== true) rmSync(dir, { recursive: true, force: true });
        },
      };
    },
  };
}

/** Connects and says what the connection is; resolves once the fan-out process answered OK. */
async function hello(port: number, line: string): Promise<net.Socket> {
  const s = await connectSocket({ host: '127.0.0.1', port, transport: 'tcp' });
  await new Promise<void>((resolve, reject) => {
    let acc = '';
    const timer = setTimeout(() => reject(new Error('fan-out: no OK after 10 s')), 10_000);
    const onData = (d: Buffer) => {
      acc += d.toString('latin1');
      if (!acc.includes('\r\n')) return;
      clearTimeout(timer);
      s.off('data', onData);
      if (acc !== 'OK\r\n') reject(new Error(`fan-out: answered ${JSON.stringify(acc)}`));
      else resolve();
    };
    s.on('data', onData);
    s.write(`${line}\r\n`);
  });
  return s;
}

/** The fan-out limit: a plain Node process writing each copy's octets to every other participant. */
export function fanoutTarget(root: string): TargetSpec {
  return {
    name: 'raw',
    kind: 'pipe',
    description: 'raw fan-out: a plain Node process writing the same copy octets to the same sockets (no MSRP)',
    unavailable: () => undefined,
    skips: () => undefined,
    async start(): Promise<RunningTarget> {
      const dir = mkdtempSync(join(tmpdir(), 'fanout-bench-'));
      const port = await freePort();
      const g = spawnGroup(process.execPath, ['--import', 'tsx', join(root, 'bench/targets/fanout-main.ts'), '--port', String(port)], { cwd: root, log: join(dir, 'fanout.log') });
      try {
        await waitForPort(port, 30_000, () => exitedBeforeListening(g));
      } catch (e) {
        await g.stop();
        throw new Error(`fan-out did not start: ${(e as Error).message}\n${tail(g.log)}`);
      }
      return {
        pair: noPair,
        pids: g.pids,
        chat: {
          kind: 'fanout',
          member: async (i) => new Endpoint(await hello(port, `MEMBER ${i}`), 'tcp'),
          sender: (i) => hello(port, `SENDER ${i}`),
        },
        async stop() {
          await g.stop();
          rmSync(dir, { recursive: true, force: true });
        },
      };
    },
  };
}
