/**
 * The focus and a room as the room's parts see them: what a message on its way in
 * (inbound.ts), the files kept in rooms (files.ts), large messages across nodes
 * (cluster-files.ts) and the remote roster (cluster-roster.ts) need of the plugin (index.ts,
 * FocusCore) and of a room (room.ts, RoomCore). Interfaces only, so that those parts do not
 * import the room that uses them, nor the plugin: the imports of plugins/chat run one way, from
 * index.ts down to room.ts, its parts, this file, and the session and cluster below it.
 */

import type { ConnectionContext, Logger, PluginHost } from '../../core/index.ts';
import type { ChatCluster, ClusterMessage, ClusterRoom, MessageMeta } from './cluster.ts';
import type { CpimMessage } from './cpim.ts';
import type { DeliveryKind, Route } from './delivery.ts';
import type { ChatOptions } from './options.ts';
import type { Participant, ParticipantIdentity, ParticipantRoom } from './participant.ts';
import type { MsrpMedia } from './sdp.ts';
import type { ChatStore, FileRecord, Role } from './store.ts';

export interface JoinOptions {
  /** The participant's SDP offer. */
  sdpOffer: string;
  /** Who it is, as the application authenticated it (the SIP identity). */
  identity: ParticipantIdentity;
  /** The room password, if the room has one. */
  password?: string;
  /** A nickname to start with (checked as NICKNAME would be). */
  nickname?: string;
}

export interface JoinResult {
  sdpAnswer: string;
  participant: Participant;
}

/** Who gets a message whose CPIM headers are in (room.decide), or why it is refused. */
export type RouteDecision =
  | { readonly kind: 'reject'; readonly status: number; readonly comment: string }
  | {
      readonly kind: 'deliver';
      readonly private: boolean;
      readonly recipients: readonly Participant[];
      readonly store: boolean;
      readonly to?: string;
      readonly nowhere?: true;
      /** A muted sender's text that starts with `/`: run as a command, or else refused 403. */
      readonly commandOnly?: true;
    };

/** One user of the roster with its sessions (C-10). */
export interface RosterEntry {
  readonly uri: string;
  readonly user: string;
  readonly displayName: string | undefined;
  readonly nickname: string | undefined;
  readonly role: Role;
  readonly muted: boolean;
  readonly sessions: readonly Participant[];
}

/** What the sender and its message are, for a kept file's record. */
export interface FileOrigin {
  readonly messageId: string;
  readonly sender: string;
  readonly nickname: string | undefined;
  readonly receivedAt: Date;
}

/** A message being kept as a file (files.ts FileSink), fed the sender's CPIM bytes as they arrive. */
export interface FileKeeper {
  /** False when its disk writes lag: the sender waits for onDrain. */
  write(data: Buffer): boolean;
  onDrain(fn: () => void): void;
  /** The message ended whole: the file is recorded (undefined when it was refused). */
  finish(): Promise<FileRecord | undefined>;
  /** The message was aborted: the part written goes. */
  discard(): void;
}

/** Files kept in rooms (files.ts ChatFiles), as a message on its way in uses them. */
export interface FileKeeping {
  /** A keeper for a message whose CPIM headers are in, when it is a file this room keeps. */
  begin(room: RoomCore, m: CpimMessage, total: number, origin: FileOrigin): FileKeeper | undefined;
}

/** A message crossing to other nodes in pieces (cluster-files.ts CrossUpload). */
export interface Crossing {
  write(data: Buffer): boolean;
  onDrain(fn: () => void): void;
  end(flag: '$' | '#'): void;
}

/** Large messages across nodes (cluster-files.ts ClusterFiles), as a message on its way in uses them. */
export interface Crossings {
  /** Starts the crossing with the bytes so far; undefined when the message stays on this node. */
  begin(room: RoomCore, meta: MessageMeta, first: readonly Buffer[], total: number): Crossing | undefined;
}

/** A new session of the focus (FocusCore.openSession): where it answers, and how it reaches its participant. */
export interface SessionWay {
  readonly sessionId: string;
  /** The focus's URI of the session, and the host and port its SDP answer names. */
  readonly uri: string;
  readonly host: string;
  readonly port: number;
  /** The participant's a=path starts with a session of this relay: its copies go this way at once. */
  readonly route: Route | undefined;
  /** Cluster mode (`--workers`): a worker link of its own toward a token another worker issued, opening. */
  readonly link: Promise<ConnectionContext> | undefined;
}

/** What a room and its parts need of the focus (the plugin, index.ts). */
export interface FocusCore {
  readonly relay: PluginHost;
  readonly options: ChatOptions;
  readonly store: ChatStore;
  readonly log: Logger;
  /** Rooms across nodes (the cluster option), when configured. */
  readonly cluster: ChatCluster | undefined;
  /** Files kept in rooms (the files option), when enabled. */
  readonly files?: FileKeeping | undefined;
  /** Large messages across nodes (cluster-files.ts), with the cluster option. */
  readonly clusterFiles?: Crossings | undefined;
  /**
   * A session of the focus for an offer's MSRP stream: its URI, and the way to the participant
   * that the offer's a=path gives. Throws ChatError not-acceptable (488) for a passive offerer
   * (RFC 6135) that no session of this relay leads to: the focus dials nothing.
   */
  openSession(media: MsrpMedia): SessionWay;
  /** Requests to the participant's URI reach its room from now on. */
  register(p: Participant): void;
  unregister(p: Participant): void;
  /**
   * Copies to the participant go the session's way: at once when its path starts with a session
   * of this relay, else over its worker link once open, or back the way its first request came;
   * none of these within connectTimeout, it leaves (`no-connection`).
   */
  connect(p: Participant, way: SessionWay): void;
  /** A join that failed after openSession(): what it opened (a worker link) is closed. */
  abandon(way: SessionWay): void;
  /** Saves the room (persistent rooms). */
  persist(room: RoomCore): void;
  /** Runs store work for a room in order; failures are logged. */
  queue(room: RoomCore, op: (store: ChatStore) => Promise<void>): void;
  deleteRoom(room: RoomCore): Promise<void>;
}

/**
 * What a room's parts need of the room (room.ts's Room implements it): besides what its
 * sessions (ParticipantRoom) and the cluster (ClusterRoom) need, the rules a message is checked
 * by, the focus's own lines and reports, the history, the roster and the room's notices.
 */
export interface RoomCore extends ParticipantRoom, ClusterRoom {
  readonly focus: FocusCore;
  readonly subject: string;
  /** The largest message the room takes (413 above, C-17). */
  readonly maxMessageSize: number;
  isMuted(user: string): boolean;
  roster(): RosterEntry[];
  /**
   * Who gets a message whose CPIM headers are in, or why it is refused (C-4, C-5, C-7, C-11);
   * `command`: its text starts with `/` (a command to the room, if it names one).
   */
  decide(p: Participant, m: CpimMessage, command?: boolean): RouteDecision;
  /** The focus's header lines of a copy: its server timestamp and the sender's nickname (C-6). */
  focusLines(p: { nickname: string | undefined }, m: CpimMessage, at: Date, history: boolean): string;
  /** A `/command` to the focus: true when the text was one and was answered. */
  runCommand(p: Participant, text: string): boolean;
  /** Keeps a regular message in the room's history. */
  remember(p: Participant, messageId: string, m: CpimMessage, receivedAt: Date, body: Buffer): void;
  /** The success REPORT the sender asked for, sent by the focus (C-12). */
  reportSuccess(p: Participant, messageId: string, bytes: number, m: CpimMessage, isPrivate: boolean): void;
  /** This node's sessions that get a message of another node. */
  remoteRecipients(m: Pick<ClusterMessage, 'id' | 'kind' | 'mediaType' | 'to' | 'from'>): Participant[];
  /** Joins, leaves and nickname changes told to the sessions that have no other roster (C-17); `about` is not told of itself. */
  announce(text: string, about?: Participant): void;
  status(p: Participant, text: string, kind?: DeliveryKind): void;
  on(event: string, listener: (...args: unknown[]) => void): this;
}
