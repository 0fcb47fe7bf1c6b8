/**
 * MSRP status codes (IANA "MSRP Parameters" registry, RFC.md §1.10) and the
 * comment the relay writes after each one on a response start line.
 */
export const STATUS_COMMENTS: Readonly<Record<number, string>> = Object.freeze({
  200: 'OK',
  400: 'Unintelligible',
  401: 'Unauthorized',
  403: 'Action-not-allowed',
  404: 'Failure to resolve recipient URI',
  408: 'Transaction-did-not-complete',
  413: 'Stop-sending-message',
  415: 'MIME-not-understood',
  423: 'Interval Out-of-Bounds',
  424: 'Malformed nickname',
  425: 'Nickname reserved or already in use',
  428: 'Private messages not supported',
  481: 'Session-does-not-exist',
  500: 'Internal error',
  501: 'Request-method-not-understood',
  506: 'Session-already-bound',
});

/** The comment for a status code; codes outside the registry get a generic class comment. */
export function statusComment(status: number): string {
  const known = STATUS_COMMENTS[status];
  if (known !== undefined) return known;
  if (status >= 200 && status < 300) return 'OK';
  if (status >= 500) return 'Internal error';
  return 'Error';
}

/** True for a three-digit status code (RFC 4975 §9 `status-code = 3DIGIT`). */
export function isStatusCode(n: number): boolean {
  return Number.isInteger(n) && n >= 100 && n <= 999;
}
