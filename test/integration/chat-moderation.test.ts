/**
 * Moderation in chat rooms: roles (owner, moderator, member, banned), kick, ban, mute, subject,
 * a room password and an ACL, the application's join hook, and the same from participants as
 * `/commands` to the room, answered with a private status message.
 */

import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ChatError, formatUseNickname } from '../../plugins/chat/index.ts';
import { chatSuite, next, startChat, type ChatClient } from '../support/chat.ts';

const forbidden = (e: unknown) => e instanceof ChatError && e.code === 'forbidden' && e.sipStatus === 403;

describe('chat: moderation', () => {
  const s = chatSuite({ store: { driver: 'memory' } });
  const client = (name: string) => s.client(name);

  it('API: kick removes every session of the user; ban removes and keeps them out; unban lets them back', async () => {
    const room = await s.chat.rooms.create('sip:mod1@example.com');
    await (await client('alice')).join(room);
    const b1 = await (await client('bob')).join(room);
    const b2 = await (await client('bob')).join(room);
    const reasons: string[] = [];
    room.on('left', (_p, reason: string) => reasons.push(reason));
    assert.equal(room.kick('sip:bob@example.com'), 2);
    assert.deepEqual(reasons, ['kicked', 'kicked']);
    assert.equal(room.participants.length, 1);
    // A kicked session's URI is gone: its requests are not the focus's any more (481 from the relay).
    assert.equal((await b1.say('still here?')).status, 481);
    await b2.join(room);
    room.ban('sip:bob@example.com');
    assert.equal(reasons.at(-1), 'banned');
    assert.equal(room.roleOf('bob@example.com'), 'banned');
    await assert.rejects((await client('bob')).join(room), forbidden);
    assert.equal(room.unban('sip:bob@example.com'), true);
    await (await client('bob')).join(room);
  });

  it('API: a muted user\'s messages get 403 and its typing notices go nowhere; unmute lets it speak', async () => {
    const room = await s.chat.rooms.create('sip:mod2@example.com');
    const a = await (await client('alice')).join(room);
    const b = await (await client('bob')).join(room);
    room.mute('sip:bob@example.com');
    assert.equal(room.isMuted('bob@example.com'), true);
    assert.equal((await b.say('let me talk')).status, 403);
    assert.equal((await b.say('<isComposing/>', { contentType: 'application/im-iscomposing+xml' })).status, 200);
    // Private messages are still allowed.
    assert.equal((await b.say('psst', { to: a.sip })).status, 200);
    await a.received('psst');
    assert.equal(a.copies('<isComposing/>').length, 0);
    // Its commands still answer, to it alone; text that names no command is refused as any other.
    assert.equal((await b.say('/who')).status, 200);
    const who = await b.received((x) => x.text.includes('<sip:alice@example.com>'));
    assert.equal(who.cpim.to[0]!.uri, b.sip);
    assert.equal(a.copies('/who').length, 0);
    assert.equal((await b.say('/me shouts')).status, 403);
    assert.equal(a.copies('/me shouts').length, 0);
    assert.equal(room.unmute('sip:carol@example.com'), false, 'carol was not muted');
    assert.equal(room.unmute('sip:bob@example.com'), true);
    assert.equal((await b.say('thanks')).status, 200);
    await a.received('thanks');
  });

  it('API: the subject changes, is announced to clients without a=chatroom, and shows in conference-info', async () => {
    const room = await s.chat.rooms.create('sip:mod3@example.com', { subject: 'Old' });
    const plain = await (await client('carol')).join(room, { chatroom: null });
    const changed = next(room, 'subject');
    room.setSubject('New & improved');
    assert.deepEqual((await changed)[0], 'New & improved');
    await plain.received('The subject is now: New & improved');
    assert.match(room.conferenceInfo({ version: 2 }), /<subject>New &amp; improved<\/subject>/);
  });

  it('a room password and an ACL keep joiners out with 403', async () => {
    const locked = await s.chat.rooms.create('sip:locked@example.com', { password: 'open sesame' });
    await assert.rejects((await client('alice')).join(locked), forbidden);
    await assert.rejects((await client('alice')).join(locked, { password: 'wrong' }), forbidden);
    await (await client('alice')).join(locked, { password: 'open sesame' });
    assert.match(locked.conferenceInfo(), /<locked>true<\/locked>/);
    assert.equal(locked.toRecord().settings.password === 'open sesame', false, 'the password is kept hashed');
    const staff = await s.chat.rooms.create('sip:staff@example.com', { acl: { allow: ['*@example.com'], deny: ['sip:mallory@example.com', 'dave@example.com'] } });
    await (await client('alice')).join(staff);
    await assert.rejects((await client('dave')).join(staff), forbidden);
    await assert.rejects((await client('erin')).join(staff, { identity: 'sip:erin@elsewhere.example' }), forbidden);
  });

  it('the join hook of the application may refuse a joiner or give it a role', async () => {
    const room = await s.chat.rooms.create('sip:hooked@example.com');
    s.chat.hooks.authorizeJoin.tapPromise('test', async (q) => {
      if (q.room !== room) return undefined;
      if (q.user === 'frank@example.com') return { reject: 'frank is on holiday' };
      if (q.user === 'erin@example.com') return { role: 'moderator' };
      return undefined;
    });
    await assert.rejects((await client('frank')).join(room), (e: unknown) => forbidden(e) && /holiday/.test((e as Error).message));
    const e = await (await client('erin')).join(room);
    assert.equal(e.participant.role, 'moderator');
    assert.match(room.conferenceInfo(), /<entry>moderator<\/entry>/);
  });

  it('commands to the room: members may not moderate; moderators kick, mute, set the subject; answers come privately', async () => {
    const room = await s.chat.rooms.create('sip:cmd@example.com', { moderators: ['sip:alice@example.com'] });
    const a = await (await client('alice')).join(room, { nickname: 'al' });
    const b = await (await client('bob')).join(room, { nickname: 'bob the builder' });
    const c = await (await client('carol')).join(room);
    // A member's /kick is refused to it alone; nobody else sees the command.
    assert.equal((await c.say('/kick al')).status, 200);
    const refused = await c.received((x) => x.text.startsWith('Not allowed'));
    assert.equal(refused.cpim.from.uri, room.uri);
    assert.equal(refused.cpim.to[0]!.uri, c.sip);
    assert.equal(a.copies('/kick al').length, 0);
    // Text that is no command goes to the room as it is.
    await c.say('/me waves');
    await a.received('/me waves');
    // /who answers with the roster.
    await c.say('/who');
    const who = await c.received((x) => x.text.includes('<sip:alice@example.com>'));
    assert.match(who.text, /al <sip:alice@example.com> \(moderator\)/);
    // A moderator mutes, sets the subject, kicks (a quoted nickname with spaces).
    await a.say('/mute carol@example.com');
    await a.received('sip:carol@example.com is muted.');
    assert.equal((await c.say('can I?')).status, 403);
    const subject = next(room, 'subject');
    await a.say('/subject Planning for May');
    assert.equal((await subject)[0], 'Planning for May');
    const left = next(room, 'left');
    await a.say('/kick "bob the builder" too loud');
    const [gone, reason] = await left;
    assert.equal(gone, b.participant);
    assert.equal(reason, 'kicked');
    await a.received('bob the builder was kicked.');
    // /role by a moderator: owner is for owners only.
    await a.say('/role carol@example.com owner');
    await a.received((x) => x.text.startsWith('Not allowed'));
    await a.say('/role carol@example.com moderator');
    await a.received('sip:carol@example.com is now moderator.');
    assert.equal(room.roleOf('carol@example.com'), 'moderator');
    await a.say('/help');
    await a.received((x) => x.text.startsWith('Commands:'));
  });

  it('NICKNAME then /ban by nickname; the ban holds for the user\'s every session', async () => {
    const room = await s.chat.rooms.create('sip:cmdban@example.com', { owners: ['sip:alice@example.com'] });
    const a = await (await client('alice')).join(room);
    const d = await (await client('dave')).join(room);
    assert.equal(await d.nickname(formatUseNickname('Troll')), 200);
    const left = next(room, 'left');
    await a.say('/ban troll');
    assert.equal((await left)[1], 'banned');
    await a.received('sip:dave@example.com is banned.');
    await assert.rejects((await client('dave')).join(room), forbidden);
  });

  it('owners are moderated by owners only: a moderator\'s /kick, /mute and /ban of an owner are refused', async () => {
    const room = await s.chat.rooms.create('sip:owned@example.com', { owners: ['sip:alice@example.com', 'sip:erin@example.com'], moderators: ['sip:bob@example.com'] });
    const a = await (await client('alice')).join(room, { nickname: 'boss' });
    const b = await (await client('bob')).join(room);
    const e = await (await client('erin')).join(room);
    for (const cmd of ['/kick boss', '/mute boss', '/ban boss']) {
      await b.say(cmd);
      await b.received((x) => x.text.startsWith('Not allowed') && x.text.includes(`only owners may ${cmd.slice(1, -5)} owners`));
    }
    assert.deepEqual(room.participants.map((p) => p.user).sort(), ['alice@example.com', 'bob@example.com', 'erin@example.com']);
    assert.equal(room.isMuted('alice@example.com'), false);
    assert.equal(room.roleOf('alice@example.com'), 'owner');
    // Through the API with a participant as `by`, the same rule.
    assert.throws(() => room.kick('sip:alice@example.com', { by: b.participant }), forbidden);
    // Another owner may; so may the application (no `by`).
    await e.say('/mute boss');
    await e.received('sip:alice@example.com is muted.');
    assert.equal(room.isMuted('alice@example.com'), true);
    assert.equal(room.kick('sip:alice@example.com'), 1);
    assert.equal(a.participant.left, 'kicked');
  });
});

describe('chat: moderation survives a restart', () => {
  it('bans, mutes, roles and the subject come back with the room', async () => {
    const store = { driver: 'sqlite3' as const, filename: join(mkdtempSync(join(tmpdir(), 'chat-mod-')), 'chat.db') };
    const { t: t1, chat: chat1 } = await startChat({ store });
    const room1 = await chat1.rooms.create('sip:kept@example.com');
    room1.ban('sip:mallory@example.com');
    room1.mute('sip:bob@example.com');
    room1.setRole('sip:carol@example.com', 'moderator');
    room1.setSubject('Still here');
    await t1.close();
    const { t: t2, chat: chat2 } = await startChat({ store });
    try {
      const room = chat2.rooms.get('sip:kept@example.com')!;
      assert.equal(room.subject, 'Still here');
      assert.equal(room.roleOf('mallory@example.com'), 'banned');
      assert.equal(room.roleOf('carol@example.com'), 'moderator');
      assert.equal(room.isMuted('bob@example.com'), true);
    } finally {
      await t2.close();
    }
  });
});
