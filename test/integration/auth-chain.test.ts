// Several credential backends at once (issue: "the first that knows the user answers"):
// lookupCredentials taps run in config order; the first that returns credentials decides.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MsrpTestClient } from '../../core/testing/client.ts';
import { startTestRelay, type TestRelay } from '../../core/testing/harness.ts';

const AUTH_URI = 'msrp://example.com;tcp';

async function authStatus(t: TestRelay, username: string, password: string): Promise<number> {
  const c = await MsrpTestClient.connect({ port: t.tcpPort });
  try {
    return (await c.auth({ relayUri: AUTH_URI, username, password })).status;
  } finally {
    await c.close();
  }
}

describe('auth-sql and auth-memory together', () => {
  let dir: string;
  let t: TestRelay;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'msrprelay-chain-'));
    t = await startTestRelay({
      plugins: [
        // First: the SQL table (carol, and a dave whose password differs from the memory one).
        [
          'auth-sql',
          {
            driver: 'sqlite3',
            filename: join(dir, 'users.db'),
            seed: [
              { username: 'carol', domain: 'example.com', password: 'sql-pass' },
              { username: 'dave', domain: 'example.com', password: 'sql-pass' },
            ],
          },
        ],
        // Then: accounts in the config (erin, and an older dave).
        [
          'auth-memory',
          {
            users: [
              { username: 'erin', domain: 'example.com', password: 'mem-pass' },
              { username: 'dave', domain: 'example.com', password: 'mem-pass' },
            ],
          },
        ],
      ],
    });
  });
  after(async () => {
    await t.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('a user only the first backend knows authenticates', async () => {
    assert.equal(await authStatus(t, 'carol', 'sql-pass'), 200);
  });

  it('a user the first backend does not know falls through to the next', async () => {
    assert.equal(await authStatus(t, 'erin', 'mem-pass'), 200);
  });

  it('a user both know: the first backend in config order decides, the second is not consulted', async () => {
    assert.equal(await authStatus(t, 'dave', 'sql-pass'), 200);
    assert.equal(await authStatus(t, 'dave', 'mem-pass'), 401);
  });

  it('a user nobody knows gets 401', async () => {
    assert.equal(await authStatus(t, 'mallory', 'x'), 401);
  });
});
