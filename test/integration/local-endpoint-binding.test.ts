/**
 * A client token that reaches a local endpoint (claimRequest through the sender's own token,
 * the way a chat participant reaches the focus) is bound like one that reached a far end
 * (I-4), so it does not expire at its Expires while it is in use (R-49 applies to unbound
 * tokens only). Before this, such a token expired after Expires (default 600 s) under a chat
 * that was still going.
 */

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { LocalRequest, PluginHost, RelayPlugin } from '../../core/index.ts';
import { MsrpTestClient, startTestRelay, type TestRelay } from '../../core/testing/index.ts';
import { parseUri } from '../../core/protocol/index.ts';

class Sink implements RelayPlugin {
  readonly name = 'sink';
  id = '';
  apply(relay: PluginHost): void {
    this.id = relay.newSessionId();
    relay.hooks.claimRequest.tapPromise(this.name, async (lr: LocalRequest) => (lr.uri.sessionId === this.id ? { onEnd: () => ({ status: 200 }) } : undefined));
  }
}

describe('a token used to reach a local endpoint (I-4, R-49)', () => {
  let t: TestRelay;
  const sink = new Sink();
  before(async () => {
    t = await startTestRelay({ users: [{ username: 'alice', domain: 'example.com', password: 'secret' }], plugins: [sink], session: { minExpires: 1, defaultExpires: 1, maxExpires: 10 } });
  });
  after(() => t.close());

  it('is unbound until it carries a request to the endpoint, then bound', async () => {
    const c = await MsrpTestClient.connect({ port: t.tcpPort });
    const r = await c.auth({ relayUri: 'msrp://example.com;tcp', username: 'alice', password: 'secret', expires: 1 });
    assert.equal(r.status, 200);
    const id = parseUri(r.usePath[0]!).sessionId!;
    assert.equal(t.relay.sessions.get(id)?.bound, false);
    const sent = await c.sendMessage({ toPath: [...r.usePath, `msrp://${t.relay.hostname}:${t.tcpPort}/${sink.id};tcp`], body: 'hi' });
    assert.equal(sent.responses[0]!.status, 200);
    assert.equal(t.relay.sessions.get(id)?.bound, true);
    await c.close();
  });
});
