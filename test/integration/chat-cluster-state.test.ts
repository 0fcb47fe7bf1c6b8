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
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { TestRelay } from '../../core/testing/index.ts';
import type ChatFocus from '../../plugins/chat/index.ts';
import { formatUseNickname, type LeaveReason, type Participant, type Room, type RoomOptions } from '../../plugins/chat/index.ts';
import { ChatClient, Clients, REDIS, next, redisPrefixes, seesRemote, startClusterNode, until } from '../support/chat.ts';
import { CutProxy } from '../support/cut-proxy.ts';

const ROOM = 'sip:shared@example.com';
const HEARTBEAT = 0.2;
const ROSTER_TTL = 1;

interface Node {
  t: TestRelay;
  chat: ChatFocus;
}

function startNode(prefix: string, nodeId: string, port = REDIS.port, store: { driver: 'memory' } | { driver: 'sqlite3'; filename: string } = { driver: 'memory' }): Promise<Node> {
  return startClusterNode({ prefix, nodeId, port, heartbeat: HEARTBEAT, rosterTtl: ROSTER_TTL, options: { store } });
}

const newPrefix = redisPrefixes('chatstate');

/** The room of node A (created there) and node B (opened there: it exists in Redis). */
async function sharedRoom(a: Node, b: Node, o: RoomOptions = {}, uri = ROOM): Promise<[Room, Room]> {
  const ra = await a.chat.rooms.create(uri, o);
  const rb = await b.chat.rooms.open(uri);
  assert.ok(rb !== undefined, 'node B opens the room node A created');
  return [ra, rb];
}

const sees = seesRemote;

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

describe('chat: room state across nodes on Redis', () => {
  it('a mute, a role and a subject made on one node hold on the other', async () => {
    const prefix = newPrefix();
    const a = await startNode(prefix, 'a');
    const b = await startNode(prefix, 'b');
    const clients = new Clients();
    try {
      const [ra, rb] = await sharedRoom(a, b, { subject: 'Before' });
      assert.equal(rb.subject, 'Before', 'node B has node A’s subject');
      const alice = await clients.join(a.t, 'alice', ra);
      const bob = await clients.join(b.t, 'bob', rb);
      const plain = await clients.join(b.t, 'carol', rb, { chatroom: null });
      await until('node A sees bob', () => sees(ra, 'bob@example.com'));

      // A mute on A: bob's regular messages on B get 403 (moderation), typing notices go nowhere.
      ra.mute('sip:bob@example.com');
      await until('node B has bob muted', () => rb.isMuted('bob@example.com'));
      assert.equal((await bob.say('may I?')).status, 403);
      ra.unmute('sip:bob@example.com');
      await until('node B has bob unmuted', () => !rb.isMuted('bob@example.com'));
      assert.equal((await bob.say('thanks')).status, 200);
      await alice.received('thanks');

      // A subject on A: B's room has it, emits `subject`, and B's client without a=chatroom is told (C-17).
      const changed = next(rb, 'subject');
      ra.setSubject('Planning');
      assert.equal((await changed)[0], 'Planning');
      assert.equal(rb.subject, 'Planning');
      await plain.received('The subject is now: Planning');
      assert.match(rb.conferenceInfo({ version: 2 }), /<subject>Planning<\/subject>/);

      // A role given on A: bob moderates on B, and his /subject there reaches A.
      ra.setRole('sip:bob@example.com', 'moderator');
      await until('node B has bob as moderator', () => rb.roleOf('bob@example.com') === 'moderator');
      assert.equal((await bob.say('/subject From B')).status, 200);
      await bob.received('Subject set.');
      await until('node A has the subject of B', () => ra.subject === 'From B');
      // A member on B may still not moderate.
      assert.equal((await plain.say('/mute alice@example.com')).status, 200);
      await plain.received((c) => c.text.startsWith('Not allowed'));
      assert.equal(ra.isMuted('alice@example.com'), false);
    } finally {
      await clients.close();
      await a.t.close();
      await b.t.close();
    }
  });

  it('a kick and a ban on one node remove the user’s sessions on the other; a rejoin there is refused', async () => {
    const prefix = newPrefix();
    const a = await startNode(prefix, 'a');
    const b = await startNode(prefix, 'b');
    const clients = new Clients();
    try {
      const [ra, rb] = await sharedRoom(a, b);
      const alice = await clients.join(a.t, 'alice', ra);
      const bob = await clients.join(b.t, 'bob', rb);
      assert.equal(await bob.nickname(formatUseNickname('builder')), 200);
      await until('node A sees bob as builder', () => ra.focus.cluster!.remoteSessions(ra).some((s) => s.nickname === 'builder'));

      // /kick by a nickname held on the other node, from a moderator on A.
      ra.setRole('sip:alice@example.com', 'moderator');
      const kicked = leaves(rb, 'bob@example.com');
      assert.equal((await alice.say('/kick builder')).status, 200);
      await alice.received('builder was kicked.');
      assert.equal(await kicked, 'kicked');
      assert.notEqual((await bob.say('still here?')).status, 200, 'the kicked session is gone from the focus');
      await bob.close();

      // Back on B, then banned on A: the session on B leaves (banned) and B refuses a rejoin.
      const bob2 = await clients.join(b.t, 'bob', rb);
      await until('node A sees bob again', () => sees(ra, 'bob@example.com'));
      const banned = leaves(rb, 'bob@example.com');
      ra.ban('sip:bob@example.com');
      assert.equal(await banned, 'banned');
      assert.equal(rb.roleOf('bob@example.com'), 'banned');
      await assert.rejects(clients.join(b.t, 'bob', rb), (e: Error & { code?: string; sipStatus?: number }) => e.code === 'forbidden' && e.sipStatus === 403);
      // Unbanned on B: welcome on A again.
      rb.unban('sip:bob@example.com');
      await until('node A has bob unbanned', () => ra.roleOf('bob@example.com') === 'member');
      const bob3 = await clients.join(a.t, 'bob', ra);
    } finally {
      await clients.close();
      await a.t.close();
      await b.t.close();
    }
  });

  it('a room created on one node is joined on the other with its settings', async () => {
    const prefix = newPrefix();
    const a = await startNode(prefix, 'a');
    const b = await startNode(prefix, 'b');
    const clients = new Clients();
    try {
      assert.equal(await b.chat.rooms.open('sip:nothere@example.com'), undefined, 'no such room anywhere');
      const ra = await a.chat.rooms.create(ROOM, { subject: 'Quiet', privateMessages: false, password: 'sesame', owners: ['sip:alice@example.com'] });
      const alice = await clients.join(a.t, 'alice', ra, { password: 'sesame' });
      assert.equal((await alice.say('said before B had the room')).status, 200);
      // create() on B of a room A created: A's room, A's settings (the options given here are not used).
      const rb = await b.chat.rooms.create(ROOM, { subject: 'Other', privateMessages: true });
      assert.equal(rb.subject, 'Quiet');
      assert.equal(rb.settings.privateMessages, false);
      assert.equal(rb.roleOf('alice@example.com'), 'owner');
      assert.equal(await b.chat.rooms.open(ROOM), rb);

      await assert.rejects(clients.join(b.t, 'bob', rb), /password/, 'the password of A holds on B');
      const bob = await clients.join(b.t, 'bob', rb, { password: 'sesame' });
      assert.doesNotMatch(bob.sdpAnswer, /private-messages/, 'B’s answer says what A’s room allows (C-15)');
      await until('node B sees alice', () => sees(rb, 'alice@example.com'));
      // C-11: privateMessages false on A's room is 403 on B.
      assert.equal((await bob.say('psst', { to: alice.sip })).status, 403);
      assert.equal((await bob.say('hello A')).status, 200);
      await alice.received('hello A');
      // What was said before B had the room reaches bob as history, not again as a new message.
      assert.equal((await bob.received('said before B had the room')).focus('History'), 'yes');
      await new Promise((r) => setTimeout(r, 1000));
      assert.equal(bob.copies('said before B had the room').length, 1);
    } finally {
      await clients.close();
      await a.t.close();
      await b.t.close();
    }
  });

  it('a temporary room stays while a participant on another node remains, and goes with the last one', async () => {
    const prefix = newPrefix();
    const a = await startNode(prefix, 'a');
    const b = await startNode(prefix, 'b');
    const clients = new Clients();
    try {
      const [ra, rb] = await sharedRoom(a, b, { persistent: false, subject: 'Pop-up' });
      const alice = await clients.join(a.t, 'alice', ra);
      const bob = await clients.join(b.t, 'bob', rb);
      await until('node A sees bob', () => sees(ra, 'bob@example.com'));

      // A's last participant leaves; bob is still in on B: the room stays, on both nodes.
      ra.leave(alice.participant);
      await until('node B no longer sees alice', () => !sees(rb, 'alice@example.com'));
      await new Promise((r) => setTimeout(r, HEARTBEAT * 1000 * 5));
      assert.equal(a.chat.rooms.get(ROOM), ra, 'node A keeps the room');
      assert.equal(b.chat.rooms.get(ROOM), rb);
      // A newcomer on A is in the same room as bob.
      const carol = await clients.join(a.t, 'carol', ra);
      assert.equal((await bob.say('still open')).status, 200);
      await carol.received('still open');
      ra.leave(carol.participant);
      await until('node B no longer sees carol', () => !sees(rb, 'carol@example.com'));

      // The last participant anywhere leaves: the room is gone from every node, and from Redis.
      rb.leave(bob.participant);
      await until('node B deletes the room', () => b.chat.rooms.get(ROOM) === undefined);
      await until('node A deletes the room', () => a.chat.rooms.get(ROOM) === undefined);
      assert.equal(await b.chat.rooms.open(ROOM), undefined);
      // The URI may be a new room (fresh settings), on either node.
      const again = await b.chat.rooms.create(ROOM, { subject: 'New' });
      assert.equal(again.subject, 'New');
      assert.equal((await a.chat.rooms.open(ROOM))?.subject, 'New');
    } finally {
      await clients.close();
      await a.t.close();
      await b.t.close();
    }
  });

  it('a temporary room whose only node closed with people in it is no room: create() elsewhere makes a new one', async () => {
    const prefix = newPrefix();
    const a = await startNode(prefix, 'a');
    const b = await startNode(prefix, 'b');
    try {
      const ra = await a.chat.rooms.create(ROOM, { persistent: false, subject: 'Old', privateMessages: false });
      const alice = await (await ChatClient.connect(a.t, 'alice')).join(ra);
      await a.t.close();
      await alice.close();
      const rb = await b.chat.rooms.create(ROOM, { persistent: false, subject: 'New' });
      assert.equal(rb.subject, 'New');
      assert.equal(rb.settings.privateMessages, true, 'the settings given, not the old room’s');
    } finally {
      await a.t.close();
      await b.t.close();
    }
  });

  it('Redis is authoritative: a node that restarts from its own store takes the state changed while it was down', async () => {
    const prefix = newPrefix();
    const store = { driver: 'sqlite3' as const, filename: join(mkdtempSync(join(tmpdir(), 'chat-state-')), 'chat.db') };
    let a = await startNode(prefix, 'a', REDIS.port, store);
    const b = await startNode(prefix, 'b');
    const clients = new Clients();
    try {
      const [, rb] = await sharedRoom(a, b, { subject: 'Before' });
      await a.t.close();
      rb.ban('sip:carol@example.com');
      rb.setSubject('Decided while A was down');
      // A comes back with the room as its SQLite file has it; Redis has the newer state.
      a = await startNode(prefix, 'a', REDIS.port, store);
      const ra = a.chat.rooms.get(ROOM)!;
      assert.ok(ra !== undefined, 'the room comes back from the store');
      await until('node A has what Redis has', () => ra.subject === 'Decided while A was down' && ra.roleOf('carol@example.com') === 'banned');
      await assert.rejects(clients.join(a.t, 'carol', ra), (e: Error & { code?: string }) => e.code === 'forbidden');
      const alice = await clients.join(a.t, 'alice', ra);
      assert.match(alice.sdpAnswer, /s=Decided while A was down/);
    } finally {
      await clients.close();
      await a.t.close();
      await b.t.close();
    }
  });

  it('with Redis cut, a nickname taken on both nodes is settled when it is back: the earlier claim keeps it', async () => {
    const prefix = newPrefix();
    const proxy = await new CutProxy(REDIS).start();
    const a = await startNode(prefix, 'a');
    const b = await startNode(prefix, 'b', proxy.port);
    const clients = new Clients();
    try {
      const [ra, rb] = await sharedRoom(a, b);
      const alice = await clients.join(a.t, 'alice', ra);
      const bob = await clients.join(b.t, 'bob', rb);
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
      await clients.close();
      await a.t.close();
      await b.t.close();
      await proxy.close();
    }
  });

  it('changes made while a node has no Redis reach the other node once it is back; of two changes of one field the later wins', async () => {
    const prefix = newPrefix();
    const proxy = await new CutProxy(REDIS).start();
    const a = await startNode(prefix, 'a', proxy.port);
    const b = await startNode(prefix, 'b');
    const clients = new Clients();
    try {
      const [ra, rb] = await sharedRoom(a, b);
      const alice = await clients.join(a.t, 'alice', ra);
      const carol = await clients.join(b.t, 'carol', rb);

      await proxy.cut();
      await until('node A knows Redis is away', () => !a.chat.cluster!.connected);
      const banned = leaves(rb, 'carol@example.com');
      ra.ban('sip:carol@example.com');
      ra.setSubject('Offline decision');
      ra.setSubject('Offline and early');
      rb.mute('sip:alice@example.com');
      assert.equal(ra.roleOf('carol@example.com'), 'banned', 'applied on its node at once');
      // Meanwhile B knows nothing of it.
      assert.equal((await carol.say('still in')).status, 200);
      assert.equal(rb.roleOf('carol@example.com'), 'member');
      // Well after A's (the nodes' clock estimates agree to a few milliseconds), B changes the subject too.
      await new Promise((r) => setTimeout(r, 500));
      rb.setSubject('Online and later');

      await proxy.restore();
      assert.equal(await banned, 'banned');
      // The later subject wins on both nodes; the mute made on B meanwhile reaches A.
      await until('node A has the later subject', () => ra.subject === 'Online and later');
      await until('node A has alice muted', () => ra.isMuted('alice@example.com'));
      assert.equal((await alice.say('muted?')).status, 403);
      assert.equal(rb.subject, 'Online and later');
      await assert.rejects(clients.join(b.t, 'carol', rb), (e: Error & { code?: string }) => e.code === 'forbidden');
    } finally {
      await clients.close();
      await a.t.close();
      await b.t.close();
      await proxy.close();
    }
  });
});
