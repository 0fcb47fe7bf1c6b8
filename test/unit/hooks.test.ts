// Tap isolation in core/hooks.ts: per-tap timeouts, errors named by plugin (DESIGN.md §3).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHooks, HookTimeoutError, PluginError } from '../../core/hooks.ts';
import type { DomainQuery } from '../../core/types.ts';

const query = { host: 'example.com' } as unknown as DomainQuery;

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
    const hooks = createHooks({ tapTimeoutMs: () => 1000 });
    hooks.resolveDomain.tapPromise('passes', async () => null as never);
    hooks.resolveDomain.tapPromise('broken', () => {
      throw new Error('boom');
    });
    await assert.rejects(hooks.resolveDomain.promise(query), (e: unknown) => e instanceof PluginError && e.plugin === 'broken' && /boom/.test(e.message));
  });
});
