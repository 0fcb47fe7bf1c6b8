/**
 * Nicknames (plugins/chat/nickname.ts): the Use-Nickname wire form (RFC 7701 §7.1, C-13), the
 * preparation in the spirit of RFC 7700 / 8266, and the key that makes look-alikes collide
 * (7701 §11: unique inside a room).
 */

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MAX_NICKNAME_OCTETS, NicknameError, formatUseNickname, nicknameKey, parseUseNickname, prepareNickname } from '../../plugins/chat/nickname.ts';

describe('Use-Nickname: DQUOTE 1*1023(qdtext / qd-esc) DQUOTE (RFC 7701 §7.1)', () => {
  it('unescapes \\\\ and \\" and keeps UTF-8', () => {
    assert.equal(parseUseNickname('"alice"'), 'alice');
    assert.equal(parseUseNickname('"say \\"hi\\" \\\\o/"'), 'say "hi" \\o/');
    assert.equal(parseUseNickname('"Zoë 日本"'), 'Zoë 日本');
    assert.equal(formatUseNickname('say "hi" \\o/'), '"say \\"hi\\" \\\\o/"');
    assert.equal(parseUseNickname(formatUseNickname('a"b\\c')), 'a"b\\c');
  });

  it('"" is the removal of §7.3 (the ABNF says 1*, the prose wins: C-14)', () => {
    assert.equal(parseUseNickname('""'), '');
  });

  it('refuses what is not a quoted string of qdtext and qd-esc (424, C-13)', () => {
    for (const bad of ['alice', '"alice', 'alice"', '"', '"a"b"', '"a\\b"', '"a\\"', '"a\x01b"', '"a\x7fb"']) {
      assert.throws(() => parseUseNickname(bad), NicknameError, JSON.stringify(bad));
    }
  });

  it('1023 octets of UTF-8 at most: 1023 ASCII pass, 1024 do not, 512 two-octet characters do not', () => {
    assert.equal(parseUseNickname(`"${'a'.repeat(MAX_NICKNAME_OCTETS)}"`).length, 1023);
    assert.throws(() => parseUseNickname(`"${'a'.repeat(1024)}"`), NicknameError);
    assert.throws(() => parseUseNickname(`"${'é'.repeat(512)}"`), NicknameError);
    assert.equal(parseUseNickname(`"${'é'.repeat(511)}"`).length, 511);
  });
});

describe('preparation (RFC 8266 §2.2 in spirit): the form a room keeps', () => {
  it('maps every space separator to SP, trims, collapses runs of spaces', () => {
    assert.equal(prepareNickname('  Alice\u00a0\u3000 Liddell  ').nickname, 'Alice Liddell');
  });

  it('applies NFKC, which folds width: fullwidth letters and halfwidth katakana', () => {
    assert.equal(prepareNickname('ＡＬＩＣＥ').nickname, 'ALICE');
    assert.equal(prepareNickname('ｱﾘｽ').nickname, 'アリス');
    assert.equal(prepareNickname('ﬁsh').nickname, 'fish');
    assert.equal(prepareNickname('e\u0301').nickname, 'é');
  });

  it('refuses empty and blank nicknames, controls, bidi overrides, zero-width spaces, private use, unassigned', () => {
    for (const bad of ['', '   ', '\u3000', 'a\tb', 'a\u202eb', 'a\u200bb', 'a\ufeffb', '\ue000', 'a\u{e0001}', 'a\u0378', 'a\ufdd0']) {
      assert.throws(() => prepareNickname(bad), NicknameError, JSON.stringify(bad));
    }
  });

  it('keeps ZWNJ and ZWJ, which some scripts need, and symbols, punctuation, emoji', () => {
    assert.equal(prepareNickname('می\u200cخواهم').nickname, 'می\u200cخواهم');
    assert.equal(prepareNickname('👩\u200d💻 dev!').nickname, '👩\u200d💻 dev!');
  });

  it('is idempotent: preparing a prepared nickname changes nothing', () => {
    for (const s of ['  Ａlice ', 'x\u00a8y', 'ｱﾘｽ', 'Straße', 'ΣΊΣΥΦΟΣ']) {
      const once = prepareNickname(s).nickname;
      assert.equal(prepareNickname(once).nickname, once, s);
    }
  });
});

describe('the comparison key: unique after case and width folding (7701 §11, C-13)', () => {
  const same = (a: string, b: string) => prepareNickname(a).key === prepareNickname(b).key;

  it('case, width and spacing do not make two nicknames different', () => {
    assert.ok(same('Alice', 'alice'));
    assert.ok(same('Alice', 'ＡＬＩＣＥ'));
    assert.ok(same('Alice Liddell', ' alice\u00a0 liddell '));
    assert.ok(same('ｱﾘｽ', 'アリス'));
  });

  it('full case folding: ß matches SS, final sigma matches sigma', () => {
    assert.ok(same('Straße', 'STRASSE'));
    assert.ok(same('ΟΔΥΣΣΕΥΣ', 'οδυσσευς'));
    assert.ok(same('οδυσσευς', 'οδυσσευσ'));
  });

  it('different letters stay different', () => {
    assert.ok(!same('alice', 'alicé'));
    assert.ok(!same('bob', 'b0b'));
    assert.equal(nicknameKey('bob'), 'bob');
  });
});
