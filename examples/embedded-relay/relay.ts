/**
 * A relay inside your own Node application (docs/guides/embedding.md).
 *
 * It listens on loopback TCP, takes its users from the application (here a Map),
 * and reports each session's traffic to the application when the session ends.
 * In your project, import from 'msrprelay' instead of the relative paths.
 *
 *   node --import tsx examples/embedded-relay/relay.ts     (then: node bin/msrprelay.js client --selftest --relay 'msrp://127.0.0.1:2858;tcp')
 */

import { computeHa1 } from '../../core/protocol/index.ts';
import { createRelay, type Relay, type RelayPlugin, type SessionInfo, type CloseReason } from '../../core/index.ts';

/** What the application keeps: HA1 per user@domain (never the password). */
export type UserStore = Map<string, string>;

/** The application's own plugin: credentials from its store, usage records to its callback. */
function appPlugin(users: UserStore, onUsage: (s: SessionInfo, why: CloseReason) => void): RelayPlugin {
  return {
    name: 'my-app',
    apply(relay) {
      relay.hooks.lookupCredentials.tapPromise('my-app', async ({ username, realm }) => {
        const ha1 = users.get(`${username}@${realm}`);
        return ha1 === undefined ? undefined : { ha1 };
      });
      relay.hooks.sessionClosed.tap('my-app', onUsage);
    },
  };
}

export async function startEmbeddedRelay(o: { port?: number; users: UserStore; onUsage?: (s: SessionInfo, why: CloseReason) => void }): Promise<Relay> {
  const relay = await createRelay({
    hostname: '127.0.0.1',
    listen: [{ transport: 'tcp', host: '127.0.0.1', port: o.port ?? 2858, insecureAuth: true }],
    plugins: [['domain-map', { default: 'example.com' }], appPlugin(o.users, o.onUsage ?? (() => {}))],
  });
  await relay.listen();
  return relay;
}

export function addUser(users: UserStore, username: string, domain: string, password: string): void {
  users.set(`${username}@${domain}`, computeHa1(username, domain, password));
}

// Run directly: a relay with alice and bob until Ctrl-C.
if (import.meta.url === `file://${process.argv[1]}`) {
  const users: UserStore = new Map();
  addUser(users, 'alice', 'example.com', 'secret');
  addUser(users, 'bob', 'example.com', 'secret');
  const relay = await startEmbeddedRelay({
    users,
    onUsage: (s, why) => console.log(`session of ${s.identity.username}: ${s.stats.bytesOut} bytes out, ${s.stats.bytesIn} in (${why.code})`),
  });
  console.log(`relay on msrp://127.0.0.1:${relay.listeners[0]!.port};tcp`);
  process.once('SIGINT', () => void relay.close());
}
