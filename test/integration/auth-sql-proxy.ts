// A TCP proxy between auth-sql and a real database server, so a test can take
// "the database" away without stopping a server other tests share.
import net from 'node:net';

export class TcpProxy {
  /** forward: pipe to the server; blackhole: accept and never answer. While down nothing listens (refused). */
  private mode: 'forward' | 'blackhole' = 'forward';
  private server: net.Server | undefined;
  private readonly sockets = new Set<net.Socket>();
  port = 0;

  constructor(private readonly target: { host: string; port: number }) {}

  async start(): Promise<this> {
    await this.listen(0);
    return this;
  }

  /** Refuses connections: the listener is closed and every open connection is cut. */
  async down(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    this.cutAll();
    if (s !== undefined) await new Promise<void>((r) => s.close(() => r()));
  }

  /** Accepts connections but never forwards a byte: a server that hangs. Open connections are cut. */
  async blackhole(): Promise<void> {
    this.mode = 'blackhole';
    this.cutAll();
    if (this.server === undefined) await this.listen(this.port);
  }

  /** Forwards again, on the same port. */
  async up(): Promise<void> {
    this.mode = 'forward';
    if (this.server === undefined) await this.listen(this.port);
  }

  async close(): Promise<void> {
    await this.down();
  }

  private cutAll(): void {
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
  }

  private listen(port: number): Promise<void> {
    const server = net.createServer((client) => {
      this.track(client);
      if (this.mode === 'blackhole') return;
      const upstream = net.connect(this.target);
      this.track(upstream);
      client.pipe(upstream);
      upstream.pipe(client);
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    });
    this.server = server;
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => {
        this.port = (server.address() as net.AddressInfo).port;
        resolve();
      });
    });
  }

  private track(s: net.Socket): void {
    this.sockets.add(s);
    s.on('error', () => {});
    s.on('close', () => this.sockets.delete(s));
  }
}
