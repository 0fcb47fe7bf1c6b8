/**
 * The raw pipe: the least any relay can do. Two clients connect, each sends one
 * line `PAIR <token>\r\n`; when both halves of a token are there the proxy
 * answers `OK\r\n` to both and from then on copies bytes each way with
 * stream.pipe (kernel socket buffers and Node's back-pressure, nothing else).
 * It reads no MSRP: the line stands in for AUTH, so a pair costs one short
 * round trip instead of two AUTH transactions.
 *
 * For the auth scenario it is also the least an AUTH server can do: a connection
 * whose first bytes are an MSRP request gets canned answers, 401 with a fixed
 * challenge to an AUTH without Authorization and 200 with a made-up Use-Path to
 * one with it. Nothing is checked (no digest, no nonce, no token kept): what is
 * left is Node accepting a connection, reading two requests, writing two answers
 * and closing, the floor under any relay written on Node's net module.
 *
 *   node --import tsx bench/targets/raw-pipe-proxy.ts --port P
 */

import net from 'node:net';

const port = Number(process.argv[process.argv.indexOf('--port') + 1]);
const MAX_PREAMBLE = 256;
const waiting = new Map<string, net.Socket>();
const CHALLENGE = 'Digest realm="bench", nonce="0123456789abcdef0123456789abcdef", qop="auth", algorithm=MD5';
let useCounter = 0;

/**
 * Answers every complete request in `acc` (AUTH has no body: a frame ends at its end-line) and
 * returns what is left. To-Path of an answer is the request's From-Path (RFC 4975 7.2).
 */
function answerAuths(sock: net.Socket, acc: string): string {
  for (;;) {
    const eol = acc.indexOf('\r\n');
    if (eol === -1) return acc;
    const first = /^MSRP (\S+) AUTH$/.exec(acc.slice(0, eol));
    if (first === null) {
      sock.destroy();
      return '';
    }
    const tid = first[1]!;
    const endLine = `\r\n-------${tid}$\r\n`;
    const end = acc.indexOf(endLine, eol);
    if (end === -1) return acc;
    const head = acc.slice(0, end + 2);
    acc = acc.slice(end + endLine.length);
    const from = /\r\nFrom-Path: *([^\r]*)/.exec(head)?.[1] ?? '';
    const to = /\r\nTo-Path: *([^\r]*)/.exec(head)?.[1] ?? '';
    const answer = head.includes('\r\nAuthorization:')
      ? `200 OK\r\nTo-Path: ${from}\r\nFrom-Path: ${to}\r\nUse-Path: msrp://127.0.0.1:${port}/u${++useCounter};tcp\r\nExpires: 600\r\n`
      : `401 Unauthorized\r\nTo-Path: ${from}\r\nFrom-Path: ${to}\r\nWWW-Authenticate: ${CHALLENGE}\r\n`;
    sock.write(`MSRP ${tid} ${answer}-------${tid}$\r\n`);
  }
}

const server = net.createServer((sock) => {
  sock.setNoDelay(true);
  sock.on('error', () => sock.destroy());
  let acc = '';
  const onData = (d: Buffer) => {
    acc += d.toString('latin1');
    if (acc.startsWith('MSRP ')) {
      acc = answerAuths(sock, acc);
      if (acc.length > 4096) sock.destroy();
      return;
    }
    const eol = acc.indexOf('\r\n');
    if (eol === -1) {
      if (acc.length > MAX_PREAMBLE) sock.destroy();
      return;
    }
    sock.off('data', onData);
    sock.pause();
    const m = /^PAIR (\S+)$/.exec(acc.slice(0, eol));
    if (m === null || acc.length > eol + 2) {
      sock.destroy();
      return;
    }
    const token = m[1]!;
    const other = waiting.get(token);
    if (other === undefined || other.destroyed) {
      waiting.set(token, sock);
      sock.once('close', () => {
        if (waiting.get(token) === sock) waiting.delete(token);
      });
      return;
    }
    waiting.delete(token);
    other.write('OK\r\n');
    sock.write('OK\r\n');
    other.pipe(sock);
    sock.pipe(other);
    other.on('close', () => sock.destroy());
    sock.on('close', () => other.destroy());
  };
  sock.on('data', onData);
});
server.maxConnections = 1_000_000;
server.listen(port, '127.0.0.1', () => process.stdout.write(`raw pipe listening on 127.0.0.1:${port}\n`));
process.on('SIGTERM', () => process.exit(0));
