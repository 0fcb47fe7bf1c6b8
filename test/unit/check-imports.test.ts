// scripts/check-imports.mjs (part of `npm run lint`): plugins and examples reach the core only
// through its public entries, and a deep import fails the check with its file and line.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const SCRIPT = fileURLToPath(new URL('../../scripts/check-imports.mjs', import.meta.url));
const REPO = fileURLToPath(new URL('../..', import.meta.url));

function check(root: string): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [SCRIPT, root], { encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** A folder laid out like the repository, with the given files. */
function tree(files: Record<string, string>): string {
  const root = mkdtempSync(join(tmpdir(), 'msrprelay-imports-'));
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), text);
  }
  roots.push(root);
  return root;
}
const roots: string[] = [];

describe('check-imports', () => {
  after(() => {
    for (const r of roots) rmSync(r, { recursive: true, force: true });
  });

  it('a deep import of the core fails, naming the file, the line, the specifier and the entry to use', () => {
    const root = tree({
      'plugins/deep/index.ts': [
        "import { MsrpError } from '../../core/index.ts';",
        '// import { maskId } from "../../core/session/session-table.ts";  (a comment is no import)',
        'import {',
        '  loadConfigFile,',
        "} from '../../core/config/load.ts';",
        "export const later = () => import('../../core/protocol/uri.ts');",
        '',
      ].join('\n'),
    });
    const r = check(root);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    const lines = r.stderr.trim().split('\n');
    assert.match(lines[0]!, /^plugins\/deep\/index\.ts:5: '\.\.\/\.\.\/core\/config\/load\.ts' .*'\.\.\/\.\.\/core\/index\.ts' \(msrprelay\)/);
    assert.match(lines[1]!, /^plugins\/deep\/index\.ts:6: '\.\.\/\.\.\/core\/protocol\/uri\.ts' .*\(msrprelay\/protocol\)/);
    assert.equal(lines.length, 3, r.stderr);
    assert.doesNotMatch(r.stderr, /session-table/);
  });

  it('public entries, other plugin files, node: builtins and npm packages pass', () => {
    const root = tree({
      'plugins/clean/index.ts': [
        "import { readFile } from 'node:fs/promises';",
        "import pino from 'pino';",
        "import { MsrpError, type PluginHost } from '../../core/index.ts';",
        "import { computeHa1 } from '../../core/protocol/index.ts';",
        "export { startTestRelay } from '../../core/testing/index.ts';",
        "import { withDeadline } from '../shared/deadline.ts';",
        "const text = \"import x from '../../core/relay.ts'\"; // inside a string: not an import",
        '',
      ].join('\n'),
      'examples/app/relay.ts': "import { createRelay } from '../../core/index.ts';\n",
    });
    const r = check(root);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, '');
  });

  it('a circle of imports fails, type imports included, printed once as a way round it', () => {
    const root = tree({
      'plugins/loop/room.ts': "import { Member } from './member.ts';\nexport class Room { m = new Member(); }\n",
      'plugins/loop/member.ts': "import type { Inbox } from './inbox.ts';\nexport class Member { box?: Inbox; }\n",
      'plugins/loop/inbox.ts': "import type { Room } from './room.ts';\nexport interface Inbox { room: Room }\n",
      'core/self.ts': "export type { A } from './self.ts';\nexport interface A { a: 1 }\n",
      'core/index.ts': "import './self.ts';\n",
      // One way down, however many files: no circle.
      'bench/a.ts': "import './b.ts';\nimport './c.ts';\n",
      'bench/b.ts': "import './c.ts';\n",
      'bench/c.ts': "export const c = 1;\n",
    });
    const r = check(root);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    const circles = r.stderr.split('\n').filter((l) => l.startsWith('circle'));
    assert.deepEqual(circles.sort(), [
      'circle of 1 file: core/self.ts → core/self.ts',
      'circle of 3 files: plugins/loop/inbox.ts → plugins/loop/room.ts → plugins/loop/member.ts → plugins/loop/inbox.ts (all of it: plugins/loop/inbox.ts, plugins/loop/member.ts, plugins/loop/room.ts)',
    ]);
    assert.match(r.stderr, /2 circles of imports/);
    assert.doesNotMatch(r.stderr, /bench\//);
  });

  it('the repository itself keeps the boundary and imports in no circle', () => {
    const r = check(REPO);
    assert.equal(r.code, 0, r.stderr);
  });
});
