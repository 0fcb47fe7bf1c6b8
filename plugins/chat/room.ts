/**
 * A chat room (RFC 7701): its participants, nicknames, roles, subject and settings, and what
 * the focus does with each message a participant sends: who gets it (regular C-6, private
 * C-11, types C-7, a user's sessions C-10, congestion C-16), what is refused and with which
 * status (C-3, C-4, C-5, C-11), NICKNAME (C-13, C-14), welcome and roster for clients that know
 * nothing of rooms (C-17), history and moderation.
 *
 * Events (a Room is an EventEmitter):
 *   joined(participant)          left(participant, reason)       roster()  after any roster change
 *   nickname(participant, old, new)                               subject(subject, by)
 *   role(userUri, role, by)      message(ChatMessageEvent)        congested / decongested(participant)
 *   remote-message(ClusterMessage, recipients)   a message of another node (the cluster option), handed to this node's sessions
 *   mute(userUri, muted, by)     kick(userUri, by)  (the cluster option shares them, cluster-state.ts)
 *   file(FileRecord)             a file sent to the room was kept (files.ts)   file-pull(participant, FileRecord)  an RFC 5547 pull is served
 *   file-push(participant)       an RFC 5547 push session to the room is open (files.ts)
 */

import { EventEmitter } from 'node:events';
import { randomBytes, scryptSync, timingSafeEqual } from 'node:crypto';
import type { AsyncSeriesBailHook } from 'tapable';
import type { LocalReceiver, LocalResponse } from '../../core/index.ts';
import { formatStatusHeader, getHeaders, parseUri, uriEquals, type MsrpRequestHead } from '../../core/protocol/index.ts';
import { HELP_TEXT, parseCommand } from './commands.ts';
import { streamIdAfter, type ClusterMessage } from './cluster.ts';
import { presentElsewhere, roomUsers } from './cluster-roster.ts';
import { buildConferenceInfo, type ConferenceUser } from './conference-info.ts';
import { buildCpim, focusHeaderLines, focusPrefix, headersInNamespace, insertHeaderLines, quoteCpimString, scanCpim, type CpimMessage } from './cpim.ts';
import { Delivery, type DeliveryKind, type Route } from './delivery.ts';
import { ChatError } from './errors.ts';
import type { ChatFiles } from './files.ts';
import type { FocusCore, JoinOptions, JoinResult, RosterEntry, RouteDecision, RoomCore, SessionWay } from './focus-core.ts';
import { InboundMessage, MAX_IN_PROGRESS } from './inbound.ts';
import { NicknameError, nicknameKey, parseUseNickname, prepareNickname } from './nickname.ts';
import { Participant, type LeaveReason, type ParticipantIdentity } from './participant.ts';
import { buildAnswer, mediaTypeMatches, msrpMedia, parseSdp, wrappedTypesOf, type MsrpMedia, type Sdp } from './sdp.ts';
import { Spool } from './spool.ts';
import type { HistoryRecord, Role, RoomRecord } from './store.ts';
import { matchesUserPattern, sameUser, userKey } from './user-uri.ts';

/** What a room has of its own (kept with it, RoomRecord.settings). */
export interface RoomSettings {
  persistent: boolean;
  /** NICKNAME is allowed (403 otherwise, C-13). */
  nicknames: boolean;
  /** Private messages are allowed (403 otherwise, C-11). */
  privateMessages: boolean;
  maxMembers?: number;
  maxMessageSize?: number;
  /** `scrypt$<salt>$<hash>` of the room password. */
  password?: string;
  /** User patterns (user-uri.ts matchesUserPattern): deny first, then, if any, allow. */
  acl?: { allow?: string[]; deny?: string[] };
  /** Overrides of the plugin's history.replay and history.maxAge. */
  history?: { replay?: number; maxAge?: number };
  /** Nicknames nobody may take in this room, besides the plugin's. */
  reservedNicknames?: string[];
}

/** What rooms.create() takes. */
export interface RoomOptions {
  subject?: string;
  /** URIs of the owners and moderators. */
  owners?: string[];
  moderators?: string[];
  /** A password joiners must give (join({ password })). */
  password?: string;
  acl?: { allow?: string[]; deny?: string[] };
  persistent?: boolean;
  nicknames?: boolean;
  privateMessages?: boolean;
  maxMembers?: number;
  maxMessageSize?: number;
  history?: { replay?: number; maxAge?: number };
  reservedNicknames?: string[];
}

/** Hooks of the chat plugin (ChatFocus.hooks), for the application. */
export interface ChatHooks {
  /**
   * Before a participant joins (after bans, ACL and password): return `{ reject: reason }` to
   * refuse (ChatError forbidden, SIP 403), `{ role }` to give a role, or undefined to pass.
   */
  readonly authorizeJoin: AsyncSeriesBailHook<[JoinRequest], JoinDecision | undefined>;
}

/** What a room needs of the focus: what its parts need (FocusCore), its hooks, and the files' sessions. */
export interface RoomFocus extends FocusCore {
  readonly hooks: ChatHooks;
  readonly files?: ChatFiles | undefined;
}

/** The join hook's question (ChatHooks.authorizeJoin). */
export interface JoinRequest {
  readonly room: Room;
  readonly identity: ParticipantIdentity;
  readonly user: string;
  readonly media: MsrpMedia;
}

/** The join hook's answer: refuse, or give a role; undefined passes. */
export type JoinDecision = { readonly reject: string } | { readonly role: Exclude<Role, 'banned'> };

export interface ChatMessageEvent {
  readonly participant: Participant;
  readonly messageId: string;
  readonly cpim: CpimMessage;
  readonly private: boolean;
  readonly recipients: readonly Participant[];
  readonly receivedAt: Date;
  /** The CPIM body, when it was small enough to keep (history.maxMessageSize). */
  readonly body: Buffer | undefined;
}

/** What join() has settled when a session enters the room (Room.enter). */
interface Entering {
  readonly o: JoinOptions;
  readonly user: string;
  readonly offer: Sdp;
  readonly media: MsrpMedia;
  readonly role: Exclude<Role, 'banned'> | undefined;
  readonly way: SessionWay;
}

const IS_COMPOSING = 'application/im-iscomposing+xml';

export function hashPassword(password: string): string {
  const salt = randomBytes(16);
  return `scrypt$${salt.toString('hex')}$${scryptSync(password, salt, 32).toString('hex')}`;
}

function checkPassword(stored: string, given: string): boolean {
  const [kind, salt, hash] = stored.split('$');
  if (kind !== 'scrypt' || salt === undefined || hash === undefined) return false;
  const want = Buffer.from(hash, 'hex');
  const got = scryptSync(given, Buffer.from(salt, 'hex'), want.length);
  return timingSafeEqual(want, got);
}

export class Room extends EventEmitter implements RoomCore {
  readonly uri: string;
  /** userKey(uri): rooms are found by it. */
  readonly key: string;
  readonly createdAt: Date;
  subject: string;
  readonly settings: RoomSettings;
  private readonly roles = new Map<string, Role>();
  private readonly mutedUsers = new Set<string>();
  private readonly members: Participant[] = [];
  private closed = false;
  private appended = 0;

  constructor(
    readonly focus: RoomFocus,
    record: RoomRecord,
  ) {
    super();
    this.uri = record.uri;
    this.key = record.key;
    this.subject = record.subject;
    this.createdAt = record.createdAt;
    const d = focus.options.rooms;
    this.settings = { persistent: d.persistent, nicknames: d.nicknames, privateMessages: d.privateMessages, ...(record.settings as Partial<RoomSettings>) };
    for (const [u, r] of Object.entries(record.roles)) this.roles.set(u, r);
    for (const u of record.muted) this.mutedUsers.add(u);
  }

  /** The sessions in the room, in the order they joined. */
  get participants(): readonly Participant[] {
    return this.members;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  get maxMessageSize(): number {
    return Math.min(this.settings.maxMessageSize ?? Infinity, this.focus.options.limits.maxMessageSize);
  }

  roleOf(user: string): Role {
    return this.roles.get(user) ?? 'member';
  }

  isMuted(user: string): boolean {
    return this.mutedUsers.has(user);
  }

  /** The record the store keeps. */
  toRecord(): RoomRecord {
    return {
      key: this.key,
      uri: this.uri,
      subject: this.subject,
      settings: { ...this.settings },
      roles: Object.fromEntries(this.roles),
      muted: [...this.mutedUsers],
      createdAt: this.createdAt,
    };
  }

  // ================================================================== joining

  /**
   * Takes a participant's SDP offer and identity, and answers with the SDP of its session on
   * the focus (C-2: accept-types message/cpim only) and the participant. Throws ChatError
   * (its sipStatus is what to answer the INVITE with).
   */
  async join(o: JoinOptions): Promise<JoinResult> {
    if (this.closed) throw new ChatError('closed', 'the room is closed');
    const user = userKey(o.identity.uri);
    if (user === undefined) throw new TypeError(`join(): identity.uri ${JSON.stringify(o.identity.uri)} is not a URI`);
    const offer = parseSdp(o.sdpOffer);
    // C-2: the chat stream is an MSRP m-line that takes CPIM and is no file transfer.
    const media = msrpMedia(offer).find((m) => m.port !== 0 && m.fileSelector === undefined && m.acceptTypes.includes('message/cpim'));
    // RFC 5547: an offer with no chat stream but a file stream pulls a kept file (a=recvonly, §8.2) or sends one to the room (a=sendonly, §8.1) (files.ts).
    const file = media === undefined && this.focus.files !== undefined ? msrpMedia(offer).find((m) => m.port !== 0 && m.fileSelector !== undefined && (m.direction === 'recvonly' || m.direction === 'sendonly')) : undefined;
    if (file !== undefined) {
      this.admit(user, o);
      // The application's hook decides on file sessions as on joins (its role is not used).
      await this.authorize({ room: this, identity: o.identity, user, media: file });
      if (this.closed) throw new ChatError('closed', 'the room is closed');
      return file.direction === 'recvonly' ? this.focus.files!.pull(this, o, offer, file, user) : this.focus.files!.push(this, o, offer, file, user);
    }
    if (media === undefined) throw new ChatError('not-acceptable', 'the offer has no MSRP chat stream that takes message/cpim (C-2)');
    this.admit(user, o);
    const role = await this.authorize({ room: this, identity: o.identity, user, media });
    if (this.closed) throw new ChatError('closed', 'the room is closed');

    const way = this.focus.openSession(media);
    try {
      return await this.enter({ o, user, offer, media, role, way });
    } catch (e) {
      this.focus.abandon(way);
      throw e;
    }
  }

  /** join() once the offer is taken: the session, its nickname, welcome and history, the answer. */
  private async enter(j: Entering): Promise<JoinResult> {
    const { o, user, offer, media, role, way } = j;
    const chatroom = media.chatroom;
    const p = new Participant(this, {
      sessionId: way.sessionId,
      uri: way.uri,
      identity: o.identity,
      user,
      path: media.path,
      caps: {
        chatAware: chatroom !== undefined,
        nicknames: chatroom?.includes('nickname') ?? false,
        // C-15: the capability is declared in SDP, not negotiated.
        privateMessages: chatroom?.includes('private-messages') ?? false,
        wrappedTypes: wrappedTypesOf(media),
        maxSize: media.maxSize,
      },
    });
    if (o.nickname !== undefined) {
      const answer = await this.sharedNicknameAnswer(p, o.nickname);
      if (answer.status !== 200) throw new ChatError('nickname', `nickname ${JSON.stringify(o.nickname)}: ${answer.comment}`);
    }
    const w = this.focus.options.welcome;
    const welcome = w === 'all' || (w === 'non-chat-aware' && !p.caps.chatAware);
    // Across nodes the welcome names everyone: the shared roster is read now (cluster-roster.ts).
    const [history] = await Promise.all([this.historyFor(p), welcome ? this.focus.cluster?.freshRemoteSessions(this) : undefined]);
    try {
      if (this.closed) throw new ChatError('closed', 'the room is closed');
      // Checked again: others may have joined while the history was read.
      this.admit(user, o);
      // C-13: unique in the room; another joiner or a NICKNAME may have taken it meanwhile.
      if (p.nicknameKey !== undefined && this.members.some((m) => m.user !== user && m.nicknameKey === p.nicknameKey)) {
        throw new ChatError('nickname', `nickname ${JSON.stringify(o.nickname)}: Nickname reserved or already in use`);
      }
    } catch (e) {
      // A nickname claimed across nodes for a joiner that does not come in is let go.
      if (p.nicknameKey !== undefined) this.focus.cluster?.releaseNickname(this, p.user, p.nicknameKey);
      throw e;
    }
    if (role !== undefined && this.roleOf(user) === 'member') {
      // The hook's role is the room's, as one given by /role: kept, and shared across nodes (cluster-state.ts).
      this.roles.set(user, role);
      this.changed('role', o.identity.uri, role, undefined);
    }

    const sdpAnswer = buildAnswer({
      offer,
      accept: media.index,
      path: [way.uri],
      address: way.host,
      port: way.port,
      acceptTypes: ['message/cpim'],
      acceptWrappedTypes: this.focus.options.acceptWrappedTypes,
      maxSize: this.maxMessageSize,
      chatroom: this.chatroomTokens(),
      sessionName: this.subject !== '' ? this.subject : 'chat',
    });
    this.members.push(p);
    this.focus.register(p);
    this.focus.cluster?.rosterChanged(this);
    this.focus.connect(p, way);
    // The welcome and the history go first; then what is said from now on (C-17).
    if (welcome) this.status(p, this.welcomeText(p), 'private');
    for (const h of history) this.replay(p, h);
    p.release();
    // A user already here on another node is not announced again (cluster-roster.ts).
    if (!presentElsewhere(this, p.user)) this.announce(`${p.name} joined`, p);
    this.emit('joined', p);
    this.emit('roster');
    return { sdpAnswer, participant: p };
  }

  /** C-15: what the answer's a=chatroom says the room supports. */
  private chatroomTokens(): string[] {
    const t: string[] = [];
    if (this.settings.nicknames) t.push('nickname');
    if (this.settings.privateMessages) t.push('private-messages');
    return t;
  }

  /** Bans, ACL, password, room and user limits: throws ChatError. */
  private admit(user: string, o: JoinOptions): void {
    if (this.roleOf(user) === 'banned') throw new ChatError('forbidden', 'banned from the room');
    const acl = this.settings.acl;
    if (acl?.deny?.some((p) => matchesUserPattern(p, user)) === true) throw new ChatError('forbidden', 'not allowed in the room');
    if (acl?.allow !== undefined && acl.allow.length > 0 && !acl.allow.some((p) => matchesUserPattern(p, user))) throw new ChatError('forbidden', 'not allowed in the room');
    if (this.settings.password !== undefined && (o.password === undefined || !checkPassword(this.settings.password, o.password))) {
      throw new ChatError('forbidden', 'a wrong room password');
    }
    const max = Math.min(this.settings.maxMembers ?? Infinity, this.focus.options.limits.maxMembers);
    if (this.members.length >= max) throw new ChatError('full', 'the room is full');
    if (this.members.filter((m) => m.user === user).length >= this.focus.options.limits.maxSessionsPerUser) {
      throw new ChatError('full', 'too many sessions of this user in the room');
    }
  }

  private async authorize(q: JoinRequest): Promise<Exclude<Role, 'banned'> | undefined> {
    const hook = this.focus.hooks.authorizeJoin;
    if (hook.taps.length === 0) return undefined;
    const d = await hook.promise(q);
    if (d === undefined || d === null) return undefined;
    if ('reject' in d) throw new ChatError('forbidden', d.reject);
    return d.role;
  }

  /** Leaves the room: its copies end with `#`, its messages are aborted. */
  leave(p: Participant, reason: LeaveReason = 'left'): void {
    if (p.fileSession !== undefined) {
      // An RFC 5547 file session (files.ts) is no member: it just ends.
      if (p.left === undefined) p.close(reason);
      this.focus.unregister(p);
      return;
    }
    const i = this.members.indexOf(p);
    if (i === -1 || p.left !== undefined) return;
    p.close(reason);
    this.members.splice(i, 1);
    this.focus.unregister(p);
    if (this.focus.cluster !== undefined) {
      if (p.nicknameKey !== undefined) this.focus.cluster.releaseNickname(this, p.user, p.nicknameKey);
      this.focus.cluster.rosterChanged(this);
    }
    // A user still here on another node has not left the room (cluster-roster.ts).
    if (!presentElsewhere(this, p.user)) this.announce(`${p.name} left${reason === 'left' || reason === 'disconnected' ? '' : ` (${reason})`}`, p);
    this.emit('left', p, reason);
    this.emit('roster');
    // A room nobody keeps goes with its last participant (unless it is being closed anyway).
    if (this.members.length === 0 && !this.settings.persistent && !this.closed) void this.focus.deleteRoom(this);
  }

  /** Everyone leaves with `reason`; the room takes nobody any more. */
  close(reason: LeaveReason = 'closed'): void {
    if (this.closed) return;
    this.closed = true;
    for (const p of [...this.members]) this.leave(p, reason);
  }

  // ================================================================== the roster

  roster(): RosterEntry[] {
    const byUser = new Map<string, Participant[]>();
    for (const p of this.members) {
      const list = byUser.get(p.user);
      if (list === undefined) byUser.set(p.user, [p]);
      else list.push(p);
    }
    return [...byUser.entries()].map(([user, sessions]) => ({
      uri: sessions[0]!.identity.uri,
      user,
      displayName: sessions[0]!.identity.displayName,
      nickname: sessions.find((s) => s.nickname !== undefined)?.nickname,
      role: this.roleOf(user),
      muted: this.isMuted(user),
      sessions,
    }));
  }

  /** The roster as RFC 4575 conference-info XML, for the application's NOTIFYs. */
  conferenceInfo(o: { version: number; state?: 'full' | 'partial' } = { version: 1 }): string {
    const users: ConferenceUser[] = this.roster().map((u) => ({
      entity: u.uri,
      displayText: u.nickname ?? u.displayName,
      roles: [u.role === 'member' ? 'participant' : u.role],
      endpoints: u.sessions.map((s) => ({
        entity: `urn:uuid:${s.id}`,
        status: 'connected',
        joiningMethod: 'dialed-in',
        joinedAt: s.joinedAt,
        media: [{ id: '1', type: 'message', status: 'sendrecv' }],
      })),
    }));
    return buildConferenceInfo({
      entity: this.uri,
      version: o.version,
      state: o.state ?? 'full',
      description: { subject: this.subject, confUris: [{ uri: this.uri, purpose: 'participation' }], maximumUserCount: Math.min(this.settings.maxMembers ?? Infinity, this.focus.options.limits.maxMembers) },
      conferenceState: { userCount: this.members.length, active: !this.closed, locked: this.settings.password !== undefined },
      users,
    });
  }

  // ================================================================== receiving

  /** A request to one of this room's participants' focus URIs (claimRequest). */
  receive(p: Participant, req: MsrpRequestHead): LocalReceiver | LocalResponse {
    // A pull session only receives its file (RFC 5547 §8.2: the focus's side is sendonly); a push sends one (files.ts).
    if (p.fileSession === 'pull' && req.method !== 'REPORT' && (req.method !== 'SEND' || req.hasBody)) return { status: 403, comment: 'Action-not-allowed' };
    if (p.fileSession === 'push') return this.focus.files!.receivePush(this, p, req);
    switch (req.method) {
      case 'SEND':
        return this.receiveSend(p, req);
      case 'REPORT':
        // C-12: reports about the copies stay here; the senders never see them.
        return { onEnd: () => undefined };
      case 'NICKNAME':
        return { onEnd: () => this.nickname(p, req) };
      default:
        return { status: 501, comment: 'Request-method-not-understood' };
    }
  }

  private receiveSend(p: Participant, req: MsrpRequestHead): LocalReceiver | LocalResponse {
    // A bodiless SEND (a session's first, RFC 4975 §5.4, or a keep-alive): nothing to pass on.
    if (!req.hasBody) return { onEnd: () => ({ status: 200 }) };
    const id = req.messageId!;
    const refused = p.refused(id);
    if (refused !== undefined) return refused;
    const ongoing = p.inbound.get(id);
    if (ongoing !== undefined) return ongoing.chunk(req);
    // C-3: Message/CPIM only.
    if (req.contentType === undefined || req.contentType.split(';')[0]!.trim().toLowerCase() !== 'message/cpim') {
      return { status: 415, comment: 'MIME-not-understood' };
    }
    const total = req.byteRange?.total ?? -1;
    if (total > this.maxMessageSize) {
      p.refuse(id, { status: 413, comment: 'Stop-sending-message' });
      return { status: 413, comment: 'Stop-sending-message' };
    }
    if ((req.byteRange?.start ?? 1) !== 1) {
      // A continuation of a message the focus has no state for (aborted, timed out, or a chunk
      // that came before the first): stop it, and every chunk of it after this one (R-72).
      p.refuse(id, { status: 413, comment: 'Stop-sending-message' });
      return { status: 413, comment: 'Stop-sending-message' };
    }
    if (p.inbound.size >= MAX_IN_PROGRESS) return { status: 403, comment: 'Too many messages in progress' };
    if (!p.takeRateToken()) return { status: 403, comment: 'Too many messages' };
    return new InboundMessage(this, p, req).chunk(req);
  }

  /** Who gets a message whose CPIM headers are in, or why it is refused. */
  decide(p: Participant, m: CpimMessage, command = false): RouteDecision {
    const reject = (status: number, comment: string): RouteDecision => ({ kind: 'reject', status, comment });
    // C-4: the From must be the sender's.
    const ids = [p.identity.uri, ...(p.identity.aliases ?? [])];
    if (!ids.some((u) => sameUser(u, m.from.uri))) return reject(403, 'From is not the sender');
    // Headers of the focus's namespace would pass for the focus's own (history, nickname).
    if (headersInNamespace(m, this.focus.options.namespace.uri).length > 0) return reject(403, 'Headers of the focus namespace');
    // C-5: one To.
    if (m.to.length > 1) return reject(403, 'More than one To');
    const to = m.to[0]!;
    const composing = m.mediaType === IS_COMPOSING;
    const takes = (r: Participant) => r.left === undefined && mediaTypeMatches(r.caps.wrappedTypes, m.mediaType);
    if (sameUser(to.uri, this.uri)) {
      if (this.isMuted(p.user) || this.roleOf(p.user) === 'banned') {
        // A muted user's typing notices go nowhere; its messages are refused.
        if (composing) return { kind: 'deliver', private: false, recipients: [], store: false, nowhere: true };
        // Its commands are the focus's business, not the room's: /help, /who, /files still answer.
        if (command && this.isMuted(p.user)) return { kind: 'deliver', private: false, recipients: [], store: false, nowhere: true, commandOnly: true };
        return reject(403, 'Muted');
      }
      // C-6, C-10: everyone but the sending session, its user's other sessions included; C-7.
      return { kind: 'deliver', private: false, recipients: this.members.filter((r) => r !== p && takes(r)), store: !composing };
    }
    // C-11: a private message.
    if (!this.settings.privateMessages) return reject(403, 'No private messages in this room');
    const target = userKey(to.uri);
    const sessions = this.members.filter((r) => r.user === target);
    // With the cluster option, the recipient may be on another node (its shared roster).
    const elsewhere = this.focus.cluster?.remoteSessions(this).filter((r) => r.user === target) ?? [];
    if (sessions.length === 0 && elsewhere.length === 0) return reject(404, 'Failure to resolve recipient URI');
    const capable = sessions.filter((r) => r.caps.privateMessages);
    if (capable.length === 0 && !elsewhere.some((r) => r.privateMessages)) return reject(428, 'Private messages not supported');
    // The sender's other sessions get it too, so every device of the user shows the conversation (C-10).
    const own = this.members.filter((r) => r.user === p.user && r !== p && r.caps.privateMessages && r.user !== target);
    return { kind: 'deliver', private: true, recipients: [...capable, ...own].filter((r) => r !== p && takes(r)), store: false, ...(target !== undefined ? { to: target } : {}) };
  }

  /** The header lines the focus inserts into a copy (C-6): its timestamp, the sender's nickname, a history mark. */
  focusLines(p: { nickname: string | undefined }, m: CpimMessage, at: Date, history: boolean): string {
    const ns = this.focus.options.namespace;
    const fields: Array<[string, string]> = [['Timestamp', at.toISOString()]];
    if (p.nickname !== undefined) fields.push(['Nickname', quoteCpimString(p.nickname)]);
    if (history) fields.push(['History', 'yes']);
    return focusHeaderLines(focusPrefix(m, ns), ns.uri, fields, m.lineEnding);
  }

  /** RFC 4975 §7.1.2: Success-Report yes gets a 200 REPORT from the focus, its endpoint (C-1). */
  reportSuccess(p: Participant, messageId: string, bytes: number, m: CpimMessage, isPrivate: boolean): void {
    const route = p.route;
    if (route === undefined || p.left !== undefined) return;
    const headers: Array<[string, string]> = [
      ['Message-ID', messageId],
      ['Byte-Range', `1-${bytes}/${bytes}`],
      ['Status', formatStatusHeader(200)],
    ];
    try {
      // C-11: a REPORT about a private message carries a Message/CPIM wrapper with its From and To.
      const wrapper = isPrivate ? buildCpim({ from: m.from, to: [...m.to], dateTime: new Date(), contentType: 'text/plain', content: '' }) : undefined;
      this.focus.relay.originate(route.target, {
        method: 'REPORT',
        toPath: route.toPath,
        fromPath: route.fromPath,
        headers,
        ...(wrapper !== undefined ? { contentType: 'message/cpim', body: wrapper } : {}),
      });
    } catch {
      // The route's connection is gone: the participant is leaving.
    }
  }

  /** Keeps a regular message for the history. */
  remember(p: Participant, messageId: string, m: CpimMessage, receivedAt: Date, body: Buffer): void {
    const rec: HistoryRecord = { room: this.key, messageId, sender: p.identity.uri, nickname: p.nickname, receivedAt, contentType: m.mediaType, body };
    const keep = this.focus.options.history.keep;
    const n = ++this.appended;
    this.focus.queue(this, async (store) => {
      await store.appendMessage(rec);
      if (n % 100 === 0) await store.prune(this.key, keep);
    });
  }

  private async historyFor(p: Participant): Promise<HistoryRecord[]> {
    const h = { ...this.focus.options.history, ...this.settings.history };
    if (h.replay <= 0) return [];
    const since = h.maxAge > 0 ? new Date(Date.now() - h.maxAge * 1000) : undefined;
    // Across nodes, the room's stream holds every node's recent messages.
    const shared = await this.focus.cluster?.history(this, h.replay, since);
    if (shared !== undefined) {
      p.streamSeen = shared.upTo;
      return shared.records;
    }
    try {
      return await this.focus.store.history(this.key, { limit: h.replay, ...(since !== undefined ? { since } : {}) });
    } catch (e) {
      this.focus.log.warn('chat: the history could not be read', { room: this.uri, error: (e as Error).message });
      return [];
    }
  }

  /** A history message to one joiner, as it was sent with the focus's lines and `History: yes`. */
  private replay(p: Participant, h: HistoryRecord): void {
    let m: CpimMessage;
    try {
      const s = scanCpim(h.body, true);
      if (typeof s === 'symbol') return;
      m = s;
    } catch {
      return;
    }
    if (!mediaTypeMatches(p.caps.wrappedTypes, m.mediaType)) return;
    const body = insertHeaderLines(h.body, m, this.focusLines({ nickname: h.nickname }, m, h.receivedAt, true));
    this.deliverWhole(p, body, 'history');
  }

  /**
   * A message another node accepted (cluster.ts), to this node's sessions: regular ones to all
   * that take its type (C-6, C-7), private ones to the recipient's sessions that take private
   * messages and the sender's own other sessions (C-10, C-11).
   */
  deliverRemote(m: ClusterMessage): void {
    if (this.closed) return;
    const recipients = this.remoteRecipients(m);
    this.emit('remote-message', m, recipients);
    if (recipients.length === 0) return;
    let cpim: CpimMessage;
    try {
      const s = scanCpim(m.body, true);
      if (typeof s === 'symbol') return;
      cpim = s;
    } catch {
      return;
    }
    // C-6: the sender's bytes with this focus's lines (its Timestamp is the sender's node's).
    const body = insertHeaderLines(m.body, cpim, this.focusLines({ nickname: m.nickname }, cpim, m.receivedAt, false));
    for (const r of recipients) this.deliverWhole(r, body, m.kind);
  }

  /** Who of this node's sessions gets a message of another node (C-7, C-10, C-11). */
  remoteRecipients(m: Pick<ClusterMessage, 'id' | 'kind' | 'mediaType' | 'to' | 'from'>): Participant[] {
    // A joiner whose history replay had this entry already does not get it twice.
    const takes = (r: Participant) => r.left === undefined && mediaTypeMatches(r.caps.wrappedTypes, m.mediaType) && (r.streamSeen === undefined || streamIdAfter(m.id, r.streamSeen));
    return m.kind === 'regular'
      ? this.members.filter(takes)
      : this.members.filter((r) => (r.user === m.to || (r.user === m.from && r.user !== m.to)) && r.caps.privateMessages && takes(r));
  }

  /** Sends a whole body to one session. */
  deliverWhole(p: Participant, body: Buffer, kind: DeliveryKind): void {
    const spool = new Spool(this.focus.options.spool);
    const d = new Delivery(p, spool, kind, body.length);
    spool.append(body);
    spool.end('$');
    p.deliver(d);
  }

  /** A status message of the focus (From the room) to one session. */
  status(p: Participant, text: string, kind: DeliveryKind = 'status'): void {
    const ns = this.focus.options.namespace;
    const body = buildCpim({
      from: { displayName: this.subject, uri: this.uri },
      to: [{ displayName: '', uri: p.identity.uri }],
      dateTime: new Date(),
      extra: focusHeaderLines(ns.prefix, ns.uri, [['Type', 'status']]).split('\r\n').filter((l) => l !== ''),
      contentType: 'text/plain; charset=utf-8',
      content: text,
    });
    this.deliverWhole(p, body, kind);
  }

  /** Tells the room something as the focus: to every session, or to the sessions of one user. */
  send(text: string, o: { to?: string } = {}): void {
    const target = o.to !== undefined ? userKey(o.to) : undefined;
    for (const p of this.members) if (target === undefined || p.user === target) this.status(p, text, target === undefined ? 'status' : 'private');
  }

  /** C-17: joins, leaves and nickname changes told to those with no other roster (about: the session it is about, not told). */
  announce(text: string, about?: Participant): void {
    if (!this.focus.options.announce) return;
    for (const p of this.members) if (p !== about && !p.caps.chatAware) this.status(p, text);
  }

  private welcomeText(p: Participant): string {
    // Every node's users (cluster-roster.ts), the joiner's own other sessions not counted.
    const names = roomUsers(this).filter((u) => u.user !== p.user).map((u) => u.name);
    const where = this.subject !== '' ? `${this.subject} (${this.uri})` : this.uri;
    return `Welcome to ${where}.\n${names.length === 0 ? 'Nobody else is here.' : `Here: ${names.join(', ')}.`}\nType /help for commands${this.focus.files !== undefined ? ', /files for the files kept here' : ''}.`;
  }

  // ================================================================== NICKNAME (C-13, C-14)

  private nickname(p: Participant, req: MsrpRequestHead): LocalResponse | Promise<LocalResponse> {
    // RFC 7701 §7.1: a NICKNAME carries no report headers (C-13).
    if (req.headers.some(([n]) => /^(success|failure)-report$/i.test(n))) return { status: 400, comment: 'Unintelligible' };
    // C-17: a change is told to the room (announcements, roster NOTIFYs): it counts in the session's rate.
    if (!p.takeRateToken()) return { status: 403, comment: 'Too many messages' };
    const values = getHeaders(req.headers, 'Use-Nickname');
    if (values.length !== 1) return { status: 424, comment: 'Malformed nickname' };
    let wanted: string;
    try {
      wanted = parseUseNickname(values[0]!);
    } catch {
      return { status: 424, comment: 'Malformed nickname' };
    }
    return this.sharedNicknameAnswer(p, wanted);
  }

  /** nicknameAnswer, the nickname claimed across nodes first when the cluster option is on (425 when another user holds it). */
  async sharedNicknameAnswer(p: Participant, wanted: string): Promise<{ status: number; comment: string }> {
    const cluster = this.focus.cluster;
    if (cluster === undefined || wanted === '' || !this.settings.nicknames) return this.nicknameAnswer(p, wanted, cluster);
    let key: string;
    try {
      key = prepareNickname(wanted).key;
    } catch (e) {
      if (e instanceof NicknameError) return { status: 424, comment: 'Malformed nickname' };
      throw e;
    }
    if (key !== p.nicknameKey && !(await cluster.claimNickname(this, p.user, key))) return { status: 425, comment: 'Nickname reserved or already in use' };
    const answer = this.nicknameAnswer(p, wanted, cluster);
    if (answer.status !== 200) cluster.releaseNickname(this, p.user, key);
    return answer;
  }

  /** Sets (or with '' removes) a nickname: 200, 403, 424 or 425; a failed change keeps the old one (C-14). */
  nicknameAnswer(p: Participant, wanted: string, cluster = this.focus.cluster): { status: number; comment: string } {
    if (!this.settings.nicknames) return { status: 403, comment: 'Action-not-allowed' };
    const old = p.nickname;
    const oldKey = p.nicknameKey;
    const released = (): void => {
      if (oldKey !== undefined && oldKey !== p.nicknameKey) cluster?.releaseNickname(this, p.user, oldKey);
    };
    if (wanted === '') {
      p.nickname = p.nicknameKey = undefined;
      released();
      if (old !== undefined) this.nicknameChanged(p, old);
      return { status: 200, comment: 'OK' };
    }
    let prepared: { nickname: string; key: string };
    try {
      prepared = prepareNickname(wanted);
    } catch (e) {
      if (e instanceof NicknameError) return { status: 424, comment: 'Malformed nickname' };
      throw e;
    }
    const reserved = [...this.focus.options.reservedNicknames, ...(this.settings.reservedNicknames ?? [])];
    if (reserved.some((r) => nicknameKey(r.normalize('NFKC')) === prepared.key)) return { status: 425, comment: 'Nickname reserved or already in use' };
    // C-14: the same user may hold it on several sessions; nobody else may.
    if (this.members.some((m) => m.user !== p.user && m.nicknameKey === prepared.key)) return { status: 425, comment: 'Nickname reserved or already in use' };
    p.nickname = prepared.nickname;
    p.nicknameKey = prepared.key;
    released();
    if (old !== prepared.nickname && p.left === undefined && this.members.includes(p)) this.nicknameChanged(p, old);
    return { status: 200, comment: 'OK' };
  }

  private nicknameChanged(p: Participant, old: string | undefined): void {
    this.announce(old === undefined ? `${p.identity.uri} is now ${p.name}` : `${old} is now ${p.name}`, p);
    this.focus.cluster?.rosterChanged(this);
    this.emit('nickname', p, old, p.nickname);
    this.emit('roster');
  }

  // ================================================================== moderation

  /** The user a command or an API call names: a nickname in the room, or a URI. */
  resolveUser(who: string): { user: string; uri: string } | undefined {
    const trimmed = who.trim();
    if (trimmed === '') return undefined;
    try {
      const key = prepareNickname(trimmed).key;
      const byNick = this.members.find((m) => m.nicknameKey === key);
      if (byNick !== undefined) return { user: byNick.user, uri: byNick.identity.uri };
      // With the cluster option, a nickname held on another node names its user too.
      const remote = this.focus.cluster?.remoteSessions(this).find((s) => s.nicknameKey === key);
      if (remote !== undefined) return { user: remote.user, uri: remote.uri };
    } catch {
      // not a nickname
    }
    const asUri = trimmed.includes(':') ? trimmed : `sip:${trimmed}`;
    const user = userKey(asUri);
    if (user === undefined || !/^[^@]+@[^@]+$/.test(user)) return undefined;
    const present = this.members.find((m) => m.user === user);
    return { user, uri: present?.identity.uri ?? asUri };
  }

  private mayModerate(by: Participant | undefined): boolean {
    if (by === undefined) return true;
    const r = this.roleOf(by.user);
    return r === 'owner' || r === 'moderator';
  }

  private guard(by: Participant | undefined): void {
    if (!this.mayModerate(by)) throw new ChatError('forbidden', 'only moderators may do that');
  }

  /** Owners are moderated by owners only (or the application): a moderator's kick, ban or mute of one is refused. */
  private guardOwner(user: string, by: Participant | undefined, what: 'kick' | 'ban' | 'mute'): void {
    if (by !== undefined && this.roleOf(user) === 'owner' && this.roleOf(by.user) !== 'owner') throw new ChatError('forbidden', `only owners may ${what} owners`);
  }

  /** Removes every session of the user (`left` with reason kicked). Returns how many. */
  kick(who: string | Participant, o: { by?: Participant; reason?: string } = {}): number {
    this.guard(o.by);
    const u = typeof who === 'string' ? this.resolveUser(who) : { user: who.user, uri: who.identity.uri };
    if (u === undefined) return 0;
    this.guardOwner(u.user, o.by, 'kick');
    const sessions = this.members.filter((m) => m.user === u.user);
    for (const s of sessions) this.leave(s, 'kicked');
    // With the cluster option the other nodes remove theirs (cluster-state.ts), counted here too.
    const elsewhere = this.focus.cluster?.remoteSessions(this).filter((s) => s.user === u.user).length ?? 0;
    this.emit('kick', u.uri, o.by);
    return sessions.length + elsewhere;
  }

  ban(who: string, o: { by?: Participant; reason?: string } = {}): string {
    this.guard(o.by);
    const u = this.resolveUser(who);
    if (u === undefined) throw new ChatError('forbidden', `no such user: ${who}`);
    this.guardOwner(u.user, o.by, 'ban');
    this.roles.set(u.user, 'banned');
    for (const s of this.members.filter((m) => m.user === u.user)) this.leave(s, 'banned');
    this.changed('role', u.uri, 'banned', o.by);
    return u.uri;
  }

  unban(who: string, o: { by?: Participant } = {}): boolean {
    this.guard(o.by);
    const u = this.resolveUser(who);
    if (u === undefined || this.roles.get(u.user) !== 'banned') return false;
    this.roles.delete(u.user);
    this.changed('role', u.uri, 'member', o.by);
    return true;
  }

  mute(who: string, o: { by?: Participant } = {}): string {
    this.guard(o.by);
    const u = this.resolveUser(who);
    if (u === undefined) throw new ChatError('forbidden', `no such user: ${who}`);
    this.guardOwner(u.user, o.by, 'mute');
    this.mutedUsers.add(u.user);
    this.focus.persist(this);
    this.emit('mute', u.uri, true, o.by);
    this.emit('roster');
    return u.uri;
  }

  unmute(who: string, o: { by?: Participant } = {}): boolean {
    this.guard(o.by);
    const u = this.resolveUser(who);
    if (u === undefined || !this.mutedUsers.delete(u.user)) return false;
    this.focus.persist(this);
    this.emit('mute', u.uri, false, o.by);
    this.emit('roster');
    return true;
  }

  setSubject(subject: string, o: { by?: Participant } = {}): void {
    this.guard(o.by);
    this.subject = subject;
    this.focus.persist(this);
    for (const p of this.members) if (!p.caps.chatAware) this.status(p, `The subject is now: ${subject}`);
    this.emit('subject', subject, o.by);
    this.emit('roster');
  }

  setRole(who: string, role: Exclude<Role, 'banned'>, o: { by?: Participant } = {}): string {
    this.guard(o.by);
    if (o.by !== undefined && role === 'owner' && this.roleOf(o.by.user) !== 'owner') throw new ChatError('forbidden', 'only owners make owners');
    const u = this.resolveUser(who);
    if (u === undefined) throw new ChatError('forbidden', `no such user: ${who}`);
    // An owner's role is changed by owners only: else a moderator would demote and then ban owners.
    if (o.by !== undefined && this.roleOf(u.user) === 'owner' && this.roleOf(o.by.user) !== 'owner') throw new ChatError('forbidden', "only owners change an owner's role");
    if (role === 'member') this.roles.delete(u.user);
    else this.roles.set(u.user, role);
    this.changed('role', u.uri, role, o.by);
    return u.uri;
  }

  private changed(event: 'role', uri: string, role: Role, by: Participant | undefined): void {
    this.focus.persist(this);
    this.emit(event, uri, role, by);
    this.emit('roster');
  }

  /** A `/command` from a participant: true when it was one (answered privately), false for a message. */
  runCommand(p: Participant, text: string): boolean {
    const c = parseCommand(text);
    if (c === undefined) return false;
    const reply = (t: string) => this.status(p, t, 'private');
    const target = c.args[0];
    try {
      switch (c.name) {
        case 'help':
          reply(HELP_TEXT);
          break;
        case 'who':
          // Every node's users (cluster-roster.ts).
          reply(roomUsers(this).map((u) => `${u.name} <${u.uri}>${u.role !== 'member' ? ` (${u.role})` : ''}${u.muted ? ' (muted)' : ''}`).join('\n'));
          break;
        case 'subject':
          if (target === undefined) reply(`The subject is: ${this.subject}`);
          else {
            this.setSubject(target, { by: p });
            reply('Subject set.');
          }
          break;
        case 'kick': {
          if (target === undefined) return usage('/kick <nickname or URI> [reason]');
          const n = this.kick(target, { by: p, ...(c.args[1] !== undefined ? { reason: c.args[1] } : {}) });
          reply(n === 0 ? `${target} is not here.` : `${target} was kicked.`);
          break;
        }
        case 'ban':
          if (target === undefined) return usage('/ban <nickname or URI> [reason]');
          reply(`${this.ban(target, { by: p })} is banned.`);
          break;
        case 'unban':
          if (target === undefined) return usage('/unban <URI>');
          reply(this.unban(target, { by: p }) ? `${target} may come back.` : `${target} was not banned.`);
          break;
        case 'mute':
          if (target === undefined) return usage('/mute <nickname or URI>');
          reply(`${this.mute(target, { by: p })} is muted.`);
          break;
        case 'unmute':
          if (target === undefined) return usage('/unmute <nickname or URI>');
          reply(this.unmute(target, { by: p }) ? `${target} may speak.` : `${target} was not muted.`);
          break;
        case 'files':
        case 'get': {
          const files = this.focus.files;
          if (files === undefined) return (reply('Files are not kept here.'), true);
          if (c.name === 'get' && target === undefined) return usage('/get <id>');
          const answer = c.name === 'files' ? files.listText(this) : files.get(this, p, target!);
          void answer.then(
            (t) => t !== undefined && reply(t),
            (e: unknown) => {
              this.focus.log.warn('chat: the files could not be read', { room: this.uri, error: (e as Error).message });
              reply('The files cannot be read now.');
            },
          );
          break;
        }
        case 'role': {
          const role = c.args[1];
          if (target === undefined || (role !== 'owner' && role !== 'moderator' && role !== 'member')) return usage('/role <nickname or URI> owner|moderator|member');
          reply(`${this.setRole(target, role, { by: p })} is now ${role}.`);
          break;
        }
      }
    } catch (e) {
      if (!(e instanceof ChatError)) throw e;
      reply(e.code === 'forbidden' ? `Not allowed: ${e.message}.` : e.message);
    }
    return true;

    function usage(u: string): true {
      reply(`Usage: ${u}`);
      return true;
    }
  }
}

/** True when an a=path's first URI and a relay session's Use-Path URI are the same URI (RFC 4975 §6.1). */
export function sameMsrpUri(a: string, b: string): boolean {
  try {
    return uriEquals(parseUri(a), parseUri(b));
  } catch {
    return false;
  }
}

export type { Route };
