// The custom auth plugin example works as docs/guides/writing-a-plugin.md says: tested with the
// harness a plugin author gets from 'msrprelay/testing' (here imported from the source tree).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRelay, loadConfig } from '../../core/index.ts';
import { MsrpTestClient, startTestRelay, type TestRelay } from '../../core/testing/index.ts';
import JsonFileAuth from './json-file-auth.ts';

const accounts = fileURLToPath(new URL('./accounts.json', import.meta.url));

async function authStatus(port: number, relayUri: string, username: string, password: string): Promise<number> {
  const c = await MsrpTestClient.connect({ port });
  try {
    return (await c.auth({ relayUri, username, password })).status;
  } finally {
    await c.close();
  }
}

describe('examples/custom-auth-plugin', () => {
  let t: TestRelay;
  before(async () => {
    t = await startTestRelay({ plugins: [[JsonFileAuth, { file: accounts }], ['domain-map', { default: 'example.com' }]] });
  });
  after(() => t.close());

  it('R-42: accounts of the file authenticate, by HA1 or by password', async () => {
    assert.equal(await authStatus(t.tcpPort, t.authUri(), 'alice', 'secret'), 200);
    assert.equal(await authStatus(t.tcpPort, t.authUri(), 'bob', 'secret'), 200);
  });

  it('R-37: a wrong password and an unknown user both get 401', async () => {
    assert.equal(await authStatus(t.tcpPort, t.authUri(), 'alice', 'nope'), 401);
    assert.equal(await authStatus(t.tcpPort, t.authUri(), 'mallory', 'secret'), 401);
  });

  it('the options are checked before the plugin is made: a missing "file" names the plugin', async () => {
    await assert.rejects(startTestRelay({ plugins: [[JsonFileAuth, {}]] }), /JsonFileAuth.*file/);
  });

  it('an unreadable file stops the relay from starting', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'json-auth-'));
    const bad = join(dir, 'accounts.json');
    writeFileSync(bad, '[{ "username": ');
    try {
      await assert.rejects(startTestRelay({ plugins: [[JsonFileAuth, { file: bad }]] }), /JSON/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the example config loads the plugin by its path', async () => {
    const { config, baseDir } = await loadConfig({ file: fileURLToPath(new URL('./msrprelay.config.js', import.meta.url)) });
    // Port 0 instead of 2857, so the test never clashes with a running example.
    const relay = await createRelay({ ...config, listen: (config.listen ?? []).map((l) => ({ ...l, port: 0 })) }, { baseDir });
    await relay.listen();
    try {
      const port = relay.listeners[0]!.port;
      assert.equal(await authStatus(port, `msrp://localhost:${port};tcp`, 'bob', 'secret'), 200);
    } finally {
      await relay.close();
    }
  });
});
