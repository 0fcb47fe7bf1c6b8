/**
 * Turns the `plugins` entries of a config into plugin instances (DESIGN.md §4).
 *
 * One code path, plain `import()` (STYLE.md: no magic loading):
 *   - a bare name (`auth-memory`) is the shipped plugins/<name>, else the npm
 *     package msrprelay-plugin-<name>;
 *   - a relative or absolute path is resolved against the config's folder;
 *   - anything else (`@acme/msrp-auth`, `pkg/sub`) is an npm package resolved
 *     from the config's folder.
 * The module's default export (or its `plugin` export) is the class; options are
 * validated against `Class.schema` (defaults filled in) before `new Class(options)`.
 */

import AjvModule from 'ajv';
import type { ValidateFunction } from 'ajv';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { PluginEntry } from './config/schema.ts';
import { cloneData, describeSchemaErrors, didYouMean } from './config/validate.ts';
import { isRelayPlugin, type ConfiguredPlugin, type RelayPlugin, type RelayPluginClass } from './plugin.ts';

type AjvClass = typeof AjvModule.default;
const Ajv: AjvClass = (AjvModule as unknown as { default?: AjvClass }).default ?? (AjvModule as unknown as AjvClass);

/** A plugin entry that cannot be turned into a plugin. The message names the entry and the cause. */
export class PluginLoadError extends Error {
  /** The specifier, class name or plugin name of the entry. */
  readonly plugin: string;
  /** Position of the entry in `plugins`. */
  readonly index: number;
  /** One line per problem, without the `plugins[i] "name":` prefix. */
  readonly problems: string[];

  constructor(index: number, plugin: string, problems: string | string[], options?: { cause?: unknown }) {
    const lines = Array.isArray(problems) ? problems : [problems];
    super(lines.map((p) => `plugins[${index}] "${plugin}": ${p}`).join('\n'), options);
    this.name = 'PluginLoadError';
    this.plugin = plugin;
    this.index = index;
    this.problems = lines;
  }
}

export interface LoadPluginsOptions {
  /** The config file's folder: paths and npm packages are resolved from here. */
  baseDir: string;
  /** Where shipped plugins live (default: the package's plugins/ folder). */
  shippedDir?: string;
}

/** plugins/ beside core/, both in the source tree and in dist/. */
const DEFAULT_SHIPPED_DIR = fileURLToPath(new URL('../plugins/', import.meta.url));
/** Running from source prefers index.ts, running from dist/ index.js. */
const INDEX_FILES = import.meta.url.endsWith('.ts') ? ['index.ts', 'index.js', 'index.mjs'] : ['index.js', 'index.mjs', 'index.ts'];
const NPM_PREFIX = 'msrprelay-plugin-';

const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: false });
const validators = new WeakMap<object, ValidateFunction>();

export type { ConfiguredPlugin };

/**
 * Loads, validates and constructs every entry, in order.
 *
 * @throws PluginLoadError for the first entry that fails.
 */
export async function loadPlugins(entries: readonly PluginEntry[], opts: LoadPluginsOptions): Promise<RelayPlugin[]> {
  const plugins: RelayPlugin[] = [];
  for (let i = 0; i < entries.length; i++) {
    const entry = entries[i];
    plugins.push(isRelayPlugin(entry) ? entry : construct(await resolveEntry(entry, i, opts)));
  }
  return plugins;
}

/**
 * Imports every entry's class and validates its options, in order, as loadPlugins does,
 * without constructing any plugin.
 *
 * @throws PluginLoadError for the first entry that fails.
 */
export async function resolvePlugins(entries: readonly PluginEntry[], opts: LoadPluginsOptions): Promise<ConfiguredPlugin[]> {
  const out: ConfiguredPlugin[] = [];
  for (let i = 0; i < entries.length; i++) {
    const entry = entries[i];
    if (isRelayPlugin(entry)) out.push({ index: i, name: entry.name, Class: undefined, options: undefined });
    else {
      const { index, name, Class, options } = await resolveEntry(entry, i, opts);
      out.push({ index, name, Class, options });
    }
  }
  return out;
}

/**
 * The shipped plugins (plugins/<name>/), each class imported; one that cannot be
 * imported is left out. For `msrprelay --help` without a config, and for naming the
 * plugin a config lacks when a command is asked for.
 */
export async function shippedPlugins(shippedDir: string = DEFAULT_SHIPPED_DIR): Promise<Array<{ name: string; Class: RelayPluginClass }>> {
  const out: Array<{ name: string; Class: RelayPluginClass }> = [];
  for (const name of shippedNames(shippedDir)) {
    try {
      const { Class } = await importPlugin(name, 0, { baseDir: shippedDir, shippedDir });
      out.push({ name, Class });
    } catch {
      // Not importable here (a broken install): it has nothing to offer, and the relay would say why.
    }
  }
  return out;
}

interface ResolvedEntry {
  index: number;
  name: string;
  Class: RelayPluginClass;
  options: unknown;
  file?: string;
}

async function resolveEntry(entry: unknown, index: number, opts: LoadPluginsOptions): Promise<ResolvedEntry> {
  let target: unknown = entry;
  let options: unknown;
  if (Array.isArray(entry)) {
    if (entry.length < 1 || entry.length > 2) {
      throw new PluginLoadError(index, label(entry[0]), `an entry is [name, options], got an array of ${entry.length}`);
    }
    [target, options] = entry as [unknown, unknown];
  }

  if (typeof target === 'string') {
    const { Class, file } = await importPlugin(target, index, opts);
    return { index, name: target, Class, options: validateOptions(Class, options, index, target), file };
  }
  if (typeof target === 'function') {
    const Class = target as RelayPluginClass;
    const name = label(target);
    return { index, name, Class, options: validateOptions(Class, options, index, name) };
  }
  throw new PluginLoadError(
    index,
    label(target),
    'not a plugin: use a name or path, [name, options], a plugin class, or an instance with a string "name" and an "apply" function',
  );
}

/** A copy of the options, checked against the class's schema with its defaults filled in. */
function validateOptions(Class: RelayPluginClass, options: unknown, index: number, name: string): unknown {
  const opts = options === undefined ? {} : cloneData(options);
  const schema = Class.schema;
  if (schema === undefined) return opts;
  let validate = validators.get(schema);
  if (validate === undefined) {
    try {
      validate = ajv.compile(schema);
    } catch (e) {
      throw new PluginLoadError(index, name, `the plugin's options schema is invalid: ${errorText(e)}`, { cause: e });
    }
    validators.set(schema, validate);
  }
  if (!validate(opts)) throw new PluginLoadError(index, name, describeSchemaErrors(validate.errors ?? [], schema, opts));
  return opts;
}

function construct({ Class, options, index, name, file }: ResolvedEntry): RelayPlugin {
  let plugin: unknown;
  try {
    plugin = new Class(options);
  } catch (e) {
    throw new PluginLoadError(index, name, `the constructor failed: ${errorText(e)}`, { cause: e });
  }
  if (!isRelayPlugin(plugin)) {
    const where = file !== undefined ? ` (${file})` : '';
    throw new PluginLoadError(index, name, `the class did not make a plugin${where}: an instance needs a string "name" and an "apply" function`);
  }
  return plugin;
}

// ------------------------------------------------------------------ resolution

async function importPlugin(spec: string, index: number, opts: LoadPluginsOptions): Promise<{ Class: RelayPluginClass; file: string }> {
  const file = resolveSpecifier(spec, index, opts);
  let mod: Record<string, unknown>;
  try {
    mod = (await import(pathToFileURL(file).href)) as Record<string, unknown>;
  } catch (e) {
    throw new PluginLoadError(index, spec, `cannot load ${file}: ${errorText(e)}`, { cause: e });
  }
  let Class = mod.default ?? mod.plugin;
  // A CommonJS build of an ES module: module.exports = { default: Class }.
  if (typeof Class === 'object' && Class !== null && typeof (Class as { default?: unknown }).default === 'function') {
    Class = (Class as { default: unknown }).default;
  }
  if (typeof Class !== 'function') {
    throw new PluginLoadError(index, spec, `${file} does not export a plugin class (export default class … or export const plugin)`);
  }
  return { Class: Class as RelayPluginClass, file };
}

function resolveSpecifier(spec: string, index: number, opts: LoadPluginsOptions): string {
  if (spec === '') throw new PluginLoadError(index, spec, 'an empty plugin name');
  // A path: relative to the config's folder.
  if (spec.startsWith('.') || isAbsolute(spec)) {
    const path = resolve(opts.baseDir, spec);
    const file = existingFile(path);
    if (file === undefined) throw new PluginLoadError(index, spec, `no such file: ${path}`);
    return file;
  }
  // A bare name: shipped first, then msrprelay-plugin-<name>.
  if (!spec.includes('/') && !spec.startsWith('@')) {
    const shippedDir = opts.shippedDir ?? DEFAULT_SHIPPED_DIR;
    for (const f of INDEX_FILES) {
      const p = join(shippedDir, spec, f);
      if (isFile(p)) return p;
    }
    const pkg = `${NPM_PREFIX}${spec}`;
    const fromNpm = resolvePackage(pkg, opts.baseDir, index, spec);
    if (fromNpm !== undefined) return fromNpm;
    const shipped = shippedNames(shippedDir);
    const guess = didYouMean(spec, shipped);
    const hint =
      guess !== undefined ? ` (did you mean "${guess}"?)` : shipped.length > 0 ? ` (shipped plugins: ${shipped.join(', ')})` : '';
    throw new PluginLoadError(index, spec, `no shipped plugin "${spec}" and no npm package "${pkg}"${hint}`);
  }
  // Any other specifier: an npm package (or a file inside one).
  const file = resolvePackage(spec, opts.baseDir, index, spec);
  if (file === undefined) throw new PluginLoadError(index, spec, `no npm package "${spec}" installed for ${opts.baseDir}`);
  return file;
}

/**
 * Where `spec` (a package name, maybe with a subpath) resolves to from
 * `baseDir`, or undefined when the package is not installed. ES-only packages
 * are resolved by their "import" export condition, which require.resolve would
 * not see.
 */
function resolvePackage(spec: string, baseDir: string, index: number, plugin: string): string | undefined {
  const m = /^((?:@[^/]+\/)?[^/]+)(\/.*)?$/.exec(spec);
  if (m === null) return undefined;
  const name = m[1]!;
  const subpath = m[2] !== undefined ? `.${m[2]}` : '.';
  const require = createRequire(join(baseDir, 'noop.js'));
  const dirs = require.resolve.paths(name) ?? [];
  const pkgDir = dirs.map((d) => join(d, name)).find((d) => isFile(join(d, 'package.json')));
  if (pkgDir === undefined) return undefined;

  let manifest: { exports?: unknown; main?: unknown };
  try {
    manifest = JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8')) as typeof manifest;
  } catch (e) {
    throw new PluginLoadError(index, plugin, `cannot read ${join(pkgDir, 'package.json')}: ${errorText(e)}`, { cause: e });
  }
  if (manifest.exports !== undefined) {
    const target = exportTarget(manifest.exports, subpath);
    if (target === undefined) throw new PluginLoadError(index, plugin, `the package "${name}" does not export "${subpath}"`);
    const file = resolve(pkgDir, target);
    if (!isFile(file)) throw new PluginLoadError(index, plugin, `the package "${name}" exports ${target}, which does not exist`);
    return file;
  }
  try {
    return require.resolve(spec);
  } catch (e) {
    throw new PluginLoadError(index, plugin, `the package "${name}" is installed but cannot be resolved: ${errorText(e)}`, { cause: e });
  }
}

/** The package.json "exports" target for a subpath, with the conditions import() uses. */
function exportTarget(exports: unknown, subpath: string): string | undefined {
  const conditions = ['import', 'node', 'module', 'default'];
  const pick = (t: unknown): string | undefined => {
    if (typeof t === 'string') return t;
    if (Array.isArray(t)) {
      for (const x of t) {
        const r = pick(x);
        if (r !== undefined) return r;
      }
      return undefined;
    }
    if (typeof t === 'object' && t !== null) {
      for (const [k, v] of Object.entries(t)) if (conditions.includes(k)) return pick(v);
    }
    return undefined;
  };
  if (typeof exports === 'string' || Array.isArray(exports)) return subpath === '.' ? pick(exports) : undefined;
  if (typeof exports !== 'object' || exports === null) return undefined;
  const keys = Object.keys(exports);
  // Conditions only (no subpaths): they describe ".".
  if (!keys.some((k) => k.startsWith('.'))) return subpath === '.' ? pick(exports) : undefined;
  const map = exports as Record<string, unknown>;
  if (map[subpath] !== undefined) return pick(map[subpath]);
  for (const k of keys) {
    const star = k.indexOf('*');
    if (star < 0) continue;
    const [pre, post] = [k.slice(0, star), k.slice(star + 1)];
    if (subpath.startsWith(pre) && subpath.endsWith(post) && subpath.length >= pre.length + post.length) {
      const t = pick(map[k]);
      return t?.replace('*', subpath.slice(pre.length, subpath.length - post.length));
    }
  }
  return undefined;
}

function existingFile(path: string): string | undefined {
  if (isFile(path)) return path;
  if (isDirectory(path)) {
    for (const f of INDEX_FILES) if (isFile(join(path, f))) return join(path, f);
  }
  return undefined;
}

function shippedNames(dir: string): string[] {
  try {
    return readdirSync(dir, { withFileTypes: true })
      .filter((d) => d.isDirectory() && INDEX_FILES.some((f) => existsSync(join(dir, d.name, f))))
      .map((d) => d.name)
      .sort();
  } catch {
    return [];
  }
}

function isFile(p: string): boolean {
  try {
    return statSync(p).isFile();
  } catch {
    return false;
  }
}

function isDirectory(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

function label(x: unknown): string {
  if (typeof x === 'string') return x;
  if (typeof x === 'function') return x.name !== '' ? x.name : 'anonymous class';
  if (typeof x === 'object' && x !== null && typeof (x as { name?: unknown }).name === 'string') return (x as { name: string }).name;
  return typeof x === 'object' ? (x === null ? 'null' : 'object') : String(x);
}

function errorText(e: unknown): string {
  if (!(e instanceof Error)) return String(e);
  return e.name === 'Error' ? e.message : `${e.name}: ${e.message}`;
}
