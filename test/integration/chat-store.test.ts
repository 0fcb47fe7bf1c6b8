/**
 * The chat stores (plugins/chat/store.ts) against one behaviour: memory, a SQLite file
 * (sqlite3), and a real PostgreSQL on 127.0.0.1:5432 (pg; user postgres, database test), each
 * under its own table prefix so runs do not meet.
 */

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { resolveOptions } from '../../plugins/chat/options.ts';
import type { ChatStore, HistoryRecord, RoomRecord } from '../../plugins/chat/store.ts';
import { createStore } from '../../plugins/chat/stores/index.ts';

const dir = mkdtempSync(join(tmpdir(), 'chat-store-'));
const prefix = `chat_t${randomBytes(4).toString('hex')}_`;
const PG = { driver: 'pg' as const, host: '127.0.0.1', port: 5432, user: 'postgres', database: 'test', tablePrefix: prefix };

const backends = [
  { name: 'memory', store: { driver: 'memory' as const } },
  { name: 'sqlite3', store: { driver: 'sqlite3' as const, filename: join(dir, 'chat.db'), tablePrefix: prefix } },
  { name: 'pg', store: PG },
];

function record(key: string, o: Partial<RoomRecord> = {}): RoomRecord {
  return { key, uri: `sip:${key}`, subject: 'Subject', settings: { persistent: true, nicknames: true }, roles: { 'alice@example.com': 'owner', 'mallory@example.com': 'banned' }, muted: ['bob@example.com'], createdAt: new Date(1714550400000), ...o };
}

function message(room: string, i: number, at = 1714550400000 + i * 1000): HistoryRecord {
  return { room, messageId: `m${i}`, sender: 'sip:alice@example.com', nickname: i % 2 === 0 ? 'al' : undefined, receivedAt: new Date(at), contentType: 'text/plain', body: Buffer.from(`From: <sip:alice@example.com>\r\nTo: <sip:${room}>\r\n\r\n\r\nmessage ${i} \x00\xff`, 'latin1') };
}

for (const b of backends) {
  describe(`chat store: ${b.name}`, () => {
    let store: ChatStore;
    after(async () => {
      if (b.name === 'pg') {
        // The tables of this run go.
        const pg = (await import('pg')).default;
        const c = new pg.Client({ host: PG.host, port: PG.port, user: PG.user, database: PG.database });
        await c.connect();
        await c.query(`DROP TABLE IF EXISTS ${prefix}messages; DROP TABLE IF EXISTS ${prefix}rooms`);
        await c.end();
      }
    });

    it('keeps rooms with their subject, settings, roles, bans and mutes, and replaces them on save', async () => {
      store = await createStore(resolveOptions({ store: b.store }).store);
      await store.open();
      await store.saveRoom(record('lobby@example.com'));
      await store.saveRoom(record('other@example.com', { subject: 'Other' }));
      await store.saveRoom(record('lobby@example.com', { subject: 'New subject' }));
      const rooms = (await store.loadRooms()).sort((x, y) => x.key.localeCompare(y.key));
      assert.equal(rooms.length, 2);
      assert.deepEqual(rooms[0], record('lobby@example.com', { subject: 'New subject' }));
      assert.equal(rooms[1]!.subject, 'Other');
    });

    it('keeps history bytes as they are and answers the last N, since T, oldest first; prunes and deletes', async () => {
      for (let i = 1; i <= 6; i++) await store.appendMessage(message('lobby@example.com', i));
      await store.appendMessage(message('other@example.com', 99));
      const last3 = await store.history('lobby@example.com', { limit: 3 });
      assert.deepEqual(last3.map((m) => m.messageId), ['m4', 'm5', 'm6']);
      assert.deepEqual(last3[0], message('lobby@example.com', 4));
      assert.equal(last3[1]!.nickname, undefined);
      const since = await store.history('lobby@example.com', { limit: 10, since: new Date(1714550400000 + 4500) });
      assert.deepEqual(since.map((m) => m.messageId), ['m5', 'm6']);
      assert.deepEqual(await store.history('lobby@example.com', { limit: 0 }), []);
      await store.prune('lobby@example.com', 2);
      assert.deepEqual((await store.history('lobby@example.com', { limit: 10 })).map((m) => m.messageId), ['m5', 'm6']);
      await store.deleteRoom('lobby@example.com');
      assert.deepEqual((await store.loadRooms()).map((r) => r.key), ['other@example.com']);
      assert.deepEqual(await store.history('lobby@example.com', { limit: 10 }), []);
      assert.equal((await store.history('other@example.com', { limit: 10 })).length, 1);
      await store.close();
    });

    if (b.name !== 'memory') {
      it('what was written is there after closing and opening again', async () => {
        const again = await createStore(resolveOptions({ store: b.store }).store);
        await again.open();
        assert.deepEqual((await again.loadRooms()).map((r) => r.key), ['other@example.com']);
        assert.deepEqual((await again.history('other@example.com', { limit: 5 })).map((m) => m.messageId), ['m99']);
        await again.close();
      });
    }
  });
}
