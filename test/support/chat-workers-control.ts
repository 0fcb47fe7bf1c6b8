/**
 * A test-only stand-in for the SIP front of a chat deployment under `msrprelay --workers N`
 * (test/integration/chat-workers.test.ts): a plugin, configured after the chat focus, that
 * opens a small HTTP endpoint in every worker and writes its port to `<portFile>.<worker index>`
 * (MSRPRELAY_WORKER_ID). The test creates and joins rooms in worker 0 only, as a SIP application
 * in one place would do, or, with the chat `cluster` option (each worker a node), in both.
 *
 * POST JSON:
 *   /create  { room, options? }                          → { uri }
 *   /join    { room, sdpOffer, identity, nickname? }     → { sdpAnswer }
 *   /members { room }                                    → { members: [{ user, congested, dropped, delivered }] }
 *   /node    { room }                                        → { nodeId, remote: [users on other nodes of the room] }
 */

import { writeFileSync } from 'node:fs';
import http from 'node:http';
import type { PluginHost, RelayPlugin } from '../../core/index.ts';
import type ChatFocus from '../../plugins/chat/index.ts';
import type { RoomOptions } from '../../plugins/chat/index.ts';

type Ask = { id?: string; room: string; options?: RoomOptions; sdpOffer?: string; identity?: { uri: string }; nickname?: string };

export default class ChatWorkersControl implements RelayPlugin {
  readonly name = 'chat-workers-control';
  private server: http.Server | undefined;

  constructor(
    private readonly chat: ChatFocus,
    private readonly portFile: string,
  ) {}

  private relay: PluginHost | undefined;

  async apply(relay: PluginHost): Promise<void> {
    this.relay = relay;
    const worker = process.env['MSRPRELAY_WORKER_ID'];
    if (worker === undefined || this.server !== undefined) return;
    const server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (d: Buffer) => chunks.push(d));
      req.on('end', () => {
        void this.answer(req.url ?? '', JSON.parse(Buffer.concat(chunks).toString() || '{}') as Ask).then(
          (body) => {
            res.writeHead(200, { 'content-type': 'application/json' });
            res.end(JSON.stringify(body));
          },
          (e: unknown) => {
            res.writeHead(500, { 'content-type': 'application/json' });
            res.end(JSON.stringify({ error: e instanceof Error ? e.message : String(e) }));
          },
        );
      });
    });
    this.server = server;
    // exclusive: this worker's own socket, not one the cluster shares.
    await new Promise<void>((r) => server.listen({ port: 0, host: '127.0.0.1', exclusive: true }, r));
    writeFileSync(`${this.portFile}.${worker}`, String((server.address() as { port: number }).port));
  }

  private async answer(path: string, a: Ask): Promise<unknown> {
    if (path === '/session') {
      const s = this.relay!.sessions.get(a.id!);
      return s === undefined ? {} : { bound: s.bound };
    }
    if (path === '/node') {
      const room = this.chat.rooms.get(a.room);
      return { nodeId: this.chat.cluster?.nodeId, remote: room === undefined ? [] : this.chat.cluster?.remoteSessions(room).map((s) => s.user) };
    }
    if (path === '/create') return { uri: (await this.chat.rooms.create(a.room, a.options ?? {})).uri };
    const room = this.chat.rooms.get(a.room);
    if (room === undefined) throw new Error(`no room ${a.room}`);
    if (path === '/join') {
      const r = await room.join({ sdpOffer: a.sdpOffer!, identity: a.identity!, ...(a.nickname !== undefined ? { nickname: a.nickname } : {}) });
      return { sdpAnswer: r.sdpAnswer };
    }
    if (path === '/members') {
      return { members: room.participants.map((p) => ({ user: p.identity.uri, congested: p.congested, dropped: p.stats.dropped, delivered: p.stats.delivered })) };
    }
    throw new Error(`unknown ${path}`);
  }

  close(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    return new Promise((r) => (s === undefined ? r() : s.close(() => r())));
  }
}
