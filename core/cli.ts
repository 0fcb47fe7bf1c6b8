/**
 * The `msrprelay` command (DESIGN.md §5): runs a relay in the foreground from a
 * config file, or checks and prints that config, or runs a command that a
 * configured plugin contributes (`msrprelay users …`, commands.ts). `main`
 * returns the exit code; bin/msrprelay.js sets it, so the process ends when the
 * relay has closed.
 */

import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { describeCommands, runPluginCommand } from './commands.ts';
import { hostnameLookupWarning, hostnameWarnings } from './config/hostname-check.ts';
import { displayPath, loadConfigFile, type LoadedConfigFile } from './config/load.ts';
import type { RelayConfig, RelayConfigInput } from './config/schema.ts';
import { ConfigError, maskSecrets, normalizeConfig } from './config/validate.ts';
import { describeTaps, type RelayHooks } from './hooks.ts';
import type { Logger, PluginCommandContext } from './plugin.ts';
import { PluginLoadError } from './plugin-loader.ts';
import { createRelay, type Relay } from './relay.ts';
import { leaveCluster, parseWorkerCount, reportReady, runPrimary, workerFromEnv, workerSignals } from './cluster/primary.ts';
import type { WorkerOptions } from './cluster/worker-link.ts';
import { ensureSelfSignedCert } from './transport/self-signed.ts';
import { runClient } from './client-cli.ts';

const USAGE = `Usage: msrprelay [options]
       msrprelay client --user USER@DOMAIN ...   an MSRP client (msrprelay client --help)
       msrprelay COMMAND [options]   a command that a plugin of the config adds
                                     (listed below; msrprelay COMMAND --help)

Runs an MSRP relay (RFC 4975, RFC 4976) in the foreground until SIGTERM or
SIGINT, then lets open transfers drain and exits. SIGHUP reloads the config.

Options:
  -c, --config FILE   the config file (default: the first of msrprelay.config.js,
                      .mjs, .cjs, .json in the working directory)
      --check-config  validate the config and load its plugins, then exit
      --print-config  print the resolved config (defaults filled in, secrets
                      masked) as JSON, then exit
      --print-hooks   print every hook and its taps in run order, then exit
  -w, --workers N     run N worker processes sharing the listeners (node:cluster;
                      "auto": one per CPU; 1 or absent: one process); a request
                      for a session of another worker is passed to it
  -h, --help          print this help
  -v, --version       print the version

Exit status: 0 on success or a clean shutdown, 1 on a bad config or a failure
to start, 2 on a bad command line.
`;

/** Where main writes and what it listens to; the defaults are the process's. */
export interface CliIO {
  stdout(text: string): void;
  stderr(text: string): void;
  cwd: string;
  /** What a plugin command reads (a piped password, a terminal). */
  stdin: PluginCommandContext['stdin'];
  /** Where SIGTERM, SIGINT and SIGHUP come from. */
  signals: Pick<NodeJS.EventEmitter, 'on' | 'off'>;
  /** Ends the process at once: only on a second SIGTERM/SIGINT during shutdown. */
  exit(code: number): void;
}

const defaultIO = (): CliIO => ({
  stdout: (t) => process.stdout.write(t.endsWith('\n') ? t : `${t}\n`),
  stderr: (t) => process.stderr.write(t.endsWith('\n') ? t : `${t}\n`),
  cwd: process.cwd(),
  stdin: process.stdin,
  signals: process,
  exit: (code) => process.exit(code),
});

/**
 * Runs the command line `argv` (without node and the script) and resolves with
 * the exit code. Without an action flag it resolves only after the relay has
 * shut down.
 */
export async function main(argv: string[], io: Partial<CliIO> = {}): Promise<number> {
  if (argv[0] === 'client') return runClient(argv.slice(1), io);
  const cli: CliIO = { ...defaultIO(), ...io };
  // `msrprelay users …`: a word first is a command of a plugin; its arguments are its own.
  const first = argv[0];
  if (first !== undefined && first !== '' && !first.startsWith('-')) return runPluginCommand(first, argv.slice(1), cli);
  let values: { config?: string; workers?: string; 'check-config'?: boolean; 'print-config'?: boolean; 'print-hooks'?: boolean; help?: boolean; version?: boolean };
  try {
    ({ values } = parseArgs({
      args: argv,
      allowPositionals: false,
      strict: true,
      options: {
        config: { type: 'string', short: 'c' },
        'check-config': { type: 'boolean' },
        'print-config': { type: 'boolean' },
        'print-hooks': { type: 'boolean' },
        workers: { type: 'string', short: 'w' },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean', short: 'v' },
      },
    }));
  } catch (e) {
    cli.stderr(`msrprelay: ${(e as Error).message}\nTry "msrprelay --help".`);
    return 2;
  }

  if (values.help === true) {
    const commands = await describeCommands(values.config, cli.cwd);
    cli.stdout(commands === '' ? USAGE : `${USAGE}\n${commands}`);
    return 0;
  }
  if (values.version === true) {
    cli.stdout(packageVersion());
    return 0;
  }

  try {
    const loaded = await loadConfigFile({ ...(values.config !== undefined ? { file: values.config } : {}), cwd: cli.cwd });
    if (values['print-config'] === true) return printConfig(loaded, cli);
    if (values['print-hooks'] === true) return await printHooks(loaded, cli);
    if (values['check-config'] === true) return await checkConfig(loaded, cli);
    let workers = 1;
    let worker: WorkerOptions | undefined;
    try {
      if (values.workers !== undefined) workers = parseWorkerCount(values.workers);
      worker = workers > 1 ? workerFromEnv() : undefined;
    } catch (e) {
      cli.stderr(`msrprelay: ${(e as Error).message}\nTry "msrprelay --help".`);
      return 2;
    }
    if (workers > 1 && worker === undefined) return await runCluster(loaded, cli, workers, argv);
    return await run(loaded, cli, worker);
  } catch (e) {
    if (e instanceof ConfigError || e instanceof PluginLoadError) {
      cli.stderr(e.message);
      return 1;
    }
    throw e;
  }
}

// ------------------------------------------------------------------ actions

function printConfig(loaded: LoadedConfigFile, cli: CliIO): number {
  const config = normalizeConfig(loaded.config, { baseDir: loaded.baseDir, source: sourceOf(loaded, cli) });
  const shown = { ...config, plugins: config.plugins.map(describeEntry) };
  cli.stdout(JSON.stringify(maskSecrets(shown), null, 2));
  return 0;
}

async function printHooks(loaded: LoadedConfigFile, cli: CliIO): Promise<number> {
  const relay = await newRelay(loaded, cli);
  try {
    const lines: string[] = [];
    for (const { hook, taps } of describeTaps(relay.hooks as unknown as RelayHooks<unknown>)) {
      if (taps.length === 0) lines.push(`${hook}: (none)`);
      for (const t of taps) lines.push(`${hook}: ${t.name} (stage ${t.stage})`);
    }
    cli.stdout(lines.join('\n'));
  } finally {
    await relay.close();
  }
  return 0;
}

async function checkConfig(loaded: LoadedConfigFile, cli: CliIO): Promise<number> {
  const source = sourceOf(loaded, cli);
  const relay = await newRelay(loaded, cli);
  const config = relay.config;
  await relay.close();

  const problems: string[] = [];
  for (const c of tlsFiles(config, loaded.baseDir)) {
    if (c.missing.length === 0) continue;
    if (c.generated) cli.stdout(`note: /listen/${c.index}: a self-signed certificate will be written to ${c.cert} on start`);
    else problems.push(`/listen/${c.index}: ${c.missing.map((f) => `${f} does not exist`).join(', ')}`);
  }
  if (problems.length > 0) throw new ConfigError(problems, source);
  // R-42: a Use-Path host that peers elsewhere cannot reach (by its form; no DNS here).
  for (const w of hostnameWarnings(config.hostname, config.listen)) cli.stderr(`${source}: warning: ${w}`);

  const n = config.listen.length;
  const m = config.plugins.length;
  cli.stdout(`config OK: ${source} (${n} listener${n === 1 ? '' : 's'}, ${m} plugin${m === 1 ? '' : 's'})`);
  return 0;
}

/**
 * Writes the self-signed certificates a config asks for under its tls/ folder and does not
 * have yet. False (after saying why on stderr) when one cannot be made.
 */
async function generateCertificates(config: RelayConfig, loaded: LoadedConfigFile, cli: CliIO, log: Logger): Promise<boolean> {
  for (const c of tlsFiles(config, loaded.baseDir)) {
    if (c.missing.length === 0 || !c.generated) continue;
    const hostnames = [...new Set([config.hostname, 'localhost'])];
    try {
      await ensureSelfSignedCert({ certFile: c.cert, keyFile: c.key, hostnames, ips: ['127.0.0.1', '::1'] });
    } catch (e) {
      cli.stderr(`msrprelay: cannot generate a self-signed certificate for /listen/${c.index}: ${(e as Error).message}`);
      return false;
    }
    log.info('generated a self-signed certificate', { cert: c.cert, key: c.key, hostnames });
  }
  return true;
}

/** The foreground relay: listen, print the listeners, serve until a signal. */
async function run(loaded: LoadedConfigFile, cli: CliIO, worker?: WorkerOptions): Promise<number> {
  const log = createConsoleLogger((line) => cli.stderr(worker !== undefined ? `[w${worker.index}] ${line}` : line));
  const source = sourceOf(loaded, cli);
  const config = normalizeConfig(loaded.config, { baseDir: loaded.baseDir, source });
  // R-42: a Use-Path host that peers elsewhere cannot reach: by its form now, by DNS without waiting.
  if (worker === undefined || worker.index === 0) {
    for (const w of hostnameWarnings(config.hostname, config.listen)) log.warn(w);
    void hostnameLookupWarning(config.hostname).then((w) => w !== undefined && log.warn(w));
  }

  // `npm start` on a fresh clone: the sample config's certificate is generated, not shipped.
  if (!(await generateCertificates(config, loaded, cli, log))) return 1;

  const relay = await newRelay(loaded, cli, log, worker);
  try {
    await relay.listen();
  } catch (e) {
    cli.stderr(`msrprelay: cannot start: ${oneLine(e)}`);
    await relay.close().catch(() => {});
    return 1;
  }
  const useHost = config.hostname.includes(':') && !config.hostname.startsWith('[') ? `[${config.hostname}]` : config.hostname;
  const lines: string[] = [];
  for (const l of relay.listeners) {
    const host = l.host.includes(':') ? `[${l.host}]` : l.host;
    // W-8: a listener may have its clients use another listener's URI (WebSocket clients the TLS one).
    const via = (l.usePathTransport !== undefined ? relay.listeners.find((x) => x.transport === l.usePathTransport) : undefined) ?? l;
    lines.push(`listening ${l.transport}://${host}:${l.port} (Use-Path ${via.scheme}://${useHost}:${via.port}/...;tcp)`);
  }
  if (worker === undefined) {
    for (const line of lines) cli.stdout(line);
    return serveUntilSignal(relay, loaded, cli, log);
  }
  // A worker: the primary prints worker 0's lines once every worker listens.
  reportReady(worker.index === 0 ? lines : []);
  const code = await serveUntilSignal(relay, loaded, { ...cli, signals: workerSignals() }, log);
  leaveCluster();
  return code;
}

/** `--workers N`: check the config here (same messages as --check-config), then fork and supervise the workers. */
async function runCluster(loaded: LoadedConfigFile, cli: CliIO, workers: number, argv: string[]): Promise<number> {
  const log = createConsoleLogger((line) => cli.stderr(`[primary] ${line}`));
  const relay = await newRelay(loaded, cli);
  const config = relay.config;
  await relay.close();
  // Generated certificates are written once, here, not by every worker at the same time.
  if (!(await generateCertificates(config, loaded, cli, log))) return 1;
  return runPrimary({ count: workers, args: argv, log, stdout: (t) => cli.stdout(t), signals: cli.signals, exit: (code) => cli.exit(code) });
}

function serveUntilSignal(relay: Relay, loaded: LoadedConfigFile, cli: CliIO, log: Logger): Promise<number> {
  const source = sourceOf(loaded, cli);
  return new Promise<number>((done) => {
    let stopping = false;
    let reloading: Promise<void> = Promise.resolve();

    const stop = (signal: string) => {
      if (stopping) {
        log.error(`${signal} again: exiting without draining`);
        cli.exit(1);
        return;
      }
      stopping = true;
      log.info(`${signal}: closing (send it again to exit at once)`);
      reloading
        .then(() => relay.close())
        .then(
          () => finish(0),
          (e: unknown) => {
            log.error('close failed', { error: oneLine(e) });
            finish(1);
          },
        );
    };
    const onTerm = () => stop('SIGTERM');
    const onInt = () => stop('SIGINT');
    const onHup = () => {
      if (stopping) return;
      reloading = reloading.then(async () => {
        try {
          const next = await loadConfigFile({ file: loaded.filepath, cwd: cli.cwd });
          await relay.reload(next.config, { baseDir: next.baseDir, source });
          log.info(`reloaded ${source}`);
        } catch (e) {
          const why = e instanceof ConfigError || e instanceof PluginLoadError ? e.message : oneLine(e);
          log.error(`reload failed, the running config stays in force:\n${why}`);
        }
      });
    };
    const finish = (code: number) => {
      cli.signals.off('SIGTERM', onTerm);
      cli.signals.off('SIGINT', onInt);
      cli.signals.off('SIGHUP', onHup);
      done(code);
    };
    cli.signals.on('SIGTERM', onTerm);
    cli.signals.on('SIGINT', onInt);
    cli.signals.on('SIGHUP', onHup);
  });
}

// ------------------------------------------------------------------ helpers

function newRelay(loaded: LoadedConfigFile, cli: CliIO, logger?: Logger, worker?: WorkerOptions): Promise<Relay> {
  return createRelay(loaded.config as RelayConfigInput, {
    baseDir: loaded.baseDir,
    source: sourceOf(loaded, cli),
    ...(logger !== undefined ? { logger } : {}),
    ...(worker !== undefined ? { worker } : {}),
  });
}

function sourceOf(loaded: LoadedConfigFile, cli: CliIO): string {
  return displayPath(loaded.filepath, cli.cwd);
}

interface TlsFiles {
  index: number;
  cert: string;
  key: string;
  /** Of cert and key, the files that do not exist. */
  missing: string[];
  /** Both live under tls/ beside the config: a self-signed pair may be generated there. */
  generated: boolean;
}

function tlsFiles(config: Readonly<RelayConfig>, baseDir: string): TlsFiles[] {
  const tlsDir = join(baseDir, 'tls') + sep;
  const out: TlsFiles[] = [];
  config.listen.forEach((l, index) => {
    if ((l.transport !== 'tls' && l.transport !== 'wss') || l.cert === undefined || l.key === undefined) return;
    const missing = [l.cert, l.key].filter((f) => !existsSync(f));
    out.push({ index, cert: l.cert, key: l.key, missing, generated: l.cert.startsWith(tlsDir) && l.key.startsWith(tlsDir) });
  });
  return out;
}

/** A plugin entry as --print-config shows it: [name, options]. */
function describeEntry(entry: unknown): unknown {
  if (Array.isArray(entry)) {
    const [target, options] = entry as [unknown, unknown];
    const name = typeof target === 'string' ? target : maskSecrets(target);
    return options === undefined ? [name] : [name, maskSecrets(options)];
  }
  if (typeof entry === 'string') return [entry];
  return [maskSecrets(entry)];
}

function oneLine(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).replace(/\s*\n\s*/g, '; ');
}

function packageVersion(): string {
  // core/cli.ts in the source tree, dist/core/cli.js when built: walk up to the package root.
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 4; i++) {
    const file = join(dir, 'package.json');
    if (existsSync(file)) {
      const pkg = JSON.parse(readFileSync(file, 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'msrprelay' && typeof pkg.version === 'string') return pkg.version;
    }
    dir = dirname(dir);
  }
  return 'unknown';
}

const LEVELS = { debug: 10, info: 20, warn: 30, error: 40 } as const;

/**
 * A Logger for the foreground relay: one `level msg {json fields}` line per
 * call, info and above, secrets masked (STYLE.md convention 7).
 */
export function createConsoleLogger(write: (line: string) => void, level: keyof typeof LEVELS = 'info'): Logger {
  const min = LEVELS[level];
  const emit = (l: keyof typeof LEVELS) => (msg: string, fields?: Record<string, unknown>) => {
    if (LEVELS[l] < min) return;
    const extra = fields !== undefined && Object.keys(fields).length > 0 ? ` ${safeJson(maskSecrets(fields))}` : '';
    write(`${l} ${msg}${extra}`);
  };
  return { debug: emit('debug'), info: emit('info'), warn: emit('warn'), error: emit('error') };
}

function safeJson(v: unknown): string {
  try {
    return JSON.stringify(v) ?? '';
  } catch {
    return '"[unserialisable fields]"';
  }
}
