/**
 * Loopback ports for tests and benchmarks that start servers of their own (slapd,
 * Kamailio, a relay in a child process): a free one, and waiting until one listens.
 */

import net from 'node:net';

/** A loopback port nobody listens on right now (a server started a moment later can bind it). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

/**
 * Resolves once a TCP connection to 127.0.0.1:`port` succeeds; tries every 50 ms for
 * `timeoutMs`. `check` runs before each try and throws to give up early (the process that
 * should listen has exited).
 */
export async function waitForPort(port: number, timeoutMs: number, check: () => void = () => {}): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    check();
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port }, () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on 127.0.0.1:${port} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
