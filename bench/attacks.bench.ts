/**
 * Attacks on the relay beside a control session (not part of `npm test`):
 *
 *   node --import tsx bench/attacks.bench.ts [--duration 10] [--settle 60] [--baseline DIR]
 *
 * For a bounded time each, one at a time, against a fresh relay (`node bin/msrprelay.js`, this
 * checkout, or DIR's with --baseline):
 *   1. no-read   one authenticated connection pipelines bodiless SENDs to an unknown token
 *                (each answered 481) and never reads;
 *   2. challenge connections ask for AUTH challenges without ever answering one, reading the
 *                401s, reconnecting when closed;
 *   3. tls-open  half-open TLS connections (TCP accepted, no ClientHello), renewed when cut;
 *   4. fill-cap  idle unauthenticated connections filling maxConnections, renewed when cut.
 * Meanwhile a control pair (alice, bob) exchanges SENDs through the relay and, every 100 ms, a
 * new control connection AUTHs. Reported per attack: the control's SEND success and p99 (send
 * to 200), new-connection AUTH successes, the attack's own count, the relay's RSS peak during
 * the attack and `--settle` seconds after it. Attack connections come from 200 loopback
 * addresses (127.0.0.2 …), the control from 127.0.0.1: the per-address cap is not what stops them.
 */

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { makeTestCertificates } from '../core/transport/self-signed.ts';
import { MsrpTestClient } from '../core/testing/client.ts';
import { memoryBytes } from './process-stats.ts';
import { latencySummary } from './stats.ts';
import { relayRunner } from './targets/msrprelay.ts';
import { exitedBeforeListening, freePort, spawnGroup, waitForPort } from './targets/target.ts';

const { values } = parseArgs({
  options: {
    duration: { type: 'string', default: '10' },
    settle: { type: 'string', default: '60' },
    baseline: { type: 'string' },
    attacks: { type: 'string', default: 'no-read,challenge,tls-open,fill-cap' },
  },
});
const DURATION = Number(values.duration) * 1000;
const SETTLE = Number(values.settle) * 1000;
const ROOT = resolve(values.baseline ?? join(import.meta.dirname, '..'));
const AUTH_URI = 'msrp://example.com;tcp';
const MAX_CONNECTIONS = 2000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Relay {
  tcp: number;
  tls: number;
  pids(): number[];
  stop(): Promise<void>;
}

async function startRelay(): Promise<Relay> {
  const dir = mkdtempSync(join(tmpdir(), 'msrprelay-attack-'));
  const certs = await makeTestCertificates(dir);
  const [tcp, tls] = [await freePort(), await freePort()];
  const config = {
    hostname: '127.0.0.1',
    listen: [
      { transport: 'tcp', host: '127.0.0.1', port: tcp, insecureAuth: true },
      { transport: 'tls', host: '127.0.0.1', port: tls, cert: certs.server.certFile, key: certs.server.keyFile },
    ],
    limits: { maxConnections: MAX_CONNECTIONS },
    plugins: [
      ['auth-memory', { users: [{ username: 'alice', domain: 'example.com', password: 'secret' }, { username: 'bob', domain: 'example.com', password: 'secret' }] }],
    ],
  };
  const file = join(dir, 'relay.json');
  writeFileSync(file, JSON.stringify(config));
  const g = spawnGroup(process.execPath, [...relayRunner(ROOT).args, '--config', file], { cwd: dir, log: join(dir, 'relay.log') });
  await waitForPort(tcp, 60_000, () => exitedBeforeListening(g));
  return {
    tcp,
    tls,
    pids: g.pids,
    stop: async () => {
      await g.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function rssMiB(pids: number[]): number {
  return memoryBytes(pids).rss / 2 ** 20;
}

/** The control traffic: SENDs alice → bob one at a time, and a new AUTHed connection every 100 ms. */
async function control(r: Relay, stop: { done: boolean }): Promise<{ sent: number; ok: number; p99: number; auths: number; authOk: number }> {
  const a = await MsrpTestClient.connect({ port: r.tcp, timeoutMs: 10_000 });
  const b = await MsrpTestClient.connect({ port: r.tcp, timeoutMs: 10_000 });
  const ta = (await a.auth({ relayUri: AUTH_URI, username: 'alice', password: 'secret' })).usePath[0]!;
  const tb = (await b.auth({ relayUri: AUTH_URI, username: 'bob', password: 'secret' })).usePath[0]!;
  const rtts: number[] = [];
  let sent = 0;
  let ok = 0;
  let auths = 0;
  let authOk = 0;
  const authLoop = (async () => {
    while (!stop.done) {
      auths++;
      try {
        const c = await MsrpTestClient.connect({ port: r.tcp, timeoutMs: 5000 });
        if ((await c.auth({ relayUri: AUTH_URI, username: 'bob', password: 'secret' })).status === 200) authOk++;
        await c.close();
      } catch {
        // counted as a failure
      }
      await sleep(100);
    }
  })();
  while (!stop.done) {
    sent++;
    const t0 = performance.now();
    try {
      const res = await a.sendMessage({ toPath: [ta, tb, b.uri], body: 'control' });
      if (res.responses[0]?.status === 200) {
        ok++;
        rtts.push(performance.now() - t0);
      }
    } catch {
      // a timeout counts as a failure
    }
    await sleep(5);
  }
  await authLoop;
  await Promise.all([a.close(), b.close()]);
  return { sent, ok, p99: rtts.length > 0 ? latencySummary(rtts).p99 : NaN, auths, authOk };
}

/** The attack's idle connections come from many addresses (127.0.0.2 … 127.0.0.201), as a botnet's would, so the per-address cap alone does not stop them. */
let nextAddress = 0;
function rawConnect(port: number): Promise<net.Socket | undefined> {
  const localAddress = `127.0.0.${2 + (nextAddress++ % 200)}`;
  return new Promise((res) => {
    const s = net.connect({ host: '127.0.0.1', port, localAddress });
    s.once('connect', () => res(s));
    s.once('error', () => res(undefined));
  });
}

/** Keeps up to `max` connections open to `port` that send nothing, renewing those the relay cuts; returns how many it opened. */
async function holdOpen(port: number, max: number, stop: { done: boolean }): Promise<number> {
  const open = new Set<net.Socket>();
  let opened = 0;
  while (!stop.done) {
    while (open.size < max && !stop.done) {
      const s = await rawConnect(port);
      if (s === undefined) break;
      opened++;
      open.add(s);
      s.on('error', () => {});
      s.once('close', () => open.delete(s));
    }
    await sleep(50);
  }
  for (const s of open) s.destroy();
  return opened;
}

/** Each attack runs until `stop.done` and returns how much it got out of the relay. */
const ATTACKS: Record<string, (r: Relay, stop: { done: boolean }) => Promise<string>> = {
  async 'no-read'(r, stop) {
    const c = await MsrpTestClient.connect({ port: r.tcp, timeoutMs: 10_000 });
    await c.auth({ relayUri: AUTH_URI, username: 'alice', password: 'secret' });
    c.pauseReading();
    const unknown = `msrp://127.0.0.1:${r.tcp}/nosuchsession00001;tcp`;
    let n = 0;
    while (!stop.done && !c.isClosed) {
      let frames = '';
      for (let j = 0; j < 1000; j++, n++) frames += `MSRP t${n} SEND\r\nTo-Path: ${unknown}\r\nFrom-Path: ${c.uri}\r\nMessage-ID: m${n}\r\n-------t${n}$\r\n`;
      if (!c.write(frames)) {
        // The relay stopped reading: wait for it (a drain) or a moment, one listener at a time.
        let onDrain: (() => void) | undefined;
        await Promise.race([new Promise<void>((res) => c.socket.once('drain', (onDrain = res))), sleep(200)]);
        c.socket.off('drain', onDrain!);
      }
    }
    const closed = c.isClosed;
    c.destroy();
    return `${n} SENDs written; closed by the relay: ${closed ? 'yes' : 'no'}`;
  },
  async challenge(r, stop) {
    let challenges = 0;
    let connections = 0;
    while (!stop.done) {
      const c = await MsrpTestClient.connect({ port: r.tcp, timeoutMs: 2000 }).catch(() => undefined);
      if (c === undefined) continue;
      connections++;
      while (!stop.done && !c.isClosed) {
        try {
          await c.waitForResponse(c.sendRequest({ method: 'AUTH', toPath: [AUTH_URI] }), 2000);
          challenges++;
        } catch {
          break;
        }
      }
      c.destroy();
    }
    return `${challenges} challenges over ${connections} connections`;
  },
  'tls-open': async (r, stop) => `${await holdOpen(r.tls, 1000, stop)} half-open TLS connections opened`,
  'fill-cap': async (r, stop) => `${await holdOpen(r.tcp, MAX_CONNECTIONS, stop)} idle connections opened (cap ${MAX_CONNECTIONS})`,
};

const rows: string[] = [];
for (const name of values.attacks!.split(',')) {
  const attack = ATTACKS[name];
  if (attack === undefined) throw new Error(`unknown attack ${name}`);
  const r = await startRelay();
  try {
    await sleep(2000);
    const before = rssMiB(r.pids());
    const stop = { done: false };
    let peak = before;
    const sampler = setInterval(() => (peak = Math.max(peak, rssMiB(r.pids()))), 200);
    const attacking = attack(r, stop);
    const ctl = control(r, stop);
    await sleep(DURATION);
    stop.done = true;
    const [what, c] = await Promise.all([attacking, ctl]);
    clearInterval(sampler);
    await sleep(SETTLE);
    const after = rssMiB(r.pids());
    const line = `| ${name} | ${c.ok}/${c.sent} | ${c.p99.toFixed(2)} ms | ${c.authOk}/${c.auths} | ${what} | ${before.toFixed(0)} | ${peak.toFixed(0)} | ${after.toFixed(0)} |`;
    console.log(line);
    rows.push(line);
  } finally {
    await r.stop();
  }
}
console.log(`\n${ROOT}: ${values.duration} s per attack, RSS ${values.settle} s after\n`);
console.log('| attack | control SENDs 200 | control p99 | new control AUTHs | attack got | RSS before MiB | peak MiB | after MiB |');
console.log('|---|---|---|---|---|---|---|---|');
for (const l of rows) console.log(l);
