/**
 * The pure parts of files kept in rooms (plugins/chat/files.ts): what counts as a file, the
 * Content-Disposition and the name shown (never a path), RFC 5547 §5/§6 selector matching and
 * the selector an answer carries, and the files options' checks.
 */

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { fileNameOf, formatHash, formatSelector, isFileMessage, parseDisposition, safeFileName, selectorMatches } from '../../plugins/chat/files.ts';
import { resolveOptions } from '../../plugins/chat/options.ts';
import { parseFileSelector } from '../../plugins/chat/sdp.ts';

const msg = (mediaType: string, disposition?: string) => ({ mediaType, contentHeaders: disposition === undefined ? [] : ([['Content-Disposition', disposition]] as Array<[string, string]>) });

describe('chat files: what counts as a file', () => {
  it('a Content-Disposition of attachment, or with a filename, makes a file of any type', () => {
    assert.equal(isFileMessage(msg('text/plain', 'attachment')), true);
    assert.equal(isFileMessage(msg('text/plain', 'inline; filename="notes.txt"')), true);
    assert.equal(isFileMessage(msg('text/plain', "render; filename*=UTF-8''notes.txt")), true);
  });
  it('a type outside text/* and message/* is a file; text, message and the chat-control types are not', () => {
    assert.equal(isFileMessage(msg('image/png')), true);
    assert.equal(isFileMessage(msg('application/octet-stream')), true);
    assert.equal(isFileMessage(msg('text/plain')), false);
    assert.equal(isFileMessage(msg('text/html', 'inline')), false);
    assert.equal(isFileMessage(msg('message/imdn+xml')), false);
    assert.equal(isFileMessage(msg('application/im-iscomposing+xml')), false);
    assert.equal(isFileMessage(msg('application/conference-info+xml')), false);
  });
});

describe('chat files: Content-Disposition and the name shown', () => {
  it('reads the type and parameters, quoted or not, with escapes', () => {
    const d = parseDisposition('Attachment; filename="a \\"b\\".txt"; size=12')!;
    assert.equal(d.type, 'attachment');
    assert.equal(d.params.get('filename'), 'a "b".txt');
    assert.equal(d.params.get('size'), '12');
    assert.equal(parseDisposition(';x'), undefined);
  });
  it('keeps the last path segment only, drops controls, refuses . and ..', () => {
    assert.equal(fileNameOf(msg('x/y', 'attachment; filename="../../etc/passwd"')), 'passwd');
    assert.equal(fileNameOf(msg('x/y', 'attachment; filename="C:\\\\temp\\\\a.txt"')), 'a.txt');
    assert.equal(fileNameOf(msg('x/y', "attachment; filename=plain.txt; filename*=UTF-8''%E2%82%AC.txt")), '€.txt');
    assert.equal(fileNameOf(msg('x/y', 'attachment; filename=".."')), undefined);
    assert.equal(safeFileName('a\u0000b\r\n.txt'), 'ab.txt');
    assert.equal(safeFileName('x'.repeat(300))!.length, 200);
    assert.equal(fileNameOf(msg('x/y')), undefined);
  });
});

describe('chat files: RFC 5547 selectors', () => {
  const file = { name: 'photo.jpg', contentType: 'image/jpeg', size: 1234, sha1: '72245FE8653DDAF371362F86D471913EE4A2CE2E', sha256: 'AB'.repeat(32) };

  it('every attribute given must match: name exactly, type by media type, size, hash by sha-1 or sha-256', () => {
    assert.equal(selectorMatches(parseFileSelector('name:"photo.jpg"'), file), true);
    assert.equal(selectorMatches(parseFileSelector('name:"Photo.jpg"'), file), false);
    assert.equal(selectorMatches(parseFileSelector('type:image/jpeg;q=1 size:1234'), file), true);
    assert.equal(selectorMatches(parseFileSelector('type:image/png size:1234'), file), false);
    assert.equal(selectorMatches(parseFileSelector('size:1235'), file), false);
    assert.equal(selectorMatches(parseFileSelector('hash:sha-1:72:24:5F:E8:65:3D:DA:F3:71:36:2F:86:D4:71:91:3E:E4:A2:CE:2E'), file), true);
    assert.equal(selectorMatches(parseFileSelector(`hash:sha-256:${formatHash(file.sha256)}`), file), true);
    assert.equal(selectorMatches(parseFileSelector('hash:md5:00:11'), file), false);
    assert.equal(selectorMatches({}, file), false, 'an empty selector names no file');
  });

  it('the selector of an answer reads back to the same file', () => {
    const s = formatSelector({ ...file, name: 'my "best" 100%.jpg', contentType: 'image/jpeg; q=1' });
    assert.match(s, /^name:"my %22best%22 100%25\.jpg" type:image\/jpeg;q=1 size:1234 hash:sha-1:72:24:5F/);
    const back = parseFileSelector(s);
    assert.equal(back.name, 'my "best" 100%.jpg');
    assert.equal(selectorMatches(back, { ...file, name: 'my "best" 100%.jpg' }), true);
  });
});

describe('chat files: options', () => {
  it('defaults: off, 16 MiB files, 100 per room, a week', () => {
    const o = resolveOptions({}).files;
    assert.deepEqual({ enabled: o.enabled, maxFileSize: o.maxFileSize, maxFiles: o.maxFiles, retention: o.retention, types: o.types }, { enabled: false, maxFileSize: 16 * 2 ** 20, maxFiles: 100, retention: 7 * 86400, types: ['*'] });
  });
  it('names what is wrong', () => {
    assert.throws(() => resolveOptions({ files: { types: ['images'] } }), /\/files\/types\/0 must match pattern/);
    assert.throws(() => resolveOptions({ files: { maxFiles: 0 } }), /\/files\/maxFiles must be >= 1/);
    assert.throws(() => resolveOptions({ files: { dir: '' } }), /\/files\/dir must NOT have fewer than 1 characters/);
    assert.throws(() => resolveOptions({ files: { retention: -1 } } as never), /\/files\/retention must be >= 0/);
    assert.throws(() => resolveOptions({ files: { colour: 'red' } } as never), /\/files must NOT have additional properties/);
  });
});
