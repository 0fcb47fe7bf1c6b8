#!/usr/bin/env node
// The `msrprelay` command: runs the built CLI from dist/, or the TypeScript
// sources through tsx in a checkout that was not built. Subcommands such as
// `msrprelay users ...` come from the config's plugins (core/commands.ts).
import { existsSync } from 'node:fs';

const argv = process.argv.slice(2);
const built = new URL('../dist/core/cli.js', import.meta.url);

try {
  let cli;
  if (existsSync(built)) {
    cli = await import(built.href);
  } else {
    let esm, cjs;
    try {
      [esm, cjs] = await Promise.all([import('tsx/esm/api'), import('tsx/cjs/api')]);
    } catch {
      throw new Error('dist/ is missing and tsx is not installed: run "npm install" and "npm run build"');
    }
    // Both hooks, as `node --import tsx` does: a config file that is CommonJS by its
    // folder but written with `export` is loaded through require, and reloads need
    // require's cache to be the one that is cleared.
    esm.register();
    cjs.register();
    cli = await import(new URL('../core/cli.ts', import.meta.url).href);
  }
  // main resolves when the relay has shut down; the process then ends on its own.
  process.exitCode = await cli.main(argv);
} catch (e) {
  console.error(`msrprelay: ${e instanceof Error ? e.message : String(e)}`);
  process.exit(1);
}
