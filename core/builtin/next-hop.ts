/**
 * core:next-hop — where the relay dials when a request goes on past it: the host
 * and port of the next To-Path URI, over TLS for `msrps` (RFC 4975 §6: "MUST be
 * protected with TLS") and TCP for `msrp`. Answers last (stage 1000).
 */

import { isIpLiteral } from '../protocol/uri.ts';
import type { PluginHost, RelayPlugin } from '../plugin.ts';

export class NextHopPlugin implements RelayPlugin {
  readonly name = 'core:next-hop';

  apply(relay: PluginHost): void {
    relay.hooks.resolveNextHop.tapPromise({ name: this.name, stage: 1000 }, async (q) => {
      const u = q.uri;
      const tls = u.scheme === 'msrps';
      return {
        host: u.host,
        // RFC 4976 §8: 2855 is the default relay port; other URIs carry an explicit port.
        port: u.port ?? 2855,
        transport: tls ? 'tls' : 'tcp',
        // SNI and certificate check against the URI's host name.
        ...(tls && !isIpLiteral(u.host) ? { servername: u.host } : {}),
      };
    });
  }
}
