/**
 * Masking of secrets before anything is written (R-87, STYLE.md convention 7).
 *
 * Two layers: pino's `redact` censors known field paths, and this module walks
 * every value the relay or a plugin hands to the logger, so a secret hidden in a
 * message string (a Use-Path URI in an error text, a Digest header quoted in a
 * reason) is masked too. Session-ids keep their first 4 characters, like the
 * core's own log lines, so two sessions can still be told apart.
 */

import { maskId } from '../../core/protocol/index.ts';

export const MASK = '[masked]';

/** Field names whose value is a secret whatever it looks like. */
const SECRET_KEY = /^(authorization|proxy-authorization|www-authenticate|authentication-info|password|passwd|pass|secret|token|nonce|cnonce|nextnonce|ha1|rspauth|opaque|credentials|cookie|set-cookie|apikey|api-key|api_key)$/i;

/** The session-id part of an MSRP URI: msrp://host:port/<session-id>;tcp (RFC 4975 §9). */
const MSRP_URI = /(msrps?:\/\/[^\s/;"',<>]+\/)([^\s;"',<>]+)/gi;

/** Digest parameters that are secrets or derived from one (RFC 2617 as RFC 4976 uses it). */
const DIGEST_PARAM = /\b(nonce|cnonce|nextnonce|response|rspauth|opaque|password)(\s*=\s*)("[^"]*"|[^\s,;]+)/gi;

/** Field paths pino's redact censors on every line (one wildcard level deep). */
export const REDACT_PATHS: readonly string[] = [
  'authorization',
  '*.authorization',
  'password',
  '*.password',
  'nonce',
  '*.nonce',
  'cnonce',
  '*.cnonce',
  'token',
  '*.token',
  'ha1',
  '*.ha1',
  'secret',
  '*.secret',
  'headers.Authorization',
  'headers.authorization',
];

/** Masks session-ids in MSRP URIs and Digest secrets inside a free text. */
export function maskText(text: string): string {
  if (text.indexOf('://') === -1 && text.indexOf('=') === -1) return text;
  return text.replace(MSRP_URI, (_m, prefix: string, id: string) => `${prefix}${maskId(id)}`).replace(DIGEST_PARAM, (_m, name: string, eq: string) => `${name}${eq}"****"`);
}

/** A session-id (or any token) as it may appear in a log line. */
export function maskSessionId(id: string): string {
  return maskId(id);
}

/**
 * A copy of `value` with every secret masked: values under secret-looking keys
 * are replaced, strings are scanned for URIs and Digest parameters. Depth and
 * width are bounded so a log call never walks a huge structure.
 */
export function maskValue(value: unknown, depth = 0): unknown {
  if (typeof value === 'string') return maskText(value);
  if (value === null || typeof value !== 'object') return value;
  if (depth > 6) return '[deep]';
  if (value instanceof Error) return { name: value.name, message: maskText(value.message) };
  if (Buffer.isBuffer(value)) return `[${value.length} bytes]`;
  if (Array.isArray(value)) return value.slice(0, 100).map((v) => maskValue(v, depth + 1));
  if (value instanceof Map) return maskValue(Object.fromEntries(value), depth);
  const out: Record<string, unknown> = {};
  let n = 0;
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    if (++n > 100) break;
    out[k] = SECRET_KEY.test(k) && v !== undefined && v !== null ? MASK : maskValue(v, depth + 1);
  }
  return out;
}

/** Fields of a log call, masked; `undefined` when there are none. */
export function maskFields(fields: Record<string, unknown> | undefined): Record<string, unknown> | undefined {
  if (fields === undefined) return undefined;
  return maskValue(fields) as Record<string, unknown>;
}
