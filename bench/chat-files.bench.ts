/**
 * What keeping a file costs the chat focus (plugins/chat/files.ts): a 32 MiB file sent to a room
 * of two, once with files.enabled false and once true (written to disk as it arrives, hashed,
 * recorded), timed from the first byte sent to the copy's last byte received and the record kept.
 * Run: node --import tsx bench/chat-files.bench.ts
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startTestRelay } from '../core/testing/index.ts';
import ChatFocus, { type FileRecord } from '../plugins/chat/index.ts';
import { ChatClient, USERS, next } from '../test/support/chat.ts';
import { cpimFile, wholeCopy } from '../test/support/chat-files.ts';
const MiB = 2 ** 20;
for (const enabled of [false, true]) {
  const chat = new ChatFocus({ store: { driver: 'memory' }, limits: { maxMessageSize: 64 * MiB }, files: { enabled, dir: mkdtempSync(join(tmpdir(), 'cfb-')), maxFileSize: 64 * MiB } });
  const t = await startTestRelay({ users: USERS, plugins: [chat], limits: { maxMessageSize: 128 * MiB } });
  const room = await chat.rooms.create('sip:b@example.com');
  const a = await (await ChatClient.connect(t, 'alice', { timeoutMs: 120000 })).join(room);
  const b = await (await ChatClient.connect(t, 'bob', { timeoutMs: 120000, storeBodies: false })).join(room);
  const f = cpimFile({ from: a.sip, to: room.uri, size: 32 * MiB, seed: 1 });
  const kept = enabled ? next<[FileRecord]>(room, 'file') : Promise.resolve();
  const t0 = performance.now();
  await a.c.streamMessage({ toPath: a.toPath, size: f.size, source: f.source, contentType: 'message/cpim', chunkSize: MiB });
  await b.c.waitFor((fr) => fr.method === 'SEND' && fr.flag === '$' && fr.bodyLength > 0 && Number(fr.header('Byte-Range')?.split('/')[1]) > 32 * MiB, 120000);
  await kept;
  console.log(`files.enabled=${enabled}: 32 MiB to a room of two, sent, received and ${enabled ? 'kept' : 'not kept'} in ${(performance.now() - t0).toFixed(0)} ms`);
  await a.close(); await b.close(); await t.close();
}
