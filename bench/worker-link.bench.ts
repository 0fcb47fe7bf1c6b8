/**
 * Head-of-line blocking on the link between cluster workers: `msrprelay --workers 2`, two
 * sessions from worker 0 to receivers on worker 1, one receiver reads nothing (its sender
 * streams 32 MiB into it), then the other sender streams 4 MiB to the receiver that reads.
 * Prints how long that takes, or that it did not arrive within 20 s (a stalled link).
 *
 *   node --import tsx bench/worker-link.bench.ts [--share]   # --share: shareOutboundConnections true
 */

import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MsrpTestClient, seededSource } from '../core/testing/client.ts';
import { parseUri } from '../core/protocol/uri.ts';
import { workerOfSession } from '../core/session/session-table.ts';

const MiB = 2 ** 20;
const share = process.argv.includes('--share');
const dir = mkdtempSync(join(tmpdir(), 'msrprelay-worker-link-'));
const file = join(dir, 'msrprelay.config.mjs');
writeFileSync(
  file,
  `export default { hostname: '127.0.0.1', shareOutboundConnections: ${share}, listen: [{ transport: 'tcp', host: '127.0.0.1', port: 0, insecureAuth: true }], plugins: [['auth-memory', { users: [{ username: 'u', domain: 'example.com', password: 's' }] }]] };\n`,
);
const bin = fileURLToPath(new URL('../bin/msrprelay.js', import.meta.url));
const child = spawn(process.execPath, [bin, '--config', file, '--workers', '2'], { stdio: ['ignore', 'pipe', 'ignore'], env: { ...process.env, NODE_CLUSTER_SCHED_POLICY: 'rr' } });
const port = await new Promise<number>((resolve) => {
  let out = '';
  child.stdout!.on('data', (d: Buffer) => {
    out += d.toString();
    const m = /listening tcp:\/\/127\.0\.0\.1:(\d+)/.exec(out);
    if (m) resolve(Number(m[1]));
  });
});

async function on(w: number): Promise<{ c: MsrpTestClient; t: string }> {
  for (;;) {
    const c = await MsrpTestClient.connect({ port, timeoutMs: 60000, storeBodies: false });
    const r = await c.auth({ relayUri: 'msrp://example.com;tcp', username: 'u', password: 's' });
    if (workerOfSession(parseUri(r.usePath[0]!).sessionId!, 2) === w) return { c, t: r.usePath[0]! };
    await c.close();
  }
}

try {
  const [a1, a2, fast, slow] = [await on(0), await on(0), await on(1), await on(1)];
  for (const [a, b] of [[a1, fast], [a2, slow]] as const) await a.c.sendMessage({ toPath: [a.t, b.t, b.c.uri], body: 'hello' });
  slow.c.pauseReading();
  let asked = 0;
  const stuck = seededSource(1);
  a2.c.streamMessage({ toPath: [a2.t, slow.t, slow.c.uri], size: 32 * MiB, chunkSize: MiB, source: (o, l) => ((asked = Math.max(asked, o + l)), stuck(o, l)) }).catch(() => {});
  while (asked < 6 * MiB) await new Promise((r) => setTimeout(r, 20));
  const t0 = performance.now();
  const sending = a1.c.streamMessage({ toPath: [a1.t, fast.t, fast.c.uri], size: 4 * MiB, source: seededSource(2), chunkSize: MiB });
  // A stalled link holds the sender back too: give up on it after 20 s as well.
  const late = new Promise<never>((_, reject) => setTimeout(() => reject(new Error('late')), 20000).unref());
  const got = await Promise.race([sending, late]).then((sent) => fast.c.waitForMessage(sent.messageId, 20000)).then(
    () => `${Math.round(performance.now() - t0)} ms`,
    () => 'not within 20 s',
  );
  console.log(`shareOutboundConnections ${share}: 4 MiB to a reading receiver on worker 1, beside one that reads nothing (stalled at ${(asked / MiB).toFixed(1)} MiB): ${got}`);
} finally {
  // SIGTERM: the primary stops its workers (SIGKILL would leave them running).
  child.kill('SIGTERM');
  await new Promise((r) => child.once('exit', r));
  rmSync(dir, { recursive: true, force: true });
  process.exit(0);
}
