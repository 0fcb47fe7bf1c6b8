// Plugin entries → plugin instances (DESIGN.md §4): resolution, options schema, and what each failure says.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, realpathSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { PluginEntry } from '../../core/config/schema.ts';
import type { PluginHost, RelayPlugin } from '../../core/plugin.ts';
import { loadPlugins, PluginLoadError } from '../../core/plugin-loader.ts';

const FIXTURES = fileURLToPath(new URL('../fixtures/', import.meta.url));
const TINY_CLASS = (name: string) => `export default class P { static schema = { type: 'object' }; name = '${name}'; apply() {} }\n`;

function tempDir(): string {
  return realpathSync(mkdtempSync(join(tmpdir(), 'msrprelay-plugins-')));
}

/** A plugins folder like the shipped one, with two tiny plugins. */
function fakeShippedDir(): string {
  const dir = tempDir();
  for (const name of ['auth-memory', 'domain-map']) {
    mkdirSync(join(dir, name));
    writeFileSync(join(dir, name, 'index.mjs'), TINY_CLASS(name));
  }
  return dir;
}

async function loadError(entries: PluginEntry[], opts: { baseDir: string; shippedDir?: string }): Promise<PluginLoadError> {
  try {
    await loadPlugins(entries, opts);
  } catch (e) {
    assert.ok(e instanceof PluginLoadError, `expected a PluginLoadError, got ${String(e)}`);
    return e;
  }
  assert.fail('the plugins loaded');
}

type Greeter = RelayPlugin & { options: { greeting: string; times: number } };

describe('path specifiers', () => {
  it('resolves a relative path against baseDir', async () => {
    const [p] = await loadPlugins([['./plugins/greeter.mjs', { greeting: 'hi', times: 2 }]], { baseDir: FIXTURES });
    assert.equal(p!.name, 'greeter');
    assert.deepEqual((p as Greeter).options, { greeting: 'hi', times: 2 });
  });

  it('imports an absolute path and a TypeScript module with a `plugin` export', async () => {
    const [p] = await loadPlugins([[join(FIXTURES, 'plugins/named-export.ts'), { any: 'thing' }]], { baseDir: tempDir() });
    assert.equal(p!.name, 'named-export');
    assert.deepEqual((p as RelayPlugin & { options: unknown }).options, { any: 'thing' });
  });

  it('names a path that does not exist', async () => {
    const e = await loadError(['./plugins/nope.mjs'], { baseDir: FIXTURES });
    assert.equal(e.message, `plugins[0] "./plugins/nope.mjs": no such file: ${join(FIXTURES, 'plugins/nope.mjs')}`);
    assert.equal(e.index, 0);
    assert.equal(e.plugin, './plugins/nope.mjs');
  });
});

describe('options', () => {
  it('fills in defaults from the schema, for a name alone, [name] and [name, options]', async () => {
    const plugins = await loadPlugins(['./plugins/greeter.mjs', ['./plugins/greeter.mjs'], ['./plugins/greeter.mjs', { times: 3 }]], {
      baseDir: FIXTURES,
    });
    assert.deepEqual(
      plugins.map((p) => (p as Greeter).options),
      [
        { greeting: 'hello', times: 1 },
        { greeting: 'hello', times: 1 },
        { greeting: 'hello', times: 3 },
      ],
    );
  });

  it('does not change the options object of the config', async () => {
    const options = { times: 2 };
    await loadPlugins([['./plugins/greeter.mjs', options]], { baseDir: FIXTURES });
    assert.deepEqual(options, { times: 2 });
  });

  it('a schema violation names the entry, the plugin and the pointer', async () => {
    const e = await loadError(['./plugins/greeter.mjs', ['./plugins/greeter.mjs', { times: 0, greting: 'hi' }]], { baseDir: FIXTURES });
    assert.equal(e.index, 1);
    assert.deepEqual(e.problems, ['unknown key "greting" (did you mean "greeting"?)', '/times must be >= 1']);
    assert.equal(
      e.message,
      'plugins[1] "./plugins/greeter.mjs": unknown key "greting" (did you mean "greeting"?)\nplugins[1] "./plugins/greeter.mjs": /times must be >= 1',
    );
  });

  it('a shipped plugin is checked against its own schema', async () => {
    const e = await loadError(
      [
        ['domain-map', { default: 'example.com' }],
        ['auth-memory', { users: [{ username: 'alice', domain: 'example.com', password: 42 }] }],
      ],
      { baseDir: tempDir() },
    );
    assert.equal(e.message, 'plugins[1] "auth-memory": /users/0/password must be string');
  });
});

describe('bare names', () => {
  it('load the shipped plugin of that name', async () => {
    const plugins = await loadPlugins(['auth-memory', ['domain-map', { x: 1 }]], { baseDir: tempDir(), shippedDir: fakeShippedDir() });
    assert.deepEqual(
      plugins.map((p) => p.name),
      ['auth-memory', 'domain-map'],
    );
  });

  it('an unknown name says where it looked, with a "did you mean"', async () => {
    const e = await loadError(['auth-memry'], { baseDir: tempDir(), shippedDir: fakeShippedDir() });
    assert.equal(
      e.message,
      'plugins[0] "auth-memry": no shipped plugin "auth-memry" and no npm package "msrprelay-plugin-auth-memry" (did you mean "auth-memory"?)',
    );
  });

  it('an unknown name far from every shipped one lists the shipped plugins', async () => {
    const e = await loadError(['ldap'], { baseDir: tempDir(), shippedDir: fakeShippedDir() });
    assert.equal(
      e.message,
      'plugins[0] "ldap": no shipped plugin "ldap" and no npm package "msrprelay-plugin-ldap" (shipped plugins: auth-memory, domain-map)',
    );
  });

  it('fall back to the npm package msrprelay-plugin-<name> installed for baseDir', async () => {
    const baseDir = tempDir();
    const pkg = join(baseDir, 'node_modules', 'msrprelay-plugin-hello');
    mkdirSync(pkg, { recursive: true });
    writeFileSync(join(pkg, 'package.json'), JSON.stringify({ name: 'msrprelay-plugin-hello', type: 'module', exports: { import: './index.mjs' } }));
    writeFileSync(join(pkg, 'index.mjs'), TINY_CLASS('hello'));
    const [p] = await loadPlugins(['hello'], { baseDir: join(baseDir), shippedDir: fakeShippedDir() });
    assert.equal(p!.name, 'hello');
  });
});

describe('package specifiers', () => {
  it('resolve a scoped package with "main" from baseDir, from a sub-folder too', async () => {
    const baseDir = tempDir();
    const pkg = join(baseDir, 'node_modules', '@acme', 'msrp-audit');
    mkdirSync(pkg, { recursive: true });
    writeFileSync(join(pkg, 'package.json'), JSON.stringify({ name: '@acme/msrp-audit', type: 'module', main: 'lib/main.js' }));
    mkdirSync(join(pkg, 'lib'));
    writeFileSync(join(pkg, 'lib', 'main.js'), TINY_CLASS('audit'));
    mkdirSync(join(baseDir, 'etc'));
    const [p] = await loadPlugins(['@acme/msrp-audit'], { baseDir: join(baseDir, 'etc') });
    assert.equal(p!.name, 'audit');
  });

  it('resolve a subpath through "exports"', async () => {
    const baseDir = tempDir();
    const pkg = join(baseDir, 'node_modules', 'relay-extras');
    mkdirSync(join(pkg, 'dist'), { recursive: true });
    writeFileSync(join(pkg, 'package.json'), JSON.stringify({ name: 'relay-extras', type: 'module', exports: { './*': { import: './dist/*.js' } } }));
    writeFileSync(join(pkg, 'dist', 'throttle.js'), TINY_CLASS('extras-throttle'));
    const [p] = await loadPlugins(['relay-extras/throttle'], { baseDir });
    assert.equal(p!.name, 'extras-throttle');
  });

  it('name a package that is not installed', async () => {
    const baseDir = tempDir();
    const e = await loadError(['@acme/nothing-here'], { baseDir });
    assert.equal(e.message, `plugins[0] "@acme/nothing-here": no npm package "@acme/nothing-here" installed for ${baseDir}`);
  });
});

describe('classes and instances', () => {
  class Counter implements RelayPlugin {
    static schema = { type: 'object', properties: { start: { type: 'integer', default: 0 } } };
    readonly name = 'counter';
    constructor(readonly options: { start: number }) {}
    apply(_relay: PluginHost): void {}
  }

  it('an instance is used as it is', async () => {
    const instance = new Counter({ start: 5 });
    const literal = { name: 'literal', apply() {} };
    const plugins = await loadPlugins([instance, literal], { baseDir: tempDir() });
    assert.equal(plugins[0], instance);
    assert.equal(plugins[1], literal);
  });

  it('a class, alone or with options, is validated and constructed', async () => {
    const plugins = await loadPlugins([Counter, [Counter, { start: 7 }]], { baseDir: tempDir() });
    assert.deepEqual(
      plugins.map((p) => (p as Counter).options),
      [{ start: 0 }, { start: 7 }],
    );
    const e = await loadError([[Counter, { start: 'x' }]], { baseDir: tempDir() });
    assert.equal(e.message, 'plugins[0] "Counter": /start must be integer');
  });

  it('an object that is not a plugin is refused', async () => {
    const e = await loadError([{ name: 'half' } as object], { baseDir: tempDir() });
    assert.equal(
      e.message,
      'plugins[0] "half": not a plugin: use a name or path, [name, options], a plugin class, or an instance with a string "name" and an "apply" function',
    );
  });

  it('a class whose instances have no name is refused', async () => {
    const e = await loadError(['./plugins/nameless.mjs'], { baseDir: FIXTURES });
    assert.match(e.message, /^plugins\[0\] "\.\/plugins\/nameless\.mjs": the class did not make a plugin \(.*nameless\.mjs\): an instance needs a string "name" and an "apply" function$/);
  });

  it('a module without a plugin class is refused', async () => {
    const e = await loadError(['./plugins/not-a-plugin.mjs'], { baseDir: FIXTURES });
    assert.equal(
      e.message,
      `plugins[0] "./plugins/not-a-plugin.mjs": ${join(FIXTURES, 'plugins/not-a-plugin.mjs')} does not export a plugin class (export default class … or export const plugin)`,
    );
  });
});

describe('failures in the plugin', () => {
  it('a constructor that throws: the plugin and the cause', async () => {
    const e = await loadError([['./plugins/throws-in-constructor.mjs', { url: 'ldap//x' }]], { baseDir: FIXTURES });
    assert.equal(e.message, 'plugins[0] "./plugins/throws-in-constructor.mjs": the constructor failed: cannot parse url "ldap//x"');
    assert.ok(e.cause instanceof Error);
  });

  it('a module that throws on import: the file and the cause', async () => {
    const e = await loadError(['./plugins/greeter.mjs', './plugins/throws-on-import.mjs'], { baseDir: FIXTURES });
    assert.equal(
      e.message,
      `plugins[1] "./plugins/throws-on-import.mjs": cannot load ${join(FIXTURES, 'plugins/throws-on-import.mjs')}: database driver missing`,
    );
  });
});
