/**
 * The error catalogue: every protocol outcome a peer can see has a stable code
 * and the MSRP status it is answered with (STYLE.md: fastify's lib/errors.js).
 * Programmer errors stay plain `Error`s.
 */

export const MSRP_ERRORS = Object.freeze({
  MSRP_ERR_BAD_REQUEST: { status: 400, message: 'The request is malformed' },
  MSRP_ERR_BAD_HEADER: { status: 400, message: 'A header is malformed' },
  MSRP_ERR_LIMIT: { status: 400, message: 'A protocol limit was exceeded' },
  MSRP_ERR_UNAUTHORIZED: { status: 401, message: 'Authentication is required' },
  MSRP_ERR_FORBIDDEN: { status: 403, message: 'The action is not allowed' },
  MSRP_ERR_AUTH_NEEDS_TLS: { status: 403, message: 'AUTH must be sent over TLS' },
  MSRP_ERR_WRONG_DIRECTION: { status: 403, message: 'The session does not route that way' },
  MSRP_ERR_DOMAIN_NOT_SERVED: { status: 403, message: 'The domain is not served by this relay' },
  MSRP_ERR_ACCOUNT_DISABLED: { status: 403, message: 'The account may not use this relay' },
  MSRP_ERR_TOO_MANY_SESSIONS: { status: 403, message: 'Too many sessions on this connection' },
  MSRP_ERR_AUTH_IN_PROGRESS: { status: 403, message: 'Another AUTH is in progress on this connection' },
  MSRP_ERR_DESTINATION_DENIED: { status: 403, message: 'The relay may not connect to that next hop' },
  MSRP_ERR_TOO_MANY_LEGS: { status: 403, message: 'Too many outward connections for this client' },
  MSRP_ERR_UNKNOWN_RECIPIENT: { status: 404, message: 'The recipient URI cannot be resolved' },
  MSRP_ERR_TIMEOUT: { status: 408, message: 'The transaction did not complete in time' },
  MSRP_ERR_MESSAGE_TOO_LARGE: { status: 413, message: 'The message is larger than allowed' },
  MSRP_ERR_MEDIA_TYPE: { status: 415, message: 'The media type is not accepted' },
  MSRP_ERR_EXPIRES_OUT_OF_BOUNDS: { status: 423, message: 'Expires is out of bounds' },
  MSRP_ERR_SESSION_NOT_FOUND: { status: 481, message: 'The session does not exist' },
  MSRP_ERR_INTERNAL: { status: 500, message: 'Internal error' },
  MSRP_ERR_METHOD_NOT_UNDERSTOOD: { status: 501, message: 'The method is not understood' },
  MSRP_ERR_SESSION_ALREADY_BOUND: { status: 506, message: 'The session is bound to another connection' },
} as const);

export type MsrpErrorCode = keyof typeof MSRP_ERRORS;

export interface MsrpErrorOptions {
  /** Overrides the catalogue's status (a downstream status carried into a REPORT, for one). */
  status?: number;
  /** Extra headers to put on the response (Min-Expires, Max-Expires, WWW-Authenticate, ...). */
  headers?: Array<[string, string]>;
  cause?: unknown;
}

/** An outcome a peer sees: a response status (or REPORT status) with a stable code. */
export class MsrpError extends Error {
  readonly code: MsrpErrorCode;
  readonly status: number;
  readonly headers: Array<[string, string]>;

  constructor(code: MsrpErrorCode, message?: string, options: MsrpErrorOptions = {}) {
    super(message ?? MSRP_ERRORS[code].message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'MsrpError';
    this.code = code;
    this.status = options.status ?? MSRP_ERRORS[code].status;
    this.headers = options.headers ?? [];
  }
}

export function isMsrpError(e: unknown): e is MsrpError {
  return e instanceof MsrpError;
}
