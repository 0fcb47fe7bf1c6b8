/**
 * A WebSocket MSRP client for tests: the `ws` package's client, wrapped as an MsrpStream by the
 * websocket plugin's own WsStream, under the test client (MsrpTestClient.over), so every helper
 * of the TCP client (auth, sendMessage, waits, hashes) works over a WebSocket as it does over TCP.
 */

import { randomBytes } from 'node:crypto';
import WebSocket from 'ws';
import { WsStream } from '../../plugins/websocket/index.ts';
import { MsrpTestClient } from '../../core/testing/index.ts';

export interface WsClientOptions {
  /** Sec-WebSocket-Protocol offer (default ['msrp']; [] offers none). */
  protocols?: string[];
  /** Sent as the Origin header (a browser always sends one). */
  origin?: string;
  /** More request headers (Cookie, Authorization, X-Forwarded-For…). */
  headers?: Record<string, string>;
  /** This client's MSRP URI; default a browser's: msrps://<8 random>.invalid:2855/<id>;ws (I-14). */
  uri?: string;
  timeoutMs?: number;
  storeBodies?: boolean;
  autoRespond?: boolean;
  /** Answer Pings (default true; false plays a dead browser). */
  autoPong?: boolean;
  /** Largest message the client writes in one piece (its own sends are whole frames). */
  maxMessageSize?: number;
  /** Octets accepted in one message from the relay (the `ws` client's maxPayload). */
  maxPayload?: number;
}

export interface WsClient {
  readonly client: MsrpTestClient;
  readonly ws: WebSocket;
  readonly stream: WsStream;
  /** Resolves with the close code the relay sent (or 1006). */
  readonly closeCode: Promise<number>;
}

/** A browser-like From-Path URI (I-14): a random `.invalid` host, port 2855, `;ws`. */
export function browserUri(): string {
  const host = randomBytes(6).toString('base64url').replace(/[-_]/g, 'x').slice(0, 8).toLowerCase();
  return `msrps://${host}.invalid:2855/${randomBytes(8).toString('hex')};ws`;
}

/** Opens a WebSocket to the relay and puts the test client over it. Rejects when the upgrade fails. */
export function connectWs(url: string, o: WsClientOptions = {}): Promise<WsClient> {
  const ws = new WebSocket(url, o.protocols ?? ['msrp'], {
    ...(o.origin !== undefined ? { origin: o.origin } : {}),
    headers: o.headers ?? {},
    rejectUnauthorized: false,
    autoPong: o.autoPong ?? true,
    maxPayload: o.maxPayload ?? 256 * 2 ** 20,
    perMessageDeflate: false,
    handshakeTimeout: o.timeoutMs ?? 5000,
  });
  const closeCode = new Promise<number>((resolve) => ws.once('close', (code: number) => resolve(code)));
  return new Promise<WsClient>((resolve, reject) => {
    ws.once('unexpected-response', (_req, res) => {
      reject(Object.assign(new Error(`upgrade refused: HTTP ${res.statusCode}`), { status: res.statusCode }));
      res.resume();
      ws.terminate();
    });
    ws.once('error', reject);
    ws.once('open', () => {
      ws.off('error', reject);
      const stream = new WsStream(ws, { maxMessageSize: o.maxMessageSize ?? 16 * 2 ** 20, highWaterMark: 4 * 2 ** 20, encrypted: url.startsWith('wss:') });
      const client = MsrpTestClient.over(stream, {
        uri: o.uri ?? browserUri(),
        timeoutMs: o.timeoutMs ?? 10_000,
        ...(o.storeBodies !== undefined ? { storeBodies: o.storeBodies } : {}),
        ...(o.autoRespond !== undefined ? { autoRespond: o.autoRespond } : {}),
      });
      resolve({ client, ws, stream, closeCode });
    });
  });
}

/** The HTTP status of an upgrade the relay refuses (101 when it accepts it). */
export async function upgradeStatus(url: string, o: WsClientOptions = {}): Promise<number> {
  try {
    const c = await connectWs(url, o);
    c.ws.terminate();
    return 101;
  } catch (e) {
    const status = (e as { status?: number }).status;
    if (status === undefined) throw e;
    return status;
  }
}
