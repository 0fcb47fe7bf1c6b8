/**
 * A credentials plugin in 30 lines: accounts from a JSON file (docs/guides/writing-a-plugin.md).
 * In your own project, import the types from 'msrprelay' instead of '../../core/index.ts'.
 */
import { readFile } from 'node:fs/promises';
import type { PluginHost, RelayPlugin } from '../../core/index.ts';

interface Account { username: string; domain: string; ha1?: string; password?: string }

export default class JsonFileAuth implements RelayPlugin {
  // Checked (and defaults filled in) before the constructor runs; errors name the plugin and the option.
  static readonly schema = { type: 'object', additionalProperties: false, required: ['file'], properties: { file: { type: 'string', minLength: 1 } } };
  readonly name = 'json-file-auth';
  private readonly accounts = new Map<string, Account>();

  constructor(private readonly options: { file: string }) {}

  async apply(relay: PluginHost): Promise<void> {
    // Read on start and on every reload (SIGHUP makes a fresh instance); a bad file stops the start.
    for (const a of JSON.parse(await readFile(this.options.file, 'utf8')) as Account[]) {
      this.accounts.set(`${a.username}@${a.domain.toLowerCase()}`, a);
    }
    relay.log.info(`${this.name}: ${this.accounts.size} accounts from ${this.options.file}`);
    relay.hooks.lookupCredentials.tapPromise(this.name, async ({ username, domain }) => {
      const a = this.accounts.get(`${username}@${domain}`);
      // undefined passes: another credential plugin may know the user; if none does, 401.
      if (a === undefined) return undefined;
      return a.ha1 !== undefined ? { ha1: a.ha1 } : { password: a.password ?? '' };
    });
  }
}
