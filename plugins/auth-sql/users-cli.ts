/**
 * `msrprelay users add|remove|list|passwd`: manages the accounts of the auth-sql
 * plugin of the config. The class contributes the command (AuthSql.commands); the
 * `msrprelay` command loads the config (--config FILE, or as it finds it), picks
 * the first auth-sql entry and runs `runUsers` with its validated options.
 * Passwords are stored as HA1 = MD5(username ":" realm ":" password), the realm
 * being the domain unless --realm or domain-map's `realm` says otherwise;
 * --plaintext stores the password itself. Passwords are never printed.
 */

import { parseArgs } from 'node:util';
import type { PluginCommandContext } from '../../core/index.ts';
import { secretColumns, type AuthSqlOptions } from './accounts.ts';
import { MissingDriverError } from './load-driver.ts';
import type { SubscriberTable } from './subscriber-table.ts';

export const USERS_USAGE = `Usage: msrprelay users <command> [options]

Manages the accounts of the auth-sql plugin of the config.

Commands:
  add USER@DOMAIN      add an account
  passwd USER@DOMAIN   set a new password
  remove USER@DOMAIN   delete an account
  list [DOMAIN]        list accounts (and what is stored: ha1 or plaintext)

Options:
  -c, --config FILE    the config file (default: as msrprelay finds it)
  -p, --password PW    the password; "-" reads it from stdin, as does piped
                       input when --password is not given; on a terminal the
                       password is asked for
      --plaintext      store the password itself instead of its HA1
      --realm REALM    the Digest realm of the HA1 (default: domain-map's
                       realm if the config fixes one, else the domain)
  -h, --help           print this help

Examples:
  msrprelay users add alice@example.com --password secret
  printf 'secret\\n' | msrprelay users passwd alice@example.com
  msrprelay users list example.com

Exit status: 0 on success, 1 on a failure (no such account, account exists,
database or config error), 2 on a bad command line.
`;

class UsageError extends Error {}
class Failure extends Error {}

interface Values {
  password?: string;
  plaintext?: boolean;
  realm?: string;
  help?: boolean;
}

/** Runs `msrprelay users ARGV` (the config option already taken out) and resolves with the exit code. */
/** The plugin as the command uses it: its options and its table (index.ts passes `new AuthSql(options)`). */
export interface AccountsPlugin {
  readonly options: AuthSqlOptions;
  openTable(): Promise<SubscriberTable>;
  close(): Promise<void>;
}

export async function runUsers(argv: string[], cli: PluginCommandContext<AuthSqlOptions>, open: (options: AuthSqlOptions) => AccountsPlugin): Promise<number> {
  let values: Values;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        password: { type: 'string', short: 'p' },
        plaintext: { type: 'boolean' },
        realm: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (e) {
    cli.stderr(`msrprelay users: ${(e as Error).message}\nTry "msrprelay users --help".`);
    return 2;
  }
  if (values.help === true || positionals.length === 0) {
    (values.help === true ? cli.stdout : cli.stderr)(USERS_USAGE);
    return values.help === true ? 0 : 2;
  }

  const [command, ...rest] = positionals as [string, ...string[]];
  let plugin: AccountsPlugin | undefined;
  try {
    const args = checkArgs(command, rest, values);
    plugin = newPlugin(cli.options, open);
    const table = await plugin.openTable();
    if (plugin.options.query !== undefined && command !== 'list') {
      cli.stderr(`note: the config reads accounts with its own query; this command writes to table ${table.layout.table}`);
    }
    switch (command) {
      case 'list':
        for (const a of await table.list(args.domain)) cli.stdout(`${a.username}@${a.domain}\t${a.stored}`);
        return 0;
      case 'remove':
        if ((await table.remove(args.username!, args.domain!)) === 0) throw new Failure(`no account ${args.username}@${args.domain}`);
        cli.stdout(`removed ${args.username}@${args.domain}`);
        return 0;
      case 'add':
      case 'passwd':
        return await setPassword(command, table, plugin, args as Required<Args>, values, configRealm(cli), cli);
    }
    return 2;
  } catch (e) {
    if (e instanceof UsageError) {
      cli.stderr(`msrprelay users: ${e.message}\nTry "msrprelay users --help".`);
      return 2;
    }
    if (e instanceof Failure || e instanceof MissingDriverError) {
      cli.stderr(`msrprelay users: ${e.message}`);
      return 1;
    }
    cli.stderr(`msrprelay users: the database failed: ${scrub(e, plugin)}`);
    return 1;
  } finally {
    await plugin?.close().catch(() => {});
  }
}

interface Args {
  username?: string;
  domain?: string;
}

function checkArgs(command: string, rest: string[], values: Values): Args {
  if (!['add', 'passwd', 'remove', 'list'].includes(command)) throw new UsageError(`unknown command "${command}"`);
  if (command === 'list') {
    if (rest.length > 1) throw new UsageError('list takes at most one DOMAIN');
    return rest[0] !== undefined ? { domain: rest[0].toLowerCase() } : {};
  }
  if (rest.length !== 1) throw new UsageError(`${command} takes one USER@DOMAIN`);
  if (command === 'remove' && (values.password !== undefined || values.plaintext === true || values.realm !== undefined)) {
    throw new UsageError('remove takes no --password, --plaintext or --realm');
  }
  const at = rest[0]!.lastIndexOf('@');
  const username = at > 0 ? rest[0]!.slice(0, at) : '';
  const domain = at > 0 ? rest[0]!.slice(at + 1).toLowerCase() : '';
  if (username === '' || domain === '' || /[\s"]/.test(username) || /[\s"@]/.test(domain)) {
    throw new UsageError(`"${rest[0]}" is not USER@DOMAIN`);
  }
  return { username, domain };
}

async function setPassword(
  command: 'add' | 'passwd',
  table: SubscriberTable,
  plugin: AccountsPlugin,
  a: Required<Args>,
  values: Values,
  configRealm: string | undefined,
  cli: PluginCommandContext<AuthSqlOptions>,
): Promise<number> {
  const mode = plugin.options.mode;
  if (values.plaintext === true && mode === 'ha1') throw new Failure('the config reads only HA1 values (mode "ha1"): drop --plaintext');
  if (values.plaintext === true && values.realm !== undefined) throw new UsageError('--realm is for HA1 values, not with --plaintext');
  const exists = await table.exists(a.username, a.domain);
  if (command === 'add' && exists) throw new Failure(`${a.username}@${a.domain} exists already (use passwd to change its password)`);
  if (command === 'passwd' && !exists) throw new Failure(`no account ${a.username}@${a.domain}`);

  const password = await readPassword(values.password, cli);
  const plaintext = values.plaintext === true || mode === 'plaintext';
  const realm = values.realm ?? configRealm ?? a.domain;
  const row = secretColumns(plaintext ? 'plaintext' : 'ha1', { username: a.username, domain: a.domain, password, realm });
  if (command === 'add') await table.insert(row);
  else await table.update(row);
  const stored = plaintext ? 'plain-text password' : `HA1, realm ${realm}`;
  cli.stdout(`${command === 'add' ? 'added' : 'changed the password of'} ${a.username}@${a.domain} (${stored})`);
  return 0;
}

/** The plugin of the entry the command was found in: its options are validated already, its constructor checks the query. */
function newPlugin(options: AuthSqlOptions, open: (options: AuthSqlOptions) => AccountsPlugin): AccountsPlugin {
  try {
    return open(options);
  } catch (e) {
    throw new Failure(`the auth-sql options are invalid: ${(e as Error).message}`);
  }
}

/** domain-map's fixed realm, when the config has domain-map and sets one. */
function configRealm(cli: PluginCommandContext<AuthSqlOptions>): string | undefined {
  const realm = (cli.config.plugin('domain-map')?.options as { realm?: unknown } | undefined)?.realm;
  return typeof realm === 'string' ? realm : undefined;
}

/** --password VALUE, or stdin ("-", or piped input), or a prompt on a terminal. */
async function readPassword(given: string | undefined, cli: PluginCommandContext<AuthSqlOptions>): Promise<string> {
  let password: string;
  if (given !== undefined && given !== '-') password = given;
  else if (given === '-' || cli.stdin.isTTY !== true) password = firstLine(await readAll(cli.stdin));
  else {
    password = await promptHidden('Password: ', cli);
    if ((await promptHidden('Again: ', cli)) !== password) throw new Failure('the passwords differ');
  }
  if (password === '') throw new Failure('an empty password');
  return password;
}

async function readAll(stream: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(typeof c === 'string' ? Buffer.from(c) : c);
  return Buffer.concat(chunks).toString('utf8');
}

function firstLine(text: string): string {
  const nl = text.search(/\r?\n/);
  return nl === -1 ? text : text.slice(0, nl);
}

/** Reads a line from the terminal without echoing it. */
function promptHidden(question: string, cli: PluginCommandContext<AuthSqlOptions>): Promise<string> {
  const input = cli.stdin;
  process.stderr.write(question);
  return new Promise((resolve, reject) => {
    let text = '';
    input.setRawMode?.(true);
    input.resume();
    const onData = (d: Buffer | string) => {
      for (const ch of d.toString()) {
        if (ch === '\r' || ch === '\n') return done(() => resolve(text));
        if (ch === '\u0003' || ch === '\u0004') return done(() => reject(new Failure('cancelled')));
        if (ch === '\u007f' || ch === '\b') text = text.slice(0, -1);
        else text += ch;
      }
    };
    const done = (f: () => void) => {
      input.removeListener('data', onData);
      input.setRawMode?.(false);
      input.pause();
      process.stderr.write('\n');
      f();
    };
    input.on('data', onData);
  });
}

function scrub(e: unknown, plugin: AccountsPlugin | undefined): string {
  let text = e instanceof Error ? e.message : String(e);
  for (const s of [plugin?.options.password, plugin?.options.url]) if (s !== undefined && s !== '') text = text.split(s).join('***');
  return text;
}
