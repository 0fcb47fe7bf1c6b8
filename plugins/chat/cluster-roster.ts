/**
 * The room's roster as its participants see it, across nodes (the cluster option): the welcome
 * and `/who` name the users of every node, and clients without a=chatroom (C-17) are told when a
 * user of another node comes in, goes, or changes its nickname. cluster.ts keeps the shared roster (the sessions of the
 * other nodes, `remoteSessions(room)`, read at every heartbeat and at each local change); this
 * file turns it into users.
 *
 * Announcements of other nodes' participants are per user, not per session (C-10: a user's
 * sessions are one participant to the others): "X joined" when a user with no session on any
 * node the room's node knows of gets one on another node, "X left" when a user's last session on
 * any node goes and the last one was on another node, "X is now Y" when its nickname changes
 * there. A user with sessions on two nodes is
 * announced once; a session here of a user who already has one on another node is not
 * announced again (room.ts asks `presentElsewhere`). This node's own sessions are announced as
 * they join and leave, as without the option.
 */

import type { RemoteSession } from './cluster.ts';
import type { RoomCore } from './focus-core.ts';
import type { Role } from './store.ts';

/** A user of the room on any node, as the welcome and `/who` name it. */
export interface RoomUser {
  readonly uri: string;
  readonly user: string;
  /** The nickname, else the display name, else the URI. */
  readonly name: string;
  readonly role: Role;
  readonly muted: boolean;
  /** Only on other nodes. */
  readonly remote: boolean;
}

function remoteName(s: RemoteSession): string {
  return s.nickname ?? (s.displayName !== undefined && s.displayName !== '' ? s.displayName : s.uri);
}

/** The users of other nodes that have no session on this node (user key → name and URI). */
function remoteOnly(room: RoomCore): Map<string, { name: string; uri: string; nickname: boolean }> {
  const local = new Set(room.participants.map((p) => p.user));
  const out = new Map<string, { name: string; uri: string; nickname: boolean }>();
  for (const s of room.focus.cluster?.remoteSessions(room) ?? []) {
    if (local.has(s.user)) continue;
    const seen = out.get(s.user);
    // A nickname on any of the user's sessions names it (as roster() does for this node's).
    if (seen === undefined || (s.nickname !== undefined && !seen.nickname)) out.set(s.user, { name: remoteName(s), uri: s.uri, nickname: s.nickname !== undefined });
  }
  return out;
}

/** Every user in the room: this node's (in the order they joined), then the other nodes'. */
export function roomUsers(room: RoomCore): RoomUser[] {
  const users: RoomUser[] = room.roster().map((u) => ({ uri: u.uri, user: u.user, name: u.nickname ?? u.displayName ?? u.uri, role: u.role, muted: u.muted, remote: false }));
  for (const [user, r] of remoteOnly(room)) users.push({ uri: r.uri, user, name: r.name, role: room.roleOf(user), muted: room.isMuted(user), remote: true });
  return users;
}

/** The user has a session on another node (as this node last read the shared roster). */
export function presentElsewhere(room: RoomCore, user: string): boolean {
  return room.focus.cluster?.remoteSessions(room).some((s) => s.user === user) ?? false;
}

/**
 * Tells this node's clients without a=chatroom about the comings and goings and nickname changes
 * of other nodes' users (C-17), once per user. Watches every room this node has.
 */
export class RemoteAnnouncer {
  private readonly watched = new WeakSet<RoomCore>();

  watch(room: RoomCore): void {
    if (this.watched.has(room)) return;
    this.watched.add(room);
    // Users only on other nodes, as last seen; anyone there before this node had the room was
    // there before this node's participants too (the welcome names them).
    let before = remoteOnly(room);
    let local = new Set(room.participants.map((p) => p.user));
    room.on('roster', () => {
      const now = remoteOnly(room);
      const here = new Set(room.participants.map((p) => p.user));
      for (const [user, r] of now) {
        const was = before.get(user);
        // Not here before, neither on another node nor on this one.
        if (was === undefined && !local.has(user)) room.announce(`${r.name} joined`);
        // A nickname set, changed or removed on another node, told as this node tells its own.
        else if (was !== undefined && was.name !== r.name) room.announce(`${was.name} is now ${r.name}`);
      }
      for (const [user, r] of before) {
        // Gone from every node: its last session was on another node (one here announces itself).
        if (!now.has(user) && !here.has(user)) room.announce(`${r.name} left`);
      }
      before = now;
      local = here;
    });
  }
}
