/**
 * Large messages and files across nodes (plugins/chat/cluster-files.ts): two relays, each with
 * its own chat focus and files folder, share a room through a real Redis (127.0.0.1:6379, a
 * key prefix of their own). A 5 MiB file sent on one node reaches the other node's member
 * whole, and both nodes keep it; one over cluster.maxFileSize stays on its node, counted.
 */

import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { TestRelay } from '../../core/testing/index.ts';
import type ChatFocus from '../../plugins/chat/index.ts';
import type { FileRecord, Room } from '../../plugins/chat/index.ts';
import { Clients, next, redisPrefixes, seesRemote, startClusterNode, until } from '../support/chat.ts';
import { cpimFile, sha256, wholeCopy } from '../support/chat-files.ts';

const ROOM = 'sip:across-files@example.com';
const MiB = 2 ** 20;
const base = mkdtempSync(join(tmpdir(), 'chat-cluster-files-'));
const newPrefix = redisPrefixes('chatfiles');

interface Node {
  t: TestRelay;
  chat: ChatFocus;
  room: Room;
}

async function startNode(prefix: string, nodeId: string): Promise<Node> {
  const { t, chat } = await startClusterNode({
    prefix,
    nodeId,
    commandTimeout: 2,
    cluster: { maxFileSize: 8 * MiB },
    options: { limits: { maxMessageSize: 32 * MiB }, files: { enabled: true, dir: join(base, nodeId) } },
  });
  const room = await chat.rooms.create(ROOM);
  return { t, chat, room };
}

describe('chat: files across nodes on Redis', () => {
  it('a 5 MiB file sent on one node reaches the other node’s member whole and is kept on both; one over cluster.maxFileSize stays', async () => {
    const prefix = newPrefix();
    const n1 = await startNode(prefix, 'one');
    const n2 = await startNode(prefix, 'two');
    const clients = new Clients({ timeoutMs: 120_000 });
    try {
      const alice = await clients.join(n1.t, 'alice', n1.room);
      const carol = await clients.join(n1.t, 'carol', n1.room);
      const bob = await clients.join(n2.t, 'bob', n2.room);
      await until('node one sees bob', () => seesRemote(n1.room, 'bob@example.com'));

      const file = cpimFile({ from: alice.sip, to: ROOM, size: 5 * MiB, seed: 51, name: 'video.mp4', type: 'video/mp4' });
      const keptThere = next<[FileRecord]>(n2.room, 'file');
      const keptHere = next<[FileRecord]>(n1.room, 'file');
      const sent = await alice.c.streamMessage({ toPath: alice.toPath, size: file.size, source: file.source, contentType: 'message/cpim', chunkSize: MiB });
      assert.ok(sent.responses.every((r) => r.status === 200));
      const isVideo = (_f: unknown, m: { mediaType: string } | undefined) => m?.mediaType === 'video/mp4';
      const [there, here] = await Promise.all([wholeCopy(bob.c, isVideo, 120_000), wholeCopy(carol.c, isVideo, 120_000)]);
      assert.equal(sha256(there.content), file.contentHash, 'whole on the other node');
      assert.equal(there.cpim!.from.uri, alice.sip, 'the sender’s CPIM across nodes (C-6)');
      assert.ok(there.focus('Timestamp') !== undefined);
      assert.equal(sha256(here.content), file.contentHash);

      const [recThere] = await keptThere;
      const [recHere] = await keptHere;
      for (const rec of [recThere, recHere]) {
        assert.equal(rec.name, 'video.mp4');
        assert.equal(rec.size, 5 * MiB);
        assert.equal(rec.sha256, file.contentHash.toUpperCase());
      }
      assert.equal((await n2.chat.files!.list(n2.room))[0]!.id, recThere.id, 'listed on the other node');
      // Bob fetches the other node's copy from his own node.
      await bob.say(`/get ${recThere.id}`);
      const fetched = await wholeCopy(bob.c, (_f, m) => m?.mediaType === 'video/mp4' && m.headers.some((h) => h.localName === 'File'), 120_000);
      assert.equal(sha256(fetched.content), file.contentHash);
      assert.equal(n1.chat.clusterFiles!.stats.sent, 1);
      assert.equal(n2.chat.clusterFiles!.stats.received, 1);

      // Over cluster.maxFileSize (8 MiB here): the sender's node keeps it to itself, counted.
      const tooLarge = n1.chat.cluster!.stats.tooLarge;
      const big = cpimFile({ from: alice.sip, to: ROOM, size: 9 * MiB, seed: 52, name: 'big.bin' });
      await alice.c.streamMessage({ toPath: alice.toPath, size: big.size, source: big.source, contentType: 'message/cpim', chunkSize: MiB });
      const local = await wholeCopy(carol.c, (_f, m) => m?.mediaType === 'application/octet-stream', 120_000);
      assert.equal(sha256(local.content), big.contentHash);
      assert.equal(n1.chat.cluster!.stats.tooLarge, tooLarge + 1);
      assert.equal(n1.chat.clusterFiles!.stats.sent, 1, 'not sent across');
      // A message after it crosses as usual, and bob never got the big one whole.
      await alice.say('after the big one');
      await bob.received('after the big one', 60_000);
      assert.equal(bob.c.frames.some((f) => f.method === 'SEND' && f.flag === '$' && Number(f.header('Byte-Range')?.split('/')[1]) > 9 * MiB), false);
    } finally {
      await clients.close();
      await n1.t.close();
      await n2.t.close();
    }
  });
});
