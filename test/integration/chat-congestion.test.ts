/**
 * C-16 through a real relay: a 20 MiB file sent to a room arrives whole at every member while
 * one member does not read at all (it is marked congested; regular messages to it are dropped
 * and counted) and the others are not held back; a member that stays congested is dropped from
 * the room. C-8: the file is forwarded chunk by chunk as it arrives.
 */

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Participant, Room } from '../../plugins/chat/index.ts';
import { ChatClient, chatSuite, next, readCopy, startChat } from '../support/chat.ts';
import { cpimFile, sha256 } from '../support/chat-files.ts';

const MiB = 2 ** 20;

function congestedEvent(room: Room, who: Participant, event: 'congested' | 'decongested' = 'congested'): Promise<void> {
  if ((event === 'congested') === who.congested) return Promise.resolve();
  return new Promise((resolve) => {
    const on = (p: Participant) => {
      if (p !== who) return;
      room.off(event, on);
      resolve();
    };
    room.on(event, on);
  });
}

describe('chat: congestion (C-16) and a 20 MiB file to the room', () => {
  const s = chatSuite(
    {
      store: { driver: 'memory' },
      limits: { maxMessageSize: 32 * MiB },
      congestion: { backlogBytes: MiB, dropAfter: 600 },
      spool: { memoryBytes: MiB },
    },
    { timeoutMs: 120_000, relay: { limits: { maxMessageSize: 64 * MiB } } },
  );

  it('reaches every member whole; the member that reads nothing is congested and does not hold back the others', async () => {
    const room = await s.chat.rooms.create('sip:files@example.com');
    const alice = await s.join('alice', room);
    const bob = await s.join('bob', room);
    const dave = await s.join('dave', room);
    const carol = await s.join('carol', room);
    carol.c.pauseReading();
    const congested = congestedEvent(room, carol.participant);

    const file = cpimFile({ from: alice.sip, to: room.uri, size: 20 * MiB, seed: 7, name: 'big.bin' });
    const sending = alice.c.streamMessage({ toPath: alice.toPath, size: file.size, source: file.source, contentType: 'message/cpim', chunkSize: MiB });
    await congested;
    assert.equal(carol.participant.congested, true);

    // The sender and the members who read are done while carol has read nothing.
    const sent = await sending;
    assert.ok(sent.responses.every((r) => r.status === 200));
    const isFile = (f: { method: string; flag: string; header(n: string): string | undefined }) => f.method === 'SEND' && f.flag === '$' && Number(f.header('Byte-Range')?.split('/')[1]) > 20 * MiB;
    for (const member of [bob, dave]) {
      const last = await member.c.waitFor(isFile, 120_000);
      const whole = await member.c.waitForMessage(last.header('Message-ID')!, 120_000);
      assert.equal(whole.complete, true);
      const copy = readCopy({ ...last, body: whole.body! });
      assert.equal(copy.cpim.from.uri, alice.sip);
      assert.equal(sha256(whole.body!.subarray(copy.cpim.contentStart)), file.contentHash);
    }
    assert.equal(carol.c.frames.some(isFile), false);
    assert.equal(carol.participant.congested, true);

    // A regular message while carol is congested: dropped for her and counted, delivered to the others.
    const dropped = carol.participant.stats.dropped;
    await alice.say('while carol is congested');
    await bob.received('while carol is congested');
    assert.equal(carol.participant.stats.dropped, dropped + 1);

    // Carol reads again: the whole file arrives, she is free again, later messages reach her.
    const free = congestedEvent(room, carol.participant, 'decongested');
    carol.c.resumeReading();
    const last = await carol.c.waitFor(isFile, 120_000);
    const whole = await carol.c.waitForMessage(last.header('Message-ID')!, 120_000);
    const copy = readCopy({ ...last, body: whole.body! });
    assert.equal(sha256(whole.body!.subarray(copy.cpim.contentStart)), file.contentHash);
    await free;
    await alice.say('carol is back');
    await carol.received('carol is back');
    assert.equal(carol.copies('while carol is congested').length, 0);
  });

  it('short messages to a member that reads nothing: it is marked congested, the others get every one, and it is free again once it reads', async () => {
    // Copies of short messages go out whole, asking for error answers only (Failure-Report
    // partial): what marks the member is its connection staying full (markAfter), not a 200.
    const { t: t2, chat: quick } = await startChat({ store: { driver: 'memory' }, limits: { rate: { messages: 1_000_000, seconds: 1 } }, congestion: { backlogBytes: 64 * MiB, markAfter: 0.2, dropAfter: 600 } });
    try {
      const room = await quick.rooms.create('sip:short@example.com');
      const alice = await (await ChatClient.connect(t2, 'alice', { timeoutMs: 60_000, storeBodies: false })).join(room);
      const bob = await (await ChatClient.connect(t2, 'bob', { timeoutMs: 60_000, storeBodies: false })).join(room);
      const erin = await (await ChatClient.connect(t2, 'erin', { timeoutMs: 60_000, storeBodies: false })).join(room);
      erin.c.pauseReading();
      const marked = congestedEvent(room, erin.participant);
      let congested = false;
      void marked.then(() => (congested = true));
      const text = 'x'.repeat(1500);
      const started = Date.now();
      let n = 0;
      while (!congested && n < 50_000) {
        assert.equal((await alice.say(`${n} ${text}`, { to: room.uri })).status, 200, 'the sender is never held back');
        n++;
      }
      await marked;
      // While erin is congested a regular message is dropped for her and counted (C-16).
      const dropped = erin.participant.stats.dropped;
      await alice.say('while erin is congested', { to: room.uri });
      assert.equal(erin.participant.stats.dropped, dropped + 1);
      // Bob read along: he has every one of them, whole, each asking for error answers only.
      const bobs = () => bob.c.frames.filter((f) => f.method === 'SEND' && f.bodyLength > 1500);
      for (let i = 0; bobs().length < n; i++) {
        assert.ok(i < 3000, `bob has ${bobs().length} of ${n}`);
        await new Promise((r) => setTimeout(r, 20));
      }
      assert.ok(bobs().every((f) => f.header('Byte-Range') === `1-${f.bodyLength}/${f.bodyLength}`));
      // All but the first copy on bob's route and one every 10 s after it (which ask for a 200,
      // so that a route that is gone is noticed) ask for error answers only.
      const asking = bobs().filter((f) => f.header('Failure-Report') !== 'partial').length;
      assert.ok(asking >= 1 && asking <= 1 + Math.ceil((Date.now() - started) / 10_000), `${asking} of ${bobs().length} copies asked for a 200`);
      const free = congestedEvent(room, erin.participant, 'decongested');
      erin.c.resumeReading();
      await free;
      await alice.say('erin reads again', { to: room.uri });
      await erin.c.waitFor((f) => f.method === 'SEND' && f.bodyLength > 0 && f.bodyLength < 1000, 60_000);
      for (const c of [alice, bob, erin]) await c.close();
    } finally {
      await t2.close();
    }
  });

  it('a member whose output stays blocked is marked congested, then dropped from the room after dropAfter', async () => {
    const { t: t2, chat: quick } = await startChat(
      { store: { driver: 'memory' }, limits: { maxMessageSize: 32 * MiB }, congestion: { backlogBytes: 64 * MiB, markAfter: 0.05, dropAfter: 0.2 } },
      { limits: { maxMessageSize: 64 * MiB } },
    );
    try {
      const room = await quick.rooms.create('sip:stuck@example.com');
      const alice = await (await ChatClient.connect(t2, 'alice', { timeoutMs: 60_000 })).join(room);
      const erin = await (await ChatClient.connect(t2, 'erin', { timeoutMs: 60_000, storeBodies: false })).join(room);
      erin.c.pauseReading();
      const marked = congestedEvent(room, erin.participant);
      const left = next(room, 'left');
      const file = cpimFile({ from: alice.sip, to: room.uri, size: 16 * MiB, seed: 9, name: 'big.bin' });
      const sending = alice.c.streamMessage({ toPath: alice.toPath, size: file.size, source: file.source, contentType: 'message/cpim', chunkSize: MiB });
      await marked;
      const [who, reason] = await left;
      assert.equal(who, erin.participant);
      assert.equal(reason, 'congested');
      assert.ok((await sending).responses.every((r) => r.status === 200), 'the sender never waited for erin');
      assert.equal(room.participants.length, 1);
      erin.c.destroy();
      await alice.close();
    } finally {
      await t2.close();
    }
  });
});
