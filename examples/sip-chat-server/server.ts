/**
 * A SIP chat server in one process: the relay with the chat focus (plugins/chat) and a SIP
 * front on the `sip` package (npm, pure JavaScript; a devDependency, used by this example only).
 * docs/guides/chat.md explains the calls; this is them, runnable.
 *
 * - INVITE to sip:<room>@<domain> creates the room if needed and joins it: the 200 carries the
 *   focus's SDP answer and a Contact with `isfocus` (RFC 4579); a ChatError becomes its SIP status
 *   (488, 403, 486, 480). A re-INVITE in the dialog gets the same answer again.
 * - BYE leaves; when the room drops someone (kicked, banned, congested, disconnected) the server
 *   sends the BYE.
 * - SUBSCRIBE with `Event: conference` gets a 200 and NOTIFYs with the roster (RFC 4575), again
 *   at every roster change; Expires 0 ends it with a last NOTIFY.
 * - MESSAGE to a room gets 405: the room speaks MSRP (a page-mode message has no session).
 *
 * - INVITE, SUBSCRIBE and MESSAGE are challenged with SIP Digest (sip-auth.ts: RFC 3261 §22,
 *   qop=auth, nonces with a lifetime and stale=TRUE) against the relay's MSRP accounts; the
 *   authenticated user is the participant's identity (the focus holds every CPIM From to it,
 *   C-4) and a From naming someone else gets 403. `auth: false` takes the From as it comes
 *   (behind a proxy that authenticates).
 * - So are the requests in a dialog (BYE, re-INVITE, re-SUBSCRIBE, MESSAGE): they must carry
 *   credentials of the user who set the dialog up (401 without, 403 with another user's), so
 *   nobody who learnt a dialog's Call-ID and tags can hang up or re-route someone else's call.
 *   The dialog's nonce may be re-used with a greater nc (sip-auth.ts). ACK and CANCEL are not
 *   challenged: neither can be sent again with credentials (an ACK gets no response; a CANCEL
 *   copies its INVITE's CSeq number, RFC 3261 §9.1, so it cannot take the next one).
 *
 * What an example may skip and a service may not: Record-Route sets are
 * not kept (no proxy between the clients and this server). SIP bodies must be ASCII for the
 * `sip` package, so the conference-info XML carries non-ASCII text as character references.
 *
 *   node --import tsx examples/sip-chat-server/server.ts     (SIP 127.0.0.1:5070, MSRP 127.0.0.1:2859; alice, bob, carol / secret)
 */

import { randomBytes } from 'node:crypto';
import { pathToFileURL } from 'node:url';
import sip, { type NameAddr, type Remote, type SipMessage, type SipStack } from 'sip';
import { createRelay, type Relay } from '../../core/index.ts';
import { SipDigest, type SipAuthOptions } from './sip-auth.ts';
import ChatFocus, { ChatError, CONFERENCE_INFO_TYPE, type ChatOptionsInput, type LeaveReason, type Participant, type Room } from '../../plugins/chat/index.ts';

export interface SipChatServerOptions {
  /** Rooms are sip:<name>@<domain>. */
  domain: string;
  sip: { address: string; port: number };
  /** The relay's one MSRP listener (plain TCP with AUTH allowed: an example on loopback). */
  msrp: { hostname: string; host: string; port: number };
  /** MSRP accounts (auth-memory): the clients AUTH at this relay with them. */
  /** The accounts (auth-memory): `disabled` ones authenticate, then get 403, in SIP as in MSRP AUTH. */
  users: Array<{ username: string; domain: string; password: string; disabled?: boolean }>;
  chat?: ChatOptionsInput;
  /**
   * SIP Digest authentication (RFC 3261 §22) of INVITE, SUBSCRIBE and MESSAGE against the MSRP
   * accounts (sip-auth.ts); on by default. `false` takes the From URI as the caller's identity,
   * for a server behind a proxy that authenticates.
   */
  auth?: boolean | SipAuthOptions;
  /** Where to log what happens; silent by default. */
  log?: (line: string) => void;
}

export interface SipChatServer {
  readonly relay: Relay;
  readonly chat: ChatFocus;
  /** The SIP Digest state (undefined with `auth: false`). */
  readonly sipAuth: SipDigest | undefined;
  close(): Promise<void>;
}

/** What every dialog of the server holds: its identifiers, the far end, its room, its user. */
interface DialogBase {
  callId: string;
  localTag: string;
  localUri: string;
  remote: NameAddr;
  /** The user whose credentials set the dialog up (undefined without authentication): every request in it must be theirs. */
  user: string | undefined;
  /** The nonce the dialog holds (sip-auth.ts): the one of its last authenticated request. */
  nonce: string | undefined;
  remoteTarget: string;
  cseq: number;
  room: Room;
}

/** An INVITE dialog: one participant. */
interface CallDialog extends DialogBase {
  kind: 'call';
  participant: Participant;
  sdpAnswer: string;
}

/** A SUBSCRIBE dialog of the conference event package. */
interface Subscription extends DialogBase {
  kind: 'subscription';
  version: number;
  expiresAt: number;
  timer: NodeJS.Timeout;
  onRoster: () => void;
}

type Dialog = CallDialog | Subscription;

const ALLOW = 'INVITE, ACK, BYE, CANCEL, SUBSCRIBE, OPTIONS';
const MAX_EXPIRES = 3600;

/** SIP bodies go out as ASCII: other characters become XML character references. */
function asciiXml(xml: string): string {
  return xml.replace(/[^\x00-\x7f]/gu, (c) => `&#x${c.codePointAt(0)!.toString(16)};`);
}

function uriOf(a: NameAddr | undefined): string {
  if (a === undefined) return '';
  return typeof a.uri === 'string' ? a.uri : sip.stringifyUri(a.uri);
}

function header(rq: SipMessage, name: string): string | undefined {
  const v = rq.headers[name];
  return typeof v === 'string' ? v : v === undefined ? undefined : String(v);
}

export async function startSipChatServer(o: SipChatServerOptions): Promise<SipChatServer> {
  const log = o.log ?? (() => {});
  const chat = new ChatFocus(o.chat ?? {});
  const relay = await createRelay({
    hostname: o.msrp.hostname,
    listen: [{ transport: 'tcp', host: o.msrp.host, port: o.msrp.port, insecureAuth: true }],
    plugins: [['auth-memory', { users: o.users }], ['domain-map', { default: o.domain }], chat],
  });
  await relay.listen();

  const dialogs = new Map<string, Dialog>();
  const byParticipant = new Map<Participant, CallDialog>();
  const watched = new WeakSet<Room>();
  const contact = `sip:chat@${o.sip.address}:${o.sip.port}`;
  const newTag = () => randomBytes(8).toString('hex');
  const key = (callId: string, localTag: string) => `${callId};${localTag}`;

  const digest = o.auth === false ? undefined : new SipDigest(relay, o.domain, o.auth === true || o.auth === undefined ? {} : o.auth);

  const stack: SipStack = sip.create({ address: o.sip.address, port: o.sip.port, logger: { error: (e) => log(`sip: ${String(e)}`) } }, (rq, remote) => {
    void onRequest(rq, remote).catch((e: unknown) => {
      log(`sip: ${rq.method} failed: ${(e as Error).message}`);
      if (rq.method !== 'ACK') respond(rq, 500, 'Server Internal Error');
    });
  });

  /** The Contact of a room's dialogs: the room's user at this server (RFC 4579 adds isfocus). */
  const focusContact = (roomUri: string): NameAddr => ({ uri: `sip:${roomUri.slice(4, roomUri.lastIndexOf('@'))}@${o.sip.address}:${o.sip.port}`, params: { isfocus: null } });

  function respond(rq: SipMessage, status: number, reason: string, extra: { tag?: string; headers?: Record<string, unknown>; content?: string } = {}): void {
    const rs = sip.makeResponse(rq, status, reason);
    if (extra.tag !== undefined) rs.headers.to = { ...rs.headers.to, params: { ...rs.headers.to.params, tag: extra.tag } };
    Object.assign(rs.headers, extra.headers ?? {});
    if (extra.content !== undefined) rs.content = extra.content;
    stack.send(rs);
  }

  /** A request of ours inside a dialog (BYE, NOTIFY). */
  function request(d: Dialog, method: string, headers: Record<string, unknown> = {}, content?: string): void {
    const m: SipMessage = {
      method,
      uri: d.remoteTarget,
      headers: {
        to: { ...d.remote, params: { ...d.remote.params } },
        from: { uri: d.localUri, params: { tag: d.localTag } },
        'call-id': d.callId,
        cseq: { method, seq: ++d.cseq },
        contact: [{ uri: contact, params: {} }],
        'max-forwards': '70',
        ...headers,
      },
      ...(content !== undefined ? { content } : {}),
    };
    stack.send(m, (rs) => {
      if ((rs.status ?? 0) >= 300) log(`sip: ${method} to ${d.remoteTarget} got ${rs.status}`);
    });
  }

  /** The server ends a call the room dropped. */
  function watch(room: Room): void {
    if (watched.has(room)) return;
    watched.add(room);
    room.on('left', (p: Participant, reason: LeaveReason) => {
      const d = byParticipant.get(p);
      if (d === undefined) return;
      byParticipant.delete(p);
      forget(d);
      log(`${p.identity.uri} left ${room.uri} (${reason})`);
      if (reason !== 'left') request(d, 'BYE');
    });
  }

  /** The room a request is for: sip:<room>@<domain>, or the same user at this server's address. */
  function roomUriOf(rq: SipMessage): string | undefined {
    const u = sip.parseUri(rq.uri!);
    if (u === undefined || u.user === undefined) return undefined;
    const host = u.host.toLowerCase();
    if (host !== o.domain.toLowerCase() && host !== o.sip.address) return undefined;
    return `sip:${u.user}@${o.domain}`;
  }

  /** The dialog a request with a To tag is in (RFC 3261 §12.2.2: Call-ID and both tags match; none is a 481). */
  function inDialog(rq: SipMessage): Dialog | undefined {
    const tag = rq.headers.to.params.tag;
    const d = typeof tag === 'string' ? dialogs.get(key(rq.headers['call-id'], tag)) : undefined;
    return d !== undefined && d.remote.params.tag === rq.headers.from.params.tag ? d : undefined;
  }

  /** A dialog ends: it is no longer found, and the nonce it held goes with it. */
  function forget(d: Dialog): void {
    dialogs.delete(key(d.callId, d.localTag));
    digest?.release(d.nonce);
    d.nonce = undefined;
  }

  /**
   * Authenticates a request in dialog `d`: true when it carries valid credentials of the user
   * who set the dialog up. Otherwise it got its answer: 401 (no, wrong or replayed credentials),
   * 403 (another user's), 481 (the dialog ended meanwhile).
   */
  async function authorizedInDialog(rq: SipMessage, remote: Remote, d: Dialog): Promise<boolean> {
    if (digest === undefined) return true;
    const r = await digest.check(rq, remote, { inDialog: true });
    if (!r.ok) {
      respond(rq, r.status, r.reason, { headers: r.headers ?? {} });
      return false;
    }
    if (r.username !== d.user) {
      // Valid credentials, of someone else: authenticated, and refused (RFC 3261 §21.4.4).
      log(`sip: ${rq.method} in a dialog of ${d.user ?? '?'} with credentials of ${r.username}: 403`);
      respond(rq, 403, 'Credentials are not of the dialog\'s user');
      return false;
    }
    // The credentials were checked while the dialog could end (a kick, an expiry).
    if (dialogs.get(key(d.callId, d.localTag)) !== d) {
      respond(rq, 481, 'Call/Transaction Does Not Exist');
      return false;
    }
    d.nonce = digest.hold(r, d.nonce);
    return true;
  }

  /**
   * The caller's identity: with authentication the user its Digest credentials prove, and a From
   * naming anyone else is refused with 403; without, the From as it came. Undefined when the
   * request got its answer (401 challenge, 403, 400).
   */
  async function identify(rq: SipMessage, remote: Remote): Promise<{ uri: string; displayName?: string; auth?: { username: string; nonce: string; nc: number } } | undefined> {
    const from = rq.headers.from;
    const displayName = from.name !== undefined ? from.name.replace(/^"|"$/g, '') : undefined;
    if (digest === undefined) return { uri: uriOf(from), ...(displayName !== undefined ? { displayName } : {}) };
    const r = await digest.check(rq, remote);
    if (!r.ok) {
      respond(rq, r.status, r.reason, { headers: r.headers ?? {} });
      return undefined;
    }
    const fromUri = sip.parseUri(uriOf(from));
    if (fromUri?.user !== r.username || fromUri.host.toLowerCase() !== r.domain.toLowerCase()) {
      respond(rq, 403, 'From is not the authenticated user');
      return undefined;
    }
    return { uri: `sip:${r.username}@${r.domain}`, ...(displayName !== undefined ? { displayName } : {}), auth: r };
  }

  async function onRequest(rq: SipMessage, remote: Remote): Promise<void> {
    switch (rq.method) {
      case 'ACK':
        return;
      case 'INVITE':
        return invite(rq, remote);
      case 'BYE': {
        const d = inDialog(rq);
        if (d?.kind !== 'call') return respond(rq, 481, 'Call/Transaction Does Not Exist');
        // Challenged like the rest: a BYE anyone could send would let them end anyone's call.
        // A client that gives up still leaves the room when its MSRP session ends.
        if (!(await authorizedInDialog(rq, remote, d))) return;
        forget(d);
        byParticipant.delete(d.participant);
        d.room.leave(d.participant);
        return respond(rq, 200, 'OK');
      }
      case 'CANCEL':
        return respond(rq, 200, 'OK');
      case 'SUBSCRIBE':
        return subscribe(rq, remote);
      case 'OPTIONS':
        return respond(rq, 200, 'OK', { headers: { allow: ALLOW, accept: 'application/sdp' } });
      case 'MESSAGE': {
        // Authenticated like the rest, in its dialog or out of one; then: the room speaks MSRP,
        // a page-mode message has no session to answer on.
        if (typeof rq.headers.to.params.tag === 'string') {
          const d = inDialog(rq);
          if (d === undefined) return respond(rq, 481, 'Call/Transaction Does Not Exist');
          if (!(await authorizedInDialog(rq, remote, d))) return;
        } else if (digest !== undefined && (await identify(rq, remote)) === undefined) return;
        return respond(rq, 405, 'Method Not Allowed', { headers: { allow: ALLOW } });
      }
      default:
        return respond(rq, 405, 'Method Not Allowed', { headers: { allow: ALLOW } });
    }
  }

  async function invite(rq: SipMessage, remote: Remote): Promise<void> {
    const again = inDialog(rq);
    if (again === undefined && typeof rq.headers.to.params.tag === 'string') return respond(rq, 481, 'Call/Transaction Does Not Exist');
    if (again !== undefined) {
      // A re-INVITE: the session is the same; so is the answer.
      if (again.kind !== 'call') return respond(rq, 481, 'Call/Transaction Does Not Exist');
      if (!(await authorizedInDialog(rq, remote, again))) return;
      return respond(rq, 200, 'OK', { headers: { contact: [focusContact(again.localUri)], 'content-type': 'application/sdp' }, content: again.sdpAnswer });
    }
    const roomUri = roomUriOf(rq);
    if (roomUri === undefined) return respond(rq, 404, 'Not Found');
    if (header(rq, 'content-type')?.toLowerCase() !== 'application/sdp' || rq.content === undefined) return respond(rq, 488, 'Not Acceptable Here');
    const identity = await identify(rq, remote);
    if (identity === undefined) return;
    const room = chat.rooms.get(roomUri) ?? (await chat.rooms.create(roomUri));
    watch(room);
    const from = rq.headers.from;
    let joined: { sdpAnswer: string; participant: Participant };
    try {
      joined = await room.join({ sdpOffer: rq.content, identity });
    } catch (e) {
      if (e instanceof ChatError) return respond(rq, e.sipStatus, e.message);
      throw e;
    }
    const localTag = newTag();
    const d: CallDialog = {
      kind: 'call',
      callId: rq.headers['call-id'],
      localTag,
      localUri: roomUri,
      remote: from,
      user: identity.auth?.username,
      nonce: identity.auth !== undefined ? digest!.hold(identity.auth, undefined) : undefined,
      remoteTarget: Array.isArray(rq.headers.contact) && rq.headers.contact[0] !== undefined ? uriOf(rq.headers.contact[0]) : uriOf(from),
      cseq: 0,
      room,
      participant: joined.participant,
      sdpAnswer: joined.sdpAnswer,
    };
    dialogs.set(key(d.callId, localTag), d);
    byParticipant.set(joined.participant, d);
    log(`${identity.uri} joined ${roomUri}`);
    respond(rq, 200, 'OK', {
      tag: localTag,
      // RFC 4579: the Contact of a focus carries isfocus.
      headers: { contact: [focusContact(roomUri)], 'content-type': 'application/sdp', allow: ALLOW },
      content: joined.sdpAnswer,
    });
  }

  function notify(s: Subscription, state: 'active' | 'terminated'): void {
    const left = Math.max(0, Math.round((s.expiresAt - Date.now()) / 1000));
    request(
      s,
      'NOTIFY',
      { event: 'conference', 'subscription-state': state === 'active' ? `active;expires=${left}` : 'terminated;reason=timeout', 'content-type': CONFERENCE_INFO_TYPE },
      asciiXml(s.room.conferenceInfo({ version: ++s.version })),
    );
  }

  function endSubscription(s: Subscription, sendLast: boolean): void {
    clearTimeout(s.timer);
    s.room.off('roster', s.onRoster);
    forget(s);
    if (sendLast) notify(s, 'terminated');
  }

  async function subscribe(rq: SipMessage, remote: Remote): Promise<void> {
    const event = header(rq, 'event')?.split(';')[0]?.trim().toLowerCase();
    if (event !== 'conference') return respond(rq, 489, 'Bad Event', { headers: { 'allow-events': 'conference' } });
    const expires = Math.min(MAX_EXPIRES, Number(header(rq, 'expires') ?? MAX_EXPIRES));
    const existing = inDialog(rq);
    if (existing === undefined && typeof rq.headers.to.params.tag === 'string') return respond(rq, 481, 'Call/Transaction Does Not Exist');
    if (existing !== undefined) {
      if (existing.kind !== 'subscription') return respond(rq, 481, 'Call/Transaction Does Not Exist');
      // A refresh or an unsubscribe: the subscriber's own, or anyone could end it or keep it alive.
      if (!(await authorizedInDialog(rq, remote, existing))) return;
      respond(rq, 200, 'OK', { headers: { expires: String(expires), contact: [{ uri: contact, params: {} }] } });
      if (expires === 0) return endSubscription(existing, true);
      existing.expiresAt = Date.now() + expires * 1000;
      clearTimeout(existing.timer);
      existing.timer = setTimeout(() => endSubscription(existing, true), expires * 1000).unref();
      return notify(existing, 'active');
    }
    const roomUri = roomUriOf(rq);
    if (roomUri === undefined) return respond(rq, 404, 'Not Found');
    const identity = await identify(rq, remote);
    if (identity === undefined) return;
    const room = chat.rooms.get(roomUri);
    if (room === undefined) return respond(rq, 404, 'Not Found');
    const localTag = newTag();
    const s: Subscription = {
      kind: 'subscription',
      callId: rq.headers['call-id'],
      localTag,
      localUri: roomUri,
      remote: rq.headers.from,
      user: identity.auth?.username,
      nonce: undefined,
      remoteTarget: Array.isArray(rq.headers.contact) && rq.headers.contact[0] !== undefined ? uriOf(rq.headers.contact[0]) : uriOf(rq.headers.from),
      cseq: 0,
      room,
      version: 0,
      expiresAt: Date.now() + expires * 1000,
      timer: setTimeout(() => endSubscription(s, true), expires * 1000).unref(),
      onRoster: () => notify(s, 'active'),
    };
    respond(rq, 200, 'OK', { tag: localTag, headers: { expires: String(expires), contact: [{ uri: contact, params: {} }] } });
    if (expires === 0) {
      clearTimeout(s.timer);
      return notify(s, 'terminated');
    }
    dialogs.set(key(s.callId, localTag), s);
    if (identity.auth !== undefined) s.nonce = digest!.hold(identity.auth, undefined);
    room.on('roster', s.onRoster);
    notify(s, 'active');
  }

  return {
    relay,
    chat,
    sipAuth: digest,
    async close() {
      for (const d of dialogs.values()) if (d.kind === 'subscription') endSubscription(d, false);
      stack.destroy();
      await relay.close();
    },
  };
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const users = ['alice', 'bob', 'carol'].map((username) => ({ username, domain: 'example.com', password: 'secret' }));
  const server = await startSipChatServer({
    domain: 'example.com',
    sip: { address: '127.0.0.1', port: 5070 },
    msrp: { hostname: '127.0.0.1', host: '127.0.0.1', port: 2859 },
    users,
    chat: { store: { driver: 'sqlite3', filename: './data/chat.db' } },
    log: (l) => console.log(l),
  });
  console.log('SIP on 127.0.0.1:5070 (UDP and TCP), MSRP on msrp://127.0.0.1:2859;tcp; rooms sip:<name>@example.com');
  process.once('SIGINT', () => void server.close().then(() => process.exit(0)));
}
