// The parts of the `sip` package (npm, pure JavaScript, no types of its own) the example uses.
declare module 'sip' {
  export interface SipUri {
    schema?: string;
    user?: string;
    host: string;
    port?: number;
    params: Record<string, string | null | undefined>;
    headers?: Record<string, string>;
  }
  export interface NameAddr {
    name?: string;
    uri: string | SipUri;
    params: Record<string, string | null | undefined>;
  }
  export interface SipHeaders {
    via?: unknown[];
    to: NameAddr;
    from: NameAddr;
    'call-id': string;
    cseq: { seq: number; method: string };
    contact?: NameAddr[] | '*';
    [name: string]: unknown;
  }
  export interface SipMessage {
    method?: string;
    uri?: string | SipUri;
    status?: number;
    reason?: string;
    version?: string;
    headers: SipHeaders;
    content?: string;
  }
  export interface Remote {
    protocol: string;
    address: string;
    port: number;
  }
  export interface SipStack {
    send(m: SipMessage, onResponse?: (rs: SipMessage) => void): void;
    destroy(): void;
  }
  export interface CreateOptions {
    address?: string;
    port?: number;
    publicAddress?: string;
    udp?: boolean;
    tcp?: boolean;
    logger?: { error?(e: unknown): void };
  }
  const sip: {
    create(options: CreateOptions, onRequest: (rq: SipMessage, remote: Remote) => void): SipStack;
    makeResponse(rq: SipMessage, status: number, reason?: string): SipMessage;
    parseUri(uri: string | SipUri): SipUri | undefined;
    stringifyUri(uri: string | SipUri): string;
    /** An auth header as parsed (`scheme` and its parameters, values as written) back to text. */
    stringifyAuthHeader(h: Record<string, string>): string;
  };
  export default sip;
}

// The Digest client of the `sip` package (used by the tests as an independent Digest implementation).
declare module 'sip/digest.js' {
  import type { SipMessage } from 'sip';
  const digest: {
    /** Adds an Authorization for the challenge in `rs` (or, with rs undefined, the next nc of ctx) to rq. */
    signRequest(ctx: object | undefined, rq: SipMessage, rs: SipMessage | undefined, creds: { user: string; password: string; realm?: string }): object | null;
  };
  export default digest;
}
