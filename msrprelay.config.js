// The relay that `npm start` runs: plain TCP and TLS on loopback, accounts in a
// SQLite file, password guessing slowed by the throttle plugin. Copy this file and
// edit it for a real deployment (docs/guides/getting-started.md,
// docs/guides/deployment.md, docs/reference/configuration.md).
//
// On first start a self-signed certificate is generated into ./tls/ and the
// accounts database into ./data/users.db (both ignored by git).

import { fileURLToPath } from 'node:url';

/** @type {import('./core/index.ts').RelayConfigInput} */
export default {
  // The host written into Use-Path URIs, which far ends and peer relays connect to (R-42,
  // RFC 4976 §4.2). 'localhost' only works for clients on this host, and the relay warns about
  // it at start: in production set the relay's FQDN (or an IP address peers can reach).
  hostname: 'localhost',
  listen: [
    // AUTH normally requires TLS; loopback TCP is allowed here for local clients and tests.
    { transport: 'tcp', host: '127.0.0.1', port: 2856, insecureAuth: true },
    { transport: 'tls', host: '127.0.0.1', port: 2855, cert: './tls/relay.pem', key: './tls/relay.key' },
  ],
  session: { minExpires: 60, defaultExpires: 600, maxExpires: 3600 },
  plugins: [
    // Accounts in an OpenSIPS-style `subscriber` table (docs/plugins/auth-sql.md). The file, its
    // folder and the table are created on first start. Manage accounts with
    //   msrprelay users add carol@example.com --password …   (also: passwd, remove, list)
    [
      'auth-sql',
      {
        driver: 'sqlite3',
        // Beside this file, wherever the relay is started from.
        filename: fileURLToPath(new URL('./data/users.db', import.meta.url)),
        // Demo accounts (realm example.com), stored as HA1 only while the table is empty:
        // remove them with `msrprelay users remove alice@example.com` (and bob).
        seed: [
          { username: 'alice', domain: 'example.com', password: 'secret' },
          { username: 'bob', domain: 'example.com', password: 'secret' },
        ],
      },
    ],
    // AUTHs addressed to the relay itself (127.0.0.1, localhost) belong to example.com.
    ['domain-map', { default: 'example.com' }],
    // Password guessing (docs/plugins/throttle.md): the core only closes a connection after 3
    // failed AUTHs, and a guesser reconnects at once. The throttle's AUTH back-off blocks
    // an address, and a username, for 30 s after 5 failures within 5 minutes, doubling for each
    // new block up to an hour: while blocked, every AUTH gets 403 with Retry-After. Keep it on any
    // relay that others can reach (docs/guides/deployment.md).
    ['throttle', { auth: { freeFailures: 5, window: 300, backoff: 30, maxBackoff: 3600 } }],
  ],
};
