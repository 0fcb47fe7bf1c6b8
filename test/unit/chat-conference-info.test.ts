/**
 * The conference-info builder (plugins/chat/conference-info.ts, RFC 4575): the roster a SIP
 * application sends in NOTIFYs, with nicknames as display-text.
 */

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { CONFERENCE_INFO_NS, buildConferenceInfo, xmlEscape } from '../../plugins/chat/conference-info.ts';

/** A small well-formedness check: every tag closes in order, attributes are quoted, entities known. */
function assertWellFormed(xml: string): void {
  const stack: string[] = [];
  const body = xml.replace(/^<\?xml [^?]*\?>\n/, '');
  for (const m of body.matchAll(/<(\/?)([A-Za-z][\w.-]*)((?:\s+[\w:.-]+="[^"<]*")*)\s*(\/?)>/g)) {
    if (m[1] === '/') assert.equal(stack.pop(), m[2], `</${m[2]}> closes ${stack.join('>')}`);
    else if (m[4] !== '/') stack.push(m[2]!);
  }
  assert.deepEqual(stack, []);
  for (const e of body.matchAll(/&([a-z]+);/g)) assert.ok(['amp', 'lt', 'gt', 'quot', 'apos'].includes(e[1]!), e[0]);
  assert.doesNotMatch(body.replace(/<[^>]*>/g, ''), /[<>]/);
}

describe('conference-info (RFC 4575)', () => {
  const joined = new Date('2024-05-01T08:00:00Z');
  const doc = buildConferenceInfo({
    entity: 'sip:lobby@chat.example.com',
    version: 3,
    state: 'full',
    description: {
      subject: 'Tea & <cakes>',
      confUris: [{ uri: 'sip:lobby@chat.example.com', purpose: 'participation' }],
      maximumUserCount: 100,
      availableMedia: [{ label: 'chat', type: 'message', status: 'sendrecv' }],
    },
    conferenceState: { userCount: 2, active: true, locked: false },
    users: [
      {
        entity: 'sip:alice@example.com',
        displayText: 'alice "the" first',
        roles: ['owner'],
        endpoints: [
          { entity: 'urn:uuid:5b0b3c1e-2f6b-4f1e-9c59-2f1d0d7c1a10', status: 'connected', joiningMethod: 'dialed-in', joinedAt: joined, media: [{ id: '1', type: 'message', status: 'sendrecv' }] },
          { entity: 'urn:uuid:7c8d9e0f-1a2b-4c3d-8e4f-5a6b7c8d9e0f', status: 'connected', joiningMethod: 'dialed-in' },
        ],
      },
      { entity: 'sip:bob@example.com', roles: ['participant'] },
    ],
  });

  it('writes the document with its namespace, entity, state and version', () => {
    assert.match(doc, /^<\?xml version="1\.0" encoding="UTF-8"\?>\n<conference-info /);
    assert.ok(doc.includes(`xmlns="${CONFERENCE_INFO_NS}" entity="sip:lobby@chat.example.com" state="full" version="3"`));
    assertWellFormed(doc);
  });

  it('keeps the schema order: description, state, users; within a user display-text, roles, endpoints', () => {
    const at = (s: string) => doc.indexOf(s);
    assert.ok(at('<conference-description>') < at('<conference-state>'));
    assert.ok(at('<conference-state>') < at('<users>'));
    assert.ok(at('<subject>') < at('<conf-uris>') && at('<conf-uris>') < at('<maximum-user-count>') && at('<maximum-user-count>') < at('<available-media>'));
    const alice = doc.slice(at('<user entity="sip:alice@example.com"'));
    assert.ok(alice.indexOf('<display-text>') < alice.indexOf('<roles>') && alice.indexOf('<roles>') < alice.indexOf('<endpoint'));
    const ep = alice.slice(alice.indexOf('<endpoint'));
    assert.ok(ep.indexOf('<status>') < ep.indexOf('<joining-method>') && ep.indexOf('<joining-info>') < ep.indexOf('<media id="1">'));
  });

  it('the nickname is the user display-text, escaped; one endpoint per session (C-10)', () => {
    assert.ok(doc.includes('<display-text>alice &quot;the&quot; first</display-text>'));
    assert.ok(doc.includes('<subject>Tea &amp; &lt;cakes&gt;</subject>'));
    assert.equal(doc.split('<endpoint ').length - 1, 2);
    assert.ok(doc.includes('<when>2024-05-01T08:00:00.000Z</when>'));
    assert.ok(doc.includes('<user-count>2</user-count>'));
    assert.ok(doc.includes('<locked>false</locked>'));
  });

  it('a partial document names a departed user with state="deleted"', () => {
    const partial = buildConferenceInfo({ entity: 'sip:lobby@chat.example.com', version: 4, state: 'partial', users: [{ entity: 'sip:bob@example.com', state: 'deleted' }] });
    assert.ok(partial.includes('<user entity="sip:bob@example.com" state="deleted">'));
    assert.ok(!partial.includes('<conference-description>'));
    assertWellFormed(partial);
  });

  it('drops characters XML cannot carry', () => {
    assert.equal(xmlEscape('a\x00b\x1bc\ufffed'), 'abcd');
    assert.equal(xmlEscape('\t\n😀'), '\t\n😀');
  });
});
