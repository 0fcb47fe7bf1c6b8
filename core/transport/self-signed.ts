/**
 * Self-signed certificates for TLS listeners that have no configured cert/key,
 * and a small test PKI (a CA, a server and a client certificate) for the
 * integration tests of TLS and mutual TLS.
 *
 * Node has no API to create certificates, so the `openssl` command is run with
 * execFile (never through a shell). Every openssl call gets its own minimal
 * config file, so nothing depends on the system's openssl.cnf.
 */
import { execFile } from 'node:child_process';
import { X509Certificate, createPrivateKey, randomBytes } from 'node:crypto';
import { chmod, copyFile, mkdir, mkdtemp, readFile, rename, rm, unlink, writeFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { dirname, join, resolve } from 'node:path';

const DAY_MS = 24 * 60 * 60 * 1000;

export interface SelfSignedOptions {
  /** Where the certificate (PEM) is written. */
  certFile: string;
  /** Where the private key (PEM, unencrypted, mode 0600) is written. */
  keyFile: string;
  /** DNS names (an IP literal here is written as an IP SAN); the first one is the subject CN. */
  hostnames: string[];
  /** IP addresses for the subjectAltName. */
  ips?: string[];
  /** Validity in days (default 365). */
  days?: number;
}

/**
 * Makes sure `certFile`/`keyFile` hold a usable certificate and key. If both
 * exist, parse, match each other and the certificate is valid for at least one
 * more day, nothing is done. Otherwise the folders are created (mode 0700) and
 * a new RSA 2048 self-signed certificate is generated with openssl, with the
 * hostnames and IPs as subjectAltName; the key file gets mode 0600. The new
 * files are written under temporary names and renamed into place.
 *
 * @throws Error when openssl is not installed, or when a hostname or IP holds
 *   characters that cannot appear in a certificate name.
 */
export async function ensureSelfSignedCert(o: SelfSignedOptions): Promise<void> {
  if (await isUsable(o.certFile, o.keyFile)) return;

  const days = o.days ?? 365;
  if (!Number.isInteger(days) || days < 1) throw new Error(`certificate validity must be a whole number of days >= 1, got ${days}`);
  const names = o.hostnames.length > 0 ? o.hostnames : ['localhost'];
  const san = subjectAltName(names, o.ips ?? []);
  const cn = names[0]!;

  const certFile = resolve(o.certFile);
  const keyFile = resolve(o.keyFile);
  await mkdir(dirname(keyFile), { recursive: true, mode: 0o700 });
  await mkdir(dirname(certFile), { recursive: true, mode: 0o700 });
  // Generate next to the key, so the key is never readable by others and the rename is atomic.
  const tmp = await mkdtemp(join(dirname(keyFile), '.selfsigned-'));
  try {
    const cnf = join(tmp, 'req.cnf');
    const tmpKey = join(tmp, 'key.pem');
    const tmpCert = join(tmp, 'cert.pem');
    await writeFile(cnf, reqConfig(LEAF_EXTENSIONS), { mode: 0o600 });
    await openssl([
      'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', String(days),
      '-keyout', tmpKey, '-out', tmpCert,
      '-subj', `/CN=${cn}`, '-addext', `subjectAltName=${san}`,
      '-config', cnf,
    ]);
    await chmod(tmpKey, 0o600);
    await moveInto(tmpKey, keyFile);
    await moveInto(tmpCert, certFile);
    await chmod(keyFile, 0o600);
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

/** A certificate with its key, as PEM strings and the files they were written to. */
export interface TestCertificate {
  cert: string;
  key: string;
  certFile: string;
  keyFile: string;
}

export interface TestCertificates {
  /** The test CA (CN "msrprelay test CA"): trust it with `ca: certs.ca.cert`. */
  ca: TestCertificate;
  /** CN localhost; SAN DNS:localhost, DNS:relay.test, IP:127.0.0.1, IP:::1; serverAuth and clientAuth (a relay peer uses it both ways). */
  server: TestCertificate;
  /** CN test-client; SAN DNS:client.test; clientAuth. */
  client: TestCertificate;
}

/**
 * Creates a test PKI in `dir` (created if needed): a CA and a server and a
 * client certificate signed by it, valid for 2 days, with ECDSA P-256 keys
 * (fast to generate; every TLS stack in use accepts them). Files:
 * ca.pem/ca.key, server.pem/server.key, client.pem/client.key.
 */
export async function makeTestCertificates(dir: string): Promise<TestCertificates> {
  const root = resolve(dir);
  await mkdir(root, { recursive: true, mode: 0o700 });
  const tmp = await mkdtemp(join(root, '.pki-'));
  try {
    const caCnf = join(tmp, 'ca.cnf');
    await writeFile(caCnf, reqConfig(CA_EXTENSIONS), { mode: 0o600 });
    const ca = files(root, 'ca');
    await openssl([
      'req', '-x509', ...TEST_KEY, '-nodes', '-days', '2',
      '-keyout', ca.keyFile, '-out', ca.certFile,
      '-subj', '/CN=msrprelay test CA', '-config', caCnf,
    ]);

    const issue = async (name: string, cn: string, extensions: string): Promise<{ certFile: string; keyFile: string }> => {
      const f = files(root, name);
      const cnf = join(tmp, `${name}.cnf`);
      const csr = join(tmp, `${name}.csr`);
      await writeFile(cnf, reqConfig(extensions), { mode: 0o600 });
      await openssl(['req', '-new', ...TEST_KEY, '-nodes', '-keyout', f.keyFile, '-out', csr, '-subj', `/CN=${cn}`, '-config', cnf]);
      await openssl([
        'x509', '-req', '-in', csr, '-CA', ca.certFile, '-CAkey', ca.keyFile,
        '-set_serial', `0x${randomBytes(16).toString('hex').replace(/^[89a-f]/, '1')}`,
        '-days', '2', '-out', f.certFile, '-extfile', cnf, '-extensions', 'ext',
      ]);
      return f;
    };
    const server = await issue(
      'server',
      'localhost',
      'basicConstraints = critical, CA:FALSE\nkeyUsage = critical, digitalSignature\n' +
        'extendedKeyUsage = serverAuth, clientAuth\nsubjectKeyIdentifier = hash\nauthorityKeyIdentifier = keyid\n' +
        'subjectAltName = DNS:localhost, DNS:relay.test, IP:127.0.0.1, IP:::1\n',
    );
    const client = await issue(
      'client',
      'test-client',
      'basicConstraints = critical, CA:FALSE\nkeyUsage = critical, digitalSignature\n' +
        'extendedKeyUsage = clientAuth\nsubjectKeyIdentifier = hash\nauthorityKeyIdentifier = keyid\nsubjectAltName = DNS:client.test\n',
    );
    for (const f of [ca, server, client]) await chmod(f.keyFile, 0o600);
    return { ca: await load(ca), server: await load(server), client: await load(client) };
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------

/** Test keys: ECDSA P-256 (RSA key generation costs up to a second per key). */
const TEST_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1'];

const LEAF_EXTENSIONS =
  'basicConstraints = critical, CA:FALSE\nkeyUsage = critical, digitalSignature, keyEncipherment\n' +
  'extendedKeyUsage = serverAuth, clientAuth\nsubjectKeyIdentifier = hash\n';
const CA_EXTENSIONS =
  'basicConstraints = critical, CA:TRUE\nkeyUsage = critical, keyCertSign, cRLSign\nsubjectKeyIdentifier = hash\n';

/** A minimal openssl req config; `ext` is the extension section (used by -x509 and by x509 -extfile). */
function reqConfig(extensions: string): string {
  return `[req]\ndistinguished_name = dn\nprompt = no\nx509_extensions = ext\n[dn]\nCN = placeholder\n[ext]\n${extensions}`;
}

function files(root: string, name: string): { certFile: string; keyFile: string } {
  return { certFile: join(root, `${name}.pem`), keyFile: join(root, `${name}.key`) };
}

async function load(f: { certFile: string; keyFile: string }): Promise<TestCertificate> {
  return { cert: await readFile(f.certFile, 'utf8'), key: await readFile(f.keyFile, 'utf8'), ...f };
}

/** Host names that can go into -subj and a subjectAltName list without escaping. */
const DNS_RE = /^(?:\*\.)?[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,251}[A-Za-z0-9_])?$/;

function subjectAltName(hostnames: readonly string[], ips: readonly string[]): string {
  const parts: string[] = [];
  const seen = new Set<string>();
  const add = (p: string): void => {
    if (!seen.has(p)) {
      seen.add(p);
      parts.push(p);
    }
  };
  for (const h of hostnames) {
    const bare = h.startsWith('[') && h.endsWith(']') ? h.slice(1, -1) : h;
    if (isIP(bare) !== 0) add(`IP:${bare}`);
    else if (DNS_RE.test(h)) add(`DNS:${h}`);
    else throw new Error(`cannot put host name ${JSON.stringify(h)} into a certificate`);
  }
  for (const ip of ips) {
    const bare = ip.startsWith('[') && ip.endsWith(']') ? ip.slice(1, -1) : ip;
    if (isIP(bare) === 0) throw new Error(`not an IP address: ${JSON.stringify(ip)}`);
    add(`IP:${bare}`);
  }
  return parts.join(',');
}

/** True when both files exist, parse, belong together and the certificate is valid for at least one more day. */
async function isUsable(certFile: string, keyFile: string): Promise<boolean> {
  let certPem: string;
  let keyPem: string;
  try {
    [certPem, keyPem] = await Promise.all([readFile(certFile, 'utf8'), readFile(keyFile, 'utf8')]);
  } catch (e) {
    if (isErrno(e) && e.code === 'ENOENT') return false;
    throw e;
  }
  try {
    const cert = new X509Certificate(certPem);
    if (Date.parse(cert.validTo) - Date.now() < DAY_MS) return false;
    return cert.checkPrivateKey(createPrivateKey(keyPem));
  } catch {
    return false;
  }
}

async function moveInto(from: string, to: string): Promise<void> {
  try {
    await rename(from, to);
  } catch (e) {
    if (!isErrno(e) || e.code !== 'EXDEV') throw e;
    // Another file system: copy, then drop the temporary file.
    await copyFile(from, to);
    await unlink(from);
  }
}

function isErrno(e: unknown): e is NodeJS.ErrnoException {
  return e instanceof Error && 'code' in e;
}

/** Runs openssl without a shell; a missing binary becomes an explicit, actionable error. */
function openssl(args: string[]): Promise<void> {
  return new Promise((resolvePromise, reject) => {
    execFile('openssl', args, { timeout: 60_000, windowsHide: true }, (err, _stdout, stderr) => {
      if (err === null) {
        resolvePromise();
        return;
      }
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        reject(new Error('the openssl command was not found: install openssl, or configure cert and key files for the TLS listener'));
        return;
      }
      const detail = String(stderr).trim().split('\n').filter((l) => !/^[.+*\s-]*$/.test(l)).slice(-5).join('\n');
      reject(new Error(`openssl ${args[0]} failed: ${detail || err.message}`));
    });
  });
}
