// `msrprelay users add|passwd|remove|list` against a SQLite file named by a config,
// run as an operator would (the real bin/msrprelay.js in a child process), and the
// accounts it writes proven by AUTH against a relay started from that same config.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfigFile } from '../../core/config/load.ts';
import { createRelay, type Relay } from '../../core/relay.ts';
import { MsrpTestClient } from '../../core/testing/client.ts';

const BIN = fileURLToPath(new URL('../../bin/msrprelay.js', import.meta.url));

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function msrprelay(args: string[], o: { cwd: string; input?: string }): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd: o.cwd, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(o.input ?? '');
  });
}

describe('msrprelay users', () => {
  let dir: string;
  let config: string;
  const relays: Relay[] = [];

  /** A relay started from the config file, as `msrprelay --config` would. */
  const authStatus = async (username: string, password: string): Promise<number> => {
    const loaded = await loadConfigFile({ file: config });
    const relay = await createRelay(loaded.config as never, { baseDir: loaded.baseDir });
    relays.push(relay);
    await relay.listen();
    const port = relay.listeners[0]!.port;
    const c = await MsrpTestClient.connect({ port });
    try {
      return (await c.auth({ relayUri: `msrp://127.0.0.1:${port};tcp`, username, password })).status;
    } finally {
      await c.close();
      await relay.close();
    }
  };

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'msrprelay-users-'));
    config = join(dir, 'relay.config.mjs');
    writeFileSync(
      config,
      `export default {
  hostname: '127.0.0.1',
  listen: [{ transport: 'tcp', host: '127.0.0.1', port: 0, insecureAuth: true }],
  plugins: [
    ['auth-sql', { driver: 'sqlite3', filename: ${JSON.stringify(join(dir, 'db', 'users.db'))} }],
    ['domain-map', { default: 'example.com' }],
  ],
};
`,
    );
  });
  after(async () => {
    for (const r of relays) await r.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('add stores an HA1, and the relay started from the same config accepts the account', async () => {
    const r = await msrprelay(['users', 'add', 'alice@example.com', '--password', 'first-pw', '--config', config], { cwd: dir });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /added alice@example\.com \(HA1, realm example\.com\)/);
    const list = await msrprelay(['users', 'list', '--config', config], { cwd: dir });
    assert.equal(list.code, 0, list.stderr);
    assert.equal(list.stdout, 'alice@example.com\tha1\n');
    assert.equal(await authStatus('alice', 'first-pw'), 200);
    assert.equal(await authStatus('alice', 'other'), 401);
  });

  it('add refuses an account that exists (exit 1)', async () => {
    const r = await msrprelay(['users', 'add', 'alice@example.com', '--password', 'x', '-c', config], { cwd: dir });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /exists already/);
  });

  it('passwd reads the new password piped on stdin; the old one stops working', async () => {
    const r = await msrprelay(['users', 'passwd', 'alice@example.com', '--config', config], { cwd: dir, input: 'second-pw\n' });
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stdout + r.stderr, /second-pw/);
    assert.equal(await authStatus('alice', 'second-pw'), 200);
    assert.equal(await authStatus('alice', 'first-pw'), 401);
  });

  it('add --password - --plaintext reads stdin and stores the password itself', async () => {
    const r = await msrprelay(['users', 'add', 'Bob@Example.COM', '--password', '-', '--plaintext', '--config', config], { cwd: dir, input: 'bob-pw' });
    assert.equal(r.code, 0, r.stderr);
    const list = await msrprelay(['users', 'list', 'example.com', '--config', config], { cwd: dir });
    // Usernames keep their case (SIP user part); domains are lower-cased as the relay resolves them.
    assert.equal(list.stdout, 'Bob@example.com\tplaintext\nalice@example.com\tha1\n');
    assert.equal(await authStatus('Bob', 'bob-pw'), 200);
  });

  it('remove deletes the account (AUTH then gets 401), and a second remove exits 1', async () => {
    const r = await msrprelay(['users', 'remove', 'alice@example.com', '--config', config], { cwd: dir });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /removed alice@example\.com/);
    assert.equal(await authStatus('alice', 'second-pw'), 401);
    const again = await msrprelay(['users', 'remove', 'alice@example.com', '--config', config], { cwd: dir });
    assert.equal(again.code, 1);
    assert.match(again.stderr, /no account alice@example\.com/);
    const passwd = await msrprelay(['users', 'passwd', 'alice@example.com', '--config', config], { cwd: dir, input: 'x\n' });
    assert.equal(passwd.code, 1);
  });

  it('a bad command line exits 2 and says why', async () => {
    const noDomain = await msrprelay(['users', 'add', 'alice', '--password', 'x', '--config', config], { cwd: dir });
    assert.equal(noDomain.code, 2);
    assert.match(noDomain.stderr, /not USER@DOMAIN/);
    const unknown = await msrprelay(['users', 'rename', 'a@b', '--config', config], { cwd: dir });
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /unknown command "rename"/);
  });

  it('a config without auth-sql is refused with a message naming the file (exit 1)', async () => {
    const other = join(dir, 'memory.config.mjs');
    writeFileSync(other, `export default { plugins: [['auth-memory', { users: [] }]] };\n`);
    const r = await msrprelay(['users', 'list', '--config', other], { cwd: dir });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /memory\.config\.mjs has no auth-sql plugin/);
  });

  it('msrprelay --help mentions the users command', async () => {
    const r = await msrprelay(['--help'], { cwd: dir });
    assert.equal(r.code, 0);
    assert.match(r.stdout, /msrprelay users/);
  });
});
