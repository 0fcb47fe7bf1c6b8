// The embedding example works as its README says: users from the application, usage back to it.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MsrpTestClient } from '../../core/testing/index.ts';
import { addUser, startEmbeddedRelay, type UserStore } from './relay.ts';
import type { SessionInfo } from '../../core/index.ts';

describe('examples/embedded-relay', () => {
  it('authenticates the application\'s users and reports their traffic when the session ends', async () => {
    const users: UserStore = new Map();
    addUser(users, 'alice', 'example.com', 'secret');
    addUser(users, 'bob', 'example.com', 'secret');
    const usage: SessionInfo[] = [];
    const relay = await startEmbeddedRelay({ port: 0, users, onUsage: (s) => usage.push(s) });
    const port = relay.listeners[0]!.port;
    const a = await MsrpTestClient.connect({ port });
    const b = await MsrpTestClient.connect({ port });
    const ra = await a.auth({ relayUri: 'msrp://example.com;tcp', username: 'alice', password: 'secret' });
    const rb = await b.auth({ relayUri: 'msrp://example.com;tcp', username: 'bob', password: 'secret' });
    assert.equal(ra.status, 200);
    const wrong = await MsrpTestClient.connect({ port });
    assert.equal((await wrong.auth({ relayUri: 'msrp://example.com;tcp', username: 'alice', password: 'nope' })).status, 401);
    await wrong.close();
    const { messageId } = await a.sendMessage({ toPath: [ra.usePath[0]!, rb.usePath[0]!, b.uri], body: '12345' });
    await b.waitFor((x) => x.header('Message-ID') === messageId);
    await a.close();
    await b.close();
    await relay.close();
    const alice = usage.find((s) => s.identity.username === 'alice');
    assert.ok(alice, 'alice\'s session was reported');
    assert.equal(alice.stats.bytesOut, 5);
    assert.equal(alice.stats.messagesOut, 1);
  });
});
