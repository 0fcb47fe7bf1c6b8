// core/deadlines.ts: the one-timer deadline queue behind tap timeouts and R-62 transaction timeouts.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { DeadlineQueue } from '../../core/deadlines.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('DeadlineQueue', () => {
  it('fires what was not settled, in order, not before its time; settled ones never fire', async () => {
    const q = new DeadlineQueue();
    const fired: string[] = [];
    const t0 = Date.now();
    const at: Record<string, number> = {};
    const a = q.add(t0 + 40, () => ((at.a = Date.now()), fired.push('a')));
    const b = q.add(t0 + 60, () => fired.push('b'));
    q.add(t0 + 80, () => ((at.c = Date.now()), fired.push('c')));
    q.settle(b);
    assert.equal(q.pending, 2);
    await sleep(150);
    assert.deepEqual(fired, ['a', 'c']);
    assert.ok(at.a! >= t0 + 40 && at.c! >= t0 + 80, 'never early');
    assert.ok(a.done);
    assert.equal(q.pending, 0);
  });

  it('an expiry may settle others and add new deadlines; those still fire once, on time', async () => {
    const q = new DeadlineQueue();
    const fired: string[] = [];
    const t0 = Date.now();
    let second: ReturnType<DeadlineQueue['add']> | undefined;
    q.add(t0 + 20, () => {
      fired.push('first');
      q.settle(second!);
      q.add(Date.now() + 30, () => fired.push('added'));
    });
    second = q.add(t0 + 25, () => fired.push('second'));
    q.add(t0 + 26, () => fired.push('third'));
    await sleep(120);
    assert.deepEqual(fired, ['first', 'third', 'added']);
    assert.equal(q.pending, 0);
  });

  it('thousands settled in order leave nothing queued (answered deadlines are not kept)', () => {
    const q = new DeadlineQueue({ unref: true });
    const now = Date.now();
    for (let i = 0; i < 5000; i++) q.settle(q.add(now + 30_000, () => assert.fail('settled deadline fired')));
    assert.equal(q.pending, 0);
    assert.equal((q as unknown as { queue: unknown[] }).queue.length, 0);
  });
});
