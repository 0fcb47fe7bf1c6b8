// The web chat page: signs in to the relay over WebSocket (Digest, or a token from the web
// application, W-9), shows this client's path, chats and sends files with whoever it talks to.

import { MsrpClient } from './msrp.js';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
let client;
let config = { wsUrl: `ws://${location.hostname}:8081/msrp`, accounts: [], token: false };

function formatSize(n) {
  if (n >= 1 << 20) return `${(n / (1 << 20)).toFixed(1)} MiB`;
  if (n >= 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${n} B`;
}

function shortUri(u) {
  const m = /^msrps?:\/\/(?:[^@/]*@)?([^/;]+)/.exec(u ?? '');
  return m ? m[1] : (u ?? '?');
}

function note(text) {
  const li = document.createElement('li');
  li.className = 'note';
  li.textContent = text;
  $('log').append(li);
  li.scrollIntoView({ block: 'nearest' });
}

function say(text, who, mine) {
  const li = document.createElement('li');
  li.className = mine ? 'mine' : 'theirs';
  li.dataset.from = who;
  const w = document.createElement('span');
  w.className = 'who';
  w.textContent = `${mine ? 'me' : who} · ${new Date().toLocaleTimeString()}`;
  li.append(w, document.createTextNode(text));
  $('log').append(li);
  li.scrollIntoView({ block: 'nearest' });
}

/** The row of a transfer, made on first use. */
function transfer(messageId, direction, name, total, done = false) {
  let li = document.querySelector(`#transfers li[data-message-id="${CSS.escape(messageId)}"]`);
  if (li === null) {
    li = document.createElement('li');
    li.dataset.messageId = messageId;
    li.dataset.direction = direction;
    const title = document.createElement('div');
    title.className = 'title';
    const bar = document.createElement('progress');
    bar.max = 1;
    bar.value = 0;
    const sha = document.createElement('div');
    sha.className = 'sha';
    li.append(title, bar, sha);
    $('transfers').prepend(li);
  }
  if (li.dataset.done === '1') return li;
  const verb = direction === 'out' ? (done ? '↑ sent' : '↑ sending') : done ? '↓ received' : '↓ receiving';
  li.querySelector('.title').textContent = `${verb} ${name}${total !== undefined ? ` (${formatSize(total)})` : ''}`;
  return li;
}

function setState(state, detail) {
  const el = $('state');
  el.textContent = state;
  el.className = `state ${state}`;
  el.title = detail ?? '';
  if (detail) $('whoami').textContent = `${client?.o.user ?? ''} — ${detail}`;
}

function showPath() {
  $('my-path').textContent = client.path.join(' ');
}

async function lobbyAnnounce() {
  if (!config.lobby || client?.currentState !== 'ready') return;
  announced = client.path;
  await fetch('/api/lobby', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ user: client.o.user, path: client.path }) }).catch(() => {});
}

/** The path last announced (a reconnect makes a new one; the old one leaves). */
let announced;

function lobbyLeave() {
  if (!config.lobby || announced === undefined) return;
  navigator.sendBeacon?.('/api/lobby', new Blob([JSON.stringify({ path: announced, leave: true })], { type: 'application/json' }));
  announced = undefined;
}

async function lobbyRefresh() {
  if (!config.lobby || client === undefined) return;
  const list = await fetch('/api/lobby').then((r) => r.json(), () => []);
  const box = $('online');
  box.replaceChildren();
  const others = list.filter((e) => e.path.join(' ') !== client.path.join(' '));
  if (others.length === 0) return;
  box.append('Online:');
  for (const e of others) {
    const b = document.createElement('button');
    b.type = 'button';
    b.className = 'secondary';
    b.textContent = e.user;
    b.title = e.path.join(' ');
    b.onclick = () => setPeer(e.path, e.user);
    box.append(b);
  }
}

function setPeer(path, label) {
  client.peer = path;
  $('peer-path').value = path.join(' ');
  note(`talking to ${label ?? shortUri(path[path.length - 1])}`);
}

async function connect(ev) {
  ev.preventDefault();
  const user = $('user').value.trim();
  const password = $('password').value;
  const useToken = $('use-token').checked;
  client = new MsrpClient({
    url: $('url').value.trim(),
    user,
    password,
    reconnectDelay: params.has('reconnect') ? Number(params.get('reconnect')) : 3000,
    ...(useToken
      ? {
          // The web application logs its user in its own way and mints a short-lived token (W-9).
          token: async () => {
            const r = await fetch('/api/token', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ user, password }) });
            if (!r.ok) throw new Error(`the web application refused the sign-in (${r.status})`);
            return (await r.json()).token;
          },
        }
      : {}),
  });
  client.addEventListener('state', (e) => setState(e.detail.state, e.detail.detail));
  client.addEventListener('peer', (e) => {
    $('peer-path').value = e.detail.path.join(' ');
  });
  client.addEventListener('reconnected', () => {
    lobbyLeave();
    showPath();
    note('reconnected: a new path (the old one is gone)');
    lobbyAnnounce();
  });
  client.addEventListener('message', (e) => {
    const d = e.detail;
    if (d.text !== undefined) {
      say(d.text, shortUri(d.from), false);
      return;
    }
    const li = transfer(d.messageId, 'in', d.file.name, d.file.size, true);
    li.querySelector('progress').value = 1;
    li.dataset.done = '1';
    li.dataset.sha256 = d.file.sha256;
    li.dataset.size = String(d.file.size);
    li.querySelector('.sha').textContent = `SHA-256 ${d.file.sha256}`;
    const a = document.createElement('a');
    a.href = URL.createObjectURL(d.file.blob);
    a.download = d.file.name;
    a.textContent = 'save';
    li.querySelector('.title').append(' ', a);
  });
  client.addEventListener('progress', (e) => {
    const d = e.detail;
    const li = transfer(d.messageId, d.direction, d.name, d.total);
    if (d.total) li.querySelector('progress').value = d.bytes / d.total;
  });
  client.addEventListener('report', (e) => note(`not delivered (${e.detail.status})`));
  $('connect').disabled = true;
  try {
    await client.connect();
  } catch (e) {
    $('connect').disabled = false;
    $('accounts').textContent = e.message;
    return;
  }
  $('login').hidden = true;
  $('session').hidden = false;
  $('chat').hidden = false;
  showPath();
  note(`signed in as ${user} (${client.preAuthorized ? 'token: no Digest challenge' : 'Digest'})`);
  lobbyAnnounce();
  lobbyRefresh();
  setInterval(() => {
    lobbyAnnounce();
    lobbyRefresh();
  }, 2000);
}

async function send(ev) {
  ev.preventDefault();
  const text = $('text').value;
  if (text === '') return;
  try {
    await client.sendText(text);
    say(text, 'me', true);
    $('text').value = '';
  } catch (e) {
    note(e.message);
  }
}

async function sendFile() {
  const file = $('file').files[0];
  if (file === undefined) return;
  try {
    const done = await client.sendFile(file);
    const li = transfer(done.messageId, 'out', done.name, done.size, true);
    li.querySelector('progress').value = 1;
    li.dataset.done = '1';
    li.dataset.sha256 = done.sha256;
    li.dataset.size = String(done.size);
    li.querySelector('.sha').textContent = `SHA-256 ${done.sha256}`;
    $('file').value = '';
  } catch (e) {
    note(`file not sent: ${e.message}`);
  }
}

async function init() {
  config = { ...config, ...(await fetch('config.json').then((r) => (r.ok ? r.json() : {}), () => ({}))) };
  $('url').value = config.wsUrl;
  if (params.has('user')) $('user').value = params.get('user');
  if (config.accounts.length > 0) $('accounts').textContent = `Demo accounts: ${config.accounts.join(', ')} (password "secret").`;
  $('use-token').disabled = !config.token;
  $('login-form').addEventListener('submit', connect);
  $('compose').addEventListener('submit', send);
  $('send-file').addEventListener('click', sendFile);
  $('set-peer').addEventListener('click', () => {
    const path = $('peer-path').value.replace(/^\s*path:\s*/, '').trim().split(/\s+/).filter(Boolean);
    if (path.length > 0) setPeer(path);
  });
  $('copy-path').addEventListener('click', () => navigator.clipboard?.writeText(client.path.join(' ')));
  addEventListener('pagehide', lobbyLeave);
  $('disconnect').addEventListener('click', () => {
    lobbyLeave();
    client.close();
    $('login').hidden = false;
    $('connect').disabled = false;
  });
}

init();
