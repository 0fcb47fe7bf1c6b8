/**
 * The relay of the chat scenario, in a process of its own so its CPU is measured alone:
 * createRelay with auth-memory (the bench accounts) and the chat focus (memory store, the rate
 * limit out of the way), one TCP listener, one room. The SIP application a focus needs (it
 * answers SDP offers) is a small HTTP control server on a second loopback port:
 *
 *   POST /join  {"sdpOffer": "...", "identity": {"uri": "sip:u1@example.com"}}  → {"sdpAnswer": "..."}
 *   POST /gc    a full collection (the process runs with --expose-gc), then process.memoryUsage()
 *   GET  /room  {"participants": n}
 *
 * `--root DIR` is the checkout whose relay runs (--baseline compares another one); `--dist`
 * loads its dist/ build (npm run build) instead of its sources (run through tsx).
 *
 * node --import tsx bench/targets/chat-relay-main.ts --root . --port P --control C --participants 100
 */

import { createServer, type IncomingMessage } from 'node:http';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

/** The room of the bench (the load generator's CPIM To). */
export const BENCH_ROOM = 'sip:bench@example.com';

interface RoomLike {
  join(o: { sdpOffer: string; identity: { uri: string } }): Promise<{ sdpAnswer: string }>;
  readonly participants: readonly unknown[];
}
interface FocusLike {
  rooms: { get(uri: string): RoomLike | undefined; create(uri: string, o: Record<string, unknown>): Promise<RoomLike> };
}

const { values } = parseArgs({
  options: {
    root: { type: 'string' },
    dist: { type: 'boolean' },
    port: { type: 'string' },
    control: { type: 'string' },
    participants: { type: 'string' },
    users: { type: 'string' },
  },
});
const root = values.root ?? process.cwd();
const dist = values.dist === true;
const mod = (p: string) => pathToFileURL(join(root, dist ? `dist/${p}.js` : `${p}.ts`)).href;
const core = (await import(mod('core/index'))) as { createRelay(config: unknown): Promise<{ listen(): Promise<void>; close(): Promise<void> }> };
const chatModule = (await import(mod('plugins/chat/index'))) as { default: new (o: unknown) => FocusLike };
const participants = Number(values.participants ?? 100);

const chat = new chatModule.default({
  store: { driver: 'memory' },
  // The bench measures the fan-out, not the per-sender rate limit (C-17), nor joins.
  limits: { rate: { messages: 1_000_000_000, seconds: 1 }, maxMembers: Math.max(500, participants) },
  history: { replay: 0 },
});
const users = (values.users ?? 'alice,bob').split(',').map((username) => ({ username, password: 'secret', domain: 'example.com' }));
const relay = await core.createRelay({
  hostname: '127.0.0.1',
  listen: [{ transport: 'tcp', host: '127.0.0.1', port: Number(values.port), insecureAuth: true }],
  limits: { maxConnectionsPerIp: 1_000_000, maxConnections: 1_000_000, maxSessionsPerConnection: 10_000 },
  plugins: [['auth-memory', { users }], ['domain-map', { default: 'example.com' }], chat],
});
await relay.listen();

async function room(): Promise<RoomLike> {
  // A room that is not persistent goes with its last participant: made again for the next run.
  return chat.rooms.get(BENCH_ROOM) ?? (await chat.rooms.create(BENCH_ROOM, { subject: 'bench', persistent: true }));
}

function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    req.on('data', (d: Buffer) => parts.push(d));
    req.on('end', () => {
      try {
        resolve(parts.length === 0 ? {} : (JSON.parse(Buffer.concat(parts).toString('utf8')) as Record<string, unknown>));
      } catch (e) {
        reject(e as Error);
      }
    });
    req.on('error', reject);
  });
}

const control = createServer((req, res) => {
  const reply = (status: number, body: unknown) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  };
  void (async () => {
    try {
      if (req.method === 'POST' && req.url === '/join') {
        const q = await readJson(req);
        const r = await (await room()).join({ sdpOffer: String(q['sdpOffer']), identity: q['identity'] as { uri: string } });
        reply(200, { sdpAnswer: r.sdpAnswer });
      } else if (req.method === 'POST' && req.url === '/gc') {
        const gc = (globalThis as { gc?: () => void }).gc;
        gc?.();
        const m = process.memoryUsage();
        reply(200, { gc: gc !== undefined, heapUsed: m.heapUsed, external: m.external, rss: m.rss });
      } else if (req.url === '/room') {
        reply(200, { participants: (await room()).participants.length });
      } else reply(404, { error: 'no such thing' });
    } catch (e) {
      reply(500, { error: (e as Error).message });
    }
  })();
});
await new Promise<void>((r) => control.listen(Number(values.control), '127.0.0.1', () => r()));

let stopping = false;
const stop = () => {
  if (stopping) process.exit(1);
  stopping = true;
  control.close();
  // process.exit after the relay closed: --cpu-prof writes its profile on the way out.
  void relay.close().finally(() => process.exit(0));
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
