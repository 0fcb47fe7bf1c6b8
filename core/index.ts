/**
 * msrprelay: a plugin-based, embeddable MSRP relay (RFC 4975, RFC 4976).
 *
 *   import { createRelay } from 'msrprelay';
 */

export { createRelay, Relay, type CreateRelayOptions } from './relay.ts';
export { MsrpError, MSRP_ERRORS, isMsrpError, type MsrpErrorCode } from './errors.ts';
export { HOOK_ORDER, HookTimeoutError, PluginError, describeTaps, type RelayHooks, type HookName } from './hooks.ts';
export type { Logger, PluginHost, RelayPlugin, RelayPluginClass, SessionsView, PluginCommand, PluginCommandContext } from './plugin.ts';
export type * from './types.ts';
export type { RelayConfig, RelayConfigInput, ListenConfig, PluginEntry } from './config/schema.ts';
// The transport seam (DESIGN.md §3a, docs/reference/transports.md).
export { describeEntry, type Admission, type MsrpStream, type TransportProvider, type TransportContext, type TransportListener, type AdoptOptions } from './transport/stream.ts';
export type { Transports } from './transport/registry.ts';
// A config read as `msrprelay` reads it, for plugin commands and other tools (docs/guides/writing-a-plugin.md).
export { loadConfig, type LoadedConfig } from './config/load.ts';
export { ConfigError } from './config/validate.ts';
export { PluginLoadError, type ConfiguredPlugin } from './plugin-loader.ts';

import type { RelayConfigInput } from './config/schema.ts';

/** Types a config file without changing it: `export default defineConfig({ ... })`. */
export function defineConfig(config: RelayConfigInput): RelayConfigInput {
  return config;
}
