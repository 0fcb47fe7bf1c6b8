// `msrprelay client` (core/client-cli.ts) against a real relay on loopback: the self-test,
// AUTH failures, a file from one client to another, and a chat both ways on stdin.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { main } from '../../core/cli.ts';
import { runClient, type ClientIO } from '../../core/client-cli.ts';
import { startTestRelay, type TestRelay } from '../../core/testing/harness.ts';

const users = [
  { username: 'alice', domain: 'example.com', password: 'secret' },
  { username: 'bob', domain: 'example.com', password: 'secret' },
];

/** One run of runClient with its output captured line by line. */
interface Run {
  code: Promise<number>;
  out: string[];
  err: string[];
  stdin: PassThrough;
  /** The first stdout line matching re, printed already or later; rejects if the run ends first. */
  line(re: RegExp): Promise<string>;
}

function run(argv: string[], cwd: string): Run {
  const out: string[] = [];
  const err: string[] = [];
  const waiters: Array<{ re: RegExp; resolve: (l: string) => void }> = [];
  const lines = (text: string): string[] => text.replace(/\n$/, '').split('\n');
  const stdin = new PassThrough();
  const io: ClientIO = {
    stdout: (t) => {
      for (const l of lines(t)) {
        out.push(l);
        for (const w of waiters.filter((x) => x.re.test(l))) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(l);
        }
      }
    },
    stderr: (t) => err.push(...lines(t)),
    cwd,
    env: {},
    stdin,
    signals: new EventEmitter(),
  };
  const code = runClient(argv, io);
  return {
    code,
    out,
    err,
    stdin,
    line(re) {
      const seen = out.find((l) => re.test(l));
      if (seen !== undefined) return Promise.resolve(seen);
      return Promise.race([
        new Promise<string>((resolve) => waiters.push({ re, resolve })),
        code.then((c) => {
          throw new Error(`exited ${c} before printing ${re}; stdout:\n${out.join('\n')}\nstderr:\n${err.join('\n')}`);
        }),
      ]);
    },
  };
}

const pathOf = (line: string): string => line.replace(/^path: /, '');
const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

describe('msrprelay client', () => {
  let t: TestRelay;
  let dir: string;
  let tcp: string;
  before(async () => {
    t = await startTestRelay({ tls: true, users, plugins: [['domain-map', { default: 'example.com' }]] });
    tcp = t.authUri('tcp');
    dir = mkdtempSync(join(tmpdir(), 'msrprelay-client-cli-'));
  });
  after(async () => {
    await t.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('--selftest: both demo users authenticate, text both ways and a 1 MiB file, all PASS, exit 0', async () => {
    const r = run(['--selftest', '--relay', tcp], dir);
    assert.equal(await r.code, 0, r.out.concat(r.err).join('\n'));
    const results = r.out.filter((l) => /^(PASS|FAIL) /.test(l));
    const expected = [
      /^PASS alice@example\.com authenticates at msrp:\/\/127\.0\.0\.1:\d+;tcp: path msrp:\/\/\S+ msrp:\/\/\S+$/,
      /^PASS bob@example\.com authenticates at msrp:\/\/127\.0\.0\.1:\d+;tcp: path msrp:\/\/\S+ msrp:\/\/\S+$/,
      /^PASS alice@example\.com -> bob@example\.com: text message: "hello bob, from alice \([0-9a-f]{8}\)"$/,
      /^PASS bob@example\.com -> alice@example\.com: text message to the path learnt from the first one: "hi alice, bob here \([0-9a-f]{8}\)"$/,
      /^PASS alice@example\.com -> bob@example\.com: 1 MiB file in 64 KiB chunks: 16 chunks, sha256 [0-9a-f]{64} on both sides$/,
    ];
    assert.equal(results.length, expected.length, results.join('\n'));
    results.forEach((l, i) => assert.match(l, expected[i]!));
    assert.equal(r.out.at(-1), '5 passed, 0 failed');
    // It works in a folder of its own and leaves nothing in the working directory.
    assert.deepEqual(readdirSync(dir), []);
  });

  it('--selftest over TLS with --ca; without it the certificate error says what to do', async () => {
    const tlsUri = t.authUri('tls');
    const ok = run(['--selftest', '--relay', tlsUri, '--ca', t.certificates!.ca.certFile], dir);
    assert.equal(await ok.code, 0, ok.out.concat(ok.err).join('\n'));
    assert.equal(ok.out.at(-1), '5 passed, 0 failed');

    const untrusted = run(['--selftest', '--relay', tlsUri], dir);
    assert.equal(await untrusted.code, 1);
    assert.match(untrusted.out[0]!, /^FAIL alice@example\.com authenticates .*: the TLS certificate of 127\.0\.0\.1:\d+ is not trusted .*--ca .*--insecure$/);
    assert.equal(untrusted.out.at(-1), '0 passed, 2 failed');
  });

  it('a wrong password: a FAIL line and exit 1 for --selftest, a one-line error and exit 1 for the client', async () => {
    const st = run(['--selftest', '--relay', tcp, '--password', 'not-secret'], dir);
    assert.equal(await st.code, 1);
    assert.equal(st.out[0], `FAIL alice@example.com authenticates at ${tcp}: AUTH as alice@example.com failed: 401 Unauthorized: wrong user name or password for realm "example.com"`);
    assert.match(st.out[1]!, /^PASS bob@example\.com authenticates/);
    assert.equal(st.out.at(-1), '1 passed, 1 failed');

    const c = run(['--relay', tcp, '--user', 'alice@example.com', '--password', 'not-secret', '--wait', '1'], dir);
    assert.equal(await c.code, 1);
    assert.deepEqual(c.err, ['msrprelay client: AUTH as alice@example.com failed: 401 Unauthorized: wrong user name or password for realm "example.com"']);
    assert.deepEqual(c.out, []);
  });

  it('a 300 KiB file from one client (--to --file) to another (--wait 1 --save-dir) arrives byte for byte', async () => {
    const saveDir = join(dir, 'received');
    const data = randomBytes(300 * 1024);
    const file = join(dir, 'random.bin');
    writeFileSync(file, data);
    try {
      const bob = run(['--relay', tcp, '--user', 'bob@example.com', '--password', 'secret', '--wait', '1', '--save-dir', saveDir], dir);
      const path = pathOf(await bob.line(/^path: /));
      assert.match(path, /^msrp:\/\/127\.0\.0\.1:\d+\/\S+;tcp msrp:\/\/127\.0\.0\.1:\d+\/\S+;tcp$/);

      const alice = run(['--relay', tcp, '--user', 'alice@example.com', '--password', 'secret', '--to', path, '--file', file], dir);
      assert.equal(await alice.code, 0, alice.err.join('\n'));
      assert.match(alice.out.at(-1)!, new RegExp(`^sent random\\.bin: ${data.length} bytes in 5 chunks, sha256 ${sha256(data)}$`));
      assert.ok(alice.out.includes(`sending random.bin: 100% (${data.length} of ${data.length} bytes)`));

      assert.equal(await bob.code, 0, bob.err.join('\n'));
      assert.match(bob.out.at(-1)!, new RegExp(`^<msrp://\\S+> saved received/random\\.bin: ${data.length} bytes, sha256 ${sha256(data)}$`));
      assert.ok(readFileSync(join(saveDir, 'random.bin')).equals(data));
    } finally {
      rmSync(saveDir, { recursive: true, force: true });
      rmSync(file, { force: true });
    }
  });

  it('chat on stdin: the waiting client learns the path from the first message and answers; end of input exits 0', async () => {
    // Alice over TLS, Bob over TCP: one relay, two listeners.
    const alice = run(['--relay', t.authUri('tls'), '--insecure', '--user', 'alice@example.com', '--password', 'secret'], dir);
    const alicePath = pathOf(await alice.line(/^path: /));
    const bob = run(['--relay', tcp, '--user', 'bob@example.com', '--password', 'secret', '--to', alicePath], dir);
    const bobPath = pathOf(await bob.line(/^path: /));

    bob.stdin.write('hello alice ✓\n');
    const got = await alice.line(/ hello alice/);
    assert.equal(got, `<${bobPath.split(' ').at(-1)}> hello alice ✓`);
    assert.equal(await alice.line(/^replying to: /), `replying to: ${bobPath}`);

    alice.stdin.write('hi bob\n');
    assert.equal(await bob.line(/ hi bob$/), `<${alicePath.split(' ').at(-1)}> hi bob`);

    alice.stdin.end();
    bob.stdin.end();
    assert.equal(await alice.code, 0, alice.err.join('\n'));
    assert.equal(await bob.code, 0, bob.err.join('\n'));
    assert.deepEqual(alice.err, []);
    assert.deepEqual(bob.err, []);
  });

  it('bad command lines exit 2 with the reason; --help through the msrprelay command exits 0', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['--password', 'x'], /--user is required/],
      [['--user', 'alice@example.com'], /no password: give --password or set MSRPRELAY_PASSWORD/],
      [['--user', 'a', '--password', 'x', '--message', 'hi'], /--message and --file need --to/],
      [['--user', 'a', '--password', 'x', '--to', 'not a path'], /^msrprelay client: --to: /],
      [['--relay', 'http://x', '--selftest'], /^msrprelay client: --relay: /],
      [['--selftest', '--wait', '1'], /--selftest cannot be combined with --wait/],
    ];
    for (const [argv, re] of cases) {
      const r = run(argv, dir);
      assert.equal(await r.code, 2, argv.join(' '));
      assert.match(r.err[0]!, re);
      assert.equal(r.err[1], 'Try "msrprelay client --help".');
    }
    const out: string[] = [];
    assert.equal(await main(['client', '--help'], { stdout: (s) => out.push(s), stderr: (s) => out.push(s) }), 0);
    assert.match(out.join(''), /^Usage: msrprelay client --user USER@DOMAIN/);
  });
});
