/**
 * Finding and reading the config file (DESIGN.md §5): cosmiconfig looks for
 * msrprelay.config.{js,mjs,cjs,json} in the working directory, or reads the file
 * given with --config. A module may export the config object or a function
 * (sync or async) that returns it.
 *
 * JavaScript configs are imported afresh on every load, so SIGHUP sees the
 * edited file (modules the config itself imports stay cached).
 */

import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { realpath } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { basename, dirname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { cosmiconfig, type Loader } from 'cosmiconfig';
import type { ConfiguredPlugin, LoadedConfig } from '../plugin.ts';
import { resolvePlugins } from '../plugin-loader.ts';
import type { PluginEntry, RelayConfigInput } from './schema.ts';
import { ConfigError } from './validate.ts';

export const CONFIG_SEARCH_PLACES = ['msrprelay.config.js', 'msrprelay.config.mjs', 'msrprelay.config.cjs', 'msrprelay.config.json'];

export interface LoadedConfigFile {
  /** The exported config, not validated yet (normalizeConfig does that). */
  config: unknown;
  /** Absolute path of the file. */
  filepath: string;
  /** The file's folder: relative paths in the config are resolved against it. */
  baseDir: string;
}

let generation = 0;

/** Imports a JavaScript config with a fresh module instance each time. */
const importFresh: Loader = async (filepath) => {
  const real = await realpath(filepath);
  // A CommonJS config is cached by file name, an ES module by URL: clear the one, vary the other.
  const require = createRequire(real);
  delete require.cache[real];
  generation += 1;
  const mod = (await import(`${pathToFileURL(real).href}?load=${generation}`)) as { default?: unknown };
  return mod.default;
};

/**
 * Reads the config file: `file` when given (relative to `cwd`), else the first
 * of CONFIG_SEARCH_PLACES in `cwd`.
 *
 * @throws ConfigError when no file is found, the file cannot be parsed or
 *   imported, or the exported function fails.
 */
export async function loadConfigFile(opts: { file?: string; cwd?: string } = {}): Promise<LoadedConfigFile> {
  const cwd = opts.cwd ?? process.cwd();
  const explorer = cosmiconfig('msrprelay', {
    searchPlaces: CONFIG_SEARCH_PLACES,
    loaders: { '.js': importFresh, '.mjs': importFresh, '.cjs': importFresh, '.ts': importFresh, '.mts': importFresh },
    cache: false,
    // A config.js without a default export is a mistake to report, not a reason to read the next file.
    ignoreEmptySearchPlaces: false,
  });

  const target = opts.file !== undefined ? resolve(cwd, opts.file) : undefined;
  let result: Awaited<ReturnType<typeof explorer.search>>;
  try {
    result = target !== undefined ? await explorer.load(target) : await explorer.search(cwd);
  } catch (e) {
    // A search that failed was reading the first search place that exists.
    const file = target ?? CONFIG_SEARCH_PLACES.map((f) => join(cwd, f)).find((f) => existsSync(f)) ?? cwd;
    throw new ConfigError([await describeLoadError(e, file)], displayPath(file, cwd), { cause: e });
  }
  if (result === null) {
    throw new ConfigError(
      [`no config file found in ${cwd} (looked for ${CONFIG_SEARCH_PLACES.join(', ')}); pass --config FILE`],
      undefined,
    );
  }

  const filepath = result.filepath;
  const source = displayPath(filepath, cwd);
  let config: unknown = result.config;
  if (typeof config === 'function') {
    try {
      config = await (config as () => unknown)();
    } catch (e) {
      throw new ConfigError([`the exported config function failed: ${errorText(e)}`], source, { cause: e });
    }
  }
  if (result.isEmpty === true || config === undefined || config === null) {
    throw new ConfigError(['the file exports no config (use `export default { ... }`)'], source);
  }
  return { config, filepath, baseDir: dirname(filepath) };
}

export type { LoadedConfig } from '../plugin.ts';

/**
 * Finds and reads the config file as `msrprelay` does (`file` relative to `cwd`, else
 * the first of CONFIG_SEARCH_PLACES in `cwd`), imports each plugin's class and
 * validates its options. No plugin is constructed and nothing is opened.
 *
 * @throws ConfigError for a missing or unreadable file, or `plugins` that is not a list;
 *   PluginLoadError for the first plugin entry that cannot be imported or whose options are invalid.
 */
export async function loadConfig(opts: { file?: string; cwd?: string } = {}): Promise<LoadedConfig> {
  const cwd = opts.cwd ?? process.cwd();
  const loaded = await loadConfigFile({ ...opts, cwd });
  const source = displayPath(loaded.filepath, cwd);
  const config = loaded.config;
  if (typeof config !== 'object' || Array.isArray(config)) throw new ConfigError([`the config must be an object, got ${Array.isArray(config) ? 'an array' : typeof config}`], source);
  const entries = (config as { plugins?: unknown }).plugins ?? [];
  if (!Array.isArray(entries)) throw new ConfigError(['/plugins must be array'], source);
  const plugins = await resolvePlugins(entries as PluginEntry[], { baseDir: loaded.baseDir });
  return {
    config: config as RelayConfigInput,
    filepath: loaded.filepath,
    baseDir: loaded.baseDir,
    source,
    plugins,
    plugin: (name) => plugins.find((p) => p.name === name),
  };
}

/** A path as an operator typed it: relative to the working directory when it lies below it. */
export function displayPath(filepath: string, cwd: string = process.cwd()): string {
  const abs = resolve(cwd, filepath);
  const prefix = cwd.endsWith('/') ? cwd : `${cwd}/`;
  return abs.startsWith(prefix) ? abs.slice(prefix.length) : abs;
}

async function describeLoadError(e: unknown, file: string): Promise<string> {
  const err = e as NodeJS.ErrnoException;
  if (err?.code === 'ENOENT') return `cannot read ${basename(file)}: no such file`;
  if (err?.code === 'EISDIR') return 'is a folder, not a config file';
  if (err?.code === 'ERR_UNKNOWN_FILE_EXTENSION') return `cannot load a ${/\.[^.]+$/.exec(file)?.[0] ?? ''} config file here: use .js, .mjs, .cjs or .json`;
  if (err instanceof SyntaxError || err?.name === 'JSONError') {
    // Node 20 does not say where an ES module's syntax error is; `node --check` does.
    const line = /\.json$/i.test(file) ? undefined : await syntaxErrorLine(file);
    const why = err.message.replace(/^JSON Error in [^\n]*:\n/, '').replace(/\s*\n\s*/g, ' ');
    return `syntax error${line !== undefined ? ` on line ${line}` : ''}: ${why}`;
  }
  return `cannot load: ${errorText(e)}`;
}

function syntaxErrorLine(file: string): Promise<number | undefined> {
  return new Promise((done) => {
    execFile(process.execPath, ['--check', file], { timeout: 5000 }, (_err, _stdout, stderr) => {
      const m = /^(?:file:\/\/)?\S*?:(\d+)\s*$/m.exec(String(stderr).split('\n')[0] ?? '');
      done(m !== null ? Number(m[1]) : undefined);
    });
  });
}

function errorText(e: unknown): string {
  if (!(e instanceof Error)) return String(e);
  return e.name === 'Error' ? e.message : `${e.name}: ${e.message}`;
}
