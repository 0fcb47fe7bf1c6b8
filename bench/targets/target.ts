/**
 * What the scenarios need from a system under test, and the pieces the targets share.
 *
 * Every target offers the same topology: two endpoints A and B, each on its own
 * connection, and a To-Path from A to B of [A's route..., B's route..., B]. For a
 * relay the route is the Use-Path its AUTH returned; for the raw pipe and the
 * direct connection it is a stand-in URI of the same shape (so frames are as long
 * as through a relay), which nothing on the way reads.
 *
 * A target is described by a TargetSpec (name, what it can do) and started once
 * per repetition; the started target hands out endpoints and reports the pids
 * whose CPU and memory count as "the relay".
 */

import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { Endpoint, relayAuthUri, type Address, type Transport } from '../loadgen/endpoint.ts';
import { groupMembers } from '../process-stats.ts';

/** Which transport each endpoint connects over: `tcp-ws` is A on TCP, B on WebSocket. */
export interface Legs {
  readonly name: string;
  readonly a: Transport;
  readonly b: Transport;
}

/** How a participant of the chat scenario gets into the room. */
export type ChatAccess =
  | {
      readonly kind: 'focus';
      readonly address: Address;
      /** The URI an AUTH is addressed to. */
      readonly authUri: string;
      /** Hands the focus an SDP offer (room.join); resolves with the answer. */
      join(sdpOffer: string, identityUri: string): Promise<string>;
      /** A full collection in the relay; then its V8 heap and external (Buffer) octets. */
      gc(): Promise<number>;
    }
  | {
      readonly kind: 'fanout';
      /** Participant i's connection: the copies of the others' messages come on it. */
      member(i: number): Promise<Endpoint>;
      /** Where participant i's messages go (length-prefixed, see fanout-main.ts). */
      sender(i: number): Promise<Socket>;
    };

/** One endpoint of a session, with the URIs a peer writes in front of its own URI. */
export interface Leg {
  ep: Endpoint;
  /** This leg's URI (the last To-Path URI of requests to it). */
  uri: string;
  /** The path towards this leg: its Use-Path at the relay. */
  route: string[];
}

export interface Pair {
  a: Leg;
  b: Leg;
}

export function pathAtoB(p: Pair): string[] {
  return [...p.a.route, ...p.b.route, p.b.uri];
}

export function pathBtoA(p: Pair): string[] {
  return [...p.b.route, ...p.a.route, p.a.uri];
}

export type TargetKind = 'relay' | 'pipe' | 'direct';

export interface RunningTarget {
  /** Opens A and B and makes each reachable from the other. */
  pair(): Promise<Pair>;
  /**
   * Relays only: authenticates one more session, on `ep` or on a new connection.
   * `user` is 'a' or 'b' (alice or bob).
   */
  session?(user: 'a' | 'b', ep?: Endpoint): Promise<Leg>;
  /** Relays only: a bare connection (the auth scenario runs AUTH itself). */
  authAddress?: { connect(): Promise<Endpoint>; relayUri: string; user: { username: string; password: string } };
  /** The processes that are "the relay" (empty: nothing but the load generator). */
  pids(): number[];
  stop(): Promise<void>;
  /** The same target with A and B on these transports (--transports); absent: TCP only. */
  via?(legs: Legs): RunningTarget;
  /** The chat scenario's room (targets/chat.ts): how its participants get in. */
  chat?: ChatAccess;
}

export interface TargetSpec {
  /** Name on the command line and in the results. */
  readonly name: string;
  readonly kind: TargetKind;
  /** A line for the report. */
  readonly description: string;
  /** Largest frame (head + body + end-line) the target relays; undefined = no limit. */
  readonly maxFrameBytes?: number;
  /** bulk: octets in flight the target copes with, when less than the bench's window. */
  readonly bulkWindow?: number;
  /** Most connections it holds at once; undefined = no limit the bench would reach. */
  readonly maxConnections?: number;
  /** The transports its endpoints can connect over (default tcp only). */
  readonly transports?: readonly Transport[];
  /** This project's relay (targets/msrprelay.ts): its checkout, extra node flags, how it runs; scenarios with a relay of their own (chat) start it the same way. */
  readonly root?: string;
  readonly nodeArgs?: readonly string[];
  /** A command the relay's node runs under (valgrind's callgrind, --instructions). */
  readonly wrapper?: readonly string[];
  readonly keep?: boolean;
  readonly workers?: number;
  readonly auth?: 'memory' | 'sql';
  /** Why the target cannot run at all on this machine (undefined = it can). */
  unavailable(): string | undefined;
  /** Why a scenario does not apply (undefined = it does). */
  skips(scenario: string): string | undefined;
  start(): Promise<RunningTarget>;
}

// ---------------------------------------------------------------------- shared

/** Loopback ports: shared with the tests (core/testing/ports.ts). */
export { freePort, waitForPort } from '../../core/testing/ports.ts';

/** For waitForPort: gives up once the child that should listen has exited. */
export function exitedBeforeListening(g: GroupChild): void {
  if (g.exited) throw new Error('the process exited before it listened');
}

/** A child process that leads its own process group, with its output in a log file. */
export interface GroupChild {
  child: ChildProcess;
  pgid: number;
  log: string;
  exited: boolean;
  pids(): number[];
  stop(): Promise<void>;
}

export function spawnGroup(cmd: string, args: string[], o: { cwd: string; log: string; env?: NodeJS.ProcessEnv }): GroupChild {
  const out = createWriteStream(o.log);
  const child = spawn(cmd, args, { cwd: o.cwd, env: o.env ?? process.env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.pipe(out);
  child.stderr!.pipe(out);
  const pgid = child.pid!;
  const g: GroupChild = {
    child,
    pgid,
    log: o.log,
    exited: false,
    pids: () => (g.exited ? [] : groupMembers(pgid)),
    async stop() {
      if (g.exited) return;
      const members = groupMembers(pgid);
      const gone = new Promise<void>((r) => child.once('exit', () => r()));
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 15_000);
      await gone;
      clearTimeout(t);
      // helpers of the child (tsx's esbuild service) go with it; anything left is ended by pid
      for (const pid of members) {
        if (pid === pgid) continue;
        try {
          process.kill(pid, 'SIGTERM');
        } catch {
          /* already gone */
        }
      }
    },
  };
  child.once('exit', () => {
    g.exited = true;
  });
  // Never keep the bench alive for a child.
  child.unref();
  return g;
}

export function tail(file: string, lines = 20): string {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

/** The demo accounts every relay target is set up with (Kamailio has exactly these). */
export const USERS = {
  a: { username: 'alice', password: 'secret' },
  b: { username: 'bob', password: 'secret' },
} as const;
export const REALM = 'example.com';

/**
 * The client side of any RFC 4976 relay: sessions by AUTH, pairs of sessions. `addrs` has the
 * relay's listener for each transport it was started with; A and B connect over `legs`
 * (default both TCP), and `via(legs)` gives the same relay over other ones.
 */
export function relayClient(addrs: Partial<Record<Transport, Address>>, pids: () => number[], stop: () => Promise<void>, legs: Legs = { name: 'tcp', a: 'tcp', b: 'tcp' }): RunningTarget {
  const at = (t: Transport): Address => {
    const a = addrs[t];
    if (a === undefined) throw new Error(`the target has no ${t} listener`);
    return a;
  };
  const addrOf = { a: at(legs.a), b: at(legs.b) };
  const session = async (user: 'a' | 'b', on?: Endpoint): Promise<Leg> => {
    const addr = addrOf[user];
    const ep = on ?? (await Endpoint.connect(addr));
    const uri = on === undefined ? ep.uri : ep.newUri();
    try {
      const route = await ep.auth(relayAuthUri(addr), USERS[user], uri);
      return { ep, uri, route };
    } catch (e) {
      if (on === undefined) ep.destroy();
      throw e;
    }
  };
  return {
    session,
    async pair() {
      const [a, b] = await Promise.all([session('a'), session('b')]);
      return { a, b };
    },
    authAddress: { connect: () => Endpoint.connect(addrOf.a), relayUri: relayAuthUri(addrOf.a), user: USERS.a },
    pids,
    stop,
    via: (l) => relayClient(addrs, pids, stop, l),
  };
}
