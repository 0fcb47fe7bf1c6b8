/**
 * What the focus's API refuses, with the SIP status an application answers the INVITE (or the
 * request that asked) with. MSRP answers are not these: they are MSRP statuses on the wire.
 */

export type ChatErrorCode =
  /** The offer has no MSRP m-line the focus can take (C-2: no message/cpim). */
  | 'not-acceptable'
  /** Refused by policy: banned, not on the ACL, a wrong password, the join hook, not a moderator. */
  | 'forbidden'
  /** The room holds as many sessions as it may (or the user as many as one may have). */
  | 'full'
  | 'no-such-room'
  | 'room-exists'
  /** A nickname given to join() is malformed or taken. */
  | 'nickname'
  /** The room or the focus is closed. */
  | 'closed'
  /** An RFC 5547 pull offer whose file-selector matches no kept file (files.ts). */
  | 'no-such-file';

const SIP_STATUS: Record<ChatErrorCode, number> = {
  'not-acceptable': 488,
  forbidden: 403,
  full: 486,
  'no-such-room': 404,
  'room-exists': 409,
  nickname: 403,
  closed: 480,
  'no-such-file': 404,
};

export class ChatError extends Error {
  readonly code: ChatErrorCode;
  /** The SIP status to answer with (488, 403, 486, 404, 480). */
  readonly sipStatus: number;
  /** For a refused pull offer (no-such-file): an SDP answer declining the stream with port 0 (RFC 3264 §6, RFC 5547 §8.2). */
  sdpAnswer?: string;

  constructor(code: ChatErrorCode, message: string) {
    super(message);
    this.name = 'ChatError';
    this.code = code;
    this.sipStatus = SIP_STATUS[code];
  }
}
