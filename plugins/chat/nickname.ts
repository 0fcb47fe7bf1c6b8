/**
 * Nicknames (RFC 7701 §7, C-13, C-14): the Use-Nickname value, how a nickname is prepared, and
 * the key two nicknames are compared by, so that a room never holds two that look alike.
 *
 * RFC 7701 §11 asks for RFC 7700 (PRECIS Nickname profile, now RFC 8266). What this file
 * implements, in the spirit of that profile and without its full code point tables:
 *
 * - Wire form (7701 §7.1): `Use-Nickname: DQUOTE 1*1023(qdtext / qd-esc) DQUOTE`, `qd-esc` being
 *   `\\` or `\"`; 1 to 1023 octets of UTF-8 once unescaped (the ABNF's bound, read as octets,
 *   C-13). `""` is the removal of 7701 §7.3 (P: the ABNF's `1*` notwithstanding).
 * - Enforcement (the form kept and shown; 8266 §2.2 rules 1-4): every Unicode space separator
 *   becomes U+0020, leading and trailing spaces go, runs of spaces become one; then NFKC, which
 *   also folds width (fullwidth Ａ is A, halfwidth katakana become fullwidth). The result must not
 *   be empty and must hold no control (Cc), unassigned (Cn), private-use (Co) or surrogate (Cs)
 *   code point, no noncharacter and no default-ignorable code point (bidi overrides, zero-width
 *   spaces, U+FEFF) other than ZWNJ and ZWJ, which some scripts need (PRECIS: CONTEXTJ).
 * - Comparison key (8266 §2.3): the enforced form case-folded (toUpperCase then toLowerCase, so
 *   that ß matches SS and ς matches Σ as full case folding does), then NFKC again. Two nicknames
 *   with one key are the same nickname: `Alice`, `ALICE`, `ａｌｉｃｅ` and ` alice ` collide.
 */

/** Why a nickname is refused: 424 "Malformed nickname" (C-13). */
export class NicknameError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NicknameError';
  }
}

/** At most this many octets of UTF-8 (RFC 7701 §7.1). */
export const MAX_NICKNAME_OCTETS = 1023;

/** qdtext: SP, HTAB, printable ASCII but `"` and `\`, and any non-ASCII character. */
const QDTEXT = /^[\t\x20\x21\x23-\x5b\x5d-\x7e\u0080-\u{10ffff}]$/u;

/**
 * The nickname in a Use-Nickname value (7701 §7.1): the quoted string unescaped. Returns ''
 * for `""` (removal, §7.3). Throws NicknameError when the value is not a quoted string of
 * qdtext and qd-esc, or is longer than 1023 octets.
 */
export function parseUseNickname(value: string): string {
  if (value.length < 2 || !value.startsWith('"') || !value.endsWith('"')) throw new NicknameError('Use-Nickname is not a quoted string');
  const inner = value.slice(1, -1);
  let out = '';
  for (let i = 0; i < inner.length; ) {
    const cp = inner.codePointAt(i)!;
    const ch = String.fromCodePoint(cp);
    if (ch === '\\') {
      const next = inner[i + 1];
      if (next !== '\\' && next !== '"') throw new NicknameError('Use-Nickname has an escape other than \\\\ and \\"');
      out += next;
      i += 2;
      continue;
    }
    if (!QDTEXT.test(ch) || (cp >= 0xd800 && cp <= 0xdfff)) throw new NicknameError('Use-Nickname holds a character that is not qdtext');
    out += ch;
    i += ch.length;
  }
  if (Buffer.byteLength(out, 'utf8') > MAX_NICKNAME_OCTETS) throw new NicknameError(`a nickname is at most ${MAX_NICKNAME_OCTETS} octets`);
  return out;
}

/** A Use-Nickname value for a nickname (for clients and tests). */
export function formatUseNickname(nickname: string): string {
  return `"${nickname.replace(/[\\"]/g, '\\$&')}"`;
}

/** Code points a nickname may not hold (see the file comment). */
const DISALLOWED = /[\p{Cc}\p{Cn}\p{Co}\p{Cs}\p{Noncharacter_Code_Point}]|(?![\u200c\u200d])\p{Default_Ignorable_Code_Point}/u;

export interface PreparedNickname {
  /** The enforced form: what the room keeps and shows. */
  readonly nickname: string;
  /** The comparison key: equal keys are the same nickname. */
  readonly key: string;
}

/** Enforces the rules of the file comment; throws NicknameError (424) for a nickname they refuse. */
export function prepareNickname(input: string): PreparedNickname {
  // RFC 8266 §2.2 applies the rules until the result is stable: NFKC can make spaces (¨ is
  // SP + U+0308), so spaces are mapped again after it.
  const spaces = (s: string) => s.replace(/\p{Zs}/gu, ' ').trim().replace(/ {2,}/g, ' ');
  const nickname = spaces(spaces(input).normalize('NFKC')).normalize('NFKC');
  if (nickname === '') throw new NicknameError('a nickname is not empty or blank');
  const bad = DISALLOWED.exec(nickname);
  if (bad !== null) throw new NicknameError(`a nickname may not hold U+${bad[0].codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}`);
  if (Buffer.byteLength(nickname, 'utf8') > MAX_NICKNAME_OCTETS) throw new NicknameError(`a nickname is at most ${MAX_NICKNAME_OCTETS} octets`);
  return { nickname, key: nicknameKey(nickname) };
}

/** The comparison key of an enforced nickname (case folded, then NFKC). */
export function nicknameKey(enforced: string): string {
  return enforced.toUpperCase().toLowerCase().normalize('NFKC');
}
