/**
 * `msrprelay client`: an MSRP endpoint on the command line, built on the test
 * client (core/testing/client.ts). It connects to a relay, authenticates (RFC
 * 4976 AUTH with Digest), prints the path that reaches it and then chats: lines
 * of stdin go out as text/plain SENDs, `/file PATH` sends a file in 64 KiB
 * chunks, and what arrives is printed (text) or saved (anything else). It also
 * sends once and exits (--message, --file, --wait) for scripts, and runs a
 * two-user self-test (--selftest) that is the README's "try it".
 */

import { createHash, randomBytes, type Hash } from 'node:crypto';
import { closeSync, createReadStream, fstatSync, mkdirSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, extname, isAbsolute, join, relative, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import type { ConnectionOptions } from 'node:tls';
import { parseArgs } from 'node:util';
import { parseByteRange } from './protocol/message.ts';
import { parsePath, parseUri, uriEquals, UriError, type MsrpUri } from './protocol/uri.ts';
import { MsrpTestClient, sha256Hex, type ReceivedFrame } from './testing/client.ts';

const USAGE = `Usage: msrprelay client --user USER@DOMAIN [--to PATH] [options]
       msrprelay client --selftest [options]

An MSRP endpoint on the command line. It connects to a relay, authenticates
(RFC 4976 AUTH with Digest) and prints the path that reaches it, as one line
"path: URI URI". Another client sends to that path with --to.

Without --to it waits and answers whoever writes first; with --to it writes to
that path. Every line typed on stdin is then sent as a text message, and
"/file FILE" sends a file. Received text is printed as "<sender URI> text";
other content is saved under --save-dir with its size and SHA-256. End of
input (Ctrl-D) or "/quit" closes the connection.

  terminal 1:  msrprelay client --user alice@example.com --password secret
               path: msrp://localhost:2856/...;tcp msrp://127.0.0.1:.../...;tcp
  terminal 2:  msrprelay client --user bob@example.com --password secret \\
                 --to "<the path that alice's client printed>"

Connection:
      --relay URI       the relay (default msrp://127.0.0.1:2856;tcp, the TCP
                        listener of npm start; its TLS listener is
                        msrps://127.0.0.1:2855;tcp)
  -u, --user USER@DOMAIN
                        the account; the part before the @ is the Digest user name
  -p, --password PW     its password (default: $MSRPRELAY_PASSWORD)
      --insecure        msrps: accept any certificate (a self-signed one)
      --ca FILE         msrps: trust the certificate or CA in FILE (e.g. tls/relay.pem)
      --timeout SECONDS how long to wait for an answer of the relay (default 30)

Sending and receiving:
      --to PATH         the far end's path as its client printed it (quote it)
  -m, --message TEXT    send TEXT to --to, exit once the relay has taken it
  -f, --file FILE       send FILE to --to in 64 KiB chunks, exit likewise
      --wait N          exit after receiving N messages (after sending, if
                        --message or --file is given); stdin is not read
      --save-dir DIR    where received files go (default: the working directory)

Self-test:
      --selftest        connect as two users, exchange a text message each way
                        and a 1 MiB file, print one PASS or FAIL line per check
                        and "N passed, N failed"; exit 0 only if all passed.
                        Users: --user/--password and --user2/--password2,
                        default alice@example.com and bob@example.com, "secret"
  -h, --help            print this help

Exit status: 0 on success, 1 when connecting, AUTH or a transfer fails or the
relay closes the connection, 2 on a bad command line.
`;

/** Where runClient writes and reads; the defaults are the process's. */
export interface ClientIO {
  stdout(text: string): void;
  stderr(text: string): void;
  cwd: string;
  env: Readonly<Record<string, string | undefined>>;
  /** The chat lines (interactive mode only; never read otherwise). */
  stdin: NodeJS.ReadableStream;
  /** SIGINT ends an interactive chat like end of input. */
  signals: Pick<NodeJS.EventEmitter, 'on' | 'off'>;
}

const defaultIO = (): ClientIO => ({
  stdout: (t) => process.stdout.write(t.endsWith('\n') ? t : `${t}\n`),
  stderr: (t) => process.stderr.write(t.endsWith('\n') ? t : `${t}\n`),
  cwd: process.cwd(),
  env: process.env,
  stdin: process.stdin,
  signals: process,
});

/** Bytes per SEND chunk, and per read of a file being sent. */
const CHUNK = 64 * 1024;
/** A text/* message larger than this is saved as a file rather than printed. */
const MAX_PRINTED_TEXT = 1024 * 1024;
const SELFTEST_FILE_SIZE = 1024 * 1024;
const DEFAULT_RELAY = 'msrp://127.0.0.1:2856;tcp';
const DEMO_USERS = ['alice@example.com', 'bob@example.com'] as const;
const DEMO_PASSWORD = 'secret';

/**
 * Runs `msrprelay client` with `argv` (the arguments after "client") and
 * resolves with the exit code once the connection is closed.
 */
export async function runClient(argv: string[], io: Partial<ClientIO> = {}): Promise<number> {
  const cli: ClientIO = { ...defaultIO(), ...io };
  let o: Options;
  try {
    o = parseOptions(argv, cli);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    cli.stderr(`msrprelay client: ${e.message}\nTry "msrprelay client --help".`);
    return 2;
  }
  if (o.help) {
    cli.stdout(USAGE);
    return 0;
  }
  try {
    return o.selftest ? await selftest(o, cli) : await chat(o, cli);
  } catch (e) {
    if (!(e instanceof ClientError)) throw e;
    cli.stderr(`msrprelay client: ${e.message}`);
    return 1;
  }
}

// ------------------------------------------------------------------ options

/** A bad command line: exit 2. */
class UsageError extends Error {}

/** A failure to connect, authenticate or transfer, said for a person: exit 1. */
class ClientError extends Error {}

interface RelayTarget {
  /** As given: the To-Path of the AUTH and its Digest uri (R-36). */
  uri: string;
  host: string;
  port: number;
  tls: boolean | ConnectionOptions;
}

interface Account {
  /** As given, e.g. alice@example.com. */
  name: string;
  /** The Digest user name: the part before the last @. */
  username: string;
  /** The part after it, '' without one. */
  domain: string;
  password: string;
}

interface Options {
  help: boolean;
  selftest: boolean;
  relay: RelayTarget;
  /** Undefined only with --help. */
  account: Account | undefined;
  /** --selftest's second user. */
  account2: Account;
  to: string[] | undefined;
  message: string | undefined;
  file: string | undefined;
  wait: number | undefined;
  saveDir: string;
  timeoutMs: number;
}

function parseOptions(argv: string[], cli: ClientIO): Options {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: argv,
      allowPositionals: false,
      strict: true,
      options: {
        relay: { type: 'string' },
        user: { type: 'string', short: 'u' },
        password: { type: 'string', short: 'p' },
        user2: { type: 'string' },
        password2: { type: 'string' },
        insecure: { type: 'boolean' },
        ca: { type: 'string' },
        timeout: { type: 'string' },
        to: { type: 'string' },
        message: { type: 'string', short: 'm' },
        file: { type: 'string', short: 'f' },
        wait: { type: 'string' },
        'save-dir': { type: 'string' },
        selftest: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const str = (name: string): string | undefined => values[name] as string | undefined;
  const help = values.help === true;
  const selftest = values.selftest === true;
  const relay = parseRelay(str('relay') ?? DEFAULT_RELAY, values.insecure === true, str('ca'), cli.cwd);

  const password = str('password') ?? cli.env.MSRPRELAY_PASSWORD;
  let account: Account | undefined;
  if (selftest) {
    for (const name of ['to', 'message', 'file', 'wait']) if (values[name] !== undefined) throw new UsageError(`--selftest cannot be combined with --${name}`);
    account = parseAccount(str('user') ?? DEMO_USERS[0], password ?? DEMO_PASSWORD, '--user');
  } else if (!help) {
    const user = str('user');
    if (user === undefined) throw new UsageError('--user is required (e.g. --user alice@example.com)');
    if (password === undefined) throw new UsageError('no password: give --password or set MSRPRELAY_PASSWORD');
    account = parseAccount(user, password, '--user');
  }
  const account2 = parseAccount(str('user2') ?? DEMO_USERS[1], str('password2') ?? DEMO_PASSWORD, '--user2');

  let to: string[] | undefined;
  const toValue = str('to');
  if (toValue !== undefined) {
    const text = toValue.replace(/^\s*path:\s*/, '');
    try {
      to = parsePath(text).map((u) => u.raw);
    } catch (e) {
      throw new UsageError(`--to: ${e instanceof UriError ? e.message : String(e)}`);
    }
    if (parseUri(to[to.length - 1]!).sessionId === undefined) throw new UsageError('--to: the last URI of a path is an endpoint and has a session-id');
  }
  const message = str('message');
  const file = str('file');
  if ((message !== undefined || file !== undefined) && to === undefined) throw new UsageError('--message and --file need --to (the far end\'s path)');

  return {
    help,
    selftest,
    relay,
    account,
    account2,
    to,
    message,
    file: file === undefined ? undefined : resolve(cli.cwd, file),
    wait: str('wait') === undefined ? undefined : positiveInteger(str('wait')!, '--wait'),
    saveDir: resolve(cli.cwd, str('save-dir') ?? '.'),
    timeoutMs: str('timeout') === undefined ? 30_000 : positiveNumber(str('timeout')!, '--timeout') * 1000,
  };
}

function parseRelay(text: string, insecure: boolean, ca: string | undefined, cwd: string): RelayTarget {
  let u: MsrpUri;
  try {
    u = parseUri(text);
  } catch (e) {
    throw new UsageError(`--relay: ${e instanceof UriError ? e.message : String(e)}`);
  }
  if (u.sessionId !== undefined) throw new UsageError(`--relay: ${text} has a session-id; give the relay's own URI, e.g. ${DEFAULT_RELAY}`);
  if (u.transport !== 'tcp') throw new UsageError(`--relay: transport ${u.transport} is not supported (tcp only)`);
  const secure = u.scheme === 'msrps';
  if (!secure && (insecure || ca !== undefined)) throw new UsageError('--insecure and --ca are for a TLS relay (msrps://...)');
  let tlsOption: RelayTarget['tls'] = secure;
  if (secure && ca !== undefined) {
    let pem: Buffer;
    try {
      pem = readFileSync(resolve(cwd, ca));
    } catch (e) {
      throw new UsageError(`--ca: cannot read ${ca}: ${(e as Error).message}`);
    }
    tlsOption = insecure ? { ca: pem, rejectUnauthorized: false } : { ca: pem };
  } else if (secure) {
    tlsOption = insecure ? true : {};
  }
  // RFC 4976 §8: 2855 when the URI (a name) has no port.
  return { uri: text, host: u.host, port: u.port ?? 2855, tls: tlsOption };
}

function parseAccount(name: string, password: string, flag: string): Account {
  const at = name.lastIndexOf('@');
  const username = at === -1 ? name : name.slice(0, at);
  if (username === '') throw new UsageError(`${flag}: no user name in "${name}"`);
  return { name, username, domain: at === -1 ? '' : name.slice(at + 1), password };
}

function positiveInteger(text: string, flag: string): number {
  if (!/^\d+$/.test(text) || Number(text) < 1) throw new UsageError(`${flag} wants a whole number >= 1, not "${text}"`);
  return Number(text);
}

function positiveNumber(text: string, flag: string): number {
  const n = Number(text);
  if (text.trim() === '' || !Number.isFinite(n) || n <= 0) throw new UsageError(`${flag} wants a number of seconds > 0, not "${text}"`);
  return n;
}

// ---------------------------------------------------------------- endpoint

/** A message received complete. */
type Delivery =
  | { kind: 'text'; from: string; messageId: string; text: string }
  | { kind: 'file'; from: string; messageId: string; file: string; size: number; sha256: string };

interface FileSent {
  name: string;
  size: number;
  chunks: number;
  sha256: string;
}

/** A message being received: text gathered for printing, anything else written to a file as it arrives. */
type Incoming =
  | { kind: 'text'; from: string; parts: Array<{ start: number; data: Buffer }>; bytes: number; name: string | undefined }
  | { kind: 'file'; from: string; fd: number; file: string; hash: Hash; next: number; inOrder: boolean };

interface EndpointOptions {
  relay: RelayTarget;
  account: Account;
  saveDir: string;
  timeoutMs: number;
  /** Progress and problems that are no delivery (a failure REPORT, a file that cannot be written). */
  note(line: string): void;
}

/**
 * One authenticated connection to the relay: its path, who it talks to, a send
 * queue (one message on the wire at a time, in the order asked) and the
 * reassembly of what arrives.
 */
class Endpoint {
  /** The relay's URIs for this client (Use-Path of the AUTH 200). */
  readonly usePath: string[];
  /** What reaches this client: the Use-Path URIs and its own URI. */
  readonly path: string[];
  /** Seconds the relay keeps the path while nobody uses it. */
  readonly expires: number | undefined;
  /** The far end's path (its relay's URIs and its own); learnt from the first SEND when not set. */
  peer: string[] | undefined;
  /** Called with every message received complete, in order of completion. */
  onDelivery: (d: Delivery) => void = () => {};
  /** Called once, when the far end's path is learnt from an incoming SEND. */
  onPeer: (path: string[]) => void = () => {};

  private readonly incoming = new Map<string, Incoming>();
  private sending: Promise<unknown> = Promise.resolve();
  /** Completions in arrival order (a file's hash may need a read of the file). */
  private finishing: Promise<void> = Promise.resolve();
  private closing = false;

  static async open(o: EndpointOptions): Promise<Endpoint> {
    const { relay, account } = o;
    let client: MsrpTestClient;
    try {
      client = await MsrpTestClient.connect({ host: relay.host, port: relay.port, tls: relay.tls, storeBodies: false, timeoutMs: o.timeoutMs });
    } catch (e) {
      throw new ClientError(connectFailure(relay, e));
    }
    try {
      const r = await client.auth({ relayUri: relay.uri, username: account.username, password: account.password });
      if (r.status !== 200) throw new ClientError(`AUTH as ${account.name} failed: ${authFailure(r.response, account)}`);
      if (r.usePath.length === 0) throw new ClientError(`AUTH as ${account.name}: the relay's 200 has no Use-Path`);
      return new Endpoint(client, r.usePath, r.expires, o);
    } catch (e) {
      client.destroy();
      if (e instanceof ClientError) throw e;
      throw new ClientError(`AUTH as ${account.name} at ${relay.uri} failed: ${client.isClosed ? 'the relay closed the connection' : firstLine(e)}`);
    }
  }

  private constructor(
    private readonly client: MsrpTestClient,
    usePath: string[],
    expires: number | undefined,
    private readonly o: EndpointOptions,
  ) {
    this.usePath = usePath;
    this.path = [...usePath, client.uri];
    this.expires = expires;
    client.onRequest((f) => {
      try {
        this.onRequest(f);
      } catch (e) {
        o.note(`cannot take a ${f.method} from ${f.fromPath.at(-1) ?? '?'}: ${firstLine(e)}`);
      }
    });
    void client.closed.then(() => this.dropIncoming());
  }

  /** Resolves when the connection has closed, whoever closed it. */
  get closed(): Promise<void> {
    return this.client.closed;
  }

  /** True once the connection closed without close() being called. */
  get lost(): boolean {
    return this.client.isClosed && !this.closing;
  }

  /** Sends a text/plain message to the peer; resolves once the relay answered 200. */
  sendText(text: string): Promise<void> {
    return this.enqueue(async () => {
      const { responses } = await this.client.sendMessage({
        toPath: this.toPath(),
        body: text,
        contentType: 'text/plain',
        chunkSize: CHUNK,
        successReport: 'no',
        failureReport: 'yes',
      });
      checkResponses(responses, 'message');
    });
  }

  /**
   * Sends a file to the peer as one message in 64 KiB chunks, read as it goes;
   * `progress` hears of every chunk handed to the connection. Resolves once the
   * relay answered 200 to every chunk.
   */
  sendFile(file: string, progress?: (sent: number, size: number) => void): Promise<FileSent> {
    return this.enqueue(async () => {
      const toPath = this.toPath();
      let fd: number;
      try {
        fd = openSync(file, 'r');
      } catch (e) {
        throw new ClientError(`cannot read ${file}: ${(e as Error).message}`);
      }
      try {
        const st = fstatSync(fd);
        if (!st.isFile()) throw new ClientError(`${file} is not a regular file`);
        const size = st.size;
        const name = basename(file);
        let readFailure: Error | undefined;
        const source = (offset: number, len: number): Buffer => {
          const buf = Buffer.allocUnsafe(len);
          try {
            for (let got = 0; got < len; ) {
              const n = readSync(fd, buf, got, len - got, offset + got);
              if (n === 0) throw new Error(`${file} became shorter while it was being sent`);
              got += n;
            }
          } catch (e) {
            readFailure = e as Error;
            throw e;
          }
          progress?.(offset + len, size);
          return buf;
        };
        try {
          const r = await this.client.streamMessage({
            toPath,
            size,
            source,
            pieceSize: CHUNK,
            chunkSize: CHUNK,
            contentType: 'application/octet-stream',
            extraHeaders: [['Content-Disposition', `attachment; filename="${quoteFilename(name)}"`]],
            successReport: 'no',
            failureReport: 'yes',
          });
          checkResponses(r.responses, name);
          return { name, size, chunks: r.responses.length, sha256: r.sha256 };
        } catch (e) {
          // A chunk left without its end-line: the connection cannot carry anything else.
          if (readFailure !== undefined) this.client.destroy();
          throw e;
        }
      } finally {
        closeSync(fd);
      }
    });
  }

  /** Resolves once everything asked of sendText and sendFile so far is done (or failed). */
  idle(): Promise<void> {
    return this.sending.then(
      () => {},
      () => {},
    );
  }

  /** Ends the connection (after the sends in progress), and any file half received is removed. */
  async close(): Promise<void> {
    await this.idle();
    await this.finishing;
    this.closing = true;
    await this.client.close();
  }

  private enqueue<T>(job: () => Promise<T>): Promise<T> {
    const run = this.sending.then(
      () => job(),
      () => job(),
    );
    this.sending = run;
    return run.then(
      (v) => {
        this.client.forget();
        return v;
      },
      (e: unknown) => {
        this.client.forget();
        if (e instanceof ClientError) throw e;
        throw new ClientError(this.client.isClosed ? 'not sent: the connection is closed' : `not sent: ${firstLine(e)}`);
      },
    );
  }

  private toPath(): string[] {
    if (this.peer === undefined) throw new ClientError('nobody to send to yet: wait for a message, or start with --to');
    return [...this.usePath, ...this.peer];
  }

  // ----------------------------------------------------------- receiving

  private onRequest(f: ReceivedFrame): void {
    if (f.method === 'REPORT') {
      const status = f.header('Status') ?? '';
      if (!/^000 200\b/.test(status)) this.o.note(`not delivered: message ${f.header('Message-ID') ?? '?'}: ${status.replace(/^000 /, '')}`);
      return;
    }
    if (f.method !== 'SEND') {
      // RFC 4975 §12: a method this endpoint does not know (NICKNAME and others).
      this.client.respond(f, 501, 'Request-method-not-understood');
      return;
    }
    const messageId = f.header('Message-ID');
    // A SEND without a body keeps a session alive; there is nothing to show.
    if (messageId === undefined || !f.hasBody) return;
    const from = f.fromPath.at(-1) ?? '?';
    if (this.peer === undefined) {
      this.peer = this.farPath(f.fromPath);
      this.onPeer(this.peer);
    }
    const known = this.incoming.get(messageId);
    let m: Incoming = known ?? this.startIncoming(f, from, messageId);
    if (known === undefined) this.incoming.set(messageId, m);
    const start = parseByteRange(f.header('Byte-Range') ?? '')?.start ?? 1;
    if (m.kind === 'text') {
      m.parts.push({ start, data: f.body });
      m.bytes += f.body.length;
      if (m.bytes > MAX_PRINTED_TEXT) {
        m = this.textToFile(m, messageId);
        this.incoming.set(messageId, m);
      }
    } else {
      this.writeChunk(m, start, f.body);
    }
    if (f.flag === '#') {
      this.incoming.delete(messageId);
      this.discard(m);
      this.o.note(`message ${messageId} from ${from} was interrupted by the sender`);
      return;
    }
    if (this.client.message(messageId)?.complete !== true) return;
    this.incoming.delete(messageId);
    this.client.forget();
    const done = m;
    this.finishing = this.finishing.then(async () => {
      try {
        this.onDelivery(await this.complete(done, messageId));
      } catch (e) {
        this.o.note(`message ${messageId} from ${from}: ${firstLine(e)}`);
      }
    });
  }

  /**
   * The far end's path from a From-Path: this client's own relay URIs come first
   * when the relay writes them (R-58), and are left out.
   */
  private farPath(fromPath: string[]): string[] {
    let i = 0;
    while (i < fromPath.length - 1 && i < this.usePath.length && sameUri(fromPath[i]!, this.usePath[i]!)) i++;
    return fromPath.slice(i);
  }

  private startIncoming(f: ReceivedFrame, from: string, messageId: string): Incoming {
    const type = (f.header('Content-Type') ?? '').toLowerCase();
    const disposition = f.header('Content-Disposition');
    const name = filenameOf(disposition);
    if (type.startsWith('text/') && !/^\s*attachment\b/i.test(disposition ?? '')) return { kind: 'text', from, parts: [], bytes: 0, name };
    return this.openFile(from, name ?? `msrp-${messageId}${type === '' || type.startsWith('text/') ? '.txt' : '.bin'}`);
  }

  private openFile(from: string, name: string): Incoming & { kind: 'file' } {
    mkdirSync(this.o.saveDir, { recursive: true });
    const ext = extname(name);
    const stem = name.slice(0, name.length - ext.length);
    for (let n = 0; ; n++) {
      const file = join(this.o.saveDir, n === 0 ? name : `${stem}-${n}${ext}`);
      try {
        // 'wx': never over an existing file.
        return { kind: 'file', from, fd: openSync(file, 'wx', 0o644), file, hash: createHash('sha256'), next: 1, inOrder: true };
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST' || n >= 999) throw e;
      }
    }
  }

  private textToFile(m: Incoming & { kind: 'text' }, messageId: string): Incoming & { kind: 'file' } {
    const f = this.openFile(m.from, m.name ?? `msrp-${messageId}.txt`);
    for (const p of m.parts) this.writeChunk(f, p.start, p.data);
    return f;
  }

  private writeChunk(m: Incoming & { kind: 'file' }, start: number, data: Buffer): void {
    for (let off = 0; off < data.length; ) off += writeSync(m.fd, data, off, data.length - off, start - 1 + off);
    if (start === m.next) {
      m.hash.update(data);
      m.next += data.length;
    } else {
      m.inOrder = false;
    }
  }

  private async complete(m: Incoming, messageId: string): Promise<Delivery> {
    if (m.kind === 'text') {
      const body = Buffer.concat(m.parts.sort((a, b) => a.start - b.start).map((p) => p.data));
      return { kind: 'text', from: m.from, messageId, text: body.toString('utf8') };
    }
    const size = fstatSync(m.fd).size;
    closeSync(m.fd);
    // Chunks out of order (or sent twice): the hash of the file as written.
    const sha256 = m.inOrder ? m.hash.digest('hex') : await hashFile(m.file);
    return { kind: 'file', from: m.from, messageId, file: m.file, size, sha256 };
  }

  private discard(m: Incoming): void {
    if (m.kind !== 'file') return;
    closeSync(m.fd);
    rmSync(m.file, { force: true });
  }

  /** The connection closed: what is half received will not be completed. */
  private dropIncoming(): void {
    for (const [id, m] of this.incoming) {
      this.discard(m);
      if (m.kind === 'file') this.o.note(`message ${id} from ${m.from} was cut off: ${m.file} removed`);
    }
    this.incoming.clear();
  }
}

// ------------------------------------------------------------------- chat

async function chat(o: Options, cli: ClientIO): Promise<number> {
  const account = o.account!;
  const ep = await Endpoint.open({ relay: o.relay, account, saveDir: o.saveDir, timeoutMs: o.timeoutMs, note: (l) => cli.stderr(l) });
  const unused = ep.expires !== undefined ? `; unused, it expires in ${ep.expires} s` : '';
  cli.stdout(`authenticated as ${account.name} at ${o.relay.uri}${unused}`);
  cli.stdout(`path: ${ep.path.join(' ')}`);
  if (o.to !== undefined) ep.peer = o.to;
  else if (o.message === undefined && o.file === undefined) ep.onPeer = (p) => cli.stdout(`replying to: ${p.join(' ')}`);

  let received = 0;
  let allReceived: () => void = () => {};
  const gotAll = new Promise<void>((r) => (allReceived = r));
  ep.onDelivery = (d) => {
    cli.stdout(describeDelivery(d, cli.cwd));
    received++;
    if (o.wait !== undefined && received >= o.wait) allReceived();
  };

  try {
    if (o.message !== undefined) {
      await ep.sendText(o.message);
      cli.stdout(`sent ${Buffer.byteLength(o.message)} bytes`);
    }
    if (o.file !== undefined) {
      const sent = await ep.sendFile(o.file, progressPrinter(cli, basename(o.file)));
      cli.stdout(describeSent(sent));
    }
    if (o.wait !== undefined) {
      await Promise.race([gotAll, ep.closed]);
      if (received < o.wait) throw new ClientError(`the relay closed the connection after ${received} of ${o.wait} messages`);
    } else if (o.message === undefined && o.file === undefined) {
      await interactive(ep, cli);
      if (ep.lost) throw new ClientError('the relay closed the connection');
    }
  } finally {
    await ep.close();
  }
  return 0;
}

/** Lines of stdin until its end, "/quit", SIGINT or the connection closing. */
function interactive(ep: Endpoint, cli: ClientIO): Promise<void> {
  return new Promise<void>((done) => {
    const rl = createInterface({ input: cli.stdin, crlfDelay: Infinity });
    const warn = (e: unknown): void => cli.stderr(e instanceof Error ? e.message : String(e));
    rl.on('line', (line) => {
      const command = /^\/(\w+)\s*(.*)$/.exec(line);
      if (command?.[1] === 'quit') {
        rl.close();
      } else if (command?.[1] === 'file') {
        const file = resolve(cli.cwd, command[2]!.trim());
        if (command[2]!.trim() === '') cli.stderr('usage: /file PATH');
        else ep.sendFile(file, progressPrinter(cli, basename(file))).then((s) => cli.stdout(describeSent(s)), warn);
      } else if (line !== '') {
        ep.sendText(line).catch(warn);
      }
    });
    const onSigint = (): void => {
      rl.close();
    };
    cli.signals.on('SIGINT', onSigint);
    void ep.closed.then(() => rl.close());
    rl.once('close', () => {
      cli.signals.off('SIGINT', onSigint);
      done();
    });
  });
}

// --------------------------------------------------------------- selftest

async function selftest(o: Options, cli: ClientIO): Promise<number> {
  const a = o.account!;
  const b = o.account2;
  const work = mkdtempSync(join(tmpdir(), 'msrprelay-selftest-'));
  let passed = 0;
  let failed = 0;
  const check = async <T>(label: string, run: () => Promise<[T, string]>): Promise<T | undefined> => {
    try {
      const [value, detail] = await run();
      cli.stdout(`PASS ${label}${detail === '' ? '' : `: ${detail}`}`);
      passed++;
      return value;
    } catch (e) {
      cli.stdout(`FAIL ${label}: ${firstLine(e)}`);
      failed++;
      return undefined;
    }
  };
  const open = (account: Account, who: string): Promise<Endpoint> =>
    Endpoint.open({
      relay: o.relay,
      account,
      saveDir: join(work, who),
      timeoutMs: o.timeoutMs,
      note: (l) => cli.stderr(`${account.name}: ${l}`),
    });
  const authenticated = (ep: Endpoint): [Endpoint, string] => [ep, `path ${ep.path.join(' ')}`];

  let alice: Endpoint | undefined;
  let bob: Endpoint | undefined;
  try {
    alice = await check(`${a.name} authenticates at ${o.relay.uri}`, async () => authenticated(await open(a, 'a')));
    bob = await check(`${b.name} authenticates at ${o.relay.uri}`, async () => authenticated(await open(b, 'b')));
    if (alice !== undefined && bob !== undefined) {
      const [ep1, ep2] = [alice, bob];
      const inbox1 = inbox(ep1, o.timeoutMs);
      const inbox2 = inbox(ep2, o.timeoutMs);
      ep1.peer = ep2.path;

      await check(`${a.name} -> ${b.name}: text message`, async () => {
        const text = `hello ${b.username}, from ${a.username} (${randomBytes(4).toString('hex')})`;
        await ep1.sendText(text);
        const d = await inbox2.next();
        if (d.kind !== 'text' || d.text !== text) throw new Error(`${b.name} got ${describeDelivery(d, cli.cwd)}, not "${text}"`);
        return [undefined, `"${text}"`];
      });
      await check(`${b.name} -> ${a.name}: text message to the path learnt from the first one`, async () => {
        if (ep2.peer === undefined) throw new Error(`${b.name} has not learnt ${a.name}'s path`);
        const text = `hi ${a.username}, ${b.username} here (${randomBytes(4).toString('hex')})`;
        await ep2.sendText(text);
        const d = await inbox1.next();
        if (d.kind !== 'text' || d.text !== text) throw new Error(`${a.name} got ${describeDelivery(d, cli.cwd)}, not "${text}"`);
        return [undefined, `"${text}"`];
      });
      await check(`${a.name} -> ${b.name}: 1 MiB file in 64 KiB chunks`, async () => {
        const data = randomBytes(SELFTEST_FILE_SIZE);
        const expected = sha256Hex(data);
        const file = join(work, 'selftest-1MiB.bin');
        writeFileSync(file, data);
        const sent = await ep1.sendFile(file);
        const d = await inbox2.next();
        if (d.kind !== 'file') throw new Error(`${b.name} got ${describeDelivery(d, cli.cwd)}, not the file`);
        if (sent.sha256 !== expected) throw new Error(`sent sha256 ${sent.sha256}, the file's is ${expected}`);
        if (d.size !== data.length || d.sha256 !== expected) throw new Error(`${b.name} saved ${d.size} bytes, sha256 ${d.sha256}; sent ${data.length} bytes, sha256 ${expected}`);
        if (!readFileSync(d.file).equals(data)) throw new Error(`${d.file} differs from the file sent`);
        return [undefined, `${sent.chunks} chunks, sha256 ${expected} on both sides`];
      });
    }
  } finally {
    await Promise.all([alice?.close(), bob?.close()]);
    rmSync(work, { recursive: true, force: true });
  }
  cli.stdout(`${passed} passed, ${failed} failed`);
  return failed === 0 ? 0 : 1;
}

/** Deliveries of an endpoint, one at a time, for the self-test. */
function inbox(ep: Endpoint, timeoutMs: number): { next(): Promise<Delivery> } {
  const queue: Delivery[] = [];
  let waiting: ((d: Delivery) => void) | undefined;
  ep.onDelivery = (d) => {
    const w = waiting;
    waiting = undefined;
    if (w !== undefined) w(d);
    else queue.push(d);
  };
  return {
    next() {
      const d = queue.shift();
      if (d !== undefined) return Promise.resolve(d);
      return new Promise<Delivery>((resolve, reject) => {
        const timer = setTimeout(() => {
          waiting = undefined;
          reject(new Error(`nothing arrived within ${timeoutMs / 1000} s`));
        }, timeoutMs);
        void ep.closed.then(() => {
          clearTimeout(timer);
          reject(new Error('the connection closed'));
        });
        waiting = (v) => {
          clearTimeout(timer);
          resolve(v);
        };
      });
    },
  };
}

// ---------------------------------------------------------------- helpers

function checkResponses(responses: ReceivedFrame[], what: string): void {
  const bad = responses.find((r) => r.status !== 200);
  if (bad !== undefined) throw new ClientError(`${what} not delivered: ${bad.status}${bad.comment === '' ? '' : ` ${bad.comment}`}`);
}

function connectFailure(relay: RelayTarget, e: unknown): string {
  const code = (e as NodeJS.ErrnoException).code ?? '';
  const where = `${relay.host}:${relay.port}`;
  if (code === 'ECONNREFUSED') return `cannot connect to ${where}: connection refused (is the relay running? "npm start" starts the demo relay)`;
  if (/CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ALTNAME/.test(code)) {
    return `the TLS certificate of ${where} is not trusted (${firstLine(e)}): give --ca with the relay's certificate (tls/relay.pem for npm start), or --insecure`;
  }
  return `cannot connect to ${where}: ${firstLine(e)}`;
}

function authFailure(r: ReceivedFrame, account: Account): string {
  const status = `${r.status}${r.comment === '' ? '' : ` ${r.comment}`}`;
  if (r.status === 401) {
    const realm = /realm="([^"]*)"/i.exec(r.header('WWW-Authenticate') ?? '')?.[1];
    const other = realm !== undefined && account.domain !== '' && realm.toLowerCase() !== account.domain.toLowerCase();
    return `${status}: wrong user name or password${realm === undefined ? '' : ` for realm "${realm}"`}${other ? ` (not ${account.domain})` : ''}`;
  }
  if (r.status === 403) return `${status}: the relay does not serve this domain, or this account may not use it`;
  return status;
}

function sameUri(a: string, b: string): boolean {
  try {
    return uriEquals(parseUri(a), parseUri(b));
  } catch {
    return false;
  }
}

/** The filename parameter of a Content-Disposition, made safe to create in the save folder. */
function filenameOf(disposition: string | undefined): string | undefined {
  if (disposition === undefined) return undefined;
  const m = /;\s*filename\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;\s]+))/i.exec(disposition);
  if (m === null) return undefined;
  const raw = m[1] !== undefined ? m[1].replace(/\\(.)/g, '$1') : m[2]!;
  // The last component only (no folders, no "..") and no control characters.
  const name = basename(raw.replace(/\\/g, '/'))
    .replace(/[\u0000-\u001f\u007f]/g, '')
    .replace(/^\.+/, '')
    .trim()
    .slice(0, 200);
  return name === '' ? undefined : name;
}

function quoteFilename(name: string): string {
  return name.replace(/[\u0000-\u001f\u007f]/g, '').replace(/[\\"]/g, '\\$&');
}

/** Text from the far end as it may be printed on a terminal: no control characters but tab and newline. */
function printable(text: string): string {
  return text.replace(/\r\n/g, '\n').replace(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g, '\ufffd');
}

function describeDelivery(d: Delivery, cwd: string): string {
  if (d.kind === 'text') return `<${d.from}> ${printable(d.text)}`;
  return `<${d.from}> saved ${shownPath(d.file, cwd)}: ${d.size} bytes, sha256 ${d.sha256}`;
}

function describeSent(s: FileSent): string {
  return `sent ${s.name}: ${s.size} bytes in ${s.chunks} chunk${s.chunks === 1 ? '' : 's'}, sha256 ${s.sha256}`;
}

/** Prints "sending NAME: 40% (...)" each time another tenth is handed to the connection. */
function progressPrinter(cli: ClientIO, name: string): (sent: number, size: number) => void {
  let shown = 0;
  return (sent, size) => {
    if (size <= CHUNK) return;
    const tenth = Math.floor((sent * 10) / size);
    if (tenth <= shown) return;
    shown = tenth;
    cli.stdout(`sending ${name}: ${tenth * 10}% (${sent} of ${size} bytes)`);
  };
}

function shownPath(file: string, cwd: string): string {
  const rel = relative(cwd, file);
  return rel !== '' && !rel.startsWith('..') && !isAbsolute(rel) ? rel : file;
}

function hashFile(file: string): Promise<string> {
  return new Promise((resolveHash, reject) => {
    const h = createHash('sha256');
    createReadStream(file)
      .on('data', (d) => h.update(d))
      .on('error', reject)
      .on('end', () => resolveHash(h.digest('hex')));
  });
}

function firstLine(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).split('\n')[0]!.replace(/;? ?received \d+ frame\(s\).*$/, '');
}
