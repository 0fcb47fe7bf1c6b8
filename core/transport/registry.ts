/**
 * The transport providers of one relay, by the transport names they serve
 * (core/transport/stream.ts). The core registers TCP and TLS; a plugin registers more from
 * its apply() (`relay.transports.register(provider)`), before the relay listens.
 */

import type { ListenConfig } from '../config/schema.ts';
import { describeEntry, type TransportProvider, type Transports } from './stream.ts';

export type { Transports };

export class TransportRegistry implements Transports {
  private readonly byName = new Map<string, TransportProvider>();

  register(provider: TransportProvider): void {
    for (const t of provider.transports) {
      if (!/^[a-z][a-z0-9-]{0,15}$/.test(t)) throw new Error(`transport provider "${provider.name}": "${t}" is not a transport name (lower-case letters, digits, "-")`);
      const other = this.byName.get(t);
      if (other !== undefined && other !== provider) throw new Error(`transport provider "${provider.name}": "${t}" is served by "${other.name}" already`);
    }
    for (const t of provider.transports) this.byName.set(t, provider);
  }

  get(transport: string): TransportProvider | undefined {
    return this.byName.get(transport);
  }

  names(): string[] {
    return [...this.byName.keys()];
  }

  /** What start would refuse about these entries: a transport nobody serves, a provider's own checks. */
  problems(entries: readonly ListenConfig[]): string[] {
    const out: string[] = [];
    for (const e of entries) {
      const p = this.byName.get(e.transport);
      if (p === undefined) {
        const hint = e.transport === 'ws' || e.transport === 'wss' ? ' (load the websocket plugin)' : '';
        out.push(`listen ${describeEntry(e)}: no transport provider serves "${e.transport}"${hint}; known: ${this.names().join(', ')}`);
        continue;
      }
      for (const m of p.check?.(e) ?? []) out.push(`listen ${describeEntry(e)}: ${m}`);
    }
    return out;
  }
}
