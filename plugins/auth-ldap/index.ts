/**
 * auth-ldap: Digest credentials from an LDAP directory (docs/plugins/auth-ldap.md).
 *
 * It answers `lookupCredentials` (RFC.md §1.9): the relay binds once as a
 * service account, searches the entry of (username, domain) with a filter
 * template, and returns the HA1 or the cleartext password stored in it. It
 * never binds as the user: Digest (R-31 … R-40) only ever shows the relay a
 * hash of the password, so there is nothing to bind with.
 *
 * Failure is closed and prompt: when the directory is down, slow or refuses
 * the service account, the AUTH gets 500 from the connect or operation timeout
 * (never a 401 that would count against the client, R-43, and never a hung
 * connection), one error line is logged without secrets, and the next AUTH
 * tries again. A lookup waits no longer than the relay waits on the tap: its
 * signal ends the wait at the hook's deadline, and the relay answers then.
 */

import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import type { ConnectionOptions } from 'node:tls';
import { NoSuchObjectError, SizeLimitExceededError, type Entry } from 'ldapts';
import { HookTimeoutError, MsrpError, type PluginHost, type RelayPlugin, type CredentialQuery, type Credentials } from '../../core/index.ts';
import { timedOut, untilAborted } from '../shared/deadline.ts';
import { cacheKey, CredentialCache } from './credential-cache.ts';
import { describe, Directory, DirectoryUnavailableError } from './directory.ts';
import { checkFilterTemplate, fillBase, fillFilter } from './filter.ts';

export interface AuthLdapTlsOptions {
  /** CA certificate file(s) (PEM) that sign the server's certificate; default: Node's bundled roots. */
  ca?: string | string[];
  /** Verify the server certificate and its name (default true). */
  rejectUnauthorized?: boolean;
  /** The name the certificate must carry, when it differs from the URL host. */
  servername?: string;
  /** Lowest TLS version (default TLSv1.2, R-2). */
  minVersion?: 'TLSv1.2' | 'TLSv1.3';
}

export interface AuthLdapOptions {
  /** ldap://host:port or ldaps://host:port. */
  url: string;
  /** The service account the relay binds as; leave out for an anonymous search. */
  bindDN?: string;
  bindCredentials?: string;
  /** Where to search; may hold {domain}, {realm} (DN-escaped) or {domainDn} (example.com → dc=example,dc=com). */
  searchBase: string;
  /** One LDAP filter with {username}, {domain}, {realm} placeholders, filled RFC 4515-escaped. */
  searchFilter?: string;
  scope?: 'base' | 'one' | 'sub';
  /** The attribute holding MD5(username:realm:password) in hex… */
  ha1Attribute?: string;
  /** … or the one holding the cleartext password (exactly one of the two). */
  passwordAttribute?: string;
  /** Entry attributes copied into identity.attributes (for authorize taps, accounting). */
  attributes?: string[];
  /** Upgrade an ldap:// connection with StartTLS before binding. */
  startTls?: boolean;
  tls?: AuthLdapTlsOptions;
  /** Connections kept open and bound (each carries many searches at once). */
  poolSize?: number;
  /** Seconds to open a connection (TCP, TLS). */
  connectTimeout?: number;
  /** Seconds for one operation (bind, StartTLS, search). */
  timeout?: number;
  cache?: {
    /** Seconds a found entry is reused; 0 (default) = no cache. */
    ttl?: number;
    /** Seconds an unknown user is remembered; 0 (default) = ask every time. */
    negativeTtl?: number;
    maxEntries?: number;
  };
}

/** The options after the schema filled the defaults. */
type ResolvedOptions = AuthLdapOptions &
  Required<Pick<AuthLdapOptions, 'searchFilter' | 'scope' | 'startTls' | 'poolSize' | 'connectTimeout' | 'timeout'>> & {
    cache: { ttl: number; negativeTtl: number; maxEntries: number };
  };

/** While the directory stays down, one error line per this many ms. */
const ERROR_LOG_INTERVAL_MS = 30_000;

const attributeName = { type: 'string', pattern: '^[A-Za-z][A-Za-z0-9-]*(;[A-Za-z0-9-]+)*$' } as const;

export default class AuthLdap implements RelayPlugin {
  static readonly schema = {
    type: 'object',
    additionalProperties: false,
    required: ['url', 'searchBase'],
    properties: {
      url: { type: 'string', pattern: '^ldaps?://[^/?#]+/?$' },
      bindDN: { type: 'string', minLength: 1 },
      bindCredentials: { type: 'string' },
      searchBase: { type: 'string' },
      searchFilter: { type: 'string', minLength: 3, default: '(uid={username})' },
      scope: { enum: ['base', 'one', 'sub'], default: 'sub' },
      ha1Attribute: attributeName,
      passwordAttribute: attributeName,
      attributes: { type: 'array', items: attributeName, uniqueItems: true },
      startTls: { type: 'boolean', default: false },
      tls: {
        type: 'object',
        additionalProperties: false,
        properties: {
          ca: { oneOf: [{ type: 'string', minLength: 1 }, { type: 'array', items: { type: 'string', minLength: 1 }, minItems: 1 }] },
          rejectUnauthorized: { type: 'boolean', default: true },
          servername: { type: 'string', minLength: 1 },
          minVersion: { enum: ['TLSv1.2', 'TLSv1.3'], default: 'TLSv1.2' },
        },
      },
      poolSize: { type: 'integer', minimum: 1, maximum: 32, default: 2 },
      connectTimeout: { type: 'number', exclusiveMinimum: 0, default: 2 },
      timeout: { type: 'number', exclusiveMinimum: 0, default: 2 },
      cache: {
        type: 'object',
        additionalProperties: false,
        default: {},
        properties: {
          ttl: { type: 'number', minimum: 0, default: 0 },
          negativeTtl: { type: 'number', minimum: 0, default: 0 },
          maxEntries: { type: 'integer', minimum: 1, default: 10000 },
        },
      },
    },
    // Exactly one of the two (both present matches both branches).
    oneOf: [{ required: ['ha1Attribute'] }, { required: ['passwordAttribute'] }],
    dependencies: { bindCredentials: ['bindDN'] },
  } as const;

  readonly name = 'auth-ldap';
  private readonly o: ResolvedOptions;
  private readonly directory: Directory;
  private readonly cache: CredentialCache;
  /** The attributes every search asks for. */
  private readonly requested: string[];
  private outage: { lastLogAt: number; suppressed: number } | undefined;
  /** Read at each use: the logging plugin may replace the relay's logger after apply(). */
  private host: PluginHost | undefined;

  constructor(options: AuthLdapOptions) {
    const o = withDefaults(options);
    if ((o.ha1Attribute === undefined) === (o.passwordAttribute === undefined)) {
      throw new Error('auth-ldap: set exactly one of ha1Attribute and passwordAttribute');
    }
    const filterProblem = checkFilterTemplate(o.searchFilter);
    if (filterProblem !== undefined) throw new Error(`auth-ldap: searchFilter ${filterProblem}`);
    const secure = o.url.toLowerCase().startsWith('ldaps:');
    if (secure && o.startTls) throw new Error('auth-ldap: startTls is for ldap:// URLs; ldaps:// is TLS from the start');
    this.o = o;
    this.requested = [o.ha1Attribute ?? o.passwordAttribute!, ...(o.attributes ?? [])];
    this.cache = new CredentialCache(o.cache);
    this.directory = new Directory({
      url: o.url,
      bindDN: o.bindDN,
      bindCredentials: o.bindCredentials,
      startTls: o.startTls,
      tls: secure || o.startTls ? tlsOptions(o.url, o.tls) : undefined,
      poolSize: o.poolSize,
      connectTimeoutMs: Math.ceil(o.connectTimeout * 1000),
      timeoutMs: Math.ceil(o.timeout * 1000),
    });
  }

  apply(relay: PluginHost): void {
    this.host = relay;
    // The operation timeouts sit below the hook timeout, so the plugin answers first (500); past
    // it, the relay's deadline ends the lookup (the tap's signal) and answers.
    const hookMs = relay.config.timeouts.hook * 1000;
    if ((this.o.connectTimeout + this.o.timeout) * 1000 >= hookMs) {
      relay.log.warn('auth-ldap: connectTimeout + timeout is not below timeouts.hook; a directory that hangs is cut by the hook timeout', {
        connectTimeout: this.o.connectTimeout,
        timeout: this.o.timeout,
        hook: relay.config.timeouts.hook,
      });
    }
    if (!this.o.url.toLowerCase().startsWith('ldaps:') && !this.o.startTls && !isLoopbackUrl(this.o.url)) {
      relay.log.warn('auth-ldap: the directory is reached without TLS; the service account password and the HA1s cross the network in clear', {
        url: this.o.url,
      });
    }
    relay.hooks.lookupCredentials.tapPromise(this.name, (q) => this.lookup(relay, q));
  }

  async close(): Promise<void> {
    this.cache.clear();
    await this.directory.close();
  }

  private async lookup(relay: PluginHost, q: CredentialQuery): Promise<Credentials | undefined> {
    const key = cacheKey(q.username, q.domain, q.realm);
    const cached = this.cache.get(key);
    if (cached.hit) return cached.value;
    const values = { username: q.username, domain: q.domain, realm: q.realm };
    const base = fillBase(this.o.searchBase, values);
    const filter = fillFilter(this.o.searchFilter, values);
    let entries: Entry[];
    try {
      entries = await untilAborted(
        this.directory.search(base, {
          scope: this.o.scope,
          filter,
          attributes: this.requested,
          // Two are enough to tell "exactly one" from "ambiguous".
          sizeLimit: 2,
          timeLimit: Math.max(1, Math.ceil(this.o.timeout)),
        }),
        q.signal,
      );
    } catch (e) {
      if (e instanceof NoSuchObjectError) {
        // A per-domain base ({domainDn}) that does not exist: no such user in that domain.
        this.recovered();
        this.cache.set(key, undefined);
        return undefined;
      }
      if (e instanceof SizeLimitExceededError) {
        this.recovered();
        relay.log.warn('auth-ldap: the filter matches several entries; refusing the AUTH', { base, domain: q.domain });
        return undefined;
      }
      // The connection closed: nobody waits for the answer, and the directory did nothing wrong.
      if (q.signal.aborted && !timedOut(q.signal)) throw new MsrpError('MSRP_ERR_INTERNAL', 'connection closed during the directory lookup');
      // A failure, or no answer by the relay's deadline (e is then the HookTimeoutError the relay answered with).
      this.failed(e);
      // Fail closed, and not with 401: the client's password may be right (R-37 is for invalid credentials).
      throw new MsrpError('MSRP_ERR_INTERNAL', 'credential store unavailable', { cause: e });
    }
    this.recovered();
    const found = this.credentialsOf(entries, base, q.domain);
    this.cache.set(key, found);
    return found;
  }

  private credentialsOf(entries: Entry[], base: string, domain: string): Credentials | undefined {
    const log = this.host!.log;
    if (entries.length === 0) return undefined;
    if (entries.length > 1) {
      log.warn('auth-ldap: the filter matches several entries; refusing the AUTH', { base, domain });
      return undefined;
    }
    const entry = entries[0]!;
    const attributes: Record<string, unknown> = { dn: entry.dn };
    for (const name of this.o.attributes ?? []) {
      const v = valuesOf(entry, name);
      if (v.length > 0) attributes[name] = v.length === 1 ? v[0] : v;
    }
    if (this.o.ha1Attribute !== undefined) {
      const ha1 = valuesOf(entry, this.o.ha1Attribute)
        .map((v) => v.trim())
        .find((v) => /^[0-9a-fA-F]{32}$/.test(v));
      if (ha1 === undefined) {
        log.warn('auth-ldap: the entry has no HA1 (32 hex digits) in the configured attribute', { dn: entry.dn, attribute: this.o.ha1Attribute });
        return undefined;
      }
      return { ha1: ha1.toLowerCase(), attributes };
    }
    const stored = valuesOf(entry, this.o.passwordAttribute!)[0];
    if (stored === undefined) {
      log.warn('auth-ldap: the entry has no value in the configured password attribute', { dn: entry.dn, attribute: this.o.passwordAttribute });
      return undefined;
    }
    const password = cleartextOf(stored);
    if (password === undefined) {
      // A {SSHA}-style hash cannot produce a Digest HA1; only the scheme name is logged.
      log.warn('auth-ldap: the stored password is hashed; Digest needs the cleartext or an HA1', {
        dn: entry.dn,
        scheme: /^\{([^}]*)\}/.exec(stored)?.[1],
      });
      return undefined;
    }
    return { password, attributes };
  }

  /** One error line when the directory first fails, then one per interval while it stays down. */
  private failed(e: unknown): void {
    const now = Date.now();
    if (this.outage !== undefined && now - this.outage.lastLogAt < ERROR_LOG_INTERVAL_MS) {
      this.outage.suppressed++;
      return;
    }
    const reason = e instanceof DirectoryUnavailableError || e instanceof HookTimeoutError ? e.message : describe(e);
    this.host?.log.error('auth-ldap: directory unavailable; AUTH answered 500', {
      url: this.o.url,
      reason,
      ...(this.outage !== undefined && this.outage.suppressed > 0 ? { suppressed: this.outage.suppressed } : {}),
    });
    this.outage = { lastLogAt: now, suppressed: 0 };
  }

  private recovered(): void {
    if (this.outage === undefined) return;
    this.outage = undefined;
    this.host?.log.info('auth-ldap: directory reachable again', { url: this.o.url });
  }
}

function withDefaults(options: AuthLdapOptions): ResolvedOptions {
  // The loader has already filled these from the schema; embedding code may not have.
  return {
    ...options,
    searchFilter: options.searchFilter ?? '(uid={username})',
    scope: options.scope ?? 'sub',
    startTls: options.startTls ?? false,
    poolSize: options.poolSize ?? 2,
    connectTimeout: options.connectTimeout ?? 2,
    timeout: options.timeout ?? 2,
    cache: { ttl: options.cache?.ttl ?? 0, negativeTtl: options.cache?.negativeTtl ?? 0, maxEntries: options.cache?.maxEntries ?? 10000 },
  };
}

function tlsOptions(url: string, o: AuthLdapTlsOptions | undefined): ConnectionOptions {
  const files = o?.ca === undefined ? [] : Array.isArray(o.ca) ? o.ca : [o.ca];
  const ca = files.map((f) => {
    try {
      return readFileSync(f, 'utf8');
    } catch (e) {
      throw new Error(`auth-ldap: cannot read tls.ca file ${f}: ${(e as Error).message}`);
    }
  });
  const host = new URL(url).hostname.replace(/^\[|\]$/g, '');
  // The certificate is checked against servername, else host: an IP literal is matched
  // against IP SANs and must not go out as SNI (RFC 6066 §3). `host` also names the
  // server when StartTLS upgrades an existing socket.
  const name = o?.servername ?? (isIP(host) === 0 ? host : undefined);
  return {
    ...(ca.length > 0 ? { ca } : {}),
    rejectUnauthorized: o?.rejectUnauthorized ?? true,
    minVersion: o?.minVersion ?? 'TLSv1.2',
    host,
    ...(name !== undefined ? { servername: name } : {}),
  };
}

function isLoopbackUrl(url: string): boolean {
  const host = new URL(url).hostname.replace(/^\[|\]$/g, '');
  return host === 'localhost' || host === '::1' || host.startsWith('127.');
}

/** An attribute's values as strings, whatever case the server spelled its name in. */
function valuesOf(entry: Entry, name: string): string[] {
  const wanted = name.toLowerCase();
  for (const [k, v] of Object.entries(entry)) {
    if (k.toLowerCase() !== wanted || k === 'dn') continue;
    const list = Array.isArray(v) ? v : [v];
    return list.map((x) => (Buffer.isBuffer(x) ? x.toString('utf8') : String(x)));
  }
  return [];
}

/** userPassword may carry an RFC 3112 scheme: {CLEARTEXT} is usable, hashes are not. */
function cleartextOf(stored: string): string | undefined {
  const m = /^\{([A-Za-z0-9.+-]+)\}/.exec(stored);
  if (m === null) return stored;
  const scheme = m[1]!.toUpperCase();
  return scheme === 'CLEARTEXT' || scheme === 'PLAIN' ? stored.slice(m[0].length) : undefined;
}
