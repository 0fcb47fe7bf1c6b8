/**
 * Rooms and history survive a restart: a relay with the chat plugin on a SQLite file (the
 * default) or PostgreSQL is closed and a new one opens the same store; the room is there with
 * its subject and roles, and a joiner gets the history with the original CPIM From and
 * DateTime, each message marked History in the focus's namespace.
 */

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { ChatOptionsInput } from '../../plugins/chat/index.ts';
import { createStore } from '../../plugins/chat/store.ts';
import { resolveOptions } from '../../plugins/chat/options.ts';
import { ChatClient, cpimBody, readCopy, startChat } from '../support/chat.ts';

const dir = mkdtempSync(join(tmpdir(), 'chat-history-'));
const prefix = `chat_h${randomBytes(4).toString('hex')}_`;
const stores: Array<{ name: string; store: ChatOptionsInput['store'] }> = [
  { name: 'sqlite3', store: { driver: 'sqlite3', filename: join(dir, 'rooms.db') } },
  { name: 'pg', store: { driver: 'pg', host: '127.0.0.1', port: 5432, user: 'postgres', database: 'test', tablePrefix: prefix } },
];

after(async () => {
  const pg = (await import('pg')).default;
  const c = new pg.Client({ host: '127.0.0.1', port: 5432, user: 'postgres', database: 'test' });
  await c.connect();
  await c.query(`DROP TABLE IF EXISTS ${prefix}messages; DROP TABLE IF EXISTS ${prefix}rooms`);
  await c.end();
});

for (const s of stores) {
  describe(`chat: rooms and history across a restart (${s.name})`, () => {
    it('the room comes back with its subject and roles; a joiner gets the history, marked, From and DateTime unchanged', async () => {
      const { t: t1, chat: chat1 } = await startChat({ store: s.store });
      const room1 = await chat1.rooms.create('sip:kept@example.com', { subject: 'Kept', owners: ['sip:alice@example.com'], moderators: ['sip:bob@example.com'] });
      await chat1.rooms.create('sip:passing@example.com', { persistent: false });
      const alice = await (await ChatClient.connect(t1, 'alice')).join(room1, { nickname: 'al' });
      for (const text of ['first', 'second', 'third']) assert.equal((await alice.say(text)).status, 200);
      await alice.close();
      await t1.close();

      const { t: t2, chat: chat2 } = await startChat({ store: s.store, history: { replay: 2 } });
      try {
        const room = chat2.rooms.get('sip:kept@example.com');
        assert.ok(room, 'the persistent room is back');
        assert.equal(chat2.rooms.get('sip:passing@example.com'), undefined, 'a room that was not persistent is not');
        assert.equal(room.subject, 'Kept');
        assert.equal(room.roleOf('alice@example.com'), 'owner');
        assert.equal(room.roleOf('bob@example.com'), 'moderator');
        const carol = await (await ChatClient.connect(t2, 'carol')).join(room);
        const second = await carol.received('second');
        const third = await carol.received('third');
        assert.equal(carol.copies('first').length, 0, 'replay: 2');
        for (const h of [second, third]) {
          assert.equal(h.focus('History'), 'yes');
          assert.equal(h.focus('Nickname'), '"al"');
          assert.equal(h.cpim.from.uri, 'sip:alice@example.com');
          assert.equal(h.cpim.dateTime, '2024-05-01T10:00:00+02:00');
          // C-6: the stored bytes are the sent bytes; only the focus's lines were added.
          const start = h.cpim.headers.find((x) => x.name === 'NS')!.start;
          assert.deepEqual(Buffer.concat([h.frame.body.subarray(0, start), h.frame.body.subarray(h.cpim.headerEnd)]), cpimBody({ from: 'sip:alice@example.com', to: room.uri, text: h.text }));
        }
        await carol.close();
      } finally {
        await t2.close();
      }
    });
  });
}

describe('chat: history.maxAge', () => {
  it('replays only messages younger than maxAge', async () => {
    const store = { driver: 'sqlite3' as const, filename: join(dir, 'age.db') };
    const raw = await createStore(resolveOptions({ store }).store);
    await raw.open();
    await raw.saveRoom({ key: 'aged@example.com', uri: 'sip:aged@example.com', subject: '', settings: { persistent: true }, roles: {}, muted: [], createdAt: new Date() });
    const day = 86400_000;
    for (const [text, ago] of [['old', 3 * day], ['recent', 1000]] as const) {
      await raw.appendMessage({ room: 'aged@example.com', messageId: text, sender: 'sip:alice@example.com', nickname: undefined, receivedAt: new Date(Date.now() - ago), contentType: 'text/plain', body: cpimBody({ from: 'sip:alice@example.com', to: 'sip:aged@example.com', text }) });
    }
    await raw.close();
    const { t, chat } = await startChat({ store, history: { maxAge: day / 1000 } });
    try {
      const bob = await (await ChatClient.connect(t, 'bob')).join(chat.rooms.get('sip:aged@example.com')!);
      await bob.received('recent');
      assert.deepEqual(bob.c.frames.filter((f) => f.method === 'SEND').map((f) => readCopy(f).text), ['recent']);
      await bob.close();
    } finally {
      await t.close();
    }
  });
});
