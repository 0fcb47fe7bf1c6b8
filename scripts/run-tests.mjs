#!/usr/bin/env node
// Runs every test/**/*.test.ts and examples/**/*.test.ts through node:test with tsx.
// Node 20's --test does not expand globs, so the files are listed here; the run
// fails when no test ran, so an empty or mis-globbed suite can never pass.
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const only = process.argv.slice(2);

function walk(dir) {
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (name === 'node_modules') continue;
    if (statSync(p).isDirectory()) out.push(...walk(p));
    else if (name.endsWith('.test.ts')) out.push(p);
  }
  return out;
}

// The examples' tests run too, so a copied example is known to work.
let files = ['test', 'examples']
  .filter((d) => existsSync(join(root, d)))
  .flatMap((d) => walk(join(root, d)))
  .map((f) => relative(root, f));
if (only.length) files = files.filter((f) => only.some((o) => f.includes(o)));
if (files.length === 0) {
  console.error('run-tests: no test files found');
  process.exit(1);
}

// A test that hangs fails after 4 minutes instead of stalling the whole run.
const args = ['--import', 'tsx', '--test', '--test-reporter=spec', '--test-concurrency=1', '--test-timeout=240000', ...files];
const child = spawn(process.execPath, args, { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] });
let tail = '';
child.stdout.on('data', (d) => {
  process.stdout.write(d);
  tail = (tail + d.toString('utf8')).slice(-4096);
});
child.on('close', (code) => {
  const count = (label) => {
    const m = new RegExp(`ℹ ${label} (\\d+)`).exec(tail);
    return m ? Number(m[1]) : -1;
  };
  const tests = count('tests');
  const failed = count('fail');
  if (tests <= 0) {
    console.error(`run-tests: no test ran (tests=${tests})`);
    process.exit(1);
  }
  if (code !== 0 || failed !== 0) process.exit(code || 1);
  process.exit(0);
});
