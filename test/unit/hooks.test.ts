// The tap runner of core/hooks.ts (DESIGN.md §3): timeouts, the signal each tap call sees, and
// the one failure rule (an MsrpError answers; anything else is a PluginError, reported once).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import { alreadyReported, createHooks, HOOK_ORDER, HookTimeoutError, PluginError, withoutTimeout, type RelayHooks } from '../../core/hooks.ts';
import { MsrpError } from '../../core/errors.ts';
import type {
  AuthRequest,
  BindRequest,
  ChunkContext,
  ConnectionContext,
  CredentialQuery,
  DomainQuery,
  ErrorContext,
  Identity,
  NextHopQuery,
  PathPair,
  RequestContext,
} from '../../core/types.ts';

const query = { host: 'example.com' } as unknown as DomainQuery;
const never = () => new Promise<never>(() => {});
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/**
 * One hook timeout for the tests below: every tap deadline of the process is on one queue
 * that assumes one length (core/deadlines.ts), so a shorter one set after a longer one
 * would fire only when the longer one is due.
 */
const T = 100;

/** A connection as far as these tests need one: identity, notes and a signal its test aborts. */
function fakeConnection(): ConnectionContext & { controller: AbortController } {
  const controller = new AbortController();
  return { id: 'c1', notes: new Map(), signal: controller.signal, controller } as unknown as ConnectionContext & { controller: AbortController };
}

/** Hooks whose `error` taps are recorded. */
function recorded(timeoutMs: number): { hooks: RelayHooks<unknown>; errors: Array<{ err: Error; ctx: ErrorContext }> } {
  const hooks = createHooks({ tapTimeoutMs: () => timeoutMs });
  const errors: Array<{ err: Error; ctx: ErrorContext }> = [];
  hooks.error.tap('recorder', (err, ctx) => {
    errors.push({ err, ctx });
  });
  return { hooks, errors };
}

describe('hook taps: timeouts and errors', () => {
  it('a tap that never answers fails with HookTimeoutError naming the plugin, after the timeout and not before', async () => {
    const hooks = createHooks({ tapTimeoutMs: () => 150 });
    hooks.resolveDomain.tapPromise('stuck-plugin', () => new Promise(() => {}));
    const t0 = Date.now();
    await assert.rejects(hooks.resolveDomain.promise(query), (e: unknown) => {
      assert.ok(e instanceof HookTimeoutError);
      assert.equal(e.plugin, 'stuck-plugin');
      assert.equal(e.hook, 'resolveDomain');
      return true;
    });
    assert.ok(Date.now() - t0 >= 145, `timed out after ${Date.now() - t0} ms`);
  });

  it('calls that answer in time are not failed later, and a stuck call behind them still times out', async () => {
    const hooks = createHooks({ tapTimeoutMs: () => 120 });
    let n = 0;
    hooks.resolveDomain.tapPromise('mixed', async () => {
      const k = ++n;
      if (k === 3) return new Promise(() => {});
      await new Promise((r) => setTimeout(r, 5));
      return { domain: `d${k}`, realm: `d${k}` };
    });
    const quick = [hooks.resolveDomain.promise(query), hooks.resolveDomain.promise(query)];
    const stuck = hooks.resolveDomain.promise(query);
    const after = hooks.resolveDomain.promise(query);
    assert.deepEqual(
      (await Promise.all(quick)).map((d) => d !== undefined && 'domain' in d && d.domain),
      ['d1', 'd2'],
    );
    const last = await after;
    assert.ok(last !== undefined && 'domain' in last && last.domain === 'd4');
    await assert.rejects(stuck, HookTimeoutError);
    // Outlive every deadline: nothing already answered turns into a failure afterwards.
    await new Promise((r) => setTimeout(r, 200));
  });

  it('a tap that throws is reported as a PluginError of that plugin; null passes on as undefined', async () => {
    const hooks = createHooks({ tapTimeoutMs: () => T });
    hooks.resolveDomain.tapPromise('passes', async () => null as never);
    hooks.resolveDomain.tapPromise('broken', () => {
      throw new Error('boom');
    });
    await assert.rejects(hooks.resolveDomain.promise(query), (e: unknown) => e instanceof PluginError && e.plugin === 'broken' && /boom/.test(e.message));
  });
});

describe('hook taps: promise taps only', () => {
  const asyncHooks = [
    'beforeListen',
    'beforeClose',
    'closed',
    'acceptConnection',
    'receiveRequest',
    'claimRequest',
    'resolveDomain',
    'authenticate',
    'lookupCredentials',
    'checkAccount',
    'authorize',
    'bindSession',
    'resolveNextHop',
    'forwardChunk',
  ] as const;

  it('tap() and tapAsync() on every async hook throw when registered, naming the plugin and the hook, and leave no tap', () => {
    const hooks = createHooks({ tapTimeoutMs: () => 1000 });
    for (const name of asyncHooks) {
      const hook = hooks[name] as unknown as {
        tap(n: string, fn: () => void): void;
        tapAsync(n: string, fn: (...a: unknown[]) => void): void;
        taps: unknown[];
      };
      assert.throws(() => hook.tap('sync-tapper', () => {}), new RegExp(`^Error: plugin "sync-tapper": ${name} takes promise taps only \\(use tapPromise\\)$`));
      assert.throws(() => hook.tapAsync('callback-tapper', () => {}), new RegExp(`plugin "callback-tapper": ${name} takes promise taps only`));
      assert.equal(hook.taps.length, 0, name);
    }
  });

  it('every other hook is synchronous: tapable itself refuses tapPromise there', () => {
    const hooks = createHooks({ tapTimeoutMs: () => 1000 });
    for (const name of HOOK_ORDER.filter((h) => !(asyncHooks as readonly string[]).includes(h))) {
      const hook = hooks[name] as unknown as { tapPromise(n: string, fn: () => Promise<void>): void };
      assert.throws(() => hook.tapPromise('p', async () => {}), /tapPromise is not supported/, name);
    }
  });
});

describe('hook taps: one rule for an MsrpError', () => {
  const ctx = (): RequestContext => ({ connection: fakeConnection(), request: {} as RequestContext['request'], signal: new AbortController().signal });

  it('thrown, rejected or returned as { reject }: the hook answers { reject: that error }, and the taps after it do not run', async () => {
    const cases: Array<[string, (e: MsrpError) => () => unknown]> = [
      ['thrown', (e) => () => {
        throw e;
      }],
      ['rejected', (e) => () => Promise.reject(e)],
      ['rejected after a wait', (e) => async () => {
        await sleep(5);
        throw e;
      }],
      ['returned', (e) => async () => ({ reject: e })],
    ];
    for (const [how, make] of cases) {
      const { hooks, errors } = recorded(T);
      const e = new MsrpError('MSRP_ERR_FORBIDDEN', how, { status: 488 });
      let later = false;
      hooks.receiveRequest.tapPromise('answers', make(e) as () => Promise<undefined>);
      hooks.receiveRequest.tapPromise('later', async () => {
        later = true;
        return undefined;
      });
      const r = await hooks.receiveRequest.promise(ctx());
      assert.ok(r !== undefined && 'reject' in r, how);
      assert.equal(r.reject, e, how);
      assert.equal(r.reject.status, 488);
      assert.equal(later, false, how);
      assert.equal(errors.length, 0, `${how}: an answer is not a failure`);
    }
  });

  it('the same in authorize, whose signal is on its second argument', async () => {
    const { hooks } = recorded(T);
    const e = new MsrpError('MSRP_ERR_ACCOUNT_DISABLED');
    hooks.authorize.tapPromise('refuses', () => {
      throw e;
    });
    const r = await hooks.authorize.promise({ username: 'u' } as Identity, { connection: fakeConnection() } as unknown as AuthRequest);
    assert.equal(r?.reject, e);
  });

  it('lookupCredentials has no rejection to answer with: the MsrpError goes to its caller unchanged', async () => {
    const { hooks, errors } = recorded(T);
    const e = new MsrpError('MSRP_ERR_INTERNAL', 'store down');
    hooks.lookupCredentials.tapPromise('store', async () => {
      throw e;
    });
    await assert.rejects(hooks.lookupCredentials.promise({ connection: fakeConnection() } as unknown as CredentialQuery), (x: unknown) => x === e);
    assert.equal(errors.length, 0);
  });

  it('a lifecycle hook has no status to answer with: an MsrpError there is a failure like any other', async () => {
    const { hooks, errors } = recorded(T);
    const e = new MsrpError('MSRP_ERR_INTERNAL');
    hooks.beforeListen.tapPromise('opens-pool', async () => {
      throw e;
    });
    await assert.rejects(hooks.beforeListen.promise(undefined), (x: unknown) => x instanceof PluginError && x.cause === e && x.plugin === 'opens-pool');
    assert.equal(errors.length, 1);
    assert.deepEqual(errors[0]!.ctx, { plugin: 'opens-pool', hook: 'beforeListen' });
  });

  it('{ reject } without an MsrpError is a failure of the plugin, not an answer', async () => {
    const { hooks, errors } = recorded(T);
    hooks.forwardChunk.tapPromise('sloppy', async () => ({ reject: new Error('no') }) as never);
    await assert.rejects(hooks.forwardChunk.promise({ connection: fakeConnection() } as unknown as ChunkContext), (e: unknown) => e instanceof PluginError && /without an MsrpError/.test(e.message));
    assert.equal(errors.length, 1);
  });

  it('rewritePath (sync): a thrown MsrpError comes out as it is; another exception is a reported PluginError; null keeps the paths', () => {
    const { hooks, errors } = recorded(T);
    const paths: PathPair = { toPath: ['a'], fromPath: ['b'] };
    const fwd = { connection: fakeConnection() } as never;
    const e = new MsrpError('MSRP_ERR_MEDIA_TYPE');
    let mode = 'msrp';
    hooks.rewritePath.tap('rewriter', () => {
      if (mode === 'msrp') throw e;
      if (mode === 'bug') throw new Error('bug');
      if (mode === 'promise') return Promise.resolve(paths) as never;
      return null as never;
    });
    assert.throws(() => hooks.rewritePath.call(paths, fwd), (x: unknown) => x === e);
    assert.equal(errors.length, 0);
    mode = 'bug';
    assert.throws(() => hooks.rewritePath.call(paths, fwd), (x: unknown) => x instanceof PluginError && x.plugin === 'rewriter' && x.hook === 'rewritePath');
    assert.equal(errors.length, 1);
    assert.equal(errors[0]!.ctx.hook, 'rewritePath');
    assert.equal(errors[0]!.ctx.connection, (fwd as { connection: ConnectionContext }).connection);
    mode = 'promise';
    assert.throws(() => hooks.rewritePath.call(paths, fwd), /rewritePath is synchronous/);
    mode = 'null';
    assert.equal(hooks.rewritePath.call(paths, fwd), paths);
  });
});

describe('hook taps: failures reach the error hook once, with plugin and hook', () => {
  it('a throwing decision tap: one report, { plugin, hook, connection }, and the hook fails with that same error', async () => {
    const { hooks, errors } = recorded(T);
    hooks.forwardChunk.tapPromise('broken', async () => {
      throw new Error('boom');
    });
    const conn = fakeConnection();
    let failed: unknown;
    await hooks.forwardChunk.promise({ connection: conn } as unknown as ChunkContext).catch((e: unknown) => (failed = e));
    assert.ok(failed instanceof PluginError);
    assert.equal(errors.length, 1);
    assert.equal(errors[0]!.err, failed);
    assert.deepEqual(errors[0]!.ctx, { plugin: 'broken', hook: 'forwardChunk', connection: conn });
    assert.equal(alreadyReported(failed), true);
    assert.equal(alreadyReported(new Error('other')), false);
  });

  it('a timed-out tap: reported when its deadline passes, with the connection of its context', async () => {
    const { hooks, errors } = recorded(T);
    const conn = fakeConnection();
    hooks.authorize.tapPromise('slow-policy', never);
    const p = hooks.authorize.promise({} as Identity, { connection: conn } as unknown as AuthRequest);
    await assert.rejects(p, HookTimeoutError);
    assert.equal(errors.length, 1);
    assert.ok(errors[0]!.err instanceof HookTimeoutError);
    assert.deepEqual(errors[0]!.ctx, { plugin: 'slow-policy', hook: 'authorize', connection: conn });
  });

  it('a failure inside a hook a tap calls is reported once, under the inner plugin, and passed on as it is', async () => {
    const { hooks, errors } = recorded(T);
    // As core:digest does: authenticate, without a deadline of its own, asks lookupCredentials.
    hooks.authenticate.tapPromise(
      'core:digest',
      withoutTimeout(async (auth: AuthRequest) => {
        await hooks.lookupCredentials.promise({ connection: auth.connection, signal: auth.signal } as unknown as CredentialQuery);
        return undefined;
      }),
    );
    hooks.lookupCredentials.tapPromise('stuck-store', never);
    const t0 = Date.now();
    const failed = await hooks.authenticate.promise({ connection: fakeConnection() } as unknown as AuthRequest).catch((e: unknown) => e);
    assert.ok(failed instanceof HookTimeoutError);
    assert.equal(failed.plugin, 'stuck-store');
    assert.equal(failed.hook, 'lookupCredentials');
    assert.ok(Date.now() - t0 < 1000);
    assert.equal(errors.length, 1);
    assert.equal(errors[0]!.err, failed);

    // A plugin's own (timed) tap calling a hook that fails: still one report, naming the inner tap.
    const h2 = recorded(T);
    h2.hooks.resolveDomain.tapPromise('outer', async () => {
      await h2.hooks.lookupCredentials.promise({} as CredentialQuery);
      return undefined;
    });
    h2.hooks.lookupCredentials.tapPromise('inner', async () => {
      throw new Error('inner bug');
    });
    const f2 = await h2.hooks.resolveDomain.promise(query).catch((e: unknown) => e);
    assert.ok(f2 instanceof PluginError && f2.plugin === 'inner');
    assert.equal(h2.errors.length, 1);
  });

  it('notification taps: a throw, or a returned promise that rejects, is reported; the taps after it run; a throwing error tap is dropped', async () => {
    const { hooks, errors } = recorded(T);
    const conn = fakeConnection();
    let ran = 0;
    hooks.connectionClosed.tap('throws', () => {
      throw new Error('sync');
    });
    hooks.connectionClosed.tap('rejects', (() => Promise.reject(new Error('async'))) as never);
    hooks.connectionClosed.tap('after', () => {
      ran++;
    });
    hooks.error.tap('error-tap-bug', () => {
      throw new Error('nowhere to go');
    });
    hooks.connectionClosed.call(conn, { code: 'peer-closed' });
    assert.equal(ran, 1);
    await sleep(0);
    assert.deepEqual(
      errors.map((e) => [e.err instanceof PluginError && (e.err.cause as Error).message, e.ctx.plugin, e.ctx.hook, e.ctx.connection === conn]),
      [
        ['sync', 'throws', 'connectionClosed', true],
        ['async', 'rejects', 'connectionClosed', true],
      ],
    );
  });

  it('beforeClose and closed: a failing or stuck tap is reported and the others still run; the hook resolves', async () => {
    const { hooks, errors } = recorded(T);
    const ran: string[] = [];
    hooks.beforeClose.tapPromise('throws', async () => {
      throw new Error('flush failed');
    });
    hooks.beforeClose.tapPromise('stuck', never);
    hooks.beforeClose.tapPromise('fine', async () => {
      ran.push('beforeClose');
    });
    hooks.closed.tapPromise('throws-too', () => {
      throw new Error('pool end failed');
    });
    hooks.closed.tapPromise('fine-too', async () => {
      ran.push('closed');
    });
    await hooks.beforeClose.promise(undefined);
    await hooks.closed.promise(undefined);
    assert.deepEqual(ran, ['beforeClose', 'closed']);
    assert.deepEqual(
      errors.map((e) => [e.err.name, e.ctx.plugin, e.ctx.hook]),
      [
        ['PluginError', 'throws', 'beforeClose'],
        ['HookTimeoutError', 'stuck', 'beforeClose'],
        ['PluginError', 'throws-too', 'closed'],
      ],
    );
  });
});

describe("hook taps: each call's signal", () => {
  it('is aborted at the deadline with the HookTimeoutError that failed the hook and reached the error hook', async () => {
    const { hooks, errors } = recorded(T);
    let seen: AbortSignal | undefined;
    hooks.receiveRequest.tapPromise('stuck', (ctx) => {
      seen = ctx.signal;
      return never();
    });
    const conn = fakeConnection();
    const failed = await hooks.receiveRequest.promise({ connection: conn, request: {}, signal: conn.signal } as unknown as RequestContext).catch((e: unknown) => e);
    assert.ok(failed instanceof HookTimeoutError);
    assert.ok(seen !== undefined);
    assert.equal(seen.aborted, true);
    assert.equal(seen.reason, failed);
    assert.equal(errors[0]!.err, failed);
    // The connection itself is not closed by a tap's deadline.
    assert.equal(conn.signal.aborted, false);
  });

  it("is aborted when the context's own signal aborts (the connection closed), with its reason", async () => {
    const { hooks } = recorded(T);
    const conn = fakeConnection();
    let seen: AbortSignal | undefined;
    let answer: ((v: undefined) => void) | undefined;
    hooks.bindSession.tapPromise('waits', (bind) => {
      seen = bind.signal;
      return new Promise((r) => (answer = r));
    });
    const p = hooks.bindSession.promise({ connection: conn, signal: conn.signal } as unknown as BindRequest);
    assert.equal(seen!.aborted, false);
    const reason = new Error('the connection closed');
    conn.controller.abort(reason);
    assert.equal(seen!.aborted, true);
    assert.equal(seen!.reason, reason);
    answer!(undefined);
    assert.equal(await p, undefined);
  });

  it('is made only when read: a tap that does not read it costs no AbortController and no read of the context signal', async () => {
    const { hooks } = recorded(T);
    const conn = fakeConnection();
    const Original = globalThis.AbortController;
    let made = 0;
    globalThis.AbortController = class extends Original {
      constructor() {
        super();
        made++;
      }
    };
    try {
      let signalReads = 0;
      const chunk = {
        connection: conn,
        session: {},
        request: {},
        direction: 'outward',
        get signal() {
          signalReads++;
          return conn.signal;
        },
      } as unknown as ChunkContext;
      hooks.forwardChunk.tapPromise('ignores-signal', async (c) => {
        assert.equal(c.request, chunk.request);
        return undefined;
      });
      for (let i = 0; i < 100; i++) await hooks.forwardChunk.promise(chunk);
      assert.equal(made, 0);
      assert.equal(signalReads, 0);
      hooks.forwardChunk.tapPromise('reads-signal', async (c) => {
        void c.signal.aborted;
        void c.signal.aborted;
        return undefined;
      });
      await hooks.forwardChunk.promise(chunk);
      assert.equal(made, 1, 'one controller for the one call that read it, however often');
      assert.equal(signalReads, 1);
    } finally {
      globalThis.AbortController = Original;
    }
  });

  it("leaves no listener on the connection's signal once the tap has answered", async () => {
    const { hooks } = recorded(T);
    const conn = fakeConnection();
    hooks.receiveRequest.tapPromise('reads-signal', async (ctx) => {
      assert.equal(ctx.signal.aborted, false);
      await sleep(0);
      return undefined;
    });
    for (let i = 0; i < 50; i++) await hooks.receiveRequest.promise({ connection: conn, request: {}, signal: conn.signal } as unknown as RequestContext);
    assert.equal(getEventListeners(conn.signal, 'abort').length, 0);
  });

  it("is each tap call's own: a later tap's deadline does not abort an earlier tap's signal", async () => {
    const { hooks } = recorded(T);
    const conn = fakeConnection();
    const signals: AbortSignal[] = [];
    hooks.resolveDomain.tapPromise('quick', async (q) => {
      signals.push(q.signal);
      return undefined;
    });
    hooks.resolveDomain.tapPromise('stuck', (q) => {
      signals.push(q.signal);
      return never();
    });
    await assert.rejects(hooks.resolveDomain.promise({ connection: conn, signal: conn.signal } as unknown as DomainQuery), HookTimeoutError);
    assert.equal(signals.length, 2);
    assert.notEqual(signals[0], signals[1]);
    assert.equal(signals[0]!.aborted, false);
    assert.equal(signals[1]!.aborted, true);
  });

  it('read only after the deadline, it is already aborted', async () => {
    const { hooks } = recorded(T);
    let view: NextHopQuery | undefined;
    hooks.resolveNextHop.tapPromise('late-reader', (q) => {
      view = q;
      return never();
    });
    await assert.rejects(hooks.resolveNextHop.promise({ session: { owner: fakeConnection() }, signal: new AbortController().signal } as unknown as NextHopQuery), HookTimeoutError);
    assert.equal(view!.signal.aborted, true);
    assert.ok(view!.signal.reason instanceof HookTimeoutError);
  });

  it("every context field is the relay's own object (connection.notes included); only signal is the call's", async () => {
    const { hooks } = recorded(T);
    const conn = fakeConnection();
    const o = (label: string) => ({ label });
    const samples = {
      receiveRequest: { connection: conn, request: o('request') },
      resolveDomain: { connection: conn, request: o('request'), host: 'example.com' },
      authenticate: { connection: conn, request: o('request'), domain: 'd', realm: 'r', digestUri: 'u', authorization: 'Digest x' },
      lookupCredentials: { username: 'alice', realm: 'r', domain: 'd', connection: conn },
      bindSession: { session: o('session'), connection: undefined, request: o('request') },
      resolveNextHop: { uri: o('uri'), session: o('session'), request: o('request') },
      forwardChunk: { connection: conn, session: o('session'), request: o('request'), direction: 'inward', from: o('from') },
    } as const;
    for (const [name, fields] of Object.entries(samples)) {
      const hook = hooks[name as keyof typeof samples] as unknown as {
        tapPromise(n: string, fn: (c: Record<string, unknown>) => Promise<undefined>): void;
        promise(c: unknown): Promise<unknown>;
      };
      let seen: Record<string, unknown> | undefined;
      hook.tapPromise('observer', async (c) => {
        seen = c;
        return undefined;
      });
      const ctx = { ...fields, signal: conn.signal };
      await hook.promise(ctx);
      assert.ok(seen !== undefined && seen !== ctx, name);
      for (const [k, v] of Object.entries(fields)) assert.equal(seen[k], v, `${name}.${k}`);
      assert.ok(seen.signal instanceof AbortSignal && seen.signal !== conn.signal, name);
    }
    // An optional field absent from the context is absent from the view too.
    let chunk: ChunkContext | undefined;
    const other = createHooks({ tapTimeoutMs: () => T });
    other.forwardChunk.tapPromise('from-check', async (c) => {
      chunk = c;
      return undefined;
    });
    await other.forwardChunk.promise({ connection: conn, session: {}, request: {}, direction: 'outward', signal: conn.signal } as unknown as ChunkContext);
    assert.equal('from' in chunk!, false);
  });

  it("acceptConnection gets the connection itself, and authorize's identity is passed as it is", async () => {
    const { hooks } = recorded(T);
    const conn = fakeConnection();
    const identity = { username: 'alice' } as Identity;
    const auth = { connection: conn, signal: conn.signal } as unknown as AuthRequest;
    let seenConn: unknown;
    let seen: [Identity, AuthRequest] | undefined;
    hooks.acceptConnection.tapPromise('gate', async (c) => {
      seenConn = c;
      return undefined;
    });
    hooks.authorize.tapPromise('policy', async (i, a) => {
      seen = [i, a];
      return undefined;
    });
    await hooks.acceptConnection.promise(conn);
    await hooks.authorize.promise(identity, auth);
    assert.equal(seenConn, conn);
    assert.equal(seen![0], identity);
    assert.notEqual(seen![1], auth);
    assert.equal(seen![1].connection, conn);
    assert.notEqual(seen![1].signal, conn.signal);
  });

  it('a tap marked withoutTimeout has no deadline and sees the context itself', async () => {
    const { hooks, errors } = recorded(T);
    const conn = fakeConnection();
    const ctx = { connection: conn, signal: conn.signal } as unknown as AuthRequest;
    let seen: unknown;
    hooks.authenticate.tapPromise(
      'core:digest',
      withoutTimeout(async (a: AuthRequest) => {
        seen = a;
        await sleep(2 * T);
        return { challenge: 'x', failed: false, reason: 'r' };
      }),
    );
    const r = await hooks.authenticate.promise(ctx);
    assert.ok(r !== undefined && 'challenge' in r);
    assert.equal(seen, ctx);
    assert.equal(errors.length, 0);
  });
});
