/**
 * Outbound connections to the next hop: TCP, or TLS with SNI and the
 * certificate checked against the URI's host name.
 */

import { readFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import type { RelayConfig } from '../config/schema.ts';
import type { NextHop } from '../types.ts';

/** Opens a socket to the next hop; rejects after `timeoutMs`. */
export function dialNextHop(hop: NextHop, cfg: RelayConfig): Promise<net.Socket> {
  const timeoutMs = cfg.timeouts.connect * 1000;
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
