/**
 * A private OpenLDAP slapd for tests: its own slapd.conf, mdb database and
 * schema in a temp dir, listening on a free 127.0.0.1 port (and, with
 * certificates, an ldaps:// port too). It can be stopped and started again on
 * the same ports with its data, and paused (SIGSTOP) to play a server that
 * accepts connections but never answers.
 *
 * The data is loaded with slapadd before the first start, so no network bind
 * is needed for it; `add()` uses ldapadd as the rootdn while it runs.
 *
 * Users: slapd only changes user when given -u/-g, and we never pass them, so
 * it runs as whoever runs the tests: root in CI, the developer elsewhere. Every
 * file it needs is created by that same user in the temp dir, so both work.
 */

import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { freePort, waitForPort } from '../../core/testing/ports.ts';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestCertificates } from '../../core/transport/self-signed.ts';

const SLAPD = process.env.SLAPD ?? '/usr/sbin/slapd';
const SLAPADD = process.env.SLAPADD ?? '/usr/sbin/slapadd';
const LDAPADD = process.env.LDAPADD ?? 'ldapadd';
const SCHEMA_DIR = '/etc/ldap/schema';
const MODULE_DIR = '/usr/lib/ldap';

/**
 * A tiny schema for the tests and the docs' example: directories have no
 * standard attribute for a Digest HA1. The OIDs are under an unassigned
 * enterprise arc, good enough for a throw-away directory; a real deployment
 * puts such attributes under its own IANA private enterprise number.
 */
export const MSRP_SCHEMA = `attributetype ( 1.3.6.1.4.1.99999.4975.1.1 NAME 'msrpDigestHA1'
  DESC 'MD5(username:realm:password) in lower-case hex, for MSRP Digest AUTH'
  EQUALITY caseIgnoreIA5Match
  SYNTAX 1.3.6.1.4.1.1466.115.121.1.26{32} )
objectclass ( 1.3.6.1.4.1.99999.4975.2.1 NAME 'msrpAccount' SUP top AUXILIARY
  DESC 'an account of an MSRP relay'
  MAY ( msrpDigestHA1 $ associatedDomain ) )
`;

export interface SlapdOptions {
  /** Default dc=example,dc=com. */
  suffix?: string;
  /** The rootdn's password (default "rootsecret"). */
  rootPassword?: string;
  /** Entries to load before the first start (LDIF, the suffix entry included). */
  ldif?: string;
  /** Also listen on ldaps:// with the test PKI's server certificate (CN localhost, IP 127.0.0.1). */
  certificates?: TestCertificates;
  /** Extra slapd.conf lines for the database (ACLs, limits), after the defaults. */
  databaseConfig?: string;
}

export interface Slapd {
  /** ldap://127.0.0.1:PORT */
  readonly url: string;
  /** ldaps://127.0.0.1:PORT when certificates were given. */
  readonly ldapsUrl: string | undefined;
  readonly port: number;
  readonly suffix: string;
  readonly rootDn: string;
  readonly rootPassword: string;
  readonly running: boolean;
  /** The slapd process id while it runs (for CPU accounting in benches). */
  readonly pid: number | undefined;
  /** Starts it again (same ports, same data) after stop(). */
  start(): Promise<void>;
  /** SIGTERM, and waits for the process to exit. */
  stop(): Promise<void>;
  /** SIGSTOP: connections are accepted by the kernel, nothing is answered. */
  pause(): void;
  /** SIGCONT. */
  resume(): void;
  /** ldapadd as the rootdn. */
  add(ldif: string): Promise<void>;
  /** Stops it and removes the temp dir. */
  close(): Promise<void>;
}

function run(cmd: string, args: string[], input?: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = execFile(cmd, args, { timeout: 20_000 }, (err, _stdout, stderr) => {
      if (err) reject(new Error(`${cmd} failed: ${stderr.trim() || err.message}`));
      else resolve();
    });
    if (input !== undefined) child.stdin!.end(input);
  });
}

/** Resolves once slapd listens on the port (only when its database is open); its stderr in the error otherwise. */
async function waitForSlapd(port: number, child: ChildProcess, output: () => string): Promise<void> {
  try {
    await waitForPort(port, 15_000, () => {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`slapd exited (${child.exitCode ?? child.signalCode})`);
    });
  } catch (e) {
    throw new Error(`slapd did not listen on ${port}: ${(e as Error).message}: ${output()}`);
  }
}

const running = new Set<ChildProcess>();
let exitHookInstalled = false;
function killOnExit(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // A test run that dies must not leave slapd behind (only the ones started here).
  process.once('exit', () => {
    for (const c of running) {
      try {
        c.kill('SIGCONT');
        c.kill('SIGKILL');
      } catch {
        // already gone
      }
    }
  });
}

export async function startSlapd(o: SlapdOptions = {}): Promise<Slapd> {
  const suffix = o.suffix ?? 'dc=example,dc=com';
  const rootDn = `cn=admin,${suffix}`;
  const rootPassword = o.rootPassword ?? 'rootsecret';
  const dir = await mkdtemp(join(tmpdir(), 'msrprelay-slapd-'));
  const dbDir = join(dir, 'db');
  await mkdir(dbDir, { mode: 0o700 });
  const port = await freePort();
  const tlsPort = o.certificates !== undefined ? await freePort() : undefined;

  const conf = join(dir, 'slapd.conf');
  const schema = join(dir, 'msrp.schema');
  const rootPwFile = join(dir, 'rootpw');
  await writeFile(schema, MSRP_SCHEMA);
  await writeFile(rootPwFile, rootPassword, { mode: 0o600 });
  const tlsLines =
    o.certificates !== undefined
      ? [
          `TLSCACertificateFile ${o.certificates.ca.certFile}`,
          `TLSCertificateFile ${o.certificates.server.certFile}`,
          `TLSCertificateKeyFile ${o.certificates.server.keyFile}`,
          'TLSVerifyClient never',
        ]
      : [];
  await writeFile(
    conf,
    [
      `include ${SCHEMA_DIR}/core.schema`,
      `include ${SCHEMA_DIR}/cosine.schema`,
      `include ${SCHEMA_DIR}/inetorgperson.schema`,
      `include ${schema}`,
      `pidfile ${join(dir, 'slapd.pid')}`,
      `argsfile ${join(dir, 'slapd.args')}`,
      `modulepath ${MODULE_DIR}`,
      'moduleload back_mdb',
      ...tlsLines,
      'database mdb',
      'maxsize 33554432',
      `suffix "${suffix}"`,
      `rootdn "${rootDn}"`,
      `rootpw ${rootPassword}`,
      `directory ${dbDir}`,
      o.databaseConfig ?? '',
      '',
    ].join('\n'),
  );
  await chmod(conf, 0o600);
  if (o.ldif !== undefined) {
    const ldifFile = join(dir, 'init.ldif');
    await writeFile(ldifFile, o.ldif);
    await run(SLAPADD, ['-q', '-f', conf, '-l', ldifFile]);
  }

  const urls = [`ldap://127.0.0.1:${port}/`, ...(tlsPort !== undefined ? [`ldaps://127.0.0.1:${tlsPort}/`] : [])];
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  killOnExit();

  const start = async (): Promise<void> => {
    if (child !== undefined) return;
    // -d 0: stay in the foreground (so we own the process and see it exit), no debug output.
    const c = spawn(SLAPD, ['-d', '0', '-f', conf, '-h', urls.join(' ')], { stdio: ['ignore', 'ignore', 'pipe'] });
    let output = '';
    c.stderr!.on('data', (d: Buffer) => {
      output = (output + d.toString('utf8')).slice(-4000);
    });
    child = c;
    running.add(c);
    exited = new Promise((resolve) =>
      c.once('exit', () => {
        running.delete(c);
        if (child === c) child = undefined;
        resolve();
      }),
    );
    try {
      await waitForSlapd(port, c, () => output);
      if (tlsPort !== undefined) await waitForSlapd(tlsPort, c, () => output);
    } catch (e) {
      c.kill('SIGKILL');
      await exited;
      throw e;
    }
  };

  const stop = async (): Promise<void> => {
    const c = child;
    if (c === undefined) return;
    c.kill('SIGCONT');
    c.kill('SIGTERM');
    const killer = setTimeout(() => c.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(killer);
  };

  await start();

  return {
    url: `ldap://127.0.0.1:${port}`,
    ldapsUrl: tlsPort !== undefined ? `ldaps://127.0.0.1:${tlsPort}` : undefined,
    port,
    suffix,
    rootDn,
    rootPassword,
    get running() {
      return child !== undefined;
    },
    get pid() {
      return child?.pid;
    },
    start,
    stop,
    pause() {
      child?.kill('SIGSTOP');
    },
    resume() {
      child?.kill('SIGCONT');
    },
    add: (ldif) => run(LDAPADD, ['-x', '-H', `ldap://127.0.0.1:${port}`, '-D', rootDn, '-y', rootPwFile], ldif),
    async close() {
      await stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
