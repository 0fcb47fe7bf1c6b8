// The `msrprelay` command as an operator runs it (DESIGN.md §5): a real child process,
// real sockets, real signals.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MsrpTestClient, hashSource, seededSource } from '../../core/testing/client.ts';

const BIN = fileURLToPath(new URL('../../bin/msrprelay.js', import.meta.url));

function configText(users: string[]): string {
  const list = users.map((u) => `{ username: '${u}', domain: 'example.com', password: 'secret' }`).join(', ');
  return `export default {
  hostname: '127.0.0.1',
  listen: [{ transport: 'tcp', host: '127.0.0.1', port: 0, insecureAuth: true }],
  plugins: [['auth-memory', { users: [${list}] }], ['domain-map', { default: 'example.com' }]],
};
`;
}

interface Running {
  child: ChildProcess;
  port: number;
  stderr: () => string;
  exited: Promise<number | null>;
}

async function start(configFile: string): Promise<Running> {
  const child = spawn(process.execPath, [BIN, '--config', configFile], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no "listening" line; stderr:\n${err}`)), 20000);
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /listening tcp:\/\/127\.0\.0\.1:(\d+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    void exited.then((code) => reject(new Error(`exited ${code} before listening; stderr:\n${err}`)));
  });
  return { child, port, stderr: () => err, exited };
}

async function authAs(port: number, username: string): Promise<{ c: MsrpTestClient; status: number; token: string | undefined }> {
  const c = await MsrpTestClient.connect({ port });
  const r = await c.auth({ relayUri: 'msrp://example.com;tcp', username, password: 'secret' });
  return { c, status: r.status, token: r.usePath[0] };
}

async function until(cond: () => boolean, what: string, ms = 10000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe('msrprelay running in the foreground', () => {
  let dir: string;
  let file: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'msrprelay-cli-'));
    file = join(dir, 'msrprelay.config.mjs');
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('SIGHUP reloads the config: a new user can AUTH, a broken file leaves the running config in force', async () => {
    writeFileSync(file, configText(['alice']));
    const r = await start(file);
    try {
      const alice = await authAs(r.port, 'alice');
      assert.equal(alice.status, 200);
      assert.equal((await authAs(r.port, 'carol')).status, 401);

      writeFileSync(file, configText(['alice', 'carol']));
      r.child.kill('SIGHUP');
      await until(() => r.stderr().includes('reloaded'), 'the reload log line');
      const carol = await authAs(r.port, 'carol');
      assert.equal(carol.status, 200, 'carol exists after the reload');

      writeFileSync(file, 'export default { listen: "nope" };\n');
      r.child.kill('SIGHUP');
      await until(() => r.stderr().includes('reload failed'), 'the failed-reload log line');
      assert.match(r.stderr(), /\/listen/, 'the error names the bad key');
      assert.equal((await authAs(r.port, 'carol')).status, 200, 'the old config is still in force');
      // A session from before the reloads still works.
      const b = await authAs(r.port, 'alice');
      const m = await alice.c.sendMessage({ toPath: [alice.token!, b.token!, b.c.uri], body: 'after reload' });
      assert.equal(m.responses[0]!.status, 200);
      await b.c.waitFor((x) => x.header('Message-ID') === m.messageId);
      for (const x of [alice.c, carol.c, b.c]) await x.close();
    } finally {
      r.child.kill('SIGKILL');
      await r.exited;
    }
  });

  it('SIGTERM lets a transfer in progress finish, then exits 0', async () => {
    writeFileSync(file, configText(['alice', 'bob']));
    const r = await start(file);
    const a = await authAs(r.port, 'alice');
    const b = await authAs(r.port, 'bob');
    const size = 4 * 2 ** 20;
    const src = seededSource(5);
    // B reads slowly at first, so the transfer is still going when the signal comes.
    b.c.pauseReading();
    const sending = a.c.streamMessage({ toPath: [a.token!, b.token!, b.c.uri], size, source: src, chunkSize: 256 * 1024 });
    await new Promise((res) => setTimeout(res, 200));
    r.child.kill('SIGTERM');
    await until(() => r.stderr().includes('SIGTERM'), 'the shutdown log line');
    b.c.resumeReading();
    const sent = await sending;
    const m = await b.c.waitForMessage(sent.messageId, 20000);
    assert.equal(m.bytes, size);
    assert.equal(m.sha256, hashSource(size, src));
    await Promise.all([a.c.close(), b.c.close()]);
    assert.equal(await r.exited, 0);
  });

  it('R-42: warns at start about a hostname peers on other hosts cannot reach, and serves all the same', async () => {
    writeFileSync(file, configText(['alice']).replace("hostname: '127.0.0.1'", "hostname: 'localhost'"));
    const r = await start(file);
    try {
      assert.match(r.stderr(), /^warn \/hostname "localhost" names this host only: .*\(R-42\)/m);
      const alice = await authAs(r.port, 'alice');
      assert.equal(alice.status, 200);
      assert.match(alice.token!, /^msrp:\/\/localhost:/);
      await alice.c.close();
    } finally {
      r.child.kill('SIGKILL');
      await r.exited;
    }
  });

  it('--print-hooks lists the taps of the config in run order', async () => {
    writeFileSync(file, configText(['alice']));
    const child = spawn(process.execPath, [BIN, '--config', file, '--print-hooks'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    const code = await new Promise<number | null>((res) => child.on('exit', res));
    assert.equal(code, 0);
    const lines = out.trim().split('\n');
    const at = (needle: string) => lines.findIndex((l) => l.includes(needle));
    assert.ok(at('lookupCredentials: auth-memory') >= 0, out);
    assert.ok(at('authenticate: core:digest') >= 0, out);
    assert.ok(at('resolveDomain: domain-map') >= 0, out);
    assert.ok(at('resolveDomain: domain-map') < at('authenticate: core:digest'), 'hooks appear in the order a request meets them');
  });
});
