/**
 * Rooms across nodes (the `cluster` option): several relays serve the same rooms through one
 * Redis. Each node keeps its own participants as it does alone; what crosses nodes is:
 *
 * - messages: a regular or private message complete on a node (up to cluster.maxMessageSize
 *   octets, as the sender sent them; each node adds its focus's lines) is appended to the room's stream
 *   (`<prefix>room:<key>:stream`, XADD MAXLEN ~ streamMaxLen) with the node id; every node reads
 *   its rooms' streams in one XREAD BLOCK loop, from the last id it saw per room, and hands the
 *   entries of other nodes to its own participants (the C-7, C-10, C-11 choice of recipients is
 *   made there, for its sessions; the sender's node decided 403/404/428 already); a joiner's
 *   history comes from the stream too (every node's regular messages), the store answering
 *   only while Redis is away;
 * - the roster: `<prefix>room:<key>:roster`, a hash session → JSON of node, user, URI, nickname
 *   and capabilities; a node rewrites its own entries at every heartbeat and keeps
 *   `<prefix>node:<id>` alive with a TTL of rosterTtl; entries of a node whose key expired are
 *   removed by the next sweep of any node: a dead node's participants are gone from the
 *   others' rosters within rosterTtl + heartbeat seconds;
 * - nicknames: `<prefix>room:<key>:nick`, folded key → `<user>\n<node>\n<claimed at>`, claimed
 *   with HSETNX, so two users on two nodes never hold one nickname (425); a clash made while
 *   Redis was away is settled when it is back (cluster-nicknames.ts: the earlier claim keeps it);
 * - room state (subject, settings, roles, bans, mutes, kicks, creation and deletion): cluster-state.ts,
 *   attached here as an extension (its `state` entries ride the room's stream).
 *
 * Redis going away: the room goes on locally; appends wait in memory (at most cluster.queue
 * entries, the oldest dropped and counted beyond) and go out in order once Redis is back; the
 * read loop resumes from its last id, so a node catches up on what others appended meanwhile.
 * Every entry carries a unique id that readers remember for a while: an append retried after a
 * timeout that had in fact succeeded is not delivered twice.
 */

import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { Redis } from 'ioredis';
import type { Logger } from '../../core/index.ts';
import type { ChatOptions } from './options.ts';
import type { Participant } from './participant.ts';
import type { HistoryRecord } from './store.ts';
import { claimValue, reclaimNicknames, type NicknameClaims, type NicknameRoom } from './cluster-nicknames.ts';

export type ClusterOptions = NonNullable<ChatOptions['cluster']>;

/** A session of a room as the shared roster has it. */
export interface RemoteSession {
  readonly session: string;
  readonly node: string;
  readonly user: string;
  readonly uri: string;
  readonly nickname: string | undefined;
  readonly nicknameKey: string | undefined;
  readonly privateMessages: boolean;
  /** The display name the application gave (the welcome and /who name a user without a nickname by it). */
  readonly displayName?: string | undefined;
}

/** A message of another node, for this node's participants. */
export interface ClusterMessage {
  /** The entry's id in the room's stream. */
  readonly id: string;
  readonly node: string;
  readonly kind: 'regular' | 'private';
  /** The sender's Message-ID. */
  readonly messageId: string;
  /** The sender's user key. */
  readonly from: string;
  /** The sender's URI (its identity in the room). */
  readonly fromUri: string;
  /** The sender's nickname when it was sent. */
  readonly nickname: string | undefined;
  /** When the sender's node received it (the copies' Timestamp). */
  readonly receivedAt: Date;
  /** A regular message the history keeps (not a typing notice). */
  readonly history: boolean;
  /** The private message's recipient (user key). */
  readonly to: string | undefined;
  /** The wrapped content's media type (C-7). */
  readonly mediaType: string;
  /** The CPIM bytes as the sender sent them (each node adds its focus's lines, C-6). */
  readonly body: Buffer;
}

export interface ClusterStats {
  /** Entries appended to streams. */
  published: number;
  /** Entries of other nodes handed to this node's rooms. */
  received: number;
  /** Messages larger than cluster.maxMessageSize: they stayed on their node. */
  tooLarge: number;
  /** Appends dropped because the queue was full while Redis was away. */
  dropped: number;
  /** Entries read twice (a retried append) and not delivered again. */
  duplicates: number;
}

type Entry = Array<string | Buffer>;

/**
 * What the cluster needs of a room (room.ts): its key and URI, since when it exists, its
 * sessions on this node, and its `roster` event when the shared roster changed. An interface,
 * so that the cluster does not import the room; ChatCluster is generic in it, so the focus gets
 * its own rooms back in the host's calls.
 */
export interface ClusterRoom extends NicknameRoom {
  readonly uri: string;
  readonly createdAt: Date;
  /** Closed rooms read no entries. */
  readonly isClosed: boolean;
  emit(event: string, ...args: unknown[]): boolean;
}

/** What the rooms of a focus give the cluster. */
export interface ClusterHost<R extends ClusterRoom = ClusterRoom> {
  readonly log: Logger;
  rooms(): readonly R[];
  /** A message of another node for the room's local participants. */
  deliver(room: R, m: ClusterMessage): void;
  /** A `file` entry of another node (a message too large for one entry, cluster-files.ts). */
  deliverLarge?(room: R, id: string, fields: ReadonlyMap<string, Buffer>): void;
}

/** What cluster-state.ts hangs on the cluster: its stream entries and its part of each heartbeat. */
export interface ClusterExtension<R extends ClusterRoom = ClusterRoom> {
  /** A `state` entry of another node in the room's stream (fields as read). */
  entry(room: R, fields: Map<string, Buffer>): void;
  /** After each heartbeat's sweeps, Redis being there. */
  tick(): Promise<void>;
}

const SEEN_KEEP = 10_000;

export class ChatCluster<R extends ClusterRoom = ClusterRoom> implements NicknameClaims {
  readonly nodeId: string;
  readonly stats: ClusterStats = { published: 0, received: 0, tooLarge: 0, dropped: 0, duplicates: 0 };
  private redis!: Redis;
  private reader!: Redis;
  private readonly prefix: string;
  private readonly lastIds = new Map<string, string>();
  private readonly remote = new Map<string, Map<string, RemoteSession>>();
  private readonly queue: Array<{ key: string; fields: Entry }> = [];
  private readonly seen = new Set<string>();
  private counter = 0;
  private flushing: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private loop: Promise<void> | undefined;
  private running = false;
  private sweeping: Promise<void> | undefined;
  /** Redis's clock minus this node's (stream ids are Redis's milliseconds). */
  private skew = 0;
  private startedAt = Date.now();
  private ticking = false;
  private extension: ClusterExtension<R> | undefined;
  /** When this node's users claimed their nicknames (`<room>\n<user>\n<key>` → ms, Redis's clock). */
  readonly claimedAt = new Map<string, number>();

  constructor(
    readonly options: ClusterOptions,
    private readonly host: ClusterHost<R>,
  ) {
    // Under `msrprelay --workers` each worker is a node of its own: its index keeps a configured id apart.
    const worker = process.env['MSRPRELAY_WORKER_ID'];
    this.nodeId = `${options.nodeId ?? `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`}${worker !== undefined ? `-w${worker}` : ''}`;
    this.prefix = options.redis.keyPrefix;
  }

  async start(): Promise<void> {
    let RedisClass: typeof import('ioredis').Redis;
    try {
      RedisClass = (await import('ioredis')).Redis;
    } catch (e) {
      throw new Error('chat: the cluster option needs the ioredis package (npm install ioredis)', { cause: e });
    }
    const o = this.options.redis;
    const common = { connectTimeout: o.connectTimeout * 1000, enableOfflineQueue: false, maxRetriesPerRequest: 1, retryStrategy: (n: number) => Math.min(n * 100, 1000) };
    this.redis = new RedisClass(o.url, { ...common, commandTimeout: o.commandTimeout * 1000 });
    // The reader blocks in XREAD: no command timeout of its own (its BLOCK bounds it).
    this.reader = new RedisClass(o.url, common);
    let warned = false;
    const onError = (e: Error): void => {
      if (warned) return;
      warned = true;
      this.host.log.warn('chat: Redis of the cluster is away; rooms go on locally', { node: this.nodeId, error: e.message });
    };
    this.redis.on('error', onError);
    this.reader.on('error', () => undefined);
    this.redis.on('ready', () => {
      if (warned) this.host.log.info('chat: Redis of the cluster is back', { node: this.nodeId });
      warned = false;
      void this.tick();
    });
    await Promise.race([new Promise((r) => this.redis.once('ready', r)), new Promise((r) => setTimeout(r, o.connectTimeout * 1000).unref())]);
    try {
      const before = Date.now();
      const [sec, usec] = await this.redis.time();
      // Redis read its clock about halfway through the round trip.
      this.skew = Math.round(Number(sec) * 1000 + Number(usec) / 1000 - (before + Date.now()) / 2);
    } catch {
      // Not there yet: this node's clock it is.
    }
    this.startedAt = Date.now();
    this.running = true;
    this.timer = setInterval(() => void this.tick(), this.options.heartbeat * 1000).unref();
    await this.tick();
    this.loop = this.readLoop();
  }

  async close(): Promise<void> {
    this.running = false;
    if (this.timer !== undefined) clearInterval(this.timer);
    await this.sweeping?.catch(() => undefined);
    await this.flush().catch(() => undefined);
    try {
      // The rooms closed first (their participants left the shared roster); the node goes now.
      if (this.redis.status === 'ready') await this.redis.del(`${this.nodeKeyPrefix}${this.nodeId}`);
    } catch {
      // Redis is away: the node's key expires and the others sweep its entries.
    }
    this.reader.disconnect();
    await this.loop?.catch(() => undefined);
    try {
      await this.redis.quit();
    } catch {
      this.redis.disconnect();
    }
  }

  /** Redis is there now. */
  get connected(): boolean {
    return this.redis?.status === 'ready';
  }

  /** @internal the command connection (cluster-files.ts writes and reads pieces on it). */
  get client(): Redis {
    return this.redis;
  }

  /** @internal started and not closed. */
  get active(): boolean {
    return this.running;
  }

  /** @internal appends an entry of another kind (cluster-files.ts) to the room's stream, with this node's id and a unique id, in order with the messages. */
  publishEntry(room: R, fields: Entry): void {
    this.queue.push({ key: this.key(room, 'stream'), fields: ['n', this.nodeId, 'u', `${this.nodeId}:${++this.counter}`, ...fields] });
    while (this.queue.length > this.options.queue) {
      this.queue.shift();
      this.stats.dropped++;
    }
    void this.flush();
  }

  /** Appends waiting for Redis. */
  get queued(): number {
    return this.queue.length;
  }

  /** The sessions of the room on other nodes, as this node knows them. */
  remoteSessions(room: R): RemoteSession[] {
    return [...(this.remote.get(room.key)?.values() ?? [])];
  }

  // ------------------------------------------------------------------ messages

  /** A message complete on this node goes to the room's stream (or waits for Redis). */
  publish(room: R, m: Omit<ClusterMessage, 'node' | 'id'>): void {
    if (m.body.length > this.options.maxMessageSize) {
      this.stats.tooLarge++;
      return;
    }
    const fields: Entry = ['n', this.nodeId, 'u', `${this.nodeId}:${++this.counter}`, 'k', m.kind, ...messageFields(m), 'b', m.body];
    this.queue.push({ key: this.key(room, 'stream'), fields });
    while (this.queue.length > this.options.queue) {
      this.queue.shift();
      this.stats.dropped++;
    }
    void this.flush();
  }

  private flush(): Promise<void> {
    if (this.flushing !== undefined) return this.flushing;
    const run = async (): Promise<void> => {
      while (this.queue.length > 0 && this.redis.status === 'ready') {
        const e = this.queue[0]!;
        try {
          await this.redis.xadd(e.key, 'MAXLEN', '~', String(this.options.streamMaxLen), '*', ...e.fields);
        } catch {
          // Kept, in order, for the next try (the entry id keeps a retry from delivering twice).
          return;
        }
        if (this.queue[0] === e) this.queue.shift();
        this.stats.published++;
      }
    };
    this.flushing = run().finally(() => {
      this.flushing = undefined;
    });
    return this.flushing;
  }

  private async readLoop(): Promise<void> {
    while (this.running) {
      const rooms = this.host.rooms().filter((r) => !r.isClosed);
      if (rooms.length === 0 || this.reader.status !== 'ready') {
        await sleep(200);
        continue;
      }
      const keys = rooms.map((r) => this.key(r, 'stream'));
      const ids = rooms.map((r) => this.lastId(r));
      let res: Array<[Buffer, Array<[Buffer, Buffer[]]>]> | null;
      try {
        res = (await this.reader.xreadBuffer('COUNT', 200, 'BLOCK', 500, 'STREAMS', ...keys, ...ids)) as typeof res;
      } catch {
        await sleep(200);
        continue;
      }
      if (res === null) continue;
      const byKey = new Map(rooms.map((r) => [this.key(r, 'stream'), r]));
      for (const [k, entries] of res) {
        const room = byKey.get(k.toString());
        if (room === undefined) continue;
        for (const [id, raw] of entries) {
          this.lastIds.set(room.key, id.toString());
          this.take(room, id.toString(), raw);
        }
      }
    }
  }

  /** Where the room's reading goes on: its last id, or from when the room opened on this node. */
  private lastId(room: R): string {
    let id = this.lastIds.get(room.key);
    if (id === undefined) {
      id = `${Math.max(room.createdAt.getTime(), this.startedAt) + this.skew - 1}-0`;
      this.lastIds.set(room.key, id);
    }
    return id;
  }

  private take(room: R, id: string, raw: Buffer[]): void {
    const f = new Map<string, Buffer>();
    for (let i = 0; i + 1 < raw.length; i += 2) f.set(raw[i]!.toString(), raw[i + 1]!);
    const node = f.get('n')?.toString();
    if (node === undefined || node === this.nodeId) return;
    const uid = f.get('u')?.toString() ?? '';
    if (this.seen.has(uid)) {
      this.stats.duplicates++;
      return;
    }
    this.seen.add(uid);
    if (this.seen.size > SEEN_KEEP) this.seen.delete(this.seen.values().next().value!);
    if (f.get('k')?.toString() === 'state') {
      try {
        this.extension?.entry(room, f);
      } catch (e) {
        this.host.log.warn('chat: a room state change of another node could not be applied', { room: room.uri, error: (e as Error).message });
      }
      return;
    }
    if (f.get('k')?.toString() === 'file') {
      this.stats.received++;
      this.host.deliverLarge?.(room, id, f);
      return;
    }
    const m = parseEntry(id, f);
    if (m === undefined) return;
    this.stats.received++;
    try {
      this.host.deliver(room, m);
    } catch (e) {
      this.host.log.warn('chat: a message of another node could not be delivered', { room: room.uri, error: (e as Error).message });
    }
  }

  /**
   * The room's recent regular messages from its stream, all nodes' (oldest first), for a joiner's
   * history; undefined when Redis is away (the local store answers then). Looks at the last
   * 4 × limit entries (private messages and typing notices are there too and are skipped).
   */
  async history(room: R, limit: number, since: Date | undefined): Promise<{ records: HistoryRecord[]; upTo: string | undefined } | undefined> {
    if (this.redis.status !== 'ready') return undefined;
    let raw: Array<[Buffer, Buffer[]]>;
    try {
      raw = await this.redis.xrevrangeBuffer(this.key(room, 'stream'), '+', '-', 'COUNT', Math.min(this.options.streamMaxLen, limit * 4));
    } catch {
      return undefined;
    }
    const out: HistoryRecord[] = [];
    const upTo = raw[0]?.[0].toString();
    for (const [id, fields] of raw) {
      if (out.length >= limit) break;
      const f = new Map<string, Buffer>();
      for (let i = 0; i + 1 < fields.length; i += 2) f.set(fields[i]!.toString(), fields[i + 1]!);
      const m = parseEntry(id.toString(), f);
      if (m === undefined || m.kind !== 'regular' || !m.history) continue;
      if (since !== undefined && m.receivedAt < since) continue;
      out.push({ room: room.key, messageId: m.messageId, sender: m.fromUri, nickname: m.nickname, receivedAt: m.receivedAt, contentType: m.mediaType, body: m.body });
    }
    return { records: out.reverse(), upTo };
  }

  // ------------------------------------------------------------------ roster

  /** A local participant joined, left or changed its nickname: the shared roster hears at once. */
  rosterChanged(room: R): void {
    void this.sweepRoom(room).catch(() => undefined);
  }

  /**
   * Claims a nickname key for a user in a room: false when another user holds it (on any node).
   * While Redis is away, nicknames are unique on this node only (true).
   */
  async claimNickname(room: R, user: string, key: string): Promise<boolean> {
    const claim = `${room.key}\n${user}\n${key}`;
    const at = this.claimedAt.get(claim) ?? this.now();
    // Remembered even while Redis is away: the claim's time settles a clash once it is back.
    const mine = (): true => (this.claimedAt.set(claim, at), true);
    if (this.redis.status !== 'ready') return mine();
    try {
      const k = this.key(room, 'nick');
      const value = claimValue(user, this.nodeId, at);
      if ((await this.redis.hsetnx(k, key, value)) === 1) return mine();
      const held = await this.redis.hget(k, key);
      if (held === null) return (await this.redis.hsetnx(k, key, value)) === 1 && mine();
      const [holder, node, heldAt] = held.split('\n');
      if (holder === user) {
        // The same user on another node (C-14): the earliest claim is the user's.
        this.claimedAt.set(claim, Math.min(at, Number(heldAt ?? at) || at));
        return true;
      }
      // A claim of a node that is gone does not count.
      if (node !== undefined && node !== this.nodeId && (await this.redis.exists(`${this.nodeKeyPrefix}${node}`)) === 0) {
        await this.redis.hset(k, key, value);
        return mine();
      }
      return false;
    } catch {
      return mine();
    }
  }

  /** Lets go of a nickname key the user no longer holds on this node. */
  releaseNickname(room: R, user: string, key: string): void {
    if (room.participants.some((p) => p.user === user && p.nicknameKey === key)) return;
    this.claimedAt.delete(`${room.key}\n${user}\n${key}`);
    // The same user may hold it on another node (C-14): then it stays.
    if (this.remoteSessions(room).some((s) => s.user === user && s.nicknameKey === key)) return;
    if (this.redis.status !== 'ready') return;
    const k = this.key(room, 'nick');
    void this.redis
      .hget(k, key)
      .then((held) => (held?.split('\n')[0] === user ? this.redis.hdel(k, key) : 0))
      .catch(() => undefined);
  }

  private rosterOf(room: R): Map<string, string> {
    const m = new Map<string, string>();
    for (const p of room.participants) m.set(p.id, JSON.stringify(this.entryOf(p)));
    return m;
  }

  private entryOf(p: Participant): Omit<RemoteSession, 'session'> {
    return { node: this.nodeId, user: p.user, uri: p.identity.uri, nickname: p.nickname, nicknameKey: p.nicknameKey, privateMessages: p.caps.privateMessages, displayName: p.identity.displayName };
  }

  /** The heartbeat: this node's key, queued appends, and every room's roster (one at a time). */
  private async tick(): Promise<void> {
    if (this.ticking || this.redis === undefined || this.redis.status !== 'ready') return;
    this.ticking = true;
    try {
      await this.redis.set(`${this.nodeKeyPrefix}${this.nodeId}`, '1', 'PX', Math.round(this.options.rosterTtl * 1000));
      await this.flush();
      const rooms = this.host.rooms();
      // Rooms this node no longer has: their reading and remote rosters go.
      const keys = new Set(rooms.map((r) => r.key));
      for (const k of [...this.lastIds.keys()]) if (!keys.has(k)) this.lastIds.delete(k);
      for (const k of [...this.remote.keys()]) if (!keys.has(k)) this.remote.delete(k);
      for (const room of rooms) await this.sweepRoom(room).catch(() => undefined);
      await this.extension?.tick();
    } catch {
      // Redis went away meanwhile: the next heartbeat tries again.
    } finally {
      this.ticking = false;
    }
  }

  /** Writes this node's entries, removes its stale ones and those of dead nodes, and reads the others. */
  private sweepRoom(room: R): Promise<void> {
    const prev = this.sweeping ?? Promise.resolve();
    const next = prev.catch(() => undefined).then(() => this.sweepNow(room));
    this.sweeping = next;
    return next;
  }

  private async sweepNow(room: R): Promise<void> {
    if (this.redis.status !== 'ready') return;
    const rk = this.key(room, 'roster');
    const nk = this.key(room, 'nick');
    const mine = this.rosterOf(room);
    if (mine.size > 0) await this.redis.hset(rk, Object.fromEntries(mine));
    // After an outage: the local nicknames are claimed again, a clash settled (the earlier claim keeps it).
    await reclaimNicknames(this, room);
    const all = await this.redis.hgetall(rk);
    const nodes = new Map<string, boolean>();
    const others = new Map<string, RemoteSession>();
    const gone: string[] = [];
    for (const [session, json] of Object.entries(all)) {
      let e: Omit<RemoteSession, 'session'>;
      try {
        e = JSON.parse(json) as Omit<RemoteSession, 'session'>;
      } catch {
        gone.push(session);
        continue;
      }
      if (e.node === this.nodeId) {
        if (!mine.has(session)) gone.push(session);
        continue;
      }
      let alive = nodes.get(e.node);
      if (alive === undefined) nodes.set(e.node, (alive = (await this.redis.exists(`${this.nodeKeyPrefix}${e.node}`)) === 1));
      if (alive) others.set(session, { session, ...e });
      else gone.push(session);
    }
    if (gone.length > 0) await this.redis.hdel(rk, ...gone);
    const dead = [...nodes].filter(([, a]) => !a).map(([n]) => n);
    if (dead.length > 0) {
      const claims = await this.redis.hgetall(nk);
      const stale = Object.entries(claims)
        .filter(([, v]) => dead.includes(v.split('\n')[1] ?? ''))
        .map(([k]) => k);
      if (stale.length > 0) await this.redis.hdel(nk, ...stale);
    }
    const before = this.remote.get(room.key);
    this.remote.set(room.key, others);
    const changed = before === undefined ? others.size > 0 : before.size !== others.size || [...others].some(([s, e]) => JSON.stringify(before.get(s)) !== JSON.stringify(e));
    if (changed) room.emit('roster');
  }

  key(room: { readonly key: string } | string, what: 'stream' | 'roster' | 'nick' | 'state'): string {
    return `${this.prefix}room:${typeof room === 'string' ? room : room.key}:${what}`;
  }

  // ------------------------------------------------------------------ for cluster-state.ts and cluster-nicknames.ts

  /** Hangs the room state on the cluster (before start()). */
  attach(extension: ClusterExtension<R>): void {
    this.extension = extension;
  }

  /** The command connection (fails fast while Redis is away). */
  get commands(): Redis {
    return this.redis;
  }

  /** The nodes' liveness keys are this and the node id. */
  get nodeKeyPrefix(): string {
    return `${this.prefix}node:`;
  }

  /** Now, in milliseconds of Redis's clock (as far as this node knows it). */
  now(): number {
    return Date.now() + this.skew;
  }

  /** A room this node has from now on (opened, or another node's adopted): its stream is read from now, not from its creation. */
  follow(room: R): void {
    if (!this.lastIds.has(room.key)) this.lastIds.set(room.key, `${this.now() - 1}-0`);
  }

  /** The room's sessions on other nodes, read from Redis now; undefined while Redis is away. */
  async freshRemoteSessions(room: R): Promise<RemoteSession[] | undefined> {
    if (!this.connected) return undefined;
    try {
      await this.sweepRoom(room);
    } catch {
      return undefined;
    }
    return this.connected ? this.remoteSessions(room) : undefined;
  }

  /** Appends an entry of this node to the room's stream now (throws while Redis is away). */
  async appendNow(room: R, fields: Array<string | Buffer>): Promise<void> {
    await this.redis.xadd(this.key(room, 'stream'), 'MAXLEN', '~', String(this.options.streamMaxLen), '*', 'n', this.nodeId, 'u', `${this.nodeId}:${++this.counter}`, ...fields);
  }
}

/** a > b for stream ids (`ms-seq`). */
export function streamIdAfter(a: string, b: string): boolean {
  const [am = 0, as = 0] = a.split('-').map(Number);
  const [bm = 0, bs = 0] = b.split('-').map(Number);
  return am > bm || (am === bm && as > bs);
}

/** What a message entry says of its message, whole (a `regular`/`private` entry) or in pieces (a `file` entry, cluster-files.ts). */
export type MessageMeta = Pick<ClusterMessage, 'kind' | 'messageId' | 'from' | 'fromUri' | 'nickname' | 'receivedAt' | 'to' | 'mediaType' | 'history'>;

/** The fields of a stream entry that describe its message (the kind is the caller's: `k`, or `mk` of a `file` entry). */
export function messageFields(m: Omit<MessageMeta, 'kind'>): string[] {
  return ['id', m.messageId, 'f', m.from, 'fu', m.fromUri, 'nk', m.nickname ?? '', 'at', m.receivedAt.toISOString(), 'h', m.history ? '1' : '0', 'to', m.to ?? '', 'ty', m.mediaType];
}

/** messageFields() read back; undefined when `kind` is no message kind. */
export function readMessageFields(f: ReadonlyMap<string, Buffer>, kind: string): MessageMeta | undefined {
  if (kind !== 'regular' && kind !== 'private') return undefined;
  const s = (k: string): string => f.get(k)?.toString() ?? '';
  const at = new Date(s('at'));
  return {
    kind,
    messageId: s('id'),
    from: s('f'),
    fromUri: s('fu'),
    nickname: s('nk') === '' ? undefined : s('nk'),
    receivedAt: Number.isNaN(at.getTime()) ? new Date() : at,
    history: s('h') === '1',
    to: s('to') === '' ? undefined : s('to'),
    mediaType: s('ty'),
  };
}

function parseEntry(id: string, f: Map<string, Buffer>): ClusterMessage | undefined {
  const meta = readMessageFields(f, f.get('k')?.toString() ?? '');
  if (meta === undefined) return undefined;
  return { ...meta, id, node: f.get('n')?.toString() ?? '', body: f.get('b') ?? Buffer.alloc(0) };
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms).unref());
}
