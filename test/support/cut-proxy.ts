/**
 * A TCP proxy in front of a server (Redis in the chat cluster tests): cut() drops every
 * connection and refuses new ones until restore(), on the same port.
 */

import { createServer, connect, type Server, type Socket } from 'node:net';

export class CutProxy {
  port = 0;
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();

  constructor(
    private readonly target: { host: string; port: number },
  ) {}

  async start(): Promise<this> {
    await this.listen(0);
    return this;
  }

  private listen(port: number): Promise<void> {
    const server = createServer((c) => {
      const u = connect(this.target.port, this.target.host);
      for (const s of [c, u]) {
        this.sockets.add(s);
        s.on('error', () => undefined);
        s.on('close', () => {
          this.sockets.delete(s);
          c.destroy();
          u.destroy();
        });
      }
      c.pipe(u);
      u.pipe(c);
    });
    this.server = server;
    return new Promise((resolve) =>
      server.listen(port, '127.0.0.1', () => {
        this.port = (server.address() as { port: number }).port;
        resolve();
      }),
    );
  }

  async cut(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    for (const x of this.sockets) x.destroy();
    await new Promise((r) => s?.close(r));
  }

  restore(): Promise<void> {
    return this.listen(this.port);
  }

  async close(): Promise<void> {
    if (this.server !== undefined) await this.cut();
  }
}
