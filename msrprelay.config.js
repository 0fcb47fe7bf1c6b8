// The relay that `npm start` runs: plain TCP and TLS on loopback, two demo
// accounts in memory. Copy this file and edit it for a real deployment
// (docs/guides/getting-started.md, docs/reference/configuration.md).
//
// On first start a self-signed certificate is generated into ./tls/ (ignored by git).

/** @type {import('./core/index.ts').RelayConfigInput} */
export default {
  // The host written into Use-Path URIs: in production the relay's FQDN.
  hostname: 'localhost',
  listen: [
    // AUTH normally requires TLS; loopback TCP is allowed here for local clients and tests.
    { transport: 'tcp', host: '127.0.0.1', port: 2856, insecureAuth: true },
    { transport: 'tls', host: '127.0.0.1', port: 2855, cert: './tls/relay.pem', key: './tls/relay.key' },
  ],
  session: { minExpires: 60, defaultExpires: 600, maxExpires: 3600 },
  plugins: [
    // Demo accounts (realm example.com): replace with your users, or with auth-sql / auth-ldap.
    [
      'auth-memory',
      {
        users: [
          { username: 'alice', domain: 'example.com', password: 'secret' },
          { username: 'bob', domain: 'example.com', password: 'secret' },
        ],
      },
    ],
    // AUTHs addressed to the relay itself (127.0.0.1, localhost) belong to example.com.
    ['domain-map', { default: 'example.com' }],
  ],
};
