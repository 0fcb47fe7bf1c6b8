/**
 * auth-memory: accounts listed in the config. The reference example of a
 * credential plugin: it answers `lookupCredentials` and bars disabled accounts in
 * `checkAccount` (they authenticate, then get 403: R-38; a SIP front asks the same hook).
 */

import { MsrpError, type PluginHost, type RelayPlugin } from '../../core/index.ts';

export interface MemoryUser {
  username: string;
  /** The SIP domain; with core:default-domain it is also the Digest realm. */
  domain: string;
  /** Plain password, or … */
  password?: string;
  /** … MD5(username:realm:password) in hex (a SIP subscriber table's ha1 column). */
  ha1?: string;
  /** Authenticates, then is refused with 403. */
  disabled?: boolean;
  /** Passed to authorize taps as identity.attributes. */
  attributes?: Record<string, unknown>;
}

export interface AuthMemoryOptions {
  users: MemoryUser[];
}

export default class AuthMemory implements RelayPlugin {
  static readonly schema = {
    type: 'object',
    additionalProperties: false,
    required: ['users'],
    properties: {
      users: {
        type: 'array',
        items: {
          type: 'object',
          additionalProperties: false,
          required: ['username', 'domain'],
          properties: {
            username: { type: 'string', minLength: 1 },
            domain: { type: 'string', minLength: 1 },
            password: { type: 'string' },
            ha1: { type: 'string', pattern: '^[0-9a-fA-F]{32}$' },
            disabled: { type: 'boolean', default: false },
            attributes: { type: 'object' },
          },
          oneOf: [{ required: ['password'] }, { required: ['ha1'] }],
        },
      },
    },
  } as const;

  readonly name = 'auth-memory';
  private readonly users = new Map<string, MemoryUser>();

  constructor(options: AuthMemoryOptions) {
    for (const u of options.users) this.users.set(key(u.username, u.domain), u);
  }

  apply(relay: PluginHost): void {
    relay.hooks.lookupCredentials.tapPromise(this.name, async (q) => {
      const u = this.users.get(key(q.username, q.domain));
      if (u === undefined) return undefined;
      const attributes = u.attributes ?? {};
      return u.ha1 !== undefined ? { ha1: u.ha1.toLowerCase(), attributes } : { password: u.password!, attributes };
    });
    // A disabled account is barred from every front (MSRP AUTH, a SIP front), not just one AUTH.
    relay.hooks.checkAccount.tapPromise(this.name, async (identity) => {
      const u = this.users.get(key(identity.username, identity.domain));
      if (u?.disabled === true) return { reject: new MsrpError('MSRP_ERR_ACCOUNT_DISABLED') };
      return undefined;
    });
  }
}

/** Usernames are case-sensitive (SIP user part); domains are not. */
function key(username: string, domain: string): string {
  return `${username}@${domain.toLowerCase()}`;
}
