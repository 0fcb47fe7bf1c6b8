/**
 * `msrprelay NAME ARGS…`: subcommands that plugin classes contribute
 * (RelayPluginClass.commands). The core knows none of them: it loads the config,
 * finds the first configured plugin whose class declares NAME and runs it with
 * the plugin's validated options. `msrprelay --help` lists them.
 */

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { CONFIG_SEARCH_PLACES, loadConfig, type LoadedConfig } from './config/load.ts';
import { ConfigError } from './config/validate.ts';
import type { PluginCommand, PluginCommandContext, RelayPluginClass } from './plugin.ts';
import { PluginLoadError, shippedPlugins } from './plugin-loader.ts';

/** What a command reads and writes: the CLI's streams. */
export type CommandIO = Pick<PluginCommandContext, 'stdout' | 'stderr' | 'stdin' | 'cwd'>;

/**
 * Takes `--config FILE`, `--config=FILE`, `-c FILE` or `-cFILE` out of a command's
 * arguments (up to a `--`), so every plugin command finds its config as `msrprelay` does.
 */
export function takeConfigOption(argv: readonly string[]): { file: string | undefined; rest: string[] } | { error: string } {
  let file: string | undefined;
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') {
      rest.push(...argv.slice(i));
      break;
    }
    let value: string | undefined;
    if (a === '--config' || a === '-c') {
      value = argv[++i];
      if (value === undefined) return { error: `option '${a}' needs a FILE` };
    } else if (a.startsWith('--config=')) value = a.slice('--config='.length);
    else if (a.startsWith('-c') && !a.startsWith('--') && a.length > 2) value = a.slice(2);
    else {
      rest.push(a);
      continue;
    }
    if (file !== undefined) return { error: 'the config is given twice' };
    file = value;
  }
  return { file, rest };
}

/** Runs `msrprelay NAME ARGV` and resolves with its exit code. */
export async function runPluginCommand(name: string, argv: readonly string[], io: CommandIO): Promise<number> {
  const taken = takeConfigOption(argv);
  if ('error' in taken) {
    io.stderr(`msrprelay ${name}: ${taken.error}\nTry "msrprelay ${name} --help".`);
    return 2;
  }
  if (taken.file === undefined && !configInFolder(io.cwd) && (await shippedProvider(name)) === undefined) {
    io.stderr(`msrprelay: unknown command "${name}": commands come from the config's plugins, and ${io.cwd} has no config (or pass --config FILE)\nTry "msrprelay --help".`);
    return 2;
  }
  try {
    const loaded = await loadConfig({ ...(taken.file !== undefined ? { file: taken.file } : {}), cwd: io.cwd });
    const providers = loaded.plugins.filter((p) => commandOf(p.Class, name) !== undefined);
    const first = providers[0];
    if (first === undefined) return await noProvider(name, loaded, io);
    if (providers.length > 1) io.stderr(`note: several plugins of ${loaded.source} provide "${name}"; using plugins[${first.index}] "${first.name}"`);
    const command = commandOf(first.Class, name)!;
    return await command.run(taken.rest, { stdout: io.stdout, stderr: io.stderr, stdin: io.stdin, cwd: io.cwd, config: loaded, options: first.options });
  } catch (e) {
    if (e instanceof ConfigError || e instanceof PluginLoadError) {
      io.stderr(`msrprelay ${name}: ${e.message}`);
      return 1;
    }
    throw e;
  }
}

function configInFolder(cwd: string): boolean {
  return CONFIG_SEARCH_PLACES.some((f) => existsSync(join(cwd, f)));
}

async function shippedProvider(name: string): Promise<string | undefined> {
  return (await shippedPlugins()).find((p) => commandOf(p.Class, name) !== undefined)?.name;
}

/** No configured plugin has the command: name the shipped plugin that would (a config problem, 1), else a bad command line (2). */
async function noProvider(name: string, loaded: LoadedConfig, io: CommandIO): Promise<number> {
  const names = loaded.plugins.map((p) => p.name);
  const its = names.length > 0 ? `its plugins: ${names.join(', ')}` : 'it has no plugins';
  const shipped = await shippedProvider(name);
  if (shipped !== undefined) {
    io.stderr(`msrprelay ${name}: ${loaded.source} has no ${shipped} plugin, which provides this command (${its})`);
    return 1;
  }
  io.stderr(`msrprelay: unknown command "${name}": no plugin of ${loaded.source} provides it (${its})\nTry "msrprelay --help".`);
  return 2;
}

/**
 * The help text's part on plugin commands: those of the config's plugins when a config is
 * found (`file`, else the search places in `cwd`), else those of the shipped plugins.
 */
export async function describeCommands(file: string | undefined, cwd: string): Promise<string> {
  if (file === undefined && !configInFolder(cwd)) {
    const lines = (await shippedPlugins()).flatMap((p) => commandLines(p.Class, p.name));
    if (lines.length === 0) return '';
    return `Plugin commands (of the shipped plugins, once the config has the plugin):\n${lines.join('\n')}\n`;
  }
  let loaded: LoadedConfig;
  try {
    loaded = await loadConfig({ ...(file !== undefined ? { file } : {}), cwd });
  } catch (e) {
    if (!(e instanceof ConfigError || e instanceof PluginLoadError)) throw e;
    const what = file ?? CONFIG_SEARCH_PLACES.find((f) => existsSync(join(cwd, f)));
    return `Plugin commands: not known, ${what} does not load (msrprelay --check-config says why).\n`;
  }
  const lines = loaded.plugins.flatMap((p) => commandLines(p.Class, p.name));
  if (lines.length === 0) return `The plugins of ${loaded.source} add no commands.\n`;
  return `Plugin commands (of the plugins of ${loaded.source}):\n${lines.join('\n')}\n`;
}

function commandLines(Class: RelayPluginClass | undefined, plugin: string): string[] {
  const commands = Class?.commands;
  if (commands === undefined) return [];
  return Object.entries(commands).map(([name, c]) => `  msrprelay ${name.padEnd(10)} ${c.summary} (${plugin})`);
}

function commandOf(Class: RelayPluginClass | undefined, name: string): PluginCommand | undefined {
  const commands = Class?.commands;
  return commands !== undefined && Object.hasOwn(commands, name) ? commands[name] : undefined;
}
