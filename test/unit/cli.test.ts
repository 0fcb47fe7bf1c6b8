// The msrprelay command without a listening relay: --help, --version, --check-config, --print-config on bad input.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { EventEmitter } from 'node:events';
import { fileURLToPath } from 'node:url';

const CONFIGS = fileURLToPath(new URL('../fixtures/configs/', import.meta.url));
const VERSION = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

/** Runs the command in-process and collects what it writes. */
async function run(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  // Imported lazily: cli.ts pulls in the whole relay.
  const { main } = await import('../../core/cli.ts');
  let stdout = '';
  let stderr = '';
  const code = await main(argv, {
    stdout: (t) => (stdout += t.endsWith('\n') ? t : `${t}\n`),
    stderr: (t) => (stderr += t.endsWith('\n') ? t : `${t}\n`),
    cwd: CONFIGS,
    signals: new EventEmitter(),
    exit: () => assert.fail('exit() called'),
  });
  return { code, stdout, stderr };
}

describe('msrprelay --help and --version', () => {
  it('--help lists every flag', async () => {
    for (const flag of ['--help', '-h']) {
      const r = await run([flag]);
      assert.equal(r.code, 0);
      assert.equal(r.stderr, '');
      for (const f of ['--config FILE', '-c', '--check-config', '--print-config', '--print-hooks', '--help', '-h', '--version', '-v']) {
        assert.ok(r.stdout.includes(f), `help mentions ${f}`);
      }
    }
  });

  it('--version prints the package version', async () => {
    assert.deepEqual(await run(['--version']), { code: 0, stdout: `${VERSION}\n`, stderr: '' });
    assert.equal((await run(['-v'])).stdout, `${VERSION}\n`);
  });

  it('an unknown flag is a usage error (exit 2)', async () => {
    const r = await run(['--chek-config']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /^msrprelay: Unknown option '--chek-config'/);
    assert.match(r.stderr, /msrprelay --help/);
  });
});

describe('msrprelay --check-config', () => {
  it('a valid config: one line with the file, the listeners and the plugins', async () => {
    const r = await run(['--check-config', '--config', 'with-secrets.mjs']);
    assert.deepEqual(r, { code: 0, stdout: 'config OK: with-secrets.mjs (1 listener, 2 plugins)\n', stderr: '' });
  });

  it('R-42: warns on stderr about a hostname peers cannot reach (minimal.json: the default, localhost), and still exits 0', async () => {
    const r = await run(['--check-config', '--config', 'minimal.json']);
    assert.equal(r.code, 0);
    assert.equal(r.stdout, 'config OK: minimal.json (1 listener, 0 plugins)\n');
    assert.match(r.stderr, /^minimal\.json: warning: \/hostname "localhost" names this host only: .*\(R-42\)\. Set the relay's fully qualified domain name .*\n$/);
  });

  it('loads the plugins too', async () => {
    const r = await run(['--check-config', '-c', 'with-secrets.mjs']);
    assert.deepEqual(r, { code: 0, stdout: 'config OK: with-secrets.mjs (1 listener, 2 plugins)\n', stderr: '' });
  });

  it('a bad config: every problem on stderr, no stack trace, exit 1', async () => {
    const r = await run(['--check-config', '--config', 'bad-port.json']);
    assert.equal(r.code, 1);
    assert.equal(r.stdout, '');
    assert.equal(
      r.stderr,
      'bad-port.json: /listen/0/port must be <= 65535\nbad-port.json: /limits: unknown key "maxConections" (did you mean "maxConnections"?)\n',
    );
  });

  it('a tls listener without certificate files', async () => {
    const r = await run(['--check-config', '--config', 'missing-tls-cert.mjs']);
    assert.equal(r.code, 1);
    assert.equal(r.stderr, 'missing-tls-cert.mjs: /listen/1: a tls listener needs "cert" and "key" files\n');
  });

  it('a missing config file', async () => {
    const r = await run(['--check-config', '--config', 'nope.mjs']);
    assert.equal(r.code, 1);
    assert.equal(r.stderr, 'nope.mjs: cannot read nope.mjs: no such file\n');
  });
});

describe('msrprelay --print-config', () => {
  it('a bad config: the problems on stderr, exit 1, nothing printed', async () => {
    const r = await run(['--print-config', '--config', 'bad-port.json']);
    assert.equal(r.code, 1);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /^bad-port\.json: \/listen\/0\/port must be <= 65535$/m);
  });
});
