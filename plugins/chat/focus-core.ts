/**
 * What rooms and participants need of the focus (the plugin, index.ts): the relay, the
 * options, the store, and the bookkeeping of participants' URIs and routes. An interface, so
 * that room.ts does not import the plugin.
 */

import type { AsyncSeriesBailHook } from 'tapable';
import type { Logger, PluginHost } from '../../core/index.ts';
import type { ChatCluster } from './cluster.ts';
import type { ClusterFiles } from './cluster-files.ts';
import type { ChatFiles } from './files.ts';
import type { Route } from './delivery.ts';
import type { ChatOptions } from './options.ts';
import type { Participant } from './participant.ts';
import type { JoinDecision, JoinRequest, Room } from './room.ts';
import type { MsrpMedia } from './sdp.ts';
import type { ChatStore } from './store.ts';

/** Hooks of the chat plugin (ChatFocus.hooks), for the application. */
export interface ChatHooks {
  /**
   * Before a participant joins (after bans, ACL and password): return `{ reject: reason }` to
   * refuse (ChatError forbidden, SIP 403), `{ role }` to give a role, or undefined to pass.
   */
  readonly authorizeJoin: AsyncSeriesBailHook<[JoinRequest], JoinDecision | undefined>;
}

export interface FocusCore {
  readonly relay: PluginHost;
  readonly options: ChatOptions;
  readonly store: ChatStore;
  readonly log: Logger;
  readonly hooks: ChatHooks;
  /** Rooms across nodes (the cluster option), when configured. */
  readonly cluster: ChatCluster | undefined;
  /** Files kept in rooms (the files option), when enabled. */
  readonly files?: ChatFiles | undefined;
  /** Large messages across nodes (cluster-files.ts), with the cluster option. */
  readonly clusterFiles?: ClusterFiles | undefined;
  /** The focus's URI for a new participant, and the host and port its SDP answer names. */
  focusUri(sessionId: string, media: MsrpMedia): { uri: string; host: string; port: number };
  /** The route to a participant whose a=path starts with a session of this relay, else undefined. */
  routeFromPath(path: readonly string[], focusUri: string): Route | undefined;
  /** Requests to the participant's URI reach its room from now on. */
  register(p: Participant): void;
  unregister(p: Participant): void;
  /** Copies to the participant go this way; when the route's session or connection ends, it leaves. */
  bindRoute(p: Participant, route: Route): void;
  /** Drops the participant if no request of it arrives within connectTimeout. */
  awaitRoute(p: Participant): void;
  /** Saves the room (persistent rooms). */
  persist(room: Room): void;
  /** Runs store work for a room in order; failures are logged. */
  queue(room: Room, op: (store: ChatStore) => Promise<void>): void;
  deleteRoom(room: Room): Promise<void>;
}
