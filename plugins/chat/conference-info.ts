/**
 * A conference-info document (RFC 4575, `application/conference-info+xml`) for the roster of a
 * room, for a SIP application to send in NOTIFYs of the `conference` event package. The focus
 * has no SIP of its own: Room.conferenceInfo() fills this in and the application sends it.
 *
 * Elements are written in the order of the RFC 4575 schema's sequences. A participant's
 * nickname is its user's `display-text` (RFC 7701 defines no element of its own for it; clients
 * that show rosters read display-text). An endpoint's entity is never the focus's session URI
 * of the participant: that URI is a secret that lets its holder speak as the participant.
 */

export const CONFERENCE_INFO_NS = 'urn:ietf:params:xml:ns:conference-info';
export const CONFERENCE_INFO_TYPE = 'application/conference-info+xml';

export type ElementState = 'full' | 'partial' | 'deleted';

export interface ConferenceMedia {
  readonly id: string;
  readonly type: string;
  readonly displayText?: string;
  readonly label?: string;
  readonly status?: 'sendrecv' | 'sendonly' | 'recvonly' | 'inactive';
}

export interface ConferenceEndpoint {
  readonly entity: string;
  readonly state?: ElementState;
  readonly displayText?: string;
  readonly status?: 'connected' | 'disconnected' | 'on-hold' | 'muted-via-focus' | 'pending' | 'alerting' | 'dialing-in' | 'dialing-out' | 'disconnecting';
  readonly joiningMethod?: 'dialed-in' | 'dialed-out' | 'focus-owner';
  readonly joinedAt?: Date;
  readonly disconnectionMethod?: 'departed' | 'booted' | 'failed' | 'busy';
  readonly media?: readonly ConferenceMedia[];
}

export interface ConferenceUser {
  readonly entity: string;
  readonly state?: ElementState;
  /** The nickname, else the display name. */
  readonly displayText?: string;
  /** RFC 4575 §5.6.3 roles; the focus writes owner, moderator, participant. */
  readonly roles?: readonly string[];
  readonly endpoints?: readonly ConferenceEndpoint[];
}

export interface ConferenceInfo {
  /** The conference URI (the room's). */
  readonly entity: string;
  /** Increases by one with every document sent to a subscriber (RFC 4575 §4.2). */
  readonly version: number;
  readonly state: ElementState;
  readonly description?: {
    readonly displayText?: string;
    readonly subject?: string;
    readonly confUris?: ReadonlyArray<{ readonly uri: string; readonly displayText?: string; readonly purpose?: string }>;
    readonly maximumUserCount?: number;
    readonly availableMedia?: ReadonlyArray<{ readonly label: string; readonly type: string; readonly displayText?: string; readonly status?: string }>;
  };
  readonly conferenceState?: { readonly userCount?: number; readonly active?: boolean; readonly locked?: boolean };
  readonly users?: readonly ConferenceUser[];
}

/** XML text and attribute escaping; characters XML 1.0 cannot hold are dropped. */
export function xmlEscape(s: string): string {
  return s
    .replace(/[^\t\n\r\x20-\ud7ff\ue000-\ufffd\u{10000}-\u{10ffff}]/gu, '')
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;');
}

class Xml {
  private readonly out: string[] = ['<?xml version="1.0" encoding="UTF-8"?>'];
  private depth = 0;

  open(name: string, attrs: Record<string, string | number | undefined> = {}): void {
    this.out.push(`${'  '.repeat(this.depth)}<${name}${this.attrs(attrs)}>`);
    this.depth++;
  }

  close(name: string): void {
    this.depth--;
    this.out.push(`${'  '.repeat(this.depth)}</${name}>`);
  }

  text(name: string, value: string | number | boolean | undefined, attrs: Record<string, string | undefined> = {}): void {
    if (value === undefined) return;
    this.out.push(`${'  '.repeat(this.depth)}<${name}${this.attrs(attrs)}>${xmlEscape(String(value))}</${name}>`);
  }

  toString(): string {
    return `${this.out.join('\n')}\n`;
  }

  private attrs(a: Record<string, string | number | undefined>): string {
    let s = '';
    for (const [k, v] of Object.entries(a)) if (v !== undefined) s += ` ${k}="${xmlEscape(String(v))}"`;
    return s;
  }
}

/** The document, UTF-8 XML. */
export function buildConferenceInfo(doc: ConferenceInfo): string {
  const x = new Xml();
  x.open('conference-info', { xmlns: CONFERENCE_INFO_NS, entity: doc.entity, state: doc.state, version: doc.version });
  const d = doc.description;
  if (d !== undefined) {
    x.open('conference-description');
    x.text('display-text', d.displayText);
    x.text('subject', d.subject);
    if (d.confUris !== undefined && d.confUris.length > 0) {
      x.open('conf-uris');
      for (const u of d.confUris) {
        x.open('entry');
        x.text('uri', u.uri);
        x.text('display-text', u.displayText);
        x.text('purpose', u.purpose);
        x.close('entry');
      }
      x.close('conf-uris');
    }
    x.text('maximum-user-count', d.maximumUserCount);
    if (d.availableMedia !== undefined && d.availableMedia.length > 0) {
      x.open('available-media');
      for (const m of d.availableMedia) {
        x.open('entry', { label: m.label });
        x.text('display-text', m.displayText);
        x.text('type', m.type);
        x.text('status', m.status);
        x.close('entry');
      }
      x.close('available-media');
    }
    x.close('conference-description');
  }
  const cs = doc.conferenceState;
  if (cs !== undefined) {
    x.open('conference-state');
    x.text('user-count', cs.userCount);
    x.text('active', cs.active);
    x.text('locked', cs.locked);
    x.close('conference-state');
  }
  if (doc.users !== undefined) {
    x.open('users');
    for (const u of doc.users) {
      x.open('user', { entity: u.entity, state: u.state ?? 'full' });
      x.text('display-text', u.displayText);
      if (u.roles !== undefined && u.roles.length > 0) {
        x.open('roles');
        for (const r of u.roles) x.text('entry', r);
        x.close('roles');
      }
      for (const e of u.endpoints ?? []) {
        x.open('endpoint', { entity: e.entity, state: e.state ?? 'full' });
        x.text('display-text', e.displayText);
        x.text('status', e.status);
        x.text('joining-method', e.joiningMethod);
        if (e.joinedAt !== undefined) {
          x.open('joining-info');
          x.text('when', e.joinedAt.toISOString());
          x.close('joining-info');
        }
        x.text('disconnection-method', e.disconnectionMethod);
        for (const m of e.media ?? []) {
          x.open('media', { id: m.id });
          x.text('display-text', m.displayText);
          x.text('type', m.type);
          x.text('label', m.label);
          x.text('status', m.status);
          x.close('media');
        }
        x.close('endpoint');
      }
      x.close('user');
    }
    x.close('users');
  }
  x.close('conference-info');
  return x.toString();
}
