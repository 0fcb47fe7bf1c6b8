/**
 * The web chat, end to end in headless Chromium (Debian's /usr/bin/chromium driven by
 * playwright-core): two browsers chatting through the relay, files both ways between a browser
 * and a TCP client (5 MiB in chunks, and a single 20 MiB chunk from TCP that the relay cuts for
 * the WebSocket, W-4), the command-line client chatting with a browser, and a browser
 * reconnecting after the relay drops its socket (I-17). A screenshot of the page is kept in
 * artifacts/web-chat/ (or $MSRPRELAY_ARTIFACTS), which git ignores.
 */

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { MsrpTestClient } from '../../core/testing/index.ts';
import { startWebChat, type WebChat } from './serve.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const ARTIFACTS = process.env.MSRPRELAY_ARTIFACTS ?? join(ROOT, 'artifacts', 'web-chat');
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** The page's document as functions run in the browser see it (the project compiles without DOM types; the page's CSP forbids string evaluation). */
interface PageDocument {
  querySelectorAll(sel: string): { length: number };
  querySelector(sel: string): { textContent: string | null; classList: { contains(c: string): boolean } } | null;
}


describe('web chat: the browser client library in Node', () => {
  it('computes MD5 and the Digest response of RFC.md §1.9', async () => {
    const { md5 } = (await import(pathToFileURL(join(ROOT, 'examples/web-chat/public/md5.js')).href)) as { md5: (s: string | Uint8Array) => string };
    for (const s of ['', 'abc', 'message digest', 'x'.repeat(55), 'x'.repeat(56), 'x'.repeat(64), 'é€😀 unicode', 'z'.repeat(10_000)]) {
      assert.equal(md5(s), createHash('md5').update(s).digest('hex'));
    }
    const { digestAuthorization } = (await import(pathToFileURL(join(ROOT, 'examples/web-chat/public/msrp.js')).href)) as {
      digestAuthorization: (o: Record<string, string>) => string;
    };
    const a = digestAuthorization({
      challenge: 'Digest realm="relay.example.com", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", qop="auth", opaque="5ccc069c403ebaf9f0171e9517f40e41"',
      username: 'alice',
      password: 'wonderland',
      uri: 'msrps://relay.example.com:2855;tcp',
      cnonce: '0a4f113b',
    });
    assert.match(a, /response="1efbea411a4e0d69283ea3ca9c383e2c"/);
    assert.match(a, /qop=auth, nc=00000001/);
  });
});

describe('web chat in headless Chromium', () => {
  let chat: WebChat;
  let context: BrowserContext;

  before(async () => {
    chat = await startWebChat({ httpPort: 0, wsPort: 0, tcpPort: 0, tlsPort: 0 });
    context = await chromium.launchPersistentContext(mkdtempSync(join(tmpdir(), 'msrprelay-chromium-')), {
      executablePath: '/usr/bin/chromium',
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
      viewport: { width: 1000, height: 1100 },
    });
    mkdirSync(ARTIFACTS, { recursive: true });
  });
  after(async () => {
    await context?.close();
    await chat?.close();
  });

  /** Opens the page and signs in; resolves with the path the page shows. */
  async function signIn(user: string, o: { token?: boolean } = {}): Promise<{ page: Page; path: string[] }> {
    const page = await context.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`${chat.pageUrl}?reconnect=300`);
    await page.fill('#user', user);
    await page.fill('#password', 'secret');
    if (o.token === true) await page.check('#use-token');
    await page.click('#connect');
    await page.waitForSelector('#state.ready');
    assert.deepEqual(errors, []);
    return { page, path: await pathOf(page) };
  }

  async function pathOf(page: Page): Promise<string[]> {
    return ((await page.textContent('#my-path')) ?? '').split(' ').filter((x) => x !== '');
  }

  async function talkTo(page: Page, path: string[]): Promise<void> {
    await page.fill('#peer-path', path.join(' '));
    await page.click('#set-peer');
  }

  async function tcpUser(user: string) {
    const c = await MsrpTestClient.connect({ port: chat.tcpPort, timeoutMs: 120_000, storeBodies: false });
    const a = await c.auth({ relayUri: chat.tcpRelayUri, username: user, password: 'secret' });
    assert.equal(a.status, 200);
    return { client: c, path: [...a.usePath, c.uri], usePath: a.usePath };
  }

  /** The row of a finished transfer in a direction, with its SHA-256 and size. */
  async function finished(page: Page, direction: 'in' | 'out', nth: number): Promise<{ messageId: string; sha256: string; size: number }> {
    const sel = `#transfers li[data-direction="${direction}"][data-done="1"]`;
    await page.waitForFunction(([q, n]) => (globalThis as unknown as { document: PageDocument }).document.querySelectorAll(q).length >= n, [sel, nth] as const, { timeout: 120_000 });
    // The newest row comes first.
    const li = page.locator(sel).first();
    return { messageId: (await li.getAttribute('data-message-id'))!, sha256: (await li.getAttribute('data-sha256'))!, size: Number(await li.getAttribute('data-size')) };
  }

  it('lets two browsers chat through the relay (one with Digest, one with the web application\'s token, W-9)', async () => {
    const a = await signIn('alice@example.com');
    const b = await signIn('bob@example.com', { token: true });
    assert.match((await b.page.textContent('#log'))!, /token: no Digest challenge/);
    // W-8: the browser's path is the relay's TLS URI, then its own ;ws URI.
    assert.match(a.path[0]!, new RegExp(`^msrps://127\\.0\\.0\\.1:${chat.tlsPort}/[A-Za-z0-9]+;tcp$`));
    assert.match(a.path[1]!, /^msrps:\/\/[a-z0-9]+\.invalid:2855\/[A-Za-z0-9]+;ws$/);
    await talkTo(b.page, a.path);
    await b.page.fill('#text', 'hello alice, from a browser');
    await b.page.click('#send');
    await a.page.waitForSelector('#log li.theirs:has-text("hello alice, from a browser")');
    // Alice learnt Bob's path from his message and answers.
    await a.page.fill('#text', 'hello bob');
    await a.page.click('#send');
    await b.page.waitForSelector('#log li.theirs:has-text("hello bob")');
    await a.page.screenshot({ path: join(ARTIFACTS, 'two-browsers.png'), fullPage: true });
    await a.page.close();
    await b.page.close();
  });

  it('carries files between a browser and a TCP client: 5 MiB each way, and a single 20 MiB chunk from TCP, hashes equal', async () => {
    const a = await signIn('alice@example.com');
    const carol = await tcpUser('carol');
    await talkTo(a.page, carol.path);
    // Browser → TCP: 5 MiB in 63 KiB chunks.
    const up = randomBytes(5 * 2 ** 20);
    await a.page.setInputFiles('#file', { name: 'up.bin', mimeType: 'application/octet-stream', buffer: up });
    await a.page.click('#send-file');
    const sent = await finished(a.page, 'out', 1);
    assert.equal(sent.sha256, sha256(up));
    const atCarol = await carol.client.waitForMessage(sent.messageId, 120_000);
    assert.equal(atCarol.complete, true);
    assert.equal(atCarol.sha256, sha256(up));
    // TCP → browser: 5 MiB in 64 KiB chunks.
    const toBrowser = [...carol.usePath, ...a.path];
    const down = randomBytes(5 * 2 ** 20);
    const d1 = await carol.client.sendMessage({ toPath: toBrowser, body: down, chunkSize: 64 * 1024, contentType: 'application/octet-stream', extraHeaders: [['Content-Disposition', 'attachment; filename="down.bin"']] });
    assert.ok(d1.responses.every((r) => r.status === 200));
    const got1 = await finished(a.page, 'in', 1);
    assert.deepEqual([got1.size, got1.sha256], [down.length, sha256(down)]);
    // TCP → browser: one chunk of 20 MiB, cut by the relay into WebSocket messages (W-4).
    const big = randomBytes(20 * 2 ** 20);
    const d2 = await carol.client.sendMessage({ toPath: toBrowser, body: big, starEnd: true, contentType: 'application/octet-stream', extraHeaders: [['Content-Disposition', 'attachment; filename="big.bin"']] });
    assert.equal(d2.responses[0]!.status, 200);
    const got2 = await finished(a.page, 'in', 2);
    assert.deepEqual([got2.messageId, got2.size, got2.sha256], [d2.messageId, big.length, sha256(big)]);
    await a.page.screenshot({ path: join(ARTIFACTS, 'files.png'), fullPage: true });
    await carol.client.close();
    await a.page.close();
  });

  it('chats with the command-line client (msrprelay client) both ways', async () => {
    const a = await signIn('alice@example.com');
    const cli = spawn(process.execPath, [join(ROOT, 'bin/msrprelay.js'), 'client', '--relay', chat.tcpRelayUri, '--user', 'carol@example.com', '--password', 'secret', '--to', a.path.join(' '), '--message', 'hi from the terminal', '--wait', '1'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    cli.stdout.on('data', (d: Buffer) => (out += d.toString()));
    cli.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((resolve) => cli.once('exit', resolve));
    await a.page.waitForSelector('#log li.theirs:has-text("hi from the terminal")', { timeout: 60_000 });
    await a.page.fill('#text', 'hi terminal, from the browser');
    await a.page.click('#send');
    assert.equal(await exited, 0, out);
    assert.match(out, /hi terminal, from the browser/);
    await a.page.close();
  });

  it('reconnects after the relay drops its socket, AUTHs afresh, and the old path is gone (I-17)', async () => {
    const a = await signIn('alice@example.com');
    const carol = await tcpUser('carol');
    const before = a.path;
    const session = [...chat.relay.sessions.values()].find((s) => s.uri === before[0])!;
    session.owner.close({ code: 'shutdown', message: 'dropped by the test' });
    await a.page.waitForFunction(
      (old) => {
        const d = (globalThis as unknown as { document: PageDocument }).document;
        return d.querySelector('#state')?.classList.contains('ready') === true && d.querySelector('#my-path')?.textContent !== old;
      },
      before.join(' '),
      { timeout: 30_000 },
    );
    const now = await pathOf(a.page);
    assert.notEqual(now[0], before[0]);
    const stale = await carol.client.sendMessage({ toPath: [...carol.usePath, ...before], body: 'to the old socket' });
    assert.equal(stale.responses[0]!.status, 481);
    const fresh = await carol.client.sendMessage({ toPath: [...carol.usePath, ...now], body: 'to the new socket' });
    assert.equal(fresh.responses[0]!.status, 200);
    await a.page.waitForSelector('#log li.theirs:has-text("to the new socket")');
    assert.match((await a.page.textContent('#log'))!, /reconnected/);
    await a.page.screenshot({ path: join(ARTIFACTS, 'reconnected.png'), fullPage: true });
    await carol.client.close();
    await a.page.close();
  });
});
