// The config file (DESIGN.md §5): defaults, the wording of every kind of problem, paths, secrets, loading.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, realpathSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfigFile } from '../../core/config/load.ts';
import { ConfigError, maskSecrets, normalizeConfig } from '../../core/config/validate.ts';

const FIXTURES = fileURLToPath(new URL('../fixtures/configs/', import.meta.url));
const tcp = (port = 2856, host = '127.0.0.1') => ({ transport: 'tcp', host, port });

/** The ConfigError thrown for `input`; fails the test when the input is accepted. */
function problemsOf(input: unknown, options?: { source?: string; baseDir?: string }): ConfigError {
  try {
    normalizeConfig(input, options);
  } catch (e) {
    assert.ok(e instanceof ConfigError, `expected a ConfigError, got ${String(e)}`);
    return e;
  }
  assert.fail('the config was accepted');
}

function tempDir(): string {
  return realpathSync(mkdtempSync(join(tmpdir(), 'msrprelay-config-')));
}

describe('defaults', () => {
  it('fills in session, timeouts and limits as DESIGN.md §5 gives them', () => {
    const c = normalizeConfig({ listen: [tcp()] });
    assert.equal(c.hostname, 'localhost');
    assert.deepEqual(c.session, { minExpires: 60, defaultExpires: 600, maxExpires: 3600 });
    assert.equal(c.timeouts.firstRequest, 30);
    assert.equal(c.timeouts.headerCompletion, 10);
    assert.equal(c.timeouts.transaction, 30);
    assert.equal(c.timeouts.nonce, 30);
    assert.equal(c.timeouts.idle, 3600);
    assert.equal(c.limits.maxMessageSize, 64 * 2 ** 20);
    assert.equal(c.limits.maxConnectionsPerIp, 1000);
    assert.equal(c.limits.maxConnections, 10000);
    assert.equal(c.limits.maxSessionsPerConnection, 100);
    assert.equal(c.limits.maxOutstandingPerConnection, 256);
    assert.equal(c.forwardUnknownMethods, true);
    assert.equal(c.shareOutboundConnections, false);
    assert.deepEqual(c.outboundTls, { rejectUnauthorized: true });
    assert.deepEqual(c.plugins, []);
  });

  it('fills in listener defaults and keeps what is given', () => {
    const c = normalizeConfig({ listen: [{ transport: 'tcp', port: 2856 }], session: { maxExpires: 7200 }, limits: { maxConnections: 5 } });
    assert.deepEqual(c.listen[0], { transport: 'tcp', host: '127.0.0.1', port: 2856, insecureAuth: false, minVersion: 'TLSv1.2', path: '/' });
    assert.deepEqual(c.session, { minExpires: 60, defaultExpires: 600, maxExpires: 7200 });
    assert.equal(c.limits.maxConnections, 5);
    assert.equal(c.limits.maxConnectionsPerIp, 1000);
  });

  it('does not change the object it is given, and accepts its own output again', () => {
    const input = { listen: [tcp()], session: { minExpires: 30 } };
    const copy = structuredClone(input);
    const c = normalizeConfig(input);
    assert.deepEqual(input, copy);
    assert.deepEqual(normalizeConfig(c), c);
  });

  it('passes plugin instances and classes through untouched, in a new array', () => {
    class Custom {
      readonly name = 'custom';
      apply() {}
    }
    const instance = new Custom();
    const plugins = [instance, [Custom, { a: 1 }], 'auth-memory'];
    const c = normalizeConfig({ listen: [tcp()], plugins });
    assert.notEqual(c.plugins, plugins);
    assert.equal(c.plugins[0], instance);
    assert.equal((c.plugins[1] as unknown[])[0], Custom);
    assert.equal(c.plugins[2], 'auth-memory');
  });
});

describe('problems, one line each', () => {
  it('a value of the wrong type names the key and the type', () => {
    const e = problemsOf({ listen: [{ transport: 'tcp', port: '2856' }] });
    assert.deepEqual(e.problems, ['/listen/0/port must be integer']);
  });

  it('a number out of range names the key and the bound', () => {
    const e = problemsOf({ listen: [{ transport: 'tcp', port: 70000 }] });
    assert.deepEqual(e.problems, ['/listen/0/port must be <= 65535']);
    assert.equal(e.message, '/listen/0/port must be <= 65535');
  });

  it('the source file prefixes every line of the message', () => {
    const e = problemsOf({ listen: [{ transport: 'tcp', port: 70000 }], limits: { maxConnections: 0 } }, { source: 'msrprelay.config.js' });
    assert.equal(e.source, 'msrprelay.config.js');
    assert.equal(e.message, ['msrprelay.config.js: /listen/0/port must be <= 65535', 'msrprelay.config.js: /limits/maxConnections must be >= 1'].join('\n'));
  });

  it('an unknown key is named, with a "did you mean" when a known key is close', () => {
    const e = problemsOf({ listen: [tcp()], limits: { maxConections: 10 } });
    assert.deepEqual(e.problems, ['/limits: unknown key "maxConections" (did you mean "maxConnections"?)']);
  });

  it('an unknown top-level key is named without a pointer; no guess when nothing is close', () => {
    assert.deepEqual(problemsOf({ listen: [tcp()], sesion: {} }).problems, ['unknown key "sesion" (did you mean "session"?)']);
    assert.deepEqual(problemsOf({ listen: [tcp()], workers: 4 }).problems, ['unknown key "workers"']);
  });

  it('an enum lists the allowed values and what was given', () => {
    const e = problemsOf({ listen: [{ transport: 'udp', port: 2856 }] });
    assert.deepEqual(e.problems, ['/listen/0/transport must be one of "tcp", "tls", "ws", "wss" (got "udp")']);
  });

  it('a config without listeners is refused, missing or empty', () => {
    assert.deepEqual(problemsOf({}).problems, ['/listen is required: the relay needs at least one listener']);
    assert.deepEqual(problemsOf({ listen: [] }).problems, ['/listen must list at least one listener']);
  });

  it('a missing required key is named by its pointer', () => {
    assert.deepEqual(problemsOf({ listen: [{ transport: 'tcp' }] }).problems, ['/listen/0/port is required']);
  });

  it('expires values must be in order: minExpires <= defaultExpires <= maxExpires', () => {
    assert.deepEqual(problemsOf({ listen: [tcp()], session: { minExpires: 900 } }).problems, [
      '/session: minExpires (900) must be <= defaultExpires (600)',
    ]);
    assert.deepEqual(problemsOf({ listen: [tcp()], session: { defaultExpires: 4000 } }).problems, [
      '/session: defaultExpires (4000) must be <= maxExpires (3600)',
    ]);
    assert.doesNotThrow(() => normalizeConfig({ listen: [tcp()], session: { minExpires: 600, defaultExpires: 600, maxExpires: 600 } }));
  });

  it('two listeners on the same host and port are refused; port 0 is not a conflict', () => {
    const e = problemsOf({ listen: [tcp(2856), { transport: 'ws', host: '127.0.0.1', port: 2856 }] });
    assert.deepEqual(e.problems, ['/listen/1: same host and port as /listen/0 (127.0.0.1:2856)']);
    assert.doesNotThrow(() => normalizeConfig({ listen: [tcp(0), tcp(0), tcp(2856, '::1'), tcp(2856)] }));
  });

  it('a tls or wss listener without cert and key says so once', () => {
    const e = problemsOf({ listen: [tcp(), { transport: 'tls', port: 2855 }, { transport: 'wss', port: 443, cert: 'a.pem' }] });
    assert.deepEqual(e.problems, ['/listen/1: a tls listener needs "cert" and "key" files', '/listen/2: a wss listener needs "cert" and "key" files']);
  });

  it('reports every problem at once', () => {
    const e = problemsOf(
      { listen: [{ transport: 'udp', port: -1, hots: 'x' }], session: { minExpires: 5000 }, timeouts: { idle: 'long' } },
      { source: 'relay.json' },
    );
    assert.deepEqual(e.problems, [
      '/listen/0: unknown key "hots" (did you mean "host"?)',
      '/listen/0/transport must be one of "tcp", "tls", "ws", "wss" (got "udp")',
      '/listen/0/port must be >= 0',
      '/timeouts/idle must be number',
      '/session: minExpires (5000) must be <= defaultExpires (600)',
    ]);
    assert.equal(e.message.split('\n').length, 5);
    assert.ok(e.message.split('\n').every((l) => l.startsWith('relay.json: ')));
  });

  it('a config that is not an object is refused', () => {
    assert.deepEqual(problemsOf([]).problems, ['the config must be an object, got an array']);
    assert.deepEqual(problemsOf(undefined).problems, ['the config must be an object, got undefined']);
  });

  it('an empty or malformed hostname is named once', () => {
    assert.deepEqual(problemsOf({ listen: [tcp()], hostname: '' }).problems, ['/hostname must not be empty']);
    assert.deepEqual(problemsOf({ listen: [tcp()], hostname: 'relay example' }).problems, [
      '/hostname must match pattern "^[A-Za-z0-9.:\\[\\]-]+$"',
    ]);
  });

  it('outbound: defaults, and each bad allow/deny rule named with its pointer and why', () => {
    assert.deepEqual(normalizeConfig({ listen: [tcp()] }).outbound, { allow: [], deny: [], loopback: 'auto', maxLegsPerConnection: 100, maxLegsPerUser: 256 });
    const ok = normalizeConfig({ listen: [tcp()], outbound: { deny: ['private', ':1-1023', '[fd00::/8]:22'], allow: ['*.example.net:2855'], loopback: false } });
    assert.deepEqual(ok.outbound.deny, ['private', ':1-1023', '[fd00::/8]:22']);
    assert.equal(ok.outbound.loopback, false);
    assert.deepEqual(problemsOf({ listen: [tcp()], outbound: { allow: ['10.0.0.0/8', 'relay..example'], deny: [':0', '10.0.0.0/33'], loopback: 'yes' } }).problems, [
      '/outbound/loopback must be one of "auto", true, false (got "yes")',
      '/outbound/allow/1: "relay..example": not an address, a CIDR, a host name (*.example.com), a class (loopback, link-local, metadata, private, reserved) or *',
      '/outbound/deny/0: ":0": ports are 1-65535',
      '/outbound/deny/1: "10.0.0.0/33": the prefix length must be 0-32',
    ]);
    assert.deepEqual(problemsOf({ listen: [tcp()], outbound: { deny: [''], maxLegsPerUser: 0 } }).problems, [
      '/outbound/deny/0 must not be empty',
      '/outbound/maxLegsPerUser must be >= 1',
    ]);
  });
});

describe('file paths', () => {
  it('resolves relative certificate paths against baseDir and keeps absolute ones', () => {
    const c = normalizeConfig(
      {
        listen: [tcp(), { transport: 'tls', port: 2855, cert: './tls/relay.pem', key: 'tls/relay.key', ca: '/etc/ssl/ca.pem' }],
        outboundTls: { ca: '../ca.pem', cert: 'client.pem', key: 'client.key' },
      },
      { baseDir: '/etc/msrprelay' },
    );
    assert.equal(c.listen[1]!.cert, '/etc/msrprelay/tls/relay.pem');
    assert.equal(c.listen[1]!.key, '/etc/msrprelay/tls/relay.key');
    assert.equal(c.listen[1]!.ca, '/etc/ssl/ca.pem');
    assert.deepEqual(c.outboundTls, { rejectUnauthorized: true, ca: '/etc/ca.pem', cert: '/etc/msrprelay/client.pem', key: '/etc/msrprelay/client.key' });
  });
});

describe('maskSecrets', () => {
  it('masks passwords, ha1, tokens and keys like them at any depth, and keeps the rest', () => {
    const input = {
      hostname: 'relay.example.com',
      plugins: [
        ['auth-memory', { users: [{ username: 'alice', password: 'secret' }, { username: 'carol', ha1: 'abc', disabled: true }] }],
        ['auth-sql', { url: 'postgres://db', dbPassword: 'pw', apiKey: 'k', clientSecret: 's', privateKey: 'p' }],
      ],
      headers: { Authorization: 'Digest username="alice"', token: 't', credentials: { a: 1 } },
      listen: [{ transport: 'tls', port: 2855, key: '/etc/relay.key' }],
    };
    assert.deepEqual(maskSecrets(input), {
      hostname: 'relay.example.com',
      plugins: [
        ['auth-memory', { users: [{ username: 'alice', password: '***' }, { username: 'carol', ha1: '***', disabled: true }] }],
        ['auth-sql', { url: 'postgres://db', dbPassword: '***', apiKey: '***', clientSecret: '***', privateKey: '***' }],
      ],
      headers: { Authorization: '***', token: '***', credentials: '***' },
      listen: [{ transport: 'tls', port: 2855, key: '/etc/relay.key' }],
    });
    assert.equal(input.plugins[0]![1] !== undefined && (input.plugins[0]![1] as { users: Array<{ password?: string }> }).users[0]!.password, 'secret');
  });

  it('prints plugin instances and classes by name', () => {
    class Audit {
      readonly name = 'audit';
      apply() {}
    }
    assert.deepEqual(maskSecrets({ plugins: [new Audit(), [Audit, { token: 'x' }]] }), {
      plugins: ['[plugin audit]', ['[plugin class Audit]', { token: '***' }]],
    });
  });
});

describe('loadConfigFile', () => {
  it('finds msrprelay.config.js in the working directory', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'package.json'), '{ "type": "module" }');
    writeFileSync(join(dir, 'msrprelay.config.js'), "export default { hostname: 'found.example.com', listen: [] };\n");
    const r = await loadConfigFile({ cwd: dir });
    assert.equal(r.filepath, join(dir, 'msrprelay.config.js'));
    assert.equal(r.baseDir, dir);
    assert.deepEqual(r.config, { hostname: 'found.example.com', listen: [] });
  });

  it('prefers .js, then .mjs, .cjs, .json', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'msrprelay.config.json'), '{ "hostname": "json" }');
    writeFileSync(join(dir, 'msrprelay.config.cjs'), "module.exports = { hostname: 'cjs' };\n");
    assert.deepEqual((await loadConfigFile({ cwd: dir })).config, { hostname: 'cjs' });
  });

  it('reports a module without a default export instead of reading the next file', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'msrprelay.config.mjs'), 'export const listen = [];\n');
    writeFileSync(join(dir, 'msrprelay.config.json'), '{ "listen": [] }');
    await assert.rejects(loadConfigFile({ cwd: dir }), {
      name: 'ConfigError',
      message: 'msrprelay.config.mjs: the file exports no config (use `export default { ... }`)',
    });
  });

  it('says where it looked when there is no config file', async () => {
    const dir = tempDir();
    await assert.rejects(loadConfigFile({ cwd: dir }), (e: unknown) => {
      assert.ok(e instanceof ConfigError);
      assert.equal(
        e.message,
        `no config file found in ${dir} (looked for msrprelay.config.js, msrprelay.config.mjs, msrprelay.config.cjs, msrprelay.config.json); pass --config FILE`,
      );
      return true;
    });
  });

  it('loads --config of a .json file, relative to cwd', async () => {
    const r = await loadConfigFile({ file: 'minimal.json', cwd: FIXTURES });
    assert.equal(r.filepath, join(FIXTURES, 'minimal.json'));
    assert.equal(r.baseDir, FIXTURES.replace(/\/$/, ''));
    assert.deepEqual(r.config, { listen: [{ transport: 'tcp', port: 0, insecureAuth: true }] });
  });

  it('loads --config of a .mjs file', async () => {
    const r = await loadConfigFile({ file: join(FIXTURES, 'with-secrets.mjs') });
    assert.equal((r.config as { hostname: string }).hostname, 'relay.example.com');
  });

  it('calls a function export, async or not', async () => {
    const r = await loadConfigFile({ file: join(FIXTURES, 'async-function.mjs') });
    assert.deepEqual(r.config, { hostname: 'fn.example.com', listen: [{ transport: 'tcp', port: 0 }] });
    const dir = tempDir();
    writeFileSync(join(dir, 'sync.mjs'), "export default () => ({ hostname: 'sync' });\n");
    assert.deepEqual((await loadConfigFile({ file: 'sync.mjs', cwd: dir })).config, { hostname: 'sync' });
  });

  it('names the file and the cause when the function throws', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'throws.mjs'), "export default () => { throw new Error('DB_URL is not set'); };\n");
    await assert.rejects(loadConfigFile({ file: 'throws.mjs', cwd: dir }), {
      name: 'ConfigError',
      message: 'throws.mjs: the exported config function failed: DB_URL is not set',
    });
  });

  it('reads the file afresh on every load (SIGHUP)', async () => {
    const dir = tempDir();
    const file = join(dir, 'msrprelay.config.mjs');
    writeFileSync(file, "export default { hostname: 'one' };\n");
    assert.deepEqual((await loadConfigFile({ cwd: dir })).config, { hostname: 'one' });
    writeFileSync(file, "export default { hostname: 'two' };\n");
    assert.deepEqual((await loadConfigFile({ cwd: dir })).config, { hostname: 'two' });
  });

  it('reports a syntax error naming the file and the line', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'msrprelay.config.mjs'), "export default {\n  listen: [\n    { port: 1 \n  ],\n};\n");
    await assert.rejects(loadConfigFile({ cwd: dir }), (e: unknown) => {
      assert.ok(e instanceof ConfigError);
      assert.match(e.message, /^msrprelay\.config\.mjs: syntax error on line 4: /);
      return true;
    });
  });

  it('reports a JSON syntax error naming the file', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'relay.json'), '{ "listen": [ }');
    await assert.rejects(loadConfigFile({ file: 'relay.json', cwd: dir }), (e: unknown) => {
      assert.ok(e instanceof ConfigError);
      assert.match(e.message, /^relay\.json: syntax error: /);
      return true;
    });
  });

  it('names a --config file that does not exist', async () => {
    const dir = tempDir();
    await assert.rejects(loadConfigFile({ file: 'nope.js', cwd: dir }), {
      name: 'ConfigError',
      message: 'nope.js: cannot read nope.js: no such file',
    });
  });

  it('names the file and the cause when the module throws on import', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'boom.mjs'), "import './missing-users.mjs';\nexport default {};\n");
    await assert.rejects(loadConfigFile({ file: 'boom.mjs', cwd: dir }), (e: unknown) => {
      assert.ok(e instanceof ConfigError);
      assert.match(e.message, /^boom\.mjs: cannot load: .*missing-users\.mjs/);
      return true;
    });
  });
});
