/**
 * domain-map: which SIP domain (and Digest realm) an AUTH belongs to, from the
 * host its To-Path names. Without it the domain is that host.
 *
 *   host → aliases[host]                       when listed,
 *        → host                                when it is in `allowed`,
 *        → default                             when the host names the relay itself
 *                                              (an IP, localhost, the relay hostname),
 *        → host                                otherwise.
 * A domain outside `allowed` gets 403 (MSRP_ERR_DOMAIN_NOT_SERVED).
 */

import { MsrpError, type PluginHost, type RelayPlugin } from '../../core/index.ts';
import { isIpLiteral } from '../../core/protocol/index.ts';

export interface DomainMapOptions {
  /** The domain of AUTHs addressed to the relay itself rather than a SIP domain. */
  default?: string;
  /** Host (as clients write it in AUTH To-Path) → SIP domain. */
  aliases?: Record<string, string>;
  /** The only domains served; others get 403. */
  allowed?: string[];
  /** A fixed Digest realm for every domain (default: the domain itself). */
  realm?: string;
}

export default class DomainMap implements RelayPlugin {
  static readonly schema = {
    type: 'object',
    additionalProperties: false,
    properties: {
      default: { type: 'string', minLength: 1 },
      aliases: { type: 'object', additionalProperties: { type: 'string', minLength: 1 }, default: {} },
      allowed: { type: 'array', items: { type: 'string', minLength: 1 }, minItems: 1 },
      realm: { type: 'string', minLength: 1 },
    },
  } as const;

  readonly name = 'domain-map';
  private readonly aliases: Map<string, string>;
  private readonly allowed: Set<string> | undefined;
  private readonly options: DomainMapOptions;

  constructor(options: DomainMapOptions) {
    this.options = options;
    this.aliases = new Map(Object.entries(options.aliases ?? {}).map(([h, d]) => [h.toLowerCase(), d.toLowerCase()]));
    this.allowed = options.allowed === undefined ? undefined : new Set(options.allowed.map((d) => d.toLowerCase()));
  }

  /** The domain for a host, or undefined when it is not served. */
  resolve(host: string, relayHostname: string): string | undefined {
    const h = host.toLowerCase();
    const def = this.options.default?.toLowerCase();
    let domain = this.aliases.get(h);
    if (domain === undefined) {
      const isRelay = isIpLiteral(h) || h === 'localhost' || h === relayHostname.toLowerCase();
      if (this.allowed?.has(h) === true) domain = h;
      else if (def !== undefined && isRelay) domain = def;
      else domain = h;
    }
    if (this.allowed !== undefined && !this.allowed.has(domain)) return undefined;
    return domain;
  }

  apply(relay: PluginHost): void {
    relay.hooks.resolveDomain.tapPromise(this.name, async (q) => {
      const domain = this.resolve(q.host, relay.hostname);
      if (domain === undefined) return { reject: new MsrpError('MSRP_ERR_DOMAIN_NOT_SERVED', `domain ${q.host} is not served here`) };
      return { domain, realm: this.options.realm ?? domain };
    });
  }
}
