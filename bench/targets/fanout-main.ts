/**
 * The fan-out limit of the chat scenario: a plain Node process with no MSRP in it. It accepts
 * connections whose first line says what they are:
 *
 *   `MEMBER <i>\r\n`  participant i: it is written the copies of the others' messages; what it
 *                     sends back (its 200s) is read and dropped;
 *   `SENDER <i>\r\n`  the messages of participant i: each a 4-octet big-endian length and that
 *                     many octets, which are written as they are to every member but i.
 *
 * Both are answered `OK\r\n`. The length prefix only tells where a message ends (the relay
 * knows that from MSRP); the octets written to the members are the copy's, unchanged, one
 * Buffer shared by every member (no copy per recipient). Per read of a sender, each member's
 * socket is corked once, so a burst of messages goes out in one write per member: what moving
 * those octets costs on Node at the least.
 *
 * node --import tsx bench/targets/fanout-main.ts --port P
 */

import net from 'node:net';
import { parseArgs } from 'node:util';

const { values } = parseArgs({ options: { port: { type: 'string' } } });
const members = new Map<number, net.Socket>();

function onSender(s: net.Socket, from: number, rest: Buffer): void {
  let pending: Buffer = Buffer.alloc(0);
  const handle = (d: Buffer) => {
    const buf = pending.length === 0 ? d : Buffer.concat([pending, d]);
    const out: Buffer[] = [];
    let off = 0;
    while (buf.length - off >= 4) {
      const n = buf.readUInt32BE(off);
      if (buf.length - off - 4 < n) break;
      out.push(buf.subarray(off + 4, off + 4 + n));
      off += 4 + n;
    }
    pending = off === buf.length ? Buffer.alloc(0) : buf.subarray(off);
    if (out.length === 0) return;
    for (const [i, m] of members) {
      if (i === from || m.destroyed) continue;
      m.cork();
      for (const b of out) m.write(b);
      m.uncork();
    }
  };
  if (rest.length > 0) handle(rest);
  s.on('data', handle);
}

const server = net.createServer((s) => {
  s.setNoDelay(true);
  s.on('error', () => undefined);
  let head = Buffer.alloc(0);
  const first = (d: Buffer) => {
    head = Buffer.concat([head, d]);
    const eol = head.indexOf('\r\n');
    if (eol === -1) return;
    s.off('data', first);
    const [what, n] = head.subarray(0, eol).toString('latin1').split(' ');
    const i = Number(n);
    const rest = head.subarray(eol + 2);
    s.write('OK\r\n');
    if (what === 'MEMBER') {
      members.set(i, s);
      s.on('close', () => {
        if (members.get(i) === s) members.delete(i);
      });
      // Its 200s: read and dropped.
      s.on('data', () => undefined);
    } else onSender(s, i, rest);
  };
  s.on('data', first);
});
server.listen(Number(values.port), '127.0.0.1');
const stop = () => {
  server.close();
  for (const m of members.values()) m.destroy();
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
