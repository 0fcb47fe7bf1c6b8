/**
 * MSRP clients for a hand run of the SIPp scenarios: each AUTHs at the example's relay as
 * `user` and one line per client goes to the CSV (user;relay token;own URI, without "msrp://"
 * and ";tcp"), which SIPp reads with -inf. The clients stay connected and print what the room
 * sends them until Ctrl-C.
 *
 *   node --import tsx examples/sip-chat-server/sipp/msrp-users.ts alice 1 users.csv
 *   (user, how many clients, the CSV; the relay at 127.0.0.1:2859, password "secret")
 */

import { writeFileSync } from 'node:fs';
import { MsrpTestClient } from '../../../core/testing/index.ts';

const [user = 'alice', count = '1', file = 'users.csv'] = process.argv.slice(2);
const port = Number(process.env.MSRP_PORT ?? 2859);
const bare = (uri: string) => uri.replace(/^msrps?:\/\//, '').replace(/;tcp$/, '');
const lines: string[] = [];
for (let i = 0; i < Number(count); i++) {
  const c = await MsrpTestClient.connect({ port, timeoutMs: 10_000, storeBodies: false });
  const auth = await c.auth({ relayUri: 'msrp://example.com;tcp', username: user, password: process.env.MSRP_PASSWORD ?? 'secret' });
  if (auth.status !== 200) throw new Error(`AUTH as ${user}: ${auth.status}`);
  lines.push(`${user};${bare(auth.usePath[0]!)};${bare(c.uri)}`);
  c.onRequest((f) => {
    if (f.method === 'SEND' && f.bodyLength > 0) console.log(`${user}#${i + 1} got ${f.bodyLength} bytes (${f.header('Content-Type')})`);
  });
}
writeFileSync(file, `SEQUENTIAL\n${lines.join('\n')}\n`);
console.log(`${lines.length} MSRP client(s) of ${user} in ${file}; Ctrl-C ends them`);
