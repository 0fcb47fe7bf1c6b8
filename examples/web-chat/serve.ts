/**
 * The web chat example: a relay with TCP, TLS and WebSocket listeners, and a small web
 * application that serves the page (public/) and does what a real one would beside the relay:
 * it signs its users in and mints the short-lived token their browsers open the WebSocket with
 * (W-9, the ws-token plugin), and keeps a lobby of who is online so two browsers find each other.
 *
 *   npm run example:web-chat            (then open the URL it prints)
 *   npm run example:web-chat -- --http-port 8080 --ws-port 8081 --tcp-port 2856 --tls-port 2855
 *
 * Demo accounts alice, bob and carol @example.com, password "secret". A terminal user joins with
 * `node bin/msrprelay.js client --user bob@example.com --password secret --to "<a page's path>"`.
 */

import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { extname, join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { createRelay, type Relay } from '../../core/index.ts';
import { makeTestCertificates } from '../../core/testing/index.ts';
import { mint } from '../../plugins/ws-token/index.ts';

const PUBLIC = fileURLToPath(new URL('./public/', import.meta.url));
const TYPES: Record<string, string> = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8', '.json': 'application/json' };
export const DEMO_USERS = ['alice', 'bob', 'carol'].map((username) => ({ username, domain: 'example.com', password: 'secret' }));

export interface WebChatOptions {
  host?: string;
  httpPort?: number;
  wsPort?: number;
  tcpPort?: number;
  tlsPort?: number;
  /** WebSocket Ping interval, seconds (the websocket plugin's pingInterval). */
  pingInterval?: number;
}

export interface WebChat {
  readonly relay: Relay;
  /** The page. */
  readonly pageUrl: string;
  readonly wsUrl: string;
  /** AUTH targets for TCP and TLS clients. */
  readonly tcpRelayUri: string;
  readonly tlsRelayUri: string;
  readonly tcpPort: number;
  readonly tlsPort: number;
  close(): Promise<void>;
}

/** Starts the relay and the page's server. */
export async function startWebChat(o: WebChatOptions = {}): Promise<WebChat> {
  const host = o.host ?? '127.0.0.1';
  // The web application's signing secret (per run: tokens live minutes, nothing to keep).
  const secret = randomBytes(32).toString('base64url');
  const lobby = new Map<string, { user: string; path: string[]; seen: number }>();
  let wsUrl = '';
  const http = createServer((req, res) => {
    handle(req, res).catch(() => {
      if (!res.headersSent) res.writeHead(500);
      res.end();
    });
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = new URL(req.url ?? '/', 'http://page.invalid').pathname;
    if (path === '/config.json') return json(res, 200, { wsUrl, accounts: DEMO_USERS.map((u) => `${u.username}@${u.domain}`), token: true, lobby: true });
    if (path === '/api/token' && req.method === 'POST') {
      // The web application's own sign-in (here: the demo accounts), then a token for 10 minutes.
      const { user, password } = JSON.parse((await body(req)) || '{}') as { user?: string; password?: string };
      const known = DEMO_USERS.find((u) => `${u.username}@${u.domain}` === user && u.password === password);
      if (known === undefined) return json(res, 403, { error: 'unknown account or wrong password' });
      return json(res, 200, { token: await mint(secret, user!, 600) });
    }
    if (path === '/api/lobby') {
      const now = Date.now();
      for (const [k, v] of lobby) if (now - v.seen > 10_000) lobby.delete(k);
      if (req.method === 'POST') {
        const e = JSON.parse((await body(req)) || '{}') as { user?: unknown; path?: unknown; leave?: unknown };
        if (e.leave === true && Array.isArray(e.path)) lobby.delete(e.path.join(' '));
        else if (typeof e.user === 'string' && Array.isArray(e.path) && e.path.every((p) => typeof p === 'string') && e.path.length <= 8) {
          lobby.set((e.path as string[]).join(' '), { user: e.user.slice(0, 64), path: e.path as string[], seen: now });
        }
        return json(res, 204, undefined);
      }
      return json(res, 200, [...lobby.values()].map(({ user, path: p }) => ({ user, path: p })));
    }
    const file = normalize(join(PUBLIC, path === '/' ? 'index.html' : path));
    if (!file.startsWith(PUBLIC)) return json(res, 404, { error: 'not found' });
    let data: Buffer;
    try {
      data = readFileSync(file);
    } catch {
      return json(res, 404, { error: 'not found' });
    }
    res.writeHead(200, {
      'content-type': TYPES[extname(file)] ?? 'application/octet-stream',
      'cache-control': 'no-store',
      // The page talks to its own origin and to the relay's WebSocket only.
      'content-security-policy': `default-src 'self'; connect-src 'self' ${wsUrl}; img-src 'self' blob:; style-src 'self'`,
    });
    res.end(data);
  }

  await new Promise<void>((resolve) => http.listen(o.httpPort ?? 8080, host, resolve));
  const httpPort = (http.address() as AddressInfo).port;
  const pageOrigins = [`http://${host}:${httpPort}`, `http://localhost:${httpPort}`];

  const certs = await makeTestCertificates(mkdtempSync(join(tmpdir(), 'msrprelay-web-chat-')));
  const relay = await createRelay({
    hostname: host,
    listen: [
      { transport: 'tls', host, port: o.tlsPort ?? 2855, cert: certs.server.certFile, key: certs.server.keyFile },
      // R-7: AUTH over plain TCP and ws is for this loopback demo only.
      { transport: 'tcp', host, port: o.tcpPort ?? 2856, insecureAuth: true },
      { transport: 'ws', host, port: o.wsPort ?? 8081, path: '/msrp', insecureAuth: true },
    ],
    plugins: [
      ['auth-memory', { users: DEMO_USERS }],
      ['domain-map', { default: 'example.com' }],
      // W-10: only this page may open WebSockets here.
      ['websocket', { origins: pageOrigins, ...(o.pingInterval !== undefined ? { pingInterval: o.pingInterval } : {}) }],
      // W-9: the page's tokens pre-authorise its WebSocket.
      ['ws-token', { secret, cookie: '' }],
    ],
  });
  await relay.listen();
  const port = (t: string) => relay.listeners.find((l) => l.transport === t)!.port;
  wsUrl = `ws://${host}:${port('ws')}/msrp`;
  return {
    relay,
    pageUrl: `http://${host}:${httpPort}/`,
    wsUrl,
    tcpRelayUri: `msrp://${host}:${port('tcp')};tcp`,
    tlsRelayUri: `msrps://${host}:${port('tls')};tcp`,
    tcpPort: port('tcp'),
    tlsPort: port('tls'),
    async close() {
      http.closeAllConnections();
      await new Promise<void>((r) => http.close(() => r()));
      await relay.close();
    },
  };
}

function json(res: ServerResponse, status: number, value: unknown): void {
  const text = value === undefined ? '' : JSON.stringify(value);
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
  res.end(text);
}

function body(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let s = '';
    req.setEncoding('utf8');
    req.on('data', (d: string) => {
      s += d;
      if (s.length > 65536) req.destroy(new Error('too large'));
    });
    req.on('end', () => resolve(s));
    req.on('error', reject);
  });
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { host: { type: 'string' }, 'http-port': { type: 'string' }, 'ws-port': { type: 'string' }, 'tcp-port': { type: 'string' }, 'tls-port': { type: 'string' } },
  });
  const num = (v: string | undefined) => (v === undefined ? undefined : Number(v));
  const chat = await startWebChat({
    ...(values.host !== undefined ? { host: values.host } : {}),
    ...(values['http-port'] !== undefined ? { httpPort: num(values['http-port'])! } : {}),
    ...(values['ws-port'] !== undefined ? { wsPort: num(values['ws-port'])! } : {}),
    ...(values['tcp-port'] !== undefined ? { tcpPort: num(values['tcp-port'])! } : {}),
    ...(values['tls-port'] !== undefined ? { tlsPort: num(values['tls-port'])! } : {}),
  });
  const lines = [
    `web chat:  ${chat.pageUrl}   (open it in two browser windows, or one and a terminal)`,
    `relay:     ${chat.wsUrl} (browsers), ${chat.tcpRelayUri} (TCP), ${chat.tlsRelayUri} (TLS)`,
    `accounts:  ${DEMO_USERS.map((u) => `${u.username}@${u.domain}`).join(', ')}, password "secret"`,
    `terminal:  node bin/msrprelay.js client --relay '${chat.tcpRelayUri}' --user bob@example.com --password secret --to "<the path the page shows>"`,
    'Ctrl-C stops it.',
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
  const stop = () => {
    chat.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  main().catch((e: unknown) => {
    process.stderr.write(`web chat: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  });
}
