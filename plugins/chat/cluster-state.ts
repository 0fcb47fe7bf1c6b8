/**
 * Room state across nodes (the cluster option): what a room is and who may do what in it, the
 * same on every node that has it. cluster.ts carries messages, the roster and nicknames; this
 * file carries the rest:
 *
 * - `<prefix>room:<key>:state`, a hash per room: `room` (its URI, creation time and settings:
 *   persistence, nicknames, private messages, limits, the password's scrypt hash, the ACL,
 *   history, reserved nicknames), `subject`, `role:<user>` (owner, moderator, member, banned)
 *   and `mute:<user>`, each `{ v, at, n }` (value, when, which node), and `v`, the version,
 *   raised by every change. A field is written only when its (at, n) is later than the one in
 *   Redis (last writer wins, by Redis's clock as the writing node knows it, then the node id), by
 *   a script, so every node ends with the same value whatever the order its changes arrive in.
 * - Changes are announced on the room's stream as `state` entries (`op` set, kick or deleted);
 *   every node that has the room applies them at once, through the room's own calls, so a ban
 *   removes the user's sessions on every node with reason `banned` (kick: `kicked`), a mute
 *   answers 403 there, a subject gives the same status message and `subject` event there.
 * - At every heartbeat a node compares each room's `v` with the one it applied, and reloads the
 *   hash when it differs: an entry it missed (Redis away, the stream trimmed) is caught up within
 *   one heartbeat of Redis being back.
 * - Redis away: a change is applied on its node at once and waits (the latest per field); when
 *   Redis is back it is written by the rule above, then announced. A kick waits too.
 * - Rooms: rooms.create() writes the room (a script: only when Redis has no room of that URI;
 *   else the room Redis has is adopted, its settings winning); rooms.open(uri) on another node
 *   loads it. A room created while Redis is away is written when it is back (the first written wins).
 * - Deletion: rooms.delete() replaces the hash by a tombstone (`deleted`, kept a day) and
 *   announces it; the other nodes drop their copies. A temporary room is deleted when its last
 *   participant on any node leaves: a node whose last participant leaves keeps its empty copy
 *   while the shared roster has sessions of other nodes, and the node whose last participant
 *   leaves last deletes it everywhere (or, when that node died, the first node that sees the
 *   shared roster empty at a heartbeat). A temporary room with nobody in it on a live node is
 *   replaced by a rooms.create() of its URI.
 *
 * Redis is authoritative while it is up: a node's local store (SQLite, PostgreSQL) keeps its copy
 * for restarts, and a room loaded from it takes what Redis has at the first heartbeat; a room
 * Redis does not have (it lost its data) is written back from the copy.
 */

import type { ChatCluster, ClusterExtension } from './cluster.ts';
import type { Room, RoomSettings } from './room.ts';
import type { Role, RoomRecord } from './store.ts';
import type { Logger } from '../../core/index.ts';
import { userKey } from './user-uri.ts';
import { RemoteAnnouncer } from './cluster-roster.ts';

/** When a change was made, and on which node: the later one wins. */
interface Stamp {
  readonly at: number;
  readonly n: string;
}

interface FieldValue extends Stamp {
  readonly v: unknown;
}

/** The `room` field: what a room is, set once at creation. */
interface RoomField extends Stamp {
  readonly uri: string;
  readonly createdAt: number;
  readonly settings: RoomSettings;
}

/** What the rooms of a focus give the shared state (index.ts). */
export interface SharedRoomsHost {
  readonly log: Logger;
  rooms(): readonly Room[];
  byKey(key: string): Room | undefined;
  /** Deletes the room everywhere (rooms.delete). */
  delete(room: Room): Promise<void>;
}

/** How long a deleted room's tombstone stays in Redis. */
const TOMBSTONE_MS = 86_400_000;

/** KEYS[1] state; ARGV field, json, at, node. -1 deleted room, -2 unknown room, 0 a later change won, else the new version. */
const SET_NEWER = `
if redis.call('HEXISTS', KEYS[1], 'deleted') == 1 then return -1 end
if redis.call('HEXISTS', KEYS[1], 'room') == 0 then return -2 end
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur then
  local c = cjson.decode(cur)
  local at = tonumber(ARGV[3])
  if c.at > at or (c.at == at and c.n >= ARGV[4]) then return 0 end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return redis.call('HINCRBY', KEYS[1], 'v', 1)
`;

/**
 * KEYS state, stream, roster, nick; ARGV node key prefix, room json, then field/value pairs.
 * 0 when Redis has the room. A temporary room with nobody in it on a live node (its last node
 * closed or died) is as good as gone, like a deleted one: the new room replaces it. The version
 * goes on from the old one's, so a node that had the old room sees the change.
 */
const CREATE = `
local v = (tonumber(redis.call('HGET', KEYS[1], 'v')) or 0) + 1
local cur = redis.call('HGET', KEYS[1], 'room')
local afresh = redis.call('HEXISTS', KEYS[1], 'deleted') == 1
if cur and not afresh then
  local ok, r = pcall(cjson.decode, cur)
  if not ok or type(r.settings) ~= 'table' or r.settings.persistent ~= false then return 0 end
  for _, e in ipairs(redis.call('HVALS', KEYS[3])) do
    local fine, s = pcall(cjson.decode, e)
    if fine and type(s.node) == 'string' and redis.call('EXISTS', ARGV[1] .. s.node) == 1 then return 0 end
  end
  afresh = true
end
if afresh then
  -- A room of a gone one's URI starts afresh: no history, roster or nicknames of the old one.
  redis.call('DEL', KEYS[2], KEYS[3], KEYS[4])
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'room', ARGV[2], 'v', v)
for i = 3, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
return 1
`;

/** KEYS state, stream, roster, nick; ARGV tombstone json, ttl ms. */
const DELETE = `
local v = (tonumber(redis.call('HGET', KEYS[1], 'v')) or 0) + 1
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'deleted', ARGV[1], 'v', v)
for i = 1, 4 do redis.call('PEXPIRE', KEYS[i], ARGV[2]) end
return 1
`;

/**
 * Why a room went: `deleted` (rooms.delete()), or `empty` (a temporary room nobody was in, as
 * this node saw it). A node that still has participants in a room gone for being empty (it was
 * cut from Redis while the others saw nobody) writes the room again instead of closing it.
 */
type Reason = 'deleted' | 'empty';

function later(a: Stamp, b: Stamp): boolean {
  return a.at > b.at || (a.at === b.at && a.n > b.n);
}

function parse<T>(json: string | undefined): T | undefined {
  if (json === undefined) return undefined;
  try {
    return JSON.parse(json) as T;
  } catch {
    return undefined;
  }
}

export class SharedRooms implements ClusterExtension<Room> {
  /** Per room: the stamp of each field as this node applied or made it. */
  private readonly stamps = new Map<string, Map<string, Stamp>>();
  /** Per room: the version of the hash this node last loaded. */
  private readonly versions = new Map<string, number>();
  /** Per room: changes made here that Redis has not taken yet (the latest per field). */
  private readonly pending = new Map<string, Map<string, FieldValue>>();
  /** Per room: kicks made here not announced yet. */
  private readonly kicks = new Map<string, string[]>();
  /** Rooms created here while Redis was away: written when it is back. */
  private readonly unshared = new Set<string>();
  /** Rooms deleted here not yet in Redis: a tombstone (why: deleted, or empty) when it is there. */
  private readonly deletions = new Map<string, Reason>();
  /** Temporary rooms deleted here for being empty (not by rooms.delete()). */
  private readonly emptied = new Set<string>();
  /** Temporary rooms dropped here while Redis was away: deleted everywhere if nobody is left. */
  private readonly orphans = new Set<string>();
  /** Temporary rooms that have had participants (a room just created, before its first join, is not deleted for being empty). */
  private readonly occupied = new Set<string>();
  /** Rooms being dropped because another node deleted them. */
  private readonly dropping = new Set<string>();
  private readonly watched = new WeakSet<Room>();
  /** While changes of other nodes are applied, the room's events are not changes of this node. */
  private applying = 0;
  private work: Promise<void> = Promise.resolve();
  private readonly announcer = new RemoteAnnouncer();

  constructor(
    private readonly cluster: ChatCluster<Room>,
    private readonly host: SharedRoomsHost,
  ) {}

  /** Listens to the room's changes (every room this node has). */
  watch(room: Room): void {
    if (this.watched.has(room)) return;
    this.watched.add(room);
    this.cluster.follow(room);
    // The comings and goings of other nodes' users, told to this node's clients (cluster-roster.ts).
    this.announcer.watch(room);
    room.on('subject', (subject: string) => this.changed(room, 'subject', subject));
    room.on('role', (uri: string, role: Role) => this.changedUser(room, 'role', uri, role));
    room.on('mute', (uri: string, muted: boolean) => this.changedUser(room, 'mute', uri, muted));
    room.on('kick', (uri: string) => this.kicked(room, uri));
    room.on('joined', () => this.occupied.add(room.key));
  }

  // ------------------------------------------------------------------ rooms

  /**
   * A room created here: written to Redis unless Redis has one of that URI, which is answered
   * (its record: adopt it, not this one). Undefined: this record is the room's (or Redis is away
   * and it is written when it is back).
   */
  async create(record: RoomRecord): Promise<RoomRecord | undefined> {
    if (!this.cluster.connected) {
      this.unshared.add(record.key);
      return undefined;
    }
    try {
      if (await this.write(record.key, this.roomField(record), this.fieldsOf(record, undefined))) return undefined;
      const theirs = await this.load(record.key);
      // Deleted meanwhile: this record is the room's, written at the next heartbeat.
      if (theirs === undefined) this.unshared.add(record.key);
      return theirs;
    } catch {
      this.unshared.add(record.key);
      return undefined;
    }
  }

  /** The room Redis has of this key, or undefined (none, deleted, or Redis away). */
  async load(key: string): Promise<RoomRecord | undefined> {
    if (!this.cluster.connected) return undefined;
    let all: Record<string, string>;
    try {
      all = await this.cluster.commands.hgetall(this.cluster.key(key, 'state'));
    } catch {
      return undefined;
    }
    if (all.deleted !== undefined) return undefined;
    const r = parse<RoomField>(all.room);
    if (r === undefined) return undefined;
    const roles: Record<string, Role> = {};
    const muted: string[] = [];
    for (const [field, json] of Object.entries(all)) {
      const fv = parse<FieldValue>(json);
      if (fv === undefined) continue;
      if (field.startsWith('role:') && fv.v !== 'member') roles[field.slice(5)] = fv.v as Role;
      if (field.startsWith('mute:') && fv.v === true) muted.push(field.slice(5));
    }
    const subject = parse<FieldValue>(all.subject)?.v;
    return { key, uri: r.uri, subject: typeof subject === 'string' ? subject : '', settings: { ...r.settings }, roles, muted, createdAt: new Date(r.createdAt) };
  }

  /**
   * The last participant of a temporary room on this node left: true when it is to be deleted
   * (nobody on any node), false when other nodes still have sessions (the empty copy stays and
   * goes when they leave). While Redis is away it goes here, and everywhere once Redis is back if
   * nobody is left.
   */
  async lastLeft(room: Room): Promise<boolean> {
    const remote = await this.cluster.freshRemoteSessions(room);
    if (room.participants.length > 0 || room.isClosed) return false;
    if (remote === undefined) {
      this.orphans.add(room.key);
      return true;
    }
    if (remote.length > 0) return false;
    this.emptied.add(room.key);
    return true;
  }

  /** The room is gone from this node (rooms.delete): gone everywhere, unless another node deleted it. */
  deleted(room: Room): void {
    const key = room.key;
    this.stamps.delete(key);
    this.versions.delete(key);
    this.pending.delete(key);
    this.kicks.delete(key);
    this.unshared.delete(key);
    this.occupied.delete(key);
    const reason: Reason = this.emptied.delete(key) ? 'empty' : 'deleted';
    if (this.dropping.delete(key)) return;
    if (this.orphans.has(key)) return;
    this.deletions.set(key, reason);
    this.run(() => this.flushDeletions());
  }

  // ------------------------------------------------------------------ changes made here

  private changedUser(room: Room, what: 'role' | 'mute', uri: string, v: Role | boolean): void {
    const user = userKey(uri);
    if (user !== undefined) this.changed(room, `${what}:${user}`, v);
  }

  private changed(room: Room, field: string, v: unknown): void {
    if (this.applying > 0) return;
    const prev = this.stampsOf(room.key).get(field);
    // Later than anything this node saw of the field, so a change here is never older than what it shows.
    const fv: FieldValue = { v, at: Math.max(Math.round(this.cluster.now()), (prev?.at ?? 0) + 1), n: this.cluster.nodeId };
    this.stampsOf(room.key).set(field, fv);
    let p = this.pending.get(room.key);
    if (p === undefined) this.pending.set(room.key, (p = new Map()));
    p.set(field, fv);
    this.run(() => this.flushRoom(room));
  }

  private kicked(room: Room, uri: string): void {
    if (this.applying > 0) return;
    const user = userKey(uri);
    if (user === undefined) return;
    const list = this.kicks.get(room.key) ?? [];
    list.push(user);
    this.kicks.set(room.key, list);
    this.run(() => this.flushRoom(room));
  }

  /** Store work in order, one at a time; a failure leaves the change waiting for the next heartbeat. */
  private run(op: () => Promise<void>): void {
    this.work = this.work.then(op).catch(() => undefined);
  }

  private async flushRoom(room: Room): Promise<void> {
    if (!this.cluster.connected || room.isClosed || this.host.byKey(room.key) !== room) return;
    const key = room.key;
    const redis = this.cluster.commands;
    if (this.unshared.has(key)) await this.share(room);
    const p = this.pending.get(key);
    for (const [field, fv] of [...(p ?? [])]) {
      const json = JSON.stringify(fv);
      let r = Number(await redis.eval(SET_NEWER, 1, this.cluster.key(key, 'state'), field, json, String(fv.at), fv.n));
      if (r === -2) {
        // Redis lost the room (or never had it): written back from this node's copy.
        await this.share(room);
        r = Number(await redis.eval(SET_NEWER, 1, this.cluster.key(key, 'state'), field, json, String(fv.at), fv.n));
      }
      if (p!.get(field) === fv) p!.delete(field);
      // 0: a later change of another node won; the heartbeat brings it here. -1: the room is deleted.
      if (r > 0) await this.cluster.appendNow(room, ['k', 'state', 'op', 'set', 'f', field, 'j', json]);
    }
    if (p?.size === 0) this.pending.delete(key);
    const kicks = this.kicks.get(key);
    while (kicks !== undefined && kicks.length > 0) {
      await this.cluster.appendNow(room, ['k', 'state', 'op', 'kick', 'f', kicks[0]!]);
      kicks.shift();
    }
  }

  /** Writes a room Redis does not have from this node's copy; when Redis has one after all, it is applied here. */
  private async share(room: Room): Promise<void> {
    const rec = room.toRecord();
    const written = await this.write(room.key, this.roomField(rec), this.fieldsOf(rec, this.stamps.get(room.key)));
    this.unshared.delete(room.key);
    if (!written) await this.reload(room);
  }

  private async write(key: string, r: RoomField, fields: Array<[string, FieldValue]>): Promise<boolean> {
    const k = (what: 'state' | 'stream' | 'roster' | 'nick') => this.cluster.key(key, what);
    const args = fields.flatMap(([f, v]) => [f, JSON.stringify(v)]);
    return Number(await this.cluster.commands.eval(CREATE, 4, k('state'), k('stream'), k('roster'), k('nick'), `${this.cluster.options.redis.keyPrefix}node:`, JSON.stringify(r), ...args)) === 1;
  }

  private async flushDeletions(): Promise<void> {
    if (!this.cluster.connected) return;
    for (const [key, reason] of [...this.deletions]) {
      if (this.host.byKey(key) !== undefined || this.unshared.has(key)) {
        // Created here again meanwhile: that room it is.
        this.deletions.delete(key);
        continue;
      }
      await this.tombstone(key, reason);
      this.deletions.delete(key);
    }
  }

  private async tombstone(key: string, reason: Reason): Promise<void> {
    const k = (what: 'state' | 'stream' | 'roster' | 'nick') => this.cluster.key(key, what);
    const stamp = { at: Math.round(this.cluster.now()), n: this.cluster.nodeId, reason };
    // Announced first: the stream expires with the tombstone.
    await this.cluster.commands.xadd(k('stream'), '*', 'n', this.cluster.nodeId, 'u', `${this.cluster.nodeId}:deleted:${key}:${stamp.at}`, 'k', 'state', 'op', 'deleted', 'f', reason);
    await this.cluster.commands.eval(DELETE, 4, k('state'), k('stream'), k('roster'), k('nick'), JSON.stringify(stamp), String(TOMBSTONE_MS));
  }

  private roomField(rec: RoomRecord): RoomField {
    return { uri: rec.uri, createdAt: rec.createdAt.getTime(), settings: rec.settings as unknown as RoomSettings, at: Math.round(this.cluster.now()), n: this.cluster.nodeId };
  }

  /** A room's state as fields; without a stamp of its own a field gets the oldest one (anything later wins). */
  private fieldsOf(rec: RoomRecord, stamps: Map<string, Stamp> | undefined): Array<[string, FieldValue]> {
    const at = (f: string): Stamp => stamps?.get(f) ?? (stamps === undefined ? { at: Math.round(this.cluster.now()), n: this.cluster.nodeId } : { at: 0, n: this.cluster.nodeId });
    const out: Array<[string, FieldValue]> = [['subject', { v: rec.subject, ...at('subject') }]];
    for (const [u, role] of Object.entries(rec.roles)) out.push([`role:${u}`, { v: role, ...at(`role:${u}`) }]);
    for (const u of rec.muted) out.push([`mute:${u}`, { v: true, ...at(`mute:${u}`) }]);
    return out;
  }

  // ------------------------------------------------------------------ changes of other nodes

  /** A `state` entry of another node, from the room's stream. */
  entry(room: Room, f: Map<string, Buffer>): void {
    const op = f.get('op')?.toString();
    const field = f.get('f')?.toString() ?? '';
    if (op === 'set') {
      const fv = parse<FieldValue>(f.get('j')?.toString());
      if (fv !== undefined) this.apply(room, field, fv);
    } else if (op === 'kick') {
      this.applying++;
      try {
        // As a kick here: every session of the user here leaves, reason kicked.
        room.kick(field);
      } finally {
        this.applying--;
      }
    } else if (op === 'deleted') {
      this.drop(room, field === 'empty' ? 'empty' : 'deleted');
    }
  }

  /** A field's value of another node, when it is later than what this node has. */
  private apply(room: Room, field: string, fv: FieldValue): void {
    const stamps = this.stampsOf(room.key);
    const prev = stamps.get(field);
    if (prev !== undefined && !later(fv, prev)) return;
    stamps.set(field, fv);
    this.applying++;
    try {
      if (field === 'subject') {
        if (typeof fv.v === 'string' && fv.v !== room.subject) room.setSubject(fv.v);
      } else if (field.startsWith('role:')) {
        const user = field.slice(5);
        const want = fv.v as Role;
        const cur = room.roleOf(user);
        if (cur === want) return;
        // The room's own calls, so the sessions here leave as they would for a ban made here.
        if (want === 'banned') room.ban(user);
        else {
          if (cur === 'banned') room.unban(user);
          if (want !== 'member' || cur !== 'banned') room.setRole(user, want);
        }
      } else if (field.startsWith('mute:')) {
        const user = field.slice(5);
        if (fv.v === true && !room.isMuted(user)) room.mute(user);
        else if (fv.v !== true && room.isMuted(user)) room.unmute(user);
      }
    } catch (e) {
      this.host.log.warn('chat: a room state change of another node could not be applied', { room: room.uri, field, error: (e as Error).message });
    } finally {
      this.applying--;
    }
  }

  /** The whole hash, applied where it is later than what this node has. */
  private async reload(room: Room): Promise<void> {
    const all = await this.cluster.commands.hgetall(this.cluster.key(room.key, 'state'));
    if (all.deleted !== undefined) return this.drop(room, parse<{ reason?: Reason }>(all.deleted)?.reason ?? 'deleted');
    const r = parse<RoomField>(all.room);
    if (r === undefined) return;
    const stamps = this.stampsOf(room.key);
    const prev = stamps.get('room');
    if (prev === undefined || later(r, prev)) {
      stamps.set('room', r);
      // The settings are the room's (one written first); a copy made here meanwhile takes them.
      if (JSON.stringify(r.settings) !== JSON.stringify(room.settings)) {
        const s = room.settings as unknown as Record<string, unknown>;
        for (const k of Object.keys(s)) delete s[k];
        Object.assign(s, r.settings);
        room.focus.persist(room);
      }
    }
    for (const [field, json] of Object.entries(all)) {
      if (field !== 'subject' && !field.startsWith('role:') && !field.startsWith('mute:')) continue;
      const fv = parse<FieldValue>(json);
      if (fv !== undefined) this.apply(room, field, fv);
    }
    this.versions.set(room.key, Number(all.v ?? 0));
  }

  /** Another node deleted the room: this node's copy goes (everyone here leaves, closed). */
  private drop(room: Room, reason: Reason): void {
    if (this.host.byKey(room.key) !== room) return;
    if (reason === 'empty' && (room.participants.length > 0 || !this.occupied.has(room.key))) {
      // Not empty here (or just created here, nobody in it yet): the room is written again from this copy.
      this.unshared.add(room.key);
      this.run(() => this.flushRoom(room));
      return;
    }
    this.dropping.add(room.key);
    void this.host.delete(room);
  }

  // ------------------------------------------------------------------ the heartbeat

  async tick(): Promise<void> {
    await this.work;
    const redis = this.cluster.commands;
    const rooms = this.host.rooms().filter((r) => !r.isClosed);
    for (const room of rooms) if (this.unshared.has(room.key) || this.pending.has(room.key) || (this.kicks.get(room.key)?.length ?? 0) > 0) await this.flushRoom(room);
    await this.flushDeletions();
    if (rooms.length > 0) {
      const m = redis.pipeline();
      for (const room of rooms) m.hmget(this.cluster.key(room.key, 'state'), 'v', 'deleted', 'room');
      const res = (await m.exec()) ?? [];
      for (const [i, room] of rooms.entries()) {
        const [err, vals] = res[i] ?? [];
        if (err !== null && err !== undefined) continue;
        const [v, deleted, r] = vals as Array<string | null>;
        if (deleted !== null) this.drop(room, parse<{ reason?: Reason }>(deleted)?.reason ?? 'deleted');
        else if (r === null) {
          // Redis does not have it (it lost its data): this node's copy is written back, but a
          // temporary room nobody is in any more is let go.
          if (!room.settings.persistent && room.participants.length === 0 && this.occupied.has(room.key)) this.drop(room, 'empty');
          else await this.share(room);
        } else if (Number(v) !== this.versions.get(room.key)) await this.reload(room);
      }
    }
    // A temporary room whose last participants were on a node that died or went: nobody is left.
    for (const room of rooms) {
      if (room.settings.persistent || room.participants.length > 0 || this.host.byKey(room.key) !== room) continue;
      const remote = this.cluster.remoteSessions(room).length;
      if (remote > 0) this.occupied.add(room.key);
      else if (this.occupied.has(room.key)) {
        this.emptied.add(room.key);
        await this.host.delete(room);
      }
    }
    // Temporary rooms dropped here while Redis was away: deleted everywhere if nobody is left.
    for (const key of [...this.orphans]) {
      this.orphans.delete(key);
      if (this.host.byKey(key) !== undefined) continue;
      if ((await redis.hlen(this.cluster.key(key, 'roster'))) === 0) await this.tombstone(key, 'empty');
    }
  }

  private stampsOf(key: string): Map<string, Stamp> {
    let s = this.stamps.get(key);
    if (s === undefined) this.stamps.set(key, (s = new Map()));
    return s;
  }
}
