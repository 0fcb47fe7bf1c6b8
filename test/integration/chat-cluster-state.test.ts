/**
 * Room state across nodes (the chat plugin's cluster option, cluster-state.ts and
 * cluster-nicknames.ts): two relays, each with its own chat focus, on a real Redis
 * (127.0.0.1:6379, a key prefix of their own per test). A mute, kick, ban, role or subject made on
 * one node holds on the other; a room created on one node is joined on the other with its
 * settings; a temporary room lives while any node has a participant; with Redis cut (a TCP proxy
 * in front of it) changes wait and cross when it is back, and a nickname taken twice meanwhile is
 * settled (the earlier claim keeps it, C-14).
 */

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { startTestRelay, type TestRelay } from '../../core/testing/index.ts';
import ChatFocus, { formatUseNickname, type LeaveReason, type Participant, type Room, type RoomOptions } from '../../plugins/chat/index.ts';
import { ChatClient, USERS, next } from '../support/chat.ts';
import { CutProxy } from '../support/cut-proxy.ts';

const REDIS = { host: '127.0.0.1', port: 6379 };
const ROOM = 'sip:shared@example.com';
const HEARTBEAT = 0.2;
const ROSTER_TTL = 1;
const prefixes: string[] = [];

interface Node {
  t: TestRelay;
  chat: ChatFocus;
}

async function startNode(prefix: string, nodeId: string, port = REDIS.port): Promise<Node> {
  const chat = new ChatFocus({
    store: { driver: 'memory' },
    cluster: { redis: { url: `redis://${REDIS.host}:${port}`, keyPrefix: prefix, commandTimeout: 1, connectTimeout: 2 }, nodeId, heartbeat: HEARTBEAT, rosterTtl: ROSTER_TTL },
  });
  const t = await startTestRelay({ users: USERS, plugins: [chat] });
  return { t, chat };
}

function newPrefix(): string {
  const p = `test:chatstate:${randomBytes(4).toString('hex')}:`;
  prefixes.push(p);
  return p;
}

/** Polls `cond` every 50 ms for up to `ms`. */
async function until(what: string, cond: () => boolean | Promise<boolean>, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) assert.fail(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The room on node A and node B. */
async function sharedRoom(a: Node, b: Node, o: RoomOptions = {}, uri = ROOM): Promise<[Room, Room]> {
  return [await a.chat.rooms.create(uri, o), await b.chat.rooms.create(uri, o)];
}

const sees = (room: Room, user: string) => room.focus.cluster!.remoteSessions(room).some((s) => s.user === user);

/** Resolves with the reason the next session of `user` leaves the room. */
function leaves(room: Room, user: string): Promise<LeaveReason> {
  return new Promise((resolve) => {
    const on = (p: Participant, reason: LeaveReason) => {
      if (p.user !== user) return;
      room.off('left', on);
      resolve(reason);
    };
    room.on('left', on);
  });
}

after(async () => {
  const r = new Redis(REDIS.port, REDIS.host);
  for (const p of prefixes) {
    const keys = await r.keys(`${p}*`);
    if (keys.length > 0) await r.del(...keys);
  }
  await r.quit();
});

describe('chat: room state across nodes on Redis', () => {
  it('with Redis cut, a nickname taken on both nodes is settled when it is back: the earlier claim keeps it', async () => {
    const prefix = newPrefix();
    const proxy = await new CutProxy(REDIS).start();
    const a = await startNode(prefix, 'a');
    const b = await startNode(prefix, 'b', proxy.port);
    const clients: ChatClient[] = [];
    try {
      const [ra, rb] = await sharedRoom(a, b);
      const alice = await (await ChatClient.connect(a.t, 'alice')).join(ra);
      const bob = await (await ChatClient.connect(b.t, 'bob')).join(rb);
      clients.push(alice, bob);
      await until('node A sees bob', () => sees(ra, 'bob@example.com'));

      await proxy.cut();
      await until('node B knows Redis is away', () => !b.chat.cluster!.connected);
      // Bob claims first (only his node knows), then alice (Redis takes hers): one nickname, two users.
      assert.equal(await bob.nickname(formatUseNickname('neo')), 200);
      // Well apart: the nodes' clocks (Redis's, as each estimates it) agree to a few milliseconds.
      await new Promise((r) => setTimeout(r, 500));
      assert.equal(await alice.nickname(formatUseNickname('NEO')), 200);

      await proxy.restore();
      const told = await alice.received((c) => c.text.includes('Your nickname "NEO" was taken by bob@example.com'));
      assert.equal(told.focus('Type'), 'status', 'a status message of the focus');
      assert.equal(told.cpim.from.uri, ROOM);
      await until('both nodes agree', () => {
        const onA = ra.focus.cluster!.remoteSessions(ra).find((s) => s.user === 'bob@example.com');
        const onB = rb.focus.cluster!.remoteSessions(rb).find((s) => s.user === 'alice@example.com');
        return onA?.nickname === 'neo' && onB !== undefined && onB.nickname === undefined;
      });
      assert.equal(bob.participant.nickname, 'neo', 'the earlier claim keeps it');
      assert.equal(alice.participant.nickname, undefined, 'the later one loses it');
      assert.doesNotMatch(ra.conferenceInfo({ version: 3 }), /NEO/, 'node A’s conference-info no longer shows it');
      assert.equal(bob.c.frames.some((f) => f.kind === 'request' && f.body.toString().includes('Your nickname')), false, 'the keeper is told nothing');
      // The nickname is bob's across nodes now: 425 for alice.
      assert.equal(await alice.nickname(formatUseNickname('neo')), 425);
    } finally {
      for (const c of clients) await c.close().catch(() => undefined);
      await a.t.close();
      await b.t.close();
      await proxy.close();
    }
  });

});
