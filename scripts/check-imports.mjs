#!/usr/bin/env node
// The plugin boundary: plugins/ and examples/ use the core only through its public
// entry points, the files behind `msrprelay`, `msrprelay/protocol` and
// `msrprelay/testing` (package.json "exports"). A deep import (core/config/load.ts,
// core/session/…) would tie a plugin to the core's inside and break when the core
// is refactored or used as a published package.
//
//   node scripts/check-imports.mjs [ROOT]     (default: this repository)
//
// Scans ROOT/plugins and ROOT/examples for .ts files, reads their static
// `import … from`, `export … from`, `import '…'` and literal dynamic `import('…')`
// specifiers (comments skipped), resolves relative ones, and prints one line per
// import of a core/ file other than the three entries.
//
// And the imports run one way: among the .ts files of core/, plugins/, examples/ and bench/,
// no file imports one that imports it back, however far round (type imports count: a
// circle of types is a circle of ideas). Each circle is printed once, as a path.
//
// Exit status: 0 neither, 1 some, 2 nothing to check.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(process.argv[2] ?? fileURLToPath(new URL('..', import.meta.url)));
const SCANNED = ['plugins', 'examples'];
const ENTRIES = [
  { file: 'core/index.ts', name: 'msrprelay' },
  { file: 'core/protocol/index.ts', name: 'msrprelay/protocol' },
  { file: 'core/testing/index.ts', name: 'msrprelay/testing' },
];
/** Subpaths of the package a plugin may import by name (package.json "exports"). */
const PACKAGE_SUBPATHS = /^msrprelay(\/(protocol|testing|plugins\/[^/]+))?$/;

function walk(dir) {
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    if (name === 'node_modules' || name.startsWith('.')) continue;
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...walk(p));
    else if (/\.[cm]?ts$/.test(name)) out.push(p);
  }
  return out;
}

/**
 * The source with comments blanked (newlines kept, so offsets keep their line) and the
 * ranges of string and template literals, so an import written inside a string is not one.
 * Regex literals are skipped (a quote in one starts no string); template literals may nest
 * code in `${…}`.
 */
function scan(src) {
  const out = src.split('');
  const strings = [];
  const blank = (from, to) => {
    for (let k = from; k < to; k++) if (out[k] !== '\n') out[k] = ' ';
  };

  /** Code from i; with `nested`, until the `}` that closes a template's `${`. Returns the index after it. */
  function code(i, nested) {
    let depth = 0;
    let prev = ''; // the last significant character: tells a regex literal from a division
    while (i < src.length) {
      const c = src[i];
      const d = src[i + 1];
      if (c === '/' && d === '/') {
        const end = src.indexOf('\n', i);
        const stop = end === -1 ? src.length : end;
        blank(i, stop);
        i = stop;
      } else if (c === '/' && d === '*') {
        const end = src.indexOf('*/', i + 2);
        const stop = end === -1 ? src.length : end + 2;
        blank(i, stop);
        i = stop;
      } else if (c === "'" || c === '"') {
        const start = i++;
        while (i < src.length && src[i] !== c && src[i] !== '\n') i += src[i] === '\\' ? 2 : 1;
        strings.push([start, ++i]);
        prev = 'a';
      } else if (c === '`') {
        i = template(i);
        prev = 'a';
      } else if (c === '/' && (prev === '' || '(,=:[!&|?{};+-*%<>~^'.includes(prev) || /\b(return|typeof|case|in|of|void|delete|throw|yield|await)$/.test(src.slice(Math.max(0, i - 8), i).trimEnd()))) {
        i++;
        let inClass = false;
        while (i < src.length && src[i] !== '\n') {
          if (src[i] === '\\') i++;
          else if (src[i] === '[') inClass = true;
          else if (src[i] === ']') inClass = false;
          else if (src[i] === '/' && !inClass) break;
          i++;
        }
        i++;
        prev = 'a';
      } else {
        if (c === '{') depth++;
        else if (c === '}') {
          if (nested && depth === 0) return i + 1;
          depth--;
        }
        if (!/\s/.test(c)) prev = /[\w$]/.test(c) ? 'a' : c;
        i++;
      }
    }
    return i;
  }

  /** A template literal from its opening backtick at i: its text parts are strings, its `${…}` code. Returns the index after it. */
  function template(i) {
    let start = i++;
    while (i < src.length && src[i] !== '`') {
      if (src[i] === '\\') i += 2;
      else if (src[i] === '$' && src[i + 1] === '{') {
        strings.push([start, i]);
        i = code(i + 2, true);
        start = i - 1;
      } else i++;
    }
    strings.push([start, i + 1]);
    return i + 1;
  }

  code(0, false);
  return { code: out.join(''), strings };
}

const STATIC = /\b(?:import|export)\s+(?:type\s+)?(?:[\w$*{}\s,]+?\s*from\s*)?(['"])([^'"\n]+)\1/g;
const DYNAMIC = /\bimport\s*\(\s*(['"`])([^'"`\n]+)\1\s*\)/g;

function specifiers(src) {
  const { code, strings } = scan(src);
  const inString = (at) => strings.some(([a, b]) => at > a && at < b);
  const found = [];
  for (const re of [STATIC, DYNAMIC]) {
    re.lastIndex = 0;
    for (let m; (m = re.exec(code)) !== null; ) {
      if (inString(m.index)) continue;
      if (m[1] === '`' && m[2].includes('${')) continue;
      const line = code.slice(0, m.index + m[0].indexOf(m[1])).split('\n').length;
      found.push({ spec: m[2], line });
    }
  }
  return found.sort((a, b) => a.line - b.line);
}

/** The public entry a core/ path belongs to, or undefined when it is one itself. */
function offence(file, spec) {
  if (!spec.startsWith('.') && !isAbsolute(spec) && !spec.startsWith('file:')) {
    if (spec === 'msrprelay' || spec.startsWith('msrprelay/')) {
      return PACKAGE_SUBPATHS.test(spec) ? undefined : 'not a public entry of the package';
    }
    return undefined; // node: builtins and npm packages
  }
  const target = spec.startsWith('file:') ? fileURLToPath(spec) : resolve(dirname(file), spec);
  const inCore = relative(join(root, 'core'), target);
  if (inCore.startsWith('..') || isAbsolute(inCore)) return undefined;
  const bare = relative(root, target).split(sep).join('/').replace(/\.[cm]?[jt]s$/, '').replace(/\/index$/, '');
  if (ENTRIES.some((e) => e.file.replace(/\/index\.ts$/, '') === bare)) return undefined;
  return 'a deep import of the core';
}

/** Which entry to use instead: the one of the part of the core the path is in. */
function advice(file, spec) {
  const target = resolve(dirname(file), spec);
  const inCore = relative(join(root, 'core'), target).split(sep).join('/');
  const entry = ENTRIES.find((e) => e.file !== 'core/index.ts' && inCore.startsWith(`${e.file.slice(5, -'index.ts'.length)}`)) ?? ENTRIES[0];
  let rel = relative(dirname(file), join(root, entry.file)).split(sep).join('/');
  if (!rel.startsWith('.')) rel = `./${rel}`;
  return `import from '${rel}' (${entry.name}) instead`;
}

const dirs = SCANNED.map((d) => join(root, d)).filter((d) => existsSync(d));
if (dirs.length === 0) {
  console.error(`check-imports: neither ${SCANNED.join('/ nor ')}/ in ${root}`);
  process.exit(2);
}
const files = dirs.flatMap(walk);
const problems = [];
for (const file of files) {
  for (const { spec, line } of specifiers(readFileSync(file, 'utf8'))) {
    const why = offence(file, spec);
    if (why === undefined) continue;
    const where = `${relative(root, file).split(sep).join('/')}:${line}`;
    const fix = spec.startsWith('msrprelay') ? 'use msrprelay, msrprelay/protocol or msrprelay/testing' : advice(file, spec);
    problems.push(`${where}: '${spec}' is ${why}; ${fix}`);
  }
}
for (const p of problems) console.error(p);
if (problems.length > 0) {
  console.error(`check-imports: ${problems.length} import${problems.length === 1 ? '' : 's'} past the plugin boundary (plugins and examples use the core's public entries only)`);
}

// -- circles

const GRAPHED = ['core', 'plugins', 'examples', 'bench'];
const graphed = GRAPHED.map((d) => join(root, d)).filter((d) => existsSync(d)).flatMap(walk);
const known = new Set(graphed);
/** file → the files of the set it imports, relative specifiers only, in the order written. */
const edges = new Map();
for (const file of graphed) {
  const to = [];
  for (const { spec } of specifiers(readFileSync(file, 'utf8'))) {
    if (!spec.startsWith('.')) continue;
    const target = resolve(dirname(file), spec);
    if (known.has(target) && !to.includes(target)) to.push(target);
  }
  edges.set(file, to);
}

/** Strongly connected components (Tarjan, iterative): the files of each circle. */
function components() {
  let counter = 0;
  const index = new Map();
  const low = new Map();
  const stack = [];
  const onStack = new Set();
  const out = [];
  for (const start of graphed) {
    if (index.has(start)) continue;
    const work = [[start, 0]];
    index.set(start, counter);
    low.set(start, counter++);
    stack.push(start);
    onStack.add(start);
    while (work.length > 0) {
      const top = work[work.length - 1];
      const [v, i] = top;
      const next = edges.get(v)[i];
      if (next !== undefined) {
        top[1]++;
        if (!index.has(next)) {
          index.set(next, counter);
          low.set(next, counter++);
          stack.push(next);
          onStack.add(next);
          work.push([next, 0]);
        } else if (onStack.has(next)) low.set(v, Math.min(low.get(v), index.get(next)));
        continue;
      }
      work.pop();
      if (work.length > 0) {
        const parent = work[work.length - 1][0];
        low.set(parent, Math.min(low.get(parent), low.get(v)));
      }
      if (low.get(v) === index.get(v)) {
        const c = [];
        let w;
        do {
          w = stack.pop();
          onStack.delete(w);
          c.push(w);
        } while (w !== v);
        if (c.length > 1 || edges.get(v).includes(v)) out.push(c);
      }
    }
  }
  return out;
}

/** One way round a component: the shortest path from its first file back to it. */
function wayRound(c) {
  const inside = new Set(c);
  const first = [...c].sort()[0];
  const from = new Map([[first, undefined]]);
  const queue = [first];
  while (queue.length > 0) {
    const v = queue.shift();
    for (const w of edges.get(v)) {
      if (w === first) {
        const path = [v];
        for (let u = from.get(v); u !== undefined; u = from.get(u)) path.unshift(u);
        return [...path, first];
      }
      if (inside.has(w) && !from.has(w)) {
        from.set(w, v);
        queue.push(w);
      }
    }
  }
  return [first, first];
}

const name = (f) => relative(root, f).split(sep).join('/');
const circles = components();
for (const c of circles) {
  const files = c.map(name).sort();
  console.error(`circle of ${c.length} file${c.length === 1 ? '' : 's'}: ${wayRound(c).map(name).join(' → ')}${c.length > 2 ? ` (all of it: ${files.join(', ')})` : ''}`);
}
if (circles.length > 0) {
  console.error(`check-imports: ${circles.length} circle${circles.length === 1 ? '' : 's'} of imports; a lower file names what it needs of a higher one in an interface of its own`);
}
if (problems.length > 0 || circles.length > 0) process.exit(1);
console.log(`check-imports: ${files.length} files in ${dirs.map((d) => `${relative(root, d) || d}/`).join(', ')} use only the public entries of the core; ${graphed.length} files of ${GRAPHED.filter((d) => existsSync(join(root, d))).map((d) => `${d}/`).join(', ')} import in no circle`);
