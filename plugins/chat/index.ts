/**
 * chat: an RFC 7701 multi-party chat focus ("MSRP switch") inside the relay, on the local
 * endpoint seam (claimRequest, relay.originate). Each participant's session is a local endpoint
 * of this relay with a URI of its own (C-1); the application's SIP stack hands over SDP offers
 * and identities and gets SDP answers (room.join), so any Node SIP application can embed it.
 *
 * ```ts
 * const chat = new ChatFocus({ store: { driver: 'sqlite3', filename: './chat.db' } });
 * const relay = await createRelay({ ...config, plugins: [chat] });
 * await relay.listen();
 * const room = chat.rooms.get('sip:lobby@example.com') ?? (await chat.rooms.create('sip:lobby@example.com', { subject: 'Lobby' }));
 * const { sdpAnswer, participant } = await room.join({ sdpOffer, identity: { uri: 'sip:alice@example.com' } });
 * ```
 *
 * docs/plugins/chat.md has the options, the rules (C-1 … C-18) and what each answer means.
 */

import { EventEmitter } from 'node:events';
import tapable from 'tapable';
import { MsrpError, type ConnectionContext, type LocalReceiver, type LocalRequest, type Logger, type MsrpErrorCode, type PluginHost, type RelayPlugin, type Rejection, type SessionInfo } from '../../core/index.ts';
import { tryParseUri } from '../../core/protocol/index.ts';
import { ChatCluster } from './cluster.ts';
import { SharedRooms } from './cluster-state.ts';
import { ClusterFiles } from './cluster-files.ts';
import { ChatFiles } from './files.ts';
import type { Route } from './delivery.ts';
import { ChatError } from './errors.ts';
import { RelayedRefusals } from './relayed-report.ts';
import { CHAT_SCHEMA, resolveOptions, type ChatOptions, type ChatOptionsInput } from './options.ts';
import type { Participant } from './participant.ts';
import type { SessionWay } from './focus-core.ts';
import { Room, hashPassword, sameMsrpUri, type ChatHooks, type JoinDecision, type JoinRequest, type RoomFocus, type RoomOptions, type RoomSettings } from './room.ts';
import type { MsrpMedia } from './sdp.ts';
import { createStore } from './stores/index.ts';
import type { ChatStore, Role, RoomRecord } from './store.ts';
import { userKey } from './user-uri.ts';

const { AsyncSeriesBailHook } = tapable;

export { ChatError } from './errors.ts';
export { Room } from './room.ts';
export { ChatCluster } from './cluster.ts';
export type { ClusterMessage, ClusterStats, RemoteSession } from './cluster.ts';
export { ChatFiles, isFileMessage, selectorMatches, formatSelector } from './files.ts';
export type { FileStats } from './files.ts';
export type { ClusterFiles, ClusterFileStats } from './cluster-files.ts';
export type { ChatHooks, ChatMessageEvent, JoinRequest, JoinDecision, RoomOptions, RoomSettings } from './room.ts';
export type { JoinOptions, JoinResult, RosterEntry } from './focus-core.ts';
export { Participant } from './participant.ts';
export type { ParticipantIdentity, Capabilities, LeaveReason, ParticipantStats } from './participant.ts';
export type { ChatOptions, ChatOptionsInput } from './options.ts';
export type { ChatStore, FileRecord, HistoryRecord, RoomRecord, Role } from './store.ts';
export * from './sdp.ts';
export * from './cpim.ts';
export * from './nickname.ts';
export * from './conference-info.ts';

const STATUS_CODES: Record<number, MsrpErrorCode> = {
  400: 'MSRP_ERR_BAD_REQUEST',
  403: 'MSRP_ERR_FORBIDDEN',
  404: 'MSRP_ERR_UNKNOWN_RECIPIENT',
  413: 'MSRP_ERR_MESSAGE_TOO_LARGE',
  415: 'MSRP_ERR_MEDIA_TYPE',
  501: 'MSRP_ERR_METHOD_NOT_UNDERSTOOD',
};

/** The rooms of a focus. Events: created(room), deleted(room). */
export class Rooms extends EventEmitter {
  private readonly byKey = new Map<string, Room>();

  constructor(private readonly focus: ChatFocus) {
    super();
  }

  get size(): number {
    return this.byKey.size;
  }

  /** The room of a URI (sip:, sips: and im: name the same room), as this node has it. */
  get(uri: string): Room | undefined {
    const k = userKey(uri);
    return k === undefined ? undefined : this.byKey.get(k);
  }

  list(): Room[] {
    return [...this.byKey.values()];
  }

  /**
   * The room of a URI: this node's, or, with the cluster option, the one another node created
   * (loaded from Redis, with that node's settings, and from now on this node's too); undefined
   * when there is none (or Redis is away and this node has none).
   */
  async open(uri: string): Promise<Room | undefined> {
    const here = this.get(uri);
    const shared = this.focus.shared;
    if (here !== undefined || shared === undefined) return here;
    const key = userKey(uri);
    if (key === undefined) return undefined;
    const rec = await shared.load(key);
    const meanwhile = this.byKey.get(key);
    if (meanwhile !== undefined || rec === undefined) return meanwhile;
    if (this.byKey.size >= this.focus.options.limits.maxRooms) throw new ChatError('full', 'too many rooms');
    return this.opened(rec);
  }

  /** Creates a room; ChatError room-exists when there is one, full past limits.maxRooms. */
  async create(uri: string, o: RoomOptions = {}): Promise<Room> {
    const key = userKey(uri);
    if (key === undefined || !key.includes('@')) throw new TypeError(`rooms.create(): ${JSON.stringify(uri)} is not a user URI`);
    if (this.byKey.has(key)) throw new ChatError('room-exists', `the room ${uri} exists`);
    if (this.byKey.size >= this.focus.options.limits.maxRooms) throw new ChatError('full', 'too many rooms');
    const d = this.focus.options.rooms;
    const settings: RoomSettings = {
      persistent: o.persistent ?? d.persistent,
      nicknames: o.nicknames ?? d.nicknames,
      privateMessages: o.privateMessages ?? d.privateMessages,
      ...(o.maxMembers !== undefined ? { maxMembers: o.maxMembers } : {}),
      ...(o.maxMessageSize !== undefined ? { maxMessageSize: o.maxMessageSize } : {}),
      ...(o.password !== undefined ? { password: hashPassword(o.password) } : {}),
      ...(o.acl !== undefined ? { acl: o.acl } : {}),
      ...(o.history !== undefined ? { history: o.history } : {}),
      ...(o.reservedNicknames !== undefined ? { reservedNicknames: o.reservedNicknames } : {}),
    };
    const roles: Record<string, Role> = {};
    for (const m of o.moderators ?? []) roles[userKey(m) ?? m] = 'moderator';
    for (const m of o.owners ?? []) roles[userKey(m) ?? m] = 'owner';
    const record: RoomRecord = { key, uri, subject: o.subject ?? '', settings: { ...settings }, roles, muted: [], createdAt: new Date() };
    const shared = this.focus.shared;
    if (shared !== undefined) {
      // Across nodes: a room another node created first is this one (its settings win).
      const theirs = await shared.create(record);
      const meanwhile = this.byKey.get(key);
      if (meanwhile !== undefined) return meanwhile;
      if (theirs !== undefined) return this.opened(theirs);
    }
    return this.opened(record);
  }

  private async opened(record: RoomRecord): Promise<Room> {
    const room = this.adopt(record);
    if (room.settings.persistent) {
      try {
        await this.focus.store.saveRoom(record);
      } catch (e) {
        // A room the store could not keep is not made at all (not half: here without its record).
        if (this.byKey.get(record.key) === room) this.byKey.delete(record.key);
        room.close('closed');
        throw e;
      }
    }
    this.emit('created', room);
    return room;
  }

  /** Closes the room (everyone leaves) and forgets it and its history. */
  async delete(room: Room | string): Promise<void> {
    const r = typeof room === 'string' ? this.get(room) : room;
    if (r === undefined || this.byKey.get(r.key) !== r) return;
    r.close('closed');
    this.byKey.delete(r.key);
    // Across nodes: gone from every node (unless another node's deletion is what brought it here).
    this.focus.shared?.deleted(r);
    await this.focus.storeWork(r, (s) => s.deleteRoom(r.key));
    this.emit('deleted', r);
  }

  /** @internal the room of a key. */
  atKey(key: string): Room | undefined {
    return this.byKey.get(key);
  }

  /** @internal a room as the store keeps it. */
  adopt(record: RoomRecord): Room {
    const room = new Room(this.focus, record);
    this.byKey.set(record.key, room);
    this.focus.shared?.watch(room);
    return room;
  }
}

export default class ChatFocus implements RelayPlugin, RoomFocus {
  static readonly schema = CHAT_SCHEMA;
  readonly name = 'chat';
  readonly options: ChatOptions;
  readonly hooks: ChatHooks = Object.freeze({ authorizeJoin: new AsyncSeriesBailHook<[JoinRequest], JoinDecision | undefined>(['request']) });
  readonly rooms: Rooms;
  private host: PluginHost | undefined;
  private storeImpl: ChatStore | undefined;
  private clusterImpl: ChatCluster<Room> | undefined;
  private sharedImpl: SharedRooms | undefined;
  private filesImpl: ChatFiles | undefined;
  private clusterFilesImpl: ClusterFiles | undefined;
  private readonly bySession = new Map<string, Participant>();
  private readonly byTarget = new Map<SessionInfo | ConnectionContext, Set<Participant>>();
  private readonly queues = new Map<Room, Promise<void>>();
  private readonly routeTimers = new Map<Participant, NodeJS.Timeout>();
  /** Worker links the focus opened toward participants (routeAcrossWorkers), closed when they leave. */
  private readonly links = new Map<Participant, ConnectionContext>();
  private readonly refusals = new RelayedRefusals(() => this.relay);

  constructor(options: ChatOptionsInput = {}) {
    this.options = resolveOptions(options);
    this.rooms = new Rooms(this);
  }

  get relay(): PluginHost {
    if (this.host === undefined) throw new Error('chat: the plugin is not applied to a relay yet');
    return this.host;
  }

  get store(): ChatStore {
    if (this.storeImpl === undefined) throw new Error('chat: the plugin is not applied to a relay yet');
    return this.storeImpl;
  }

  /** Rooms across nodes, when the cluster option is given. */
  get cluster(): ChatCluster | undefined {
    return this.clusterImpl;
  }

  /** @internal the rooms' state across nodes (cluster-state.ts), with the cluster option. */
  get shared(): SharedRooms | undefined {
    return this.sharedImpl;
  }

  /** Files kept in rooms, when `files.enabled`. */
  get files(): ChatFiles | undefined {
    return this.filesImpl;
  }

  /** Large messages across nodes, with the cluster option. */
  get clusterFiles(): ClusterFiles | undefined {
    return this.clusterFilesImpl;
  }

  get log(): Logger {
    return this.relay.log;
  }

  async apply(relay: PluginHost): Promise<void> {
    const first = this.host === undefined;
    this.host = relay;
    if (first) {
      const store = await createStore(this.options.store);
      await store.open();
      this.storeImpl = store;
      // Rooms survive a restart: their subject, settings, roles and bans.
      for (const rec of await store.loadRooms()) this.rooms.adopt(rec);
      if (this.options.files.enabled) {
        const files = new ChatFiles(this, this.options.files);
        await files.start();
        this.filesImpl = files;
        this.rooms.on('deleted', (r: Room) => void files.removeRoom(r.key).catch(() => undefined));
      }
      const c = this.options.cluster;
      if (c !== undefined) {
        const cluster = new ChatCluster(c, {
          log: relay.log,
          rooms: () => this.rooms.list(),
          deliver: (room, m) => room.deliverRemote(m),
          deliverLarge: (room, id, f) => this.clusterFilesImpl?.receive(room, id, f),
        });
        const shared = new SharedRooms(cluster, { log: relay.log, rooms: () => this.rooms.list(), byKey: (k) => this.rooms.atKey(k), delete: (r) => this.rooms.delete(r) });
        cluster.attach(shared);
        for (const room of this.rooms.list()) shared.watch(room);
        this.sharedImpl = shared;
        this.clusterFilesImpl = new ClusterFiles(cluster, this);
        this.clusterImpl = cluster;
        await cluster.start();
      }
    }
    // On a reload the same instance taps the new hooks; rooms and participants stay.
    relay.hooks.claimRequest.tapPromise(this.name, async (lr) => this.claim(lr));
    relay.hooks.sessionClosed.tap(this.name, (s) => this.routeGone(s));
    relay.hooks.connectionClosed.tap(this.name, (c) => this.routeGone(c));
  }

  async close(): Promise<void> {
    for (const room of this.rooms.list()) room.close('closed');
    for (const t of this.routeTimers.values()) clearTimeout(t);
    this.routeTimers.clear();
    await Promise.all([...this.queues.values()]);
    await this.filesImpl?.close();
    await this.clusterImpl?.close();
    await this.clusterFilesImpl?.close();
    await this.storeImpl?.close();
  }

  // ------------------------------------------------------------------ the seam

  private claim(lr: LocalRequest): LocalReceiver | Rejection | undefined {
    const id = lr.uri.sessionId;
    if (id === undefined) return undefined;
    const p = this.bySession.get(id);
    if (p === undefined) return undefined;
    // The first request shows the way back (a participant through another relay, or connected straight).
    if (p.route === undefined) this.bindRoute(p, { target: lr.session ?? lr.connection, toPath: lr.reply.toPath, fromPath: lr.reply.fromPath });
    const r = p.room.receive(p, lr.request);
    // Behind another relay, a refusal also goes back as a REPORT (relayed-report.ts, R-63).
    const relayed = this.options.relayedReports && RelayedRefusals.behindRelay(lr);
    if ('onEnd' in r) return relayed ? this.refusals.wrap(lr, p.sessionId, r) : r;
    if (relayed) this.refusals.report(lr, p.sessionId, r);
    return { reject: new MsrpError(STATUS_CODES[r.status] ?? 'MSRP_ERR_FORBIDDEN', r.comment ?? '', { status: r.status }) };
  }

  private routeGone(target: SessionInfo | ConnectionContext): void {
    const ps = this.byTarget.get(target);
    if (ps === undefined) return;
    this.byTarget.delete(target);
    for (const p of [...ps]) p.room.leave(p, 'disconnected');
  }

  // ------------------------------------------------------------------ RoomFocus

  openSession(media: MsrpMedia): SessionWay {
    const sessionId = this.relay.newSessionId();
    const focus = this.focusUri(sessionId, media);
    const route = this.routeFromPath(media.path, focus.uri);
    // Cluster mode: a token another worker issued is reached over a worker link of its own,
    // opened now, so that a passive offerer is reached that way too.
    const link = route === undefined ? this.linkToward(media.path) : undefined;
    // Handled here too: it may fail while a join still reads the history (connect() logs it).
    link?.catch(() => undefined);
    if (route === undefined && link === undefined && media.setup === 'passive') {
      // RFC 6135: a passive offerer waits to be dialled; the focus dials nothing but the relay's own sessions.
      throw new ChatError('not-acceptable', 'the offer wants the focus to connect to it (a=setup:passive), and its path starts with no session of this relay');
    }
    return { sessionId, ...focus, route, link };
  }

  connect(p: Participant, way: SessionWay): void {
    if (way.route !== undefined) this.bindRoute(p, way.route);
    else this.awaitRoute(p, way.link);
  }

  abandon(way: SessionWay): void {
    void way.link?.then((c) => c.close(), () => undefined);
  }

  /** The focus's URI for a new session, and the host and port its SDP answer names. */
  private focusUri(sessionId: string, media: MsrpMedia): { uri: string; host: string; port: number } {
    const ls = this.relay.listeners;
    const tls = ls.find((l) => l.transport === 'tls');
    const tcp = ls.find((l) => l.transport === 'tcp');
    const t = this.options.transport;
    const l = t === 'tls' ? (tls ?? tcp) : t === 'tcp' ? (tcp ?? tls) : media.path[0]!.startsWith('msrps:') ? (tls ?? tcp) : (tcp ?? tls);
    if (l === undefined) throw new ChatError('closed', 'the relay has no TCP or TLS listener for the focus');
    const host = this.relay.hostname;
    const uriHost = host.includes(':') ? `[${host}]` : host;
    return { uri: `${l.scheme}://${uriHost}:${l.port}/${sessionId};tcp`, host, port: l.port };
  }

  /** The route to a participant whose a=path starts with a session of this relay, else undefined. */
  private routeFromPath(path: readonly string[], focusUri: string): Route | undefined {
    if (path.length < 2) return undefined;
    const u = tryParseUri(path[0]!);
    if (u?.sessionId === undefined) return undefined;
    const s = this.relay.sessions.get(u.sessionId);
    if (s === undefined || !sameMsrpUri(s.uri, path[0]!)) return undefined;
    // As the relay would hand it to its client: To-Path without the token, From-Path token then focus.
    return { target: s, toPath: path.slice(1), fromPath: [path[0]!, focusUri] };
  }

  register(p: Participant): void {
    this.bySession.set(p.sessionId, p);
  }

  unregister(p: Participant): void {
    this.refusals.forget(p.sessionId);
    if (this.bySession.get(p.sessionId) === p) this.bySession.delete(p.sessionId);
    const t = this.routeTimers.get(p);
    if (t !== undefined) clearTimeout(t);
    this.routeTimers.delete(p);
    this.links.get(p)?.close();
    this.links.delete(p);
    if (p.route !== undefined) {
      const set = this.byTarget.get(p.route.target);
      set?.delete(p);
      if (set?.size === 0) this.byTarget.delete(p.route.target);
    }
  }

  /** Copies to the participant go this way; when the route's session or connection ends, it leaves. */
  private bindRoute(p: Participant, route: Route): void {
    if (p.route !== undefined || p.left !== undefined) return;
    const t = this.routeTimers.get(p);
    if (t !== undefined) clearTimeout(t);
    this.routeTimers.delete(p);
    let set = this.byTarget.get(route.target);
    if (set === undefined) this.byTarget.set(route.target, (set = new Set()));
    set.add(p);
    p.setRoute(route);
  }

  /**
   * Cluster mode (`--workers`): a participant whose token another worker issued is reached over
   * a worker link of its own, at once (as a token of this worker is), and one slow participant
   * holds back no other (C-16).
   */
  private linkToward(path: readonly string[]): Promise<ConnectionContext> | undefined {
    return path.length >= 2 ? this.relay.openWorkerLink(path[0]!) : undefined;
  }

  /** Drops the participant if no request of it arrives within connectTimeout; over `link` once it is open. */
  private awaitRoute(p: Participant, link: Promise<ConnectionContext> | undefined): void {
    const t = setTimeout(() => {
      this.routeTimers.delete(p);
      if (p.route === undefined && p.left === undefined) p.room.leave(p, 'no-connection');
    }, this.options.connectTimeout * 1000).unref();
    this.routeTimers.set(p, t);
    // Its first request may still come first another way: that wins.
    link?.then(
      (conn) => {
        if (p.route !== undefined || p.left !== undefined) return conn.close();
        this.links.set(p, conn);
        // As the token's worker hands it on: To-Path the whole a=path, From-Path the focus.
        this.bindRoute(p, { target: conn, toPath: p.path, fromPath: [p.uri] });
      },
      (e: unknown) => this.log.warn('chat: no worker link toward a participant', { error: (e as Error).message }),
    );
  }

  persist(room: Room): void {
    if (!room.settings.persistent || room.isClosed) return;
    const rec = room.toRecord();
    this.queue(room, (s) => s.saveRoom(rec));
  }

  queue(room: Room, op: (store: ChatStore) => Promise<void>): void {
    void this.storeWork(room, op);
  }

  /** @internal store work of a room, in order, failures logged. */
  storeWork(room: Room, op: (store: ChatStore) => Promise<void>): Promise<void> {
    const prev = this.queues.get(room) ?? Promise.resolve();
    const next = prev.then(() => op(this.store)).catch((e: unknown) => this.log.warn('chat: store failed', { room: room.uri, error: (e as Error).message }));
    this.queues.set(room, next);
    void next.then(() => {
      if (this.queues.get(room) === next) this.queues.delete(room);
    });
    return next;
  }

  async deleteRoom(room: Room): Promise<void> {
    // Across nodes a temporary room goes with its last participant on any node (cluster-state.ts).
    if (this.sharedImpl !== undefined && !(await this.sharedImpl.lastLeft(room))) return;
    await this.rooms.delete(room);
  }

  /** Participants by their session on the focus, for tests and the status of an application. */
  get participantCount(): number {
    return this.bySession.size;
  }
}

export { ChatFocus };
