/**
 * Validation of the config file (DESIGN.md §5): ajv against CONFIG_SCHEMA, which
 * also fills in the defaults, then the checks one schema cannot express
 * (expires order, duplicate listeners, the syntax of outbound rules). Every
 * problem is reported at once, one per line, with the JSON pointer of the key
 * and the reason, so an operator fixes the file in one pass. The plugin loader reuses the same wording for
 * plugin options.
 */

import AjvModule from 'ajv';
import type { ErrorObject } from 'ajv';
import { isAbsolute, resolve } from 'node:path';
import { isRelayPlugin } from '../plugin.ts';
import { CONFIG_SCHEMA, SHIPPED_TRANSPORTS, type RelayConfig } from './schema.ts';
import { parseRule } from '../transport/destination-policy.ts';

// ajv is CommonJS: its class is the default export of the default export.
type AjvClass = typeof AjvModule.default;
const Ajv: AjvClass = (AjvModule as unknown as { default?: AjvClass }).default ?? (AjvModule as unknown as AjvClass);

/** A config that cannot be used; `problems` holds one line per problem, without the file name. */
export class ConfigError extends Error {
  readonly problems: string[];
  /** The config file the problems are in, when there is one. */
  readonly source: string | undefined;

  constructor(problems: string[], source?: string, options?: { cause?: unknown }) {
    const lines = problems.length > 0 ? problems : ['invalid configuration'];
    super(lines.map((p) => (source !== undefined ? `${source}: ${p}` : p)).join('\n'), options);
    this.name = 'ConfigError';
    this.problems = lines;
    this.source = source;
  }
}

export interface NormalizeOptions {
  /** The config file name, prefixed to every message. */
  source?: string;
  /** Folder that relative certificate and key paths are resolved against (default: the working directory). */
  baseDir?: string;
  /**
   * Listen entries may name any transport: the relay checks them against its registered
   * providers once the plugins are applied. Otherwise only the shipped transports pass.
   */
  anyTransport?: boolean;
}

const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: false });
const validateConfig = ajv.compile(CONFIG_SCHEMA);
/** The same schema with listen transports limited to the shipped ones (a config checked without its plugins). */
const SHIPPED_SCHEMA = (() => {
  const s = structuredClone(CONFIG_SCHEMA) as unknown as { properties: { listen: { items: { properties: Record<string, unknown> } } } };
  s.properties.listen.items.properties.transport = { type: 'string', enum: [...SHIPPED_TRANSPORTS] };
  return s as unknown as typeof CONFIG_SCHEMA;
})();
const validateShipped = ajv.compile(SHIPPED_SCHEMA);

/**
 * Validates a config and returns it complete: defaults filled in, certificate
 * paths absolute. The input is not modified; plugin entries (which may be
 * instances or classes when embedding) are passed through as they are.
 *
 * @throws ConfigError listing every problem found.
 */
export function normalizeConfig(input: unknown, options: NormalizeOptions = {}): RelayConfig {
  const { source } = options;
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw new ConfigError([`the config must be an object, got ${describeType(input)}`], source);
  }
  const { plugins, ...rest } = input as Record<string, unknown>;
  let config: Record<string, unknown>;
  try {
    config = cloneData(rest) as Record<string, unknown>;
  } catch (e) {
    throw e instanceof ConfigError ? new ConfigError(e.problems, source) : e;
  }
  // Plugin entries may hold class instances and functions: the array is copied, its entries are not.
  if (plugins !== undefined) config.plugins = Array.isArray(plugins) ? [...(plugins as unknown[])] : plugins;

  const problems: string[] = [];
  const validate = options.anyTransport === true ? validateConfig : validateShipped;
  const schema = options.anyTransport === true ? CONFIG_SCHEMA : SHIPPED_SCHEMA;
  if (!validate(config)) problems.push(...describeSchemaErrors(validate.errors ?? [], schema, config));
  problems.push(...crossFieldProblems(config));
  if (problems.length > 0) throw new ConfigError(dedupe(problems), source);

  const baseDir = options.baseDir ?? process.cwd();
  const file = (p: unknown) => (typeof p === 'string' && !isAbsolute(p) ? resolve(baseDir, p) : p);
  // Keys in the schema's order, so --print-config reads like the docs.
  const ordered: Record<string, unknown> = {};
  for (const k of Object.keys(CONFIG_SCHEMA.properties)) if (k in config) ordered[k] = config[k];
  const result = ordered as unknown as RelayConfig;
  for (const l of result.listen) {
    if (l.cert !== undefined) l.cert = file(l.cert) as string;
    if (l.key !== undefined) l.key = file(l.key) as string;
    if (l.ca !== undefined) l.ca = file(l.ca) as string;
  }
  const out = result.outboundTls;
  if (out.cert !== undefined) out.cert = file(out.cert) as string;
  if (out.key !== undefined) out.key = file(out.key) as string;
  if (out.ca !== undefined) out.ca = file(out.ca) as string;
  addTransportPlugins(result);
  return result;
}

/** Listen transports a shipped plugin serves: a listen entry of one is all a config needs. */
const TRANSPORT_PLUGINS: Readonly<Record<string, string>> = Object.freeze({ ws: 'websocket', wss: 'websocket' });

/**
 * Appends the shipped plugin that serves a listen entry's transport (`websocket` for ws and
 * wss) when no plugin entry provides it: named by its shipped name or a path to it, or a class
 * or instance whose `transports` lists the transport. Options for it go under its own entry.
 */
function addTransportPlugins(config: RelayConfig): void {
  for (const l of config.listen) {
    const name = TRANSPORT_PLUGINS[l.transport];
    if (name === undefined || config.plugins.some((e) => servesTransport(e, l.transport, name))) continue;
    config.plugins.push(name);
  }
}

function servesTransport(entry: unknown, transport: string, name: string): boolean {
  const target: unknown = Array.isArray(entry) ? entry[0] : entry;
  if (typeof target === 'string') {
    const file = target.replace(/\\/g, '/').replace(/\/index\.[cm]?[jt]s$/, '').replace(/\/+$/, '');
    return file === name || file === `msrprelay/plugins/${name}` || file.endsWith(`/${name}`);
  }
  if ((typeof target === 'object' && target !== null) || typeof target === 'function') {
    const served = (target as { transports?: unknown }).transports;
    return Array.isArray(served) && served.includes(transport);
  }
  return false;
}

/** What ajv cannot check: relations between keys. Runs on partly invalid configs too. */
function crossFieldProblems(config: Record<string, unknown>): string[] {
  const problems: string[] = [];

  const session = config.session as Record<string, unknown> | undefined;
  if (isObject(session)) {
    const { minExpires: min, defaultExpires: def, maxExpires: max } = session;
    // R-41: the relay answers 423 outside [min, max] and proposes default.
    if (typeof min === 'number' && typeof def === 'number' && min > def) {
      problems.push(`/session: minExpires (${min}) must be <= defaultExpires (${def})`);
    }
    if (typeof def === 'number' && typeof max === 'number' && def > max) {
      problems.push(`/session: defaultExpires (${def}) must be <= maxExpires (${max})`);
    }
  }

  const listen = config.listen;
  if (Array.isArray(listen)) {
    const seen = new Map<string, number>();
    listen.forEach((l: unknown, i) => {
      if (!isObject(l)) return;
      const { transport, host, port, cert, key } = l as Record<string, unknown>;
      if ((transport === 'tls' || transport === 'wss') && (cert === undefined || key === undefined)) {
        problems.push(`/listen/${i}: a ${transport} listener needs "cert" and "key" files`);
      }
      if (typeof host === 'string' && typeof port === 'number' && port !== 0) {
        const k = `${host.toLowerCase()}:${port}`;
        const first = seen.get(k);
        if (first !== undefined) problems.push(`/listen/${i}: same host and port as /listen/${first} (${host}:${port})`);
        else seen.set(k, i);
      }
    });
  }

  // outbound.allow / deny: each entry must be a rule the destination policy understands.
  const outbound = config.outbound;
  if (isObject(outbound)) {
    for (const key of ['allow', 'deny'] as const) {
      const list = outbound[key];
      if (!Array.isArray(list)) continue;
      list.forEach((entry: unknown, i) => {
        if (typeof entry !== 'string' || entry === '') return; // the schema says it
        const r = parseRule(entry);
        if (typeof r === 'string') problems.push(`/outbound/${key}/${i}: ${JSON.stringify(entry)}: ${r}`);
      });
    }
  }
  return problems;
}

// ------------------------------------------------------------------ messages

/**
 * Turns ajv errors into one line each: `<pointer> <reason>`. Unknown keys get a
 * "did you mean", enums list their values, `oneOf` between required keys reads
 * as a choice, and the tls/wss cert rule is left to the cross-field check.
 */
export function describeSchemaErrors(errors: readonly ErrorObject[], schema: object, data: unknown): string[] {
  const lines: string[] = [];
  // Errors inside a oneOf/anyOf that reads as "one of these keys" are summed up by that error.
  const summarised: string[] = [];
  for (const e of errors) {
    if ((e.keyword === 'oneOf' || e.keyword === 'anyOf') && requiredChoices(schemaAt(schema, e.schemaPath)) !== undefined) {
      summarised.push(`${e.schemaPath}/`);
    }
  }

  for (const e of errors) {
    if (summarised.some((p) => e.schemaPath.startsWith(p))) continue;
    const at = e.instancePath;
    const where = at === '' ? '/' : at;
    const value = valueAt(data, at);
    switch (e.keyword) {
      case 'if':
        // The failing `then` branch reports the real problem.
        continue;
      case 'required': {
        const missing = (e.params as { missingProperty: string }).missingProperty;
        if (/\/then\/required$/.test(e.schemaPath) && /^\/listen\/\d+$/.test(at)) continue; // crossFieldProblems says it better
        if (at === '' && missing === 'listen') {
          lines.push('/listen is required: the relay needs at least one listener');
        } else {
          lines.push(`${at}/${escapePointer(missing)} is required`);
        }
        break;
      }
      case 'additionalProperties': {
        const extra = (e.params as { additionalProperty: string }).additionalProperty;
        const parent = schemaAt(schema, e.schemaPath.replace(/\/additionalProperties$/, '')) as { properties?: object } | undefined;
        const known = parent?.properties !== undefined ? Object.keys(parent.properties) : [];
        const guess = didYouMean(extra, known);
        const hint = guess !== undefined ? ` (did you mean "${guess}"?)` : '';
        lines.push(`${at === '' ? '' : `${at}: `}unknown key "${extra}"${hint}`);
        break;
      }
      case 'enum': {
        const allowed = (e.params as { allowedValues: unknown[] }).allowedValues;
        lines.push(`${where} must be one of ${allowed.map((v) => JSON.stringify(v)).join(', ')} (got ${JSON.stringify(value)})`);
        break;
      }
      case 'oneOf':
      case 'anyOf': {
        const choices = requiredChoices(schemaAt(schema, e.schemaPath));
        if (choices !== undefined) {
          const list = choices.map((c) => `"${c}"`).join(', ');
          const passing = (e.params as { passingSchemas?: number[] | null }).passingSchemas;
          lines.push(Array.isArray(passing) ? `${where} must have only one of ${list}` : `${where} needs one of ${list}`);
        } else {
          lines.push(`${where} ${e.message ?? 'is invalid'}`);
        }
        break;
      }
      case 'minItems':
        if (at === '/listen') {
          lines.push('/listen must list at least one listener');
          break;
        }
        lines.push(`${where} ${e.message ?? 'is invalid'}`);
        break;
      case 'minLength':
        if ((e.params as { limit: number }).limit === 1) {
          lines.push(`${where} must not be empty`);
          break;
        }
        lines.push(`${where} ${e.message ?? 'is invalid'}`);
        break;
      case 'pattern':
        if (value === '') continue; // minLength already says it is empty
        lines.push(`${where} ${e.message ?? 'is invalid'}`);
        break;
      case 'type':
        if (at === '') {
          lines.push(`the config must be ${(e.params as { type: string }).type}, got ${describeType(value)}`);
          break;
        }
        lines.push(`${where} ${e.message ?? 'is invalid'}`);
        break;
      default:
        lines.push(`${where} ${e.message ?? 'is invalid'}`);
    }
  }
  return dedupe(lines);
}

/** For a oneOf/anyOf whose branches are only `{ required: [...] }`: the keys to choose from. */
function requiredChoices(branches: unknown): string[] | undefined {
  if (!Array.isArray(branches) || branches.length === 0) return undefined;
  const keys: string[] = [];
  for (const b of branches) {
    if (!isObject(b)) return undefined;
    const entries = Object.keys(b);
    const req = (b as { required?: unknown }).required;
    if (entries.length !== 1 || !Array.isArray(req)) return undefined;
    keys.push(...(req as string[]));
  }
  return keys;
}

/** The closest of `candidates` within edit distance 2 of `word`, if any. */
export function didYouMean(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = 3;
  for (const c of candidates) {
    const d = editDistance(word.toLowerCase(), c.toLowerCase());
    if (d < bestDistance) {
      best = c;
      bestDistance = d;
    }
  }
  return best;
}

/** Damerau-Levenshtein (optimal string alignment): a swapped pair of letters counts as one edit. */
function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i, ...new Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, d[i - 2]![j - 2]! + 1);
      d[i]![j] = v;
    }
  }
  return d[a.length]![b.length]!;
}

function schemaAt(schema: object, schemaPath: string): unknown {
  let node: unknown = schema;
  for (const part of schemaPath.replace(/^#\/?/, '').split('/')) {
    if (part === '') continue;
    if (!isObject(node) && !Array.isArray(node)) return undefined;
    node = (node as Record<string, unknown>)[unescapePointer(part)];
  }
  return node;
}

function valueAt(data: unknown, pointer: string): unknown {
  let node = data;
  for (const part of pointer.split('/').slice(1)) {
    if (!isObject(node) && !Array.isArray(node)) return undefined;
    node = (node as Record<string, unknown>)[unescapePointer(part)];
  }
  return node;
}

const escapePointer = (s: string) => s.replace(/~/g, '~0').replace(/\//g, '~1');
const unescapePointer = (s: string) => s.replace(/~1/g, '/').replace(/~0/g, '~');

function describeType(v: unknown): string {
  if (v === null || v === undefined) return String(v);
  if (Array.isArray(v)) return 'an array';
  return typeof v === 'object' ? 'an object' : `${typeof v} ${JSON.stringify(v) ?? String(v)}`;
}

function dedupe(lines: string[]): string[] {
  return [...new Set(lines)];
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * A copy of plain data (objects, arrays, primitives) so validation never
 * changes what the caller passed; anything else (a function, a Date) is kept
 * as it is and left for the schema to refuse.
 */
export function cloneData(value: unknown, ancestors: object[] = []): unknown {
  if (typeof value !== 'object' || value === null) return value;
  if (ancestors.includes(value)) throw new ConfigError(['the config refers to itself (a circular reference)']);
  if (Array.isArray(value)) return value.map((v) => cloneData(v, [...ancestors, value]));
  const proto = Object.getPrototypeOf(value) as unknown;
  if (proto !== Object.prototype && proto !== null) return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[k] = cloneData(v, [...ancestors, value]);
  return out;
}

// ------------------------------------------------------------------ secrets

const SECRET_KEY = /pass(word)?|secret|ha1|token|credential|authorization|apikey|private/i;

/**
 * A deep copy for printing and logging (STYLE.md convention 7): the values of
 * keys that name a secret become '***', plugin instances become
 * `[plugin <name>]`, classes and functions a short label.
 */
export function maskSecrets(value: unknown): unknown {
  return mask(value, new Set());
}

function mask(value: unknown, seen: Set<object>): unknown {
  if (typeof value === 'bigint') return value.toString();
  if (typeof value === 'function') {
    const fn = value as { name?: string; prototype?: { apply?: unknown } };
    const name = fn.name !== undefined && fn.name !== '' ? fn.name : 'anonymous';
    return typeof fn.prototype?.apply === 'function' ? `[plugin class ${name}]` : `[function ${name}]`;
  }
  if (typeof value !== 'object' || value === null) return value;
  if (seen.has(value)) return '[circular]';
  if (isRelayPlugin(value)) return `[plugin ${value.name}]`;
  if (value instanceof Date) return value.toISOString();
  if (value instanceof Error) return { name: value.name, message: value.message };
  if (Buffer.isBuffer(value)) return `[${value.length} bytes]`;
  seen.add(value);
  try {
    if (Array.isArray(value)) return value.map((v) => mask(v, seen));
    const source = value instanceof Map ? Object.fromEntries(value) : (value as Record<string, unknown>);
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(source)) {
      out[k] = SECRET_KEY.test(k) && v !== undefined && v !== null ? '***' : mask(v, seen);
    }
    return out;
  } finally {
    seen.delete(value);
  }
}
