/**
 * Nickname clashes across nodes after a Redis outage (the cluster option). While Redis is away
 * a node checks nicknames against its own sessions only (room.ts), so the same folded nickname
 * may be taken by two users on two nodes. At every roster sweep (each heartbeat, and at once when
 * Redis is back) each node claims its users' nicknames again, and a clash is settled by one
 * rule every node computes alike (C-14: one user per nickname; the same user may keep it on
 * several sessions and nodes):
 *
 *   the earlier claim keeps it: the claim's time (Redis's clock as the claiming node knew it,
 *   taken when the user set it, online or not), then the smaller node id, then the smaller user key.
 *
 * The user whose claim loses has the nickname taken away on every session of its node (as a
 * NICKNAME `""` would: roster, conference-info and announcements follow) and is told why in a
 * private status message. A claim of a node whose key has expired counts for nothing.
 */

import type { Redis } from 'ioredis';
import type { DeliveryKind } from './delivery.ts';
import type { Participant } from './participant.ts';

/** What the settlement needs of a room (room.ts): its sessions, and a nickname taken away. */
export interface NicknameRoom {
  readonly key: string;
  readonly participants: readonly Participant[];
  nicknameAnswer(p: Participant, wanted: string): { status: number; comment: string };
  status(p: Participant, text: string, kind?: DeliveryKind): void;
}

/** What it needs of the cluster (cluster.ts): Redis, the node, and when each claim was made. */
export interface NicknameClaims {
  readonly nodeId: string;
  readonly commands: Redis;
  readonly claimedAt: Map<string, number>;
  /** The key prefix of the nodes' liveness keys (`<prefix>node:<id>`). */
  readonly nodeKeyPrefix: string;
  now(): number;
  key(room: NicknameRoom, what: 'nick'): string;
}

/** The value of a claim in `<prefix>room:<key>:nick`: user, node, and when it was claimed. */
export function claimValue(user: string, node: string, at: number): string {
  return `${user}\n${node}\n${Math.round(at)}`;
}

/**
 * Compare-and-claim, atomic in Redis: takes the field when it is free, the same user's, held by
 * a dead node, or held by a later claim; else answers `lost` and the holder's user.
 * KEYS[1] the nick hash; ARGV: field, user, node, at, node key prefix.
 */
const CLAIM = `
local cur = redis.call('HGET', KEYS[1], ARGV[1])
local mine = ARGV[2] .. '\\n' .. ARGV[3] .. '\\n' .. ARGV[4]
if not cur then redis.call('HSET', KEYS[1], ARGV[1], mine) return 'ok' end
local user, node, at = string.match(cur, '^([^\\n]*)\\n([^\\n]*)\\n?([^\\n]*)$')
if user == nil then redis.call('HSET', KEYS[1], ARGV[1], mine) return 'ok' end
if user == ARGV[2] then return 'ok' end
if redis.call('EXISTS', ARGV[5] .. node) == 0 then redis.call('HSET', KEYS[1], ARGV[1], mine) return 'ok' end
local theirs = tonumber(at) or 0
local ours = tonumber(ARGV[4])
if ours < theirs or (ours == theirs and (ARGV[3] < node or (ARGV[3] == node and ARGV[2] < user))) then
  redis.call('HSET', KEYS[1], ARGV[1], mine)
  return 'won'
end
return 'lost\\n' .. user
`;

/** Claims this node's nicknames of the room again; the losers of a clash lose them here. */
export async function reclaimNicknames(cluster: NicknameClaims, room: NicknameRoom): Promise<void> {
  const claims = new Map<string, { user: string; key: string; at: number }>();
  for (const p of room.participants) {
    if (p.nicknameKey === undefined || p.left !== undefined) continue;
    const id = `${room.key}\n${p.user}\n${p.nicknameKey}`;
    let at = cluster.claimedAt.get(id);
    if (at === undefined) cluster.claimedAt.set(id, (at = cluster.now()));
    claims.set(id, { user: p.user, key: p.nicknameKey, at });
  }
  if (claims.size === 0) return;
  const redis = cluster.commands;
  const nk = cluster.key(room, 'nick');
  const m = redis.pipeline();
  for (const c of claims.values()) m.eval(CLAIM, 1, nk, c.key, c.user, cluster.nodeId, String(Math.round(c.at)), cluster.nodeKeyPrefix);
  const results = (await m.exec()) ?? [];
  let i = 0;
  for (const c of claims.values()) {
    const [err, answer] = results[i++] ?? [];
    if (err !== null && err !== undefined) continue;
    if (typeof answer !== 'string' || !answer.startsWith('lost\n')) continue;
    lose(cluster, room, c.user, c.key, answer.slice(5));
  }
}

/** The user's sessions here give the nickname up, each told why (a private status message). */
function lose(cluster: NicknameClaims, room: NicknameRoom, user: string, key: string, holder: string): void {
  cluster.claimedAt.delete(`${room.key}\n${user}\n${key}`);
  for (const p of room.participants.filter((s) => s.user === user && s.nicknameKey === key)) {
    const name = p.nickname ?? '';
    // As NICKNAME "" would (RFC 7701 §7.3): the roster and its announcements follow.
    room.nicknameAnswer(p, '');
    room.status(p, `Your nickname "${name}" was taken by ${holder} on another node of this room before yours, while the nodes could not reach each other; you have none now.`, 'private');
  }
}
