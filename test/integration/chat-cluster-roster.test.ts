/**
 * What rooms across nodes used to leave per node (the chat plugin's cluster option,
 * cluster-roster.ts, cluster-state.ts, files.ts): two relays, each with its own chat focus, on a
 * real Redis (127.0.0.1:6379, a key prefix of their own per test). The welcome and /who name the
 * users of both nodes; a client without a=chatroom is told of the other node's joins, leaves and
 * nickname changes once per user (C-17, C-10); a role the join hook gives on one node holds on the other; an
 * RFC 5547 push session carries one file, a second on it is refused with 413 (§8.7).
 */

import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { TestRelay } from '../../core/testing/index.ts';
import type ChatFocus from '../../plugins/chat/index.ts';
import { formatUseNickname, type Room } from '../../plugins/chat/index.ts';
import { Clients, type ChatClient, redisPrefixes, seesRemote, startClusterNode, until } from '../support/chat.ts';
import { cpimFile, pushOffer, wholeCopy } from '../support/chat-files.ts';

const ROOM = 'sip:everyone@example.com';
const newPrefix = redisPrefixes('chatroster');

interface Node {
  t: TestRelay;
  chat: ChatFocus;
}

/** The room of node A (created there) and node B (opened there). */
async function sharedRoom(a: Node, b: Node): Promise<[Room, Room]> {
  const ra = await a.chat.rooms.create(ROOM, { subject: 'Everyone' });
  const rb = await b.chat.rooms.open(ROOM);
  assert.ok(rb !== undefined, 'node B opens the room node A created');
  return [ra, rb];
}

/** The status messages of the focus a client got, by their text. */
const statuses = (c: ChatClient, text: string) => c.copies(text).filter((x) => x.focus('Type') === 'status');

describe('chat: the roster across nodes, as participants see it', () => {
  it('the welcome and /who name the users of both nodes; joins, leaves and nicknames on the other node are told once per user (C-17)', async () => {
    const prefix = newPrefix();
    const a = await startClusterNode({ prefix, nodeId: 'a' });
    const b = await startClusterNode({ prefix, nodeId: 'b' });
    const clients = new Clients();
    try {
      const [ra, rb] = await sharedRoom(a, b);
      await clients.join(a.t, 'alice', ra, { nickname: 'al' });
      await clients.join(b.t, 'bob', rb, { nickname: 'bobby' });
      await until('node A sees bob', () => seesRemote(ra, 'bob@example.com'));

      // C-17: a client without a=chatroom on A is welcomed with the users of both nodes.
      const carol = await clients.join(a.t, 'carol', ra, { chatroom: null });
      const welcome = await carol.received((c) => c.text.startsWith('Welcome'));
      assert.match(welcome.text, /^Welcome to Everyone \(sip:everyone@example\.com\)\.\nHere: al, bobby\.\n/);
      // /who answers with both nodes' users.
      assert.equal((await carol.say('/who')).status, 200);
      const who = await carol.received((c) => c.text.includes('<sip:bob@example.com>'));
      assert.deepEqual(who.text.split('\n').sort(), ['al <sip:alice@example.com>', 'bobby <sip:bob@example.com>', 'sip:carol@example.com <sip:carol@example.com>']);
      // The same on B: bob's /who names alice and carol of A.
      await until('node B sees carol', () => seesRemote(rb, 'carol@example.com'));
      const bob = clients.open[1]!;
      assert.equal((await bob.say('/who')).status, 200);
      const whoB = await bob.received((c) => c.text.includes('<sip:carol@example.com>'));
      assert.match(whoB.text, /^al <sip:alice@example\.com>$/m);
      // bob's new nickname on B is told to carol on A, as a change on A would be.
      assert.equal(await bob.nickname(formatUseNickname('robert')), 200);
      await carol.received('bobby is now robert');

      // A user joining on B is told to carol on A; one with sessions on both nodes once.
      const erinB = await clients.join(b.t, 'erin', rb);
      await carol.received('sip:erin@example.com joined');
      await until('node A sees erin', () => seesRemote(ra, 'erin@example.com'));
      const erinA = await clients.join(a.t, 'erin', ra);
      // A second session of erin here is no news; dave's join on B comes after it.
      const dave = await clients.join(b.t, 'dave', rb);
      await carol.received('sip:dave@example.com joined');
      assert.equal(statuses(carol, 'sip:erin@example.com joined').length, 1, 'erin, on two nodes, joined once');

      // erin leaves A but is still on B: not gone; then she leaves B too: gone, told once.
      ra.leave(erinA.participant);
      rb.leave(erinB.participant);
      await carol.received('sip:erin@example.com left');
      rb.leave(dave.participant);
      await carol.received('sip:dave@example.com left');
      assert.equal(statuses(carol, 'sip:erin@example.com left').length, 1, 'erin left once');
      // A client of rooms (a=chatroom) has the roster from conference-info: it gets no such status.
      assert.equal(clients.open[0]!.copies('sip:dave@example.com joined').length, 0);
    } finally {
      await clients.close();
      await a.t.close();
      await b.t.close();
    }
  });

  it('a role the join hook gives on one node holds on the other', async () => {
    const prefix = newPrefix();
    const a = await startClusterNode({ prefix, nodeId: 'a' });
    const b = await startClusterNode({ prefix, nodeId: 'b' });
    const clients = new Clients();
    try {
      const [ra, rb] = await sharedRoom(a, b);
      // Node A's application makes erin a moderator as she joins there; node B's has no hook.
      a.chat.hooks.authorizeJoin.tapPromise('test', async (q) => (q.user === 'erin@example.com' ? { role: 'moderator' } : undefined));
      const bob = await clients.join(b.t, 'bob', rb, { nickname: 'bob' });
      const erin = await clients.join(a.t, 'erin', ra);
      assert.equal(erin.participant.role, 'moderator');
      await until('node B has erin as moderator', () => rb.roleOf('erin@example.com') === 'moderator');
      // erin moderates on B with a second session there: her /mute holds on B.
      const erinB = await clients.join(b.t, 'erin', rb);
      assert.equal((await erinB.say('/mute bob')).status, 200);
      await erinB.received('sip:bob@example.com is muted.');
      assert.equal((await bob.say('may I?')).status, 403);
      await until('node A has bob muted', () => ra.isMuted('bob@example.com'));
    } finally {
      await clients.close();
      await a.t.close();
      await b.t.close();
    }
  });

  it('an RFC 5547 push session carries one file: it reaches the other node; a second on the session is refused with 413 (§8.7)', async () => {
    const prefix = newPrefix();
    const dir = mkdtempSync(join(tmpdir(), 'chat-cluster-roster-'));
    const a = await startClusterNode({ prefix, nodeId: 'a', options: { files: { enabled: true, dir } } });
    const b = await startClusterNode({ prefix, nodeId: 'b' });
    const clients = new Clients();
    try {
      const [ra, rb] = await sharedRoom(a, b);
      const alice = await clients.join(a.t, 'alice', ra);
      const bob = await clients.join(b.t, 'bob', rb);
      await until('node A sees bob', () => seesRemote(ra, 'bob@example.com'));
      const pusher = await clients.connect(a.t, 'carol');
      const r = await ra.join({ sdpOffer: pushOffer(pusher, 'name:"chart.png" type:image/png size:5000', 'image/png'), identity: { uri: pusher.sip } });
      const toPath = [...pusher.usePath, r.sdpAnswer.match(/a=path:(\S+)/)![1]!];
      const png = cpimFile({ from: pusher.sip, to: ROOM, size: 5000, seed: 11 }).content(0, 5000);
      const sent = await pusher.c.sendMessage({ toPath, body: png, contentType: 'image/png', chunkSize: 2000 });
      assert.deepEqual([...new Set(sent.responses.map((x) => x.status))], [200]);
      const copy = await wholeCopy(bob.c, (_f, m) => m?.mediaType === 'image/png');
      assert.deepEqual(copy.content, png, 'the file reaches the member on the other node');

      // A second file on the same session: refused, and nobody gets it.
      const other = cpimFile({ from: pusher.sip, to: ROOM, size: 3000, seed: 12 }).content(0, 3000);
      const second = await pusher.c.sendMessage({ toPath, body: other, contentType: 'image/png', chunkSize: 1000 });
      assert.equal(second.responses[0]!.status, 413);
      assert.equal(second.responses[0]!.comment, 'One file per session');
      // What alice says after it reaches bob after it would have: the second file did not come.
      assert.equal((await alice.say('after the files')).status, 200);
      await bob.received('after the files');
      const firstChunks = bob.c.frames.filter((f) => f.kind === 'request' && f.method === 'SEND' && f.hasBody && (f.header('Byte-Range') ?? '1-').startsWith('1-'));
      const pngs = firstChunks.filter((f) => f.body.includes('Content-Type: image/png'));
      assert.equal(pngs.length, 1, 'one file reached node B');
      ra.leave(r.participant);
    } finally {
      await clients.close();
      await a.t.close();
      await b.t.close();
    }
  });
});
