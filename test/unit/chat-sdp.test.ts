/**
 * SDP for MSRP media (plugins/chat/sdp.ts): offers as SIP clients write them (test/fixtures/chat:
 * a desktop client through its relay, the same with audio, a browser library behind a WebSocket
 * relay, an RFC 5547 file push, a client without CPIM) and the answers the focus writes
 * (RFC 4975 §8, RFC 3264, RFC 6135, RFC 7701 §8; C-2, C-15).
 */

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import {
  SdpError,
  answerDirection,
  answerSetup,
  buildAnswer,
  mediaTypeMatches,
  msrpMedia,
  parseFileSelector,
  parseSdp,
  wrappedTypesOf,
} from '../../plugins/chat/sdp.ts';

const fixture = (name: string) => readFileSync(new URL(`../fixtures/chat/${name}`, import.meta.url), 'utf8');

describe('reading MSRP offers of real clients', () => {
  it('a desktop client through its relay: path, types, setup, chatroom tokens (CRLF)', () => {
    const sdp = parseSdp(fixture('blink-chat.sdp'));
    assert.equal(sdp.sessionName, 'Blink 5.6.0 (MacOSX)');
    const [m] = msrpMedia(sdp);
    assert.ok(m);
    assert.equal(m.proto, 'TCP/TLS/MSRP');
    assert.deepEqual(m.path, ['msrps://relay.example.com:2855/Vc3Zd8kQ2pL7sX1mN4bR6t;tcp', 'msrps://192.168.1.23:50322/4c8a1f0e93b2d7a6;tcp']);
    assert.deepEqual(m.acceptTypes, ['message/cpim', 'text/*', 'image/*', 'application/im-iscomposing+xml']);
    assert.deepEqual(m.acceptWrappedTypes, ['*']);
    assert.equal(m.setup, 'active');
    assert.equal(m.direction, 'sendrecv');
    // C-15: the ABNF token is "nickname"; unknown tokens are kept.
    assert.deepEqual(m.chatroom, ['nickname', 'private-messages', 'x-example.screen-sharing']);
    assert.equal(m.fileSelector, undefined);
  });

  it('audio and chat in one offer: only the message m-line is MSRP, its index kept', () => {
    const sdp = parseSdp(fixture('blink-audio-chat.sdp'));
    assert.equal(sdp.media.length, 2);
    const all = msrpMedia(sdp);
    assert.equal(all.length, 1);
    assert.equal(all[0]!.index, 1);
    assert.equal(sdp.media[0]!.formats.join(' '), '113 9 0 8 101');
  });

  it('a browser library behind a WebSocket relay: LF line ends, a .invalid ;ws URI last, actpass, no chatroom', () => {
    const [m] = msrpMedia(parseSdp(fixture('browser-ws.sdp')));
    assert.ok(m);
    assert.equal(m.path[1], 'msrps://k3v9q2x7.invalid:2855/p4QwE7rT9y;ws');
    assert.equal(m.setup, 'actpass');
    assert.equal(m.acceptWrappedTypes, undefined);
    assert.equal(m.chatroom, undefined);
    // C-7: its wrapped types are those of its accept-types but message/cpim.
    assert.deepEqual(wrappedTypesOf(m), ['text/plain']);
  });

  it('an RFC 5547 file push: the file-selector with a percent-encoded name, sendonly', () => {
    const [m] = msrpMedia(parseSdp(fixture('file-push.sdp')));
    assert.ok(m);
    assert.equal(m.direction, 'sendonly');
    assert.deepEqual(m.fileSelector, {
      name: 'minutes 2024"Q2".pdf',
      type: 'application/pdf',
      size: 1048576,
      hash: { algorithm: 'sha-1', value: '72:24:5F:E8:65:3D:DA:F3:71:36:2F:86:D4:71:91:3E:E4:A2:CE:2E' },
    });
    assert.equal(m.fileTransferId, 'vBnG916bdberum2fFEABR1FR3ExZMUrd');
  });

  it('a client without CPIM: its accept-types lack message/cpim (the focus turns it down, C-2)', () => {
    const [m] = msrpMedia(parseSdp(fixture('plain-text.sdp')));
    assert.ok(m);
    assert.equal(m.acceptTypes.includes('message/cpim'), false);
    assert.equal(m.setup, 'passive');
  });

  it('refuses an MSRP m-line without a=path or with a path that is not MSRP URIs', () => {
    const base = fixture('blink-chat.sdp');
    assert.throws(() => msrpMedia(parseSdp(base.replace(/a=path:[^\r]*\r\n/, ''))), SdpError);
    assert.throws(() => msrpMedia(parseSdp(base.replace(/a=path:[^\r]*/, 'a=path:sip:alice@example.com'))), SdpError);
    assert.throws(() => parseSdp('o=- 1 1 IN IP4 1.2.3.4\r\n'), SdpError);
    assert.throws(() => parseSdp('v=0\r\nm=message\r\n'), SdpError);
  });

  it('a session-level a=setup and direction apply to the media', () => {
    const text = 'v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\na=setup:passive\r\na=recvonly\r\nm=message 2855 TCP/MSRP *\r\na=path:msrp://192.0.2.1:2855/abcd;tcp\r\na=accept-types:message/cpim\r\n';
    const [m] = msrpMedia(parseSdp(text));
    assert.equal(m!.setup, 'passive');
    assert.equal(m!.direction, 'recvonly');
  });
});

describe('file-selector (RFC 5547 §6)', () => {
  it('reads selectors in any order, quoted type parameters, and a name alone', () => {
    assert.deepEqual(parseFileSelector('size:10 type:text/plain;charset="utf-8" name:"a b.txt"'), { size: 10, type: 'text/plain;charset="utf-8"', name: 'a b.txt' });
    assert.deepEqual(parseFileSelector('name:"x.png"'), { name: 'x.png' });
    assert.throws(() => parseFileSelector('name:x.png'), SdpError);
    assert.throws(() => parseFileSelector('size:big'), SdpError);
    assert.throws(() => parseFileSelector('name:"open'), SdpError);
  });
});

describe('media types (RFC 4975 §8.6) and the wrapped types a participant takes (C-7)', () => {
  it('matches *, type/* and exact types, case-insensitive, parameters ignored', () => {
    assert.ok(mediaTypeMatches(['*'], 'image/png'));
    assert.ok(mediaTypeMatches(['text/*'], 'Text/HTML; charset=utf-8'));
    assert.ok(mediaTypeMatches(['application/im-iscomposing+xml'], 'application/im-iscomposing+xml'));
    assert.ok(!mediaTypeMatches(['text/*'], 'image/png'));
    assert.ok(!mediaTypeMatches([], 'text/plain'));
  });

  it('wrapped types: accept-wrapped-types plus bare types; everything when CPIM is all that is listed (P)', () => {
    assert.deepEqual(wrappedTypesOf({ acceptTypes: ['message/cpim'], acceptWrappedTypes: ['text/plain'] }), ['text/plain']);
    assert.deepEqual(wrappedTypesOf({ acceptTypes: ['message/cpim'], acceptWrappedTypes: undefined }), ['*']);
    assert.deepEqual(wrappedTypesOf({ acceptTypes: ['message/cpim', 'text/plain'], acceptWrappedTypes: ['image/*'] }), ['image/*', 'text/plain']);
  });
});

describe('the answer the focus writes', () => {
  const focusUri = 'msrps://relay.example.com:2855/Ab3dEf6hIj9kLm2nOp5qRs;tcp';

  it('answers the chat m-line with its path, CPIM only, chatroom tokens, passive setup to an active offerer (C-2, C-15, RFC 6135)', () => {
    const offer = parseSdp(fixture('blink-chat.sdp'));
    const text = buildAnswer({
      offer,
      accept: 0,
      path: [focusUri],
      address: 'relay.example.com',
      port: 2855,
      acceptTypes: ['message/cpim'],
      acceptWrappedTypes: ['*'],
      maxSize: 33554432,
      chatroom: ['nickname', 'private-messages'],
      sessionId: '42',
      sessionName: 'chat',
    });
    assert.equal(
      text,
      [
        'v=0',
        'o=- 42 42 IN IP4 relay.example.com',
        's=chat',
        'c=IN IP4 relay.example.com',
        't=0 0',
        'm=message 2855 TCP/TLS/MSRP *',
        `a=path:${focusUri}`,
        'a=accept-types:message/cpim',
        'a=accept-wrapped-types:*',
        'a=max-size:33554432',
        'a=setup:passive',
        'a=chatroom:nickname private-messages',
        'a=sendrecv',
        '',
      ].join('\r\n'),
    );
    // The answer is itself an offer-shaped SDP the helper reads back.
    const [m] = msrpMedia(parseSdp(text));
    assert.deepEqual(m!.path, [focusUri]);
    assert.deepEqual(m!.acceptTypes, ['message/cpim']);
  });

  it('declines audio with port 0 and keeps the m-line order (RFC 3264 §6)', () => {
    const offer = parseSdp(fixture('blink-audio-chat.sdp'));
    const text = buildAnswer({ offer, accept: 1, path: [focusUri], address: '192.0.2.5', port: 2855, acceptTypes: ['message/cpim'] });
    const answer = parseSdp(text);
    assert.equal(answer.media.length, 2);
    assert.equal(answer.media[0]!.type, 'audio');
    assert.equal(answer.media[0]!.port, 0);
    assert.equal(answer.media[0]!.formats.join(' '), '113 9 0 8 101');
    assert.equal(answer.media[1]!.port, 2855);
    assert.match(text, /^o=- \d+ \d+ IN IP4 192\.0\.2\.5\r$/m);
  });

  it('setup and direction follow the offer: actpass and absent → passive, passive → active; sendonly ↔ recvonly', () => {
    assert.equal(answerSetup('active'), 'passive');
    assert.equal(answerSetup('actpass'), 'passive');
    assert.equal(answerSetup(undefined), 'passive');
    assert.equal(answerSetup('passive'), 'active');
    assert.equal(answerDirection('sendonly'), 'recvonly');
    assert.equal(answerDirection('recvonly'), 'sendonly');
    assert.equal(answerDirection('inactive'), 'inactive');
    const text = buildAnswer({ offer: parseSdp(fixture('browser-ws.sdp')), accept: 0, path: [focusUri], address: '::1', port: 2855, acceptTypes: ['message/cpim'], chatroom: [] });
    assert.match(text, /\r\nc=IN IP6 ::1\r\n/);
    assert.match(text, /\r\na=chatroom\r\n/);
  });

  it('refuses to accept an m-line that is not MSRP', () => {
    assert.throws(() => buildAnswer({ offer: parseSdp(fixture('blink-audio-chat.sdp')), accept: 0, path: [focusUri], address: 'h', port: 1, acceptTypes: [] }));
  });
});
