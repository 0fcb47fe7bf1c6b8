/**
 * The message spool of the chat focus (plugins/chat/spool.ts): one body, a cursor per
 * recipient, memory while every cursor keeps up, a file for the bytes a slow cursor has not
 * read yet (C-8 fast forwarding without letting a slow recipient hold the sender, C-16).
 */

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Spool, type SpoolCursor } from '../../plugins/chat/spool.ts';

const dir = mkdtempSync(join(tmpdir(), 'chat-spool-'));

async function drain(c: SpoolCursor): Promise<Buffer> {
  const parts: Buffer[] = [];
  for (;;) {
    const r = c.read();
    if (r === null) break;
    const b = r instanceof Promise ? await r : r;
    parts.push(Buffer.from(b));
    c.advance(b.length);
  }
  return Buffer.concat(parts);
}

describe('Spool', () => {
  it('keeps bytes in memory while cursors keep up, and drops what every cursor has passed', async () => {
    const s = new Spool({ memoryBytes: 1024, dir });
    const a = s.cursor();
    const b = s.cursor();
    assert.equal(s.append(Buffer.from('hello ')), true);
    assert.equal(s.append(Buffer.from('world')), true);
    assert.equal((await drain(a)).toString(), 'hello world');
    assert.equal(s.memoryBytes, 11, 'b has read nothing yet');
    assert.equal((await drain(b)).toString(), 'hello world');
    assert.equal(s.memoryBytes, 0);
    assert.equal(s.onDisk, false);
  });

  it('puts the bytes a slow cursor has not read into a file and reads them back from it, the fast cursor unaffected', async () => {
    const s = new Spool({ memoryBytes: 64 * 1024, dir });
    const fast = s.cursor();
    const slow = s.cursor();
    const all: Buffer[] = [];
    const fastGot: Buffer[] = [];
    for (let i = 0; i < 40; i++) {
      const piece = Buffer.alloc(16 * 1024, i);
      all.push(piece);
      if (!s.append(piece)) await new Promise<void>((r) => s.onRoom(r));
      fastGot.push(await drain(fast));
    }
    s.end('$');
    assert.equal(s.onDisk, true);
    assert.ok(s.memoryBytes <= 64 * 1024, `memory ${s.memoryBytes}`);
    assert.deepEqual(Buffer.concat(fastGot), Buffer.concat(all));
    assert.deepEqual(await drain(slow), Buffer.concat(all));
    assert.equal(s.ended, '$');
    fast.close();
    slow.close();
    // The file was unlinked when it was opened.
    assert.deepEqual(readdirSync(dir), []);
  });

  it('notify() wakes a cursor that caught up at the next append or at the end', async () => {
    const s = new Spool({ memoryBytes: 1024, dir });
    const c = s.cursor();
    assert.equal(c.read(), null);
    const woke = new Promise<void>((r) => s.notify(r));
    s.append(Buffer.from('x'));
    await woke;
    assert.equal((await drain(c)).toString(), 'x');
    const ended = new Promise<void>((r) => s.notify(r));
    s.end('#');
    await ended;
    assert.equal(s.ended, '#');
  });

  it('keeps nothing when no cursor reads', () => {
    const s = new Spool({ memoryBytes: 1024, dir });
    s.append(Buffer.alloc(4096));
    assert.equal(s.memoryBytes, 0);
    assert.equal(s.length, 4096);
  });
});
