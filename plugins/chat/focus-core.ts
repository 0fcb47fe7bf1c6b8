/**
 * What rooms and participants need of the focus (the plugin, index.ts): the relay, the
 * options, the store, and the bookkeeping of participants' URIs and routes. An interface, so
 * that room.ts does not import the plugin.
 */

import type { Logger, PluginHost } from '../../core/index.ts';
import type { Route } from './delivery.ts';
import type { ChatOptions } from './options.ts';
import type { Participant } from './participant.ts';
import type { Room } from './room.ts';
import type { MsrpMedia } from './sdp.ts';
import type { ChatStore } from './store.ts';

export interface FocusCore {
  readonly relay: PluginHost;
  readonly options: ChatOptions;
  readonly store: ChatStore;
  readonly log: Logger;
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
