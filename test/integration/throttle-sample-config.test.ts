// The sample config (what `npm start` runs): its demo accounts log in, and its throttle plugin's
// AUTH back-off stops a password guesser that the core alone only disconnects.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MsrpTestClient } from '../../core/testing/client.ts';
import { createRelay, type Relay } from '../../core/relay.ts';
import type { RelayConfigInput } from '../../core/config/schema.ts';

const SAMPLE = fileURLToPath(new URL('../../msrprelay.config.js', import.meta.url));
const AUTH_URI = 'msrp://example.com;tcp';

describe('the sample config', () => {
  let dir: string;
  let relay: Relay;
  let port: number;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'msrprelay-sample-'));
    const sample = ((await import(SAMPLE)) as { default: RelayConfigInput }).default;
    // As shipped, but on a free port without the TLS listener, and with the accounts file here.
    const plugins = (sample.plugins ?? []).map((p) =>
      Array.isArray(p) && p[0] === 'auth-sql' ? ['auth-sql', { ...(p[1] as object), filename: join(dir, 'users.db') }] : p,
    );
    const listen = sample.listen!.filter((l) => l.transport === 'tcp').map((l) => ({ ...l, port: 0 }));
    relay = await createRelay({ ...sample, listen, plugins }, { baseDir: dir });
    await relay.listen();
    port = relay.listeners[0]!.port;
  });
  after(async () => {
    await relay.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('loads the throttle plugin, and the demo accounts alice and bob log in', async () => {
    assert.ok(relay.pluginNames.includes('throttle'), relay.pluginNames.join(', '));
    for (const username of ['alice', 'bob']) {
      const c = await MsrpTestClient.connect({ port });
      const r = await c.auth({ relayUri: AUTH_URI, username, password: 'secret' });
      assert.equal(r.status, 200, username);
      await c.close();
    }
  });

  it('after 5 wrong passwords from one address, AUTH gets 403 with Retry-After, even with the right password', async () => {
    let failures = 0;
    // Three failures close a connection (limits.maxAuthFailures, R-43): the guesser reconnects.
    while (failures < 5) {
      const c = await MsrpTestClient.connect({ port });
      for (let i = 0; i < 3 && failures < 5; i++, failures++) {
        const r = await c.auth({ relayUri: AUTH_URI, username: 'alice', password: `guess${failures}` });
        assert.equal(r.status, 401, `guess ${failures + 1}`);
      }
      await c.close();
    }
    const c = await MsrpTestClient.connect({ port });
    const r = await c.auth({ relayUri: AUTH_URI, username: 'alice', password: 'secret' });
    assert.equal(r.status, 403);
    assert.match(r.response.header('Retry-After') ?? '', /^\d+$/);
    assert.ok(Number(r.response.header('Retry-After')) <= 30);
    await c.close();
  });
});
