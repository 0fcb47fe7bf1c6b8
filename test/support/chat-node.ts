/**
 * One relay process with the chat focus in cluster mode, for the tests of rooms across nodes
 * in separate processes (test/integration/chat-cluster.test.ts). Forked with an IPC channel: it
 * says `{ ready: { tcpPort } }`, then answers `{ id, join: JoinOptions }` with the SDP answer and
 * `{ id, sees: user }` with whether its shared roster has that user on another node.
 * Configured by CHAT_NODE (JSON: redisUrl, keyPrefix, nodeId, room).
 */

import { startTestRelay } from '../../core/testing/index.ts';
import ChatFocus from '../../plugins/chat/index.ts';
import { USERS } from './chat.ts';

const c = JSON.parse(process.env.CHAT_NODE ?? '{}') as { redisUrl: string; keyPrefix: string; nodeId: string; room: string };
const chat = new ChatFocus({
  store: { driver: 'memory' },
  cluster: { redis: { url: c.redisUrl, keyPrefix: c.keyPrefix }, nodeId: c.nodeId, heartbeat: 0.2, rosterTtl: 1 },
});
const t = await startTestRelay({ users: USERS, plugins: [chat] });
const room = await chat.rooms.create(c.room);

type Ask = { id: number; join?: { sdpOffer: string; identity: { uri: string }; nickname?: string }; sees?: string; close?: true };
process.on('message', (m: Ask) => {
  void (async () => {
    try {
      if (m.join !== undefined) {
        const r = await room.join(m.join);
        process.send!({ id: m.id, sdpAnswer: r.sdpAnswer });
      } else if (m.sees !== undefined) {
        process.send!({ id: m.id, sees: chat.cluster!.remoteSessions(room).some((s) => s.user === m.sees) });
      } else if (m.close === true) {
        await t.close();
        process.send!({ id: m.id, closed: true });
        process.disconnect();
      }
    } catch (e) {
      process.send!({ id: m.id, error: (e as Error).message });
    }
  })();
});
process.send!({ ready: { tcpPort: t.tcpPort } });
