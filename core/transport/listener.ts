/**
 * TCP and TLS listening sockets (R-1 … R-4). A listener only accepts sockets and
 * hands them on; connection caps, hooks and framing are the relay's.
 */

import { readFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import type { ListenConfig } from '../config/schema.ts';
import type { ListenerInfo } from '../types.ts';

export interface Listener {
  readonly info: ListenerInfo;
  config: ListenConfig;
  /** Stops accepting; open connections are the relay's to close. */
  close(): Promise<void>;
  /** Re-reads the certificate and key files (SIGHUP) named by `next`, keeping open connections. */
  reloadCertificates(next: ListenConfig): void;
}

export type SocketHandler = (socket: net.Socket, listener: ListenerInfo) => void;

function tlsOptions(cfg: ListenConfig): tls.SecureContextOptions {
  return {
    cert: readFileSync(cfg.cert!),
    key: readFileSync(cfg.key!),
    ...(cfg.ca !== undefined ? { ca: readFileSync(cfg.ca) } : {}),
    // TLS 1.2 at least (RFC 8996).
    minVersion: cfg.minVersion ?? 'TLSv1.2',
  };
}

/** Binds one listener. Rejects with a message naming it when the port cannot be had. */
export function openListener(cfg: ListenConfig, onSocket: SocketHandler): Promise<Listener> {
  if (cfg.transport !== 'tcp' && cfg.transport !== 'tls') {
    return Promise.reject(new Error(`listen ${cfg.transport}://${cfg.host}:${cfg.port}: the "${cfg.transport}" transport needs the websocket plugin`));
  }
  const secure = cfg.transport === 'tls';
  let info: ListenerInfo;
  let server: net.Server;
  const handle = (socket: net.Socket) => onSocket(socket, info);
  if (secure) {
    let opts: tls.TlsOptions;
    try {
      opts = {
        ...tlsOptions(cfg),
        // ask for a certificate (relay peers present one, R-5) but let clients in
        // without: they authenticate with Digest.
        requestCert: cfg.ca !== undefined,
        rejectUnauthorized: false,
      };
    } catch (e) {
      return Promise.reject(new Error(`listen tls://${cfg.host}:${cfg.port}: cannot read the certificate or key: ${(e as Error).message}`));
    }
    server = tls.createServer(opts, handle);
    // A failed handshake is the peer's problem, not the relay's.
    server.on('tlsClientError', (_err, socket) => socket.destroy());
  } else {
    server = net.createServer(handle);
  }
  server.maxConnections = Number.MAX_SAFE_INTEGER;
  return new Promise((resolve, reject) => {
    const onError = (e: NodeJS.ErrnoException) => {
      reject(new Error(`listen ${cfg.transport}://${cfg.host}:${cfg.port}: ${e.code === 'EADDRINUSE' ? 'the port is in use' : e.message}`));
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
      const listener: Listener = {
        info,
        config: cfg,
        // Stops accepting at once. server.close()'s callback would wait until every accepted
        // connection has gone, which an idle peer (another relay, a client) may never do: the
        // relay closes its connections itself, after the drain.
        close: () => {
          server.close();
          return Promise.resolve();
        },
        reloadCertificates(next) {
          if (!secure) return;
          (server as tls.Server).setSecureContext(tlsOptions(next));
          listener.config = next;
        },
      };
      resolve(listener);
    });
  });
}
