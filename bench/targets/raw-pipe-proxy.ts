/**
 * The raw pipe: the least any relay can do. Two clients connect, each sends one
 * line `PAIR <token>\r\n`; when both halves of a token are there the proxy
 * answers `OK\r\n` to both and from then on copies bytes each way with
 * stream.pipe (kernel socket buffers and Node's back-pressure, nothing else).
 * It reads no MSRP: the line stands in for AUTH, so a pair costs one short
 * round trip instead of two AUTH transactions.
 *
 *   node --import tsx bench/targets/raw-pipe-proxy.ts --port P
 */

import net from 'node:net';

const port = Number(process.argv[process.argv.indexOf('--port') + 1]);
const MAX_PREAMBLE = 256;
const waiting = new Map<string, net.Socket>();

const server = net.createServer((sock) => {
  sock.setNoDelay(true);
  sock.on('error', () => sock.destroy());
  let acc = '';
  const onData = (d: Buffer) => {
    acc += d.toString('latin1');
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
