/**
 * The chat plugin's options: a JSON schema with every default (ajv fills them in, also for an
 * instance an application constructs itself), and the resolved shape the code reads.
 * Times are in seconds, as in the relay's own config.
 */

import AjvModule from 'ajv';
import { tmpdir } from 'node:os';

type AjvClass = typeof AjvModule.default;
const Ajv: AjvClass = (AjvModule as unknown as { default?: AjvClass }).default ?? (AjvModule as unknown as AjvClass);

const seconds = (d: number) => ({ type: 'number', minimum: 0, default: d }) as const;
const count = (d: number, min = 0) => ({ type: 'integer', minimum: min, default: d }) as const;

export const CHAT_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  properties: {
    /** The namespace of the CPIM headers the focus adds (timestamp, nickname, history, status): C-6. */
    namespace: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        prefix: { type: 'string', pattern: "^[A-Za-z0-9!#$%&'*+^_`|~-]+$", default: 'Chat' },
        uri: { type: 'string', minLength: 1, default: 'urn:msrprelay:chat' },
      },
    },
    /** Which listener the participants' focus URIs name: the first TLS one, the first TCP one, or TLS when the offer's path is msrps (auto). */
    transport: { enum: ['auto', 'tcp', 'tls'], default: 'auto' },
    /** a=accept-wrapped-types of the SDP answer (C-2). */
    acceptWrappedTypes: { type: 'array', items: { type: 'string' }, default: ['*'] },
    store: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        driver: { enum: ['sqlite3', 'pg', 'memory'], default: 'sqlite3' },
        /** sqlite3: the database file. */
        filename: { type: 'string', default: 'chat.db' },
        /** The tables are <tablePrefix>rooms and <tablePrefix>messages. */
        tablePrefix: { type: 'string', pattern: '^[A-Za-z_][A-Za-z0-9_]{0,40}$', default: 'chat_' },
        /** pg: a connection URL, or host, port, user, password, database. */
        url: { type: 'string' },
        host: { type: 'string' },
        port: { type: 'integer' },
        user: { type: 'string' },
        password: { type: 'string' },
        database: { type: 'string' },
        poolSize: count(4, 1),
        queryTimeout: seconds(5),
      },
    },
    history: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        /** Messages replayed to a joiner (0: none). */
        replay: count(50),
        /** Only messages younger than this are replayed (0: any age). */
        maxAge: seconds(0),
        /** Messages kept per room in the store. */
        keep: count(1000),
        /** Messages larger than this (CPIM bytes) are not kept. */
        maxMessageSize: count(64 * 1024),
      },
    },
    limits: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        /** Largest message a participant may send (413, C-17). */
        maxMessageSize: count(32 * 2 ** 20),
        /** Sessions in a room. */
        maxMembers: count(500, 1),
        /** Sessions of one user in one room (C-10). */
        maxSessionsPerUser: count(5, 1),
        /** Rooms in all. */
        maxRooms: count(10000, 1),
        /** Messages a session may send per window (403 beyond, C-17). */
        rate: {
          type: 'object',
          additionalProperties: false,
          default: {},
          properties: { messages: count(50, 1), seconds: { type: 'number', exclusiveMinimum: 0, default: 10 } },
        },
        /** CPIM and content headers must end within this many bytes. */
        maxHeaderBytes: count(16384, 256),
      },
    },
    congestion: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        /** Congested once this many bytes wait for it (C-16). */
        backlogBytes: count(2 ** 20, 1),
        /** Congested once its output has stayed blocked this long. */
        markAfter: seconds(5),
        /** Dropped from the room once congested this long. */
        dropAfter: seconds(120),
        /** Messages waiting for one session at most; more are dropped and counted. */
        maxQueued: count(500, 1),
      },
    },
    /** C-9: a message whose next chunk does not come within this is aborted. */
    chunkTimeout: seconds(540),
    /**
     * Copies to a participant behind another relay (its route's To-Path names more than its own
     * URI) go in chunks of at most this many body bytes (C-6 allows re-chunking); 0: one chunk.
     * Kamailio's msrp module routes no frame over about 11 KB (its peer README, caveat 7).
     */
    relayedChunkSize: count(8192),
    /**
     * A refused SEND from a participant behind another relay also gets a failure REPORT from the
     * focus (relayed-report.ts): Kamailio's msrp module answers its hop 200 itself and makes no
     * REPORT of the focus's error response (R-63). A relay that does will make a second one.
     */
    relayedReports: { type: 'boolean', default: true },
    /** A participant that has not connected (no request, no relay session) within this is dropped. */
    connectTimeout: seconds(30),
    spool: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        dir: { type: 'string', default: tmpdir() },
        /** Bytes of one message kept in memory for recipients that are behind; the rest goes to a file. */
        memoryBytes: count(2 ** 20, 1024),
      },
    },
    /** C-17: who gets a welcome with the roster: participants without a=chatroom, all, or none. */
    welcome: { enum: ['non-chat-aware', 'all', 'none'], default: 'non-chat-aware' },
    /** C-17: participants without a=chatroom are told of joins, leaves and nickname changes. */
    announce: { type: 'boolean', default: true },
    /** Nicknames nobody may take (425, C-13), compared by their key. */
    reservedNicknames: { type: 'array', items: { type: 'string' }, default: [] },
    /** Rooms across nodes on Redis (cluster.ts); absent: the rooms are this node's alone. */
    cluster: {
      type: 'object',
      additionalProperties: false,
      required: ['redis'],
      properties: {
        redis: {
          type: 'object',
          additionalProperties: false,
          required: ['url'],
          properties: {
            url: { type: 'string', minLength: 1 },
            /** Every key of the cluster starts with it (several clusters may share one Redis). */
            keyPrefix: { type: 'string', default: 'msrprelay:chat:' },
            commandTimeout: { type: 'number', exclusiveMinimum: 0, default: 2 },
            connectTimeout: { type: 'number', exclusiveMinimum: 0, default: 5 },
          },
        },
        /** This node's name in the shared roster and the streams (default: host-pid-random). */
        nodeId: { type: 'string', minLength: 1, pattern: '^[^\\n]+$' },
        /** Seconds between heartbeats (node key renewed, rosters written and swept). */
        heartbeat: { type: 'number', exclusiveMinimum: 0, default: 2 },
        /** A node silent this long is gone: its participants leave the others' rosters within rosterTtl + heartbeat. */
        rosterTtl: { type: 'number', exclusiveMinimum: 0, default: 6 },
        /** Entries kept per room stream (XADD MAXLEN ~). */
        streamMaxLen: count(1000, 1),
        /** Larger messages (CPIM bytes with the focus's lines) stay on their node, counted. */
        maxMessageSize: count(2 ** 20, 1),
        /** Appends held in memory while Redis is away; the oldest go beyond. */
        queue: count(1000, 1),
        /** Larger messages than maxMessageSize cross in pieces up to this size (CPIM bytes); beyond it they stay on their node, counted (cluster-files.ts). */
        maxFileSize: count(64 * 2 ** 20, 0),
        /** Seconds the pieces of a large message stay in Redis after its last piece (the transfer window). */
        fileTtl: { type: 'number', exclusiveMinimum: 0, default: 120 },
      },
    },
    /** Files sent to rooms, kept on disk for late joiners (files.ts); off unless enabled. */
    files: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        enabled: { type: 'boolean', default: false },
        /** Where the files go (created, mode 0700); one folder per node. */
        dir: { type: 'string', minLength: 1, default: 'chat-files' },
        /** Larger files (content octets) are fanned out but not kept. */
        maxFileSize: count(16 * 2 ** 20, 1),
        /** Files kept per room; the oldest go first. */
        maxFiles: count(100, 1),
        /** Content octets kept per room; the oldest files go first. */
        maxRoomBytes: count(256 * 2 ** 20, 1),
        /** Seconds a file is kept (0: until the quota pushes it out). */
        retention: seconds(7 * 86400),
        /** Media types kept (`*`, `type/*`, `type/subtype`); others are fanned out only. */
        types: { type: 'array', items: { type: 'string', pattern: '^(\\*|[A-Za-z0-9!#$&^_.+-]+/(\\*|[A-Za-z0-9!#$&^_.+-]+))$' }, default: ['*'] },
        /** Files /files lists at most. */
        list: count(20, 1),
      },
    },
    /** What a room has unless its own options say otherwise. */
    rooms: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        persistent: { type: 'boolean', default: true },
        nicknames: { type: 'boolean', default: true },
        privateMessages: { type: 'boolean', default: true },
      },
    },
  },
} as const;

export interface ChatOptions {
  namespace: { prefix: string; uri: string };
  transport: 'auto' | 'tcp' | 'tls';
  acceptWrappedTypes: string[];
  store: {
    driver: 'sqlite3' | 'pg' | 'memory';
    filename: string;
    tablePrefix: string;
    url?: string;
    host?: string;
    port?: number;
    user?: string;
    password?: string;
    database?: string;
    poolSize: number;
    queryTimeout: number;
  };
  history: { replay: number; maxAge: number; keep: number; maxMessageSize: number };
  limits: {
    maxMessageSize: number;
    maxMembers: number;
    maxSessionsPerUser: number;
    maxRooms: number;
    rate: { messages: number; seconds: number };
    maxHeaderBytes: number;
  };
  congestion: { backlogBytes: number; markAfter: number; dropAfter: number; maxQueued: number };
  chunkTimeout: number;
  relayedChunkSize: number;
  relayedReports: boolean;
  connectTimeout: number;
  spool: { dir: string; memoryBytes: number };
  welcome: 'non-chat-aware' | 'all' | 'none';
  announce: boolean;
  reservedNicknames: string[];
  rooms: { persistent: boolean; nicknames: boolean; privateMessages: boolean };
  files: { enabled: boolean; dir: string; maxFileSize: number; maxFiles: number; maxRoomBytes: number; retention: number; types: string[]; list: number };
  cluster?: {
    redis: { url: string; keyPrefix: string; commandTimeout: number; connectTimeout: number };
    nodeId?: string;
    heartbeat: number;
    rosterTtl: number;
    streamMaxLen: number;
    maxMessageSize: number;
    queue: number;
    maxFileSize: number;
    fileTtl: number;
  };
}

/** Deep partial options, as a config or an application gives them. */
export type ChatOptionsInput = { [K in Exclude<keyof ChatOptions, 'cluster'>]?: ChatOptions[K] extends object ? (ChatOptions[K] extends unknown[] ? ChatOptions[K] : Partial<ChatOptions[K]>) : ChatOptions[K] } & {
  limits?: Partial<Omit<ChatOptions['limits'], 'rate'>> & { rate?: Partial<ChatOptions['limits']['rate']> };
  cluster?: Partial<Omit<NonNullable<ChatOptions['cluster']>, 'redis'>> & { redis: Partial<NonNullable<ChatOptions['cluster']>['redis']> & { url: string } };
};

const validate = new Ajv({ allErrors: true, useDefaults: true, strict: false }).compile(CHAT_SCHEMA);

/** Options with every default filled in; throws naming what is wrong. */
export function resolveOptions(input: ChatOptionsInput = {}): ChatOptions {
  const copy = structuredClone(input) as Record<string, unknown>;
  if (!validate(copy)) {
    const why = (validate.errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message ?? 'is invalid'}`).join('; ');
    throw new Error(`chat: bad options: ${why}`);
  }
  const o = copy as unknown as ChatOptions;
  if (o.cluster !== undefined && o.cluster.rosterTtl <= o.cluster.heartbeat) throw new Error('chat: bad options: /cluster/rosterTtl must be longer than /cluster/heartbeat');
  return o;
}
