/**
 * Rooms across nodes (the chat plugin's cluster option): two relays, each with its own chat
 * focus, share rooms through a real Redis (127.0.0.1:6379, a key prefix of their own per test).
 * Participants on both see each other's messages once; nicknames are unique across nodes; a
 * node that goes leaves the other's roster; with Redis away (a TCP proxy in front of it, cut and
 * restored) the room goes on locally and catches up afterwards, nothing twice.
 */

import assert from 'node:assert/strict';
import { fork, type ChildProcess } from 'node:child_process';
import { describe, it } from 'node:test';
import { Redis } from 'ioredis';
import type { TestRelay } from '../../core/testing/index.ts';
import ChatFocus, { formatUseNickname, type Room } from '../../plugins/chat/index.ts';
import { Clients, REDIS, cpimBody, redisPrefixes, seesRemote, startClusterNode, until } from '../support/chat.ts';
import { CutProxy } from '../support/cut-proxy.ts';

/** A relay in a process of its own (test/support/chat-node.ts), asked over IPC. */
class ProcessNode {
  private next = 0;
  private readonly waiting = new Map<number, (m: Record<string, unknown>) => void>();

  private constructor(
    readonly child: ChildProcess,
    readonly t: TestRelay,
  ) {
    child.on('message', (m: Record<string, unknown>) => {
      const id = m.id as number | undefined;
      if (id !== undefined) this.waiting.get(id)?.(m);
      if (id !== undefined) this.waiting.delete(id);
    });
  }

  static async start(prefix: string, nodeId: string): Promise<ProcessNode> {
    const child = fork(new URL('../support/chat-node.ts', import.meta.url), [], {
      execArgv: ['--import', 'tsx'],
      env: { ...process.env, CHAT_NODE: JSON.stringify({ redisUrl: `redis://${REDIS.host}:${REDIS.port}`, keyPrefix: prefix, nodeId, room: ROOM }) },
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
    });
    const ready = await new Promise<{ tcpPort: number }>((resolve, reject) => {
      child.once('message', (m: { ready?: { tcpPort: number } }) => (m.ready !== undefined ? resolve(m.ready) : reject(new Error('no ready'))));
      child.once('exit', (code) => reject(new Error(`the node exited (${code})`)));
    });
    return new ProcessNode(child, { tcpPort: ready.tcpPort } as TestRelay);
  }

  ask(q: Record<string, unknown>): Promise<Record<string, unknown>> {
    const id = ++this.next;
    return new Promise((resolve) => {
      this.waiting.set(id, resolve);
      this.child.send({ id, ...q });
    });
  }

  /** What ChatClient.join needs of a room: join() through the other process. */
  get room(): Room {
    return {
      uri: ROOM,
      join: async (o: { sdpOffer: string; identity: { uri: string } }) => {
        const r = await this.ask({ join: o });
        if (typeof r.error === 'string') throw new Error(r.error);
        return { sdpAnswer: r.sdpAnswer as string, participant: undefined };
      },
    } as unknown as Room;
  }

  async sees(user: string): Promise<boolean> {
    return (await this.ask({ sees: user })).sees === true;
  }

  kill(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return Promise.resolve();
    return new Promise((r) => {
      this.child.once('exit', () => r());
      this.child.kill('SIGKILL');
    });
  }
}

const ROOM = 'sip:across@example.com';
const HEARTBEAT = 0.2;
const ROSTER_TTL = 1;

interface Node {
  t: TestRelay;
  chat: ChatFocus;
  room: Room;
}

async function startNode(prefix: string, nodeId: string, port = REDIS.port, extra: { maxMessageSize?: number; queue?: number; maxFileSize?: number } = {}): Promise<Node> {
  const { t, chat } = await startClusterNode({ prefix, nodeId, port, heartbeat: HEARTBEAT, rosterTtl: ROSTER_TTL, cluster: extra });
  const room = await chat.rooms.create(ROOM, { subject: 'Across' });
  return { t, chat, room };
}

const newPrefix = redisPrefixes('chat');

const sees = (n: Node, user: string) => seesRemote(n.room, user);

/** Lets the read loops run a while, so a copy that would come twice has had its chance. */
const settle = () => new Promise((r) => setTimeout(r, 1500));

describe('chat: rooms across nodes on Redis', () => {
  it('participants on both nodes see each other’s regular and private messages, once', async () => {
    const prefix = newPrefix();
    const n1 = await startNode(prefix, 'one');
    const n2 = await startNode(prefix, 'two');
    const clients = new Clients();
    try {
      const alice = await clients.join(n1.t, 'alice', n1.room);
      const carol = await clients.join(n1.t, 'carol', n1.room);
      const bob = await clients.join(n2.t, 'bob', n2.room);
      await until('node one sees bob', () => sees(n1, 'bob@example.com'));
      await until('node two sees alice', () => sees(n2, 'alice@example.com'));

      assert.equal((await alice.say('hello from one')).status, 200);
      await Promise.all([carol.received('hello from one'), bob.received('hello from one')]);
      assert.equal((await bob.say('hello from two')).status, 200);
      const [a, c] = await Promise.all([alice.received('hello from two'), carol.received('hello from two')]);
      assert.equal(a.cpim.from.uri, bob.sip, 'the CPIM From of the sender, across nodes');
      assert.ok(a.focus('Timestamp') !== undefined, 'with the lines of the sender’s focus');
      assert.equal(c.cpim.from.uri, bob.sip);

      // C-11 across nodes: the shared roster decides 404; the copy reaches the recipient only.
      assert.equal((await alice.say('just for bob', { to: bob.sip })).status, 200);
      await bob.received('just for bob');
      assert.equal((await bob.say('just for alice', { to: alice.sip })).status, 200);
      await alice.received('just for alice');
      assert.equal((await alice.say('to nobody', { to: 'sip:nobody@example.com' })).status, 404);

      // A joiner on node two gets the history of both nodes from the stream, marked; no private ones.
      const dave = await clients.join(n2.t, 'dave', n2.room);
      for (const [text, from] of [['hello from one', alice.sip], ['hello from two', bob.sip]] as const) {
        const h = await dave.received(text);
        assert.equal(h.focus('History'), 'yes');
        assert.equal(h.cpim.from.uri, from);
      }

      await settle();
      assert.equal(bob.copies('hello from one').length, 1);
      assert.equal(carol.copies('hello from one').length, 1);
      assert.equal(alice.copies('hello from one').length, 0, 'not back to the sender');
      assert.equal(alice.copies('hello from two').length, 1);
      assert.equal(bob.copies('hello from two').length, 0, 'not back to the sender');
      assert.equal(bob.copies('just for bob').length, 1);
      assert.equal(carol.copies('just for bob').length, 0);
      assert.equal(carol.copies('just for alice').length, 0);
      assert.equal(dave.copies('just for bob').length, 0);
      assert.equal(dave.copies('hello from one').length, 1);
    } finally {
      await clients.close();
      await n1.t.close();
      await n2.t.close();
    }
  });

  it('a nickname is one user’s across nodes (425), and free again once let go', async () => {
    const prefix = newPrefix();
    const n1 = await startNode(prefix, 'one');
    const n2 = await startNode(prefix, 'two');
    const clients = new Clients();
    try {
      const alice = await clients.join(n1.t, 'alice', n1.room);
      const bob = await clients.join(n2.t, 'bob', n2.room);
      const alice2 = await clients.join(n2.t, 'alice', n2.room);
      assert.equal(await alice.nickname(formatUseNickname('Star')), 200);
      assert.equal(await bob.nickname(formatUseNickname('STAR')), 425, 'folded, held on the other node');
      assert.equal(await alice2.nickname(formatUseNickname('star')), 200, 'the same user on another node (C-14)');
      assert.equal(await bob.nickname(formatUseNickname('moon')), 200);
      assert.equal(await alice.nickname(formatUseNickname('MOON')), 425);
      await assert.rejects(clients.join(n1.t, 'carol', n1.room, { nickname: 'Moon' }), /nickname/);
      // Alice lets go of it on both sessions: Bob may take it.
      assert.equal(await alice.nickname(formatUseNickname('sun')), 200);
      assert.equal(await alice2.nickname(formatUseNickname('sun')), 200);
      let status = 0;
      const end = Date.now() + 10_000;
      while ((status = await bob.nickname(formatUseNickname('Star'))) !== 200 && Date.now() < end) await new Promise((r) => setTimeout(r, 100));
      assert.equal(status, 200);
    } finally {
      await clients.close();
      await n1.t.close();
      await n2.t.close();
    }
  });

  it('a node that closes, or loses Redis for longer than rosterTtl, leaves the other’s roster', async () => {
    const prefix = newPrefix();
    const proxy = await new CutProxy(REDIS).start();
    const n1 = await startNode(prefix, 'one');
    const n2 = await startNode(prefix, 'two', proxy.port);
    const n3 = await startNode(prefix, 'three');
    const clients = new Clients();
    try {
      await clients.join(n1.t, 'alice', n1.room);
      await clients.join(n2.t, 'bob', n2.room);
      await clients.join(n3.t, 'carol', n3.room);
      await until('node one sees bob and carol', () => sees(n1, 'bob@example.com') && sees(n1, 'carol@example.com'));
      // Node two as good as dead: no heartbeat; within rosterTtl + heartbeat its participants are gone.
      await proxy.cut();
      await until('node one no longer sees bob', () => !sees(n1, 'bob@example.com'), (ROSTER_TTL + HEARTBEAT) * 1000 + 3000);
      assert.ok(sees(n1, 'carol@example.com'));
      await proxy.restore();
      await until('bob is back', () => sees(n1, 'bob@example.com'));
      // Node three closes: its participants leave the shared roster.
      await n3.t.close();
      await until('node one no longer sees carol', () => !sees(n1, 'carol@example.com'), (ROSTER_TTL + HEARTBEAT) * 1000 + 3000);
    } finally {
      await clients.close();
      await n1.t.close();
      await n2.t.close();
      await proxy.close();
    }
  });

  it('with Redis away, the room goes on locally and catches up when it is back, nothing twice', async () => {
    const prefix = newPrefix();
    const proxy = await new CutProxy(REDIS).start();
    const n1 = await startNode(prefix, 'one');
    const n2 = await startNode(prefix, 'two', proxy.port);
    const clients = new Clients();
    try {
      const alice = await clients.join(n1.t, 'alice', n1.room);
      const bob = await clients.join(n2.t, 'bob', n2.room);
      const dave = await clients.join(n2.t, 'dave', n2.room);
      await until('node one sees bob', () => sees(n1, 'bob@example.com'));
      assert.equal((await alice.say('before')).status, 200);
      await bob.received('before');

      await proxy.cut();
      await until('node two knows Redis is away', () => !n2.chat.cluster!.connected);
      assert.equal((await bob.say('while away 1')).status, 200);
      assert.equal((await bob.say('while away 2')).status, 200);
      await dave.received('while away 1');
      await dave.received('while away 2');
      assert.equal(n2.chat.cluster!.queued, 2, 'the appends wait');
      assert.equal((await alice.say('meanwhile on one')).status, 200);

      await proxy.restore();
      await alice.received('while away 1');
      await alice.received('while away 2');
      await Promise.all([bob.received('meanwhile on one'), dave.received('meanwhile on one')]);
      assert.equal((await alice.say('after')).status, 200);
      await Promise.all([bob.received('after'), dave.received('after')]);

      await settle();
      for (const text of ['before', 'meanwhile on one', 'after']) {
        assert.equal(bob.copies(text).length, 1, `bob: ${text} once`);
        assert.equal(dave.copies(text).length, 1, `dave: ${text} once`);
      }
      for (const text of ['while away 1', 'while away 2']) {
        assert.equal(alice.copies(text).length, 1, `alice: ${text} once`);
        assert.equal(dave.copies(text).length, 1, `dave: ${text} once`);
      }
      const order = alice.c.frames.filter((f) => f.kind === 'request' && f.method === 'SEND' && f.hasBody).map((f) => f.body.toString()).filter((b) => b.includes('while away'));
      assert.ok(order[0]!.includes('while away 1') && order[1]!.includes('while away 2'), 'in the order they were sent');
      assert.equal(n2.chat.cluster!.queued, 0);
    } finally {
      await clients.close();
      await n1.t.close();
      await n2.t.close();
      await proxy.close();
    }
  });

  it('while Redis is away at most cluster.queue appends wait; the oldest go beyond, counted', async () => {
    const prefix = newPrefix();
    const proxy = await new CutProxy(REDIS).start();
    const n1 = await startNode(prefix, 'one');
    const n2 = await startNode(prefix, 'two', proxy.port, { queue: 2 });
    const clients = new Clients();
    try {
      const alice = await clients.join(n1.t, 'alice', n1.room);
      const bob = await clients.join(n2.t, 'bob', n2.room);
      await proxy.cut();
      await until('node two knows Redis is away', () => !n2.chat.cluster!.connected);
      for (const text of ['q1', 'q2', 'q3']) assert.equal((await bob.say(text)).status, 200);
      assert.equal(n2.chat.cluster!.queued, 2);
      assert.equal(n2.chat.cluster!.stats.dropped, 1);
      await proxy.restore();
      await alice.received('q2');
      await alice.received('q3');
      await settle();
      assert.equal(alice.copies('q1').length, 0, 'the oldest was dropped');
    } finally {
      await clients.close();
      await n1.t.close();
      await n2.t.close();
      await proxy.close();
    }
  });

  it('a message larger than cluster.maxMessageSize crosses in pieces; over cluster.maxFileSize it stays on its node, counted; an entry read twice is delivered once', async () => {
    const prefix = newPrefix();
    const n1 = await startNode(prefix, 'one', REDIS.port, { maxMessageSize: 600, maxFileSize: 900 });
    const n2 = await startNode(prefix, 'two', REDIS.port, { maxMessageSize: 600, maxFileSize: 900 });
    const clients = new Clients();
    try {
      const alice = await clients.join(n1.t, 'alice', n1.room);
      const carol = await clients.join(n1.t, 'carol', n1.room);
      const bob = await clients.join(n2.t, 'bob', n2.room);
      // Over maxMessageSize, within maxFileSize: across in pieces (cluster-files.ts).
      const middle = 'm'.repeat(700);
      assert.equal((await alice.say(middle)).status, 200);
      await bob.received(middle);
      const big = 'x'.repeat(1000);
      assert.equal((await alice.say(big)).status, 200);
      await carol.received(big);
      assert.equal(n1.chat.cluster!.stats.tooLarge, 1);
      assert.equal((await alice.say('small')).status, 200);
      await bob.received('small');

      // The same entry twice (an append retried after a timeout that had succeeded): once.
      const r = new Redis(REDIS.port, REDIS.host);
      const fields = ['n', 'ghost', 'u', 'ghost:1', 'k', 'regular', 'f', 'erin@example.com', 'to', '', 'ty', 'text/plain', 'b', cpimBody({ from: 'sip:erin@example.com', to: ROOM, text: 'twice?' })];
      await r.xadd(`${prefix}room:${n2.room.key}:stream`, '*', ...fields);
      await r.xadd(`${prefix}room:${n2.room.key}:stream`, '*', ...fields);
      await r.quit();
      await bob.received('twice?');
      await settle();
      assert.equal(bob.copies(big).length, 0, 'the large message stayed on node one');
      assert.equal(bob.copies('twice?').length, 1);
      assert.equal(alice.copies('twice?').length, 1);
      assert.ok(n2.chat.cluster!.stats.duplicates >= 1);
    } finally {
      await clients.close();
      await n1.t.close();
      await n2.t.close();
    }
  });

  it('two relay processes: both see each other’s messages once; a killed one leaves the roster within rosterTtl + heartbeat', async () => {
    const prefix = newPrefix();
    const p1 = await ProcessNode.start(prefix, 'proc-one');
    const p2 = await ProcessNode.start(prefix, 'proc-two');
    const clients = new Clients();
    try {
      const alice = await clients.join(p1.t, 'alice', p1.room);
      const bob = await clients.join(p2.t, 'bob', p2.room);
      for (let i = 0; !((await p1.sees('bob@example.com')) && (await p2.sees('alice@example.com'))); i++) {
        assert.ok(i < 200, 'the nodes see each other');
        await new Promise((r) => setTimeout(r, 50));
      }
      assert.equal((await alice.say('from process one')).status, 200);
      await bob.received('from process one');
      assert.equal((await bob.say('from process two')).status, 200);
      await alice.received('from process two');
      assert.equal((await bob.say('private to alice', { to: alice.sip })).status, 200);
      await alice.received('private to alice');
      await settle();
      assert.equal(bob.copies('from process one').length, 1);
      assert.equal(alice.copies('from process two').length, 1);
      assert.equal(alice.copies('private to alice').length, 1);
      // A node that dies (no clean close): its participants go within rosterTtl + heartbeat.
      await p2.kill();
      for (let i = 0; await p1.sees('bob@example.com'); i++) {
        assert.ok(i < ((ROSTER_TTL + HEARTBEAT) * 1000 + 3000) / 50, 'bob leaves the roster of process one');
        await new Promise((r) => setTimeout(r, 50));
      }
    } finally {
      await clients.close();
      await p1.kill();
      await p2.kill();
    }
  });

  it('single-node rooms need no Redis; bad cluster options are refused', () => {
    assert.equal(new ChatFocus({ store: { driver: 'memory' } }).cluster, undefined);
    assert.throws(() => new ChatFocus({ cluster: { redis: { url: '' } } }), /cluster\/redis\/url/);
    assert.throws(() => new ChatFocus({ cluster: { redis: { url: 'redis://x' }, heartbeat: 5, rosterTtl: 2 } }), /rosterTtl/);
  });
});
