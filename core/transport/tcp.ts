/**
 * The core's own transports: TCP and TLS (R-1 … R-8), the first two providers on the
 * transport seam (core/transport/stream.ts). A listener only accepts sockets and adopts
 * them; connection caps, hooks and framing are the relay's. Dialling opens the next leg:
 * TCP, or TLS with SNI and the certificate checked against the URI's host name.
 */

import { readFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import type { ListenConfig, RelayConfig } from '../config/schema.ts';
import type { ListenerInfo, NextHop } from '../types.ts';
import { describeEntry, type MsrpStream, type TransportContext, type TransportListener, type TransportProvider } from './stream.ts';

function tlsOptions(cfg: ListenConfig): tls.SecureContextOptions {
  return {
    cert: readFileSync(cfg.cert!),
    key: readFileSync(cfg.key!),
    ...(cfg.ca !== undefined ? { ca: readFileSync(cfg.ca) } : {}),
    // TLS 1.2 at least (RFC 8996).
    minVersion: cfg.minVersion ?? 'TLSv1.2',
  };
}

/** Binds a TCP or TLS listener; rejects with a message naming the entry when it cannot. */
function listen(cfg: ListenConfig, ctx: TransportContext): Promise<TransportListener> {
  const secure = cfg.transport === 'tls';
  let info: ListenerInfo;
  let context: tls.SecureContext | undefined;
  if (secure) {
    try {
      context = tls.createSecureContext(tlsOptions(cfg));
    } catch (e) {
      return Promise.reject(new Error(`listen ${describeEntry(cfg)}: cannot read the certificate or key: ${(e as Error).message}`));
    }
  }
  /**
   * a TLS connection takes its place under the caps when the TCP connection is
   * accepted, not when its handshake completes (a peer that never finishes a ClientHello
   * would otherwise be outside every cap), and the handshake must end within
   * timeouts.tlsHandshake.
   */
  const handshake = (raw: net.Socket) => {
    const admission = ctx.admit(raw.remoteAddress ?? '');
    if (admission === undefined) {
      raw.on('error', () => {});
      raw.destroy();
      return;
    }
    const socket = new tls.TLSSocket(raw, {
      isServer: true,
      secureContext: context!,
      // ask for a certificate (relay peers present one, R-5) but let clients in
      // without: they authenticate with Digest.
      requestCert: cfg.ca !== undefined,
      rejectUnauthorized: false,
    });
    const failed = () => {
      clearTimeout(timer);
      admission.release();
      socket.destroy();
    };
    const timer = setTimeout(failed, ctx.config().timeouts.tlsHandshake * 1000);
    timer.unref();
    // A failed handshake is the peer's problem, not the relay's.
    socket.once('error', failed);
    raw.once('close', failed);
    socket.once('secure', () => {
      clearTimeout(timer);
      socket.off('error', failed);
      raw.off('close', failed);
      // a client certificate, when one is presented on a listener with a CA, must be valid.
      if (socket.authorizationError !== undefined && socket.authorizationError !== null) {
        const peer = socket.getPeerCertificate();
        if (peer !== null && Object.keys(peer).length > 0) {
          ctx.log.warn('connection refused: invalid client certificate', { remote: raw.remoteAddress ?? '', error: String(socket.authorizationError) });
          admission.release();
          socket.on('error', () => {});
          socket.destroy();
          return;
        }
      }
      ctx.adopt(socket, { listener: info, admission });
    });
  };
  const server = net.createServer(secure ? handshake : (socket) => ctx.adopt(socket, { listener: info }));
  server.maxConnections = Number.MAX_SAFE_INTEGER;
  return new Promise((resolve, reject) => {
    const onError = (e: NodeJS.ErrnoException) => {
      reject(new Error(`listen ${describeEntry(cfg)}: ${e.code === 'EADDRINUSE' ? 'the port is in use' : e.message}`));
    };
    server.once('error', onError);
    server.listen({ host: cfg.host, port: cfg.port, backlog: 1024 }, () => {
      server.off('error', onError);
      const addr = server.address() as net.AddressInfo;
      info = Object.freeze({
        transport: cfg.transport,
        host: cfg.host,
        port: addr.port,
        insecureAuth: cfg.insecureAuth === true,
        scheme: secure ? 'msrps' : 'msrp',
      });
      resolve({
        info,
        // Stops accepting at once. server.close()'s callback would wait until every accepted
        // connection has gone, which an idle peer (another relay, a client) may never do: the
        // relay closes its connections itself, after the drain.
        close: () => {
          server.close();
          return Promise.resolve();
        },
        reload(next) {
          if (secure) context = tls.createSecureContext(tlsOptions(next));
        },
      });
    });
  });
}

/** Opens a socket to the next hop; rejects after `timeoutMs`. */
function dial(hop: NextHop, cfg: Readonly<RelayConfig>, timeoutMs: number): Promise<MsrpStream> {
  return new Promise((resolve, reject) => {
    let socket: net.Socket;
    const fail = (e: Error) => {
      clearTimeout(timer);
      socket.destroy();
      reject(new Error(`cannot reach ${hop.transport}://${hop.host}:${hop.port}: ${e.message}`));
    };
    const timer = setTimeout(() => fail(new Error('connect timeout')), timeoutMs);
    const ready = () => {
      clearTimeout(timer);
      socket.off('error', fail);
      resolve(socket);
    };
    if (hop.transport === 'tls') {
      const o = cfg.outboundTls;
      socket = tls.connect({
        host: hop.host,
        port: hop.port,
        ...(hop.servername !== undefined ? { servername: hop.servername } : {}),
        rejectUnauthorized: o.rejectUnauthorized,
        minVersion: 'TLSv1.2',
        ...(o.ca !== undefined ? { ca: readFileSync(o.ca) } : {}),
        // relay-to-relay connections present the relay's certificate.
        ...(o.cert !== undefined ? { cert: readFileSync(o.cert) } : {}),
        ...(o.key !== undefined ? { key: readFileSync(o.key) } : {}),
      });
      socket.once('secureConnect', ready);
    } else {
      socket = net.connect({ host: hop.host, port: hop.port });
      socket.once('connect', ready);
    }
    socket.once('error', fail);
  });
}

/** TCP and TLS: listen entries `{ transport: 'tcp' | 'tls', … }` and next hops of either. */
export const tcpTransport: TransportProvider = Object.freeze({
  name: 'core:tcp',
  transports: Object.freeze(['tcp', 'tls']),
  check(entry: ListenConfig): string[] {
    if (entry.transport === 'tls' && (entry.cert === undefined || entry.key === undefined)) return ['a tls listener needs "cert" and "key"'];
    return [];
  },
  listen,
  dial: (hop: NextHop, ctx: TransportContext, timeoutMs: number) => dial(hop, ctx.config(), timeoutMs),
});
