/**
 * Defects found in a review of the chat focus's pure parts (plugins/chat), each with the test
 * that showed it.
 */

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Spool } from '../../plugins/chat/spool.ts';

const dir = mkdtempSync(join(tmpdir(), 'chat-review-'));

/** Descriptors of this process open on spool files of `dir` (unlinked at once, so "(deleted)"). */
function openSpoolFiles(): number {
  let n = 0;
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      if (readlinkSync(`/proc/self/fd/${fd}`).startsWith(dir)) n++;
    } catch {
      // closed meanwhile
    }
  }
  return n;
}

async function until(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
}

describe('Spool: the file of a message whose readers all went away', () => {
  it('is closed when the message ends after its last cursor closed (recipients left mid-message)', async () => {
    const s = new Spool({ memoryBytes: 16, dir });
    const c = s.cursor();
    s.append(Buffer.alloc(100, 1));
    assert.equal(s.onDisk, true);
    assert.equal(openSpoolFiles(), 1);
    // The only recipient leaves (its copy ends with `#`); the sender goes on and ends.
    c.close();
    s.append(Buffer.alloc(100, 2));
    s.end('$');
    await until(() => openSpoolFiles() === 0);
    assert.equal(openSpoolFiles(), 0, 'the spool file descriptor leaks');
  });

  it('is closed when the message is aborted after its last cursor closed (C-9 timer, sender gone)', async () => {
    const s = new Spool({ memoryBytes: 16, dir });
    const c = s.cursor();
    s.append(Buffer.alloc(100, 1));
    c.close();
    s.end('#');
    await until(() => openSpoolFiles() === 0);
    assert.equal(openSpoolFiles(), 0);
  });
});
