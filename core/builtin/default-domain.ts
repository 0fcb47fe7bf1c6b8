/**
 * core:default-domain — R-32: the SIP domain and Digest realm of an AUTH are the
 * host of its To-Path URI, so HA1 values from a SIP subscriber table work as they
 * are. It answers last (stage 1000); domain-map and other plugins answer first.
 */

import type { PluginHost, RelayPlugin } from '../plugin.ts';

export class DefaultDomainPlugin implements RelayPlugin {
  readonly name = 'core:default-domain';

  apply(relay: PluginHost): void {
    relay.hooks.resolveDomain.tapPromise({ name: this.name, stage: 1000 }, async (q) => {
      const host = q.host.toLowerCase();
      return { domain: host, realm: host };
    });
  }
}
