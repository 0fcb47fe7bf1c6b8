// Hook failure semantics through a real relay over 127.0.0.1 (DESIGN.md §3, docs/reference/hooks.md
// "Failure semantics"): an MsrpError a tap throws, rejects or returns is answered with its status;
// any other failure reaches the `error` hook once as a PluginError or HookTimeoutError naming the
// plugin and the hook, and the relay fails closed.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { MsrpError } from '../../core/errors.ts';
import { HookTimeoutError, PluginError, type RelayHooks } from '../../core/hooks.ts';
import type { PluginHost, RelayPlugin } from '../../core/plugin.ts';
import { MsrpTestClient } from '../../core/testing/client.ts';
import { startTestRelay, type TestRelay } from '../../core/testing/harness.ts';
import type { AuthFailure, ErrorContext } from '../../core/types.ts';

/**
 * One hook timeout for every relay of this file: every tap deadline of a process is on one
 * queue that assumes one length (core/deadlines.ts).
 */
const HOOK_SECONDS = 0.5;
const DOMAIN = 'example.com';
const RELAY_URI = `msrp://${DOMAIN};tcp`;
const users = ['alice', 'bob', 'broken', 'custom', 'disabled', 'stuck', 'store-down', 'store-stuck'].map((username) => ({
  username,
  domain: DOMAIN,
  password: 'secret',
}));

type Taps = { -readonly [K in keyof RelayHooks]?: (...args: never[]) => unknown };

/**
 * A plugin that taps the hooks under test and does what the test says per hook (`on`), and
 * an `error` recorder. Untold, every tap passes.
 */
function probe(): { plugin: RelayPlugin; on: Taps; errors: Array<{ err: Error; ctx: ErrorContext }>; authFailed: AuthFailure[] } {
  const on: Taps = {};
  const errors: Array<{ err: Error; ctx: ErrorContext }> = [];
  const authFailed: AuthFailure[] = [];
  const call = (name: keyof RelayHooks, args: unknown[]): unknown => (on[name] as ((...a: unknown[]) => unknown) | undefined)?.(...args);
  const plugin: RelayPlugin = {
    name: 'probe',
    apply(relay: PluginHost) {
      const h = relay.hooks;
      h.error.tap('recorder', (err, ctx) => {
        errors.push({ err, ctx });
      });
      h.authFailed.tap('recorder', (f) => {
        authFailed.push(f);
      });
      h.requestReceived.tap('probe', (ctx) => {
        call('requestReceived', [ctx]);
      });
      h.receiveRequest.tapPromise('probe', (ctx) => call('receiveRequest', [ctx]) as Promise<undefined>);
      h.checkAccount.tapPromise('probe', (identity, query) => call('checkAccount', [identity, query]) as Promise<undefined>);
      h.authorize.tapPromise('probe', (identity, auth) => call('authorize', [identity, auth]) as Promise<undefined>);
      h.resolveNextHop.tapPromise('probe', (q) => call('resolveNextHop', [q]) as Promise<undefined>);
      h.rewritePath.tap('probe', (paths, ctx) => call('rewritePath', [paths, ctx]) as typeof paths);
      h.forwardChunk.tapPromise('probe', (chunk) => call('forwardChunk', [chunk]) as Promise<undefined>);
      // Before auth-memory: a credential store that is down or hangs for two users.
      h.lookupCredentials.tapPromise({ name: 'flaky-store', stage: -1 }, async (q) => {
        if (q.username === 'store-down') throw new MsrpError('MSRP_ERR_INTERNAL', 'store down');
        if (q.username === 'store-stuck') return new Promise<never>(() => {});
        return undefined;
      });
    },
  };
  return { plugin, on, errors, authFailed };
}

const passes = async (): Promise<undefined> => undefined;

async function authStatus(t: TestRelay, username: string): Promise<{ status: number; client: MsrpTestClient }> {
  const client = await MsrpTestClient.connect({ port: t.tcpPort });
  const r = await client.auth({ relayUri: RELAY_URI, username, password: 'secret' });
  return { status: r.status, client };
}

interface Pair {
  a: MsrpTestClient;
  b: MsrpTestClient;
  ta: string;
  ab: string[];
}

async function pair(t: TestRelay): Promise<Pair> {
  const a = await MsrpTestClient.connect({ port: t.tcpPort });
  const b = await MsrpTestClient.connect({ port: t.tcpPort });
  const ra = await a.auth({ relayUri: RELAY_URI, username: 'alice', password: 'secret' });
  const rb = await b.auth({ relayUri: RELAY_URI, username: 'bob', password: 'secret' });
  assert.equal(ra.status, 200);
  assert.equal(rb.status, 200);
  const ta = ra.usePath[0]!;
  return { a, b, ta, ab: [ta, rb.usePath[0]!, b.uri] };
}

describe('hook failures through a real relay', () => {
  let t: TestRelay;
  const p = probe();
  const reset = () => {
    for (const k of Object.keys(p.on)) delete p.on[k as keyof Taps];
    p.errors.length = 0;
    p.authFailed.length = 0;
  };

  before(async () => {
    t = await startTestRelay({ users, plugins: [p.plugin], timeouts: { hook: HOOK_SECONDS } });
  });
  after(() => t.close());

  it('a throwing notification tap reaches the error hook with { plugin, hook, connection }, and the request goes on', async () => {
    reset();
    p.on.requestReceived = () => {
      throw new Error('counter broke');
    };
    const { status, client } = await authStatus(t, 'alice');
    assert.equal(status, 200);
    assert.ok(p.errors.length >= 2, 'one report per AUTH request');
    for (const { err, ctx } of p.errors) {
      assert.ok(err instanceof PluginError);
      assert.match(err.message, /^plugin "probe" failed in requestReceived: counter broke$/);
      assert.equal(ctx.plugin, 'probe');
      assert.equal(ctx.hook, 'requestReceived');
      assert.ok(ctx.connection !== undefined);
    }
    await client.close();
  });

  it('a throwing authorize tap: the AUTH gets 403 (fail closed) and the error hook gets { plugin, hook } once', async () => {
    reset();
    p.on.authorize = (identity: { username: string }) => {
      if (identity.username === 'broken') throw new TypeError('policy bug');
      return passes();
    };
    const { status, client } = await authStatus(t, 'broken');
    assert.equal(status, 403);
    assert.equal(p.errors.length, 1);
    const { err, ctx } = p.errors[0]!;
    assert.ok(err instanceof PluginError);
    assert.equal(err.plugin, 'probe');
    assert.equal(err.hook, 'authorize');
    assert.ok((err.cause as Error) instanceof TypeError);
    assert.equal(ctx.plugin, 'probe');
    assert.equal(ctx.hook, 'authorize');
    assert.ok(ctx.connection !== undefined);
    // A failed plugin is not the client's failure: the connection stays open and usable.
    assert.equal(client.isClosed, false);
    assert.equal((await client.auth({ relayUri: RELAY_URI, username: 'alice', password: 'secret' })).status, 200);
    await client.close();
  });

  it('an MsrpError from authorize, thrown or rejected, is answered with its status, like a returned { reject }', async () => {
    reset();
    p.on.authorize = (identity: { username: string }) => {
      // Thrown synchronously, with a status of its own.
      if (identity.username === 'custom') throw new MsrpError('MSRP_ERR_FORBIDDEN', 'not here', { status: 488 });
      // Rejected.
      if (identity.username === 'disabled') return Promise.reject(new MsrpError('MSRP_ERR_ACCOUNT_DISABLED', 'account disabled'));
      return passes();
    };
    const custom = await authStatus(t, 'custom');
    assert.equal(custom.status, 488);
    const disabled = await authStatus(t, 'disabled');
    assert.equal(disabled.status, 403);
    // A deliberate answer is not a failure: nothing reaches the error hook. A 403 counts as an
    // AUTH failure and fires authFailed with the error's message, as a returned { reject } does.
    assert.equal(p.errors.length, 0);
    assert.deepEqual(
      p.authFailed.map((f) => [f.status, f.reason, f.username]),
      [[403, 'account disabled', 'disabled']],
    );
    await custom.client.close();
    await disabled.client.close();
  });

  it('checkAccount runs after authentication and before authorize, with front msrp and the connection; its refusal is the AUTH\'s 403, counted', async () => {
    reset();
    const order: string[] = [];
    let query: { front: string; connection: unknown; signal: AbortSignal } | undefined;
    p.on.checkAccount = (identity: { username: string }, q: typeof query) => {
      order.push(`checkAccount ${identity.username}`);
      query = q;
      return identity.username === 'disabled' ? Promise.resolve({ reject: new MsrpError('MSRP_ERR_ACCOUNT_DISABLED') }) : passes();
    };
    p.on.authorize = (identity: { username: string }) => {
      order.push(`authorize ${identity.username}`);
      return passes();
    };
    const ok = await authStatus(t, 'alice');
    assert.equal(ok.status, 200);
    assert.equal(query?.front, 'msrp');
    assert.ok(query?.connection !== undefined && query.signal instanceof AbortSignal);
    const barred = await authStatus(t, 'disabled');
    assert.equal(barred.status, 403);
    // A barred account never reaches authorize (nothing is reserved for it there).
    assert.deepEqual(order, ['checkAccount alice', 'authorize alice', 'checkAccount disabled']);
    assert.deepEqual(p.authFailed.map((f) => [f.status, f.username]), [[403, 'disabled']]);
    assert.equal(p.errors.length, 0);
    await ok.client.close();
    await barred.client.close();
  });

  it('an MsrpError from lookupCredentials (a store that is down) is the AUTH answer: 500, not reported', async () => {
    reset();
    const { status, client } = await authStatus(t, 'store-down');
    assert.equal(status, 500);
    assert.equal(p.errors.length, 0);
    assert.equal(client.isClosed, false);
    await client.close();
  });

  it('an authorize tap that never answers: 403 at its deadline, a HookTimeoutError naming the plugin, and its signal aborted with it', async () => {
    reset();
    let seen: AbortSignal | undefined;
    p.on.authorize = (identity: { username: string }, auth: { signal: AbortSignal }) => {
      if (identity.username !== 'stuck') return passes();
      seen = auth.signal;
      return new Promise<never>(() => {});
    };
    const t0 = Date.now();
    const { status, client } = await authStatus(t, 'stuck');
    const waited = Date.now() - t0;
    assert.equal(status, 403);
    assert.ok(waited >= HOOK_SECONDS * 1000 - 50, `answered after ${waited} ms`);
    assert.equal(p.errors.length, 1);
    const { err, ctx } = p.errors[0]!;
    assert.ok(err instanceof HookTimeoutError);
    assert.equal(err.message, `plugin "probe" did not answer authorize within ${HOOK_SECONDS * 1000} ms`);
    assert.deepEqual([ctx.plugin, ctx.hook], ['probe', 'authorize']);
    assert.ok(seen !== undefined);
    assert.equal(seen.aborted, true);
    assert.equal(seen.reason, err);
    assert.equal(client.isClosed, false);
    await client.close();
  });

  it('a credential store that never answers times out under its own name (not core:digest): 403', async () => {
    reset();
    const { status, client } = await authStatus(t, 'store-stuck');
    assert.equal(status, 403);
    assert.equal(p.errors.length, 1);
    const err = p.errors[0]!.err;
    assert.ok(err instanceof HookTimeoutError);
    assert.deepEqual([err.plugin, err.hook], ['flaky-store', 'lookupCredentials']);
    await client.close();
  });

  it('receiveRequest: an MsrpError thrown, rejected or returned is answered with its status; any other exception is 403 and reported', async () => {
    reset();
    const { status, client } = await authStatus(t, 'alice');
    assert.equal(status, 200);
    p.on.receiveRequest = (ctx: { request: { method: string; messageId?: string } }) => {
      switch (ctx.request.messageId) {
        case 'thrown':
          throw new MsrpError('MSRP_ERR_FORBIDDEN', 'thrown', { status: 488 });
        case 'rejected':
          return Promise.reject(new MsrpError('MSRP_ERR_MEDIA_TYPE'));
        case 'returned':
          return Promise.resolve({ reject: new MsrpError('MSRP_ERR_UNKNOWN_RECIPIENT') });
        case 'bug-1':
          throw new RangeError('index out of range');
        default:
          return passes();
      }
    };
    const toPath = ['msrp://localhost:9/nowhere;tcp'];
    const statusOf = async (messageId: string) => (await client.sendMessage({ toPath, body: 'x', messageId })).responses[0]!.status;
    assert.equal(await statusOf('thrown'), 488);
    assert.equal(await statusOf('rejected'), 415);
    assert.equal(await statusOf('returned'), 404);
    assert.equal(p.errors.length, 0);
    assert.equal(await statusOf('bug-1'), 403);
    assert.equal(p.errors.length, 1);
    assert.deepEqual([p.errors[0]!.err.name, p.errors[0]!.ctx.plugin, p.errors[0]!.ctx.hook], ['PluginError', 'probe', 'receiveRequest']);
    await client.close();
  });

  it('a throwing forwardChunk tap (Failure-Report yes): the SEND is not delivered, the sender gets 403, the error is reported', async () => {
    reset();
    const pr = await pair(t);
    p.on.forwardChunk = (chunk: { request: { messageId?: string } }) => {
      if (chunk.request.messageId === 'too-big') throw new MsrpError('MSRP_ERR_MESSAGE_TOO_LARGE');
      if (chunk.request.messageId?.startsWith('boom') === true) throw new Error('throttle store gone');
      return passes();
    };
    const { responses } = await pr.a.sendMessage({ toPath: pr.ab, body: 'hello', messageId: 'boom-1' });
    assert.equal(responses[0]!.status, 403);
    assert.equal(await pr.b.expectNone((f) => f.header('Message-ID') === 'boom-1', 300), true);
    assert.equal(p.errors.length, 1);
    assert.deepEqual([p.errors[0]!.err.name, p.errors[0]!.ctx.plugin, p.errors[0]!.ctx.hook], ['PluginError', 'probe', 'forwardChunk']);
    // A thrown MsrpError is the tap's answer.
    assert.equal((await pr.a.sendMessage({ toPath: pr.ab, body: 'hello', messageId: 'too-big' })).responses[0]!.status, 413);
    // The next message goes through.
    const ok = await pr.a.sendMessage({ toPath: pr.ab, body: 'fine', messageId: 'fine-1' });
    assert.equal(ok.responses[0]!.status, 200);
    await pr.b.waitFor((f) => f.header('Message-ID') === 'fine-1');
    await Promise.all([pr.a.close(), pr.b.close()]);
  });

  it(
    'a throwing forwardChunk tap (Failure-Report partial): not delivered, and the sender gets a REPORT 000 403',
    async () => {
      reset();
      const pr = await pair(t);
      p.on.forwardChunk = () => {
        throw new Error('throttle store gone');
      };
      await pr.a.sendMessage({ toPath: pr.ab, body: 'hello', messageId: 'boom-partial', failureReport: 'partial' });
      const report = await pr.a.waitFor((f) => f.method === 'REPORT' && f.header('Message-ID') === 'boom-partial', 2000);
      assert.match(report.header('Status') ?? '', /^000 403\b/);
      assert.equal(await pr.a.expectNone((f) => f.kind === 'response', 200), true);
      assert.equal(await pr.b.expectNone((f) => f.header('Message-ID') === 'boom-partial', 100), true);
      await Promise.all([pr.a.close(), pr.b.close()]);
    },
  );

  it('rewritePath (a sync hook): a thrown MsrpError is answered with its status; another exception is 403 and reported', async () => {
    reset();
    const pr = await pair(t);
    p.on.rewritePath = (_paths: unknown, ctx: { request: { messageId?: string } }) => {
      if (ctx.request.messageId === 'refused') throw new MsrpError('MSRP_ERR_MEDIA_TYPE');
      if (ctx.request.messageId === 'bug-1') throw new Error('rewrite bug');
      return undefined;
    };
    assert.equal((await pr.a.sendMessage({ toPath: pr.ab, body: 'x', messageId: 'refused' })).responses[0]!.status, 415);
    assert.equal(p.errors.length, 0);
    assert.equal((await pr.a.sendMessage({ toPath: pr.ab, body: 'x', messageId: 'bug-1' })).responses[0]!.status, 403);
    assert.equal(p.errors.length, 1);
    assert.deepEqual([p.errors[0]!.ctx.plugin, p.errors[0]!.ctx.hook], ['probe', 'rewritePath']);
    assert.equal(await pr.b.expectNone((f) => f.kind === 'request' && f.method === 'SEND', 200), true);
    await Promise.all([pr.a.close(), pr.b.close()]);
  });

  it('a throwing resolveNextHop tap: the sender gets 408 (as for an unreachable hop), reported once; its MsrpError is answered', async () => {
    reset();
    const pr = await pair(t);
    p.on.resolveNextHop = (q: { request: { messageId?: string } }) => {
      if (q.request.messageId === 'unknown') throw new MsrpError('MSRP_ERR_UNKNOWN_RECIPIENT');
      throw new Error('DNS plugin bug');
    };
    // The next URI is not a session of this relay: the relay would dial it.
    const toPath = [pr.ta, 'msrp://localhost:9/far;tcp'];
    const r = await pr.a.sendMessage({ toPath, body: 'x', messageId: 'far-1' });
    assert.equal(r.responses[0]!.status, 408);
    assert.equal(p.errors.length, 1);
    assert.deepEqual([p.errors[0]!.err.name, p.errors[0]!.ctx.plugin, p.errors[0]!.ctx.hook], ['PluginError', 'probe', 'resolveNextHop']);
    assert.equal((await pr.a.sendMessage({ toPath, body: 'x', messageId: 'unknown' })).responses[0]!.status, 404);
    assert.equal(p.errors.length, 1);
    await Promise.all([pr.a.close(), pr.b.close()]);
  });
});

describe('hook failures at the edges of a relay’s life', () => {
  it('registering tap() on an async hook fails the start, naming the plugin', async () => {
    const sync: RelayPlugin = {
      name: 'sync-tapper',
      apply(relay: PluginHost) {
        (relay.hooks.authorize as unknown as { tap(n: string, fn: () => undefined): void }).tap('sync-tapper', () => undefined);
      },
    };
    await assert.rejects(startTestRelay({ plugins: [sync], timeouts: { hook: HOOK_SECONDS } }), /plugin "sync-tapper": authorize takes promise taps only \(use tapPromise\)/);
  });

  it('a throwing acceptConnection tap: the connection is dropped, and the error is reported once with the connection', async () => {
    const errors: Array<{ err: Error; ctx: ErrorContext }> = [];
    const gate: RelayPlugin = {
      name: 'gate',
      apply(relay: PluginHost) {
        relay.hooks.error.tap('recorder', (err, ctx) => {
          errors.push({ err, ctx });
        });
        relay.hooks.acceptConnection.tapPromise('gate', async () => {
          throw new Error('ban list unreadable');
        });
      },
    };
    const t = await startTestRelay({ plugins: [gate], timeouts: { hook: HOOK_SECONDS } });
    try {
      const s = net.connect({ host: '127.0.0.1', port: t.tcpPort });
      await new Promise<void>((resolve) => s.once('close', () => resolve()));
      assert.equal(errors.length, 1);
      assert.ok(errors[0]!.err instanceof PluginError);
      assert.deepEqual([errors[0]!.ctx.plugin, errors[0]!.ctx.hook], ['gate', 'acceptConnection']);
      assert.ok(errors[0]!.ctx.connection !== undefined);
    } finally {
      await t.close();
    }
  });

  it('throwing and stuck beforeClose and closed taps are reported, the other taps run, and shutdown completes', async () => {
    const errors: Array<{ err: Error; ctx: ErrorContext }> = [];
    const ran: string[] = [];
    const lifecycle: RelayPlugin = {
      name: 'lifecycle',
      apply(relay: PluginHost) {
        relay.hooks.error.tap('recorder', (err, ctx) => {
          errors.push({ err, ctx });
        });
        relay.hooks.beforeClose.tapPromise('flusher', async () => {
          throw new Error('flush failed');
        });
        relay.hooks.beforeClose.tapPromise('hangs', () => new Promise<void>(() => {}));
        relay.hooks.beforeClose.tapPromise('after-them', async () => {
          ran.push('beforeClose');
        });
        relay.hooks.closed.tapPromise('pool', async () => {
          throw new Error('pool end failed');
        });
        relay.hooks.closed.tapPromise('files', async () => {
          ran.push('closed');
        });
      },
    };
    const t = await startTestRelay({ users, plugins: [lifecycle], timeouts: { hook: HOOK_SECONDS } });
    const c = await MsrpTestClient.connect({ port: t.tcpPort });
    assert.equal((await c.auth({ relayUri: RELAY_URI, username: 'alice', password: 'secret' })).status, 200);
    await t.close();
    await c.closed;
    assert.deepEqual(ran, ['beforeClose', 'closed']);
    assert.deepEqual(
      errors.map((e) => [e.err.name, e.ctx.plugin, e.ctx.hook]),
      [
        ['PluginError', 'flusher', 'beforeClose'],
        ['HookTimeoutError', 'hangs', 'beforeClose'],
        ['PluginError', 'pool', 'closed'],
      ],
    );
    assert.equal(t.relay.listeners.length, 0);
  });
});
